//! Improvement passes after the first fit (`SolveOptions::improve`): repack pods nothing ties to
//! their node into fewer, fuller NodeClaims, and empty the emptiest ones into room others already
//! pay for. A move never raises a receiver's price, so the total only falls.

use super::*;

impl Solver<'_> {
    pub(crate) fn claim_price(&self, ci: usize) -> f64 {
        let c = &self.claims[ci];
        self.cheapest(&c.types, c.zone_mask, c.capacity_mask)
            .map(|x| x.3)
            .unwrap_or(0.0)
    }
    pub(crate) fn claim_alive(&self, ci: usize) -> bool {
        self.claims[ci].alive && !self.claims[ci].pods.is_empty()
    }
    /// A pod that nothing topological or port-related ties to its node can be moved freely.
    pub(crate) fn pod_is_free(&self, pi: usize) -> bool {
        let p = &self.pods[pi];
        p.counted_in.is_empty()
            && p.spread.is_empty()
            && p.affinity.is_empty()
            && p.anti.is_empty()
            && p.ports.is_empty()
    }
    pub(crate) fn pool_limited(&self, ci: usize) -> bool {
        let p = &self.pools[self.claims[ci].pool];
        p.limits.is_some() || p.limit_nodes.is_some()
    }
    /// Moves a free pod from one claim onto another if the other's current cheapest offering
    /// still fits (so its price does not rise). Returns true when moved.
    pub(crate) fn move_free_pod(&mut self, pi: usize, from: usize, to: usize) -> bool {
        let before = self.claim_price(to);
        let Ok(tr) = self.try_claim(pi, &self.claims[to]) else {
            return false;
        };
        let after = self
            .cheapest(&tr.types, tr.zone_mask, tr.capacity_mask)
            .map(|x| x.3)
            .unwrap_or(f64::INFINITY);
        if after > before + 1e-12 {
            return false;
        }
        // Take the pod off `from`.
        let requests = self.pods[pi].requests;
        let c = &mut self.claims[from];
        let n = c.pods.len();
        self.open_claims.remove(&(n, from));
        c.pods.retain(|&x| x != pi);
        c.used = c.used.sub(&requests);
        self.placements.retain(|(p, _)| *p != pi);
        if self.claims[from].pods.is_empty() {
            self.claims[from].alive = false;
            let pool = self.claims[from].pool;
            let r = self.claims[from].reserved;
            self.pools[pool].reserved = self.pools[pool].reserved.sub(&r);
            self.pools[pool].claims -= 1;
        } else {
            self.recompute_claim(from);
            self.open_claims.insert((n - 1, from));
        }
        self.commit_claim(pi, to, tr);
        true
    }
    /// The cost pass: visit NodeClaims from the emptiest (by their fullest resource on the
    /// chosen type) and move their free pods into room other NodeClaims already pay for. A
    /// move never raises the receiver's price, so the total only falls: emptied claims
    /// disappear, thinned ones may drop to a cheaper type.
    pub(crate) fn improve(&mut self) {
        let n = self.claims.len();
        let chosen_alloc = |s: &Self, ci: usize| -> Option<ResourceVector> {
            let c = &s.claims[ci];
            s.cheapest(&c.types, c.zone_mask, c.capacity_mask)
                .map(|(t, ..)| s.cluster.types[t].alloc)
        };
        let fill = |s: &Self, ci: usize| -> f64 {
            let Some(a) = chosen_alloc(s, ci) else {
                return 1.0;
            };
            let u = s.claims[ci].used;
            (0..DIMS)
                .filter(|&d| a.0[d] > 0)
                .map(|d| u.0[d] as f64 / a.0[d] as f64)
                .fold(0.0, f64::max)
        };
        let mut order: Vec<(u64, usize)> = (0..n)
            .filter(|&ci| self.claim_alive(ci) && !self.pool_limited(ci))
            .filter(|&ci| self.claims[ci].pods.iter().all(|&pi| self.pod_is_free(pi)))
            .map(|ci| ((fill(self, ci) * 1e9) as u64, ci))
            .collect();
        order.sort();
        // Room each claim already pays for; refreshed for the two claims a move touches.
        let mut room: Vec<Option<ResourceVector>> = (0..n)
            .map(|ci| {
                if self.claim_alive(ci) && !self.pool_limited(ci) {
                    chosen_alloc(self, ci).map(|a| a.sub(&self.claims[ci].used))
                } else {
                    None
                }
            })
            .collect();
        for &(_, from) in &order {
            if !self.claim_alive(from) {
                continue;
            }
            let mut pods = self.claims[from].pods.clone();
            pods.sort_by(|&a, &b| {
                self.pods[b]
                    .requests
                    .0
                    .cmp(&self.pods[a].requests.0)
                    .then(a.cmp(&b))
            });
            for pi in pods {
                let requests = self.pods[pi].requests;
                for to in 0..n {
                    if to == from || !room[to].is_some_and(|r| requests.le(&r)) {
                        continue;
                    }
                    if self.move_free_pod(pi, from, to) {
                        for ci in [from, to] {
                            room[ci] = if self.claim_alive(ci) {
                                chosen_alloc(self, ci).map(|a| a.sub(&self.claims[ci].used))
                            } else {
                                None
                            };
                        }
                        break;
                    }
                }
            }
        }
    }

    pub(super) fn total_price(&self) -> f64 {
        (0..self.claims.len())
            .filter(|&ci| self.claim_alive(ci))
            .map(|ci| self.claim_price(ci))
            .sum()
    }

    /// The cost pass for pods nothing ties to a node (no topology, no host ports, one
    /// requirement alternative): take every NodeClaim holding only such pods, and rebuild
    /// them bin by bin, each time opening the (NodePool, instance type) whose bin, filled
    /// greedily, buys the most pod value per dollar. A pod's value is the cheapest price
    /// share it could ever cost (price × its dominant share of a type it fits). Kept only
    /// when the total price falls.
    pub(crate) fn repack_free(&mut self) {
        let eligible: Vec<usize> = (0..self.claims.len())
            .filter(|&ci| self.claim_alive(ci) && !self.pool_limited(ci))
            .filter(|&ci| {
                self.claims[ci]
                    .pods
                    .iter()
                    .all(|&pi| self.pod_is_free(pi) && self.pods[pi].alternative_ids.len() == 1)
            })
            .collect();
        if eligible.is_empty() {
            return;
        }
        let before = self.total_price();
        let mut trial = self.clone();
        trial.repack_into_bins(&eligible);
        if trial.total_price() < before - 1e-9 && trial.placements.len() == self.placements.len() {
            *self = trial;
        }
    }

    pub(super) fn repack_into_bins(&mut self, eligible: &[usize]) {
        let mut loose: Vec<usize> = vec![];
        for &ci in eligible {
            let n = self.claims[ci].pods.len();
            self.open_claims.remove(&(n, ci));
            loose.append(&mut self.claims[ci].pods);
            self.claims[ci].alive = false;
            let pool = self.claims[ci].pool;
            self.pools[pool].claims -= 1;
        }
        let moving: BTreeSet<usize> = loose.iter().copied().collect();
        self.placements.retain(|(p, _)| !moving.contains(p));
        // Pool compatibility (taints and requirements) per pod, via a trial on a fresh claim.
        let np = self.pools.len();
        type Key = (Vec<i64>, usize, Vec<bool>);
        let mut classes: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        let mut compat_cache: FxHashMap<(usize, Vec<bool>), Vec<bool>> = FxHashMap::default();
        for &pi in &loose {
            let tol: Vec<bool> = (0..np)
                .map(|p| self.blocking_taint(pi, &self.pools[p].taints).is_none())
                .collect();
            let alt = self.pods[pi].alternative_ids[0];
            let ok = compat_cache
                .entry((alt, tol.clone()))
                .or_insert_with(|| {
                    (0..np)
                        .map(|p| tol[p] && self.try_new(pi, p).is_ok())
                        .collect()
                })
                .clone();
            classes
                .entry((self.pods[pi].requests.0.to_vec(), alt, ok))
                .or_default()
                .push(pi);
        }
        // Value of one pod of a class: the cheapest dominant-share price over what it fits.
        let mut list: Vec<(f64, Key, Vec<usize>)> = vec![];
        for (key, pods) in classes {
            let requests = self.pods[pods[0]].requests;
            let mut v = f64::INFINITY;
            for (p, pool) in self.pools.iter().enumerate() {
                if !key.2[p] {
                    continue;
                }
                for t in pool.types.iter() {
                    if !self.alternatives[key.1].types.0[t / 64] & (1 << (t % 64)) != 0 {
                        continue;
                    }
                    let cap = self.cluster.types[t].alloc.sub(&pool.overhead);
                    if !requests.le(&cap) {
                        continue;
                    }
                    let Some(price) = self.type_price(
                        t,
                        pool.zone_mask & self.alternatives[key.1].zone_mask,
                        pool.capacity_mask & self.alternatives[key.1].capacity_mask,
                    ) else {
                        continue;
                    };
                    let share = (0..DIMS)
                        .filter(|&d| cap.0[d] > 0)
                        .map(|d| requests.0[d] as f64 / cap.0[d] as f64)
                        .fold(0.0, f64::max);
                    v = v.min(price * share);
                }
            }
            if v.is_finite() {
                list.push((v, key, pods));
            } else {
                // Fits nowhere on its own any more: give it back to first-fit below.
                list.push((0.0, key, pods));
            }
        }
        list.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut left: Vec<usize> = list.iter().map(|x| x.2.len()).collect();
        let requirements: Vec<ResourceVector> =
            list.iter().map(|x| self.pods[x.2[0]].requests).collect();
        let dimensions: Vec<Vec<usize>> = requirements
            .iter()
            .map(|r| (0..DIMS).filter(|&d| r.0[d] > 0).collect())
            .collect();
        let mut active: Vec<usize> = (0..list.len()).collect();
        let mut leftovers = vec![];
        loop {
            active.retain(|&c| left[c] > 0);
            let Some(&seed_class) = active.first() else {
                break;
            };
            let seed = list[seed_class].2[list[seed_class].2.len() - left[seed_class]];
            // Best (efficiency, -price, pool, type) over candidate bins.
            let mut best: Option<(f64, f64, usize, usize)> = None;
            // NodePool weights still rule: only the heaviest pools that can take the seed.
            let weight = |p: usize| self.pools[p].weight;
            let top = (0..np).find(|&p| list[seed_class].1.2[p]).map(weight);
            for p in 0..np {
                if !list[seed_class].1.2[p] || Some(weight(p)) != top {
                    continue;
                }
                let Ok((_, tr0)) = self.try_new(seed, p) else {
                    continue;
                };
                let overhead = self.pools[p].overhead;
                for t in tr0.types.iter() {
                    let Some(price) = self.type_price(t, tr0.zone_mask, tr0.capacity_mask) else {
                        continue;
                    };
                    let cap = self.cluster.types[t].alloc.sub(&overhead);
                    let mut used = self.pods[seed].requests;
                    let mut value = list[seed_class].0;
                    for &c in &active {
                        let avail = left[c] - usize::from(c == seed_class);
                        let item = &list[c];
                        if avail == 0
                            || !item.1.2[p]
                            || self.alternatives[item.1.1].types.0[t / 64] & (1 << (t % 64)) == 0
                        {
                            continue;
                        }
                        let requests = &requirements[c];
                        let mut k = avail as i64;
                        for &d in &dimensions[c] {
                            k = k.min((cap.0[d] - used.0[d]).max(0) / requests.0[d]);
                            if k == 0 {
                                break;
                            }
                        }
                        if k > 0 {
                            for &d in &dimensions[c] {
                                used.0[d] += requests.0[d] * k;
                            }
                            value += item.0 * k as f64;
                        }
                    }
                    let eff = value / price.max(1e-12);
                    let better = match best {
                        None => true,
                        Some((be, bp, ..)) => {
                            eff > be + 1e-12 || ((eff - be).abs() <= 1e-12 && price < bp)
                        }
                    };
                    if better {
                        best = Some((eff, price, p, t));
                    }
                }
            }
            let Some((_, _, p, t)) = best else {
                leftovers.push(seed);
                left[seed_class] -= 1;
                continue;
            };
            // Build the bin for real: a fresh claim of pool p narrowed to the types that
            // offer at least type t's room, filled in the same order.
            let (mut c, tr) = match self.try_new(seed, p) {
                Ok(x) => x,
                Err(_) => {
                    leftovers.push(seed);
                    left[seed_class] -= 1;
                    continue;
                }
            };
            let _ = &mut c;
            self.claims.push(c);
            let ci = self.claims.len() - 1;
            self.commit_claim(seed, ci, tr);
            left[seed_class] -= 1;
            let cap = self.cluster.types[t].alloc;
            for &c2 in &active {
                while left[c2] > 0 {
                    let pi = list[c2].2[list[c2].2.len() - left[c2]];
                    if !self.claims[ci].used.add(&self.pods[pi].requests).le(&cap) {
                        break;
                    }
                    match self.try_claim(pi, &self.claims[ci]) {
                        Ok(tr) => {
                            self.commit_claim(pi, ci, tr);
                            left[c2] -= 1;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        for pi in leftovers {
            self.place(pi);
        }
    }

    pub(super) fn type_price(&self, t: usize, zone_mask: u64, capacity_mask: u64) -> Option<f64> {
        self.cluster.types[t]
            .offers
            .iter()
            .filter(|(z, c, _)| zone_mask & (1 << z) != 0 && capacity_mask & (1 << c) != 0)
            .map(|x| x.2)
            .min_by(|a, b| a.total_cmp(b))
    }

    /// Rebuilds a claim's instance-type set from its pool and remaining pods (free pods only
    /// ever leave, so every remaining constraint still holds on the wider set).
    pub(super) fn recompute_claim(&mut self, ci: usize) {
        let pool = self.claims[ci].pool;
        let pods = self.claims[ci].pods.clone();
        let mut c = self.empty_claim(pool);
        c.slot = self.claims[ci].slot;
        // Keep pins and requirement narrowing made by the pods that stay.
        c.zone_mask = self.claims[ci].zone_mask;
        c.capacity_mask = self.claims[ci].capacity_mask;
        c.requirements = self.claims[ci].requirements.clone();
        let mut used = self.pools[pool].overhead;
        for &pi in &pods {
            used = used.add(&self.pods[pi].requests);
        }
        let mut types = self.pools[pool].types.clone();
        for &pi in &pods {
            // The alternative each pod used is not stored: intersect with the union of its
            // alternatives' type masks, a superset that the old set is inside of.
            let mut any = TypeSet::new(self.cluster.types.len(), false);
            for &ai in &self.pods[pi].alternative_ids {
                for w in 0..any.0.len() {
                    any.0[w] |= self.alternatives[ai].types.0[w];
                }
            }
            types.and(&any);
        }
        // Never widen past what the claim allowed before for type-keyed reasons: keep only
        // types the old set had or that differ from it only by resource fit.
        let old = self.claims[ci].types.clone();
        let (zm, cm) = (c.zone_mask, c.capacity_mask);
        types.retain(|t| self.offer_ok(t, zm, cm) && used.le(&self.cluster.types[t].alloc));
        let keep_old_keys = self.claims[ci]
            .pods
            .iter()
            .any(|&pi| !self.pod_is_free(pi) || self.pods[pi].alternative_ids.len() != 1);
        if keep_old_keys {
            types = old.clone();
            types.retain(|t| used.le(&self.cluster.types[t].alloc));
        }
        let mut max_alloc = ResourceVector::default();
        let mut min_alloc = ResourceVector([i64::MAX; DIMS]);
        for t in types.iter() {
            max_alloc = max_alloc.max(&self.cluster.types[t].alloc);
            min_alloc = min_alloc.min(&self.cluster.types[t].alloc);
        }
        let cl = &mut self.claims[ci];
        cl.types = types;
        cl.used = used;
        cl.max_alloc = max_alloc;
        cl.min_alloc = min_alloc;
    }
}
