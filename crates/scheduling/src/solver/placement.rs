//! Placement.

use super::*;

#[derive(Clone)]
pub(super) struct Claim {
    pub(super) pool: usize,
    pub(super) slot: usize,
    pub(super) types: Bits,
    pub(super) zmask: u64,
    pub(super) cmask: u64,
    pub(super) reqs: ReqSet,
    pub(super) used: RV,
    pub(super) max_alloc: RV,
    pub(super) min_alloc: RV,
    pub(super) reserved: RV,
    pub(super) pods: Vec<usize>,
    pub(super) ports: Vec<HostPort>,
    /// Topology keys a placed pod fixed the domain of (hostname aside).
    pub(super) pinned: Vec<u32>,
    pub(super) alive: bool,
}

/// A tentative change to a NodeClaim.
pub(super) struct Trial {
    pub(super) types: Bits,
    pub(super) zmask: u64,
    pub(super) cmask: u64,
    pub(super) reqs: ReqSet,
    pub(super) used: RV,
    pub(super) reserved: RV,
    pub(super) doms: Vec<(u32, Option<u32>)>,
}

impl<'a> Solver<'a> {
    pub(super) fn taint_block(&self, pi: usize, taints: &[Taint]) -> Option<Taint> {
        let p = &self.pods[pi];
        let tol: &[Toleration] = &self.pod_src[p.src].tolerations;
        taints
            .iter()
            .find(|t| {
                (t.effect != TaintEffect::PreferNoSchedule || p.pns_active())
                    && !crate::model::tolerated(tol, t)
            })
            .cloned()
    }

    pub(super) fn port_block(&self, pi: usize, used: &[HostPort]) -> Option<u16> {
        self.pods[pi]
            .ports
            .iter()
            .find(|hp| used.iter().any(|u| u.conflicts(hp)))
            .map(|hp| hp.port)
    }

    pub(super) fn try_slot(&self, pi: usize, s: usize) -> Result<Vec<(u32, Option<u32>)>, Why> {
        let slot = &self.slots[s];
        let p = &self.pods[pi];
        if slot.cordoned {
            return Err(Why::Cordoned);
        }
        let used = &self.slot_used[s];
        let need = used.add(&p.req);
        if let Some(d) = need.first_over(&slot.alloc) {
            return Err(Why::Resource {
                dim: d,
                need: p.req.0[d],
                free: slot.alloc.0[d] - used.0[d],
            });
        }
        if let Some(t) = self.taint_block(pi, &slot.taints) {
            return Err(Why::Taint(t));
        }
        if let Some(w) = &p.hard_problem {
            return Err(w.clone());
        }
        if p.eff_alts.is_empty() {
            return Err(Why::Conflict);
        }
        let holds = |ai: usize| {
            self.alts[ai]
                .rs
                .iter()
                .all(|(k, v)| v.allows(label(&slot.labels, *k), &self.vals))
        };
        if !p.eff_alts.iter().any(|&ai| holds(ai)) {
            // Reported: the first alternative's unmet key with the smallest name.
            let bad = self.alts[p.eff_alts[0]]
                .rs
                .iter()
                .filter(|(k, v)| !v.allows(label(&slot.labels, *k), &self.vals))
                .map(|(k, _)| *k);
            return Err(Why::Req(self.first_key(bad).unwrap_or(self.k_zone)));
        }
        if let Some(port) = self.port_block(pi, &self.slot_ports[s]) {
            return Err(Why::Port(port));
        }
        self.topo_choose(pi, &mut |s2: &Self, key| {
            Ok(DomOpts::Fixed(s2.slot_dom(s, key)))
        })
    }

    pub(super) fn commit_slot(&mut self, pi: usize, s: usize, doms: Vec<(u32, Option<u32>)>) {
        let req = self.pods[pi].req;
        self.slot_used.to_mut()[s] = self.slot_used[s].add(&req);
        if !self.pods[pi].ports.is_empty() {
            let ports = self.pods[pi].ports.clone();
            self.slot_ports.to_mut()[s].extend(ports);
        }
        self.record(pi, &doms);
        self.placements.push((pi, s));
    }

    // ---------------------------------------------------------------------------------------
    // NodeClaims.

    pub(super) fn fresh_claim(&self, pool: usize) -> Claim {
        let pp = &self.pools[pool];
        let mut min_alloc = RV([i64::MAX; DIMS]);
        for t in pp.types.iter() {
            min_alloc = min_alloc.min(&self.types[t].alloc);
        }
        Claim {
            pool,
            slot: self.slots.len() + self.claims.len(),
            types: pp.types.clone(),
            zmask: pp.zmask,
            cmask: pp.cmask,
            reqs: pp.reqs.clone(),
            used: pp.overhead,
            max_alloc: pp.max_alloc,
            min_alloc,
            reserved: RV::default(),
            pods: vec![],
            ports: vec![],
            pinned: vec![],
            alive: true,
        }
    }

    /// Cheapest (type, zone, capacity type, price) among the set, ties broken by name.
    pub(super) fn cheapest(
        &self,
        types: &Bits,
        zmask: u64,
        cmask: u64,
    ) -> Option<(usize, usize, usize, f64)> {
        let mut best: Option<(usize, usize, usize, f64)> = None;
        for t in types.iter() {
            for &(z, c, price) in &self.types[t].offers {
                if zmask & (1 << z) == 0 || cmask & (1 << c) == 0 {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((bt, bz, bc, bp)) => {
                        price < bp
                            || (price == bp
                                && (self.types[t].name.as_str(), z, c)
                                    < (self.types[bt].name.as_str(), bz, bc))
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
    pub(super) fn try_claim(&self, pi: usize, c: &Claim) -> Result<Trial, Why> {
        let p = &self.pods[pi];
        let pool = &self.pools[c.pool];
        let used = c.used.add(&p.req);
        if let Some(d) = used.first_over(&c.max_alloc) {
            return Err(Why::Resource {
                dim: d,
                need: p.req.0[d],
                free: c.max_alloc.0[d] - c.used.0[d],
            });
        }
        if let Some(t) = self.taint_block(pi, &pool.taints) {
            return Err(Why::Taint(t));
        }
        if let Some(w) = &p.hard_problem {
            return Err(w.clone());
        }
        if p.eff_alts.is_empty() {
            return Err(Why::Conflict);
        }
        if let Some(port) = self.port_block(pi, &c.ports) {
            return Err(Why::Port(port));
        }
        self.quick_topo(pi, c)?;
        let mut last = Why::Conflict;
        for &ai in &p.eff_alts {
            match self.try_claim_alt(pi, c, ai, used) {
                Ok(t) => return Ok(t),
                Err(w) => last = w,
            }
        }
        Err(last)
    }

    pub(super) fn try_claim_alt(
        &self,
        pi: usize,
        c: &Claim,
        ai: usize,
        used: RV,
    ) -> Result<Trial, Why> {
        let a = &self.alts[ai];
        let pool = &self.pools[c.pool];
        if !a.host_fresh_ok {
            return Err(Why::Req(self.k_host));
        }
        let zmask = c.zmask & a.zmask;
        if zmask == 0 {
            return Err(Why::Req(self.k_zone));
        }
        let cmask = c.cmask & a.cmask;
        if cmask == 0 {
            return Err(Why::Req(self.k_ct));
        }
        let mut reqs = c.reqs.clone();
        let mut bad = None;
        for (k, v) in &a.other {
            let cur = reqset_get(&reqs, *k).cloned().unwrap_or_else(VSet::absent);
            let x = cur.intersect(v, &self.vals);
            if x.is_empty() {
                bad = self.first_key(bad.into_iter().chain([*k]));
                continue;
            }
            reqset_add(&mut reqs, *k, x, &self.vals);
        }
        if let Some(k) = bad {
            return Err(Why::Req(k));
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
                    .unwrap_or(self.k_zone);
                return Err(Why::Req(k));
            }
        }
        let mut tr = Trial {
            types,
            zmask,
            cmask,
            reqs,
            used,
            reserved: c.reserved,
            doms: vec![],
        };
        if zmask != c.zmask || cmask != c.cmask {
            tr.types.retain(|t| self.offer_ok(t, zmask, cmask));
            if tr.types.is_empty() {
                return Err(Why::NoOffering);
            }
        }
        // Topology: choose domains, then pin the claim to them.
        let doms = self.topo_choose(pi, &mut |s: &Self, key| s.claim_dom_opts(c, &tr, key))?;
        for &(k, d) in &doms {
            if let Some(d) = d {
                self.pin(&mut tr, k, d);
            }
        }
        if tr.zmask != zmask || tr.cmask != cmask {
            let (zm, cm) = (tr.zmask, tr.cmask);
            tr.types.retain(|t| self.offer_ok(t, zm, cm));
        }
        tr.doms = doms;
        // Resources: drop types the new total no longer fits.
        if !used.le(&c.min_alloc) {
            tr.types.retain(|t| used.le(&self.types[t].alloc));
        }
        if tr.types.is_empty() {
            return Err(self.no_type_why(&used, c));
        }
        for &(k, min) in &pool.min_values {
            let mut vals = BTreeSet::new();
            for t in tr.types.iter() {
                if k == self.k_zone || k == self.k_ct {
                    for &(z, c, _) in &self.types[t].offers {
                        if tr.zmask & (1 << z) != 0 && tr.cmask & (1 << c) != 0 {
                            vals.insert(if k == self.k_zone { z as u32 } else { c as u32 });
                        }
                    }
                } else if let Some(v) = label(&self.types[t].labels, k) {
                    vals.insert(v);
                }
            }
            if (vals.len() as u32) < min {
                return Err(Why::MinValues {
                    key: k,
                    min,
                    left: vals.len() as u32,
                });
            }
        }
        if pool.limits.is_some() || pool.limit_nodes.is_some() {
            self.apply_limits(c, &mut tr)?;
        }
        Ok(tr)
    }

    pub(super) fn no_type_why(&self, used: &RV, c: &Claim) -> Why {
        match used.first_over(&self.pools[c.pool].max_alloc) {
            Some(d) => Why::Exceeds {
                dim: d,
                need: used.0[d],
                largest: self.pools[c.pool].max_alloc.0[d],
            },
            None => Why::NoFit(*used),
        }
    }

    /// Keeps the pool under its limits, counting each NodeClaim at the capacity of the type it
    /// would get now (the cheapest left); narrows the types when that would overshoot.
    pub(super) fn apply_limits(&self, c: &Claim, tr: &mut Trial) -> Result<(), Why> {
        let pool = &self.pools[c.pool];
        let is_new = c.pods.is_empty();
        if let Some(n) = pool.limit_nodes
            && is_new
            && pool.usage_nodes + pool.claims + 1 > n
        {
            return Err(Why::Limits(LIMIT_NODES));
        }
        let Some(limit) = pool.limits else {
            return Ok(());
        };
        let others = pool.usage.add(&pool.reserved).sub(&c.reserved);
        let headroom = limit.sub(&others);
        let (t, _, _, _) = self
            .cheapest(&tr.types, tr.zmask, tr.cmask)
            .ok_or(Why::NoOffering)?;
        if !self.types[t].cap.le(&headroom) {
            let over = self.types[t].cap.first_over(&headroom).unwrap_or(0);
            tr.types.retain(|t| self.types[t].cap.le(&headroom));
            if tr.types.is_empty() {
                return Err(Why::Limits(over));
            }
        }
        let (t, _, _, _) = self
            .cheapest(&tr.types, tr.zmask, tr.cmask)
            .ok_or(Why::NoOffering)?;
        tr.reserved = self.types[t].cap;
        Ok(())
    }

    pub(super) fn commit_claim(&mut self, pi: usize, ci: usize, tr: Trial) {
        let old_count = self.claims[ci].pods.len();
        if self.claims[ci].alive && old_count > 0 {
            self.open.remove(&(old_count, ci));
        }
        let pool = self.claims[ci].pool;
        let old_reserved = self.claims[ci].reserved;
        for &(k, d) in &tr.doms {
            if d.is_some() && k != self.k_host && !self.claims[ci].pinned.contains(&k) {
                self.claims[ci].pinned.push(k);
            }
        }
        {
            let c = &mut self.claims[ci];
            c.types = tr.types;
            c.zmask = tr.zmask;
            c.cmask = tr.cmask;
            c.reqs = tr.reqs;
            c.used = tr.used;
            c.reserved = tr.reserved;
            c.pods.push(pi);
        }
        let mut max_alloc = RV::default();
        let mut min_alloc = RV([i64::MAX; DIMS]);
        for t in self.claims[ci].types.iter() {
            max_alloc = max_alloc.max(&self.types[t].alloc);
            min_alloc = min_alloc.min(&self.types[t].alloc);
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
        self.open.insert((old_count + 1, ci));
        self.record(pi, &tr.doms);
        let slot = self.claims[ci].slot;
        self.placements.push((pi, slot));
    }

    pub(super) fn try_new(&self, pi: usize, pool: usize) -> Result<(Claim, Trial), Why> {
        let pp = &self.pools[pool];
        if let Some(t) = self.taint_block(pi, &pp.taints) {
            return Err(Why::Taint(t));
        }
        let need = pp.overhead.add(&self.pods[pi].req);
        if let Some(d) = need.first_over(&pp.max_alloc) {
            return Err(Why::Exceeds {
                dim: d,
                need: need.0[d],
                largest: pp.max_alloc.0[d],
            });
        }
        let c = self.fresh_claim(pool);
        let tr = self.try_claim(pi, &c)?;
        Ok((c, tr))
    }

    /// One placement attempt; Ok when placed.
    pub(super) fn place(&mut self, pi: usize) -> bool {
        // Cordoned slots never take a pod: only the others are tried.
        for i in 0..self.placeable.len() {
            let s = self.placeable[i];
            if let Ok(doms) = self.try_slot(pi, s) {
                self.commit_slot(pi, s, doms);
                return true;
            }
        }
        if !self.opts.allow_new_nodes {
            return false;
        }
        let mut found = None;
        let order: Box<dyn Iterator<Item = &(usize, usize)>> = match self.claim_order {
            ClaimOrder::FewestPodsFirst => Box::new(self.open.iter()),
            ClaimOrder::MostPodsFirst => Box::new(self.open.iter().rev()),
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
        if !self.opts.relax_preferences || self.pods[pi].relaxed >= self.pods[pi].soft.len() {
            return false;
        }
        let dropped = self.pods[pi].soft[self.pods[pi].relaxed];
        self.pods[pi].relaxed += 1;
        if matches!(dropped, Soft::NodePref(_)) {
            self.refresh_alts(pi);
        }
        true
    }
}
