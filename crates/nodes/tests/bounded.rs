//! Clusters within the schema, generated at stated sizes, through provisioning and disruption:
//! never a panic, every pending pod accounted for once, no NodeClaim beyond its pool's limits,
//! no disruption beyond its pool's budget, and the memory of each decision under a stated bound.
//!
//! Sizes: up to 3 pools (limits on cpu, memory and node count, zero included; budgets as counts
//! or percents), 12 nodes of up to 6 bound pods, 80 pending pods.

mod common;
#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::collections::{BTreeMap, BTreeSet};

use ballast_api::nodes as api;
use ballast_nodes::{
    ClusterSnapshot, DisruptionOptions, PendingPod, ProvisionOptions, disrupt, provision,
};
use ballast_scheduling::{Pod, Resources};
use common::*;
use counting_alloc::{Counting, measure};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes a provisioning decision may hold at its peak: a fixed part (the compiled catalog and
/// pools) plus a part per pending pod (its explanation or placement and its share of a claim)
/// and per node. Measured (debug build): 21 KB for an empty cluster, about 3 KB a pending pod
/// and 2.2 KB a node of 6 pods; 195 KB for 80 pending pods and 12 nodes.
fn provision_bound(pending: usize, nodes: usize) -> usize {
    32 * 1024 + 6 * 1024 * pending + 4 * 1024 * nodes
}

/// Bytes a disruption decision (no pending pod) may hold at its peak: a fixed part plus a part
/// per node (its report and candidates) and per bound pod (where it would go). Measured: 11 KB
/// for an empty cluster, 61 KB for one node (the what-if solve compiles the catalog), 66 KB for
/// 12 nodes of 6 pods.
fn disrupt_bound(nodes: usize, pods: usize) -> usize {
    80 * 1024 + 6 * 1024 * nodes + 1024 * pods
}

#[derive(Debug, Clone)]
struct PoolGen {
    /// (cpu cores, memory GiB, nodes); each optional, zero included.
    limits: Option<(Option<u32>, Option<u32>, Option<u32>)>,
    /// A count, or a percent when the flag is set.
    budget: (bool, u32),
}

/// (instance type, pool, spot, pods as (millicores, MiB))
type NodeCase = (usize, usize, bool, Vec<(i64, i64)>);

#[derive(Debug, Clone)]
struct Case {
    pools: Vec<PoolGen>,
    nodes: Vec<NodeCase>,
    /// (millicores, MiB)
    pending: Vec<(i64, i64)>,
}

fn case() -> impl Strategy<Value = Case> {
    let pool = (
        prop::option::weighted(
            0.7,
            (
                prop::option::of(0u32..=64),
                prop::option::of(0u32..=128),
                prop::option::of(0u32..=6),
            ),
        ),
        (any::<bool>(), 0u32..=100),
    )
        .prop_map(|(limits, budget)| PoolGen { limits, budget });
    let node = (
        0usize..4,
        0usize..3,
        any::<bool>(),
        prop::collection::vec((1i64..4000, 1i64..8192), 0..=6),
    );
    (
        prop::collection::vec(pool, 1..=3),
        prop::collection::vec(node, 0..=12),
        prop::collection::vec((1i64..=8000, 1i64..=16_384), 0..=80),
    )
        .prop_map(|(pools, nodes, pending)| Case {
            pools,
            nodes,
            pending,
        })
}

fn limits_list(l: (Option<u32>, Option<u32>, Option<u32>)) -> api::ResourceList {
    let mut list = BTreeMap::new();
    if let Some(cpu) = l.0 {
        list.insert("cpu".to_string(), Quantity(cpu.to_string()));
    }
    if let Some(gi) = l.1 {
        list.insert("memory".to_string(), Quantity(format!("{gi}Gi")));
    }
    if let Some(n) = l.2 {
        list.insert("nodes".to_string(), Quantity(n.to_string()));
    }
    list
}

fn budget_text(b: (bool, u32)) -> String {
    if b.0 {
        format!("{}%", b.1)
    } else {
        (b.1 % 6).to_string()
    }
}

fn build(c: &Case) -> ClusterSnapshot {
    let pools = c
        .pools
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut p = pool(&format!("p{i}"));
            p.spec.limits = g.limits.map(limits_list);
            if let Some(d) = &mut p.spec.disruption {
                d.budgets[0].nodes = budget_text(g.budget);
            }
            p
        })
        .collect();
    let types = catalog();
    let nodes = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (ti, pi, spot, pods))| {
            let t = &types[*ti];
            let mut n = node(
                &format!("n{i}"),
                t,
                &format!("p{}", pi % c.pools.len()),
                if *spot { "spot" } else { "on-demand" },
                vec![],
            );
            n.capacity = Some(t.capacity.clone());
            let (mut cpu_used, mut memory_used) = (0, 0);
            for (k, &(cpu, mib)) in pods.iter().enumerate() {
                if cpu_used + cpu <= n.allocatable.cpu_millis
                    && memory_used + (mib << 20) <= n.allocatable.memory_bytes
                {
                    (cpu_used, memory_used) = (cpu_used + cpu, memory_used + (mib << 20));
                    n.pods.push(pod("a", &format!("b{i}-{k}"), cpu, mib));
                }
            }
            n
        })
        .collect();
    let mut s = cluster(pools, nodes);
    s.pending_pods = c
        .pending
        .iter()
        .enumerate()
        .map(|(i, &(cpu, mib))| PendingPod {
            pod: Pod::new("a", &format!("w{i}"), Resources::cpu_mem(cpu, mib << 20)),
            first_seen: None,
        })
        .collect();
    s
}

/// Millicores and bytes of capacity.
#[derive(Debug, Clone, Copy, Default)]
struct Amount {
    cpu_millis: i64,
    memory_bytes: i64,
}

impl Amount {
    fn of(r: &Resources) -> Amount {
        Amount {
            cpu_millis: r.cpu_millis,
            memory_bytes: r.memory_bytes,
        }
    }
    fn add(self, other: Amount) -> Amount {
        Amount {
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
        }
    }
}

/// The capacity of the pool's nodes (what its limits count).
fn pool_usage(s: &ClusterSnapshot, pool: &str) -> Amount {
    s.nodes
        .iter()
        .filter(|n| n.labels.get(api::labels::NODEPOOL).map(String::as_str) == Some(pool))
        .fold(Amount::default(), |sum, n| {
            sum.add(Amount::of(n.capacity.as_ref().unwrap_or(&n.allocatable)))
        })
}

fn capacity_of(s: &ClusterSnapshot, ty: &str) -> Amount {
    s.instance_types
        .iter()
        .find(|t| t.name == ty)
        .map_or(Amount::default(), |t| Amount::of(&t.capacity))
}

fn check_limits(
    c: &Case,
    s: &ClusterSnapshot,
    d: &ballast_nodes::ProvisioningDecision,
) -> Result<(), TestCaseError> {
    for (i, g) in c.pools.iter().enumerate() {
        let Some((cpu, gi, count)) = g.limits else {
            continue;
        };
        let name = format!("p{i}");
        let existing = pool_usage(s, &name);
        let claims: Vec<_> = d
            .node_claims
            .iter()
            .filter(|p| p.node_pool == name)
            .collect();
        let nodes_before = s
            .nodes
            .iter()
            .filter(|n| n.labels.get(api::labels::NODEPOOL) == Some(&name))
            .count();
        if let Some(n) = count {
            prop_assert!(
                claims.is_empty() || nodes_before + claims.len() <= n as usize,
                "{name}: {} claims beside {nodes_before} nodes over a limit of {n} nodes",
                claims.len()
            );
        }
        let mut launched = Amount::default();
        for plan in &claims {
            launched = launched.add(capacity_of(s, &plan.instance_type));
            // Any type the claim may launch as fits by itself beside the pool's nodes.
            for option in &plan.instance_types {
                let alone = existing.add(capacity_of(s, &option.name));
                if let Some(cpu) = cpu {
                    prop_assert!(
                        alone.cpu_millis <= i64::from(cpu) * 1000,
                        "{name}: {} over {cpu} cpu",
                        option.name
                    );
                }
                if let Some(gi) = gi {
                    prop_assert!(
                        alone.memory_bytes <= i64::from(gi) << 30,
                        "{name}: {} over {gi}Gi",
                        option.name
                    );
                }
            }
        }
        let total = existing.add(launched);
        if !claims.is_empty() {
            if let Some(cpu) = cpu {
                prop_assert!(
                    total.cpu_millis <= i64::from(cpu) * 1000,
                    "{name}: {} m over {cpu} cpu",
                    total.cpu_millis
                );
            }
            if let Some(gi) = gi {
                prop_assert!(
                    total.memory_bytes <= i64::from(gi) << 30,
                    "{name}: {} B over {gi}Gi",
                    total.memory_bytes
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every pending pod placed or explained once, no claim without a pod, none beyond limits,
    /// in bounded memory.
    #[test]
    fn provisioning_stays_within_limits_and_memory(c in case()) {
        let s = build(&c);
        let (d, usage) = measure(|| provision(&s, now(), &ProvisionOptions::default()));
        let d = d.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bound = provision_bound(c.pending.len(), c.nodes.len());
        prop_assert!(usage.peak_bytes <= bound, "peak {} B over {bound} B", usage.peak_bytes);
        let mut seen = BTreeSet::new();
        for p in d.placements.iter().map(|p| &p.pod).chain(d.unschedulable.iter().map(|u| &u.pod)) {
            prop_assert!(seen.insert(p.name.clone()), "{p} accounted twice");
        }
        for p in &s.pending_pods {
            prop_assert!(seen.contains(&p.pod.name), "{} neither placed nor explained", p.pod.name);
        }
        prop_assert!(d.node_claims.iter().all(|c| !c.pods.is_empty()), "a claim for no pod");
        check_limits(&c, &s, &d)?;
    }

    /// At most the pool's budget of nodes disrupted at once, in bounded memory.
    #[test]
    fn disruption_stays_within_budgets_and_memory(mut c in case()) {
        c.pending.clear();
        let s = build(&c);
        let (d, usage) = measure(|| disrupt(&s, now(), &DisruptionOptions::default()));
        let d = d.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let pods: usize = s.nodes.iter().map(|n| n.pods.len()).sum();
        let bound = disrupt_bound(s.nodes.len(), pods);
        prop_assert!(usage.peak_bytes <= bound, "peak {} B over {bound} B", usage.peak_bytes);
        let Some(action) = d.action else { return Ok(()) };
        for (i, g) in c.pools.iter().enumerate() {
            let name = format!("p{i}");
            let of_pool: BTreeSet<&str> = s.nodes.iter()
                .filter(|n| n.labels.get(api::labels::NODEPOOL) == Some(&name))
                .map(|n| n.name.as_str())
                .collect();
            let allowed = match g.budget {
                (true, p) => (of_pool.len() as u64 * u64::from(p)).div_ceil(100),
                (false, k) => u64::from(k % 6),
            };
            let taken = action.nodes.iter().filter(|n| of_pool.contains(n.as_str())).count() as u64;
            prop_assert!(taken <= allowed, "{name}: {taken} nodes disrupted, budget {allowed} ({:?})", action.method);
        }
    }
}

/// The bounds above are not vacuous: the largest inputs come within a small factor of them.
#[test]
fn the_memory_bounds_are_tight_enough_to_matter() {
    let c = Case {
        pools: vec![
            PoolGen {
                limits: None,
                budget: (true, 100),
            };
            3
        ],
        nodes: (0..12)
            .map(|i| (i % 4, i % 3, i % 2 == 0, vec![(300, 512); 6]))
            .collect(),
        pending: (0..80)
            .map(|i| (250 + 50 * (i % 7), 256 + 64 * (i % 5)))
            .collect(),
    };
    let s = build(&c);
    let (d, provisioning) = measure(|| provision(&s, now(), &ProvisionOptions::default()));
    assert!(d.is_ok());
    let mut s = s;
    s.pending_pods.clear();
    let (d, disruption) = measure(|| disrupt(&s, now(), &DisruptionOptions::default()));
    assert!(d.is_ok());
    let pods: usize = s.nodes.iter().map(|n| n.pods.len()).sum();
    let (pb, db) = (provision_bound(80, 12), disrupt_bound(12, pods));
    println!(
        "80 pending pods, 12 nodes, {pods} bound pods: provisioning peak {} B of {pb} B; without the pending pods, disruption peak {} B of {db} B",
        provisioning.peak_bytes, disruption.peak_bytes
    );
    assert!(provisioning.peak_bytes <= pb && provisioning.peak_bytes * 4 >= pb);
    assert!(disruption.peak_bytes <= db && disruption.peak_bytes * 4 >= db);
}
