//! Karpenter's scheduling benchmark workload, rebuilt on our model: N pods in five kinds
//! (generic, zonal topology spread, hostname topology spread, zonal pod affinity, hostname pod
//! anti-affinity), 400 synthetic instance types (type i: i+1 vCPU, 2(i+1) GiB, 10(i+1) pods,
//! 0.025 $/vCPU/h + 0.001 $/GiB/h on-demand, spot at 0.7x, three zones), CPU requests from
//! {100, 250, 500, 1000, 1500}m, memory from {100, 256, 512, 1024, 2048, 4096}Mi, seed 42.
//!
//! Run: `cargo bench -p ballast-scheduling --bench karpenter_mix` (BALLAST_BENCH_SIZES=1000,5000
//! to choose sizes). Prints pods/s on one core, the nodes created and their cost against a
//! fractional bound that ignores topology, for both orders of trying this solve's NodeClaims.

use std::time::Instant;

use ballast_scheduling::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

const ZONES: [&str; 3] = ["test-zone-1", "test-zone-2", "test-zone-3"];
const VALUES: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

fn instance_types(n: usize) -> Vec<InstanceType> {
    (0..n)
        .map(|i| {
            let vcpu = (i + 1) as i64;
            let gib = 2 * vcpu;
            let price = 0.025 * vcpu as f64 + 0.001 * gib as f64;
            let mut offerings = vec![];
            for z in ZONES {
                offerings.push(Offering {
                    zone: z.into(),
                    capacity_type: "on-demand".into(),
                    price,
                    available: true,
                });
                offerings.push(Offering {
                    zone: z.into(),
                    capacity_type: "spot".into(),
                    price: price * 0.7,
                    available: true,
                });
            }
            InstanceType {
                name: format!("fake-it-{i}"),
                capacity: Resources::cpu_mem(vcpu * 1000, gib << 30).with("pods", 10 * vcpu),
                overhead: Resources::default(),
                labels: [("kubernetes.io/arch".to_string(), "amd64".to_string())]
                    .into_iter()
                    .collect(),
                offerings,
            }
        })
        .collect()
}

struct Draw(ChaCha8Rng);

impl Draw {
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[(self.0.next_u32() as usize) % v.len()]
    }
    fn value(&mut self) -> String {
        self.pick(&VALUES).to_string()
    }
    fn requests(&mut self) -> Resources {
        let cpu = self.pick(&[100, 250, 500, 1000, 1500]);
        let mem = self.pick(&[100i64, 256, 512, 1024, 2048, 4096]);
        Resources::cpu_mem(cpu, mem << 20)
    }
}

fn pod(i: usize, labels: &[(&str, String)], requests: Resources) -> Pod {
    let mut p = Pod::new("default", &format!("pod-{i:06}"), requests);
    p.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    p
}

fn selector(key: &str, value: String) -> Option<LabelSelector> {
    Some(LabelSelector::labels(&[(key, value.as_str())]))
}

/// The five kinds, N/5 each, the remainder generic.
fn diverse_pods(n: usize, d: &mut Draw) -> Vec<Pod> {
    let per = n / 5;
    let mut pods = Vec::with_capacity(n);
    let mut i = 0;
    let mut next = || {
        i += 1;
        i
    };
    for _ in 0..per {
        let l = d.value();
        pods.push(pod(next(), &[("my-label", l)], d.requests()));
    }
    for key in [labels::ZONE, labels::HOSTNAME] {
        for _ in 0..per {
            let l = d.value();
            let s = d.value();
            let mut p = pod(next(), &[("my-label", l)], d.requests());
            p.topology_spread_constraints = vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: key.into(),
                when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
                label_selector: selector("my-label", s),
                min_domains: None,
                match_label_keys: vec![],
                node_affinity_policy: NodeInclusionPolicy::Honor,
            }];
            pods.push(p);
        }
    }
    for _ in 0..per {
        let l = d.value();
        let s = d.value();
        let mut p = pod(next(), &[("my-affinity", l)], d.requests());
        p.affinity.pod_affinity.required = vec![PodAffinityTerm {
            label_selector: selector("my-affinity", s),
            namespaces: vec![],
            namespace_selector: None,
            topology_key: labels::ZONE.into(),
        }];
        pods.push(p);
    }
    for _ in 0..per {
        let mut p = pod(next(), &[("app", "nginx".to_string())], d.requests());
        p.affinity.pod_anti_affinity.required = vec![PodAffinityTerm {
            label_selector: selector("app", "nginx".into()),
            namespaces: vec![],
            namespace_selector: None,
            topology_key: labels::HOSTNAME.into(),
        }];
        pods.push(p);
    }
    while pods.len() < n {
        let l = d.value();
        pods.push(pod(next(), &[("my-label", l)], d.requests()));
    }
    pods
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BALLAST_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 5_000, 20_000]);
    let types = instance_types(400);
    println!("karpenter scheduling benchmark mix: 400 instance types, seed 42, one thread");
    println!(
        "{:>7} {:<8} {:>9} {:>8} {:>7} {:>7} {:>6} {:>8} {:>9} {:>7} {:>8}",
        "pods",
        "claims",
        "solve ms",
        "pods/s",
        "placed",
        "pending",
        "nodes",
        "$/h",
        "bound $/h",
        "ratio",
        "max pods"
    );
    for &n in &sizes {
        let mut d = Draw(ChaCha8Rng::seed_from_u64(42));
        let snap = Snapshot {
            pods: diverse_pods(n, &mut d),
            node_pools: vec![NodePool {
                name: "default".into(),
                ..Default::default()
            }],
            instance_types: types.clone(),
            ..Default::default()
        };
        // The bound ignores topology: one anti-affinity pod per node alone forces n/5 nodes.
        let reqs: Vec<Resources> = snap.pods.iter().map(|p| p.effective_requests()).collect();
        let lb = ballast_scheduling::bound::fractional_lower_bound(
            &reqs,
            &types,
            &Resources::default(),
            &|_| true,
        );
        for (label, order) in [
            ("fewest", ClaimOrder::FewestPodsFirst),
            ("most", ClaimOrder::MostPodsFirst),
        ] {
            let opts = SolveOptions::default();
            // Best of a few runs (the first warms caches and the allocator).
            let runs = if n <= 5_000 { 3 } else { 2 };
            let mut best = f64::INFINITY;
            let mut sol = None;
            for _ in 0..runs {
                let t = Instant::now();
                let s = solve_with_claim_order(&snap, &opts, order).expect("valid benchmark input");
                best = best.min(t.elapsed().as_secs_f64());
                sol = Some(s);
            }
            let sol = sol.expect("at least one run");
            let max_pods = sol
                .new_claims
                .iter()
                .map(|c| c.pods.len())
                .max()
                .unwrap_or(0);
            println!(
                "{:>7} {:<8} {:>9.1} {:>8.0} {:>7} {:>7} {:>6} {:>8.2} {:>9.2} {:>7.3} {:>8}",
                n,
                label,
                best * 1e3,
                n as f64 / best,
                sol.placements.len(),
                sol.unschedulable.len(),
                sol.new_claims.len(),
                sol.new_cost(),
                lb.value,
                sol.new_cost() / lb.value,
                max_pods
            );
            if n <= 1_000 {
                let bad = check::check(&snap, &sol);
                println!(
                    "        independent check at {n} pods: {} violations",
                    bad.len()
                );
            }
            if let Some(u) = sol.unschedulable.first() {
                println!("        e.g. {u}");
            }
        }
    }
}
