//! Provisioning: which NodeClaims to create for the pending pods, where every pod goes, and why
//! each pod that gets no node stays pending. Plus the batching rule that says when to solve.

use std::collections::BTreeMap;

use ballast_scheduling::{self as sched, PodRef, Reason, Relaxed, SolveOptions, Target};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::adapt::{self, LaunchPlan};
use crate::error::Error;
use crate::pool_types::{NoInstanceType, no_instance_type};
use crate::snapshot::{ClusterSnapshot, selector_matches};
use crate::world::World;

/// Batching window: the first pending pod opens it; each newly seen pod extends it while pods
/// keep arriving less than `idle` apart, up to `max` after it opened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchWindow {
    pub idle_seconds: f64,
    pub max_seconds: f64,
}

impl Default for BatchWindow {
    fn default() -> Self {
        BatchWindow {
            idle_seconds: 1.0,
            max_seconds: 10.0,
        }
    }
}

/// What the batching rule says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchState {
    /// Solve now.
    pub solve_now: bool,
    /// Otherwise, when to look again (None: nothing pending).
    pub wake_at: Option<Timestamp>,
}

fn plus(t: Timestamp, seconds: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(seconds.max(0.0)))
        .unwrap_or(Timestamp::MAX)
}

/// The batching rule. `first_seen` are the times the provisioner first saw each pod that is
/// pending and not yet part of a solve. Solve when the newest arrived at least `idle` ago or the
/// oldest at least `max` ago; else wake at whichever of those comes first.
pub fn batch_state(first_seen: &[Timestamp], now: Timestamp, w: &BatchWindow) -> BatchState {
    let (Some(&oldest), Some(&newest)) = (first_seen.iter().min(), first_seen.iter().max()) else {
        return BatchState {
            solve_now: false,
            wake_at: None,
        };
    };
    let idle_end = plus(newest, w.idle_seconds);
    let max_end = plus(oldest, w.max_seconds);
    if now >= idle_end || now >= max_end {
        BatchState {
            solve_now: true,
            wake_at: None,
        }
    } else {
        BatchState {
            solve_now: false,
            wake_at: Some(idle_end.min(max_end)),
        }
    }
}

/// The batching rule over a snapshot's pending pods (a pod with no `firstSeen` counts as seen now).
pub fn batch_state_for(snap: &ClusterSnapshot, now: Timestamp, w: &BatchWindow) -> BatchState {
    let seen: Vec<Timestamp> = snap
        .pending_pods
        .iter()
        .map(|p| p.first_seen.unwrap_or(now))
        .collect();
    batch_state(&seen, now, w)
}

/// Provisioning knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[derive(Default)]
pub struct ProvisionOptions {
    pub solve: SolveOptions,
    pub batch: BatchWindow,
}

/// Where a pod will go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum Destination {
    /// An existing node.
    Node(String),
    /// A NodeClaim already in flight.
    InFlight(String),
    /// A NodeClaim this decision creates.
    NewNodeClaim(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPlacement {
    pub pod: PodRef,
    pub to: Destination,
}

/// Why a pod stays pending, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PendingCategory {
    /// A NodePool could take it but its limits are reached.
    LimitsReached,
    /// Every fitting instance type is out of capacity in the allowed zones / capacity types.
    NoAvailableOffering,
    /// Topology spread or pod (anti-)affinity cannot be met.
    Topology,
    HostPort,
    /// Needs more than the largest instance type offers.
    TooLarge,
    /// A bound volume (or its storage class) is in zones no NodePool offers.
    VolumeZone,
    /// Its node selector / required affinity matches no NodePool.
    UnsatisfiableRequirements,
    /// No NodePool's taints are tolerated.
    TaintsNotTolerated,
    NoNodePools,
    Other,
}

fn category(r: &Reason) -> PendingCategory {
    use PendingCategory as C;
    match r {
        Reason::NoNodePools => C::NoNodePools,
        Reason::TaintNotTolerated { .. } => C::TaintsNotTolerated,
        Reason::Requirement { .. } | Reason::ConflictingPreferences | Reason::MinValues { .. } => {
            C::UnsatisfiableRequirements
        }
        Reason::VolumeZone { .. } => C::VolumeZone,
        Reason::ExceedsLargestInstanceType { .. } | Reason::NoInstanceTypeFits { .. } => {
            C::TooLarge
        }
        Reason::NoAvailableOffering => C::NoAvailableOffering,
        Reason::LimitsReached { .. } => C::LimitsReached,
        Reason::TopologySpread { .. }
        | Reason::PodAffinity { .. }
        | Reason::PodAntiAffinity { .. }
        | Reason::ExistingPodAntiAffinity { .. }
        | Reason::TopologyKeyUndetermined { .. } => C::Topology,
        Reason::HostPortConflict { .. } => C::HostPort,
        Reason::Cordoned | Reason::InsufficientResource { .. } | Reason::StaticNodePool => C::Other,
    }
}

/// A pod that gets no node, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingExplanation {
    pub pod: PodRef,
    /// The most actionable reason across NodePools (limits before offerings before constraints).
    pub category: PendingCategory,
    /// (NodePool, why it cannot make a node for the pod).
    pub node_pools: Vec<(String, String)>,
    /// (why, how many existing nodes), most common first.
    pub nodes: Vec<(String, usize)>,
    pub message: String,
}

/// What provisioning decides for one batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningDecision {
    /// NodeClaims to create, each with its instance types ordered by price.
    pub node_claims: Vec<LaunchPlan>,
    /// Where each placed pod goes, in the order the solver committed them.
    pub placements: Vec<PodPlacement>,
    pub unschedulable: Vec<PendingExplanation>,
    /// Preferences dropped so a pod could be placed.
    pub relaxed: Vec<Relaxed>,
    /// $ per hour the new NodeClaims add (at their cheapest offering).
    pub cost_per_hour: f64,
    /// Objects left out because they are invalid.
    pub skipped: Vec<Error>,
}

/// Decides which NodeClaims to create for the snapshot's pending pods (plus the pods of nodes
/// being deleted). Existing and in-flight capacity is used first.
///
/// Bound pods that can only matter to the solve through the room they take are folded into
/// their node (see [`fold_into`] and `docs/nodes.md`); the decision is the one
/// [`provision_unfolded`] makes.
pub fn provision(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &ProvisionOptions,
) -> Result<ProvisioningDecision, Error> {
    provision_with_memo(snap, now, opts, &mut ProvisionMemo::default())
}

/// [`provision`], reusing what earlier calls with the same memo worked out about the bound pods
/// of nodes whose [`ClusterNode::pods_revision`](crate::snapshot::ClusterNode::pods_revision),
/// allocatable and deletion mark have not changed. The decision is the same as without it.
pub fn provision_with_memo(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &ProvisionOptions,
    memo: &mut ProvisionMemo,
) -> Result<ProvisioningDecision, Error> {
    provision_with(snap, now, opts, Some(memo))
}

/// As [`provision`], handing every bound pod to the solver as a pod of its own: the reference
/// the folding is tested against, slower on large clusters.
pub fn provision_unfolded(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &ProvisionOptions,
) -> Result<ProvisioningDecision, Error> {
    provision_with(snap, now, opts, None)
}

fn provision_with(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &ProvisionOptions,
    memo: Option<&mut ProvisionMemo>,
) -> Result<ProvisioningDecision, Error> {
    let world = World::new(snap)?;
    let mut skipped = world.skipped.clone();
    let in_flight = world.in_flight_claims(&mut skipped);
    let in_flight_names: std::collections::BTreeSet<String> =
        in_flight.iter().map(|c| c.name.clone()).collect();
    let mut model = sched::Snapshot {
        nodes: vec![],
        in_flight,
        pods: vec![],
        node_pools: world.model_pools(),
        instance_types: world.types.to_vec(),
        namespaces: snap.namespaces.clone(),
    };
    let folds = memo.and_then(|m| m.prepare(snap));
    for (i, n) in snap.nodes.iter().enumerate() {
        if n.deleting {
            for p in n.pods.iter().filter(|p| p.is_reschedulable()) {
                let mut mp = adapt::model_pod(&p.pod);
                mp.node_name = None;
                model.pods.push(mp);
            }
            continue;
        }
        let mut node = world.model_node(i);
        let mut bound = |p: &sched::Pod| {
            let mut mp = adapt::model_pod(p);
            mp.node_name = Some(n.name.clone());
            model.pods.push(mp);
        };
        match folds.as_ref().and_then(|f| f[i]) {
            Some(f) => {
                if f.folded {
                    // NodePool limits count a node at its capacity, which defaults to its
                    // allocatable: keep counting the node as it was.
                    node.capacity = Some(
                        node.capacity
                            .take()
                            .unwrap_or_else(|| node.allocatable.clone()),
                    );
                    node.allocatable = f.allocatable.clone();
                }
                for &k in &f.kept {
                    bound(&n.pods[k].pod);
                }
            }
            None => {
                for p in n.pods.iter().filter(|p| !p.terminal) {
                    bound(&p.pod);
                }
            }
        }
        model.nodes.push(node);
    }
    for p in &snap.pending_pods {
        let mut mp = adapt::model_pod(&p.pod);
        mp.node_name = None;
        model.pods.push(mp);
    }
    let solution = sched::solve(&model, &opts.solve)?;

    // New claims and explanations only name pending pods.
    let pods_by_key: BTreeMap<PodRef, &sched::Pod> = model
        .pods
        .iter()
        .filter(|p| p.node_name.is_none())
        .map(|p| (p.key(), p))
        .collect();
    let seed = now.as_nanosecond();
    let mut plans = vec![];
    for (i, c) in solution.new_claims.iter().enumerate() {
        let pool = &world.pools[world.pool_idx[&c.node_pool]];
        let pods: Vec<&sched::Pod> = c
            .pods
            .iter()
            .filter_map(|k| pods_by_key.get(k).copied())
            .collect();
        let name = adapt::claim_name(&c.node_pool, seed, i, &c.pods);
        plans.push(adapt::launch_plan(
            c,
            pool.api,
            &pool.model,
            &world.types,
            &pods,
            &name,
            &|_, _| true,
        )?);
    }
    let placements = solution
        .placements
        .iter()
        .map(|pl| PodPlacement {
            pod: pl.pod.clone(),
            to: match &pl.target {
                Target::Node(n) if in_flight_names.contains(n) => Destination::InFlight(n.clone()),
                Target::Node(n) => Destination::Node(n.clone()),
                Target::NewClaim(i) => Destination::NewNodeClaim(plans[*i].name.clone()),
            },
        })
        .collect();
    let without_types: BTreeMap<&str, NoInstanceType> = world
        .pools
        .iter()
        .filter_map(|p| {
            let why = no_instance_type(&p.model.model, &world.types)?;
            Some((p.model.name.as_str(), why))
        })
        .collect();
    let unschedulable = solution
        .unschedulable
        .iter()
        .map(|u| explain_with_pools(u, pods_by_key.get(&u.pod).copied(), &without_types))
        .collect();
    Ok(ProvisioningDecision {
        cost_per_hour: plans.iter().map(|p| p.price).sum(),
        node_claims: plans,
        placements,
        unschedulable,
        relaxed: solution.relaxed.clone(),
        skipped,
    })
}

/// [`explain_pending`], with the reason of each pool that has no instance type at all replaced by
/// the requirements to blame (the solver only sees that the pool's largest type offers nothing);
/// such a pool counts as [`PendingCategory::UnsatisfiableRequirements`].
fn explain_with_pools(
    u: &sched::Unschedulable,
    pod: Option<&sched::Pod>,
    without_types: &BTreeMap<&str, NoInstanceType>,
) -> PendingExplanation {
    let mut e = explain_pending(u, pod);
    if !u
        .node_pools
        .iter()
        .any(|(p, _)| without_types.contains_key(p.as_str()))
    {
        return e;
    }
    let live = sched::Unschedulable {
        node_pools: u
            .node_pools
            .iter()
            .filter(|(p, _)| !without_types.contains_key(p.as_str()))
            .cloned()
            .collect(),
        ..u.clone()
    };
    e.category = PendingCategory::UnsatisfiableRequirements;
    if !live.node_pools.is_empty() {
        e.category = e.category.min(explain_pending(&live, pod).category);
    }
    for (pool, why) in e.node_pools.iter_mut() {
        if let Some(nt) = without_types.get(pool.as_str()) {
            let new = nt.to_string();
            e.message = e.message.replace(
                &format!(" NodePool {pool}: {why};"),
                &format!(" NodePool {pool}: {new};"),
            );
            *why = new;
        }
    }
    e
}

/// Turns the solver's account of an unplaceable pod into a category and a sentence. With the
/// pod at hand, a zone requirement that comes from its volumes is reported as a volume problem.
pub fn explain_pending(u: &sched::Unschedulable, pod: Option<&sched::Pod>) -> PendingExplanation {
    let volume_zone = |r: &Reason| {
        matches!(r, Reason::Requirement { key, .. } if key == sched::labels::ZONE)
            && pod.is_some_and(|p| {
                p.volumes.iter().any(|v| !v.zones.is_empty())
                    && !p.node_selector.contains_key(sched::labels::ZONE)
                    && !p.affinity.node_affinity.required.iter().any(|t| {
                        t.match_expressions
                            .iter()
                            .any(|e| e.key == sched::labels::ZONE)
                    })
            })
    };
    let cat = |r: &Reason| {
        if volume_zone(r) {
            PendingCategory::VolumeZone
        } else {
            category(r)
        }
    };
    let category = if u.node_pools.is_empty() {
        if u.nodes.is_empty() {
            PendingCategory::NoNodePools
        } else {
            u.nodes
                .iter()
                .map(|(r, _)| cat(r))
                .min()
                .unwrap_or(PendingCategory::Other)
        }
    } else {
        u.node_pools
            .iter()
            .map(|(_, r)| cat(r))
            .min()
            .unwrap_or(PendingCategory::Other)
    };
    PendingExplanation {
        pod: u.pod.clone(),
        category,
        node_pools: u
            .node_pools
            .iter()
            .map(|(p, r)| (p.clone(), r.to_string()))
            .collect(),
        nodes: u.nodes.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        message: u.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Folding bound pods into their node.
//
// The solver reads a bound pod for four things: the room it takes on its node (its effective
// requests, one pod slot included), its host ports, its place in the counts of topology groups
// (topology spread and pod (anti-)affinity terms of the pending pods, and the required
// anti-affinity terms of bound pods) whose label selector matches it, and its own required
// anti-affinity terms. It also rejects the whole snapshot for a pod without a name, a duplicate
// pod or a negative quantity. Nothing else of a bound pod is read: not its priority, volumes,
// tolerations, node affinity or preferred terms, and no choice among existing nodes looks at
// their allocatable other than through "used + request <= allocatable" and "allocatable - used"
// (the free amount an explanation reports).
//
// So a bound pod with no host ports and no pod (anti-)affinity terms of its own, that no topology
// group of the solve can select, is nothing but used room. Taking its effective requests off its
// node's allocatable and leaving it out gives every such comparison and every reported free
// amount the same value. The node's capacity is set explicitly to what it was (its allocatable
// when it had none) so NodePool limits count the node as before.

/// What decides which bound pods may be folded into their node.
struct Folding<'s> {
    /// Label selectors of every topology group the solve can have: the topology spread and pod
    /// (anti-)affinity terms (required or preferred) of the pods to place and the required
    /// anti-affinity terms of bound pods. Namespaces are not looked at: a selector that matches
    /// a pod's labels keeps it whatever the namespaces, which can only keep more pods.
    selectors: &'s [sched::LabelSelector],
}

/// More distinct selectors than this and the folding is not worth the matching: nothing is
/// folded.
const MAX_SELECTORS: usize = 256;

/// Node allocatable amounts at or above this are left alone, so no sum the solver makes of the
/// remaining pods can saturate differently (the solver adds requests with saturation).
const FOLD_LIMIT: i64 = 1 << 60;

/// Kept across provisioning calls by a caller that sets `podsRevision` on its nodes (see
/// [`provision_with_memo`]): per node, what folding its bound pods gave, and what the checks
/// that decide whether anything may be folded read from its pods. An empty memo is always
/// correct; a node without a revision is worked out again on every call.
#[derive(Debug, Clone, Default)]
pub struct ProvisionMemo {
    /// The selectors the fold results were made under.
    selectors: Option<Vec<sched::LabelSelector>>,
    nodes: crate::revisions::ByRevision<NodeFold>,
}

#[derive(Debug, Clone)]
struct NodeFold {
    /// What folding depends on besides the pods.
    deleting: bool,
    allocatable: sched::Resources,
    /// Hashes of the names of its pods the solve sees.
    names: Vec<u64>,
    /// The topology-group selectors its pods bring (required anti-affinity of active pods; on a
    /// deleting node, every group selector of its movable pods, which go pending).
    selectors: Vec<sched::LabelSelector>,
    /// Folding under the memo's selectors (None until made, and on deleting nodes).
    fold: Option<Folded>,
}

/// A node's bound pods folded into its allocatable.
#[derive(Debug, Clone, PartialEq)]
struct Folded {
    allocatable: sched::Resources,
    folded: bool,
    /// Its active pods left as pods, by index.
    kept: Vec<usize>,
}

fn name_hash(namespace: &str, name: &str) -> u64 {
    use std::hash::BuildHasher;
    FnvBuild.hash_one((namespace, name))
}

/// Adds the selectors of `from` not yet in `to`, up to one past the limit.
fn merge_selectors(to: &mut Vec<sched::LabelSelector>, from: &[&sched::LabelSelector]) {
    for s in from {
        if to.len() <= MAX_SELECTORS && !to.contains(s) {
            to.push((*s).clone());
        }
    }
}

impl ProvisionMemo {
    /// Nodes whose pods were read again in the last call (for benchmarks and tests).
    pub fn last_read(&self) -> usize {
        self.nodes.read
    }

    /// Each node's folding, by snapshot index (None for deleting nodes), or None when nothing
    /// may be folded: a pod name used twice (the solver rejects the snapshot and must see every
    /// pod to say so) or too many distinct selectors.
    fn prepare(&mut self, snap: &ClusterSnapshot) -> Option<Vec<Option<&Folded>>> {
        self.nodes.refresh(
            &snap.nodes,
            |n, m| m.deleting == n.deleting && m.allocatable == n.allocatable,
            |n| {
                let mut names = Vec::with_capacity(n.pods.len());
                let mut selectors = vec![];
                for p in &n.pods {
                    let in_solve = if n.deleting {
                        p.is_reschedulable()
                    } else {
                        !p.terminal
                    };
                    if !in_solve {
                        continue;
                    }
                    names.push(name_hash(&p.pod.namespace, &p.pod.name));
                    let mut own = vec![];
                    if n.deleting {
                        group_selectors(&p.pod, &mut own);
                    } else {
                        for t in &p.pod.affinity.pod_anti_affinity.required {
                            add_selector(&t.label_selector, &mut own);
                        }
                    }
                    merge_selectors(&mut selectors, &own);
                }
                NodeFold {
                    deleting: n.deleting,
                    allocatable: n.allocatable.clone(),
                    names,
                    selectors,
                    fold: None,
                }
            },
        );

        // Names: hashed first; on a clash the names themselves decide.
        let total: usize = snap
            .nodes
            .iter()
            .map(|n| self.nodes.get(&n.name).names.len())
            .sum();
        let mut hashes: std::collections::HashSet<u64, FnvBuild> =
            std::collections::HashSet::with_capacity_and_hasher(
                total + snap.pending_pods.len(),
                FnvBuild,
            );
        let mut clash = false;
        for n in &snap.nodes {
            for h in &self.nodes.get(&n.name).names {
                clash |= !hashes.insert(*h);
            }
        }
        for p in &snap.pending_pods {
            clash |= !hashes.insert(name_hash(&p.pod.namespace, &p.pod.name));
        }
        if clash && !unique_names(snap) {
            return None;
        }

        let mut selectors: Vec<sched::LabelSelector> = vec![];
        for n in &snap.nodes {
            let own: Vec<&sched::LabelSelector> =
                self.nodes.get(&n.name).selectors.iter().collect();
            merge_selectors(&mut selectors, &own);
        }
        for p in &snap.pending_pods {
            let mut own = vec![];
            group_selectors(&p.pod, &mut own);
            merge_selectors(&mut selectors, &own);
        }
        if selectors.len() > MAX_SELECTORS {
            return None;
        }
        let same = self
            .selectors
            .as_ref()
            .is_some_and(|s| s.len() == selectors.len() && s.iter().all(|x| selectors.contains(x)));
        if !same {
            for m in self.nodes.values_mut() {
                m.fold = None;
            }
            self.selectors = Some(selectors);
        }
        let folding = Folding {
            selectors: self.selectors.as_deref().unwrap_or_default(),
        };
        for n in snap.nodes.iter().filter(|n| !n.deleting) {
            let m = self.nodes.get_mut(&n.name);
            match &m.fold {
                None => m.fold = Some(folding.fold(n)),
                Some(kept) => {
                    if cfg!(debug_assertions) {
                        assert!(
                            *kept == folding.fold(n),
                            "node {}: its pods changed but its podsRevision did not",
                            n.name
                        );
                    }
                }
            }
        }
        Some(
            snap.nodes
                .iter()
                .map(|n| self.nodes.get(&n.name).fold.as_ref())
                .collect(),
        )
    }
}

/// Whether no two pods the solve sees share a namespace and name.
fn unique_names(snap: &ClusterSnapshot) -> bool {
    let mut names = std::collections::HashSet::new();
    let bound = snap.nodes.iter().flat_map(|n| {
        n.pods.iter().filter(move |p| {
            if n.deleting {
                p.is_reschedulable()
            } else {
                !p.terminal
            }
        })
    });
    bound
        .map(|p| &p.pod)
        .chain(snap.pending_pods.iter().map(|p| &p.pod))
        .all(|p| names.insert((p.namespace.as_str(), p.name.as_str())))
}

impl Folding<'_> {
    /// Folds the active pods of a node that is not being deleted, in order.
    fn fold(&self, n: &crate::snapshot::ClusterNode) -> Folded {
        let mut out = Folded {
            allocatable: n.allocatable.clone(),
            folded: false,
            kept: vec![],
        };
        for (k, p) in n.pods.iter().enumerate().filter(|(_, p)| !p.terminal) {
            if self.foldable(&p.pod) && fold_into(&mut out.allocatable, &p.pod) {
                out.folded = true;
            } else {
                out.kept.push(k);
            }
        }
        out
    }

    /// Whether a bound pod is nothing but used room to the solver (its node aside).
    fn foldable(&self, p: &sched::Pod) -> bool {
        let a = &p.affinity;
        let negative = |r: &sched::Resources| r.iter().any(|(_, v)| v < 0);
        !p.name.is_empty()
            && p.host_ports.is_empty()
            && a.pod_affinity.required.is_empty()
            && a.pod_affinity.preferred.is_empty()
            && a.pod_anti_affinity.required.is_empty()
            && a.pod_anti_affinity.preferred.is_empty()
            && !negative(&p.requests)
            && !negative(&p.overhead)
            && !p.init_containers.iter().any(negative)
            && !self
                .selectors
                .iter()
                .any(|s| selector_matches(s, &p.labels))
    }
}

/// The selectors of the topology groups a pod to place brings: its topology spread and pod
/// (anti-)affinity terms, required or preferred. (A spread's `matchLabelKeys` only narrow its
/// selector, so the selector as written selects at least the pods the solver counts.)
fn group_selectors<'s>(p: &'s sched::Pod, out: &mut Vec<&'s sched::LabelSelector>) {
    for c in &p.topology_spread_constraints {
        add_selector(&c.label_selector, out);
    }
    let (a, anti) = (&p.affinity.pod_affinity, &p.affinity.pod_anti_affinity);
    for t in a.required.iter().chain(&anti.required) {
        add_selector(&t.label_selector, out);
    }
    for w in a.preferred.iter().chain(&anti.preferred) {
        add_selector(&w.pod_affinity_term.label_selector, out);
    }
}

/// Adds a selector once; an absent selector selects nothing (as in the solver) and is not added.
fn add_selector<'s>(s: &'s Option<sched::LabelSelector>, out: &mut Vec<&'s sched::LabelSelector>) {
    if let Some(s) = s
        && out.len() <= MAX_SELECTORS
        && !out.contains(&s)
    {
        out.push(s);
    }
}

/// Takes a bound pod's effective requests (one pod slot included) off `allocatable`, when every
/// amount it touches stays between 0 and [`FOLD_LIMIT`]; false (and `allocatable` unchanged)
/// otherwise, and the pod stays a pod: an overcommitted node's free amounts go negative only in
/// the solver's own arithmetic, as before.
fn fold_into(allocatable: &mut sched::Resources, p: &sched::Pod) -> bool {
    let req = p.effective_requests();
    let fits = req.iter().all(|(k, v)| {
        let a = allocatable.get(k);
        v == 0 || (a < FOLD_LIMIT && a >= v)
    });
    if !fits {
        return false;
    }
    for (k, v) in req.iter() {
        if v != 0 {
            let a = allocatable.get(k);
            allocatable.set(k, a - v);
        }
    }
    true
}

/// FNV-1a: a cheap hasher for the pod-name set (the names are not chosen by an adversary here,
/// and a collision only costs time).
#[derive(Clone, Copy, Default)]
struct FnvBuild;

struct Fnv(u64);

impl std::hash::BuildHasher for FnvBuild {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
