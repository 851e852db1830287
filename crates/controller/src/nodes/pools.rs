//! NodePool status: resources in use by the pool's NodeClaims (capacity summed, plus `nodes`),
//! `nodes` (their count, the scale subresource's replicas), a
//! `Ready` condition (the pool compiles, some instance type meets its requirements, and none of
//! its NodeClaims fails to launch) and a `LimitsReached` condition (its limits stop growth:
//! usage at a limit, or pending pods the solver could not place because of them). An event on the
//! pool when its limits start stopping growth.

use std::collections::BTreeMap;

use ballast_api::nodes::{NodeClaim, NodePool, NodePoolStatus, ResourceList, labels};
use ballast_cloud::CloudProvider;
use ballast_nodes::{
    ConditionState, PendingExplanation, Status, limits, merge_conditions, no_instance_type,
    node_pool_to_model, resources_to_list,
};
use ballast_scheduling::{self as sched, Resources};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};

use super::cluster::{claim_capacity, claim_pool, claim_provider_id};
use super::{Ctx, FIELD_MANAGER};

/// Condition type set while the pool's limits keep it from growing.
pub const LIMITS_REACHED: &str = "LimitsReached";

/// How much of the pool is in use: the capacity of its NodeClaims not being deleted, and their
/// count as `nodes`.
pub fn usage(
    claims: &[&ballast_api::nodes::NodeClaim],
    types: &[sched::InstanceType],
) -> Resources {
    let mut total = Resources::default();
    for c in claims {
        for (k, v) in claim_capacity(c, types).iter() {
            let cur = total.get(k);
            total.set(k, cur.saturating_add(v));
        }
    }
    total.set("nodes", claims.len() as i64);
    total
}

fn limits_prefix() -> String {
    let text = sched::Reason::LimitsReached {
        resource: String::new(),
    }
    .to_string();
    text.split('(').next().unwrap_or(&text).trim().to_string()
}

/// The `LimitsReached` condition of a pool: which limits are used up, and how many pending pods
/// this pool could not take because of its limits.
pub fn limits_condition(
    pool: &str,
    limits: Option<&ResourceList>,
    used: &Resources,
    pending: &[PendingExplanation],
) -> ConditionState {
    let Some(limits) = limits else {
        return ConditionState {
            type_: LIMITS_REACHED.into(),
            status: Status::False,
            reason: "NoLimits".into(),
            message: "the NodePool has no limits".into(),
        };
    };
    let prefix = limits_prefix();
    let full: Vec<String> = limits::limits_reached(limits, used)
        .iter()
        .map(|u| {
            let k = u.resource.as_str();
            format!("{k} {} of {}", show(k, u.used), show(k, u.limit))
        })
        .collect();
    let blocked = pending
        .iter()
        .filter(|e| {
            e.node_pools
                .iter()
                .any(|(p, why)| p == pool && why.starts_with(&prefix))
        })
        .count();
    if full.is_empty() && blocked == 0 {
        return ConditionState {
            type_: LIMITS_REACHED.into(),
            status: Status::False,
            reason: "WithinLimits".into(),
            message: "room left under every limit".into(),
        };
    }
    let mut parts = vec![];
    if !full.is_empty() {
        parts.push(format!("in use: {}", full.join(", ")));
    }
    if blocked > 0 {
        parts.push(format!(
            "{blocked} pending pods need more than the limits allow"
        ));
    }
    ConditionState {
        type_: LIMITS_REACHED.into(),
        status: Status::True,
        reason: "LimitsReached".into(),
        message: parts.join("; "),
    }
}

fn show(k: &str, v: i64) -> String {
    match k {
        "cpu" => sched::quantity::format_cpu_millis(v),
        "memory" | "ephemeral-storage" => sched::quantity::format_bytes(v),
        _ => v.to_string(),
    }
}

/// Why the pool cannot launch nodes now: the first of its NodeClaims that has no instance and a
/// `Launched=False` condition (a missing node class, a cloud error that persists), with its
/// message. The disruption core reads the resulting `Ready=False` so the pool's pending pods do
/// not hold back disruption elsewhere.
pub fn launch_failure(claims: &[&ballast_api::nodes::NodeClaim]) -> Option<String> {
    claims.iter().find_map(|c| {
        let s = c.status.as_ref()?;
        if s.provider_id.is_some() {
            return None;
        }
        let failed = s
            .conditions
            .iter()
            .find(|x| x.type_ == "Launched" && x.status == "False")?;
        Some(format!(
            "NodeClaim {} cannot launch: {}",
            c.metadata.name.as_deref().unwrap_or_default(),
            failed.message
        ))
    })
}

/// The status a pool should have now.
pub fn pool_status(
    pool: &NodePool,
    claims: &[&ballast_api::nodes::NodeClaim],
    types: &[sched::InstanceType],
    pending: &[PendingExplanation],
    now: Timestamp,
) -> NodePoolStatus {
    let name = pool.metadata.name.clone().unwrap_or_default();
    let used = usage(claims, types);
    let compiled = node_pool_to_model(pool, Resources::default());
    let ready = match &compiled {
        Ok(m) if let Some(none) = no_instance_type(&m.model, types) => ConditionState {
            type_: "Ready".into(),
            status: Status::False,
            reason: "NoInstanceType".into(),
            message: none.to_string(),
        },
        Ok(_) if let Some(failing) = launch_failure(claims) => ConditionState {
            type_: "Ready".into(),
            status: Status::False,
            reason: "LaunchFailing".into(),
            message: failing,
        },
        Ok(_) => ConditionState {
            type_: "Ready".into(),
            status: Status::True,
            reason: "Ready".into(),
            message: "the NodePool is valid".into(),
        },
        Err(e) => ConditionState {
            type_: "Ready".into(),
            status: Status::False,
            reason: "Invalid".into(),
            message: e.to_string(),
        },
    };
    let lim = limits_condition(&name, pool.spec.limits.as_ref(), &used, pending);
    let existing = pool
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let conditions = merge_conditions(&existing, &[ready, lim], now, pool.metadata.generation);
    let mut resources: BTreeMap<_, _> = resources_to_list(&used);
    resources
        .entry("nodes".into())
        .or_insert_with(|| k8s_openapi::apimachinery::pkg::api::resource::Quantity("0".into()));
    NodePoolStatus {
        resources: Some(resources),
        nodes: Some(claims.len() as i64),
        conditions,
    }
}

fn limits_reached(s: Option<&NodePoolStatus>) -> bool {
    s.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == LIMITS_REACHED && c.status == "True")
    })
}

/// The hourly price of a launched NodeClaim: its offering's (instance type, zone and capacity
/// type from its labels) in the catalog; `None` before it launched or for an offering the catalog
/// does not list.
pub fn launched_price(claim: &NodeClaim, types: &[sched::InstanceType]) -> Option<f64> {
    claim_provider_id(claim)?;
    let l = claim.metadata.labels.as_ref()?;
    let (name, zone, capacity) = (
        l.get(labels::INSTANCE_TYPE)?,
        l.get(labels::ZONE)?,
        l.get(labels::CAPACITY_TYPE)?,
    );
    let t = types.iter().find(|t| &t.name == name)?;
    t.offerings
        .iter()
        .find(|o| &o.zone == zone && &o.capacity_type == capacity)
        .map(|o| o.price)
}

/// The hourly price and the count of a pool's launched NodeClaims (not being deleted).
pub fn managed(claims: &[&NodeClaim], types: &[sched::InstanceType]) -> (f64, i64) {
    claims
        .iter()
        .filter(|c| claim_provider_id(c).is_some())
        .fold((0.0, 0), |(price, n), c| {
            (price + launched_price(c, types).unwrap_or(0.0), n + 1)
        })
}

/// Writes every pool's status where it changed, and sets the pools' price and node gauges.
pub async fn update_statuses<P: CloudProvider>(ctx: &Ctx<P>, pending: &[PendingExplanation]) {
    let now = ctx.now();
    let types = match ctx.instance_types(now).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "instance types unavailable for NodePool status");
            return;
        }
    };
    let claims = ctx.stores.claims();
    let api: Api<NodePool> = Api::all(ctx.client.clone());
    let mut priced = BTreeMap::new();
    for (name, pool) in ctx.stores.pools() {
        let mine: Vec<&ballast_api::nodes::NodeClaim> = claims
            .iter()
            .map(|c| &**c)
            .filter(|c| {
                claim_pool(c) == Some(name.as_str()) && c.metadata.deletion_timestamp.is_none()
            })
            .collect();
        priced.insert(name.clone(), managed(&mine, &types));
        let status = pool_status(&pool, &mine, &types, pending, now);
        if pool.status.as_ref() == Some(&status) {
            continue;
        }
        let became_limited = limits_reached(Some(&status)) && !limits_reached(pool.status.as_ref());
        let patch = serde_json::json!({ "status": status });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.patch_status(&name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => {
                if became_limited {
                    let msg = status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == LIMITS_REACHED)
                        .map(|c| c.message.clone())
                        .unwrap_or_default();
                    ctx.events
                        .warning(&pool.object_ref(&()), "LimitsReached", "Provisioning", msg)
                        .await;
                }
            }
            Err(e) => {
                tracing::warn!(nodepool = %name, error = %e, "updating NodePool status failed")
            }
        }
    }
    ctx.opts.metrics.managed(&priced);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_nodes::PendingCategory;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn the_price_of_launched_claims_comes_from_their_offering() {
        let claim = |name: &str, launched: bool| -> NodeClaim {
            let mut c: NodeClaim = serde_json::from_value(serde_json::json!({
                "apiVersion": "nodes.ballast.dev/v1", "kind": "NodeClaim",
                "metadata": { "name": name, "labels": {
                    labels::INSTANCE_TYPE: "m.large", labels::ZONE: "a",
                    labels::CAPACITY_TYPE: "spot" } },
                "spec": { "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": "k" } }
            }))
            .unwrap();
            if launched {
                c.status = Some(ballast_api::nodes::NodeClaimStatus {
                    provider_id: Some(format!("kwok://{name}")),
                    ..Default::default()
                });
            }
            c
        };
        let offering = |capacity_type: &str, price: f64| sched::Offering {
            zone: "a".into(),
            capacity_type: capacity_type.into(),
            price,
            available: true,
        };
        let types = vec![sched::InstanceType {
            name: "m.large".into(),
            capacity: Resources::cpu_mem(2000, 8 << 30),
            overhead: Resources::default(),
            labels: Default::default(),
            offerings: vec![offering("on-demand", 0.09), offering("spot", 0.03)],
        }];
        let (a, b, pending) = (claim("a", true), claim("b", true), claim("c", false));
        assert_eq!(launched_price(&a, &types), Some(0.03));
        assert_eq!(launched_price(&pending, &types), None);
        let (price, nodes) = managed(&[&a, &b, &pending], &types);
        assert!((price - 0.06).abs() < 1e-9, "{price}");
        assert_eq!(nodes, 2);
    }

    #[test]
    fn limits_condition_names_what_is_used_up() {
        let limits: ResourceList = [("cpu", "8"), ("nodes", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect();
        let used = Resources::cpu_mem(8000, 32 << 30).with("nodes", 2);
        let c = limits_condition("general", Some(&limits), &used, &[]);
        assert_eq!(c.status, Status::True);
        assert!(c.message.contains("cpu 8 of 8"), "{}", c.message);
        assert!(c.message.contains("nodes 2 of 2"), "{}", c.message);
        let used = Resources::cpu_mem(4000, 0).with("nodes", 1);
        let c = limits_condition("general", Some(&limits), &used, &[]);
        assert_eq!(c.status, Status::False);
        let pending = vec![PendingExplanation {
            pod: sched::PodRef {
                namespace: "a".into(),
                name: "p".into(),
            },
            category: PendingCategory::LimitsReached,
            node_pools: vec![(
                "general".into(),
                sched::Reason::LimitsReached {
                    resource: "cpu".into(),
                }
                .to_string(),
            )],
            nodes: vec![],
            message: String::new(),
        }];
        let c = limits_condition("general", Some(&limits), &used, &pending);
        assert_eq!(c.status, Status::True);
        assert!(c.message.contains("1 pending pods"), "{}", c.message);
        let c = limits_condition("other", Some(&limits), &used, &pending);
        assert_eq!(c.status, Status::False);
        assert_eq!(limits_condition("x", None, &used, &[]).reason, "NoLimits");
    }

    /// A zero limit is reached before the pool has any node: the pool says so instead of
    /// "room left under every limit".
    #[test]
    fn zero_limits_are_reached() {
        let limits: ResourceList = [("cpu".to_string(), Quantity("0".into()))].into();
        let c = limits_condition("zero", Some(&limits), &Resources::default(), &[]);
        assert_eq!(c.status, Status::True);
        assert_eq!(c.message, "in use: cpu 0 of 0");
    }

    #[test]
    fn a_claim_failing_to_launch_names_the_pool_not_ready() {
        let claim = |name: &str, pid: Option<&str>, launched: &str| {
            serde_json::from_value::<ballast_api::nodes::NodeClaim>(serde_json::json!({
                "apiVersion": "nodes.ballast.dev/v1", "kind": "NodeClaim",
                "metadata": { "name": name },
                "spec": { "nodeClassRef": { "group": "g", "kind": "k", "name": "n" } },
                "status": { "providerID": pid, "conditions": [{
                    "type": "Launched", "status": launched, "reason": "LaunchFailed",
                    "message": "KwokNodeClass gone not found",
                    "lastTransitionTime": "2025-06-01T11:00:00Z" }] },
            }))
            .unwrap()
        };
        let launching = claim("a", None, "Unknown");
        let running = claim("b", Some("kwok://b"), "False");
        let failing = claim("c", None, "False");
        assert_eq!(launch_failure(&[&launching, &running]), None);
        assert_eq!(
            launch_failure(&[&launching, &failing]).as_deref(),
            Some("NodeClaim c cannot launch: KwokNodeClass gone not found")
        );
    }

    #[test]
    fn a_pool_no_type_satisfies_is_not_ready() {
        let pool = |family: &str| -> NodePool {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
                "metadata": { "name": "p" },
                "spec": { "template": { "spec": {
                    "nodeClassRef": { "group": "g", "kind": "k", "name": "n" },
                    "requirements": [{ "key": "kubernetes.io/arch", "operator": "In",
                                       "values": [family] }],
                } } },
            }))
            .unwrap()
        };
        let types = vec![sched::InstanceType {
            name: "m1".into(),
            capacity: Resources::cpu_mem(2000, 1 << 30),
            overhead: Resources::default(),
            labels: [("kubernetes.io/arch".to_string(), "amd64".to_string())].into(),
            offerings: vec![sched::Offering {
                zone: "z1".into(),
                capacity_type: "on-demand".into(),
                price: 0.1,
                available: true,
            }],
        }];
        let ready = |p: &NodePool| {
            pool_status(p, &[], &types, &[], Timestamp::UNIX_EPOCH)
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
        };
        assert_eq!(ready(&pool("amd64")).status, "True");
        let c = ready(&pool("arm64"));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NoInstanceType")
        );
        assert_eq!(
            c.message,
            "requirement kubernetes.io/arch In [arm64] leaves no instance type"
        );
    }
}
