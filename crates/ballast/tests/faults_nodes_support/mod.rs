//! What the nodes fault scenarios share: a [`Scenario`] (the test's namespace, KwokNodeClass and
//! NodePool, its `ballast controller nodes` processes), the invariant [`Watchers`], and the final
//! check once a scenario settles.
#![allow(dead_code)]

pub mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::nodes::{KwokNodeClass, NodeClaim, NodePool, labels};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::process_support::{self, FAST, RUN_LABEL, Replica, cleanup_nodes, install_node_crds};
pub use watch::Watchers;

/// How long a scenario may take to settle after its last fault (the goal is far below).
pub const SETTLE: Duration = Duration::from_secs(90);

/// One scenario: its namespace, pool and controller processes.
pub struct Scenario {
    pub bed: TestBed,
    pub client: Client,
    pub ns: TestNamespace,
    logs: PathBuf,
    spawned: usize,
}

impl Scenario {
    /// A namespace `prefix-…`, a KwokNodeClass and a NodePool of that name (on-demand c6i and m6i
    /// nodes, tainted and labelled for the namespace's pods), with `disruption` as the pool's
    /// `spec.disruption`.
    pub async fn new(bed: &TestBed, prefix: &str, disruption: Value) -> Result<Scenario> {
        let client = bed.client();
        install_node_crds(&client).await?;
        let ns = bed.namespace(prefix).await?;
        let name = ns.name().to_owned();
        let logs = std::env::temp_dir().join(format!("ballast-{name}"));
        std::fs::create_dir_all(&logs)?;
        let class: KwokNodeClass = serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "KwokNodeClass",
            "metadata": { "name": name, "labels": { RUN_LABEL: name } }, "spec": {},
        }))?;
        Api::<KwokNodeClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await?;
        let isolation = ballast_testbed::ISOLATION_KEY;
        let pool: NodePool = serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
            "metadata": { "name": name, "labels": { RUN_LABEL: name } },
            "spec": {
                "disruption": disruption,
                "template": {
                    "metadata": { "labels": { isolation: name } },
                    "spec": {
                        "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": name },
                        "requirements": [
                            { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"] },
                            { "key": "nodes.ballast.dev/instance-family", "operator": "In", "values": ["c6i", "m6i"] }
                        ],
                        "taints": [{ "key": isolation, "value": name, "effect": "NoSchedule" }]
                    }
                }
            }
        }))?;
        Api::<NodePool>::all(client.clone())
            .create(&PostParams::default(), &pool)
            .await?;
        Ok(Scenario {
            bed: bed.clone(),
            client,
            ns,
            logs,
            spawned: 0,
        })
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// Starts `ballast controller nodes --provider kwok` on this scenario's pool and namespace
    /// (with `--leader-elect` when `elect`; disruption passes every second, validated after 2 s)
    /// and waits until it is ready.
    pub async fn controller(&mut self, elect: bool) -> Result<Replica> {
        self.spawned += 1;
        let name: &'static str = Box::leak(format!("nodes-{}", self.spawned).into_boxed_str());
        let selector = format!("{RUN_LABEL}={}", self.name());
        let args = [
            "controller",
            "nodes",
            "--provider",
            "kwok",
            "--catalog",
            "simulations/catalogs/aws-like.yaml",
            "--nodepool-selector",
            &selector,
            "--provision-namespace",
            self.ns.name(),
            "--batch-max",
            "3",
            "--disruption-poll",
            "1",
            "--disruption-validation-delay",
            "2",
            "--nodes-health-addr",
        ];
        let replica = if elect {
            Replica::spawn(&self.bed, self.ns.name(), name, &self.logs, &args)?
        } else {
            Replica::spawn_alone(&self.bed, name, &self.logs, &args)?
        };
        replica.wait_ready().await?;
        Ok(replica)
    }

    pub fn watchers(&self) -> Watchers {
        Watchers::start(&self.client, self.name())
    }

    pub async fn claims(&self) -> Result<Vec<NodeClaim>> {
        process_support::claims(&self.client, self.name()).await
    }

    pub async fn nodes(&self) -> Result<Vec<Node>> {
        let lp = ListParams::default().labels(&format!("{}={}", labels::NODEPOOL, self.name()));
        Ok(Api::<Node>::all(self.client.clone()).list(&lp).await?.items)
    }

    /// How many of the pool's NodeClaims are launched (have a provider ID).
    pub async fn launched(&self) -> Result<usize> {
        let claims = self.claims().await?;
        Ok(claims
            .iter()
            .filter(|c| c.status.as_ref().is_some_and(|s| s.provider_id.is_some()))
            .count())
    }

    /// The pool's nodes carrying the disruption taint.
    pub async fn tainted_nodes(&self) -> Result<Vec<String>> {
        Ok(self
            .nodes()
            .await?
            .iter()
            .filter(|n| {
                let taints = n.spec.as_ref().and_then(|s| s.taints.as_ref());
                taints.is_some_and(|ts| ts.iter().any(|t| t.key == labels::DISRUPTED_TAINT))
            })
            .map(|n| n.name_any())
            .collect())
    }

    /// The pool's NodeClaims being deleted (their nodes draining), by name.
    pub async fn deleting_claims(&self) -> Result<Vec<String>> {
        Ok(self
            .claims()
            .await?
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_some())
            .map(|c| c.name_any())
            .collect())
    }

    /// The pool's NodeClaims being deleted whose node still runs a pod of the namespace.
    pub async fn draining_with_pods(&self) -> Result<Vec<String>> {
        let mut out = vec![];
        for c in self.claims().await? {
            let node = c.status.as_ref().and_then(|s| s.node_name.clone());
            if c.metadata.deletion_timestamp.is_some()
                && let Some(node) = node
                && self.pods_on(&[node]).await? > 0
            {
                out.push(c.name_any());
            }
        }
        Ok(out)
    }

    /// The namespace's pods on `nodes`.
    pub async fn pods_on(&self, nodes: &[String]) -> Result<usize> {
        let pods = self
            .ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await?
            .items;
        Ok(pods
            .iter()
            .filter(|p| {
                let on = p.spec.as_ref().and_then(|s| s.node_name.as_ref());
                on.is_some_and(|n| nodes.contains(n))
            })
            .count())
    }

    /// The pool's nodes without any pod of the namespace (a NodeClaim made twice leaves one).
    pub async fn empty_nodes(&self) -> Result<Vec<String>> {
        let pods = self
            .ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await?
            .items;
        let used: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        Ok(self
            .nodes()
            .await?
            .iter()
            .map(|n| n.name_any())
            .filter(|n| !used.contains(n))
            .collect())
    }

    /// How many of the namespace's pods are bound to a node.
    pub async fn pods_bound(&self) -> Result<usize> {
        let pods = self
            .ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await?
            .items;
        Ok(pods
            .iter()
            .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
            .count())
    }

    /// How many of the namespace's pods the kube-scheduler has tried: bound, or marked
    /// unschedulable (what the provisioner waits for).
    pub async fn pods_tried(&self) -> Result<usize> {
        let pods = self
            .ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await?
            .items;
        Ok(pods
            .iter()
            .filter(|p| {
                let bound = p.spec.as_ref().is_some_and(|s| s.node_name.is_some());
                let unschedulable = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.reason.as_deref() == Some("Unschedulable")
                        })
                    });
                bound || unschedulable
            })
            .count())
    }

    /// A PDB `name` over `app=name` with `maxUnavailable: 1`.
    pub async fn create_pdb(&self, name: &str) -> Result<()> {
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": name } } }
        }))?;
        self.ns
            .api::<PodDisruptionBudget>()
            .create(&PostParams::default(), &pdb)
            .await?;
        Ok(())
    }

    /// Sets the PDB's `maxUnavailable` (0 blocks every eviction).
    pub async fn set_max_unavailable(&self, name: &str, n: i32) -> Result<()> {
        let patch = json!({ "spec": { "maxUnavailable": n } });
        self.ns
            .api::<PodDisruptionBudget>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Merges `disruption` into the pool's `spec.disruption`.
    pub async fn set_disruption(&self, disruption: Value) -> Result<()> {
        let patch = json!({ "spec": { "disruption": disruption } });
        Api::<NodePool>::all(self.client.clone())
            .patch(self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Waits until the scenario settled — `pods` pods Running and Ready, none pending; every
    /// pool node with its NodeClaim and every NodeClaim with its node; no NodeClaim being deleted;
    /// no node cordoned or carrying the disruption taint — and returns how long that took. What
    /// still fails after [`SETTLE`] is recorded as violations.
    pub async fn settle(&self, watchers: &Watchers, pods: usize) -> Result<Duration> {
        let began = Instant::now();
        let settled = poll_until("the scenario to settle", SETTLE, FAST, || async {
            Ok(self.unsettled(pods).await?.is_empty().then_some(()))
        })
        .await;
        if settled.is_err() {
            for (object, what) in self.unsettled(pods).await? {
                watchers.violation(&object, &what);
            }
        }
        Ok(began.elapsed())
    }

    /// What keeps the scenario from being settled, as (object, what) pairs.
    pub async fn unsettled(&self, pods: usize) -> Result<Vec<(String, String)>> {
        let mut out = vec![];
        let all: Vec<Pod> = self
            .ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await?
            .items;
        let ready = all
            .iter()
            .filter(|p| ballast_testbed::wait::pod_running_ready(p))
            .count();
        if ready != pods || all.len() != pods {
            out.push((
                format!("namespace/{}", self.name()),
                format!(
                    "{ready} of {pods} pods Running and Ready ({} pods)",
                    all.len()
                ),
            ));
        }
        let claims = self.claims().await?;
        let nodes = self.nodes().await?;
        let launched: BTreeSet<String> = claims
            .iter()
            .filter_map(|c| c.status.as_ref()?.provider_id.clone())
            .collect();
        for n in &nodes {
            let pid = n.spec.as_ref().and_then(|s| s.provider_id.clone());
            if !pid.is_some_and(|p| launched.contains(&p)) {
                out.push((
                    format!("Node/{}", n.name_any()),
                    "no NodeClaim (orphan)".into(),
                ));
            }
            let spec = n.spec.clone().unwrap_or_default();
            if spec.unschedulable == Some(true) {
                out.push((format!("Node/{}", n.name_any()), "cordoned".into()));
            }
            if spec
                .taints
                .iter()
                .flatten()
                .any(|t| t.key == labels::DISRUPTED_TAINT)
            {
                out.push((format!("Node/{}", n.name_any()), "disruption taint".into()));
            }
        }
        let node_pids: BTreeSet<String> = nodes
            .iter()
            .filter_map(|n| n.spec.as_ref()?.provider_id.clone())
            .collect();
        for c in &claims {
            let pid = c.status.as_ref().and_then(|s| s.provider_id.clone());
            if !pid.is_some_and(|p| node_pids.contains(&p)) {
                out.push((
                    format!("NodeClaim/{}", c.name_any()),
                    "no node (orphan)".into(),
                ));
            }
            if c.metadata.deletion_timestamp.is_some() {
                out.push((
                    format!("NodeClaim/{}", c.name_any()),
                    "still deleting".into(),
                ));
            }
        }
        Ok(out)
    }

    /// Fails with every violation the watchers recorded (printing them first).
    pub fn assert_no_violation(&self, watchers: &Watchers) -> Result<()> {
        let violations = watchers.violations();
        println!("violations: {}", violations.len());
        for v in &violations {
            println!("  {v}");
        }
        ensure!(
            violations.is_empty(),
            "{} invariant violation(s)",
            violations.len()
        );
        Ok(())
    }

    /// Removes the pool, its NodeClaims and nodes, the class and the namespace.
    pub async fn cleanup(self) -> Result<()> {
        cleanup_nodes(&self.client, &self.ns).await;
        self.ns.cleanup().await
    }
}

/// Waits until `what` holds, polling every 50 ms (a fault is injected at the moment it holds).
pub async fn wait_step<T, F, Fut>(what: &str, timeout: Duration, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    poll_until(what, timeout, Duration::from_millis(50), f)
        .await
        .with_context(|| format!("waiting for {what}"))
}

/// Prints a list of seconds as "a, b, c s (max m s)".
pub fn seconds(values: &[f64]) -> String {
    let max = values.iter().copied().fold(0.0, f64::max);
    let list: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
    format!("[{}] s (max {max:.2} s)", list.join(", "))
}
