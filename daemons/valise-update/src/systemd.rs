//! Restarting engine units through systemd D-Bus (DESIGN.md §5.3).
