//! Invariant watchers of a fault scenario: watch tasks that run through the whole scenario, across
//! API server restarts, and record every violation with the time and the object, plus when each
//! NodeClaim was first seen and first seen launched (the recovery figures).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_api::nodes::{NodeClaim, labels};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// One broken invariant: when (since the watchers started), which object, what.
#[derive(Debug, Clone)]
pub struct Violation {
    pub at: Duration,
    pub object: String,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {:.1} s {}: {}",
            self.at.as_secs_f64(),
            self.object,
            self.what
        )
    }
}

/// What the watchers saw of one NodeClaim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimSeen {
    pub created: Instant,
    pub launched: Option<Instant>,
}

#[derive(Default)]
struct Record {
    violations: Vec<Violation>,
    claims: BTreeMap<String, ClaimSeen>,
    /// Each pool node's last state: (cordoned, carrying the disruption taint).
    nodes: BTreeMap<String, (bool, bool)>,
    /// Per watched availability (deployment or PDB): whether it reached its floor yet.
    armed: BTreeMap<String, bool>,
}

/// The watch tasks of one scenario; aborted when dropped.
pub struct Watchers {
    started: Instant,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Retries a failed watch after 200 ms, 400 ms, ... at most 1 s: the watchers must see the API
/// server come back at once, or they would measure their own backoff.
struct Quick(Duration);

impl Iterator for Quick {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        self.0 = (self.0 * 2).clamp(Duration::from_millis(200), Duration::from_secs(1));
        Some(self.0)
    }
}

impl Backoff for Quick {
    fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }
}

impl Watchers {
    /// Watches the pool's NodeClaims and nodes.
    pub fn start(client: &Client, pool: &str) -> Watchers {
        let mut w = Watchers {
            started: Instant::now(),
            record: Arc::default(),
            tasks: vec![],
        };
        let cfg = watcher::Config::default().labels(&format!("{}={pool}", labels::NODEPOOL));
        w.spawn(Api::<NodeClaim>::all(client.clone()), cfg.clone(), on_claim);
        w.spawn(Api::<Node>::all(client.clone()), cfg, on_node);
        w
    }

    /// Also watches `deployment`'s available replicas and the PDB `pdb` (its healthy pods), in
    /// `ns`: once either reached `floor`, falling below it is a violation.
    pub fn availability(
        &mut self,
        client: &Client,
        ns: &str,
        deployment: &str,
        pdb: &str,
        floor: i32,
    ) {
        let by_name =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        self.spawn(
            Api::<Deployment>::namespaced(client.clone(), ns),
            by_name(deployment),
            move |r, at, d: &Deployment, deleted| {
                let available = d.status.as_ref().and_then(|s| s.available_replicas);
                check_floor(
                    r,
                    at,
                    &object("Deployment", d),
                    available.unwrap_or(0),
                    floor,
                    deleted,
                );
            },
        );
        self.spawn(
            Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
            by_name(pdb),
            move |r, at, p: &PodDisruptionBudget, deleted| {
                let healthy = p.status.as_ref().map_or(0, |s| s.current_healthy);
                check_floor(
                    r,
                    at,
                    &object("PodDisruptionBudget", p),
                    healthy,
                    floor,
                    deleted,
                );
            },
        );
    }

    fn spawn<K>(
        &mut self,
        api: Api<K>,
        cfg: watcher::Config,
        on: impl Fn(&mut Record, Duration, &K, bool) + Send + 'static,
    ) where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
        K::DynamicType: Default,
    {
        let (record, started) = (self.record.clone(), self.started);
        self.tasks.push(tokio::spawn(async move {
            let mut stream = watcher(api, cfg).backoff(Quick(Duration::ZERO)).boxed();
            while let Some(ev) = stream.next().await {
                let (o, deleted) = match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                    Ok(watcher::Event::Delete(o)) => (o, true),
                    _ => continue,
                };
                let mut r = record.lock().expect("lock");
                on(&mut r, started.elapsed(), &o, deleted);
            }
        }));
    }

    /// Adds a violation found outside the watch tasks (a final check).
    pub fn violation(&self, object: &str, what: &str) {
        let at = self.started.elapsed();
        self.record
            .lock()
            .expect("lock")
            .violations
            .push(Violation {
                at,
                object: object.to_owned(),
                what: what.to_owned(),
            });
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.record.lock().expect("lock").violations.clone()
    }

    pub fn claims(&self) -> BTreeMap<String, ClaimSeen> {
        self.record.lock().expect("lock").claims.clone()
    }

    /// The pool nodes the watchers last saw cordoned or tainted for disruption.
    pub fn disrupted_nodes(&self) -> Vec<String> {
        let r = self.record.lock().expect("lock");
        r.nodes
            .iter()
            .filter(|(_, (c, t))| *c || *t)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Creation-to-launch times (seconds) of the NodeClaims first seen after `since`.
    pub fn launch_delays(&self, since: Instant) -> Vec<f64> {
        self.claims()
            .values()
            .filter(|c| c.created >= since)
            .filter_map(|c| Some((c.launched? - c.created).as_secs_f64()))
            .collect()
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn object(kind: &str, o: &impl ResourceExt) -> String {
    format!("{kind}/{}", o.name_any())
}

fn on_claim(r: &mut Record, _at: Duration, c: &NodeClaim, deleted: bool) {
    if deleted {
        return;
    }
    let now = Instant::now();
    let seen = r.claims.entry(c.name_any()).or_insert(ClaimSeen {
        created: now,
        launched: None,
    });
    let launched = c
        .status
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .is_some_and(|p| !p.is_empty());
    if launched && seen.launched.is_none() {
        seen.launched = Some(now);
    }
}

fn on_node(r: &mut Record, _at: Duration, n: &Node, deleted: bool) {
    if deleted {
        r.nodes.remove(&n.name_any());
        return;
    }
    let spec = n.spec.clone().unwrap_or_default();
    let cordoned = spec.unschedulable == Some(true);
    let tainted = spec
        .taints
        .iter()
        .flatten()
        .any(|t| t.key == labels::DISRUPTED_TAINT);
    r.nodes.insert(n.name_any(), (cordoned, tainted));
}

fn check_floor(r: &mut Record, at: Duration, object: &str, value: i32, floor: i32, deleted: bool) {
    if deleted {
        return;
    }
    let armed = r.armed.entry(object.to_owned()).or_insert(false);
    if value >= floor {
        *armed = true;
    } else if *armed {
        r.violations.push(Violation {
            at,
            object: object.to_owned(),
            what: format!("{value} available, below the floor of {floor}"),
        });
    }
}
