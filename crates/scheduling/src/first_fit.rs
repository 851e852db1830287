//! First fit of plain pods on existing nodes: the solver's answer for the pods it treats as
//! plain first-fit items, found without compiling a cluster.
//!
//! # Contract
//!
//! - **Which pods.** Only pods [`judge`] calls plain: no topology spread, no pod affinity or
//!   anti-affinity (required or preferred), no preferred node affinity, no host ports, no `Gt` or
//!   `Lt` node requirement, every PreferNoSchedule taint of the cluster tolerated, and no bound
//!   pod's required anti-affinity selecting them. Any other pod is refused with the reason
//!   ([`NotPlain`]): its place depends on other pods or on scores this packer does not keep.
//!   [`FirstFit::find`] takes the [`Plain`] that `judge` gave, so an unjudged pod has no place.
//!   Requests are read in at most [`DIMENSIONS`] dimensions (cpu, memory, pods, ephemeral
//!   storage, then [`EXTENDED`] extended resources): a cluster whose pods ask for more extended
//!   resources than that cannot be judged here either ([`FirstFit::new`] refuses it).
//! - **Which nodes.** The nodes the pods may go to, in the solver's order (by name), each with
//!   its spare room (allocatable less the effective requests of its active pods), its taints but
//!   PreferNoSchedule ones and its labels in the model's keys, hostname included ([`Nodes`]). Nodes
//!   that take no pod (cordoned, deleting, not ready) are simply not listed.
//! - **Which order.** Pods are offered one at a time in the solver's placement order (priority,
//!   CPU, memory, all descending, then namespace and name); each goes to the first node with room
//!   for its effective requests whose hard taints it tolerates and whose labels satisfy its node
//!   selector, required node affinity and volume zones.
//! - **Agreement.** For such pods and nodes the node [`FirstFit::find`] names is the node a
//!   [`crate::solve`] of the same cluster places the pod on (when the pod fits an existing node;
//!   a pod no node takes is left to the caller, who may open NodeClaims with a solve). The tests
//!   below compare both on tables of clusters; `ballast-nodes` compares whole disruption passes.
//!
//! Spare room is kept incrementally and summarised per block of [`BLOCK`] nodes by its largest
//! value in each dimension, so a block of full nodes is passed over in one comparison. A
//! simulation closes some nodes, places pods, and puts everything back with [`FirstFit::restore`]
//! from the [`Undo`] it filled in: one `FirstFit` serves every simulation of a pass.

use std::collections::BTreeMap;

use crate::check::{node_fits_pod, selector_matches};
use crate::model::{LabelSelector, Operator, Pod, Resources, Taint, tolerated};

/// Dimensions of a [`Room`]: cpu, memory, pods, ephemeral storage and [`EXTENDED`] extended
/// resources.
pub const DIMENSIONS: usize = 12;
/// Extended resources a [`Room`] can hold.
pub const EXTENDED: usize = DIMENSIONS - 4;
/// Nodes per block of the spare-room summaries.
pub const BLOCK: usize = 16;

/// Resource quantities in the packer's dimensions (see [`Dimensions`]).
pub type Room = [i64; DIMENSIONS];

/// The names of a [`Room`]'s dimensions: cpu, memory, pods and ephemeral storage, then the
/// extended resources the pods ask for, at most [`EXTENDED`] of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimensions {
    names: Vec<String>,
    /// Extended resources asked for beyond the first [`EXTENDED`], not read.
    unread: usize,
}

/// The pods ask for more extended resources than a [`Room`] holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "pods ask for {count} extended resources; first fit reads at most {EXTENDED}: use the solver"
)]
pub struct TooManyResources {
    pub count: usize,
}

impl Dimensions {
    /// The dimensions of a cluster whose pods ask for these extended resources (names in order,
    /// without repeats): the first [`EXTENDED`] are read, the others are not (a [`FirstFit`]
    /// refuses such dimensions; sums of rooms stay a lower bound).
    pub fn new(extended: impl IntoIterator<Item = String>) -> Dimensions {
        let mut names: Vec<String> = ["cpu", "memory", "pods", "ephemeral-storage"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut unread = 0;
        for e in extended {
            if names.len() < DIMENSIONS {
                names.push(e);
            } else {
                unread += 1;
            }
        }
        Dimensions { names, unread }
    }

    /// Whether every extended resource asked for has a dimension.
    pub fn reads_all(&self) -> bool {
        self.unread == 0
    }

    /// Every name: cpu, memory, pods, ephemeral storage, then the extended resources.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The extended resources' names.
    pub fn extended(&self) -> &[String] {
        &self.names[4..]
    }

    /// `r` as a room; an extended resource without a dimension is not read.
    pub fn room(&self, r: &Resources) -> Room {
        let mut v = [0i64; DIMENSIONS];
        v[0] = r.cpu_millis;
        v[1] = r.memory_bytes;
        v[2] = r.pods;
        v[3] = r.ephemeral_storage_bytes;
        if !r.extended.is_empty() {
            for (i, d) in self.names.iter().enumerate().skip(4) {
                v[i] = r.extended.get(d).copied().unwrap_or(0);
            }
        }
        v
    }

    /// A pod's effective requests (as [`Pod::effective_requests`], one pod slot) without
    /// building the map.
    pub fn pod_room(&self, p: &Pod) -> Room {
        let mut v = self.room(&p.requests);
        for init in &p.init_containers {
            let r = self.room(init);
            for d in 0..DIMENSIONS {
                v[d] = v[d].max(r[d]);
            }
        }
        if p.overhead != Resources::default() {
            let o = self.room(&p.overhead);
            for d in 0..DIMENSIONS {
                v[d] = v[d].saturating_add(o[d]);
            }
        }
        v[2] = 1;
        v
    }
}

/// Whether `need` fits in `room` in every dimension.
pub fn fits(need: &Room, room: &Room) -> bool {
    (0..DIMENSIONS).all(|d| need[d] <= room[d])
}

/// Why a pod is not a plain first-fit item: the solver must place it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotPlain {
    #[error("it has topology spread constraints")]
    TopologySpread,
    #[error("it has pod affinity")]
    PodAffinity,
    #[error("it has pod anti-affinity")]
    PodAntiAffinity,
    #[error("it has preferred node affinity")]
    PreferredNodeAffinity,
    #[error("it asks for host ports")]
    HostPorts,
    #[error("a required node affinity term compares numbers (Gt or Lt)")]
    NumericRequirement,
    #[error("it does not tolerate a PreferNoSchedule taint of the cluster")]
    PreferNoSchedule,
    #[error("a bound pod's required anti-affinity selects it")]
    AntiAffinityTarget,
}

/// What besides the pod decides whether it is plain: the cluster's PreferNoSchedule taints (of
/// nodes and NodePools) and the required anti-affinity selectors of its active pods.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainRules<'a> {
    pub prefer_no_schedule: &'a [Taint],
    pub anti_affinity: &'a [LabelSelector],
}

/// A pod [`judge`] found plain, and what it learnt: whether the pod has no node selector, node
/// affinity or volume zones (then only taints can keep it off a node with room).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain {
    unconstrained: bool,
}

/// Whether the packer can place `pod` as the solver would, and if not, why.
pub fn judge(pod: &Pod, rules: &PlainRules<'_>) -> Result<Plain, NotPlain> {
    let na = &pod.affinity.node_affinity;
    let pa = &pod.affinity.pod_affinity;
    let anti = &pod.affinity.pod_anti_affinity;
    if !pod.topology_spread_constraints.is_empty() {
        return Err(NotPlain::TopologySpread);
    }
    if !pa.required.is_empty() || !pa.preferred.is_empty() {
        return Err(NotPlain::PodAffinity);
    }
    if !anti.required.is_empty() || !anti.preferred.is_empty() {
        return Err(NotPlain::PodAntiAffinity);
    }
    if !na.preferred.is_empty() {
        return Err(NotPlain::PreferredNodeAffinity);
    }
    if !pod.host_ports.is_empty() {
        return Err(NotPlain::HostPorts);
    }
    if na
        .required
        .iter()
        .flat_map(|t| t.match_expressions.iter())
        .any(|r| matches!(r.operator, Operator::Gt | Operator::Lt))
    {
        return Err(NotPlain::NumericRequirement);
    }
    if !rules
        .prefer_no_schedule
        .iter()
        .all(|t| tolerated(&pod.tolerations, t))
    {
        return Err(NotPlain::PreferNoSchedule);
    }
    if rules
        .anti_affinity
        .iter()
        .any(|s| selector_matches(s, &pod.labels))
    {
        return Err(NotPlain::AntiAffinityTarget);
    }
    Ok(Plain {
        unconstrained: pod.node_selector.is_empty()
            && na.required.is_empty()
            && pod.volumes.iter().all(|v| v.zones.is_empty()),
    })
}

/// What the packer reads of the nodes, by position (the solver's order).
pub trait Nodes {
    /// The node's taints but its PreferNoSchedule ones.
    fn hard_taints(&self, at: usize) -> &[Taint];
    /// The node's labels in the model's keys, hostname included. Asked only for pods with a
    /// node selector, node affinity or volume zones, so a caller may make them on first need.
    fn labels(&self, at: usize) -> &BTreeMap<String, String>;
}

/// Whether a plain pod may go to the node at `at`, room aside.
pub fn may_go(pod: &Pod, plain: Plain, nodes: &impl Nodes, at: usize) -> bool {
    let taints = nodes.hard_taints(at);
    if plain.unconstrained && taints.is_empty() {
        return true;
    }
    taints.iter().all(|t| tolerated(&pod.tolerations, t)) && node_fits_pod(pod, nodes.labels(at))
}

/// What a simulation changed, as it was before: (position, spare room) and (block, summary)
/// pairs for [`FirstFit::restore`].
#[derive(Debug, Clone, Default)]
pub struct Undo {
    room: Vec<(usize, Room)>,
    blocks: Vec<(usize, Room)>,
}

/// The spare room of the nodes pods may go to, in the solver's order, with block summaries.
#[derive(Debug, Clone)]
pub struct FirstFit {
    spare: Vec<Room>,
    block_max: Vec<Room>,
}

/// The room of a closed node: nothing fits, whatever is taken from it later.
const CLOSED: Room = [i64::MIN / 4; DIMENSIONS];

impl FirstFit {
    /// A packer over nodes with this spare room (read in `dims`), in the solver's order; refused
    /// when some extended resource has no dimension.
    pub fn new(dims: &Dimensions, spare: Vec<Room>) -> Result<FirstFit, TooManyResources> {
        if !dims.reads_all() {
            return Err(TooManyResources {
                count: dims.names.len() - 4 + dims.unread,
            });
        }
        let mut packer = FirstFit {
            spare,
            block_max: vec![],
        };
        packer.block_max = (0..packer.spare.len().div_ceil(BLOCK))
            .map(|b| packer.block_summary(b))
            .collect();
        Ok(packer)
    }

    /// Nodes listed.
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spare.is_empty()
    }

    /// The spare room of the node at `at` (of a closed node, less than nothing).
    pub fn spare(&self, at: usize) -> &Room {
        &self.spare[at]
    }

    fn block_summary(&self, b: usize) -> Room {
        let mut m = [i64::MIN; DIMENSIONS];
        for s in &self.spare[b * BLOCK..((b + 1) * BLOCK).min(self.spare.len())] {
            for d in 0..DIMENSIONS {
                m[d] = m[d].max(s[d]);
            }
        }
        m
    }

    fn save_block(&self, b: usize, undo: &mut Undo) {
        if !undo.blocks.iter().any(|(x, _)| *x == b) {
            undo.blocks.push((b, self.block_max[b]));
        }
    }

    /// Closes the nodes at these positions: no pod goes there until [`FirstFit::restore`].
    pub fn close(&mut self, positions: &[usize], undo: &mut Undo) {
        for &p in positions {
            undo.room.push((p, self.spare[p]));
            self.spare[p] = CLOSED;
            let b = p / BLOCK;
            self.save_block(b, undo);
            self.block_max[b] = self.block_summary(b);
        }
    }

    /// The first node (position) with room for `need` that the plain pod may go to.
    pub fn find(&self, pod: &Pod, plain: Plain, need: &Room, nodes: &impl Nodes) -> Option<usize> {
        for b in 0..self.block_max.len() {
            if !fits(need, &self.block_max[b]) {
                continue;
            }
            for p in b * BLOCK..((b + 1) * BLOCK).min(self.spare.len()) {
                if fits(need, &self.spare[p]) && may_go(pod, plain, nodes, p) {
                    return Some(p);
                }
            }
        }
        None
    }

    /// Takes `need` from the spare room of the node at `at`.
    pub fn take(&mut self, at: usize, need: &Room, undo: &mut Undo) {
        if !undo.room.iter().any(|(q, _)| *q == at) {
            undo.room.push((at, self.spare[at]));
        }
        let before = self.spare[at];
        for (s, r) in self.spare[at].iter_mut().zip(need) {
            *s -= r;
        }
        // The block's summary changes only where this node held its largest room (a negative
        // request, invalid but possible, grows it).
        let b = at / BLOCK;
        let max = &self.block_max[b];
        if (0..DIMENSIONS).any(|d| need[d] < 0 || (need[d] > 0 && before[d] == max[d])) {
            self.save_block(b, undo);
            self.block_max[b] = self.block_summary(b);
        }
    }

    /// Puts back what [`FirstFit::close`] and [`FirstFit::take`] changed since `undo` was new.
    pub fn restore(&mut self, undo: Undo) {
        for (p, s) in undo.room.into_iter().rev() {
            self.spare[p] = s;
        }
        for (b, m) in undo.blocks {
            self.block_max[b] = m;
        }
        debug_assert!(
            (0..self.block_max.len()).all(|b| self.block_max[b] == self.block_summary(b)),
            "block summaries put back as they were"
        );
    }
}

#[cfg(test)]
#[path = "first_fit_tests.rs"]
mod tests;
