//! Salted password hashes: PBKDF2-HMAC-SHA256, written as
//! `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>` (what `raft-node hash-password` prints
//! and the config file's `password_hash` holds). A plaintext password is never stored.

use std::fmt;
use std::num::NonZeroU32;

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

const SCHEME: &str = "pbkdf2-sha256";
const ALG: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Iterations of a new hash: about 20–40 ms of one core here, paid once per connection
/// (a verified password is remembered, see [`super::Auth`]) and on every wrong guess.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
/// Fewer iterations than this make a hash too cheap to guess: refused when read.
pub const MIN_ITERATIONS: u32 = 1_000;

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &[u8], iterations: u32) -> Result<PasswordHash, String> {
        let iterations = checked_iterations(iterations)?;
        let mut salt = vec![0; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "the system's random number generator failed".to_string())?;
        let mut hash = vec![0; HASH_LEN];
        pbkdf2::derive(ALG, iterations, &salt, password, &mut hash);
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Reads the text form.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let bad = |why: &str| {
            Err(format!(
                "password hash: {why} (expected {SCHEME}$ITERATIONS$SALT$HASH, as `raft-node hash-password` prints)"
            ))
        };
        let parts: Vec<&str> = text.trim().split('$').collect();
        let [scheme, iterations, salt, hash] = parts[..] else {
            return bad("wrong number of fields");
        };
        if scheme != SCHEME {
            return bad("unknown scheme");
        }
        let Ok(iterations) = iterations.parse::<u32>() else {
            return bad("iterations are not a number");
        };
        let (Some(salt), Some(hash)) = (from_hex(salt), from_hex(hash)) else {
            return bad("salt and hash must be hex");
        };
        if salt.len() < 8 || hash.len() != HASH_LEN {
            return bad("salt or hash of the wrong length");
        }
        Ok(PasswordHash {
            iterations: checked_iterations(iterations)?,
            salt,
            hash,
        })
    }

    /// Whether `password` is the one hashed (in constant time).
    pub fn verify(&self, password: &[u8]) -> bool {
        pbkdf2::verify(ALG, self.iterations, &self.salt, password, &self.hash).is_ok()
    }
}

fn checked_iterations(n: u32) -> Result<NonZeroU32, String> {
    NonZeroU32::new(n)
        .filter(|n| n.get() >= MIN_ITERATIONS)
        .ok_or_else(|| format!("password hash: at least {MIN_ITERATIONS} iterations"))
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}${}${}${}",
            self.iterations,
            to_hex(&self.salt),
            to_hex(&self.hash)
        )
    }
}

/// Never shows the hash itself (logs, panics).
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({SCHEME}, {} iterations)", self.iterations)
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verify() {
        let h = PasswordHash::new(b"s3cret", MIN_ITERATIONS).unwrap();
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cret "));
        assert!(!h.verify(b""));
        let text = h.to_string();
        assert!(text.starts_with("pbkdf2-sha256$1000$"), "{text}");
        let back = PasswordHash::parse(&text).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(b"s3cret"));
        // The same password hashes differently each time (salted).
        assert_ne!(PasswordHash::new(b"s3cret", MIN_ITERATIONS).unwrap(), h);
        assert!(!format!("{h:?}").contains(&to_hex(&h.hash)));
    }

    #[test]
    fn damaged_text_is_refused() {
        let good = PasswordHash::new(b"x", MIN_ITERATIONS).unwrap().to_string();
        let fields: Vec<&str> = good.split('$').collect();
        for bad in [
            String::new(),
            "s3cret".into(),
            good.replace("pbkdf2-sha256", "md5"),
            format!("{}$999${}${}", fields[0], fields[2], fields[3]),
            format!("{}$x${}${}", fields[0], fields[2], fields[3]),
            format!("{}${}$zz${}", fields[0], fields[1], fields[3]),
            format!("{}${}${}${}00", fields[0], fields[1], fields[2], fields[3]),
            format!("{good}$"),
        ] {
            assert!(PasswordHash::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
