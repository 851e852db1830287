//! "Where would these nodes' pods go?" — the scheduling simulation behind every disruption
//! method, in two interchangeable forms:
//!
//! - the full form builds a scheduling snapshot without the candidate nodes (their movable pods
//!   pending, everything else bound) and calls `ballast_scheduling::solve`;
//! - the fast form gives the same answer for pods the solver treats as plain first-fit items (no
//!   topology spread, pod (anti-)affinity, host ports, soft preferences or anti-affinity aimed at
//!   them): the scheduling crate's first fit (`ballast_scheduling::first_fit`) places them on the
//!   remaining nodes, one `FirstFit` kept for the pass, and only the pods left over go to a small
//!   solve that opens new NodeClaims, with the pools' current usage standing in for the nodes
//!   (one capacity-only stand-in per node, prepared once per pass, so a candidate's stand-ins are
//!   simply left out).
//!
//! Whenever a candidate's pods are not all plain the full form is used, so results never differ.
//! In `Fast` mode the full form itself runs on a `PreparedCluster`: the whole cluster is prepared
//! for the scheduling solver once per pass (the first time a candidate needs it), and each
//! simulation only takes its nodes out and places their pods, with the same plan as a full solve.
//! Tests compare both forms on random clusters.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use ballast_scheduling::first_fit::{self, DIMENSIONS, Dimensions, FirstFit, Room, Undo, fits};
use ballast_scheduling::{
    self as sched, NewClaim, Pod, PodRef, PreparedCluster, Resources, SolveOptions, Taint,
    TaintEffect,
};

use super::memo::Prepared;
use super::movable_pod::{MovablePod, placement_order, pod_of};
use super::options::SimulationMode;
use crate::adapt;
use crate::error::Error;
use crate::world::World;

/// A simulated pod's destination: an existing node, or one of the new claims (by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewHome {
    Node(String),
    Claim(usize),
}

/// Pod moves in the order the simulation committed them, named only when asked
/// ([`WhatIf::moves`]): most simulations are rejected and their moves never read.
#[derive(Debug, Clone, Default)]
pub struct Moves {
    /// Placed by the fast form: (node, pod of `WhatIf::pods`, target node).
    fast: Vec<(usize, usize, usize)>,
    /// Then those of a solution.
    solved: Vec<(PodRef, NewHome)>,
}

/// Where the pods of a set of nodes would go.
#[derive(Debug, Clone)]
pub enum Rehoming {
    /// Every pod fits on the remaining nodes.
    Fits { moves: Moves },
    /// Some pods need new NodeClaims.
    NewNodes { moves: Moves, claims: Vec<NewClaim> },
    /// A pod has nowhere to go.
    Unplaceable { pod: PodRef, why: String },
    /// The pods that fit on no remaining node need more room, together, than any node type a
    /// NodePool could launch for less than the price asked for offers: neither a deletion nor a
    /// single cheaper replacement is possible, whatever a solve would add.
    NoCheaperNode,
}

/// A leftover solve of this pass: the pods it placed (in placement order), the usage it assumed
/// (with NodePool limits) and its plan.
struct LeftoverPlan {
    pods: Vec<(usize, usize)>,
    usage: Option<Vec<(Resources, usize)>>,
    solution: sched::Solution,
}

pub struct WhatIf<'w, 'a> {
    world: &'w World<'a>,
    mode: SimulationMode,
    dims: Dimensions,
    /// Nodes pods may move to, by name order: node index.
    order: Vec<usize>,
    /// Node index → position in `order`.
    pos: Vec<Option<usize>>,
    /// First fit over the nodes of `order`; none when some extended resource has no dimension.
    packer: Option<FirstFit>,
    /// Node labels in the model's keys, made when a constrained pod first asks.
    labels: Vec<OnceCell<BTreeMap<String, String>>>,
    hard_taints: Vec<Vec<Taint>>,
    /// Per node, its movable pods prepared for the fast path, in placement order.
    pods: Vec<&'a [MovablePod]>,
    /// Stand-ins for what counts against NodePool limits: one capacity-only node per node with a
    /// known NodePool, then one per in-flight claim.
    usage_nodes: Vec<sched::Node>,
    /// Node index → its stand-in in `usage_nodes`.
    usage_of: Vec<Option<usize>>,
    /// `usage_nodes` prepared for the leftovers' solves, made on first need.
    usage: Option<PreparedCluster>,
    /// Leftover solves made in this pass, by the leftovers' placement-order keys.
    leftover_plans: FxHashMap<Vec<(i32, i64, i64)>, Vec<LeftoverPlan>>,
    /// Whether a NodePool has limits (then a leftover solve also depends on the usage left).
    limited: bool,
    in_flight_nodes: Vec<sched::Node>,
    /// The whole cluster prepared for the solver, made on first need (`Fast` mode).
    prepared: Option<PreparedCluster>,
    /// (cheapest allowed offering, allocatable) of every instance type some NodePool may launch,
    /// cheapest first: the lower bound on what a replacement for given pods can cost.
    type_floor: Vec<(f64, Room)>,
    pub full_solves: usize,
    pub fast_evaluations: usize,
}

/// Whether the pods of a node may land on it in a disruption simulation.
pub fn is_target(n: &crate::snapshot::ClusterNode) -> bool {
    n.initialized && n.ready && !n.deleting && !n.unschedulable
}

impl<'w, 'a> WhatIf<'w, 'a> {
    pub(crate) fn new(
        world: &'w World<'a>,
        prepared: &Prepared<'a>,
        mode: SimulationMode,
        skipped: &mut Vec<Error>,
    ) -> WhatIf<'w, 'a> {
        let snap = world.snap;
        let dims = prepared.context.dims.clone();
        let mut order: Vec<usize> = (0..snap.nodes.len())
            .filter(|&i| is_target(&snap.nodes[i]))
            .collect();
        order.sort_by(|&a, &b| snap.nodes[a].name.cmp(&snap.nodes[b].name));
        let mut pos = vec![None; snap.nodes.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = Some(p);
        }
        let mut hard_taints = Vec::with_capacity(snap.nodes.len());
        let mut spare_by_node = Vec::with_capacity(snap.nodes.len());
        for (n, facts) in snap.nodes.iter().zip(&prepared.nodes) {
            hard_taints.push(
                n.taints
                    .iter()
                    .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
                    .cloned()
                    .collect(),
            );
            let mut s = dims.room(&n.allocatable);
            for (s, u) in s.iter_mut().zip(facts.used) {
                *s = s.saturating_sub(u);
            }
            spare_by_node.push(s);
        }
        let pods: Vec<&'a [MovablePod]> = prepared.nodes.iter().map(|f| &f.fast[..]).collect();
        let spare: Vec<Room> = order.iter().map(|&i| spare_by_node[i]).collect();
        let packer = FirstFit::new(&dims, spare).ok();
        let (usage_nodes, usage_of, in_flight_nodes) = usage_stand_ins(world, skipped);
        let type_floor = type_floor(world, &dims);
        WhatIf {
            world,
            mode,
            dims,
            order,
            pos,
            packer,
            labels: (0..snap.nodes.len()).map(|_| OnceCell::new()).collect(),
            hard_taints,
            pods,
            usage_nodes,
            usage_of,
            usage: None,
            leftover_plans: FxHashMap::default(),
            limited: world.pools.iter().any(|p| p.model.model.limits.is_some()),
            in_flight_nodes,
            prepared: None,
            type_floor,
            full_solves: 0,
            fast_evaluations: 0,
        }
    }

    /// Whether a node some NodePool may launch for less than `below` could hold `need` (requests
    /// only: DaemonSet overhead and the pods' constraints can only make it harder).
    fn cheaper_node_could_hold(&self, need: &Room, below: f64) -> bool {
        self.type_floor
            .iter()
            .take_while(|(price, _)| *price < below)
            .any(|(_, alloc)| fits(need, alloc))
    }

    /// Summed requests of the candidates' movable pods named in `keys`.
    fn requests_of(&self, cands: &[usize], keys: &[PodRef]) -> Room {
        let mut sum = [0i64; DIMENSIONS];
        for &c in cands {
            for p in self.pods[c] {
                let pod = self.pod(c, p);
                if keys
                    .iter()
                    .any(|k| k.name == pod.name && k.namespace == pod.namespace)
                {
                    for (s, r) in sum.iter_mut().zip(p.req) {
                        *s = s.saturating_add(r);
                    }
                }
            }
        }
        sum
    }

    /// Whether every movable pod of these nodes is plain enough for the fast path.
    pub fn plain(&self, nodes: &[usize]) -> bool {
        self.packer.is_some()
            && nodes
                .iter()
                .all(|&n| self.pods[n].iter().all(|p| p.plain.is_some()))
    }

    /// Where the movable pods of `cands` would go if those nodes were removed; new NodeClaims are
    /// opened for pods that fit nowhere else. With `replace_below`, only a replacement cheaper
    /// than that is of interest: when the pods left over for new nodes could not fit on any
    /// node type that cheap, the answer is `NoCheaperNode` (the same in both modes: the pods
    /// the fast form leaves over are the ones a full solve puts on new claims or cannot place).
    pub fn evaluate(
        &mut self,
        cands: &[usize],
        replace_below: Option<f64>,
    ) -> Result<Rehoming, Error> {
        if self.mode == SimulationMode::Fast && self.plain(cands) {
            self.fast_evaluations += 1;
            return self.evaluate_fast(cands, replace_below);
        }
        self.full_solves += 1;
        let (outcome, left) = self.evaluate_full(cands)?;
        match replace_below {
            Some(below) if !matches!(outcome, Rehoming::Fits { .. }) => {
                if self.cheaper_node_could_hold(&self.requests_of(cands, &left), below) {
                    Ok(outcome)
                } else {
                    Ok(Rehoming::NoCheaperNode)
                }
            }
            _ => Ok(outcome),
        }
    }

    fn node_labels(&self, i: usize) -> &BTreeMap<String, String> {
        self.labels[i].get_or_init(|| {
            let n = &self.world.snap.nodes[i];
            let mut l = adapt::model_labels(&n.labels);
            l.entry(sched::labels::HOSTNAME.into())
                .or_insert_with(|| n.name.clone());
            l
        })
    }

    /// The pod a prepared pod of node `n` stands for.
    fn pod(&self, n: usize, p: &'a MovablePod) -> &'a Pod {
        pod_of(&self.world.snap.nodes[n], p)
    }

    /// The pod of `self.pods[n][k]`.
    fn pod_at(&self, n: usize, k: usize) -> &'a Pod {
        self.pod(n, &self.pods[n][k])
    }

    fn evaluate_fast(
        &mut self,
        cands: &[usize],
        replace_below: Option<f64>,
    ) -> Result<Rehoming, Error> {
        let mut evicted: Vec<(usize, usize)> = cands
            .iter()
            .flat_map(|&n| (0..self.pods[n].len()).map(move |k| (n, k)))
            .collect();
        if cands.len() > 1 {
            // Each node's pods are in placement order already.
            evicted.sort_by(|&(an, ak), &(bn, bk)| {
                placement_order(
                    &self.pods[an][ak],
                    self.pod_at(an, ak),
                    &self.pods[bn][bk],
                    self.pod_at(bn, bk),
                )
            });
        }
        // Take the candidates out: no room on them. What changes is saved as it was before its
        // first change, and put back at the end.
        let mut packer = self.packer.take().expect("plain() checked the packer");
        let mut undo = Undo::default();
        let closed: Vec<usize> = cands.iter().filter_map(|&c| self.pos[c]).collect();
        packer.close(&closed, &mut undo);
        let mut moves = Moves::default();
        let mut left: Vec<(usize, usize)> = vec![];
        // The leftovers' summed requests, while a cheaper node could still hold them.
        let mut need = [0i64; DIMENSIONS];
        let mut no_cheaper_node = false;
        for &(n, k) in &evicted {
            let pod = &self.pods[n][k];
            let plain = pod.plain.expect("plain() checked every pod");
            let req = pod.req;
            let placed = packer.find(self.pod_at(n, k), plain, &req, &*self);
            match placed {
                Some(p) => {
                    packer.take(p, &req, &mut undo);
                    moves.fast.push((n, k, self.order[p]));
                }
                None => {
                    left.push((n, k));
                    if let Some(below) = replace_below {
                        for (s, r) in need.iter_mut().zip(req) {
                            *s = s.saturating_add(r);
                        }
                        // Leftovers only grow: no need to place the rest.
                        if !self.cheaper_node_could_hold(&need, below) {
                            no_cheaper_node = true;
                            break;
                        }
                    }
                }
            }
        }
        packer.restore(undo);
        self.packer = Some(packer);
        if no_cheaper_node {
            return Ok(Rehoming::NoCheaperNode);
        }
        if left.is_empty() {
            return Ok(Rehoming::Fits { moves });
        }
        // The leftovers go to new NodeClaims exactly as in a full solve: nothing they do can
        // touch the existing nodes, so a solve over just them and the pools' usage (without the
        // candidates') agrees.
        let removed: Vec<usize> = cands.iter().filter_map(|&c| self.usage_of[c]).collect();
        let sol = self.leftover_solve(&left, &removed)?;
        if !sol.unschedulable.is_empty() {
            // Why a pod fits nowhere names the nodes it was tried on: the full form tells.
            return Ok(self.evaluate_full(cands)?.0);
        }
        Ok(interpret(sol, moves))
    }

    /// The plan for the leftover pods `left` (in placement order) with the stand-ins `removed`
    /// taken out of the pools' usage. These pods are plain and the solve has no bound pods, so
    /// nothing reads their names, namespaces or labels but the order, which `left` already has:
    /// pods equal in everything else get the same plan, pod for pod, and a plan made earlier in
    /// this pass for such pods (and the same usage) is reused with the pods renamed.
    fn leftover_solve(
        &mut self,
        left: &[(usize, usize)],
        removed: &[usize],
    ) -> Result<sched::Solution, Error> {
        let key: Vec<(i32, i64, i64)> = left.iter().map(|&(n, k)| self.pods[n][k].key).collect();
        let usage_left = self.limited.then(|| {
            let mut u = vec![(Resources::default(), 0usize); self.world.pools.len()];
            for &r in removed {
                let n = &self.usage_nodes[r];
                let pool = n
                    .labels
                    .get(sched::labels::NODEPOOL)
                    .and_then(|p| self.world.pool_idx.get(p));
                if let (Some(&p), Some(cap)) = (pool, &n.capacity) {
                    for (k, v) in cap.iter() {
                        let cur = u[p].0.get(k);
                        u[p].0.set(k, cur.saturating_add(v));
                    }
                    u[p].1 += 1;
                }
            }
            u
        });
        if let Some(plans) = self.leftover_plans.get(&key) {
            for plan in plans {
                let same = plan.usage == usage_left
                    && plan.pods.iter().zip(left).all(|(&(an, ak), &(bn, bk))| {
                        same_shape(self.pod_at(an, ak), self.pod_at(bn, bk))
                    });
                if same {
                    let names: Vec<(PodRef, PodRef)> = plan
                        .pods
                        .iter()
                        .zip(left)
                        .map(|(&(an, ak), &(bn, bk))| {
                            (self.pod_at(an, ak).key(), self.pod_at(bn, bk).key())
                        })
                        .collect();
                    return Ok(renamed(&plan.solution, &names));
                }
            }
        }
        let usage = match self.usage.take() {
            Some(u) => u,
            None => PreparedCluster::with_resources(
                sched::Snapshot {
                    nodes: self.usage_nodes.clone(),
                    in_flight: vec![],
                    pods: vec![],
                    node_pools: self.world.model_pools(),
                    instance_types: self.world.types.to_vec(),
                    namespaces: self.world.snap.namespaces.clone(),
                },
                &solve_options(),
                self.dims.extended(),
            ),
        };
        let pods: Vec<&Pod> = left.iter().map(|&(n, k)| self.pod_at(n, k)).collect();
        let sol = usage.solve_without(removed, &pods);
        drop(pods);
        self.usage = Some(usage);
        let sol = sol?;
        self.leftover_plans
            .entry(key)
            .or_default()
            .push(LeftoverPlan {
                pods: left.to_vec(),
                usage: usage_left,
                solution: sol.clone(),
            });
        Ok(sol)
    }

    /// The scheduling snapshot of "these nodes are gone": remaining nodes (those pods may not
    /// move to are cordoned, in-flight NodeClaims too), their pods bound, the candidates'
    /// movable pods pending.
    pub fn full_snapshot(&self, cands: &[usize]) -> sched::Snapshot {
        let snap = self.world.snap;
        let mut model = sched::Snapshot {
            nodes: vec![],
            in_flight: vec![],
            pods: vec![],
            node_pools: self.world.model_pools(),
            instance_types: self.world.types.to_vec(),
            namespaces: snap.namespaces.clone(),
        };
        for (i, n) in snap.nodes.iter().enumerate() {
            if cands.contains(&i) {
                for p in self.pods[i] {
                    model.pods.push(self.pod(i, p).clone());
                }
                continue;
            }
            let mut mn = self.world.model_node(i);
            mn.unschedulable = !is_target(n);
            mn.initializing = false;
            model.nodes.push(mn);
            for p in n.pods.iter().filter(|p| !p.terminal) {
                let mut mp = adapt::model_pod(&p.pod);
                mp.node_name = Some(n.name.clone());
                model.pods.push(mp);
            }
        }
        model.nodes.extend(self.in_flight_nodes.iter().cloned());
        model
    }

    /// The outcome of a solve, and the pods it leaves for new nodes: those on new claims and
    /// those it cannot place at all.
    fn evaluate_full(&mut self, cands: &[usize]) -> Result<(Rehoming, Vec<PodRef>), Error> {
        if self.mode == SimulationMode::Fast {
            // The prepared cluster lists the nodes in snapshot order (then the in-flight ones),
            // so candidates keep their indices; their movable pods go pending.
            let prepared = match self.prepared.take() {
                Some(p) => p,
                None => PreparedCluster::new(self.full_snapshot(&[]), &solve_options()),
            };
            let this = &*self;
            let pending: Vec<&Pod> = cands
                .iter()
                .flat_map(|&c| this.pods[c].iter().map(move |p| this.pod(c, p)))
                .collect();
            let sol = prepared.solve_without(cands, &pending);
            self.prepared = Some(prepared);
            // An invalid snapshot is reported as the full solve words it.
            if let Ok(sol) = sol {
                let left = left_for_new_nodes(&sol);
                return Ok((interpret(sol, Moves::default()), left));
            }
        }
        let model = self.full_snapshot(cands);
        let sol = sched::solve(&model, &solve_options())?;
        let left = left_for_new_nodes(&sol);
        Ok((interpret(sol, Moves::default()), left))
    }

    /// The moves, named.
    pub fn moves(&self, m: Moves) -> Vec<(PodRef, NewHome)> {
        let mut out: Vec<(PodRef, NewHome)> = m
            .fast
            .into_iter()
            .map(|(n, k, to)| {
                (
                    self.pod_at(n, k).key(),
                    NewHome::Node(self.world.snap.nodes[to].name.clone()),
                )
            })
            .collect();
        out.extend(m.solved);
        out
    }
}

/// The remaining nodes as first fit reads them, by position in name order.
impl first_fit::Nodes for WhatIf<'_, '_> {
    fn hard_taints(&self, at: usize) -> &[Taint] {
        &self.hard_taints[self.order[at]]
    }

    fn labels(&self, at: usize) -> &BTreeMap<String, String> {
        self.node_labels(self.order[at])
    }
}

/// What counts against NodePool limits, as capacity-only cordoned stand-ins: one per node with a
/// known NodePool (and node index → its stand-in), then one per in-flight claim; and the
/// in-flight claims as cordoned nodes.
#[allow(clippy::type_complexity)]
fn usage_stand_ins(
    world: &World<'_>,
    skipped: &mut Vec<Error>,
) -> (Vec<sched::Node>, Vec<Option<usize>>, Vec<sched::Node>) {
    let snap = world.snap;
    let mut usage_nodes = vec![];
    let mut usage_of = vec![None; snap.nodes.len()];
    let stand_in = |name: String, pool: &str, capacity: &Resources| sched::Node {
        name,
        labels: BTreeMap::from([(sched::labels::NODEPOOL.to_string(), pool.to_string())]),
        taints: vec![],
        allocatable: Resources::default(),
        capacity: Some(capacity.clone()),
        unschedulable: true,
        initializing: false,
    };
    for (i, n) in snap.nodes.iter().enumerate() {
        // Pools named by the node's own label (World resolved it).
        let info = &world.nodes[i];
        if let Some(pool) = info.pool.filter(|_| info.on_node.pool.is_some()) {
            usage_of[i] = Some(usage_nodes.len());
            usage_nodes.push(stand_in(
                format!("~usage-{i:06}"),
                &world.pools[pool].model.name,
                n.capacity.as_ref().unwrap_or(&n.allocatable),
            ));
        }
    }
    let mut in_flight_nodes = vec![];
    for c in world.in_flight_claims(skipped) {
        let Some(t) = world.types.iter().find(|t| t.name == c.instance_type) else {
            continue;
        };
        let p = world.pool_idx[&c.node_pool];
        usage_nodes.push(stand_in(
            format!("~usage-claim-{}", c.name),
            &c.node_pool,
            &t.capacity,
        ));
        let mut l = t.labels.clone();
        l.extend(world.pools[p].model.model.labels.clone());
        l.insert(sched::labels::NODEPOOL.into(), c.node_pool.clone());
        l.insert(sched::labels::INSTANCE_TYPE.into(), c.instance_type.clone());
        l.insert(sched::labels::ZONE.into(), c.zone.clone());
        l.insert(sched::labels::CAPACITY_TYPE.into(), c.capacity_type.clone());
        in_flight_nodes.push(sched::Node {
            name: c.name.clone(),
            labels: l,
            taints: vec![],
            allocatable: t.allocatable(),
            capacity: Some(t.capacity.clone()),
            unschedulable: true,
            initializing: false,
        });
    }
    (usage_nodes, usage_of, in_flight_nodes)
}

/// Whether two pods are the same but for their identity (namespace, name, labels, node).
fn same_shape(a: &Pod, b: &Pod) -> bool {
    // Spelled out field by field, so that a new field must be considered here.
    let Pod {
        namespace: _,
        name: _,
        labels: _,
        node_name: _,
        requests,
        init_containers,
        overhead,
        node_selector,
        affinity,
        tolerations,
        topology_spread_constraints,
        host_ports,
        volumes,
        priority,
    } = a;
    *requests == b.requests
        && *init_containers == b.init_containers
        && *overhead == b.overhead
        && *node_selector == b.node_selector
        && *affinity == b.affinity
        && *tolerations == b.tolerations
        && *topology_spread_constraints == b.topology_spread_constraints
        && *host_ports == b.host_ports
        && *volumes == b.volumes
        && *priority == b.priority
}

/// A plan with its pods renamed (`names`: old → new).
fn renamed(sol: &sched::Solution, names: &[(PodRef, PodRef)]) -> sched::Solution {
    let to = |p: &PodRef| {
        names
            .iter()
            .find(|(a, _)| a == p)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| p.clone())
    };
    let mut out = sol.clone();
    for pl in &mut out.placements {
        pl.pod = to(&pl.pod);
    }
    for c in &mut out.new_claims {
        for p in &mut c.pods {
            *p = to(p);
        }
    }
    for r in &mut out.relaxed {
        r.pod = to(&r.pod);
    }
    for u in &mut out.unschedulable {
        u.pod = to(&u.pod);
    }
    out
}

fn left_for_new_nodes(sol: &sched::Solution) -> Vec<PodRef> {
    sol.new_claims
        .iter()
        .flat_map(|c| c.pods.iter().cloned())
        .chain(sol.unschedulable.iter().map(|u| u.pod.clone()))
        .collect()
}

/// Per instance type some NodePool may launch: the cheapest available offering any such pool
/// allows, and the type's allocatable, cheapest first. A pool is taken to allow a type unless
/// one of its requirements rules out a value the type is known to have (its name or a label),
/// so the list errs on the side of more types, never fewer.
fn type_floor(world: &World<'_>, dims: &Dimensions) -> Vec<(f64, Room)> {
    let mut out = vec![];
    for t in world.types.iter() {
        let mut cheapest = f64::INFINITY;
        for pool in &world.pools {
            let m = &pool.model;
            let allows_type = m.model.requirements.iter().all(|r| {
                let v = if r.key == sched::labels::INSTANCE_TYPE {
                    Some(&t.name)
                } else {
                    t.labels.get(&r.key)
                };
                v.is_none_or(|v| {
                    adapt::requirement_holds(r, &BTreeMap::from([(r.key.clone(), v.clone())]))
                })
            });
            if !allows_type {
                continue;
            }
            for o in t.offerings.iter().filter(|o| o.available) {
                if adapt::pool_allows(m, sched::labels::ZONE, &o.zone)
                    && adapt::pool_allows(m, sched::labels::CAPACITY_TYPE, &o.capacity_type)
                {
                    cheapest = cheapest.min(o.price);
                }
            }
        }
        if cheapest.is_finite() {
            out.push((cheapest, dims.room(&t.allocatable())));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Options for disruption simulations: new NodeClaims allowed, every instance type listed.
pub fn solve_options() -> SolveOptions {
    SolveOptions {
        allow_new_nodes: true,
        relax_preferences: true,
        max_instance_type_options: usize::MAX,
        improve: true,
    }
}

/// Reads a solution; `moves` are placements already made on existing nodes (fast path), and the
/// solution's placements follow in the solver's order (which topology checks depend on).
fn interpret(sol: sched::Solution, mut moves: Moves) -> Rehoming {
    if let Some(u) = sol.unschedulable.first() {
        return Rehoming::Unplaceable {
            pod: u.pod.clone(),
            why: u.to_string(),
        };
    }
    for pl in &sol.placements {
        moves.solved.push((
            pl.pod.clone(),
            match &pl.target {
                sched::Target::Node(n) => NewHome::Node(n.clone()),
                sched::Target::NewClaim(i) => NewHome::Claim(*i),
            },
        ));
    }
    if sol.new_claims.is_empty() {
        Rehoming::Fits { moves }
    } else {
        Rehoming::NewNodes {
            moves,
            claims: sol.new_claims,
        }
    }
}
