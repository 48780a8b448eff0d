//! A small time-bounded cache for rows that nearly every request needs (apps): each process
//! reads such a row at most once per `ttl`, and sees a change to it at most `ttl` late.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries younger than `ttl`; when more than `max` keys are held, the cache is emptied (it
/// refills with the keys in use). A `ttl` of zero caches nothing. Callers pass the time
/// (`Instant::now()`), so tests need no sleeping.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(read, _)| now.saturating_duration_since(*read) < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub fn put(&self, key: K, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max {
                entries.clear();
            }
            entries.insert(key, (now, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_a_zero_ttl_caches_nothing() {
        let t0 = Instant::now();
        let cache = TtlCache::new(Duration::from_secs(2), 2);
        cache.put(1, "a", t0);
        assert_eq!(cache.get(&1, t0 + Duration::from_millis(1999)), Some("a"));
        assert_eq!(cache.get(&1, t0 + Duration::from_secs(2)), None);
        let off = TtlCache::new(Duration::ZERO, 2);
        off.put(1, "a", t0);
        assert_eq!(off.get(&1, t0), None);
    }

    #[test]
    fn a_full_cache_starts_again() {
        let t0 = Instant::now();
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.put(1, "a", t0);
        cache.put(2, "b", t0);
        cache.put(3, "c", t0);
        let got = (cache.get(&1, t0), cache.get(&2, t0), cache.get(&3, t0));
        assert_eq!(got, (None, None, Some("c")));
    }
}
