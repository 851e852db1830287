//! Jobs this loop created or deleted that its watch cache may not show yet. A pass reads the
//! Jobs from the cache; without this, a pass right after another could count a Job created a
//! moment ago as missing and start it twice, or delete a deleted Job again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

/// How long an expectation waits for the cache before it is dropped.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(30);

struct Expected {
    name: String,
    created: bool,
    at: Instant,
}

/// Created and deleted Jobs per object (`namespace/name`) not yet seen so in the cache.
#[derive(Default)]
pub struct Expectations {
    by_object: HashMap<String, Vec<Expected>>,
}

impl Expectations {
    /// Records a Job `name` of `object` created at `at`.
    pub fn created(&mut self, object: &str, name: String, at: Instant) {
        self.push(object, name, true, at);
    }

    /// Records a Job `name` of `object` deleted at `at`.
    pub fn deleted(&mut self, object: &str, name: String, at: Instant) {
        self.push(object, name, false, at);
    }

    fn push(&mut self, object: &str, name: String, created: bool, at: Instant) {
        let list = self.by_object.entry(object.to_owned()).or_default();
        list.push(Expected { name, created, at });
    }

    /// The cached Jobs of `object` as this loop expects them at `now`: Jobs it deleted are left
    /// out; the count of Jobs it created that the cache lacks is returned beside. Expectations
    /// the cache meets, or older than [`EXPECTATION_TTL`], are dropped.
    pub fn adjust(&mut self, object: &str, cached: Vec<Arc<Job>>, now: Instant) -> (Vec<Job>, u32) {
        let Some(list) = self.by_object.get_mut(object) else {
            return (cached.iter().map(|j| Job::clone(j)).collect(), 0);
        };
        let present = |name: &str| cached.iter().any(|j| j.name_any() == name);
        list.retain(|e| {
            now.duration_since(e.at) < EXPECTATION_TTL && e.created != present(&e.name)
        });
        let unseen = list.iter().filter(|e| e.created).count();
        let jobs = cached
            .iter()
            .filter(|j| !list.iter().any(|e| !e.created && e.name == j.name_any()))
            .map(|j| Job::clone(j))
            .collect();
        if list.is_empty() {
            self.by_object.remove(object);
        }
        (jobs, u32::try_from(unseen).unwrap_or(u32::MAX))
    }

    /// Forgets objects no longer watched.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.by_object.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Arc<Job> {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        Arc::new(j)
    }

    #[test]
    fn jobs_not_yet_cached_count_and_deleted_ones_are_left_out() {
        let mut e = Expectations::default();
        let t0 = Instant::now();
        e.created("ns/work", "work-a".into(), t0);
        e.created("ns/work", "work-b".into(), t0);
        e.deleted("ns/work", "work-old".into(), t0);
        // The cache shows a, not b yet, and still the deleted Job.
        let (jobs, unseen) = e.adjust("ns/work", vec![job("work-a"), job("work-old")], t0);
        assert_eq!(unseen, 1);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].name_any(), "work-a");
        // Another object is not touched.
        assert_eq!(e.adjust("ns/other", vec![job("x")], t0).1, 0);
        // The cache catches up: nothing left to expect.
        let (jobs, unseen) = e.adjust("ns/work", vec![job("work-a"), job("work-b")], t0);
        assert_eq!((jobs.len(), unseen), (2, 0));
        assert!(e.by_object.is_empty());
        // An expectation the cache never meets expires.
        e.created("ns/work", "work-c".into(), t0);
        let later = t0 + EXPECTATION_TTL;
        assert_eq!(e.adjust("ns/work", vec![], later).1, 0);
    }
}
