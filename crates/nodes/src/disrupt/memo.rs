//! What a disruption pass reads from each node's pods, kept from one pass to the next.
//!
//! A pass needs, for every node, its pods' summed requests, its movable pods prepared for the
//! fast simulation (in placement order), their eviction costs, and which of them carry
//! do-not-disrupt annotations, PDB coverage or reasons they cannot move. Reading that from ten
//! thousand pods is most of a pass, and between two passes of a running cluster few nodes'
//! pods change. A caller that keeps its snapshot across decisions says so with
//! [`ClusterNode::pods_revision`]: while a node's name and revision stay the same, its pods are
//! the same, and what was read from them is reused.
//!
//! Some of what is read depends on the rest of the snapshot: the extended resources pods ask
//! for (the simulation's dimensions), the PreferNoSchedule taints and required anti-affinity
//! selectors (which make a pod non-plain), the PDBs' selectors and the options. These make up
//! the memo's context; when it changes, every node is read again. A node without a revision is
//! read again on every pass, so a memo never changes a decision, only its cost. Debug builds
//! read every kept node again and compare.

use std::borrow::Cow;
use std::collections::BTreeSet;

use ballast_api::nodes as api;
use ballast_scheduling::first_fit::{self, Dimensions, PlainRules, Room};
use ballast_scheduling::{self as sched, LabelSelector, Taint, TaintEffect};

use super::movable_pod::{Head, MovablePod, PodAt, placement_order, pod_of};
use super::options::DisruptionOptions;
use crate::adapt;
use crate::revisions::ByRevision;
use crate::snapshot::{BoundPod, ClusterNode, POD_DELETION_COST, SAFE_TO_EVICT};
use crate::world::World;

/// Kept across disruption passes by a caller that sets [`ClusterNode::pods_revision`]; see
/// [`super::disrupt_with_memo`]. An empty memo is always correct.
#[derive(Debug, Clone, Default)]
pub struct DisruptionMemo {
    context: Option<Context>,
    nodes: ByRevision<NodeMemo>,
}

/// What the nodes' facts were read under.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Context {
    /// cpu, memory, pods, ephemeral storage, then extended resources some pod asks for (when
    /// some have no dimension, first fit is off).
    pub dims: Dimensions,
    pub prefer_no_schedule: Vec<Taint>,
    /// Required anti-affinity selectors of active pods, without repeats.
    pub anti: Vec<LabelSelector>,
    /// (namespace, selector) of each PDB, in snapshot order.
    pdbs: Vec<(String, LabelSelector)>,
    /// The options that decide whether a pod can move.
    blocking: [bool; 3],
}

impl Context {
    fn same(&self, other: &Context) -> bool {
        self.dims == other.dims
            && self.prefer_no_schedule == other.prefer_no_schedule
            && self.pdbs == other.pdbs
            && self.blocking == other.blocking
            && self.anti.len() == other.anti.len()
            && self.anti.iter().all(|s| other.anti.contains(s))
    }
}

#[derive(Debug, Clone)]
struct NodeMemo {
    /// Extended resources its pods (terminal ones too) name.
    ext: BTreeSet<String>,
    /// Required anti-affinity selectors of its active pods.
    anti: Vec<LabelSelector>,
    /// Read under the memo's context; None until then.
    facts: Option<NodeFacts>,
}

/// A movable pod with something to say about moving it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flagged {
    /// Index into the node's pods.
    pub pod: usize,
    /// Indices of the PDBs that cover it.
    pub pdbs: Vec<usize>,
    /// Why it cannot move, if it cannot.
    pub cannot_move: Option<String>,
}

/// What a pass reads from one node's pods.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeFacts {
    /// Summed effective requests of the active pods.
    pub used: Room,
    /// Movable pods, in placement order.
    pub fast: Vec<MovablePod>,
    /// Indices of the movable pods, in the node's order.
    pub movable: Vec<usize>,
    /// Σ eviction cost over active pods, and Σ max(0, cost) over movable ones.
    pub active_cost: f64,
    pub movable_cost: f64,
    /// Active pods with a do-not-disrupt annotation (whether it is still in force depends on
    /// the time).
    pub do_not_disrupt: Vec<usize>,
    /// Movable pods a PDB covers or that cannot move, in the node's order.
    pub flagged: Vec<Flagged>,
}

/// The context and each node's facts, in snapshot order, for one pass.
pub(crate) struct Prepared<'m> {
    pub context: &'m Context,
    pub nodes: Vec<&'m NodeFacts>,
}

/// The eviction cost of one pod: 1 + deletionCost/2^27 + priority/2^25, clamped to [-10, 10].
pub fn eviction_cost(p: &BoundPod) -> f64 {
    let mut c = 1.0;
    if let Some(dc) = p
        .annotations
        .get(POD_DELETION_COST)
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        c += dc / 2f64.powi(27);
    }
    c += f64::from(p.pod.priority) / 2f64.powi(25);
    c.clamp(-10.0, 10.0)
}

fn extended_names(n: &ClusterNode) -> BTreeSet<String> {
    let mut ext = BTreeSet::new();
    for p in &n.pods {
        let pod = &p.pod;
        for r in std::iter::once(&pod.requests)
            .chain(&pod.init_containers)
            .chain(std::iter::once(&pod.overhead))
        {
            for (k, v) in &r.extended {
                if *v > 0 && !ext.contains(k) {
                    ext.insert(k.clone());
                }
            }
        }
    }
    ext
}

fn anti_selectors(n: &ClusterNode) -> Vec<LabelSelector> {
    let mut out = vec![];
    for s in n
        .pods
        .iter()
        .filter(|p| !p.terminal)
        .flat_map(|p| p.pod.affinity.pod_anti_affinity.required.iter())
        .filter_map(|t| t.label_selector.as_ref())
    {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

impl DisruptionMemo {
    /// Nodes read again in the last pass (for benchmarks and tests).
    pub fn last_read(&self) -> usize {
        self.nodes.read
    }

    /// Brings every node of the snapshot up to date and forgets nodes that left it.
    pub(crate) fn prepare<'m>(
        &'m mut self,
        world: &World<'_>,
        opts: &DisruptionOptions,
    ) -> Prepared<'m> {
        let snap = world.snap;
        self.nodes.refresh(
            &snap.nodes,
            |_, _| true,
            |n| NodeMemo {
                ext: extended_names(n),
                anti: anti_selectors(n),
                facts: None,
            },
        );

        // The context, from the nodes' parts and what is not about pods.
        let mut ext = BTreeSet::new();
        let mut anti: Vec<LabelSelector> = vec![];
        for n in &snap.nodes {
            let m = self.nodes.get(&n.name);
            ext.extend(m.ext.iter().cloned());
            for s in &m.anti {
                if !anti.contains(s) {
                    anti.push(s.clone());
                }
            }
        }
        let dims = Dimensions::new(ext);
        let mut prefer_no_schedule: Vec<Taint> = snap
            .nodes
            .iter()
            .flat_map(|n| n.taints.iter())
            .chain(world.pools.iter().flat_map(|p| p.model.model.taints.iter()))
            .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
            .cloned()
            .collect();
        prefer_no_schedule.sort();
        prefer_no_schedule.dedup();
        let context = Context {
            dims,
            prefer_no_schedule,
            anti,
            pdbs: snap
                .pdbs
                .iter()
                .map(|b| (b.namespace.clone(), b.selector.clone()))
                .collect(),
            blocking: [
                opts.block_unowned_pods,
                opts.block_local_storage,
                opts.block_kube_system_without_pdb,
            ],
        };
        if !self.context.as_ref().is_some_and(|c| c.same(&context)) {
            for m in self.nodes.values_mut() {
                m.facts = None;
            }
            self.context = Some(context);
        }
        let context = self.context.as_ref().expect("set above");
        for n in &snap.nodes {
            let m = self.nodes.get_mut(&n.name);
            match &m.facts {
                None => m.facts = Some(read_facts(n, world, opts, context)),
                Some(kept) => {
                    if cfg!(debug_assertions) {
                        let fresh = read_facts(n, world, opts, context);
                        assert!(
                            *kept == fresh,
                            "node {}: its pods changed but its podsRevision did not",
                            n.name
                        );
                    }
                }
            }
        }
        Prepared {
            context,
            nodes: snap
                .nodes
                .iter()
                .map(|n| self.nodes.get(&n.name).facts.as_ref().expect("read above"))
                .collect(),
        }
    }
}

/// Reads one node's pods under `context`.
fn read_facts(
    n: &ClusterNode,
    world: &World<'_>,
    opts: &DisruptionOptions,
    context: &Context,
) -> NodeFacts {
    let dims = &context.dims;
    let mut used = [0i64; first_fit::DIMENSIONS];
    let mut fast = Vec::with_capacity(n.pods.len());
    let mut movable = Vec::with_capacity(n.pods.len());
    let mut do_not_disrupt = vec![];
    let mut flagged = vec![];
    let (mut active_cost, mut movable_cost) = (0.0, 0.0);
    for (k, p) in n.pods.iter().enumerate() {
        if p.terminal {
            continue;
        }
        let req = dims.pod_room(&p.pod);
        for (u, r) in used.iter_mut().zip(req) {
            *u = u.saturating_add(r);
        }
        let c = eviction_cost(p);
        active_cost += c;
        if sched::aliases::get(&p.annotations, api::labels::DO_NOT_DISRUPT).is_some() {
            do_not_disrupt.push(k);
        }
        if !p.is_reschedulable() {
            continue;
        }
        movable.push(k);
        movable_cost += c.max(0.0);

        // Eviction: PDBs and reasons it cannot move.
        let pdbs: Vec<usize> = world
            .snap
            .pdbs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.covers(&p.pod))
            .map(|(i, _)| i)
            .collect();
        let safe = p.annotations.get(SAFE_TO_EVICT).map(|v| v.trim());
        let cannot_move = if safe == Some("false") {
            Some(format!("annotation {SAFE_TO_EVICT}=false"))
        } else if safe == Some("true") {
            None
        } else if opts.block_unowned_pods && p.owner_kind.is_none() {
            Some("no controller would recreate it".to_string())
        } else if opts.block_local_storage && p.local_storage {
            Some("it uses node-local storage".to_string())
        } else if opts.block_kube_system_without_pdb
            && p.pod.namespace == "kube-system"
            && pdbs.is_empty()
        {
            Some("kube-system pod without a PodDisruptionBudget".to_string())
        } else {
            None
        };
        if !pdbs.is_empty() || cannot_move.is_some() {
            flagged.push(Flagged {
                pod: k,
                pdbs,
                cannot_move,
            });
        }

        // The fast simulation. Key translation never touches requests: the snapshot pod's are
        // the model's.
        let mut mp = adapt::model_pod_cow(&p.pod);
        if mp.node_name.is_some() {
            mp.to_mut().node_name = None;
        }
        let plain = first_fit::judge(
            &mp,
            &PlainRules {
                prefer_no_schedule: &context.prefer_no_schedule,
                anti_affinity: &context.anti,
            },
        )
        .ok();
        fast.push(MovablePod {
            // cpu and memory are the first two dimensions.
            key: (-mp.priority, -req[0], -req[1]),
            ns: Head::of(&mp.namespace),
            name: Head::of(&mp.name),
            req,
            at: match mp {
                Cow::Borrowed(_) => PodAt::Snapshot(k),
                Cow::Owned(p) => PodAt::Owned(Box::new(p)),
            },
            plain,
        });
    }
    // In placement order, so a single candidate's pods need no sorting. Pods are unique by
    // namespace and name, so an unstable sort gives the one order.
    fast.sort_unstable_by(|a, b| placement_order(a, pod_of(n, a), b, pod_of(n, b)));
    NodeFacts {
        used,
        fast,
        movable,
        active_cost,
        movable_cost,
        do_not_disrupt,
        flagged,
    }
}
