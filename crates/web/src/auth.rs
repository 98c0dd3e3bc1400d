//! Sign-in: passwords, session cookies, CSRF tokens and the brake on
//! password guessing.
//!
//! - Passwords are argon2 hashes (`mailtrail user add`); verifying one costs
//!   tens of milliseconds on purpose, so it runs on a blocking thread.
//! - A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict`
//!   cookie (`Secure` when the console is served over HTTPS); the store keeps
//!   only its BLAKE3 hash ([`mailtrail_store::console`]).
//! - Every form carries the session's CSRF token; the sign-in form, which
//!   has no session yet, carries a token that must equal a cookie set with
//!   the form (double submit), so another site cannot sign a browser in.
//! - Failed sign-ins are counted per client address and per user name:
//!   after [`FREE_FAILURES`] within [`FAILURE_WINDOW`] each further attempt
//!   must wait (2 s, 4 s, 8 s, … up to [`MAX_WAIT`]); a success clears the count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::{PasswordHash, PasswordVerifier};

pub const SESSION_COOKIE: &str = "mt_session";
pub const LOGIN_COOKIE: &str = "mt_login";
pub const LANG_COOKIE: &str = "mt_lang";

/// Failures allowed before waits begin.
pub const FREE_FAILURES: u32 = 5;
/// Failures older than this are forgotten.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest wait imposed.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// A random token, hex (256 bits).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What every API token starts with, so that a token found in a script or
/// a log is recognisable as a mailtrail token (and secret scanners can
/// match it).
pub const API_TOKEN_PREFIX: &str = "mtk_";
/// How requests made with an API token appear in the audit log:
/// `token:NAME`. Account names cannot contain `:`.
pub const TOKEN_USER_PREFIX: &str = "token:";

/// A new API token: the prefix and 256 random bits, hex.
pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_token())
}

/// The token of an `Authorization: Bearer …` header value, if it is one
/// of ours.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(API_TOKEN_PREFIX)).then_some(token)
}

/// How a session token is kept in the store.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Compare without leaking where two tokens differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Check a password against an argon2 PHC hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hash a password for a new account (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// The value of one cookie in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Counts failed sign-ins per key (client address, user name).
#[derive(Debug, Default)]
pub struct Brake {
    failures: Mutex<HashMap<String, Failures>>,
}

impl Brake {
    /// How long `key` must still wait before its next attempt, if at all.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().ok()?;
        let f = map.get(key)?;
        if f.first
            .is_none_or(|first| now.duration_since(first) > FAILURE_WINDOW)
        {
            return None;
        }
        let over = f.count.checked_sub(FREE_FAILURES).filter(|o| *o > 0)?;
        let wait = Duration::from_secs(1u64 << over.min(10)).min(MAX_WAIT);
        let since = now.duration_since(f.last?);
        wait.checked_sub(since).filter(|d| !d.is_zero())
    }

    pub fn failed(&self, key: &str, now: Instant) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        // Bounded: an attacker spraying addresses cannot grow this forever.
        if map.len() > 100_000 {
            map.retain(|_, f| {
                f.first
                    .is_some_and(|t| now.duration_since(t) < FAILURE_WINDOW)
            });
        }
        let f = map.entry(key.to_string()).or_default();
        if f.first
            .is_none_or(|first| now.duration_since(first) > FAILURE_WINDOW)
        {
            *f = Failures::default();
            f.first = Some(now);
        }
        f.count += 1;
        f.last = Some(now);
    }

    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..63]));
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("正しいパスワード").unwrap();
        assert!(verify_password(&hash, "正しいパスワード"));
        assert!(!verify_password(&hash, "wrong"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn cookies_are_read_and_written() {
        let header = Some("a=1; mt_session=abc; mt_lang=ja");
        assert_eq!(cookie(header, "mt_session"), Some("abc"));
        assert_eq!(cookie(header, "mt_lang"), Some("ja"));
        assert_eq!(cookie(header, "missing"), None);
        let set = set_cookie("mt_session", "t", Duration::from_secs(60), true);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.ends_with("; Secure"));
    }

    #[test]
    fn the_brake_engages_after_free_failures_and_releases_on_success() {
        let brake = Brake::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(brake.wait("10.0.0.9", t0), None);
            brake.failed("10.0.0.9", t0);
        }
        assert_eq!(
            brake.wait("10.0.0.9", t0),
            None,
            "the fifth failure is free"
        );
        brake.failed("10.0.0.9", t0);
        assert!(brake.wait("10.0.0.9", t0).is_some());
        brake.failed("10.0.0.9", t0);
        let wait = brake.wait("10.0.0.9", t0).unwrap();
        assert!(wait >= Duration::from_secs(2), "{wait:?}");
        assert_eq!(brake.wait("10.0.0.10", t0), None, "per key");
        brake.succeeded("10.0.0.9");
        assert_eq!(brake.wait("10.0.0.9", t0), None);
    }
}
