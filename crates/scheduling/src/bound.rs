//! A fractional lower bound on what any packing of a set of pods can cost.
//!
//! A node of type t costs p_t and offers a_t,r of each resource r. For weights w ≥ 0 with
//! Σ w_r = 1, a node's pods satisfy Σ_pods Σ_r w_r·req_r/a_t,r ≤ 1, so the node costs at least
//! Σ_pods Σ_r w_r·req_r·p_t/a_t,r, and the whole plan costs at least
//! LB(w) = Σ_pods min_t Σ_r w_r·req_r·p_t/a_t,r (t ranging over types the pod fits).
//! Every w gives a valid bound; we search the simplex for the best. With w on one resource this is
//! "Σ requests priced at the cheapest $ per unit of that resource"; mixing resources tightens it.

use std::collections::BTreeMap;

use crate::model::{InstanceType, Resources};

/// The bound and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct LowerBound {
    /// $ per hour.
    pub value: f64,
    /// Weight per resource at the best point.
    pub weights: Vec<(String, f64)>,
    /// The single-resource bounds (cheapest $/unit × total requests), for reference.
    pub per_resource: Vec<(String, f64)>,
    /// Pods no instance type fits (left out of the bound).
    pub unfit: usize,
}

/// Lower bound for packing `requests` onto `types` (each priced at its cheapest available
/// offering accepted by `offering_ok`), with `overhead` (DaemonSets) taken off every node.
pub fn fractional_lower_bound(
    requests: &[Resources],
    types: &[InstanceType],
    overhead: &Resources,
    offering_ok: &dyn Fn(&crate::model::Offering) -> bool,
) -> LowerBound {
    let mut names: Vec<String> = vec!["cpu".into(), "memory".into()];
    for r in requests {
        for (k, v) in r.iter() {
            if v > 0 && !names.iter().any(|n| n == k) && k != "pods" {
                names.push(k.to_string());
            }
        }
    }
    let d = names.len();
    // (price, allocatable per resource) per type with an offering.
    let nodes: Vec<(f64, Vec<f64>)> = types
        .iter()
        .filter_map(|t| {
            let price = t.offerings.iter().filter(|o| o.available && offering_ok(o)).map(|o| o.price).fold(f64::INFINITY, f64::min);
            if !price.is_finite() {
                return None;
            }
            let a = t.allocatable();
            let alloc: Vec<f64> = names.iter().map(|n| (a.get(n) - overhead.get(n)) as f64).collect();
            Some((price, alloc))
        })
        .collect();
    // Identical requests collapse to one row with a multiplicity.
    let mut rows: BTreeMap<Vec<i64>, f64> = BTreeMap::new();
    for r in requests {
        *rows.entry(names.iter().map(|n| r.get(n)).collect()).or_insert(0.0) += 1.0;
    }
    let mut unfit = 0usize;
    // Per row, the per-resource cost coefficients of each type it fits.
    let mut table: Vec<(f64, Vec<Vec<f64>>)> = vec![];
    for (req, mult) in &rows {
        let mut opts = vec![];
        for (price, alloc) in &nodes {
            if (0..d).all(|i| (req[i] as f64) <= alloc[i]) {
                opts.push((0..d).map(|i| if alloc[i] > 0.0 { req[i] as f64 * price / alloc[i] } else { 0.0 }).collect());
            }
        }
        if opts.is_empty() {
            unfit += *mult as usize;
        } else {
            table.push((*mult, opts));
        }
    }
    let eval = |w: &[f64]| -> f64 {
        table
            .iter()
            .map(|(m, opts)| m * opts.iter().map(|c| c.iter().zip(w).map(|(a, b)| a * b).sum::<f64>()).fold(f64::INFINITY, f64::min))
            .sum()
    };
    let per_resource: Vec<(String, f64)> = (0..d)
        .map(|i| {
            let mut w = vec![0.0; d];
            w[i] = 1.0;
            (names[i].clone(), eval(&w))
        })
        .collect();
    // Coordinate search on the simplex: move weight between pairs of resources while it helps.
    let mut best_w: Vec<f64> = vec![0.0; d];
    let start = per_resource.iter().enumerate().max_by(|a, b| a.1.1.total_cmp(&b.1.1)).map(|(i, _)| i).unwrap_or(0);
    best_w[start] = 1.0;
    let mut best = eval(&best_w);
    let mut step: f64 = 0.25;
    while step > 1e-3 {
        let mut improved = false;
        for i in 0..d {
            for j in 0..d {
                if i == j || best_w[j] <= 0.0 {
                    continue;
                }
                let mv = step.min(best_w[j]);
                let mut w = best_w.clone();
                w[i] += mv;
                w[j] -= mv;
                let v = eval(&w);
                if v > best + 1e-12 {
                    best = v;
                    best_w = w;
                    improved = true;
                }
            }
        }
        if !improved {
            step /= 2.0;
        }
    }
    LowerBound {
        value: best,
        weights: names.iter().cloned().zip(best_w).collect(),
        per_resource,
        unfit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Offering;

    fn ty(name: &str, cpu: i64, mem_gi: i64, price: f64) -> InstanceType {
        InstanceType {
            name: name.into(),
            capacity: Resources::cpu_mem(cpu * 1000, mem_gi << 30).with("pods", 110),
            overhead: Resources::default(),
            labels: Default::default(),
            offerings: vec![Offering { zone: "a".into(), capacity_type: "on-demand".into(), price, available: true }],
        }
    }

    #[test]
    fn mixes_resources() {
        // cpu-optimised and memory-optimised types; a cpu-heavy and a memory-heavy pod.
        let types = vec![ty("c", 4, 8, 1.0), ty("r", 4, 32, 2.0)];
        let pods = vec![Resources::cpu_mem(4000, 8 << 30), Resources::cpu_mem(1000, 32 << 30)];
        let lb = fractional_lower_bound(&pods, &types, &Resources::default(), &|_| true);
        // Any packing costs at least 1 (first pod needs a whole c) + 2 (second needs a whole r).
        assert!(lb.value <= 3.0 + 1e-9, "{lb:?}");
        assert!(lb.value >= lb.per_resource.iter().map(|x| x.1).fold(0.0, f64::max) - 1e-9);
        assert!(lb.value >= 2.5 - 1e-9, "{lb:?}");
    }
}
