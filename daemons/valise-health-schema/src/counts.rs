//! The portal's counts file (`/run/valise-portal/counts.json`): local to the box, never sent
//! as such. The portal writes it atomically every few seconds into a directory only
//! valise-health may read (`valise.tmpfiles`: `/run/valise-portal`, setgid group
//! `valise-health`, mode 2750; the file 0640), so that valise-health never opens the
//! portal's database, which holds password hashes, user names and job titles.
//!
//! Counts only, by construction: every field is an integer.

use serde::{Deserialize, Serialize};

use crate::message::{JobCounts, V1};

/// What the portal publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalCounts {
    pub v: V1,
    /// Unix seconds when the portal counted (a reader treats an old file as absent: the
    /// portal stopped).
    pub at: u64,
    pub jobs: JobCounts,
    /// Failed and throttled sign-ins since the database was created: a counter that only
    /// rises (the reader takes differences over its own window, `alerts.failed_sign_ins_window_s`
    /// of valise-health).
    pub failed_sign_ins_total: u64,
}

impl PortalCounts {
    /// The file's largest plausible size; a reader refuses more.
    pub const MAX_BYTES: u64 = 4096;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_only_and_strict() {
        let c = PortalCounts {
            v: V1,
            at: 7,
            jobs: JobCounts {
                queued: 1,
                running: 2,
                done_last_hour: 3,
                failed_last_hour: 4,
            },
            failed_sign_ins_total: 5,
        };
        let text = serde_json::to_string(&c).expect("json");
        assert_eq!(
            serde_json::from_str::<PortalCounts>(&text).expect("back"),
            c
        );
        assert!(
            serde_json::from_str::<PortalCounts>(&text.replace("\"at\"", "\"user\":\"x\",\"at\""))
                .is_err()
        );
    }
}
