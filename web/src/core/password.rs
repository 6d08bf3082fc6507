//! Password hashing: argon2id with OWASP's parameters (m = 19456 KiB, t = 2, p = 1), stored as
//! PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, 16-byte random salt, 32-byte
//! output). Hashing is deliberately slow (tens of milliseconds): callers run it off the request
//! threads, on the hashing pool (`core::session::HashingPool`).
//!
//! Each hash fills 19 MiB of memory. A pool thread that called [`keep_memory_on_this_thread`]
//! allocates that memory once and reuses it for every hash; elsewhere each hash allocates and frees
//! its own. Freed 19 MiB blocks raise glibc's dynamic mmap threshold, so allocating one per hash on
//! many threads left about 1.3 GB in the per-thread arenas after 1,000 sign-ins.

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;

/// OWASP's minimum for argon2id: 19 MiB of memory, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// Salt and output lengths in bytes.
const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;
/// The most memory a stored hash may ask a verification for (its parameters are read from it).
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// Fewest characters of a new password, white space around it not counted.
pub const MIN_CHARS: usize = 8;
/// Longest new password, in bytes (hashing cost does not depend on it, the request body does).
pub const MAX_BYTES: usize = 1024;

/// Whether a new password may be set: at least [`MIN_CHARS`] once surrounding white space is
/// trimmed (eight spaces, or "   abc    ", are no password), and at most [`MAX_BYTES`]. The
/// password is stored as given, spaces included.
pub fn acceptable(password: &str) -> bool {
    password.trim().chars().count() >= MIN_CHARS && password.len() <= MAX_BYTES
}

thread_local! {
    /// This thread's argon2 memory, kept between hashes (`None`: allocate per hash).
    static MEMORY: RefCell<Option<Vec<Block>>> = const { RefCell::new(None) };
}

/// Makes this thread keep its argon2 memory between hashes (the hashing pool's threads; the
/// memory lives as long as the thread).
pub fn keep_memory_on_this_thread() {
    MEMORY.with(|m| {
        let mut kept = m.borrow_mut();
        if kept.is_none() {
            *kept = Some(Vec::new());
        }
    });
}

fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).expect("valid argon2 parameters")
}

/// Runs argon2 into `out`, with this thread's kept memory if it keeps one.
fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let blocks = argon.params().block_count();
    MEMORY.with(|m| match m.borrow_mut().as_mut() {
        Some(memory) => {
            if memory.len() < blocks {
                memory.resize(blocks, Block::new());
            }
            argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        }
        None => argon.hash_password_into(password, salt, out),
    })
}

/// The PHC string of a new hash of `password` with a random salt.
pub fn hash(password: &str) -> String {
    let params = params();
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    // Only absurd parameters or lengths fail, and they are fixed above.
    compute(&argon, password.as_bytes(), &salt, &mut out).expect("argon2 hashing");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("encodable argon2 parameters"),
        salt: Some(Salt::new(&salt).expect("a 16-byte salt")),
        hash: Some(Output::new(&out).expect("a 32-byte output")),
    }
    .to_string()
}

/// Whether `password` matches the stored PHC string (false for a malformed one). Hashes with other
/// argon2 parameters verify with theirs (up to 256 MiB of memory).
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    // `Output`'s equality is constant-time.
    compute(&argon, password.as_bytes(), salt, &mut out).is_ok() && Output::new(&out).is_ok_and(|o| o == *expected)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn blank_and_padded_short_passwords_are_not_acceptable() {
        for refused in ["", "        ", "\t\n\r \t\n\r ", "   abc    ", "\u{a0}\u{2003}\u{3000}1234567", "1234567"] {
            assert!(!acceptable(refused), "{refused:?}");
        }
        for accepted in ["12345678", "  correct horse  ", "ação-çé-1"] {
            assert!(acceptable(accepted), "{accepted:?}");
        }
        assert!(!acceptable(&"x".repeat(MAX_BYTES + 1)));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn hashes_are_those_of_the_argon2_crate_with_or_without_kept_memory() {
        let library = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        // Stored before this module kept memory: hashed by the crate's own PHC hasher.
        let stored = library.hash_password(b"battery staple").expect("hash").to_string();
        assert!(verify("battery staple", &stored));
        assert!(!verify("battery stapler", &stored));
        let ours = hash("battery staple");
        assert!(library.verify_password(b"battery staple", ours.as_str()).is_ok());
        // On a pool thread: the same results, twice with the same memory.
        std::thread::spawn(move || {
            keep_memory_on_this_thread();
            for _ in 0..2 {
                assert!(verify("battery staple", &stored));
                assert!(!verify("battery stapler", &stored));
                let again = hash("battery staple");
                assert!(library.verify_password(b"battery staple", again.as_str()).is_ok());
                assert!(library.verify_password(b"battery stapler", again.as_str()).is_err());
            }
            MEMORY.with(|m| assert_eq!(m.borrow().as_ref().map(Vec::len), Some(19_456)));
        })
        .join()
        .expect("the pool thread");
    }
}
