//! Verified-credentials cache: bcrypt costs tens of milliseconds of CPU per check and clients
//! send `Proxy-Authorization` on every request, so a result is remembered for a while
//! (Squid's `credentialsttl`).
//!
//! The key is a SHA-256 digest of user and password, so the cache holds no plain-text
//! password. Failures are remembered too, for at most [`NEGATIVE_TTL`]: an agent configured
//! with a wrong password retries in a loop, and each retry would otherwise cost a bcrypt run.
//! The whole cache is dropped when the htpasswd file changes, so a removed user or a changed
//! password takes effect at once (Squid keeps trusting cached credentials until the TTL ends).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The longest a failed check is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// Entries kept at most; beyond that expired ones are purged, and if none are, everything is
/// dropped (a flood of distinct wrong passwords must not grow memory without bound).
pub const MAX_ENTRIES: usize = 16_384;

pub type Key = [u8; 32];

pub fn key(user: &str, password: &[u8]) -> Key {
    let mut hasher = Sha256::new();
    // Length-prefixed so ("ab", "c") and ("a", "bc") differ.
    hasher.update((user.len() as u64).to_be_bytes());
    hasher.update(user.as_bytes());
    hasher.update(password);
    hasher.finalize().into()
}

#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Key, (bool, Instant)>,
    positive_ttl: Duration,
}

impl Cache {
    pub fn new(positive_ttl: Duration) -> Cache {
        Cache {
            entries: HashMap::new(),
            positive_ttl,
        }
    }

    /// The remembered outcome, if still fresh.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<bool> {
        match self.entries.get(key) {
            Some(&(ok, expires)) if now < expires => Some(ok),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, key: Key, ok: bool, now: Instant) {
        let ttl = if ok {
            self.positive_ttl
        } else {
            self.positive_ttl.min(NEGATIVE_TTL)
        };
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, (_, expires)| now < *expires);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (ok, now + ttl));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_caps_failures() {
        let mut cache = Cache::new(Duration::from_secs(3600));
        let now = Instant::now();
        cache.insert(key("a", b"good"), true, now);
        cache.insert(key("a", b"bad"), false, now);
        assert_eq!(cache.get(&key("a", b"good"), now), Some(true));
        assert_eq!(cache.get(&key("a", b"bad"), now), Some(false));
        let later = now + NEGATIVE_TTL + Duration::from_secs(1);
        assert_eq!(cache.get(&key("a", b"bad"), later), None);
        assert_eq!(cache.get(&key("a", b"good"), later), Some(true));
        assert_eq!(cache.get(&key("a", b"good"), now + Duration::from_secs(3601)), None);
    }

    #[test]
    fn keys_separate_user_and_password() {
        assert_ne!(key("ab", b"c"), key("a", b"bc"));
    }

    #[test]
    fn bounded() {
        let mut cache = Cache::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(key("u", i.to_string().as_bytes()), false, now);
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
