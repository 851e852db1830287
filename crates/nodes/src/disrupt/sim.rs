//! "Where would these nodes' pods go?" — the scheduling simulation behind every disruption
//! method, in two interchangeable forms:
//!
//! - the full form builds a scheduling snapshot without the candidate nodes (their movable pods
//!   pending, everything else bound) and calls `ballast_scheduling::solve`;
//! - the fast form gives the same answer for pods the solver treats as plain first-fit items (no
//!   topology spread, pod (anti-)affinity, host ports, soft preferences or anti-affinity aimed at
//!   them): it replays the solver's first-fit-decreasing over the remaining nodes with incremental
//!   spare-room accounting (blocks of nodes summarised by their largest spare room, so full nodes
//!   are skipped sixteen at a time), and only the pods left over go to a small solve that opens
//!   new NodeClaims, with the pools' current usage standing in for the nodes.
//!
//! Whenever a candidate's pods are not all plain the full form is used, so results never differ.
//! Tests compare both forms on random clusters.

use std::collections::BTreeMap;

use ballast_scheduling::{
    self as sched, NewClaim, Pod, PodRef, Resources, SolveOptions, Taint, TaintEffect,
    check::node_fits_pod,
};

use crate::adapt;
use crate::error::Error;
use crate::snapshot::selector_matches;
use crate::world::World;

const D: usize = 12;
const BLOCK: usize = 16;
type Rv = [i64; D];

/// How the simulation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SimulationMode {
    /// Incremental first-fit for plain pods, the full solver otherwise (same answers, faster).
    #[default]
    Fast,
    /// The full solver every time.
    FullSolve,
}

/// A simulated pod's destination: an existing node, or one of the new claims (by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Node(String),
    Claim(usize),
}

/// Where the pods of a set of nodes would go.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every pod fits on the remaining nodes.
    Fits { moves: Vec<(PodRef, Dest)> },
    /// Some pods need new NodeClaims.
    NewNodes {
        moves: Vec<(PodRef, Dest)>,
        claims: Vec<NewClaim>,
    },
    /// A pod has nowhere to go.
    Unplaceable { pod: PodRef, why: String },
}

struct FastPod {
    pod: Pod,
    req: Rv,
    simple: bool,
    unconstrained: bool,
    key: (i32, i64, i64),
}

pub struct Sim<'w, 'a> {
    world: &'w World<'a>,
    mode: SimulationMode,
    dims: Vec<String>,
    /// Nodes pods may move to, by name order: node index.
    order: Vec<usize>,
    /// Node index → position in `order`.
    pos: Vec<Option<usize>>,
    spare: Vec<Rv>,
    block_max: Vec<Rv>,
    labels: Vec<BTreeMap<String, String>>,
    hard_taints: Vec<Vec<Taint>>,
    /// Per node, its movable pods prepared for the fast path.
    pods: Vec<Vec<FastPod>>,
    /// Per pool: capacity and count of every node and in-flight claim that counts against limits.
    pool_usage: Vec<(Resources, usize)>,
    in_flight_nodes: Vec<sched::Node>,
    fast_ok: bool,
    pub full_solves: usize,
    pub fast_evaluations: usize,
}

fn rv(dims: &[String], r: &Resources) -> Rv {
    let mut v = [0i64; D];
    for (i, d) in dims.iter().enumerate() {
        v[i] = r.get(d);
    }
    v
}

fn fits(req: &Rv, spare: &Rv) -> bool {
    (0..D).all(|d| req[d] <= spare[d])
}

/// Whether the pods of a node may land on it in a disruption simulation.
pub fn is_target(n: &crate::snapshot::ClusterNode) -> bool {
    n.initialized && n.ready && !n.deleting && !n.unschedulable
}

impl<'w, 'a> Sim<'w, 'a> {
    pub fn new(
        world: &'w World<'a>,
        mode: SimulationMode,
        skipped: &mut Vec<Error>,
    ) -> Sim<'w, 'a> {
        let snap = world.snap;
        let mut ext = std::collections::BTreeSet::new();
        for n in &snap.nodes {
            for p in &n.pods {
                for (k, v) in p.pod.effective_requests().iter() {
                    if v > 0 && !matches!(k, "cpu" | "memory" | "pods" | "ephemeral-storage") {
                        ext.insert(k.to_string());
                    }
                }
            }
        }
        let fast_ok = ext.len() <= D - 4;
        let mut dims: Vec<String> = ["cpu", "memory", "pods", "ephemeral-storage"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        dims.extend(ext.into_iter().take(D - 4));

        // Soft taints and anti-affinity aimed at pods make them non-plain.
        let mut pns: Vec<Taint> = snap
            .nodes
            .iter()
            .flat_map(|n| n.taints.iter())
            .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
            .cloned()
            .collect();
        pns.extend(
            world
                .pools
                .iter()
                .flat_map(|p| p.model.model.taints.iter())
                .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
                .cloned(),
        );
        pns.sort();
        pns.dedup();
        let anti: Vec<sched::LabelSelector> = snap
            .nodes
            .iter()
            .flat_map(|n| n.pods.iter())
            .filter(|p| !p.terminal)
            .flat_map(|p| p.pod.affinity.pod_anti_affinity.required.iter())
            .filter_map(|t| t.label_selector.clone())
            .collect();

        let mut order: Vec<usize> = (0..snap.nodes.len())
            .filter(|&i| is_target(&snap.nodes[i]))
            .collect();
        order.sort_by(|&a, &b| snap.nodes[a].name.cmp(&snap.nodes[b].name));
        let mut pos = vec![None; snap.nodes.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = Some(p);
        }
        let mut labels = vec![];
        let mut hard_taints = vec![];
        let mut spare_by_node = vec![];
        let mut pods = vec![];
        for n in &snap.nodes {
            let mut l = adapt::model_labels(&n.labels);
            l.entry(sched::labels::HOSTNAME.into())
                .or_insert_with(|| n.name.clone());
            labels.push(l);
            hard_taints.push(
                n.taints
                    .iter()
                    .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
                    .cloned()
                    .collect(),
            );
            let mut s = rv(&dims, &n.allocatable);
            for p in n.pods.iter().filter(|p| !p.terminal) {
                let r = rv(&dims, &p.pod.effective_requests());
                for d in 0..D {
                    s[d] -= r[d];
                }
            }
            spare_by_node.push(s);
            let mut mine = vec![];
            for p in n.pods.iter().filter(|p| p.is_reschedulable()) {
                let mut mp = adapt::model_pod(&p.pod);
                mp.node_name = None;
                let eff = mp.effective_requests();
                let na = &mp.affinity.node_affinity;
                let simple = mp.topology_spread_constraints.is_empty()
                    && mp.affinity.pod_affinity.required.is_empty()
                    && mp.affinity.pod_affinity.preferred.is_empty()
                    && mp.affinity.pod_anti_affinity.required.is_empty()
                    && mp.affinity.pod_anti_affinity.preferred.is_empty()
                    && na.preferred.is_empty()
                    && mp.host_ports.is_empty()
                    && !na
                        .required
                        .iter()
                        .flat_map(|t| t.match_expressions.iter())
                        .any(|r| matches!(r.operator, sched::Operator::Gt | sched::Operator::Lt))
                    && pns.iter().all(|t| sched::tolerated(&mp.tolerations, t))
                    && !anti.iter().any(|s| selector_matches(s, &mp.labels));
                let unconstrained = mp.node_selector.is_empty()
                    && na.required.is_empty()
                    && mp.volumes.iter().all(|v| v.zones.is_empty());
                mine.push(FastPod {
                    key: (-mp.priority, -eff.cpu_millis, -eff.memory_bytes),
                    req: rv(&dims, &eff),
                    pod: mp,
                    simple,
                    unconstrained,
                });
            }
            pods.push(mine);
        }
        let spare: Vec<Rv> = order.iter().map(|&i| spare_by_node[i]).collect();
        let mut pool_usage = vec![(Resources::default(), 0usize); world.pools.len()];
        for n in &snap.nodes {
            if let Some(p) = adapt::pool_label(&n.labels).and_then(|p| world.pool_idx.get(p)) {
                add(
                    &mut pool_usage[*p].0,
                    n.capacity.as_ref().unwrap_or(&n.allocatable),
                );
                pool_usage[*p].1 += 1;
            }
        }
        let mut in_flight_nodes = vec![];
        for c in world.in_flight_claims(skipped) {
            let Some(t) = world.types.iter().find(|t| t.name == c.instance_type) else {
                continue;
            };
            let p = world.pool_idx[&c.node_pool];
            add(&mut pool_usage[p].0, &t.capacity);
            pool_usage[p].1 += 1;
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
        let mut sim = Sim {
            world,
            mode,
            dims,
            order,
            pos,
            spare,
            block_max: vec![],
            labels,
            hard_taints,
            pods,
            pool_usage,
            in_flight_nodes,
            fast_ok,
            full_solves: 0,
            fast_evaluations: 0,
        };
        sim.block_max = (0..sim.spare.len().div_ceil(BLOCK))
            .map(|b| sim.block_summary(b))
            .collect();
        sim
    }

    fn block_summary(&self, b: usize) -> Rv {
        let mut m = [i64::MIN; D];
        for s in &self.spare[b * BLOCK..((b + 1) * BLOCK).min(self.spare.len())] {
            for d in 0..D {
                m[d] = m[d].max(s[d]);
            }
        }
        m
    }

    /// Whether every movable pod of these nodes is plain enough for the fast path.
    pub fn plain(&self, nodes: &[usize]) -> bool {
        self.fast_ok && nodes.iter().all(|&n| self.pods[n].iter().all(|p| p.simple))
    }

    /// Where the movable pods of `cands` would go if those nodes were removed; new NodeClaims are
    /// opened for pods that fit nowhere else.
    pub fn evaluate(&mut self, cands: &[usize]) -> Result<Outcome, Error> {
        if self.mode == SimulationMode::Fast && self.plain(cands) {
            self.fast_evaluations += 1;
            self.evaluate_fast(cands)
        } else {
            self.full_solves += 1;
            self.evaluate_full(cands)
        }
    }

    fn compatible(&self, p: &FastPod, node: usize) -> bool {
        let taints = &self.hard_taints[node];
        if p.unconstrained && taints.is_empty() {
            return true;
        }
        taints
            .iter()
            .all(|t| sched::tolerated(&p.pod.tolerations, t))
            && node_fits_pod(&p.pod, &self.labels[node])
    }

    fn evaluate_fast(&mut self, cands: &[usize]) -> Result<Outcome, Error> {
        let mut evicted: Vec<(usize, usize)> = cands
            .iter()
            .flat_map(|&n| (0..self.pods[n].len()).map(move |k| (n, k)))
            .collect();
        evicted.sort_by(|&(an, ak), &(bn, bk)| {
            let (a, b) = (&self.pods[an][ak], &self.pods[bn][bk]);
            a.key
                .cmp(&b.key)
                .then_with(|| a.pod.namespace.cmp(&b.pod.namespace))
                .then_with(|| a.pod.name.cmp(&b.pod.name))
        });
        // Take the candidates out: no room on them.
        let mut saved: Vec<(usize, Rv)> = vec![];
        let mut touched_blocks: Vec<usize> = vec![];
        for &c in cands {
            if let Some(p) = self.pos[c] {
                saved.push((p, self.spare[p]));
                self.spare[p] = [i64::MIN / 4; D];
                touched_blocks.push(p / BLOCK);
            }
        }
        for &b in &touched_blocks {
            self.block_max[b] = self.block_summary(b);
        }
        let mut moves = vec![];
        let mut left: Vec<(usize, usize)> = vec![];
        for &(n, k) in &evicted {
            let req = self.pods[n][k].req;
            let mut placed = None;
            'blocks: for b in 0..self.block_max.len() {
                if !fits(&req, &self.block_max[b]) {
                    continue;
                }
                for p in b * BLOCK..((b + 1) * BLOCK).min(self.spare.len()) {
                    if fits(&req, &self.spare[p])
                        && self.compatible(&self.pods[n][k], self.order[p])
                    {
                        placed = Some(p);
                        break 'blocks;
                    }
                }
            }
            match placed {
                Some(p) => {
                    if !saved.iter().any(|(q, _)| *q == p) {
                        saved.push((p, self.spare[p]));
                    }
                    for (s, r) in self.spare[p].iter_mut().zip(req) {
                        *s -= r;
                    }
                    self.block_max[p / BLOCK] = self.block_summary(p / BLOCK);
                    touched_blocks.push(p / BLOCK);
                    moves.push((
                        self.pods[n][k].pod.key(),
                        Dest::Node(self.world.snap.nodes[self.order[p]].name.clone()),
                    ));
                }
                None => left.push((n, k)),
            }
        }
        // Put everything back.
        for (p, s) in saved.into_iter().rev() {
            self.spare[p] = s;
        }
        touched_blocks.sort_unstable();
        touched_blocks.dedup();
        for b in touched_blocks {
            self.block_max[b] = self.block_summary(b);
        }
        if left.is_empty() {
            return Ok(Outcome::Fits { moves });
        }
        // The leftovers go to new NodeClaims exactly as in a full solve: nothing they do can
        // touch the existing nodes, so a solve over just them and the pools' usage agrees.
        let mut nodes = vec![];
        for (pi, pool) in self.world.pools.iter().enumerate() {
            let (mut cap, mut count) = self.pool_usage[pi].clone();
            for &c in cands {
                let n = &self.world.snap.nodes[c];
                if adapt::pool_label(&n.labels) == Some(pool.model.name.as_str()) {
                    sub(&mut cap, n.capacity.as_ref().unwrap_or(&n.allocatable));
                    count -= 1;
                }
            }
            if count == 0 {
                continue;
            }
            let limited_count = pool
                .model
                .model
                .limits
                .as_ref()
                .is_some_and(|l| l.get("nodes") > 0 || l.extended.contains_key("nodes"));
            let copies = if limited_count { count } else { 1 };
            for i in 0..copies {
                nodes.push(sched::Node {
                    name: format!("~usage-{}-{i}", pool.model.name),
                    labels: BTreeMap::from([(
                        sched::labels::NODEPOOL.to_string(),
                        pool.model.name.clone(),
                    )]),
                    taints: vec![],
                    allocatable: Resources::default(),
                    capacity: Some(if i == 0 {
                        cap.clone()
                    } else {
                        Resources::default()
                    }),
                    unschedulable: true,
                    initializing: false,
                });
            }
        }
        let model = sched::Snapshot {
            nodes,
            in_flight: vec![],
            pods: left
                .iter()
                .map(|&(n, k)| self.pods[n][k].pod.clone())
                .collect(),
            node_pools: self.world.model_pools(),
            instance_types: self.world.types.clone(),
            namespaces: self.world.snap.namespaces.clone(),
        };
        let sol = sched::solve(&model, &solve_options())?;
        Ok(interpret(sol, moves))
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
            instance_types: self.world.types.clone(),
            namespaces: snap.namespaces.clone(),
        };
        for (i, n) in snap.nodes.iter().enumerate() {
            if cands.contains(&i) {
                for p in &self.pods[i] {
                    model.pods.push(p.pod.clone());
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

    fn evaluate_full(&mut self, cands: &[usize]) -> Result<Outcome, Error> {
        let model = self.full_snapshot(cands);
        let sol = sched::solve(&model, &solve_options())?;
        Ok(interpret(sol, vec![]))
    }

    pub fn dims(&self) -> &[String] {
        &self.dims
    }
}

/// Options for disruption simulations: new NodeClaims allowed, every instance type listed.
pub fn solve_options() -> SolveOptions {
    SolveOptions {
        allow_new_nodes: true,
        relax_preferences: true,
        max_instance_type_options: usize::MAX,
        improve: true,
        ..SolveOptions::default()
    }
}

/// Reads a solution; `moves` are placements already made on existing nodes (fast path), and the
/// solution's placements follow in the solver's order (which topology checks depend on).
fn interpret(sol: sched::Solution, mut moves: Vec<(PodRef, Dest)>) -> Outcome {
    if let Some(u) = sol.unschedulable.first() {
        return Outcome::Unplaceable {
            pod: u.pod.clone(),
            why: u.to_string(),
        };
    }
    for pl in &sol.placements {
        moves.push((
            pl.pod.clone(),
            match &pl.target {
                sched::Target::Node(n) => Dest::Node(n.clone()),
                sched::Target::NewClaim(i) => Dest::Claim(*i),
            },
        ));
    }
    if sol.new_claims.is_empty() {
        Outcome::Fits { moves }
    } else {
        Outcome::NewNodes {
            moves,
            claims: sol.new_claims,
        }
    }
}

fn add(a: &mut Resources, b: &Resources) {
    for (k, v) in b.iter() {
        let cur = a.get(k);
        a.set(k, cur.saturating_add(v));
    }
}

fn sub(a: &mut Resources, b: &Resources) {
    for (k, v) in b.iter() {
        let cur = a.get(k);
        a.set(k, cur.saturating_sub(v));
    }
}
