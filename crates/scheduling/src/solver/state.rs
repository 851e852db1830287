//! The changing state of one solve: the compiled cluster it works on, the pending pods in
//! placement order, the usage of existing nodes, the NodeClaims opened so far and the topology
//! counts. Everything here starts from [`Compiled`] and changes as pods are placed.

use super::*;

/// One solve: the fixed [`Compiled`] cluster (`cluster`) and everything placing pods changes.
///
/// Indices used throughout: a *slot* is an existing node or in-flight claim (`0..existing_count`,
/// indexing `cluster.slots`) or, from `existing_count` on, a NodeClaim opened in this solve; a
/// pod index `pi` indexes `pods`; a claim index `ci` indexes `claims`; a group index indexes
/// `groups`. A pod is placed at most once and never moved, except by the improvement passes,
/// which move only pods nothing ties to their node (see `pod_is_free`).
#[derive(Clone)]
pub(crate) struct Solver<'a> {
    /// What does not change while pods are placed: types, offerings, NodePools, existing nodes.
    pub(super) cluster: Compiled<'a>,
    /// The pods of this solve in placement order; `PendingPod::source` indexes it.
    pub(super) pod_sources: Vec<&'a Pod>,
    /// Label keys seen so far (the cluster's, then those pods bring); ids are stable.
    pub(super) keys: Interner<'a>,
    /// Label values (and names: namespaces, instance types, NodePools) seen so far.
    pub(super) vals: Interner<'a>,
    /// The NodePools, weight first then name, with the usage their limits are checked against
    /// (which grows as this solve opens NodeClaims).
    pub(super) pools: Vec<CompiledPool>,
    /// Requests already on each existing slot (bound pods, then the pods this solve placed).
    pub(super) slot_used: Cow<'a, [ResourceVector]>,
    /// Host ports taken on each existing slot.
    pub(super) slot_ports: Cow<'a, [Vec<HostPort>]>,
    /// The existing slots pods may go to in this solve, in order (all of them unless a prepared
    /// cluster took some nodes away).
    pub(super) live: Vec<usize>,
    /// The live slots that are not cordoned: where `place` looks.
    pub(super) placeable: Vec<usize>,
    /// NodeClaims opened in this solve (some may have been emptied by the improvement passes:
    /// `alive` false or no pods).
    pub(super) claims: Vec<OpenClaim>,
    /// The claims to try, as (pod count, claim index): fewest pods first unless `claim_order`
    /// says otherwise.
    pub(super) open_claims: BTreeSet<(usize, usize)>,
    /// Requirement alternatives compiled so far; `alternative_index` finds one by its set.
    pub(super) alternatives: Vec<Alternative>,
    pub(super) alternative_index: FxHashMap<ReqSet, usize>,
    /// Topology groups (spread, affinity, anti-affinity) with their counts per domain;
    /// `group_ids` finds one by its key.
    pub(super) groups: Vec<Group>,
    pub(super) group_ids: FxHashMap<GroupKey, usize>,
    /// The pending pods, compiled, in placement order.
    pub(super) pods: Vec<PendingPod>,
    /// Memo of `eligible_domains` by (topology key, alternatives).
    pub(super) domain_cache: FxHashMap<(u32, Vec<usize>), Vec<u32>>,
    /// (pod, slot) for every placement made, in order.
    pub(super) placements: Vec<(usize, usize)>,
    /// The order in which this solve's open NodeClaims are tried.
    pub(crate) claim_order: ClaimOrder,
}

/// What a solve starts from; every other part of a [`Solver`] (pods, claims, groups,
/// alternatives, caches, placements) starts empty and is listed once, in [`Solver::start`].
pub(super) struct Start<'a> {
    pub(super) cluster: Compiled<'a>,
    pub(super) keys: Interner<'a>,
    pub(super) vals: Interner<'a>,
    pub(super) pools: Vec<CompiledPool>,
    pub(super) slot_used: Cow<'a, [ResourceVector]>,
    pub(super) slot_ports: Cow<'a, [Vec<HostPort>]>,
    pub(super) live: Vec<usize>,
    pub(super) placeable: Vec<usize>,
}

impl<'a> Solver<'a> {
    /// A solve with nothing placed yet, over `start`.
    pub(super) fn start(start: Start<'a>) -> Solver<'a> {
        Solver {
            cluster: start.cluster,
            pod_sources: vec![],
            keys: start.keys,
            vals: start.vals,
            pools: start.pools,
            slot_used: start.slot_used,
            slot_ports: start.slot_ports,
            live: start.live,
            placeable: start.placeable,
            claims: vec![],
            open_claims: BTreeSet::new(),
            alternatives: vec![],
            alternative_index: FxHashMap::default(),
            groups: vec![],
            group_ids: FxHashMap::default(),
            pods: vec![],
            domain_cache: FxHashMap::default(),
            placements: vec![],
            claim_order: ClaimOrder::default(),
        }
    }
}
