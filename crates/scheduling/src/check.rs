//! An independent checker: given a snapshot and a plan, list every hard constraint the plan breaks.
//!
//! It shares no code with the solver beyond the input model: it works on plain strings, replays
//! the placements in order and recomputes everything from the final node labels. Tests and the
//! simulator use it to catch solver bugs; an empty list means the plan is sound.

use std::collections::{BTreeMap, BTreeSet};

use crate::aliases;
use crate::model::{
    InstanceType, LabelSelector, NodeInclusionPolicy, NodePool, NodeSelectorTerm, Operator, Pod,
    PodAffinityTerm, Requirement, Resources, SelectorOperator, Snapshot, Taint, TaintEffect,
    WhenUnsatisfiable, labels as wk, tolerated,
};
use crate::solution::{NewClaim, Placement, Solution, Target};

struct CheckedNode {
    name: String,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    alloc: Resources,
    used: Resources,
    pool: Option<String>,
    capacity: Resources,
}

fn req_ok(r: &Requirement, labels: &BTreeMap<String, String>) -> bool {
    let v = aliases::get(labels, &r.key);
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator {
        Operator::In => v.is_some_and(|v| r.values.contains(v)),
        Operator::NotIn => v.is_none_or(|v| !r.values.contains(v)),
        Operator::Exists => v.is_some(),
        Operator::DoesNotExist => v.is_none(),
        Operator::Gt => {
            matches!((v.and_then(|v| int(v)), r.values.first().and_then(|x| int(x))), (Some(a), Some(b)) if a > b)
        }
        Operator::Lt => {
            matches!((v.and_then(|v| int(v)), r.values.first().and_then(|x| int(x))), (Some(a), Some(b)) if a < b)
        }
    }
}

fn term_ok(t: &NodeSelectorTerm, labels: &BTreeMap<String, String>) -> bool {
    t.match_expressions.iter().all(|r| req_ok(r, labels))
}

/// The pod's node selector, required node affinity and volume zones hold on these labels.
pub fn node_fits_pod(p: &Pod, labels: &BTreeMap<String, String>) -> bool {
    p.node_selector
        .iter()
        .all(|(k, v)| aliases::get(labels, k) == Some(v))
        && (p.affinity.node_affinity.required.is_empty()
            || p.affinity
                .node_affinity
                .required
                .iter()
                .any(|t| term_ok(t, labels)))
        && p.volumes.iter().all(|v| {
            v.zones.is_empty() || labels.get(wk::ZONE).is_some_and(|z| v.zones.contains(z))
        })
}

fn selector_ok(s: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    s.is_some_and(|s| selector_matches(s, labels))
}

/// Whether a label selector selects these labels.
pub fn selector_matches(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && s.match_expressions.iter().all(|e| {
            let v = labels.get(&e.key);
            match e.operator {
                SelectorOperator::In => v.is_some_and(|v| e.values.contains(v)),
                SelectorOperator::NotIn => v.is_none_or(|v| !e.values.contains(v)),
                SelectorOperator::Exists => v.is_some(),
                SelectorOperator::DoesNotExist => v.is_none(),
            }
        })
}

fn term_namespaces_ok(t: &PodAffinityTerm, owner_ns: &str, ns: &str, snap: &Snapshot) -> bool {
    match &t.namespace_selector {
        Some(sel) if sel.match_labels.is_empty() && sel.match_expressions.is_empty() => true,
        Some(sel) => {
            t.namespaces.iter().any(|n| n == ns)
                || snap
                    .namespaces
                    .iter()
                    .any(|n| n.name == ns && selector_ok(Some(sel), &n.labels))
        }
        None if t.namespaces.is_empty() => ns == owner_ns,
        None => t.namespaces.iter().any(|n| n == ns),
    }
}

fn add(a: &mut Resources, b: &Resources) {
    for (k, v) in b.iter() {
        let cur = a.get(k);
        a.set(k, cur + v);
    }
}

/// Every hard-constraint violation in the plan, in words. Empty when the plan is sound.
pub fn check(snap: &Snapshot, sol: &Solution) -> Vec<String> {
    let mut checker = Checker {
        snap,
        sol,
        pools: snap
            .node_pools
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect(),
        types: snap
            .instance_types
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect(),
        nodes: vec![],
        bad: vec![],
    };
    checker.existing_nodes();
    checker.in_flight_nodes();
    let existing = checker.nodes.len();
    for (i, claim) in sol.new_claims.iter().enumerate() {
        checker.claim_node(i, claim);
    }
    let placed = checker.replay(existing);
    checker.overcommits();
    checker.pool_limits();
    checker.pending_pods_accounted(&placed);
    checker.bad
}

/// The checker's view while it replays a plan.
struct Checker<'a> {
    snap: &'a Snapshot,
    sol: &'a Solution,
    pools: BTreeMap<&'a str, &'a NodePool>,
    types: BTreeMap<&'a str, &'a InstanceType>,
    /// Existing nodes, then in-flight claims, then the plan's new claims, in that order.
    nodes: Vec<CheckedNode>,
    bad: Vec<String>,
}

impl Checker<'_> {
    /// The snapshot's nodes, with start-up taints lifted while they initialize and cordoned
    /// nodes refusing everything.
    fn existing_nodes(&mut self) {
        for n in &self.snap.nodes {
            let mut labels = n.labels.clone();
            labels
                .entry(wk::HOSTNAME.into())
                .or_insert_with(|| n.name.clone());
            let pool = aliases::get(&n.labels, wk::NODEPOOL).cloned();
            let mut taints = n.taints.clone();
            if n.initializing {
                let startup = pool
                    .as_deref()
                    .and_then(|p| self.pools.get(p))
                    .map(|p| p.startup_taints.clone())
                    .unwrap_or_default();
                taints.retain(|t| {
                    !startup.contains(t)
                        && !crate::model::EPHEMERAL_TAINTS.contains(&t.key.as_str())
                });
            }
            self.nodes.push(CheckedNode {
                name: n.name.clone(),
                labels,
                taints: if n.unschedulable {
                    vec![Taint::new("cordoned", "", TaintEffect::NoSchedule)]
                } else {
                    taints
                },
                alloc: n.allocatable.clone(),
                used: Resources::default(),
                pool,
                capacity: n.capacity.clone().unwrap_or_else(|| n.allocatable.clone()),
            });
        }
    }

    /// Claims already launching, as nodes with the labels their pool and type will give them.
    fn in_flight_nodes(&mut self) {
        for c in &self.snap.in_flight {
            let (Some(p), Some(t)) = (
                self.pools.get(c.node_pool.as_str()),
                self.types.get(c.instance_type.as_str()),
            ) else {
                self.bad.push(format!(
                    "in-flight {} names an unknown pool or type",
                    c.name
                ));
                continue;
            };
            let mut labels = p.labels.clone();
            for (k, v) in &t.labels {
                labels.insert(k.clone(), v.clone());
            }
            labels.insert(wk::INSTANCE_TYPE.into(), t.name.clone());
            labels.insert(wk::ZONE.into(), c.zone.clone());
            labels.insert(wk::CAPACITY_TYPE.into(), c.capacity_type.clone());
            labels.insert(wk::NODEPOOL.into(), p.name.clone());
            labels.insert(wk::HOSTNAME.into(), c.name.clone());
            for r in &p.requirements {
                if r.operator == Operator::In && r.values.len() == 1 {
                    labels
                        .entry(r.key.clone())
                        .or_insert_with(|| r.values[0].clone());
                }
            }
            let mut alloc = t.allocatable();
            for (k, v) in p.daemonset_overhead.iter() {
                let cur = alloc.get(k);
                alloc.set(k, cur - v);
            }
            self.nodes.push(CheckedNode {
                name: c.name.clone(),
                labels,
                taints: p.taints.clone(),
                alloc,
                used: Resources::default(),
                pool: Some(p.name.clone()),
                capacity: t.capacity.clone(),
            });
        }
    }

    /// The plan's new claim `i` checked against its offering, type and pool, and added as a
    /// node (an unusable claim still takes its slot so indices stay aligned; nothing fits on it).
    fn claim_node(&mut self, i: usize, c: &NewClaim) {
        let placeholder = || CheckedNode {
            name: format!("new:{}", c.name),
            labels: c.labels.clone(),
            taints: vec![],
            alloc: Resources::default(),
            used: Resources::default(),
            pool: None,
            capacity: Resources::default(),
        };
        let Some(p) = self.pools.get(c.node_pool.as_str()).copied() else {
            self.bad
                .push(format!("claim {i} uses unknown pool {}", c.node_pool));
            self.nodes.push(placeholder());
            return;
        };
        let Some(t) = self.types.get(c.instance_type.as_str()).copied() else {
            self.bad
                .push(format!("claim {i} uses unknown type {}", c.instance_type));
            self.nodes.push(placeholder());
            return;
        };
        self.claim_offering(c, t);
        self.claim_labels(c, t, p);
        let mut used = Resources::default();
        add(&mut used, &p.daemonset_overhead);
        self.nodes.push(CheckedNode {
            name: format!("new:{}", c.name),
            labels: c.labels.clone(),
            taints: p.taints.clone(),
            alloc: t.allocatable(),
            used,
            pool: Some(p.name.clone()),
            capacity: t.capacity.clone(),
        });
    }

    /// The claim's offering exists, is available and is priced as the plan says.
    fn claim_offering(&mut self, c: &NewClaim, t: &InstanceType) {
        match t
            .offerings
            .iter()
            .find(|o| o.zone == c.zone && o.capacity_type == c.capacity_type)
        {
            None => self.bad.push(format!(
                "claim {} has no offering {} {} {}",
                c.name, t.name, c.zone, c.capacity_type
            )),
            Some(o) if !o.available => self
                .bad
                .push(format!("claim {} uses an unavailable offering", c.name)),
            Some(o) if (o.price - c.price).abs() > 1e-9 => self
                .bad
                .push(format!("claim {} price {} != {}", c.name, c.price, o.price)),
            Some(_) => {}
        }
    }

    /// The claim's labels match its offering, its type and its pool's template and
    /// requirements (minValues included).
    fn claim_labels(&mut self, c: &NewClaim, t: &InstanceType, p: &NodePool) {
        for (k, v) in [
            (wk::ZONE, &c.zone),
            (wk::CAPACITY_TYPE, &c.capacity_type),
            (wk::INSTANCE_TYPE, &c.instance_type),
        ] {
            if c.labels.get(k) != Some(v) {
                self.bad.push(format!(
                    "claim {} label {k} does not match its offering",
                    c.name
                ));
            }
        }
        for (k, v) in &t.labels {
            if c.labels.get(k) != Some(v) {
                self.bad.push(format!(
                    "claim {} label {k} does not match its instance type",
                    c.name
                ));
            }
        }
        for r in &p.requirements {
            if !req_ok(r, &c.labels) {
                self.bad.push(format!(
                    "claim {} breaks NodePool requirement {} {:?} {:?}",
                    c.name, r.key, r.operator, r.values
                ));
            }
            self.claim_min_values(c, r);
        }
        for (k, v) in &p.labels {
            if c.labels.get(k) != Some(v) {
                self.bad
                    .push(format!("claim {} lacks template label {k}", c.name));
            }
        }
    }

    /// minValues on offering keys (zone, capacity type) is about launch flexibility the plan
    /// does not list; only instance-type labels are checked.
    fn claim_min_values(&mut self, c: &NewClaim, r: &Requirement) {
        let Some(m) = r
            .min_values
            .filter(|_| r.key != wk::ZONE && r.key != wk::CAPACITY_TYPE)
        else {
            return;
        };
        let values: BTreeSet<String> = c
            .instance_type_options
            .iter()
            .filter_map(|n| self.types.get(n.as_str()))
            .filter_map(|t| {
                if r.key == wk::INSTANCE_TYPE {
                    Some(t.name.clone())
                } else {
                    t.labels.get(&r.key).cloned()
                }
            })
            .collect();
        if (values.len() as u32) < m {
            self.bad.push(format!(
                "claim {} has {} values of {} < minValues {m}",
                c.name,
                values.len(),
                r.key
            ));
        }
    }

    /// Replays bound pods, then the plan's placements in order, checking each placement where
    /// it lands; returns the indices of the pods placed.
    fn replay(&mut self, existing: usize) -> BTreeSet<usize> {
        let index: BTreeMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut at: Vec<(usize, usize)> = vec![]; // (pod index, node index)
        for (pi, p) in self.snap.pods.iter().enumerate() {
            if let Some(n) = &p.node_name
                && let Some(&ni) = index.get(n)
            {
                add(&mut self.nodes[ni].used, &p.effective_requests());
                at.push((pi, ni));
            }
        }
        let by_key: BTreeMap<(&str, &str), usize> = self
            .snap
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.namespace.as_str(), p.name.as_str()), i))
            .collect();
        let mut placed = BTreeSet::new();
        for pl in &self.sol.placements {
            let key = (pl.pod.namespace.as_str(), pl.pod.name.as_str());
            let Some(&pi) = by_key.get(&key) else {
                self.bad
                    .push(format!("placement of unknown pod {}", pl.pod));
                continue;
            };
            if self.snap.pods[pi].node_name.is_some() {
                self.bad.push(format!("{} was already bound", pl.pod));
            }
            if !placed.insert(pi) {
                self.bad.push(format!("{} placed twice", pl.pod));
                continue;
            }
            let ni = match &pl.target {
                Target::Node(n) => index.get(n).copied().filter(|&i| i < existing),
                Target::NewClaim(i) => Some(existing + *i).filter(|&i| i < self.nodes.len()),
            };
            let Some(ni) = ni else {
                self.bad.push(format!(
                    "{} placed on unknown target {:?}",
                    pl.pod, pl.target
                ));
                continue;
            };
            self.placement(pl, pi, ni, &at);
            add(
                &mut self.nodes[ni].used,
                &self.snap.pods[pi].effective_requests(),
            );
            at.push((pi, ni));
        }
        placed
    }

    /// One placement of pod `pi` on node `ni`: claim pod list, taints, affinity, host ports and
    /// topology, given the pods placed so far (`at`).
    fn placement(&mut self, pl: &Placement, pi: usize, ni: usize, at: &[(usize, usize)]) {
        let p = &self.snap.pods[pi];
        if let Target::NewClaim(i) = pl.target
            && !self.sol.new_claims[i].pods.contains(&pl.pod)
        {
            self.bad
                .push(format!("{} missing from claim {i}'s pod list", pl.pod));
        }
        let node = &self.nodes[ni];
        for t in &node.taints {
            if t.effect != TaintEffect::PreferNoSchedule && !tolerated(&p.tolerations, t) {
                self.bad.push(format!(
                    "{} on {} does not tolerate {}",
                    pl.pod, node.name, t
                ));
            }
        }
        if !node_fits_pod(p, &node.labels) {
            self.bad.push(format!(
                "{} on {}: node selector/affinity/volume zone not met",
                pl.pod, node.name
            ));
        }
        for hp in &p.host_ports {
            for &(qi, qn) in at {
                if qn == ni
                    && self.snap.pods[qi]
                        .host_ports
                        .iter()
                        .any(|q| q.conflicts(hp))
                {
                    self.bad.push(format!(
                        "{} on {}: host port {} taken",
                        pl.pod, node.name, hp.port
                    ));
                }
            }
        }
        check_topology(self.snap, p, pi, ni, &self.nodes, at, &mut self.bad);
    }

    /// No node holds more than it can allocate.
    fn overcommits(&mut self) {
        for n in &self.nodes {
            for (k, v) in n.used.iter() {
                if v > n.alloc.get(k) {
                    self.bad.push(format!(
                        "{} overcommitted on {k}: {v} > {}",
                        n.name,
                        n.alloc.get(k)
                    ));
                }
            }
        }
    }

    /// No pool the plan adds claims to ends over its limits (a pool already over them is not
    /// the plan's doing).
    fn pool_limits(&mut self) {
        for p in &self.snap.node_pools {
            let Some(limits) = &p.limits else { continue };
            if !self.sol.new_claims.iter().any(|c| c.node_pool == p.name) {
                continue;
            }
            let mut total = Resources::default();
            let mut count = 0;
            for n in self
                .nodes
                .iter()
                .filter(|n| n.pool.as_deref() == Some(&p.name))
            {
                add(&mut total, &n.capacity);
                count += 1;
            }
            for (k, v) in limits.iter() {
                let have = if k == "nodes" { count } else { total.get(k) };
                if have > v {
                    self.bad.push(format!(
                        "NodePool {} over its {k} limit: {have} > {v}",
                        p.name
                    ));
                }
            }
        }
    }

    /// Every pending pod is either placed or explained, never both.
    fn pending_pods_accounted(&mut self, placed: &BTreeSet<usize>) {
        let explained: BTreeSet<(&str, &str)> = self
            .sol
            .unschedulable
            .iter()
            .map(|u| (u.pod.namespace.as_str(), u.pod.name.as_str()))
            .collect();
        for (pi, p) in self.snap.pods.iter().enumerate() {
            let is_explained = explained.contains(&(p.namespace.as_str(), p.name.as_str()));
            if p.node_name.is_none() && !placed.contains(&pi) && !is_explained {
                self.bad.push(format!(
                    "{}/{} neither placed nor explained",
                    p.namespace, p.name
                ));
            }
            if placed.contains(&pi) && is_explained {
                self.bad.push(format!(
                    "{}/{} both placed and explained",
                    p.namespace, p.name
                ));
            }
        }
    }
}

fn check_topology(
    snap: &Snapshot,
    p: &Pod,
    _pi: usize,
    ni: usize,
    nodes: &[CheckedNode],
    at: &[(usize, usize)],
    bad: &mut Vec<String>,
) {
    let node = &nodes[ni];
    let who = format!("{}/{}", p.namespace, p.name);
    for t in &p.affinity.pod_affinity.required {
        let matches = |q: &Pod| {
            term_namespaces_ok(t, &p.namespace, &q.namespace, snap)
                && selector_ok(t.label_selector.as_ref(), &q.labels)
        };
        let any = at.iter().any(|&(qi, _)| matches(&snap.pods[qi]));
        let mine = node.labels.get(&t.topology_key);
        let near = mine.is_some()
            && at.iter().any(|&(qi, qn)| {
                matches(&snap.pods[qi]) && nodes[qn].labels.get(&t.topology_key) == mine
            });
        let self_ok = !any && matches(p);
        if !near && !self_ok {
            bad.push(format!(
                "{who} on {}: pod affinity on {} not met",
                node.name, t.topology_key
            ));
        }
    }
    for t in &p.affinity.pod_anti_affinity.required {
        let Some(mine) = node.labels.get(&t.topology_key) else {
            continue;
        };
        for &(qi, qn) in at {
            let q = &snap.pods[qi];
            if term_namespaces_ok(t, &p.namespace, &q.namespace, snap)
                && selector_ok(t.label_selector.as_ref(), &q.labels)
                && nodes[qn].labels.get(&t.topology_key) == Some(mine)
            {
                bad.push(format!(
                    "{who} on {}: anti-affinity with {}/{}",
                    node.name, q.namespace, q.name
                ));
            }
        }
    }
    // Existing pods' anti-affinity toward this pod.
    for &(qi, qn) in at {
        let q = &snap.pods[qi];
        for t in &q.affinity.pod_anti_affinity.required {
            if term_namespaces_ok(t, &q.namespace, &p.namespace, snap)
                && selector_ok(t.label_selector.as_ref(), &p.labels)
                && node.labels.contains_key(&t.topology_key)
                && nodes[qn].labels.get(&t.topology_key) == node.labels.get(&t.topology_key)
            {
                bad.push(format!(
                    "{who} on {}: excluded by {}/{}'s anti-affinity",
                    node.name, q.namespace, q.name
                ));
            }
        }
    }
    for c in &p.topology_spread_constraints {
        if c.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
            continue;
        }
        let Some(mine) = node.labels.get(&c.topology_key) else {
            bad.push(format!(
                "{who} on {}: node lacks spread key {}",
                node.name, c.topology_key
            ));
            continue;
        };
        let mut sel = c.label_selector.clone();
        if let Some(s) = sel.as_mut() {
            for k in &c.match_label_keys {
                if let Some(v) = p.labels.get(k) {
                    s.match_labels.insert(k.clone(), v.clone());
                }
            }
        }
        let mut counts: BTreeMap<&String, i64> = BTreeMap::new();
        for n in nodes {
            let eligible = match c.node_affinity_policy {
                NodeInclusionPolicy::Honor => node_fits_pod(p, &n.labels),
                NodeInclusionPolicy::Ignore => true,
            };
            if let (true, Some(d)) = (eligible, n.labels.get(&c.topology_key)) {
                counts.entry(d).or_insert(0);
            }
        }
        let count_in = |d: &String| -> i64 {
            at.iter()
                .filter(|&&(qi, qn)| {
                    let q = &snap.pods[qi];
                    q.namespace == p.namespace
                        && selector_ok(sel.as_ref(), &q.labels)
                        && nodes[qn].labels.get(&c.topology_key) == Some(d)
                })
                .count() as i64
        };
        let keys: Vec<&String> = counts.keys().copied().collect();
        for d in keys {
            let n = count_in(d);
            counts.insert(d, n);
        }
        let min = counts.values().copied().min().unwrap_or(0);
        let min = if (counts.len() as i32) < c.min_domains.unwrap_or(1) {
            0
        } else {
            min
        };
        let here = count_in(mine);
        if here + 1 - min > c.max_skew as i64 {
            bad.push(format!(
                "{who} on {}: spread on {} skew {} > {}",
                node.name,
                c.topology_key,
                here + 1 - min,
                c.max_skew
            ));
        }
    }
}
