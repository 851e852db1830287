//! The NodeClaim reconciler: launch through the cloud provider, then follow the node until it is
//! registered and initialized (`claim_lifecycle`), deleting NodeClaims whose launch or
//! registration timed out. A NodeClaim being deleted is handed to [`super::termination`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ballast_api::nodes::{NodeClaim, NodeClaimStatus, labels};
use ballast_cloud::{
    CloudError, CloudProvider, Instance, LaunchOffering, LaunchRequest, OfferingKey,
};
use ballast_nodes::{
    ClaimObservation, ConditionState, ObjectKind, ObservedNode, Status, Timeout, claim_lifecycle,
    merge_conditions, model_requirement, observe, requirement_holds, resources_to_list,
};
use ballast_scheduling::{self as sched, InstanceType};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{DeleteParams, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use super::cluster::{claim_pool, claim_provider_id};
use super::error::Error;
use super::metrics::terminated;
use super::{Ctx, drift, patch_params, termination};
use crate::watch_backoff::WatchBackoff;

/// How soon a launch that failed (a transient cloud error) is tried again.
pub const LAUNCH_RETRY: Duration = Duration::from_secs(5);

/// Most offerings handed to one launch (Karpenter's CreateFleet limit).
pub const MAX_OFFERINGS: usize = 60;

/// The offerings a NodeClaim may launch as, cheapest first: every available offering of the
/// catalog whose instance type, zone, capacity type and type labels satisfy the NodeClaim's
/// requirements (requirements on labels no instance type defines are the node's own labels and
/// do not narrow the offerings).
pub fn offerings_for(claim: &NodeClaim, types: &[InstanceType]) -> Vec<LaunchOffering> {
    let name = claim.name_any();
    let mut known: std::collections::BTreeSet<&str> = types
        .iter()
        .flat_map(|t| t.labels.keys().map(String::as_str))
        .collect();
    known.extend([
        sched::labels::INSTANCE_TYPE,
        sched::labels::ZONE,
        sched::labels::CAPACITY_TYPE,
        labels::CAPACITY_TYPE,
    ]);
    let reqs: Vec<sched::Requirement> = claim
        .spec
        .requirements
        .iter()
        .filter_map(|r| {
            model_requirement(r, ObjectKind::NodeClaim, &name, "spec.requirements").ok()
        })
        .filter(|r| known.contains(r.key.as_str()))
        .collect();
    let mut out = vec![];
    for t in types {
        for o in t.offerings.iter().filter(|o| o.available) {
            let mut l: BTreeMap<String, String> = t.labels.clone();
            l.insert(sched::labels::INSTANCE_TYPE.into(), t.name.clone());
            l.insert(sched::labels::ZONE.into(), o.zone.clone());
            l.insert(sched::labels::CAPACITY_TYPE.into(), o.capacity_type.clone());
            l.insert(labels::CAPACITY_TYPE.into(), o.capacity_type.clone());
            if reqs.iter().all(|r| requirement_holds(r, &l)) {
                out.push(LaunchOffering {
                    instance_type: t.clone(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type.clone(),
                    price: o.price,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        a.price
            .total_cmp(&b.price)
            .then_with(|| a.instance_type.name.cmp(&b.instance_type.name))
            .then_with(|| (&a.zone, &a.capacity_type).cmp(&(&b.zone, &b.capacity_type)))
    });
    out.truncate(MAX_OFFERINGS);
    out
}

/// Why a launch gave no instance.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchFailure {
    /// Every offering is out of capacity: delete the NodeClaim so it is provisioned again.
    NoOfferings(String),
    /// Try again later (node class not ready, transient cloud error).
    Retry(String),
}

/// An insufficient-capacity answer met during a launch: the offerings refused (the first one
/// tried when the provider named none) and the provider's words.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub offerings: Vec<OfferingKey>,
    pub message: String,
}

impl Refusal {
    fn names(&self) -> String {
        let names: Vec<String> = self.offerings.iter().map(|k| k.to_string()).collect();
        names.join(", ")
    }
}

/// Launches an instance for the NodeClaim from `offerings` (cheapest first): an offering the
/// provider refuses for insufficient capacity is told to `refused` at once (so it can be marked
/// unavailable before any other launch reads the catalog) and left out of the next try; any
/// other error ends the launch, to be tried again later.
pub async fn launch_through<P: CloudProvider>(
    provider: &P,
    claim: &NodeClaim,
    mut offerings: Vec<LaunchOffering>,
    mut refused: impl FnMut(&Refusal),
) -> Result<Instance, LaunchFailure> {
    let mut failures = vec![];
    for _ in 0..MAX_OFFERINGS {
        if offerings.is_empty() {
            let mut why =
                "no available offering satisfies the NodeClaim's requirements".to_string();
            if !failures.is_empty() {
                why = format!("{why} ({})", failures.join("; "));
            }
            return Err(LaunchFailure::NoOfferings(why));
        }
        let req = LaunchRequest {
            node_claim: claim.clone(),
            offerings: offerings.clone(),
        };
        match provider.create(&req).await {
            Ok(i) => return Ok(i),
            Err(CloudError::InsufficientCapacity {
                offerings: failed,
                message,
            }) => {
                let refusal = Refusal {
                    offerings: if failed.is_empty() {
                        vec![offerings[0].key()]
                    } else {
                        failed
                    },
                    message,
                };
                refused(&refusal);
                failures.push(format!("{}: {}", refusal.names(), refusal.message));
                offerings.retain(|o| !refusal.offerings.contains(&o.key()));
            }
            Err(e) => return Err(LaunchFailure::Retry(e.to_string())),
        }
    }
    Err(LaunchFailure::NoOfferings(
        "too many launch attempts".into(),
    ))
}

async fn launch<P: CloudProvider>(
    claim: &NodeClaim,
    ctx: &Ctx<P>,
    now: Timestamp,
) -> Result<Instance, LaunchFailure> {
    let types = ctx
        .instance_types(now)
        .await
        .map_err(|e| LaunchFailure::Retry(e.to_string()))?;
    let mut refusals = vec![];
    let launched = launch_through(
        &*ctx.provider,
        claim,
        offerings_for(claim, &types),
        |r: &Refusal| {
            ctx.mark_unavailable(&r.offerings, now);
            tracing::info!(nodeclaim = %claim.name_any(), offerings = %r.names(), "insufficient capacity; trying the next offering");
            refusals.push(r.clone());
        },
    )
    .await;
    for r in refusals {
        ctx.events
            .warning(
                &claim.object_ref(&()),
                "InsufficientCapacity",
                "Launching",
                format!(
                    "{}: {}; marked unavailable, trying the next offering",
                    r.names(),
                    r.message
                ),
            )
            .await;
    }
    if let Ok(i) = &launched {
        let pool = claim_pool(claim).unwrap_or_default();
        ctx.opts.metrics.launched(pool, &i.capacity_type);
    }
    launched
}

fn observed(node: &Node) -> ObservedNode {
    ObservedNode {
        name: node.name_any(),
        ready: observe::node_ready(node),
        taints: observe::node_taints(node),
        allocatable: ballast_nodes::readable_resources(
            node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        ),
    }
}

fn has_finalizer(c: &NodeClaim) -> bool {
    c.finalizers()
        .iter()
        .any(|f| f == labels::TERMINATION_FINALIZER)
}

/// Puts the NodeClaim's labels and the registered label on its node (each under both spellings,
/// `ballast_scheduling::aliases`), and any of its taints and
/// startup taints the node lacks — once, at registration (as Karpenter does).
async fn sync_registration<P: CloudProvider>(
    ctx: &Ctx<P>,
    claim: &NodeClaim,
    node: &Node,
) -> Result<(), kube::Error> {
    let node_labels = node.metadata.labels.clone().unwrap_or_default();
    if node_labels.contains_key(labels::REGISTERED) {
        return Ok(());
    }
    let mut add: BTreeMap<String, String> = claim.labels().clone();
    add.insert(labels::REGISTERED.into(), "true".into());
    // Karpenter's spellings too, so workloads written for Karpenter select the node.
    sched::aliases::add_karpenter_spellings(&mut add);
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let before = taints.len();
    for t in claim.spec.taints.iter().chain(&claim.spec.startup_taints) {
        let effect = format!("{:?}", t.effect);
        if !taints.iter().any(|x| x.key == t.key && x.effect == effect) {
            taints.push(Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect,
                time_added: None,
            });
        }
    }
    let mut patch = serde_json::json!({ "metadata": { "labels": add } });
    if taints.len() != before {
        patch["spec"] = serde_json::json!({ "taints": taints });
    }
    Api::<Node>::all(ctx.client.clone())
        .patch(&node.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    ctx.opts
        .metrics
        .registered(claim_pool(claim).unwrap_or_default());
    Ok(())
}

async fn mark_initialized<P: CloudProvider>(ctx: &Ctx<P>, node: &Node) -> Result<(), kube::Error> {
    if node.labels().contains_key(labels::INITIALIZED) {
        return Ok(());
    }
    let mut add = BTreeMap::from([(labels::INITIALIZED.to_string(), "true".to_string())]);
    sched::aliases::add_karpenter_spellings(&mut add);
    let patch = serde_json::json!({ "metadata": { "labels": add } });
    Api::<Node>::all(ctx.client.clone())
        .patch(&node.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn resource_list(r: &sched::Resources) -> Option<ballast_api::nodes::ResourceList> {
    (!r.is_zero()).then(|| resources_to_list(r))
}

async fn reconcile<P: CloudProvider>(
    claim: Arc<NodeClaim>,
    ctx: Arc<Ctx<P>>,
) -> Result<Action, Error> {
    if !ctx.stores.pool_in_scope(claim_pool(&claim)) {
        return Ok(Action::await_change());
    }
    if claim.metadata.deletion_timestamp.is_some() {
        ctx.drift_checks
            .lock()
            .expect("lock")
            .remove(&claim.name_any());
        return termination::terminate(&claim, &ctx).await;
    }
    let name = claim.name_any();
    let api: Api<NodeClaim> = Api::all(ctx.client.clone());
    if !has_finalizer(&claim) {
        let mut f = claim.finalizers().to_vec();
        f.push(labels::TERMINATION_FINALIZER.into());
        let patch = serde_json::json!({ "metadata": { "finalizers": f, "resourceVersion": claim.resource_version() } });
        api.patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await?;
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let now = ctx.now();
    let mut obs = ClaimObservation::default();
    let mut instance: Option<Instance> = None;
    let mut provider_id = claim_provider_id(&claim).map(str::to_string);
    if provider_id.is_none() {
        let cached = ctx.launched.lock().expect("lock").get(&name).cloned();
        let got = match cached {
            Some(i) => Ok(i),
            None => launch(&claim, &ctx, now).await,
        };
        match got {
            Ok(i) => {
                ctx.launched
                    .lock()
                    .expect("lock")
                    .insert(name.clone(), i.clone());
                provider_id = Some(i.provider_id.clone());
                instance = Some(i);
            }
            Err(LaunchFailure::NoOfferings(why)) => {
                tracing::warn!(nodeclaim = %name, "{why}; deleting it so its pods are provisioned again");
                ctx.events
                    .warning(
                        &claim.object_ref(&()),
                        "LaunchFailed",
                        "Launching",
                        format!("{why}; deleting the NodeClaim"),
                    )
                    .await;
                api.delete(&name, &DeleteParams::background()).await?;
                let pool = claim_pool(&claim).unwrap_or_default();
                ctx.opts.metrics.terminated(pool, terminated::LAUNCH_FAILED);
                return Ok(Action::await_change());
            }
            Err(LaunchFailure::Retry(why)) => {
                tracing::warn!(nodeclaim = %name, "launch failed: {why}");
                obs.launch_error = Some(why);
            }
        }
    } else {
        ctx.launched.lock().expect("lock").remove(&name);
    }
    obs.provider_id = provider_id.clone();
    let node = provider_id
        .as_deref()
        .and_then(|pid| ctx.stores.node_by_provider_id(pid))
        .filter(|n| n.metadata.deletion_timestamp.is_none());
    obs.node = node.as_deref().map(observed);
    let lc = claim_lifecycle(&claim, &obs, now, &ctx.opts.lifecycle);
    let initialized = lc
        .conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == Status::True);
    let mut states = lc.conditions.clone();
    states.push(ConditionState {
        type_: "Ready".into(),
        status: if initialized {
            Status::True
        } else {
            Status::Unknown
        },
        reason: if initialized {
            "Ready"
        } else {
            "NotInitialized"
        }
        .into(),
        message: if initialized {
            "initialized"
        } else {
            "waiting for launch, registration and initialization"
        }
        .into(),
    });
    let old = claim.status.clone().unwrap_or_default();
    let mut status = NodeClaimStatus {
        conditions: merge_conditions(&old.conditions, &states, now, claim.metadata.generation),
        node_name: node
            .as_ref()
            .map(|n| n.name_any())
            .or(old.node_name.clone()),
        provider_id: provider_id.clone(),
        ..old.clone()
    };
    if let Some(i) = &instance {
        status.capacity = resource_list(&i.capacity);
        status.allocatable = resource_list(&i.allocatable);
        status.image_id = i.image_id.clone();
    }
    if let Some(n) = &node
        && let Some(a) = n.status.as_ref().and_then(|s| s.allocatable.clone())
    {
        status.allocatable = Some(a);
    }
    let mut drift_wait = None;
    if initialized && provider_id.is_some() {
        let (conditions, wait) = check_drift(&ctx, &claim, &status.conditions, now).await;
        status.conditions = conditions;
        drift_wait = Some(wait);
    }
    if status != old {
        // lastPodEventTime belongs to the disruption controller: never written back from here.
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        if let Some(m) = body.as_object_mut() {
            m.remove("lastPodEventTime");
        }
        let patch = serde_json::json!({ "status": body });
        api.patch_status(&name, &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    if let Some(i) = &instance {
        // The labels now say what was launched (the in-flight model reads them).
        let patch = serde_json::json!({ "metadata": { "labels": {
            labels::INSTANCE_TYPE: i.instance_type,
            labels::ZONE: i.zone,
            labels::CAPACITY_TYPE: i.capacity_type,
        } } });
        api.patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(nodeclaim = %name, provider_id = %i.provider_id, instance_type = %i.instance_type, zone = %i.zone, capacity_type = %i.capacity_type, "launched");
    }
    if let Some(n) = &node {
        sync_registration(&ctx, &claim, n).await?;
        if initialized {
            mark_initialized(&ctx, n).await?;
        }
    }
    if let Some(t) = lc.delete {
        let why =
            format!("{t:?} timeout: deleting the NodeClaim so its pods are provisioned again");
        tracing::warn!(nodeclaim = %name, "{why}");
        ctx.events
            .warning(&claim.object_ref(&()), "Timeout", "Lifecycle", why)
            .await;
        api.delete(&name, &DeleteParams::background()).await?;
        let reason = match t {
            Timeout::Launch => terminated::LAUNCH_TIMEOUT,
            Timeout::Registration => terminated::REGISTRATION_TIMEOUT,
        };
        let pool = claim_pool(&claim).unwrap_or_default();
        ctx.opts.metrics.terminated(pool, reason);
        return Ok(Action::await_change());
    }
    let wait = match lc.requeue_at {
        Some(at) => Duration::from_secs_f64(at.duration_since(now).as_secs_f64().clamp(1.0, 60.0)),
        None if !initialized => Duration::from_secs(10),
        None => Duration::from_secs(300),
    };
    // A failed launch is tried again soon, whatever deadline the lifecycle waits for.
    let wait = match obs.launch_error {
        Some(_) => wait.min(LAUNCH_RETRY),
        None => wait,
    };
    let wait = match drift_wait {
        Some(d) => wait.min(d.max(Duration::from_secs(1))),
        None => wait,
    };
    Ok(Action::requeue(wait))
}

/// Asks the provider whether an initialized NodeClaim drifted when a check is due
/// ([`drift::due_in`]): the conditions to write, and how soon to ask again. A failed call is
/// logged and retried later; the conditions stay as they were.
async fn check_drift<P: CloudProvider>(
    ctx: &Ctx<P>,
    claim: &NodeClaim,
    conditions: &[ballast_api::common::Condition],
    now: Timestamp,
) -> (Vec<ballast_api::common::Condition>, Duration) {
    let name = claim.name_any();
    let class = drift::class_key(claim);
    let every = ctx.opts.drift_interval;
    let last = ctx.drift_checks.lock().expect("lock").get(&name).cloned();
    let wait = drift::due_in(last.as_ref(), &class, now, every);
    if !wait.is_zero() {
        return (conditions.to_vec(), wait);
    }
    let answer = ctx.provider.is_drifted(claim).await;
    let checked = drift::Checked {
        at: now,
        class: class.clone(),
        answered: answer.is_ok(),
    };
    let next = drift::due_in(Some(&checked), &class, now, every);
    ctx.drift_checks
        .lock()
        .expect("lock")
        .insert(name.clone(), checked);
    match answer {
        Ok(why) => {
            let was = drift::is_drifted(conditions);
            let out = drift::conditions(conditions, why.as_deref(), now, claim.metadata.generation);
            match (&why, was) {
                (Some(w), false) => {
                    tracing::info!(nodeclaim = %name, "{}", drift::message(w));
                    ctx.events
                        .normal(
                            &claim.object_ref(&()),
                            "Drifted",
                            "DriftCheck",
                            drift::message(w),
                        )
                        .await;
                }
                (None, true) => {
                    tracing::info!(nodeclaim = %name, "the cloud provider no longer reports drift");
                }
                _ => {}
            }
            (out, next)
        }
        Err(e) => {
            tracing::warn!(nodeclaim = %name, error = %e, "drift check failed; retrying in {:?}", next);
            (conditions.to_vec(), next)
        }
    }
}

fn error_policy<P: CloudProvider>(claim: Arc<NodeClaim>, e: &Error, _ctx: Arc<Ctx<P>>) -> Action {
    tracing::warn!(nodeclaim = %claim.name_any(), error = %e, "NodeClaim reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The NodeClaim controller (also woken by changes of the nodes with a NodePool label).
pub async fn run<P: CloudProvider>(ctx: Arc<Ctx<P>>) {
    let controller = Controller::new(
        Api::<NodeClaim>::all(ctx.client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let nodes_cfg = watcher::Config::default().labels(labels::NODEPOOL);
    controller
        .watches(
            Api::<Node>::all(ctx.client.clone()),
            nodes_cfg,
            move |node: Node| {
                let pid = observe::provider_id(&node).map(str::to_string);
                store
                    .state()
                    .iter()
                    .filter(|c| pid.is_some() && claim_provider_id(c) == pid.as_deref())
                    .map(|c| ObjectRef::from_obj(&**c))
                    .collect::<Vec<_>>()
            },
        )
        .trigger_backoff(WatchBackoff::default())
        .run(reconcile::<P>, error_policy::<P>, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "NodeClaim controller");
            }
        })
        .await;
}

#[cfg(test)]
#[path = "claims_launch_tests.rs"]
mod launch_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::nodes::{
        NodeClaimSpec, NodeSelectorRequirementWithMinValues, RequirementOperator,
    };
    use ballast_scheduling::{Offering, Resources};

    fn t(name: &str, arch: &str, offers: &[(&str, &str, f64, bool)]) -> InstanceType {
        InstanceType {
            name: name.into(),
            capacity: Resources::cpu_mem(2000, 4 << 30),
            overhead: Resources::default(),
            labels: BTreeMap::from([(sched::labels::ARCH.to_string(), arch.to_string())]),
            offerings: offers
                .iter()
                .map(|(z, c, p, a)| Offering {
                    zone: z.to_string(),
                    capacity_type: c.to_string(),
                    price: *p,
                    available: *a,
                })
                .collect(),
        }
    }

    fn req(
        key: &str,
        op: RequirementOperator,
        values: &[&str],
    ) -> NodeSelectorRequirementWithMinValues {
        NodeSelectorRequirementWithMinValues {
            key: key.into(),
            operator: op,
            values: values.iter().map(|v| v.to_string()).collect(),
            min_values: None,
        }
    }

    #[test]
    fn offerings_follow_requirements_and_price() {
        let types = vec![
            t(
                "a.large",
                "amd64",
                &[
                    ("z1", "spot", 0.03, true),
                    ("z2", "spot", 0.02, false),
                    ("z1", "on-demand", 0.09, true),
                ],
            ),
            t("b.large", "arm64", &[("z1", "spot", 0.01, true)]),
            t("c.large", "amd64", &[("z2", "on-demand", 0.05, true)]),
        ];
        let claim = NodeClaim::new(
            "c1",
            NodeClaimSpec {
                requirements: vec![
                    req(
                        labels::INSTANCE_TYPE,
                        RequirementOperator::In,
                        &["a.large", "b.large", "c.large"],
                    ),
                    req(labels::ARCH, RequirementOperator::In, &["amd64"]),
                    req(
                        labels::CAPACITY_TYPE,
                        RequirementOperator::In,
                        &["spot", "on-demand"],
                    ),
                    req("team", RequirementOperator::In, &["x"]),
                ],
                ..Default::default()
            },
        );
        let o = offerings_for(&claim, &types);
        let keys: Vec<String> = o.iter().map(|o| o.key().to_string()).collect();
        assert_eq!(
            keys,
            vec![
                "a.large/z1/spot",
                "c.large/z2/on-demand",
                "a.large/z1/on-demand"
            ]
        );
        let mut spot_only = claim.clone();
        spot_only.spec.requirements[2] =
            req(labels::CAPACITY_TYPE, RequirementOperator::In, &["spot"]);
        let o = offerings_for(&spot_only, &types);
        assert_eq!(o.len(), 1);
    }
}
