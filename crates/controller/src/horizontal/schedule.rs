//! When each object is next due, and what this process remembers of its status between
//! decisions: `namespace/name` → [`ObjectState`], in independently locked shards.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ballast_api::horizontal::HorizontalAutoscalerStatus;

#[derive(Clone, Debug)]
pub(super) struct ObjectState {
    pub(super) uid: String,
    pub(super) generation: Option<i64>,
    /// When the next decision is due.
    pub(super) due: Instant,
    /// Consecutive failed decisions (backoff exponent).
    pub(super) failures: u32,
    /// The status as last written and as last decided ([`persist`]).
    pub(super) memo: Option<Memo>,
}

/// What this process knows of an object's status beyond its watch: the last decided status
/// (with the history that was not written because only time moved) and the status as written.
#[derive(Clone, Debug)]
pub(super) struct Memo {
    pub(super) written: Option<Arc<HorizontalAutoscalerStatus>>,
    pub(super) decided: Arc<HorizontalAutoscalerStatus>,
}

const SHARDS: usize = 32;

/// `namespace/name` → schedule, in independently locked shards.
pub(super) struct Schedule {
    shards: Vec<Mutex<HashMap<String, ObjectState>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Schedule {
    pub(super) fn new() -> Self {
        Schedule {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }
    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, ObjectState>> {
        self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn get(&self, key: &str) -> Option<ObjectState> {
        self.shard(key).get(key).cloned()
    }
    pub(super) fn set(&self, key: &str, state: ObjectState) {
        self.shard(key).insert(key.to_owned(), state);
    }
    /// Makes `key` due now (the activation poll saw work for it).
    pub(super) fn make_due(&self, key: &str) {
        if let Some(s) = self.shard(key).get_mut(key) {
            s.due = Instant::now();
        }
    }
    pub(super) fn remove(&self, key: &str) {
        self.shard(key).remove(key);
    }
    pub(super) fn keys(&self) -> Vec<String> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
