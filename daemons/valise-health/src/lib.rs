//! valise-health: fleet health on the box (issue 9). So far: the offline spool.
