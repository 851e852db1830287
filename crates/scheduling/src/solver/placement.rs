//! Placement: whether a pod fits an existing slot, an open NodeClaim or a new one from a
//! NodePool, and committing it (usage, ports, narrowed instance types, topology counts).

use super::*;

#[derive(Clone)]
pub(super) struct OpenClaim {
    pub(super) pool: usize,
    pub(super) slot: usize,
    pub(super) types: TypeSet,
    pub(super) zone_mask: u64,
    pub(super) capacity_mask: u64,
    pub(super) requirements: ReqSet,
    pub(super) used: ResourceVector,
    pub(super) max_alloc: ResourceVector,
    pub(super) min_alloc: ResourceVector,
    pub(super) reserved: ResourceVector,
    pub(super) pods: Vec<usize>,
    pub(super) ports: Vec<HostPort>,
    /// Topology keys a placed pod fixed the domain of (hostname aside).
    pub(super) pinned: Vec<u32>,
    pub(super) alive: bool,
}

/// A tentative change to a NodeClaim.
pub(super) struct Trial {
    pub(super) types: TypeSet,
    pub(super) zone_mask: u64,
    pub(super) capacity_mask: u64,
    pub(super) requirements: ReqSet,
    pub(super) used: ResourceVector,
    pub(super) reserved: ResourceVector,
    pub(super) doms: Vec<(u32, Option<u32>)>,
}

impl<'a> Solver<'a> {
    pub(super) fn blocking_taint(&self, pi: usize, taints: &[Taint]) -> Option<Taint> {
        let p = &self.pods[pi];
        let tol: &[Toleration] = &self.pod_sources[p.source].tolerations;
        taints
            .iter()
            .find(|t| {
                (t.effect != TaintEffect::PreferNoSchedule || p.prefer_no_schedule_active())
                    && !crate::model::tolerated(tol, t)
            })
            .cloned()
    }

    pub(super) fn blocking_port(&self, pi: usize, used: &[HostPort]) -> Option<u16> {
        self.pods[pi]
            .ports
            .iter()
            .find(|hp| used.iter().any(|u| u.conflicts(hp)))
            .map(|hp| hp.port)
    }

    pub(super) fn try_existing(
        &self,
        pi: usize,
        s: usize,
    ) -> Result<Vec<(u32, Option<u32>)>, Rejection> {
        let slot = &self.cluster.slots[s];
        let p = &self.pods[pi];
        if slot.cordoned {
            return Err(Rejection::Cordoned);
        }
        let used = &self.slot_used[s];
        let need = used.add(&p.requests);
        if let Some(d) = need.first_over(&slot.alloc) {
            return Err(Rejection::Resource {
                dim: d,
                need: p.requests.0[d],
                free: slot.alloc.0[d] - used.0[d],
            });
        }
        if let Some(t) = self.blocking_taint(pi, &slot.taints) {
            return Err(Rejection::Taint(t));
        }
        if let Some(w) = &p.hard_problem {
            return Err(w.clone());
        }
        if p.alternative_ids.is_empty() {
            return Err(Rejection::Conflict);
        }
        let holds = |ai: usize| {
            self.alternatives[ai]
                .rs
                .iter()
                .all(|(k, v)| v.allows(label(&slot.labels, *k), &self.vals))
        };
        if !p.alternative_ids.iter().any(|&ai| holds(ai)) {
            // Reported: the first alternative's unmet key with the smallest name.
            let bad = self.alternatives[p.alternative_ids[0]]
                .rs
                .iter()
                .filter(|(k, v)| !v.allows(label(&slot.labels, *k), &self.vals))
                .map(|(k, _)| *k);
            return Err(Rejection::Requirement(
                self.first_key(bad).unwrap_or(self.cluster.zone_key),
            ));
        }
        if let Some(port) = self.blocking_port(pi, &self.slot_ports[s]) {
            return Err(Rejection::Port(port));
        }
        self.choose_domains(pi, &mut |s2: &Self, key| {
            Ok(DomainOptions::Fixed(s2.slot_domain(s, key)))
        })
    }

    pub(super) fn commit_existing(&mut self, pi: usize, s: usize, doms: Vec<(u32, Option<u32>)>) {
        let requests = self.pods[pi].requests;
        self.slot_used.to_mut()[s] = self.slot_used[s].add(&requests);
        if !self.pods[pi].ports.is_empty() {
            let ports = self.pods[pi].ports.clone();
            self.slot_ports.to_mut()[s].extend(ports);
        }
        self.record_placement(pi, &doms);
        self.placements.push((pi, s));
    }

    // ---------------------------------------------------------------------------------------
    // NodeClaims.

    pub(super) fn empty_claim(&self, pool: usize) -> OpenClaim {
        let pp = &self.pools[pool];
        let mut min_alloc = ResourceVector([i64::MAX; DIMS]);
        for t in pp.types.iter() {
            min_alloc = min_alloc.min(&self.cluster.types[t].alloc);
        }
        OpenClaim {
            pool,
            slot: self.cluster.slots.len() + self.claims.len(),
            types: pp.types.clone(),
            zone_mask: pp.zone_mask,
            capacity_mask: pp.capacity_mask,
            requirements: pp.requirements.clone(),
            used: pp.overhead,
            max_alloc: pp.max_alloc,
            min_alloc,
            reserved: ResourceVector::default(),
            pods: vec![],
            ports: vec![],
            pinned: vec![],
            alive: true,
        }
    }

    /// Cheapest (type, zone, capacity type, price) among the set, ties broken by name.
    pub(super) fn cheapest(
        &self,
        types: &TypeSet,
        zone_mask: u64,
        capacity_mask: u64,
    ) -> Option<(usize, usize, usize, f64)> {
        let mut best: Option<(usize, usize, usize, f64)> = None;
        for t in types.iter() {
            for &(z, c, price) in &self.cluster.types[t].offers {
                if zone_mask & (1 << z) == 0 || capacity_mask & (1 << c) == 0 {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((bt, bz, bc, bp)) => {
                        price < bp
                            || (price == bp
                                && (self.cluster.types[t].name.as_str(), z, c)
                                    < (self.cluster.types[bt].name.as_str(), bz, bc))
                    }
                };
                if better {
                    best = Some((t, z, c, price));
                }
            }
        }
        best
    }

    /// Tries to add pod `pi` to claim `c`; returns the narrowed claim state.
    pub(super) fn try_claim(&self, pi: usize, c: &OpenClaim) -> Result<Trial, Rejection> {
        let p = &self.pods[pi];
        let pool = &self.pools[c.pool];
        let used = c.used.add(&p.requests);
        if let Some(d) = used.first_over(&c.max_alloc) {
            return Err(Rejection::Resource {
                dim: d,
                need: p.requests.0[d],
                free: c.max_alloc.0[d] - c.used.0[d],
            });
        }
        if let Some(t) = self.blocking_taint(pi, &pool.taints) {
            return Err(Rejection::Taint(t));
        }
        if pool.fixed_size {
            return Err(Rejection::StaticPool);
        }
        if let Some(w) = &p.hard_problem {
            return Err(w.clone());
        }
        if p.alternative_ids.is_empty() {
            return Err(Rejection::Conflict);
        }
        if let Some(port) = self.blocking_port(pi, &c.ports) {
            return Err(Rejection::Port(port));
        }
        self.quick_topology_check(pi, c)?;
        let mut last = Rejection::Conflict;
        for &ai in &p.alternative_ids {
            match self.try_claim_alternative(pi, c, ai, used) {
                Ok(t) => return Ok(t),
                Err(w) => last = w,
            }
        }
        Err(last)
    }

    pub(super) fn try_claim_alternative(
        &self,
        pi: usize,
        c: &OpenClaim,
        ai: usize,
        used: ResourceVector,
    ) -> Result<Trial, Rejection> {
        let a = &self.alternatives[ai];
        let pool = &self.pools[c.pool];
        if !a.host_fresh_ok {
            return Err(Rejection::Requirement(self.cluster.hostname_key));
        }
        let zone_mask = c.zone_mask & a.zone_mask;
        if zone_mask == 0 {
            return Err(Rejection::Requirement(self.cluster.zone_key));
        }
        let capacity_mask = c.capacity_mask & a.capacity_mask;
        if capacity_mask == 0 {
            return Err(Rejection::Requirement(self.cluster.capacity_type_key));
        }
        let mut requirements = c.requirements.clone();
        let mut bad = None;
        for (k, v) in &a.other {
            let cur = reqset_get(&requirements, *k)
                .cloned()
                .unwrap_or_else(VSet::absent);
            let x = cur.intersect(v, &self.vals);
            if x.is_empty() {
                bad = self.first_key(bad.into_iter().chain([*k]));
                continue;
            }
            reqset_add(&mut requirements, *k, x, &self.vals);
        }
        if let Some(k) = bad {
            return Err(Rejection::Requirement(k));
        }
        let mut types = c.types.clone();
        if a.has_type_keys {
            types.and(&a.types);
            if types.is_empty() {
                let k = self
                    .first_key(
                        a.rs.iter()
                            .map(|(k, _)| *k)
                            .filter(|k| self.is_type_key(*k)),
                    )
                    .unwrap_or(self.cluster.zone_key);
                return Err(Rejection::Requirement(k));
            }
        }
        let mut tr = Trial {
            types,
            zone_mask,
            capacity_mask,
            requirements,
            used,
            reserved: c.reserved,
            doms: vec![],
        };
        if zone_mask != c.zone_mask || capacity_mask != c.capacity_mask {
            tr.types
                .retain(|t| self.offer_ok(t, zone_mask, capacity_mask));
            if tr.types.is_empty() {
                return Err(Rejection::NoOffering);
            }
        }
        // Topology: choose domains, then pin the claim to them.
        let doms =
            self.choose_domains(pi, &mut |s: &Self, key| s.claim_domain_options(c, &tr, key))?;
        for &(k, d) in &doms {
            if let Some(d) = d {
                self.pin(&mut tr, k, d);
            }
        }
        if tr.zone_mask != zone_mask || tr.capacity_mask != capacity_mask {
            let (zm, cm) = (tr.zone_mask, tr.capacity_mask);
            tr.types.retain(|t| self.offer_ok(t, zm, cm));
        }
        tr.doms = doms;
        // Resources: drop types the new total no longer fits.
        if !used.le(&c.min_alloc) {
            tr.types.retain(|t| used.le(&self.cluster.types[t].alloc));
        }
        if tr.types.is_empty() {
            return Err(self.no_type_rejection(&used, c));
        }
        if pool.limits.is_some() || pool.limit_nodes.is_some() {
            self.apply_limits(c, &mut tr)?;
        }
        // After the limits, which may narrow the types.
        self.check_min_values(c.pool, &tr)?;
        Ok(tr)
    }

    /// The pool's minValues hold over the types (and offerings) the trial keeps.
    fn check_min_values(&self, pool: usize, tr: &Trial) -> Result<(), Rejection> {
        for &(k, min) in &self.pools[pool].min_values {
            let mut vals = BTreeSet::new();
            for t in tr.types.iter() {
                if k == self.cluster.zone_key || k == self.cluster.capacity_type_key {
                    for &(z, c, _) in &self.cluster.types[t].offers {
                        if tr.zone_mask & (1 << z) != 0 && tr.capacity_mask & (1 << c) != 0 {
                            vals.insert(if k == self.cluster.zone_key {
                                z as u32
                            } else {
                                c as u32
                            });
                        }
                    }
                } else if let Some(v) = label(&self.cluster.types[t].labels, k) {
                    vals.insert(v);
                }
            }
            if (vals.len() as u32) < min {
                return Err(Rejection::MinValues {
                    key: k,
                    min,
                    left: vals.len() as u32,
                });
            }
        }
        Ok(())
    }

    pub(super) fn no_type_rejection(&self, used: &ResourceVector, c: &OpenClaim) -> Rejection {
        match used.first_over(&self.pools[c.pool].max_alloc) {
            Some(d) => Rejection::Exceeds {
                dim: d,
                need: used.0[d],
                largest: self.pools[c.pool].max_alloc.0[d],
            },
            None => Rejection::NoFit(*used),
        }
    }

    /// Keeps the pool under its limits: narrows the claim to the types that fit the pool's
    /// headroom (every one of them, since the cloud falls back from the cheapest to the others
    /// when it has no capacity), and counts it at the cheapest of them, the type it gets.
    pub(super) fn apply_limits(&self, c: &OpenClaim, tr: &mut Trial) -> Result<(), Rejection> {
        let pool = &self.pools[c.pool];
        let is_new = c.pods.is_empty();
        if let Some(n) = pool.limit_nodes
            && is_new
            && pool.usage_nodes + pool.claims + 1 > n
        {
            return Err(Rejection::Limits(LIMIT_NODES));
        }
        let Some(limit) = pool.limits else {
            return Ok(());
        };
        let others = pool.usage.add(&pool.reserved).sub(&c.reserved);
        let headroom = limit.sub(&others);
        let (t, _, _, _) = self
            .cheapest(&tr.types, tr.zone_mask, tr.capacity_mask)
            .ok_or(Rejection::NoOffering)?;
        let over = self.cluster.types[t].cap.first_over(&headroom);
        tr.types.retain(|t| self.cluster.types[t].cap.le(&headroom));
        if tr.types.is_empty() {
            return Err(Rejection::Limits(over.unwrap_or(0)));
        }
        let (t, _, _, _) = self
            .cheapest(&tr.types, tr.zone_mask, tr.capacity_mask)
            .ok_or(Rejection::NoOffering)?;
        tr.reserved = self.cluster.types[t].cap;
        Ok(())
    }

    pub(super) fn commit_claim(&mut self, pi: usize, ci: usize, tr: Trial) {
        let old_count = self.claims[ci].pods.len();
        if self.claims[ci].alive && old_count > 0 {
            self.open_claims.remove(&(old_count, ci));
        }
        let pool = self.claims[ci].pool;
        let old_reserved = self.claims[ci].reserved;
        for &(k, d) in &tr.doms {
            if d.is_some() && k != self.cluster.hostname_key && !self.claims[ci].pinned.contains(&k)
            {
                self.claims[ci].pinned.push(k);
            }
        }
        {
            let c = &mut self.claims[ci];
            c.types = tr.types;
            c.zone_mask = tr.zone_mask;
            c.capacity_mask = tr.capacity_mask;
            c.requirements = tr.requirements;
            c.used = tr.used;
            c.reserved = tr.reserved;
            c.pods.push(pi);
        }
        let mut max_alloc = ResourceVector::default();
        let mut min_alloc = ResourceVector([i64::MAX; DIMS]);
        for t in self.claims[ci].types.iter() {
            max_alloc = max_alloc.max(&self.cluster.types[t].alloc);
            min_alloc = min_alloc.min(&self.cluster.types[t].alloc);
        }
        let ports = self.pods[pi].ports.clone();
        {
            let c = &mut self.claims[ci];
            c.max_alloc = max_alloc;
            c.min_alloc = min_alloc;
            c.ports.extend(ports);
        }
        let pp = &mut self.pools[pool];
        pp.reserved = pp.reserved.add(&tr.reserved).sub(&old_reserved);
        if old_count == 0 {
            pp.claims += 1;
        }
        self.open_claims.insert((old_count + 1, ci));
        self.record_placement(pi, &tr.doms);
        let slot = self.claims[ci].slot;
        self.placements.push((pi, slot));
    }

    pub(super) fn try_new(&self, pi: usize, pool: usize) -> Result<(OpenClaim, Trial), Rejection> {
        let pp = &self.pools[pool];
        if let Some(t) = self.blocking_taint(pi, &pp.taints) {
            return Err(Rejection::Taint(t));
        }
        let need = pp.overhead.add(&self.pods[pi].requests);
        if let Some(d) = need.first_over(&pp.max_alloc) {
            return Err(Rejection::Exceeds {
                dim: d,
                need: need.0[d],
                largest: pp.max_alloc.0[d],
            });
        }
        let c = self.empty_claim(pool);
        let tr = self.try_claim(pi, &c)?;
        Ok((c, tr))
    }

    /// One placement attempt; Ok when placed.
    pub(super) fn place(&mut self, pi: usize) -> bool {
        // Cordoned slots never take a pod: only the others are tried.
        for i in 0..self.placeable.len() {
            let s = self.placeable[i];
            if let Ok(doms) = self.try_existing(pi, s) {
                self.commit_existing(pi, s, doms);
                return true;
            }
        }
        if !self.cluster.options.allow_new_nodes {
            return false;
        }
        let mut found = None;
        let order: Box<dyn Iterator<Item = &(usize, usize)>> = match self.claim_order {
            ClaimOrder::FewestPodsFirst => Box::new(self.open_claims.iter()),
            ClaimOrder::MostPodsFirst => Box::new(self.open_claims.iter().rev()),
        };
        for &(_, ci) in order {
            if let Ok(tr) = self.try_claim(pi, &self.claims[ci]) {
                found = Some((ci, tr));
                break;
            }
        }
        if let Some((ci, tr)) = found {
            self.commit_claim(pi, ci, tr);
            return true;
        }
        for pool in 0..self.pools.len() {
            if let Ok((c, tr)) = self.try_new(pi, pool) {
                self.claims.push(c);
                let ci = self.claims.len() - 1;
                self.commit_claim(pi, ci, tr);
                return true;
            }
        }
        false
    }

    pub(super) fn relax(&mut self, pi: usize) -> bool {
        if !self.cluster.options.relax_preferences
            || self.pods[pi].relaxed >= self.pods[pi].soft.len()
        {
            return false;
        }
        let dropped = self.pods[pi].soft[self.pods[pi].relaxed];
        self.pods[pi].relaxed += 1;
        if matches!(dropped, Preference::NodeAffinity(_)) {
            self.refresh_alternatives(pi);
        }
        true
    }
}
