//! Who may use the client port, and for what. Redis's model, so existing clients work: a
//! connection starts unauthenticated when any password is configured and authenticates with
//! `AUTH [user] password` (or `HELLO 2 AUTH user password`). `--requirepass` sets the password
//! of the `default` user (what the one-argument `AUTH` logs in as); the config file adds named
//! users with a role and a salted password hash. With neither, every connection is the
//! `default` user with every right, as in Redis.
//!
//! Roles: `data` may run the key-value commands and read the node's state (`INFO`,
//! `RAFT.INFO`); `admin` may also change the cluster (`RAFT.MEMBER`, `RAFT.TRANSFER`,
//! `RAFT.SNAPSHOT`, `RAFT.FAULT`).

mod password;
mod throttle;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ring::hmac;
use ring::rand::SystemRandom;
use serde::Deserialize;

pub use password::{DEFAULT_ITERATIONS, MIN_ITERATIONS, PasswordHash};

use throttle::Throttle;

/// The user `AUTH <password>` and `--requirepass` mean.
pub const DEFAULT_USER: &str = "default";

/// Redis's reply to a command before authentication.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's reply to a wrong user name or password.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Key-value commands and reading the node's state.
    Data,
    /// Everything, cluster administration included.
    Admin,
}

/// A user of the config file (`[[users]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The name `AUTH` gives.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// `pbkdf2-sha256$...`, as `raft-node hash-password` prints.
    pub password_hash: String,
}

/// A password given in plaintext (`--requirepass`): `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// An authenticated client: the user it logged in as and that user's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: Arc<str>,
    /// Its rights.
    pub role: Role,
}

struct User {
    role: Role,
    hash: PasswordHash,
}

/// The users of one node, and what failed attempts to log in cost.
pub struct Auth {
    users: HashMap<String, User>,
    /// Keyed digests of passwords already verified, per user: a client that reconnects with a
    /// right password pays one HMAC, not the slow hash again. The key is random per process.
    verified: Mutex<HashMap<String, hmac::Tag>>,
    key: hmac::Key,
    throttle: Mutex<Throttle>,
}

/// Names and roles only: never a hash or a key.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<_> = self.users.iter().map(|(n, u)| (n, u.role)).collect();
        users.sort();
        f.debug_struct("Auth").field("users", &users).finish()
    }
}

/// Why a command may not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Not authenticated.
    NoAuth,
    /// Authenticated as a user without the right.
    NoPerm {
        /// The user.
        user: Arc<str>,
        /// The command.
        command: &'static str,
    },
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::NoAuth => f.write_str(NOAUTH),
            // Redis's text.
            Denied::NoPerm { user, command } => write!(
                f,
                "NOPERM User {user} has no permissions to run the '{command}' command"
            ),
        }
    }
}

/// Commands a connection may send before it authenticates.
const WITHOUT_AUTH: &[&str] = &["auth", "hello", "ping", "quit"];
/// Commands that change the cluster: the admin role's.
const ADMIN_ONLY: &[&str] = &[
    "raft.member",
    "raft.transfer",
    "raft.snapshot",
    "raft.fault",
];

impl Auth {
    /// The users: `requirepass` for `default` (an admin), plus those of the config file.
    pub fn new(requirepass: Option<&str>, users: &[UserConfig]) -> Result<Auth, String> {
        let mut map = HashMap::new();
        if let Some(pass) = requirepass {
            if pass.is_empty() {
                return Err("requirepass must not be empty".into());
            }
            let hash = PasswordHash::new(pass.as_bytes(), DEFAULT_ITERATIONS)?;
            map.insert(
                DEFAULT_USER.to_string(),
                User {
                    role: Role::Admin,
                    hash,
                },
            );
        }
        for u in users {
            if u.name.is_empty() || u.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("user name {:?} is empty or has blanks", u.name));
            }
            let hash = PasswordHash::parse(&u.password_hash)
                .map_err(|e| format!("user {}: {e}", u.name))?;
            if map.contains_key(&u.name) {
                return Err(format!(
                    "user {} is configured twice (requirepass is the user \"default\")",
                    u.name
                ));
            }
            map.insert(u.name.clone(), User { role: u.role, hash });
        }
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut key)
            .map_err(|_| "the system's random number generator failed".to_string())?;
        Ok(Auth {
            users: map,
            verified: Mutex::default(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            throttle: Mutex::default(),
        })
    }

    /// Whether clients must authenticate.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// A new connection's identity: none when clients must authenticate, else `default`
    /// with every right.
    pub fn initial(&self) -> Option<Identity> {
        (!self.required()).then(|| Identity {
            user: DEFAULT_USER.into(),
            role: Role::Admin,
        })
    }

    /// Whether `who` may run `command` (a canonical lowercase name).
    pub fn check(who: Option<&Identity>, command: &'static str) -> Result<(), Denied> {
        if WITHOUT_AUTH.contains(&command) {
            return Ok(());
        }
        let Some(who) = who else {
            return Err(Denied::NoAuth);
        };
        if who.role != Role::Admin && ADMIN_ONLY.contains(&command) {
            return Err(Denied::NoPerm {
                user: who.user.clone(),
                command,
            });
        }
        Ok(())
    }

    /// Checks a user name and password from `ip`: after repeated failures from that address
    /// the answer is delayed. Counts the outcome in `raft_client_auth_total`.
    pub async fn login(&self, ip: IpAddr, user: &[u8], password: &[u8]) -> Option<Identity> {
        let delay = self.lock_throttle().delay(ip, Instant::now());
        if !delay.is_zero() {
            metrics::counter!("raft_client_auth_delayed_total").increment(1);
            tokio::time::sleep(delay).await;
        }
        let found = std::str::from_utf8(user)
            .ok()
            .and_then(|name| Some((name, self.users.get(name)?)));
        let ok = match found {
            Some((name, u)) => self.verify(name, u, password).await,
            None => {
                // Unknown user: spend the same time as a wrong password would.
                let hash = self.users.values().next().map(|u| u.hash.clone());
                if let Some(h) = hash {
                    let pw = password.to_vec();
                    let _ = tokio::task::spawn_blocking(move || h.verify(&pw)).await;
                }
                false
            }
        };
        let result = if ok { "ok" } else { "wrongpass" };
        metrics::counter!("raft_client_auth_total", "result" => result).increment(1);
        if ok {
            let (name, u) = found?;
            Some(Identity {
                user: name.into(),
                role: u.role,
            })
        } else {
            self.lock_throttle().failed(ip, Instant::now());
            tracing::info!(client = %ip, user = %String::from_utf8_lossy(user), "authentication failed");
            None
        }
    }

    /// The rights of a user a follower forwarded a request for (the follower authenticated
    /// it; peers are trusted through mutual TLS). `None`: the user is unknown here.
    pub fn forwarded(&self, user: &str) -> Result<Option<Identity>, Denied> {
        if !self.required() {
            return Ok(self.initial());
        }
        match self.users.get(user) {
            Some(u) => Ok(Some(Identity {
                user: user.into(),
                role: u.role,
            })),
            None => Err(Denied::NoAuth),
        }
    }

    async fn verify(&self, name: &str, user: &User, password: &[u8]) -> bool {
        let mut msg = Vec::with_capacity(name.len() + 1 + password.len());
        msg.extend_from_slice(name.as_bytes());
        msg.push(0);
        msg.extend_from_slice(password);
        let known = self.lock_verified().get(name).cloned();
        if let Some(tag) = known {
            if hmac::verify(&self.key, &msg, tag.as_ref()).is_ok() {
                return true;
            }
        }
        // The slow hash runs beside the runtime's threads, not on them.
        let (hash, pw) = (user.hash.clone(), password.to_vec());
        let ok = tokio::task::spawn_blocking(move || hash.verify(&pw))
            .await
            .unwrap_or(false);
        if ok {
            self.lock_verified()
                .insert(name.to_string(), hmac::sign(&self.key, &msg));
        }
        ok
    }

    fn lock_throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        // The lock guards plain counters: a panic while holding it leaves them usable.
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, hmac::Tag>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<UserConfig> {
        let hash = |p: &str| {
            PasswordHash::new(p.as_bytes(), MIN_ITERATIONS)
                .unwrap()
                .to_string()
        };
        vec![
            UserConfig {
                name: "app".into(),
                role: Role::Data,
                password_hash: hash("app-pw"),
            },
            UserConfig {
                name: "ops".into(),
                role: Role::Admin,
                password_hash: hash("ops-pw"),
            },
        ]
    }

    #[test]
    fn rights_by_role() {
        let data = Identity {
            user: "app".into(),
            role: Role::Data,
        };
        let admin = Identity {
            user: "ops".into(),
            role: Role::Admin,
        };
        for cmd in ["auth", "hello", "ping", "quit"] {
            assert_eq!(Auth::check(None, cmd), Ok(()));
        }
        for cmd in ["get", "set", "raft.info", "info", "raft.member"] {
            assert_eq!(Auth::check(None, cmd), Err(Denied::NoAuth));
        }
        assert_eq!(Auth::check(Some(&data), "set"), Ok(()));
        assert_eq!(Auth::check(Some(&data), "raft.info"), Ok(()));
        for cmd in ADMIN_ONLY {
            let e = Auth::check(Some(&data), cmd).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("NOPERM User app has no permissions to run the '{cmd}' command")
            );
            assert_eq!(Auth::check(Some(&admin), cmd), Ok(()));
        }
    }

    #[tokio::test]
    async fn login_checks_user_and_password() {
        let auth = Auth::new(Some("root-pw"), &users()).unwrap();
        assert!(auth.required());
        assert_eq!(auth.initial(), None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let app = auth.login(ip, b"app", b"app-pw").await.unwrap();
        assert_eq!(app.role, Role::Data);
        // The second time comes from the cache of verified passwords.
        assert_eq!(auth.login(ip, b"app", b"app-pw").await, Some(app));
        assert_eq!(auth.login(ip, b"app", b"ops-pw").await, None);
        assert_eq!(auth.login(ip, b"nobody", b"app-pw").await, None);
        assert_eq!(auth.login(ip, b"\xff", b"app-pw").await, None);
        let root = auth.login(ip, DEFAULT_USER.as_bytes(), b"root-pw").await;
        assert_eq!(root.unwrap().role, Role::Admin);
        assert_eq!(auth.forwarded("ops").unwrap().unwrap().role, Role::Admin);
        assert_eq!(auth.forwarded("nobody"), Err(Denied::NoAuth));
    }

    #[test]
    fn no_users_means_open_and_bad_users_are_refused() {
        let open = Auth::new(None, &[]).unwrap();
        assert!(!open.required());
        assert_eq!(open.initial().unwrap().role, Role::Admin);
        assert_eq!(open.forwarded("").unwrap().unwrap().role, Role::Admin);
        assert!(Auth::new(Some(""), &[]).is_err());
        let mut twice = users();
        twice.push(twice[0].clone());
        assert!(Auth::new(None, &twice).is_err());
        let mut bad = users();
        bad[0].password_hash = "plaintext".into();
        assert!(Auth::new(None, &bad).unwrap_err().contains("user app"));
        bad = users();
        bad[0].name = "a b".into();
        assert!(Auth::new(None, &bad).is_err());
    }
}
