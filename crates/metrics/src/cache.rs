//! A small bounded cache of clients (connections) or fetched values, keyed by endpoint.
//!
//! Entries expire after `ttl` without use (clients) or after `ttl` since they were stored
//! (values, with [`Cache::get_fresh`]); when full, the least recently used entry goes. The lock
//! is never held across an await: a value is created outside it, and when two reads race to
//! create the same entry, the first stored wins and the other is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Cache<V> {
    entries: Mutex<HashMap<String, Entry<V>>>,
    capacity: usize,
    ttl: Duration,
}

struct Entry<V> {
    value: V,
    stored: Instant,
    used: Instant,
}

impl<V: Clone> Cache<V> {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<V>>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep using it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry, if used within `ttl`; refreshes its last use.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(e) if now.duration_since(e.used) <= self.ttl => {
                e.used = now;
                Some(e.value.clone())
            }
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// The entry, if stored within `ttl` (for values that go stale, like secrets).
    pub(crate) fn get_fresh(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(e) if now.duration_since(e.stored) <= self.ttl => {
                e.used = now;
                Some(e.value.clone())
            }
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` unless a live entry is already there; returns the entry kept.
    pub(crate) fn insert(&self, key: &str, value: V) -> V {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(e) = map.get_mut(key)
            && now.duration_since(e.used) <= self.ttl
        {
            e.used = now;
            return e.value.clone();
        }
        if map.len() >= self.capacity && !map.contains_key(key) {
            let ttl = self.ttl;
            map.retain(|_, e| now.duration_since(e.used) <= ttl);
            if map.len() >= self.capacity
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            key.to_owned(),
            Entry {
                value: value.clone(),
                stored: now,
                used: now,
            },
        );
        value
    }

    /// Replaces the entry (a reconnected client, a re-read value).
    pub(crate) fn replace(&self, key: &str, value: V) {
        self.remove(key);
        self.insert(key, value);
    }

    pub(crate) fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A cache key that does not keep a secret in clear: `prefix#hash(secret)`.
pub(crate) fn key_with_secret(prefix: &str, secret: Option<&str>) -> String {
    match secret {
        None => prefix.to_owned(),
        Some(s) => {
            let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
            let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{prefix}#{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_least_recently_used_goes_first() {
        let c = Cache::new(2, Duration::from_secs(60));
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!(c.get("a"), Some(1)); // a is now more recent than b
        c.insert("c", 3);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("c"), Some(3));
    }

    #[test]
    fn first_stored_wins_and_replace_overrides() {
        let c = Cache::new(4, Duration::from_secs(60));
        assert_eq!(c.insert("a", 1), 1);
        assert_eq!(c.insert("a", 2), 1);
        c.replace("a", 3);
        assert_eq!(c.get("a"), Some(3));
        c.remove("a");
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn entries_expire() {
        let c = Cache::new(4, Duration::ZERO);
        c.insert("a", 1);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get_fresh("a"), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn secret_keys_do_not_hold_the_secret() {
        let k = key_with_secret("redis://h:1/0", Some("hunter2"));
        assert!(!k.contains("hunter2"));
        assert_ne!(k, key_with_secret("redis://h:1/0", Some("other")));
        assert_eq!(key_with_secret("x", None), "x");
    }
}
