//! The pod index: one watch on the pods of the controller's scope, kept as compact
//! [`PodSnapshot`]s (what the decision core reads) plus labels, indexed by namespace.
//!
//! A reconcile selects its target's pods from here ([`PodIndex::select`]) instead of listing them
//! from the API server. Each namespace has its own lock, taken only for the copy or the update of
//! one pod, so reconciles of different objects never wait on each other. A relist (watch
//! restart) is buffered and swapped in whole when complete, so a reconcile never sees a half
//! list.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ballast_horizontal::{
    ConditionStatus, ContainerSnapshot, PodPhase, PodSnapshot, ReadyCondition,
};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use super::label_index::LabelIndex;
use ballast_horizontal::selector::Selector;

/// A pod as the index keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedPod {
    pub labels: BTreeMap<String, String>,
    pub snapshot: PodSnapshot,
}

/// The pods of one namespace, by name and by label.
#[derive(Default)]
struct NsPods {
    pods: HashMap<String, Arc<IndexedPod>>,
    labels: LabelIndex,
}

impl NsPods {
    fn insert(&mut self, name: String, pod: Arc<IndexedPod>) {
        for (k, v) in &pod.labels {
            self.labels.insert(k, v, &name);
        }
        if let Some(old) = self.pods.insert(name.clone(), pod.clone()) {
            for (k, v) in &old.labels {
                if pod.labels.get(k) != Some(v) {
                    self.labels.remove(k, v, &name);
                }
            }
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(old) = self.pods.remove(name) {
            for (k, v) in &old.labels {
                self.labels.remove(k, v, name);
            }
        }
    }

    fn from_map(pods: HashMap<String, Arc<IndexedPod>>) -> NsPods {
        let mut ns = NsPods::default();
        for (name, pod) in pods {
            ns.insert(name, pod);
        }
        ns
    }
}

type Namespace = Arc<RwLock<NsPods>>;

/// Pods by namespace and name.
#[derive(Default)]
pub struct PodIndex {
    namespaces: RwLock<HashMap<String, Namespace>>,
    synced: AtomicBool,
    synced_notify: Notify,
    events: AtomicU64,
}

impl PodIndex {
    /// Whether the first complete list has been received.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Waits until the first complete list has been received.
    pub async fn wait_synced(&self) {
        loop {
            let notified = self.synced_notify.notified();
            if self.is_synced() {
                return;
            }
            notified.await;
        }
    }

    /// Watch events applied so far (for the controller's metrics).
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Number of pods held.
    pub fn len(&self) -> usize {
        let map = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|ns| ns.read().unwrap_or_else(|e| e.into_inner()).pods.len())
            .sum()
    }

    /// Whether no pod is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn namespace(&self, ns: &str) -> Option<Namespace> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(ns)
            .cloned()
    }

    fn namespace_or_insert(&self, ns: &str) -> Namespace {
        if let Some(n) = self.namespace(ns) {
            return n;
        }
        let mut map = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        map.entry(ns.to_owned()).or_default().clone()
    }

    /// The pods of `namespace` whose labels `selector` matches, sorted by name. Candidates come
    /// from the label index when the selector requires a label (`app=web`): the cost follows the
    /// selected pods, not the namespace.
    pub fn select(&self, namespace: &str, selector: &Selector) -> Vec<Arc<IndexedPod>> {
        let Some(ns) = self.namespace(namespace) else {
            return Vec::new();
        };
        let ns = ns.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<IndexedPod>> = match ns.labels.candidates(selector) {
            Some(names) => names
                .into_iter()
                .filter_map(|n| ns.pods.get(n))
                .filter(|p| selector.matches(&p.labels))
                .cloned()
                .collect(),
            None => ns
                .pods
                .values()
                .filter(|p| selector.matches(&p.labels))
                .cloned()
                .collect(),
        };
        drop(ns);
        out.sort_by(|a, b| a.snapshot.name.cmp(&b.snapshot.name));
        out
    }

    /// Adds or replaces one pod.
    pub fn apply(&self, pod: &Pod) {
        let Some((ns, name, entry)) = index_entry(pod) else {
            return;
        };
        let n = self.namespace_or_insert(&ns);
        n.write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, Arc::new(entry));
    }

    /// Removes one pod.
    pub fn delete(&self, pod: &Pod) {
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return;
        };
        if let Some(n) = self.namespace(ns) {
            n.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        }
    }

    /// Replaces everything with a complete list.
    pub fn replace(&self, all: HashMap<String, HashMap<String, Arc<IndexedPod>>>) {
        let mut map = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        // Keep the per-namespace Arcs of namespaces that stay, so readers holding one stay valid.
        map.retain(|ns, _| all.contains_key(ns));
        for (ns, pods) in all {
            let pods = NsPods::from_map(pods);
            match map.get(&ns) {
                Some(n) => *n.write().unwrap_or_else(|e| e.into_inner()) = pods,
                None => {
                    map.insert(ns, Arc::new(RwLock::new(pods)));
                }
            }
        }
        drop(map);
        if !self.synced.swap(true, Ordering::AcqRel) {
            self.synced_notify.notify_waiters();
        }
    }

    /// Runs the watch until the stream ends (never, unless the runtime shuts down). Watch errors
    /// are retried with the watcher's default backoff; the index keeps its last state meanwhile.
    pub async fn run(self: Arc<Self>, api: Api<Pod>) {
        let config = watcher::Config::default().any_semantic();
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut buffer: Option<HashMap<String, HashMap<String, Arc<IndexedPod>>>> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Apply(pod)) => self.apply(&pod),
                Ok(Event::Delete(pod)) => self.delete(&pod),
                Ok(Event::Init) => buffer = Some(HashMap::new()),
                Ok(Event::InitApply(pod)) => {
                    if let (Some(buf), Some((ns, name, entry))) =
                        (buffer.as_mut(), index_entry(&pod))
                    {
                        buf.entry(ns).or_default().insert(name, Arc::new(entry));
                    }
                }
                Ok(Event::InitDone) => self.replace(buffer.take().unwrap_or_default()),
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            }
            self.events.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn index_entry(pod: &Pod) -> Option<(String, String, IndexedPod)> {
    let ns = pod.metadata.namespace.clone()?;
    let name = pod.metadata.name.clone()?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    Some((
        ns,
        name,
        IndexedPod {
            labels,
            snapshot: pod_snapshot(pod),
        },
    ))
}

fn container(c: &Container, init: bool) -> ContainerSnapshot {
    ContainerSnapshot {
        name: c.name.clone(),
        requests: c
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .unwrap_or_default(),
        restart_policy: if init { c.restart_policy.clone() } else { None },
    }
}

/// A pod reduced to what the replica calculation reads.
pub fn pod_snapshot(pod: &Pod) -> PodSnapshot {
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Unknown") => PodPhase::Unknown,
        // No phase yet: not started.
        _ => PodPhase::Pending,
    };
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| ReadyCondition {
            status: match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            },
            last_transition_time: c
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
                .or(created)
                .unwrap_or(Timestamp::UNIX_EPOCH),
        });
    PodSnapshot {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase,
        ready,
        start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        containers: spec
            .map(|s| s.containers.iter().map(|c| container(c, false)).collect())
            .unwrap_or_default(),
        init_containers: spec
            .and_then(|s| s.init_containers.as_ref())
            .map(|cs| cs.iter().map(|c| container(c, true)).collect())
            .unwrap_or_default(),
        requests: spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(ns: &str, name: &str, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "cpu".to_string(),
                            Quantity("100m".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                start_time: Some(Time("2025-01-01T00:00:00Z".parse().unwrap())),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time("2025-01-01T00:00:10Z".parse().unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn selects_by_namespace_and_labels() {
        let idx = PodIndex::default();
        idx.apply(&pod("a", "web-1", "web"));
        idx.apply(&pod("a", "web-2", "web"));
        idx.apply(&pod("a", "api-1", "api"));
        idx.apply(&pod("b", "web-3", "web"));
        let web = Selector::parse("app=web").unwrap();
        let names: Vec<_> = idx
            .select("a", &web)
            .iter()
            .map(|p| p.snapshot.name.clone())
            .collect();
        assert_eq!(names, ["web-1", "web-2"]);
        idx.delete(&pod("a", "web-1", "web"));
        assert_eq!(idx.select("a", &web).len(), 1);
        // A relabelled pod leaves its old selector's result.
        idx.apply(&pod("a", "web-2", "api"));
        assert!(idx.select("a", &web).is_empty());
        assert_eq!(
            idx.select("a", &Selector::parse("app=api").unwrap()).len(),
            2
        );
        assert_eq!(idx.select("a", &Selector::parse("app").unwrap()).len(), 2);
        idx.apply(&pod("a", "web-2", "web"));
        assert!(idx.select("c", &web).is_empty());
        let s = &idx.select("b", &web)[0].snapshot;
        assert_eq!(s.phase, PodPhase::Running);
        assert_eq!(s.ready.as_ref().unwrap().status, ConditionStatus::True);
        assert_eq!(s.containers[0].requests["cpu"], Quantity("100m".into()));
        // A relist replaces everything.
        let mut all = HashMap::new();
        let (ns, name, e) = index_entry(&pod("c", "x", "web")).unwrap();
        all.entry(ns)
            .or_insert_with(HashMap::new)
            .insert(name, Arc::new(e));
        idx.replace(all);
        assert!(idx.is_synced());
        assert!(idx.select("a", &web).is_empty());
        assert_eq!(idx.select("c", &web).len(), 1);
    }
}
