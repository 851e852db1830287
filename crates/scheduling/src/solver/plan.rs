//! The plan: the final state turned into a [`Solution`] (placements, and each NodeClaim with its
//! cheapest instance type, zone, capacity type and labels).

use super::*;

impl<'a> Solver<'a> {
    pub(super) fn finish(self, failed: &BTreeSet<usize>) -> Solution {
        let mut sol = Solution::default();
        // Claims in creation order; renumber the living ones.
        let mut index = vec![usize::MAX; self.claims.len()];
        for (ci, c) in self.claims.iter().enumerate() {
            if !c.alive || c.pods.is_empty() {
                continue;
            }
            index[ci] = sol.new_claims.len();
            sol.new_claims.push(self.resolve_claim(ci));
        }
        for &(pi, slot) in &self.placements {
            let pod = self.pod_sources[self.pods[pi].source].key();
            let target = if slot < self.cluster.existing_count {
                Target::Node(self.cluster.slots[slot].name.clone())
            } else {
                Target::NewClaim(index[slot - self.cluster.existing_count])
            };
            sol.placements.push(Placement { pod, target });
        }
        for pi in 0..self.pods.len() {
            if self.pods[pi].relaxed > 0 && !failed.contains(&pi) {
                sol.relaxed.push(Relaxed {
                    pod: self.pod_sources[self.pods[pi].source].key(),
                    dropped: self.dropped_names(pi),
                });
            }
        }
        for &pi in failed {
            sol.unschedulable.push(self.explain(pi));
        }
        sol
    }

    pub(super) fn resolve_claim(&self, ci: usize) -> NewClaim {
        let c = &self.claims[ci];
        let pool = &self.pools[c.pool];
        let (t, z, ct, price) = self
            .cheapest(&c.types, c.zone_mask, c.capacity_mask)
            .unwrap_or((0, 0, 0, f64::NAN));
        if self.cluster.types.is_empty()
            || self.cluster.zones.is_empty()
            || self.cluster.capacity_types.is_empty()
            || price.is_nan()
        {
            // Every living claim keeps a type with an offering, so this is never taken; it only
            // keeps bad data from panicking.
            return NewClaim {
                name: claim_name(&pool.name, ci),
                node_pool: pool.name.clone(),
                instance_type: String::new(),
                zone: String::new(),
                capacity_type: String::new(),
                price: 0.0,
                labels: BTreeMap::new(),
                taints: pool.taints.clone(),
                requests: self.resources(&c.used),
                pods: c
                    .pods
                    .iter()
                    .map(|&pi| self.pod_sources[self.pods[pi].source].key())
                    .collect(),
                instance_type_options: vec![],
                pinned: self.pinned_names(ci),
            };
        }
        let name = claim_name(&pool.name, ci);
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &c.requirements {
            if let Some(val) = self.label_value(v) {
                labels.insert(self.keys.name(*k).to_string(), val);
            }
        }
        for &(k, v) in &self.cluster.types[t].labels {
            labels.insert(self.keys.name(k).to_string(), self.vals.name(v).to_string());
        }
        labels.insert(
            wk::ZONE.into(),
            self.vals.name(self.cluster.zones[z]).to_string(),
        );
        labels.insert(
            wk::CAPACITY_TYPE.into(),
            self.vals.name(self.cluster.capacity_types[ct]).to_string(),
        );
        labels.insert(wk::HOSTNAME.into(), name.clone());
        labels.insert(wk::NODEPOOL.into(), pool.name.clone());
        let mut options: Vec<(f64, &str)> = c
            .types
            .iter()
            .filter_map(|t| {
                let one = TypeSet::new(self.cluster.types.len(), false);
                let mut one = one;
                one.set(t);
                self.cheapest(&one, c.zone_mask, c.capacity_mask)
                    .map(|(_, _, _, p)| (p, self.cluster.types[t].name.as_str()))
            })
            .collect();
        options.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        NewClaim {
            name,
            node_pool: pool.name.clone(),
            instance_type: self.cluster.types[t].name.clone(),
            zone: self.vals.name(self.cluster.zones[z]).to_string(),
            capacity_type: self.vals.name(self.cluster.capacity_types[ct]).to_string(),
            price,
            labels,
            taints: pool.taints.clone(),
            requests: self.resources(&c.used),
            pods: c
                .pods
                .iter()
                .map(|&pi| self.pod_sources[self.pods[pi].source].key())
                .collect(),
            instance_type_options: options
                .into_iter()
                .take(self.cluster.options.max_instance_type_options.max(1))
                .map(|(_, n)| n.to_string())
                .collect(),
            pinned: self.pinned_names(ci),
        }
    }

    pub(super) fn pinned_names(&self, ci: usize) -> Vec<String> {
        let mut v: Vec<String> = self.claims[ci]
            .pinned
            .iter()
            .map(|&k| self.keys.name(k).to_string())
            .collect();
        v.sort();
        v
    }

    /// A concrete label value that satisfies the set, or None when the label should be absent.
    pub(super) fn label_value(&self, v: &VSet) -> Option<String> {
        if v.absent_ok {
            return None;
        }
        if !v.complement {
            // The smallest name, whatever the interning order.
            return v
                .vals
                .iter()
                .map(|&x| self.vals.name(x))
                .min()
                .map(str::to_string);
        }
        if v.gt.is_some() || v.lt.is_some() {
            let mut n = match (v.gt, v.lt) {
                (Some(g), _) => g.saturating_add(1),
                (None, Some(l)) => l.saturating_sub(1).min(0),
                (None, None) => 0,
            };
            while v.vals.iter().any(|&x| self.vals.num(x) == Some(n)) && n < i64::MAX {
                n += 1;
            }
            return Some(n.to_string());
        }
        let mut i = 0;
        loop {
            let cand = format!("ballast-{i}");
            if self
                .vals
                .get(&cand)
                .is_none_or(|id| v.vals.binary_search(&id).is_err())
            {
                return Some(cand);
            }
            i += 1;
        }
    }
}

pub(crate) fn claim_name(pool: &str, i: usize) -> String {
    format!("{pool}-{i:05}")
}
