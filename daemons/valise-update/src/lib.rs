//! valise-update: see DESIGN.md (§5). Two helpers build it in parallel; each owns its modules.

// Engines: restarts through systemd's D-Bus API, acceptance cases through the engines.
pub mod acceptance;
pub mod systemd;
