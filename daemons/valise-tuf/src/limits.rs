//! Size limits for metadata (python-tuf's `UpdaterConfig` defaults). The trusted set refuses
//! bytes above them, on top of the fetcher's own streaming cap (later sessions).

/// Largest `root.json` accepted (each `N.root.json` of a rotation chain).
pub const MAX_ROOT_SIZE: u64 = 512_000;
/// Largest `timestamp.json` accepted.
pub const MAX_TIMESTAMP_SIZE: u64 = 16_384;
/// Largest `snapshot.json` when timestamp lists no length for it.
pub const MAX_SNAPSHOT_SIZE: u64 = 2_000_000;
/// Largest targets metadata (top-level or delegated) when snapshot lists no length for it.
pub const MAX_TARGETS_SIZE: u64 = 5_000_000;
/// Most root versions walked in one refresh (spec 5.3; the loop lives in the updater).
pub const MAX_ROOT_ROTATIONS: u64 = 256;
/// Most delegated roles visited in one target search (spec 5.6.7; the updater's).
pub const MAX_DELEGATIONS: u64 = 32;
/// Largest target accepted, whatever its listed length (`DESIGN.md` §3.3).
pub const MAX_TARGET_SIZE: u64 = 8 << 30;
