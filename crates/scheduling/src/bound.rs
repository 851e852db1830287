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
    /// Weight per (class of types, resource) at the best point; zero weights left out.
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
    fractional_lower_bound_with(requests, types, overhead, offering_ok, &|_, _| true)
}

/// As [`fractional_lower_bound`], with `allowed(i, t)` saying whether request `i` may run on type
/// `t` at all (taints, node selectors: the constraints the solver obeys too). Types with the same
/// set of offered resources (say, GPU types and CPU types) get their own weights, which keeps the
/// bound valid (each node only needs its own type's weights) and makes it tighter.
pub fn fractional_lower_bound_with(
    requests: &[Resources],
    types: &[InstanceType],
    overhead: &Resources,
    offering_ok: &dyn Fn(&crate::model::Offering) -> bool,
    allowed: &dyn Fn(usize, &InstanceType) -> bool,
) -> LowerBound {
    let counted: Vec<(&Resources, usize)> = requests.iter().map(|r| (r, 1)).collect();
    bound(&counted, types, overhead, offering_ok, &|i, t| {
        allowed(i, &types[t])
    })
}

/// As [`fractional_lower_bound`], for `requests` given as (request, how many pods ask for it):
/// the same bound as the list with each request repeated, without building that list.
pub fn fractional_lower_bound_counted(
    requests: &[(Resources, usize)],
    types: &[InstanceType],
    overhead: &Resources,
    offering_ok: &dyn Fn(&crate::model::Offering) -> bool,
) -> LowerBound {
    let counted: Vec<(&Resources, usize)> = requests
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r, *n))
        .collect();
    bound(&counted, types, overhead, offering_ok, &|_, _| true)
}

/// As [`fractional_lower_bound_counted`], with `allowed(row, type index)` saying whether the pods
/// of row `row` of `requests` may run on `types[type index]` at all (a pool's taints, a pod's node
/// selector). Rows with no count are skipped; `allowed` is asked with the row's index in
/// `requests` all the same.
pub fn fractional_lower_bound_rows(
    requests: &[(Resources, usize)],
    types: &[InstanceType],
    overhead: &Resources,
    offering_ok: &dyn Fn(&crate::model::Offering) -> bool,
    allowed: &dyn Fn(usize, usize) -> bool,
) -> LowerBound {
    let (rows, index): (Vec<(&Resources, usize)>, Vec<usize>) = requests
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(i, (r, n))| ((r, *n), i))
        .unzip();
    bound(&rows, types, overhead, offering_ok, &|i, t| {
        allowed(index[i], t)
    })
}

/// The bound over (request, count) rows; `allowed` is asked with a row's index and a type's.
fn bound(
    requests: &[(&Resources, usize)],
    types: &[InstanceType],
    overhead: &Resources,
    offering_ok: &dyn Fn(&crate::model::Offering) -> bool,
    allowed: &dyn Fn(usize, usize) -> bool,
) -> LowerBound {
    let mut names: Vec<String> = vec!["cpu".into(), "memory".into()];
    for (r, _) in requests {
        for (k, v) in r.iter() {
            if v > 0 && !names.iter().any(|n| n == k) && k != "pods" {
                names.push(k.to_string());
            }
        }
    }
    let d = names.len();
    // (type index, class, price, allocatable per resource) per type with an offering.
    let mut class_keys: Vec<Vec<bool>> = vec![];
    let nodes: Vec<(usize, usize, f64, Vec<f64>)> = types
        .iter()
        .enumerate()
        .filter_map(|(ti, t)| {
            let price = t
                .offerings
                .iter()
                .filter(|o| o.available && offering_ok(o))
                .map(|o| o.price)
                .fold(f64::INFINITY, f64::min);
            if !price.is_finite() {
                return None;
            }
            let a = t.allocatable();
            let alloc: Vec<f64> = names
                .iter()
                .map(|n| (a.get(n) - overhead.get(n)) as f64)
                .collect();
            let key: Vec<bool> = alloc.iter().map(|x| *x > 0.0).collect();
            let class = match class_keys.iter().position(|k| *k == key) {
                Some(c) => c,
                None => {
                    class_keys.push(key);
                    class_keys.len() - 1
                }
            };
            Some((ti, class, price, alloc))
        })
        .collect();
    let nclass = class_keys.len().max(1);
    // Identical (request, allowed types) rows collapse to one row with a multiplicity.
    let mut rows: BTreeMap<(Vec<i64>, Vec<bool>), f64> = BTreeMap::new();
    for (i, (r, count)) in requests.iter().enumerate() {
        let ok: Vec<bool> = nodes.iter().map(|(ti, ..)| allowed(i, *ti)).collect();
        // Counts are whole numbers: adding one at once or one by one gives the same float.
        *rows
            .entry((names.iter().map(|n| r.get(n)).collect(), ok))
            .or_insert(0.0) += *count as f64;
    }
    let mut unfit = 0usize;
    // Per row, (class, per-resource cost coefficients) of each type it may use and fits.
    // (multiplicity, [(type class, per-resource cost coefficients)])
    type Row = (f64, Vec<(usize, Vec<f64>)>);
    let mut table: Vec<Row> = vec![];
    for ((req, ok), mult) in &rows {
        let mut opts = vec![];
        for (ni, (_, class, price, alloc)) in nodes.iter().enumerate() {
            if ok[ni] && (0..d).all(|i| (req[i] as f64) <= alloc[i]) {
                opts.push((
                    *class,
                    (0..d)
                        .map(|i| {
                            if alloc[i] > 0.0 {
                                req[i] as f64 * price / alloc[i]
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                ));
            }
        }
        if opts.is_empty() {
            unfit += *mult as usize;
        } else {
            table.push((*mult, opts));
        }
    }
    // w[class][resource]
    let eval = |w: &[Vec<f64>]| -> f64 {
        table
            .iter()
            .map(|(m, opts)| {
                m * opts
                    .iter()
                    .map(|(c, coef)| coef.iter().zip(&w[*c]).map(|(a, b)| a * b).sum::<f64>())
                    .fold(f64::INFINITY, f64::min)
            })
            .sum()
    };
    let per_resource: Vec<(String, f64)> = (0..d)
        .map(|i| {
            let mut one = vec![0.0; d];
            one[i] = 1.0;
            (names[i].clone(), eval(&vec![one; nclass]))
        })
        .collect();
    // Coordinate search on each class's simplex: move weight between two resources while it helps.
    let start = per_resource
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut one = vec![0.0; d];
    one[start] = 1.0;
    let mut w: Vec<Vec<f64>> = vec![one; nclass];
    let mut best = eval(&w);
    let mut step: f64 = 0.5;
    while step > 1e-3 {
        let mut improved = false;
        for c in 0..nclass {
            for i in 0..d {
                for j in 0..d {
                    if i == j || w[c][j] <= 0.0 {
                        continue;
                    }
                    let mv = step.min(w[c][j]);
                    let mut cand = w.clone();
                    cand[c][i] += mv;
                    cand[c][j] -= mv;
                    let v = eval(&cand);
                    if v > best + 1e-12 {
                        best = v;
                        w = cand;
                        improved = true;
                    }
                }
            }
        }
        if !improved {
            step /= 2.0;
        }
    }
    let weights = class_keys
        .iter()
        .zip(&w)
        .flat_map(|(key, wc)| {
            let tag: Vec<&str> = names
                .iter()
                .zip(key)
                .filter(|(_, k)| **k)
                .map(|(n, _)| n.as_str())
                .collect();
            let tag = tag.join("+");
            names
                .iter()
                .zip(wc.clone())
                .map(move |(n, x)| (format!("[{tag}] {n}"), x))
        })
        .filter(|(_, x)| *x > 0.0)
        .collect();
    LowerBound {
        value: best,
        weights,
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
            offerings: vec![Offering {
                zone: "a".into(),
                capacity_type: "on-demand".into(),
                price,
                available: true,
            }],
        }
    }

    #[test]
    fn mixes_resources() {
        // cpu-optimised and memory-optimised types; a cpu-heavy and a memory-heavy pod.
        let types = vec![ty("c", 4, 8, 1.0), ty("r", 4, 32, 2.0)];
        let pods = vec![
            Resources::cpu_mem(4000, 8 << 30),
            Resources::cpu_mem(1000, 32 << 30),
        ];
        let lb = fractional_lower_bound(&pods, &types, &Resources::default(), &|_| true);
        // Any packing costs at least 1 (first pod needs a whole c) + 2 (second needs a whole r).
        assert!(lb.value <= 3.0 + 1e-9, "{lb:?}");
        assert!(lb.value >= lb.per_resource.iter().map(|x| x.1).fold(0.0, f64::max) - 1e-9);
        assert!(lb.value >= 2.5 - 1e-9, "{lb:?}");
    }

    #[test]
    fn counted_is_the_repeated_list() {
        let types = vec![
            ty("c", 4, 8, 1.0),
            ty("r", 4, 32, 2.0),
            ty("x", 64, 512, 40.0),
        ];
        let gpu = Resources::cpu_mem(500, 1 << 30).with("example.com/gpu", 1);
        let counted = vec![
            (Resources::cpu_mem(250, 512 << 20), 7),
            (Resources::cpu_mem(1000, 3 << 30), 0),
            (gpu, 2),
            (Resources::cpu_mem(3000, 30 << 30), 3),
            (Resources::cpu_mem(250, 512 << 20), 4),
            (Resources::cpu_mem(100_000, 1 << 30), 1),
        ];
        let repeated: Vec<Resources> = counted
            .iter()
            .flat_map(|(r, n)| std::iter::repeat_n(r.clone(), *n))
            .collect();
        let a = fractional_lower_bound_counted(&counted, &types, &Resources::default(), &|_| true);
        let b = fractional_lower_bound(&repeated, &types, &Resources::default(), &|_| true);
        assert_eq!(a, b);
        assert_eq!(a.unfit, 3);
    }
}
