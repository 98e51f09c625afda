//! Password hashing off the request path: a fixed pool of dedicated threads, each owning
//! its argon2 working memory for the life of the process.
//!
//! argon2id with the portal's parameters works in 19 MiB. Hashing on tokio's blocking pool
//! allocated those 19 MiB afresh on whichever of its (up to 512) threads ran the request,
//! and glibc kept them in per-thread arenas: the portal grew 7-10 MiB per sign-in attempt
//! and never gave it back (issue 8, item 3). Here [`WORKERS`] threads each allocate their
//! blocks once and reuse them (`hash_password_into_with_memory`), so the memory for hashing
//! is fixed (`WORKERS` x 19 MiB) whatever the number of attempts; requests wait in the
//! queue, never holding the database lock while they do.
//!
//! ```text
//!  handlers --Job--> queue --> worker 1 (own 19 MiB) --reply--> handler
//!                          \-> worker 2 (own 19 MiB) --reply--> handler
//! ```

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use rand::RngCore;
use tokio::sync::oneshot;

use crate::accounts::MAX_PASSWORD_BYTES;
use crate::error::{PortalError, Result};

/// Hashing threads. Two keep sign-ins flowing during a burst while leaving the box's other
/// cores to the engines.
pub const WORKERS: usize = 2;

/// The largest argon2 memory a stored hash may ask for (a hash written by another tool with
/// a larger cost is refused rather than allowed to grow a worker without bound).
const MAX_M_COST_KIB: u32 = 256 * 1024;

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String>>,
    },
    Verify {
        password: String,
        phc: String,
        reply: oneshot::Sender<bool>,
    },
}

/// The handle request handlers use (in `AppState`).
#[derive(Debug)]
pub struct Hasher {
    queue: Mutex<mpsc::Sender<Job>>,
    decoy: tokio::sync::OnceCell<String>,
}

impl Hasher {
    /// Starts [`WORKERS`] hashing threads; they end when the `Hasher` is dropped.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..WORKERS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("valise-hash-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            queue: Mutex::new(tx),
            decoy: tokio::sync::OnceCell::new(),
        }
    }

    /// A hash of a password nobody has (made once, on the pool), verified for unknown or
    /// disabled accounts so that a sign-in takes as long whether or not the account exists.
    pub async fn decoy(&self) -> Result<String> {
        self.decoy
            .get_or_try_init(|| self.hash(crate::accounts::new_secret()))
            .await
            .cloned()
    }

    fn send(&self, job: Job) -> Result<()> {
        self.queue
            .lock()
            .map_err(|_| PortalError::Internal("hashing queue lock poisoned".into()))?
            .send(job)
            .map_err(|_| PortalError::Internal("the password hashing threads stopped".into()))
    }

    /// A new argon2id PHC string for `password` (the `argon2` crate's default costs).
    pub async fn hash(&self, password: String) -> Result<String> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Hash { password, reply })?;
        rx.await
            .map_err(|_| PortalError::Internal("a password hashing thread stopped".into()))?
    }

    /// Whether `password` matches the PHC string `phc`. Any malformed hash is a mismatch.
    pub async fn verify(&self, password: String, phc: String) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .send(Job::Verify {
                password,
                phc,
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory = vec![Block::default(); Params::DEFAULT.block_count()];
    loop {
        // The lock is held only while waiting for the next job, not while hashing.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Hash { password, reply }) => {
                let _ = reply.send(hash_with(&mut memory, &password));
            }
            Ok(Job::Verify {
                password,
                phc,
                reply,
            }) => {
                let _ = reply.send(verify_with(&mut memory, &password, &phc));
            }
            Err(_) => return,
        }
    }
}

/// Grows `memory` to `blocks` if a hash needs more (kept for the next one).
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// PHC's base64: the standard alphabet without padding.
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

pub(crate) fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String> {
    let params = Params::DEFAULT;
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            blocks(memory, params.block_count()),
        )
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        B64.encode(salt),
        B64.encode(out)
    ))
}

pub(crate) fn verify_with(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&hash), hash.salt, hash.hash)
    else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut salt_buf = [0u8; Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let block_count = params.block_count();
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        blocks(memory, block_count),
    );
    // `Output`'s equality is constant-time.
    computed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn hashes_are_standard_phc_strings_that_argon2_itself_verifies() {
        let mut mem = Vec::new();
        let h = hash_with(&mut mem, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(verify_with(&mut mem, "correct horse battery", &h));
        assert!(!verify_with(&mut mem, "correct horse batterY", &h));
        assert!(!verify_with(&mut mem, "x", "not a hash"));
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_verify_with_reused_memory() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let old = Argon2::default()
            .hash_password(b"long enough password", &salt)
            .unwrap()
            .to_string();
        let mut mem = Vec::new();
        for _ in 0..3 {
            assert!(verify_with(&mut mem, "long enough password", &old));
            assert!(!verify_with(&mut mem, "long enough passwore", &old));
        }
        assert_eq!(mem.len(), Params::DEFAULT.block_count(), "memory reused");
    }

    #[tokio::test]
    async fn the_pool_answers_concurrent_requests() {
        let h = Arc::new(Hasher::new());
        let phc = h.hash("a passphrase nobody guesses".into()).await.unwrap();
        let checks: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                let phc = phc.clone();
                tokio::spawn(async move {
                    let pw = if i % 2 == 0 {
                        "a passphrase nobody guesses"
                    } else {
                        "wrong"
                    };
                    h.verify(pw.into(), phc).await
                })
            })
            .collect();
        for (i, c) in checks.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), i % 2 == 0);
        }
    }
}
