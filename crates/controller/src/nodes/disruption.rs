//! The disruption controller: one action at a time from `disrupt`.
//!
//! Every `poll`: record pod arrivals and departures per node in the NodeClaim's
//! `status.lastPodEventTime` (consolidateAfter runs from it), run `disrupt` on a snapshot, and if
//! it picks an action: wait `validation_delay`, decide again and go on only if the same method
//! still picks the same nodes; taint them `nodes.ballast.dev/disrupted:NoSchedule`; launch the
//! replacements and wait until they are Initialized (else untaint and give up); then delete the
//! nodes' NodeClaims, whose termination drains them through the Eviction API. No action starts
//! while a deleted NodeClaim's node still runs pods ([`drains_in_flight`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_api::nodes::{NodeClaim, labels};
use ballast_cloud::CloudProvider;
use ballast_nodes::observe;
use ballast_nodes::{Action, DisruptionDecision, DisruptionOptions, disrupt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{DeleteParams, Patch, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::cluster::{self, SnapshotInputs, claim_pool, claim_provider_id};
use super::error::Error;
use super::{Ctx, FIELD_MANAGER, metrics, patch_params, termination};

/// Knobs of the disruption shell.
#[derive(Debug, Clone)]
pub struct DisruptionShellOptions {
    /// Time between passes.
    pub poll: Duration,
    /// Wait before acting, then decide again (Karpenter: 15s).
    pub validation_delay: Duration,
    /// How long replacements may take to become Initialized.
    pub replacement_timeout: Duration,
    pub options: DisruptionOptions,
}

impl Default for DisruptionShellOptions {
    fn default() -> Self {
        DisruptionShellOptions {
            poll: Duration::from_secs(10),
            validation_delay: Duration::from_secs(15),
            replacement_timeout: Duration::from_secs(600),
            options: DisruptionOptions::default(),
        }
    }
}

/// Pods that count as arrivals and departures (not DaemonSet, mirror or finished pods).
fn counted(p: &Pod) -> bool {
    !observe::is_terminal(p)
        && !matches!(
            observe::owner_kind(p).as_deref(),
            Some("DaemonSet" | "Node")
        )
}

/// Per node, the pods seen last pass.
#[derive(Default)]
struct PodEvents {
    seen: BTreeMap<String, BTreeSet<String>>,
}

impl PodEvents {
    /// Writes `lastPodEventTime` on the NodeClaims whose node gained or lost a pod.
    async fn record<P: CloudProvider>(&mut self, ctx: &Ctx<P>, now: Timestamp) {
        let mut by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in ctx.stores.pods.state() {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone())
                && counted(&p)
            {
                by_node
                    .entry(n)
                    .or_default()
                    .insert(p.metadata.uid.clone().unwrap_or_default());
            }
        }
        let claims = ctx.stores.claims();
        let api: Api<NodeClaim> = Api::all(ctx.client.clone());
        let mut next = BTreeMap::new();
        for node in ctx.stores.nodes.state() {
            let name = node.name_any();
            let pods = by_node.remove(&name).unwrap_or_default();
            if let Some(prev) = self.seen.get(&name)
                && *prev != pods
                && let Some(pid) = observe::provider_id(&node)
                && let Some(c) = claims.iter().find(|c| claim_provider_id(c) == Some(pid))
            {
                let patch =
                    serde_json::json!({ "status": { "lastPodEventTime": now.to_string() } });
                if let Err(e) = api
                    .patch_status(&c.name_any(), &patch_params(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(nodeclaim = %c.name_any(), error = %e, "recording the last pod event failed");
                }
            }
            next.insert(name, pods);
        }
        self.seen = next;
    }
}

async fn decide<P: CloudProvider>(
    ctx: &Ctx<P>,
    opts: &DisruptionOptions,
) -> Result<DisruptionDecision, Error> {
    let now = ctx.now();
    let types = ctx.instance_types(now).await?;
    let pending: Vec<(Arc<Pod>, Timestamp)> = ctx
        .stores
        .unbound_pods(&ctx.opts.namespaces)
        .into_iter()
        .map(|p| (p, now))
        .collect();
    let recent = ctx.recent_claims();
    let snap = cluster::snapshot(
        &ctx.stores,
        SnapshotInputs {
            pending: &pending,
            instance_types: types,
            extra_claims: &recent,
            last_pod_events: &BTreeMap::new(),
        },
    );
    Ok(disrupt(&snap, now, opts)?)
}

fn same_action(a: &Action, b: &Action) -> bool {
    a.method == b.method && a.nodes == b.nodes
}

async fn untaint<P: CloudProvider>(ctx: &Ctx<P>, node: &str) {
    let Some(n) = ctx
        .stores
        .nodes
        .find(|x| x.metadata.name.as_deref() == Some(node))
    else {
        return;
    };
    let taints: Vec<Taint> = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key != labels::DISRUPTED_TAINT)
        .collect();
    let patch = serde_json::json!({ "spec": { "unschedulable": null, "taints": taints } });
    if let Err(e) = Api::<Node>::all(ctx.client.clone())
        .patch(node, &patch_params(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(node, error = %e, "removing the disrupted taint failed");
    }
}

/// Whether a node carries our disruption taint.
fn has_disruption_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == labels::DISRUPTED_TAINT))
}

/// The nodes whose disruption taint no disruption in flight explains: tainted, in scope, not
/// being deleted, and with a NodeClaim that is not being deleted either (a deleted NodeClaim's
/// node is being drained, and keeps its taint). A disruption is carried out by one pass of one
/// process, so at start every other taint was left by a process that died mid-action.
pub fn stale_disruption_taints(
    nodes: &[Arc<Node>],
    claims: &[Arc<NodeClaim>],
    in_scope: impl Fn(&Node) -> bool,
) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| has_disruption_taint(n) && n.metadata.deletion_timestamp.is_none())
        .filter(|n| in_scope(n))
        .filter(|n| {
            let pid = observe::provider_id(n);
            claims.iter().any(|c| {
                pid.is_some()
                    && claim_provider_id(c) == pid
                    && c.metadata.deletion_timestamp.is_none()
            })
        })
        .map(|n| n.name_any())
        .collect()
}

/// The NodeClaims being deleted whose node still runs pods that will need a new home (counted
/// pods: not DaemonSet, mirror or finished ones). While one drains, no disruption starts: the
/// decision cannot see that those pods are headed for the replacement made for them, and would
/// call it empty (after a restart mid-drain, the replacement was deleted as empty).
pub fn drains_in_flight(claims: &[Arc<NodeClaim>], pods: &[Arc<Pod>]) -> Vec<String> {
    claims
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_some())
        .filter(|c| {
            let node = c.status.as_ref().and_then(|s| s.node_name.as_deref());
            node.is_some_and(|n| {
                pods.iter().any(|p| {
                    counted(p) && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(n)
                })
            })
        })
        .map(|c| c.name_any())
        .collect()
}

/// At start: removes the disruption taint (and the cordon) that a process killed in the middle of
/// an action left on nodes with no disruption in flight, as Karpenter does.
pub async fn clear_stale_taints<P: CloudProvider>(ctx: &Ctx<P>) {
    let stale = stale_disruption_taints(&ctx.stores.nodes.state(), &ctx.stores.claims(), |n| {
        ctx.stores
            .pool_in_scope(cluster::node_pool_of(n).as_deref())
    });
    for node in stale {
        tracing::info!(
            node,
            "removing a disruption taint no disruption in flight explains"
        );
        untaint(ctx, &node).await;
    }
}

async fn execute<P: CloudProvider>(
    ctx: &Ctx<P>,
    action: &Action,
    shell: &DisruptionShellOptions,
) -> Result<(), Error> {
    for n in &action.nodes {
        if let Some(node) = ctx
            .stores
            .nodes
            .find(|x| x.metadata.name.as_deref() == Some(n.as_str()))
        {
            termination::cordon_and_taint(ctx, &node).await?;
        }
    }
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut made = vec![];
    for r in &action.replacements {
        let mut claim = r.plan.node_claim.clone();
        if let Some(p) = ctx.stores.pools().get(&r.plan.node_pool)
            && let Some(uid) = p.metadata.uid.clone()
        {
            claim.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "nodes.ballast.dev/v1".into(),
                    kind: "NodePool".into(),
                    name: r.plan.node_pool.clone(),
                    uid,
                    block_owner_deletion: None,
                    controller: None,
                },
            ]);
        }
        let created = api.create(&pp, &claim).await?;
        let method = metrics::method_label(action.method);
        ctx.opts.metrics.created(&r.plan.node_pool, method);
        ctx.recent_claims
            .lock()
            .expect("lock")
            .push((created, Instant::now()));
        tracing::info!(nodeclaim = %r.plan.name, instance_type = %r.plan.instance_type, price = r.plan.price, "replacement launched");
        made.push(r.plan.name.clone());
    }
    if !made.is_empty() {
        let deadline = Instant::now() + shell.replacement_timeout;
        loop {
            // Waiting for replacements is a turn of the loop, not a stall (the wait may be
            // longer than the heartbeat's limit).
            ctx.opts.heartbeats.beat("disruption", stuck_limit(shell));
            let ready = made.iter().all(|n| {
                ctx.stores
                    .node_claims
                    .find(|c| c.metadata.name.as_deref() == Some(n.as_str()))
                    .is_some_and(|c| observe::claim_condition(&c, "Initialized"))
            });
            if ready {
                break;
            }
            let gone = made.iter().any(|n| {
                ctx.stores
                    .node_claims
                    .find(|c| {
                        c.metadata.name.as_deref() == Some(n.as_str())
                            && c.metadata.deletion_timestamp.is_none()
                    })
                    .is_none()
                    && ctx
                        .recent_claims()
                        .iter()
                        .all(|c| c.metadata.name.as_deref() != Some(n.as_str()))
            });
            if gone || Instant::now() >= deadline {
                for n in &action.nodes {
                    untaint(ctx, n).await;
                }
                return Err(Error::ReplacementsNotInitialized {
                    claims: made.join(", "),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for (node, claim) in action.nodes.iter().zip(&action.node_claims) {
        if let Some(c) = ctx
            .stores
            .node_claims
            .find(|c| c.metadata.name.as_deref() == Some(claim.as_str()))
        {
            ctx.events
                .normal(
                    &c.object_ref(&()),
                    "Disrupting",
                    "Disrupting",
                    format!("{}: {}", action.method, action.why),
                )
                .await;
        }
        if let Some(n) = ctx
            .stores
            .nodes
            .find(|x| x.metadata.name.as_deref() == Some(node.as_str()))
        {
            ctx.events
                .normal(
                    &n.object_ref(&()),
                    "Disrupting",
                    "Disrupting",
                    format!("{}: {}", action.method, action.why),
                )
                .await;
        }
        match api.delete(claim, &DeleteParams::background()).await {
            Ok(_) => {
                let pool = ctx
                    .stores
                    .node_claims
                    .find(|c| c.metadata.name.as_deref() == Some(claim.as_str()))
                    .and_then(|c| claim_pool(&c).map(str::to_owned))
                    .unwrap_or_default();
                let method = metrics::method_label(action.method);
                ctx.opts.metrics.terminated(&pool, method);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// How late the disruption loop may turn before `/healthz` calls it stuck.
fn stuck_limit(shell: &DisruptionShellOptions) -> Duration {
    shell.poll + shell.validation_delay + super::provisioner::STUCK_AFTER
}

/// The disruption loop.
pub async fn run<P: CloudProvider>(ctx: Arc<Ctx<P>>) {
    let Some(shell) = ctx.opts.disruption.clone() else {
        return;
    };
    let mut events = PodEvents::default();
    loop {
        ctx.opts.heartbeats.beat("disruption", stuck_limit(&shell));
        tokio::time::sleep(shell.poll).await;
        events.record(&ctx, ctx.now()).await;
        let first = match decide(&ctx, &shell.options).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "disruption pass failed");
                continue;
            }
        };
        ctx.opts.metrics.budgets(&first);
        let Some(action) = first.action else {
            continue;
        };
        let draining = drains_in_flight(&ctx.stores.claims(), &ctx.stores.pods.state());
        if !draining.is_empty() {
            tracing::debug!(method = %action.method, nodes = ?action.nodes, draining = ?draining, "disruption waits for the drains in flight");
            continue;
        }
        if !action.nodes.iter().all(|n| {
            ctx.stores
                .nodes
                .find(|x| x.metadata.name.as_deref() == Some(n.as_str()))
                .and_then(|x| cluster::node_pool_of(&x))
                .is_some_and(|p| ctx.stores.pool_in_scope(Some(&p)))
        }) {
            continue;
        }
        tracing::info!(method = %action.method, nodes = ?action.nodes, savings = action.savings, "disruption candidate; validating after the delay: {}", action.why);
        tokio::time::sleep(shell.validation_delay).await;
        events.record(&ctx, ctx.now()).await;
        let again = match decide(&ctx, &shell.options).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "disruption validation failed");
                continue;
            }
        };
        let Some(action2) = again.action.filter(|a| same_action(&action, a)) else {
            tracing::info!(method = %action.method, nodes = ?action.nodes, "disruption no longer valid after the delay");
            ctx.opts.metrics.disruption(&action, "invalidated");
            continue;
        };
        // Every node's NodeClaim must be ours.
        if action2.node_claims.iter().any(|c| {
            !ctx.stores.pool_in_scope(
                ctx.stores
                    .node_claims
                    .find(|x| x.metadata.name.as_deref() == Some(c.as_str()))
                    .as_deref()
                    .and_then(claim_pool),
            )
        }) {
            continue;
        }
        tracing::info!(method = %action2.method, nodes = ?action2.nodes, replacements = action2.replacements.len(), savings = action2.savings, "disrupting: {}", action2.why);
        match execute(&ctx, &action2, &shell).await {
            Ok(()) => ctx.opts.metrics.disruption(&action2, "disrupted"),
            Err(e) => {
                ctx.opts.metrics.disruption(&action2, "failed");
                tracing::warn!(error = %format!("{e:#}"), "disruption failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn node(name: &str, tainted: bool, deleting: bool) -> Arc<Node> {
        let taints = if tainted {
            json!([{ "key": labels::DISRUPTED_TAINT, "effect": "NoSchedule" }])
        } else {
            json!([])
        };
        let mut n: Node = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "providerID": format!("kwok://{name}"), "taints": taints },
        }))
        .unwrap();
        if deleting {
            n.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        }
        Arc::new(n)
    }

    fn claim(node: &str, deleting: bool) -> Arc<NodeClaim> {
        let mut c: NodeClaim = serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "NodeClaim",
            "metadata": { "name": format!("{node}-claim") },
            "spec": { "nodeClassRef": { "group": "g", "kind": "k", "name": "n" } },
            "status": { "providerID": format!("kwok://{node}") },
        }))
        .unwrap();
        if deleting {
            c.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        }
        Arc::new(c)
    }

    fn pod(name: &str, node: &str, owner: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": { "name": name, "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u",
                    "controller": true
                }] },
                "spec": { "nodeName": node, "containers": [] },
                "status": { "phase": "Running" },
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_drain_is_in_flight_while_a_deleted_claims_node_runs_pods() {
        let mut placed = (*claim("a", true)).clone();
        placed.status.get_or_insert_default().node_name = Some("a".into());
        let mut empty = (*claim("b", true)).clone();
        empty.status.get_or_insert_default().node_name = Some("b".into());
        let mut live = (*claim("c", false)).clone();
        live.status.get_or_insert_default().node_name = Some("c".into());
        let claims = vec![Arc::new(placed), Arc::new(empty), Arc::new(live)];
        let pods = vec![
            pod("web", "a", "ReplicaSet"),
            pod("agent", "b", "DaemonSet"),
            pod("api", "c", "ReplicaSet"),
        ];
        assert_eq!(
            drains_in_flight(&claims, &pods),
            vec!["a-claim".to_string()]
        );
        assert!(drains_in_flight(&claims, &pods[1..]).is_empty());
    }

    #[test]
    fn only_taints_without_a_disruption_in_flight_are_stale() {
        let nodes = vec![
            node("stale", true, false),
            node("draining", true, false),
            node("plain", false, false),
            node("going", true, true),
            node("orphan", true, false),
            node("theirs", true, false),
        ];
        let claims = vec![
            claim("stale", false),
            claim("draining", true),
            claim("plain", false),
            claim("going", false),
            claim("theirs", false),
        ];
        let got = stale_disruption_taints(&nodes, &claims, |n| n.name_any() != "theirs");
        assert_eq!(got, vec!["stale".to_string()]);
    }
}
