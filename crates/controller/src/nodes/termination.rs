//! Termination of a NodeClaim being deleted: cordon its node and taint it
//! `nodes.ballast.dev/disrupted:NoSchedule`, drain it through the Eviction API (a 429 from a PDB
//! means "not now": retried with backoff; do-not-disrupt pods wait; once the NodeClaim's
//! terminationGracePeriod has passed, remaining pods are deleted instead), daemon pods last, then
//! delete the instance through the provider and remove the finalizer only once it is gone.
//! The Node's own termination finalizer ([`super::node_termination`]) is removed here too, once
//! the instance is gone and the Node deleted, before the NodeClaim's.

use std::sync::Arc;
use std::time::Duration;

use ballast_api::common::parse_duration_seconds;
use ballast_api::nodes::{NodeClaim, labels};
use ballast_cloud::{CloudError, CloudProvider};
use ballast_nodes::observe;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{DeleteParams, EvictParams, Patch};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::cluster::claim_provider_id;
use super::error::Error;
use super::{Ctx, node_termination, patch_params};

/// Priority classes whose pods are evicted after the others.
const CRITICAL: [&str; 2] = ["system-cluster-critical", "system-node-critical"];

/// Eviction order: 0 ordinary pods, 1 critical pods, 2 DaemonSet pods; None: not evicted at all
/// (finished pods, mirror pods).
pub fn drain_group(p: &Pod) -> Option<usize> {
    if observe::is_terminal(p) {
        return None;
    }
    match observe::owner_kind(p).as_deref() {
        Some("Node") => None,
        Some("DaemonSet") => Some(2),
        _ if p
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref())
            .is_some_and(|c| CRITICAL.contains(&c)) =>
        {
            Some(1)
        }
        _ => Some(0),
    }
}

fn do_not_disrupt(p: &Pod) -> bool {
    ballast_scheduling::aliases::get(p.annotations(), labels::DO_NOT_DISRUPT)
        .is_some_and(|v| v.trim() == "true")
}

/// Cordons the node and puts the disrupted taint on it (no-op when both are there).
pub async fn cordon_and_taint<P: CloudProvider>(
    ctx: &Ctx<P>,
    node: &Node,
) -> Result<(), kube::Error> {
    let spec = node.spec.clone().unwrap_or_default();
    let mut taints: Vec<Taint> = spec.taints.clone().unwrap_or_default();
    let tainted = taints
        .iter()
        .any(|t| t.key == labels::DISRUPTED_TAINT && t.effect == "NoSchedule");
    if tainted && spec.unschedulable == Some(true) {
        return Ok(());
    }
    if !tainted {
        taints.push(Taint {
            key: labels::DISRUPTED_TAINT.into(),
            value: None,
            effect: "NoSchedule".into(),
            time_added: None,
        });
    }
    let patch = serde_json::json!({ "spec": { "unschedulable": true, "taints": taints } });
    Api::<Node>::all(ctx.client.clone())
        .patch(&node.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// What a drain step found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DrainState {
    /// Pods still to go.
    pub remaining: usize,
    /// Evictions refused (PDB) or pods waiting for do-not-disrupt.
    pub blocked: usize,
}

/// What one drain step does with a node's pods: evicts (or, with `force`, deletes) the pods of
/// the first non-empty group of [`drain_group`], and reports what is left: every pod still to go
/// (pods being deleted included), and do-not-disrupt pods waiting (unless forced).
pub fn drain_step(pods: Vec<Arc<Pod>>, force: bool) -> (Vec<Arc<Pod>>, DrainState) {
    let mut groups: [Vec<Arc<Pod>>; 3] = Default::default();
    let mut st = DrainState::default();
    for p in pods {
        let Some(g) = drain_group(&p) else { continue };
        st.remaining += 1;
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if !force && do_not_disrupt(&p) {
            st.blocked += 1;
            continue;
        }
        groups[g].push(p);
    }
    let group = groups
        .into_iter()
        .find(|g| !g.is_empty())
        .unwrap_or_default();
    (group, st)
}

/// One drain step ([`drain_step`]) on the node's pods, through the Eviction API.
pub async fn drain<P: CloudProvider>(
    ctx: &Ctx<P>,
    node: &str,
    on_behalf: &NodeClaim,
    force: bool,
) -> Result<DrainState, kube::Error> {
    let (group, mut st) = drain_step(ctx.stores.pods_on(node), force);
    for p in &group {
        let api: Api<Pod> =
            Api::namespaced(ctx.evictions.clone(), &p.namespace().unwrap_or_default());
        let name = p.name_any();
        let res = if force {
            api.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ())
        } else {
            api.evict(&name, &EvictParams::default()).await.map(|_| ())
        };
        match res {
            Ok(()) => {
                tracing::info!(pod = %format!("{}/{name}", p.namespace().unwrap_or_default()), node, forced = force, "evicted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s))
                if s.code == 429 || (s.code == 500 && s.message.contains("isruption")) =>
            {
                st.blocked += 1;
                ctx.events
                    .warning(
                        &p.object_ref(&()),
                        "EvictionBlocked",
                        "Draining",
                        format!(
                            "eviction from node {node} (NodeClaim {}) refused, will retry: {}",
                            on_behalf.name_any(),
                            s.message
                        ),
                    )
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(st)
}

/// When the drain stops honouring PDBs and do-not-disrupt (deletion + terminationGracePeriod).
fn force_at(claim: &NodeClaim) -> Option<Timestamp> {
    let deleted = claim.metadata.deletion_timestamp.as_ref()?.0;
    let grace = parse_duration_seconds(claim.spec.termination_grace_period.as_deref()?).ok()?;
    deleted
        .checked_add(SignedDuration::from_secs_f64(grace))
        .ok()
}

/// Deletes the instance (already gone counts as deleted) and says whether it is gone now: an
/// instance still shutting down is asked about again later, and only then may the finalizer go.
pub async fn instance_gone<P: CloudProvider>(
    provider: &P,
    provider_id: &str,
) -> Result<bool, CloudError> {
    match provider.delete(provider_id).await {
        Ok(()) | Err(CloudError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(provider.get(provider_id).await?.is_none())
}

/// Terminates a NodeClaim that is being deleted.
pub async fn terminate<P: CloudProvider>(claim: &NodeClaim, ctx: &Ctx<P>) -> Result<Action, Error> {
    if !claim
        .finalizers()
        .iter()
        .any(|f| f == labels::TERMINATION_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let name = claim.name_any();
    let provider_id = claim_provider_id(claim).map(str::to_string).or_else(|| {
        ctx.launched
            .lock()
            .expect("lock")
            .get(&name)
            .map(|i| i.provider_id.clone())
    });
    let node = provider_id
        .as_deref()
        .and_then(|pid| ctx.stores.node_by_provider_id(pid))
        .or_else(|| {
            let n = claim.status.as_ref()?.node_name.clone()?;
            ctx.stores
                .nodes
                .find(|x| x.metadata.name.as_deref() == Some(n.as_str()))
        });
    if let Some(node) = &node {
        cordon_and_taint(ctx, node).await?;
        let force = force_at(claim).is_some_and(|t| ctx.now() >= t);
        let st = drain(ctx, &node.name_any(), claim, force).await?;
        if st.remaining > 0 {
            tracing::debug!(nodeclaim = %name, node = %node.name_any(), remaining = st.remaining, blocked = st.blocked, "draining");
            let wait = if st.blocked > 0 { 5 } else { 1 };
            return Ok(Action::requeue(Duration::from_secs(wait)));
        }
    }
    if let Some(pid) = &provider_id
        && !instance_gone(&*ctx.provider, pid).await?
    {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    // Clouds whose Node object outlives the instance: remove it too, then let it go (our Node
    // finalizer is removed here, before the NodeClaim's, so nothing waits on the other).
    if let Some(node) = &node {
        match Api::<Node>::all(ctx.client.clone())
            .delete(&node.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        if node_termination::release(&ctx.client, &node.name_any()).await? {
            ctx.events
                .normal(
                    &node.object_ref(&()),
                    "Terminated",
                    "Terminating",
                    format!(
                        "drained, instance {} gone, NodeClaim {name} finishing: termination \
                         finalizer removed",
                        provider_id.as_deref().unwrap_or("(never launched)")
                    ),
                )
                .await;
        }
    }
    let rest: Vec<String> = claim
        .finalizers()
        .iter()
        .filter(|f| *f != labels::TERMINATION_FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({ "metadata": { "finalizers": rest, "resourceVersion": claim.resource_version() } });
    match Api::<NodeClaim>::all(ctx.client.clone())
        .patch(&name, &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    ctx.launched.lock().expect("lock").remove(&name);
    tracing::info!(nodeclaim = %name, node = ?node.as_ref().map(|n| n.name_any()), "terminated");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_cloud::fake::{FakeCloud, Operation, ready};

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn drain_order() {
        let plain = pod("metadata: {name: a}\nspec: {containers: []}");
        let critical = pod(
            "metadata: {name: b}\nspec: {containers: [], priorityClassName: system-node-critical}",
        );
        let ds = pod(
            "metadata: {name: c, ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: d, uid: u, controller: true}]}\nspec: {containers: []}",
        );
        let mirror = pod(
            "metadata: {name: d, annotations: {kubernetes.io/config.mirror: x}}\nspec: {containers: []}",
        );
        let done = pod("metadata: {name: e}\nspec: {containers: []}\nstatus: {phase: Succeeded}");
        assert_eq!(drain_group(&plain), Some(0));
        assert_eq!(drain_group(&critical), Some(1));
        assert_eq!(drain_group(&ds), Some(2));
        assert_eq!(drain_group(&mirror), None);
        assert_eq!(drain_group(&done), None);
    }

    #[test]
    fn a_drain_step_takes_the_first_group_left() {
        let p = |yaml: &str| Arc::new(pod(yaml));
        let plain = p("metadata: {name: a}\nspec: {containers: []}");
        let waiting = p(
            "metadata: {name: b, annotations: {nodes.ballast.dev/do-not-disrupt: 'true'}}\nspec: {containers: []}",
        );
        let leaving = p(
            "metadata: {name: c, deletionTimestamp: '2026-01-01T00:00:00Z'}\nspec: {containers: []}",
        );
        let critical = p(
            "metadata: {name: d}\nspec: {containers: [], priorityClassName: system-cluster-critical}",
        );
        let daemon = p(
            "metadata: {name: e, ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: d, uid: u, controller: true}]}\nspec: {containers: []}",
        );
        let done = p("metadata: {name: f}\nspec: {containers: []}\nstatus: {phase: Failed}");
        let names = |g: &[Arc<Pod>]| g.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        let all = vec![
            daemon.clone(),
            critical.clone(),
            plain.clone(),
            waiting.clone(),
            leaving.clone(),
            done.clone(),
        ];
        // (case, pods on the node, force, pods evicted now, the drain's state)
        type Case<'a> = (&'a str, Vec<Arc<Pod>>, bool, Vec<&'a str>, DrainState);
        let cases: Vec<Case> = vec![
            (
                "ordinary pods first; do-not-disrupt waits; a pod being deleted is still to go",
                all.clone(),
                false,
                vec!["a"],
                DrainState {
                    remaining: 5,
                    blocked: 1,
                },
            ),
            (
                "forced: do-not-disrupt pods go with the ordinary ones",
                all,
                true,
                vec!["a", "b"],
                DrainState {
                    remaining: 5,
                    blocked: 0,
                },
            ),
            (
                "critical pods before daemon pods",
                vec![daemon.clone(), critical, done.clone()],
                false,
                vec!["d"],
                DrainState {
                    remaining: 2,
                    blocked: 0,
                },
            ),
            (
                "daemon pods last",
                vec![daemon, leaving.clone()],
                false,
                vec!["e"],
                DrainState {
                    remaining: 2,
                    blocked: 0,
                },
            ),
            (
                "only a pod being deleted: nothing to evict, still waiting for it",
                vec![leaving, done],
                false,
                vec![],
                DrainState {
                    remaining: 1,
                    blocked: 0,
                },
            ),
        ];
        for (name, pods, force, evict, state) in cases {
            let (group, st) = drain_step(pods, force);
            assert_eq!(names(&group), evict, "{name}");
            assert_eq!(st, state, "{name}");
        }
    }

    fn instance_of(cloud: &FakeCloud, claim: &str) -> String {
        let request = ballast_cloud::LaunchRequest {
            node_claim: NodeClaim::new(claim, Default::default()),
            offerings: vec![ballast_cloud::LaunchOffering {
                instance_type: ballast_scheduling::InstanceType {
                    name: "m.large".into(),
                    capacity: Default::default(),
                    overhead: Default::default(),
                    labels: Default::default(),
                    offerings: vec![],
                },
                zone: "z1".into(),
                capacity_type: "spot".into(),
                price: 0.1,
            }],
        };
        ready(cloud.create(&request)).unwrap().provider_id
    }

    #[test]
    fn the_instance_is_deleted_and_waited_for() {
        let cloud = FakeCloud::new(vec![]);
        let pid = instance_of(&cloud, "c1");
        assert_eq!(ready(instance_gone(&cloud, &pid)), Ok(true));
        assert!(cloud.running().is_empty());
        // Already gone: deleting again is NotFound, which counts as deleted.
        assert_eq!(ready(instance_gone(&cloud, &pid)), Ok(true));
        assert_eq!(cloud.calls(Operation::Delete), 2);
    }

    #[test]
    fn an_instance_shutting_down_is_asked_about_again() {
        let cloud = FakeCloud::new(vec![]);
        cloud.lingering(1);
        let pid = instance_of(&cloud, "c1");
        assert_eq!(ready(instance_gone(&cloud, &pid)), Ok(false));
        assert_eq!(ready(instance_gone(&cloud, &pid)), Ok(true));
    }

    #[test]
    fn a_failed_delete_keeps_the_finalizer() {
        let cloud = FakeCloud::new(vec![]);
        let pid = instance_of(&cloud, "c1");
        let throttled = CloudError::Throttled {
            operation: "TerminateInstances".into(),
            attempts: 3,
            message: "RequestLimitExceeded".into(),
        };
        cloud.fail_next(Operation::Delete, 1, throttled.clone());
        assert_eq!(ready(instance_gone(&cloud, &pid)), Err(throttled));
        assert_eq!(cloud.running().len(), 1);
        cloud.fail_next(Operation::Get, 1, CloudError::Transient("timeout".into()));
        assert_eq!(
            ready(instance_gone(&cloud, &pid)),
            Err(CloudError::Transient("timeout".into()))
        );
        assert!(cloud.running().is_empty(), "deleted, but not yet seen gone");
        assert_eq!(ready(instance_gone(&cloud, &pid)), Ok(true));
    }

    #[test]
    fn grace_period_forces_the_drain() {
        let mut c = NodeClaim::new("c", Default::default());
        assert_eq!(force_at(&c), None);
        c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
        c.spec.termination_grace_period = Some("1h".into());
        assert_eq!(force_at(&c), Some("2026-01-01T01:00:00Z".parse().unwrap()));
    }
}
