//! The usage state of one `VerticalAutoscaler`: one [`ContainerState`] per container name of its
//! pods (as the VPA aggregates: every pod of the workload feeds the same container histograms),
//! and what was already counted, so a sample read twice (metrics APIs serve the same window until
//! the next scrape) or an OOM kill seen on every resync counts once.
//!
//! The live controller and the simulator feed it observations ([`UsageSample`], [`OomKill`]) and
//! read [`Workload::tracked`] for [`crate::recommend`]. Pure: no clock, every time is an argument.

use std::collections::{BTreeMap, HashMap};

use crate::aggregate::ContainerState;
use crate::recommend::TrackedContainer;
use crate::settings::Settings;

/// The usage of one container of one pod over a metrics window.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSample<'a> {
    /// The pod's uid (a pod recreated under the same name is another pod).
    pub pod_uid: &'a str,
    pub container: &'a str,
    /// Unix second the window ends (the metrics API's `timestamp`).
    pub at: i64,
    /// Cores used on average over the window (None: not reported).
    pub cpu_cores: Option<f64>,
    /// Working-set bytes (None: not reported).
    pub memory_bytes: Option<f64>,
    /// The container's CPU request, cores (0 when it has none).
    pub cpu_request: f64,
}

/// An OOM kill read from a pod's status (`lastState.terminated.reason: OOMKilled`).
#[derive(Debug, Clone, PartialEq)]
pub struct OomKill<'a> {
    pub pod_uid: &'a str,
    pub container: &'a str,
    /// Unix second the container finished.
    pub at: i64,
    /// The container's memory request, bytes (0 when it has none).
    pub memory_request: f64,
}

/// What one [`Workload::observe`] call counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Samples added (CPU and memory of one container count once).
    pub samples: u32,
    /// Samples already counted (same window), or out of order.
    pub repeated: u32,
    /// OOM kills added.
    pub oom_kills: u32,
}

/// Usage histories of one object's containers.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    containers: BTreeMap<String, ContainerState>,
    /// (pod uid, container) → unix second of the last sample counted.
    last_sample: HashMap<(String, String), i64>,
    /// (pod uid, container) → unix second of the last OOM kill counted.
    last_oom: HashMap<(String, String), i64>,
}

impl Workload {
    /// An empty workload.
    pub fn new() -> Workload {
        Workload::default()
    }

    /// A workload whose containers start from restored states (checkpoints).
    pub fn restored(containers: BTreeMap<String, ContainerState>) -> Workload {
        Workload {
            containers,
            ..Workload::default()
        }
    }

    /// Counts the samples and OOM kills not counted before. A sample is new when its window ends
    /// after the last one counted for the same pod and container.
    pub fn observe(
        &mut self,
        samples: &[UsageSample<'_>],
        ooms: &[OomKill<'_>],
        settings: &Settings,
    ) -> Observed {
        let mut out = Observed::default();
        for s in samples {
            let key = (s.pod_uid.to_owned(), s.container.to_owned());
            if self.last_sample.get(&key).is_some_and(|last| s.at <= *last) {
                out.repeated += 1;
                continue;
            }
            self.last_sample.insert(key, s.at);
            let state = self.state_mut(s.container, settings);
            if let Some(cores) = s.cpu_cores {
                state.add_cpu(s.at, cores, s.cpu_request);
            }
            if let Some(bytes) = s.memory_bytes {
                state.add_memory(s.at, bytes);
            }
            out.samples += 1;
        }
        for o in ooms {
            let key = (o.pod_uid.to_owned(), o.container.to_owned());
            if self.last_oom.get(&key).is_some_and(|last| o.at <= *last) {
                continue;
            }
            self.last_oom.insert(key, o.at);
            self.state_mut(o.container, settings)
                .add_oom(o.at, o.memory_request);
            out.oom_kills += 1;
        }
        out
    }

    /// Forgets the pods not in `live` (their marks only: their samples stay in the histograms).
    pub fn retain_pods(&mut self, live: &dyn Fn(&str) -> bool) {
        self.last_sample.retain(|(uid, _), _| live(uid));
        self.last_oom.retain(|(uid, _), _| live(uid));
    }

    /// Every container with its state, by name, for [`crate::recommend`].
    pub fn tracked(&self) -> Vec<TrackedContainer<'_>> {
        self.containers
            .iter()
            .map(|(name, state)| TrackedContainer { name, state })
            .collect()
    }

    /// The state of one container, if it was ever observed or restored.
    pub fn container(&self, name: &str) -> Option<&ContainerState> {
        self.containers.get(name)
    }

    /// Container names and states (for checkpoints).
    pub fn containers(&self) -> impl Iterator<Item = (&str, &ContainerState)> {
        self.containers.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// Drops the containers not in `names` (renamed or removed from the pod template).
    pub fn retain_containers(&mut self, names: &dyn Fn(&str) -> bool) {
        self.containers.retain(|n, _| names(n));
    }

    /// True when no container was observed or restored.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    fn state_mut(&mut self, container: &str, settings: &Settings) -> &mut ContainerState {
        self.containers
            .entry(container.to_owned())
            .or_insert_with(|| ContainerState::new(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(uid: &'a str, at: i64, cores: f64) -> UsageSample<'a> {
        UsageSample {
            pod_uid: uid,
            container: "app",
            at,
            cpu_cores: Some(cores),
            memory_bytes: Some(2e8),
            cpu_request: 0.5,
        }
    }

    #[test]
    fn a_window_counts_once_per_pod() {
        let s = Settings::default();
        let mut w = Workload::new();
        let cases = [
            // (samples, expected added, expected repeated)
            (vec![sample("a", 100, 0.2), sample("b", 100, 0.3)], 2, 0),
            (vec![sample("a", 100, 0.2), sample("b", 100, 0.3)], 0, 2),
            (vec![sample("a", 160, 0.2), sample("b", 90, 0.3)], 1, 1),
        ];
        for (samples, added, repeated) in cases {
            let o = w.observe(&samples, &[], &s);
            assert_eq!((o.samples, o.repeated), (added, repeated));
        }
        assert_eq!(w.container("app").map(|c| c.history().1), Some(3));
    }

    #[test]
    fn an_oom_kill_counts_once_and_raises_memory() {
        let s = Settings::default();
        let mut w = Workload::new();
        w.observe(&[sample("a", 100, 0.2)], &[], &s);
        let oom = OomKill {
            pod_uid: "a",
            container: "app",
            at: 150,
            memory_request: 3e8,
        };
        assert_eq!(w.observe(&[], std::slice::from_ref(&oom), &s).oom_kills, 1);
        assert_eq!(w.observe(&[], &[oom], &s).oom_kills, 0);
        let top = w.container("app").map(|c| {
            c.memory_histogram()
                .percentile(&crate::aggregate::MEMORY, 1.0)
        });
        assert!(top.is_some_and(|m| m >= 3e8 * 1.2), "{top:?}");
    }

    #[test]
    fn forgetting_a_pod_keeps_its_samples() {
        let s = Settings::default();
        let mut w = Workload::new();
        w.observe(&[sample("a", 100, 0.2)], &[], &s);
        w.retain_pods(&|uid| uid != "a");
        assert_eq!(w.container("app").map(|c| c.history().1), Some(1));
        // the mark is gone: the same window would count again for a pod of that uid
        assert_eq!(w.observe(&[sample("a", 100, 0.2)], &[], &s).samples, 1);
    }
}
