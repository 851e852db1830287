//! Clusters within the model, generated at stated sizes, through the solver: never a panic, a
//! plan the independent checker accepts (no pod on a node it does not fit, no hard constraint
//! broken, no pool over its limits), every pending pod placed or explained once, no claim
//! without a pod, and the memory of one solve under a stated bound.
//!
//! Sizes: up to 3 pools (limits on cpu and node count), 15 nodes holding up to 4 bound pods
//! each, 150 pending pods with zone spread, hostname anti-affinity or a zone selector.

mod common;
#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::collections::BTreeSet;

use ballast_scheduling::*;
use common::*;
use counting_alloc::{Counting, measure};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes one solve may hold at its peak: a fixed part (the compiled catalog: 4 types × 3 zones
/// × 2 capacity types, and the pools) plus a part per pending pod (its model, placement or
/// explanation, its share of a claim) and per node. Measured (debug build): 10 KB for an empty
/// cluster, about 1.8 KB a pending pod and 0.9 KB a node; 245 KB for 150 pending pods and 15
/// nodes.
fn solve_bound(pending: usize, nodes: usize) -> usize {
    16 * 1024 + 4 * 1024 * pending + 2 * 1024 * nodes
}

#[derive(Debug, Clone)]
struct Case {
    /// (cpu limit in vCPUs, node-count limit), each optional.
    pools: Vec<(Option<i64>, Option<i64>)>,
    /// (zone, vCPUs, bound pods as millicores)
    nodes: Vec<(usize, i64, Vec<i64>)>,
    /// (millicores, MiB, constraint: 0 none, 1 zone spread, 2 hostname anti-affinity, 3 zone
    /// selector, app)
    pending: Vec<(i64, i64, u8, u8)>,
    improve: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (prop::option::of(1i64..=64), prop::option::of(0i64..=8)),
            1..=3,
        ),
        prop::collection::vec(
            (
                0usize..3,
                prop::sample::select(vec![2i64, 4, 8, 16]),
                prop::collection::vec(1i64..=4000, 0..=4),
            ),
            0..=15,
        ),
        prop::collection::vec(
            (
                1i64..=8000,
                1i64..=16_384,
                prop_oneof![6 => Just(0u8), 1 => 1u8..=3],
                0u8..3,
            ),
            0..=150,
        ),
        any::<bool>(),
    )
        .prop_map(|(pools, nodes, pending, improve)| Case {
            pools,
            nodes,
            pending,
            improve,
        })
}

fn pending_pod(i: usize, &(millis, mib, constraint, app): &(i64, i64, u8, u8)) -> Pod {
    let app = format!("app{app}");
    let mut p = Pod::new(
        "default",
        &format!("w{i}"),
        Resources::cpu_mem(millis, mib * MI),
    );
    p.labels.insert("app".into(), app.clone());
    match constraint {
        1 => p.topology_spread_constraints.push(spread(
            labels::ZONE,
            1,
            &app,
            WhenUnsatisfiable::DoNotSchedule,
        )),
        2 => p
            .affinity
            .pod_anti_affinity
            .required
            .push(term(labels::HOSTNAME, &app)),
        3 => {
            p.node_selector
                .insert(labels::ZONE.into(), ZONES[i % 3].into());
        }
        _ => {}
    }
    p
}

fn build(c: &Case) -> Snapshot {
    let node_pools = c
        .pools
        .iter()
        .enumerate()
        .map(|(i, &(cpu, count))| {
            let mut p = pool(&format!("p{i}"));
            p.limits = match (cpu, count) {
                (None, None) => None,
                (cpu, count) => {
                    let r = Resources::cpu_mem(cpu.unwrap_or(1 << 20) * 1000, 1 << 50);
                    Some(match count {
                        Some(n) => r.with("nodes", n),
                        None => r,
                    })
                }
            };
            p
        })
        .collect();
    let mut pods = vec![];
    let nodes = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (zone, cpus, bound))| {
            let n = node(&format!("n{i}"), ZONES[*zone], *cpus, 2 * cpus);
            let mut used = 0;
            for (k, &millis) in bound.iter().enumerate() {
                if used + millis <= cpus * 1000 {
                    used += millis;
                    let mut p = pod(&format!("b{i}-{k}"), millis, 64);
                    p.node_name = Some(n.name.clone());
                    pods.push(p);
                }
            }
            n
        })
        .collect();
    pods.extend(c.pending.iter().enumerate().map(|(i, g)| pending_pod(i, g)));
    Snapshot {
        nodes,
        pods,
        node_pools,
        instance_types: catalog(),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_solve_is_valid_accounted_and_bounded(c in case()) {
        let s = build(&c);
        let options = SolveOptions { improve: c.improve, ..SolveOptions::default() };
        let (sol, usage) = measure(|| solve(&s, &options));
        let sol = sol.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bound = solve_bound(c.pending.len(), c.nodes.len());
        prop_assert!(usage.peak_bytes <= bound, "peak {} B over {bound} B", usage.peak_bytes);
        let bad = check::check(&s, &sol);
        prop_assert!(bad.is_empty(), "checker: {bad:#?}");
        let mut seen = BTreeSet::new();
        let placed = sol.placements.iter().map(|p| &p.pod);
        for p in placed.chain(sol.unschedulable.iter().map(|u| &u.pod)) {
            prop_assert!(seen.insert(p.name.clone()), "{p} accounted twice");
        }
        for i in 0..c.pending.len() {
            prop_assert!(seen.contains(&format!("w{i}")), "w{i} neither placed nor explained");
        }
        prop_assert!(sol.new_claims.iter().all(|n| !n.pods.is_empty()), "a claim for no pod");
        prop_assert!(sol.new_claims.len() <= c.pending.len());
    }
}

/// The bound above is not vacuous: the largest input comes within a small factor of it.
#[test]
fn the_memory_bound_is_tight_enough_to_matter() {
    let c = Case {
        pools: vec![(None, None); 3],
        nodes: (0..15).map(|i| (i % 3, 4, vec![500; 4])).collect(),
        pending: (0..150)
            .map(|i| (250 + 50 * (i % 7) as i64, 256, (i % 4) as u8, (i % 3) as u8))
            .collect(),
        improve: true,
    };
    let s = build(&c);
    let (sol, usage) = measure(|| solve(&s, &SolveOptions::default()));
    assert!(sol.is_ok());
    let bound = solve_bound(150, 15);
    println!(
        "150 pending pods, 15 nodes: peak {} B of {bound} B",
        usage.peak_bytes
    );
    assert!(usage.peak_bytes <= bound && usage.peak_bytes * 4 >= bound);
}
