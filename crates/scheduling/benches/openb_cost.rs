//! Cost of packing the Alibaba "openb" GPU-cluster pods onto an AWS-like catalog, against the
//! fractional lower bound (see `ballast_scheduling::bound`).
//!
//! Data: `openb_pod_list_default.csv` from `$BALLAST_SHARED/data/alibaba-openb/` (default: the
//! `shared/` folder beside the repository). It is read at run time and never copied into the repo;
//! without it the benchmark says so and exits. Catalog: `simulations/catalogs/aws-like.yaml`.
//!
//! Every pod of the trace is packed at once (a static snapshot of the whole trace). GPUs are whole
//! `nvidia.com/gpu` devices as Kubernetes allocates them: a pod asking for a fraction of a GPU
//! gets one. Two NodePools: `general` (c6i/m6i/r6i) and `gpu` (g4dn/g5/p3, tainted
//! `nvidia.com/gpu:NoSchedule`, tolerated by GPU pods), each with 300m CPU / 300Mi / 2 pods of
//! DaemonSet overhead. Run twice: on-demand only, and spot allowed.
//!
//! Columns: `bound` is the tightest valid bound we compute (weights per class of instance types,
//! GPU types only for pods that tolerate their taint); `simple` is one weight vector over every
//! type; `cpu-only` is Σ CPU requests priced at the cheapest $ per vCPU.
//!
//! Run: `cargo bench -p ballast-scheduling --bench openb_cost`.

use std::path::PathBuf;
use std::time::Instant;

use ballast_scheduling::bound::{fractional_lower_bound, fractional_lower_bound_with};
use ballast_scheduling::catalog::CatalogFile;
use ballast_scheduling::*;

fn shared_dir() -> PathBuf {
    if let Ok(p) = std::env::var("BALLAST_SHARED") {
        return PathBuf::from(p);
    }
    // crates/scheduling -> repository root -> its sibling `shared`.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

fn catalog_path() -> PathBuf {
    std::env::var("BALLAST_CATALOG")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../simulations/catalogs/aws-like.yaml")
        })
}

fn read_pods(path: &PathBuf) -> Result<Vec<Pod>, String> {
    let mut rd = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = rd.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or(format!("column {name} missing"))
    };
    let (name_c, cpu_c, mem_c, gpu_c) = (
        col("name")?,
        col("cpu_milli")?,
        col("memory_mib")?,
        col("num_gpu")?,
    );
    let mut pods = vec![];
    for (i, row) in rd.records().enumerate() {
        let row = row.map_err(|e| format!("row {i}: {e}"))?;
        let num = |c: usize| -> Result<i64, String> {
            row.get(c)
                .unwrap_or("")
                .parse::<i64>()
                .map_err(|e| format!("row {i} column {c}: {e}"))
        };
        let mut p = Pod::new(
            "openb",
            row.get(name_c).unwrap_or(""),
            Resources::cpu_mem(num(cpu_c)?, num(mem_c)? << 20),
        );
        let gpus = num(gpu_c)?;
        if gpus > 0 {
            p.requests.set("nvidia.com/gpu", gpus);
            p.tolerations.push(Toleration {
                key: "nvidia.com/gpu".into(),
                operator: TolerationOperator::Exists,
                ..Default::default()
            });
        }
        pods.push(p);
    }
    Ok(pods)
}

fn pools(spot: bool) -> Vec<NodePool> {
    let ct: Vec<&str> = if spot {
        vec!["spot", "on-demand"]
    } else {
        vec!["on-demand"]
    };
    let overhead = Resources::cpu_mem(300, 300 << 20).with("pods", 2);
    let mk = |name: &str, cats: &[&str]| NodePool {
        name: name.into(),
        requirements: vec![
            Requirement::new("nodes.ballast.dev/instance-category", Operator::In, cats),
            Requirement::new(labels::CAPACITY_TYPE, Operator::In, &ct),
        ],
        daemonset_overhead: overhead.clone(),
        ..Default::default()
    };
    let mut gpu = mk("gpu", &["g", "p"]);
    gpu.taints = vec![Taint::new(
        "nvidia.com/gpu",
        "true",
        TaintEffect::NoSchedule,
    )];
    vec![mk("general", &["c", "m", "r"]), gpu]
}

fn main() {
    let csv = shared_dir().join("data/alibaba-openb/openb_pod_list_default.csv");
    if !csv.exists() {
        println!(
            "openb benchmark skipped: {} not found (set BALLAST_SHARED)",
            csv.display()
        );
        return;
    }
    let pods = match read_pods(&csv) {
        Ok(p) => p,
        Err(e) => {
            println!("openb benchmark skipped: cannot read the trace: {e}");
            return;
        }
    };
    let text = match std::fs::read_to_string(catalog_path()) {
        Ok(t) => t,
        Err(e) => {
            println!(
                "openb benchmark skipped: catalog {}: {e}",
                catalog_path().display()
            );
            return;
        }
    };
    let file: CatalogFile = serde_yaml::from_str(&text).expect("catalog file parses");
    let types = file.instance_types().expect("catalog file is valid");
    println!(
        "openb: {} pods, {} instance types from {}",
        pods.len(),
        types.len(),
        catalog_path().display()
    );
    println!(
        "{:<10} {:<8} {:>8} {:>7} {:>8} {:>10} {:>10} {:>7} {:>11} {:>9}",
        "capacity",
        "pass",
        "solve ms",
        "nodes",
        "pending",
        "cost $/h",
        "bound $/h",
        "ratio",
        "simple $/h",
        "cpu-only"
    );
    let split = std::env::var("BALLAST_OPENB_PART").ok();
    let pods: Vec<Pod> = match split.as_deref() {
        Some("gpu") => pods
            .into_iter()
            .filter(|p| p.requests.get("nvidia.com/gpu") > 0)
            .collect(),
        Some("cpu") => pods
            .into_iter()
            .filter(|p| p.requests.get("nvidia.com/gpu") == 0)
            .collect(),
        _ => pods,
    };
    for spot in [false, true] {
        for improve in [false, true] {
            let snap = Snapshot {
                pods: pods.clone(),
                node_pools: pools(spot),
                instance_types: types.clone(),
                ..Default::default()
            };
            let t = Instant::now();
            let sol = solve(
                &snap,
                &SolveOptions {
                    improve,
                    ..Default::default()
                },
            )
            .expect("valid input");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            // The bound covers the pods the plan placed, on the same offerings and overhead.
            let placed: std::collections::BTreeSet<&PodRef> =
                sol.placements.iter().map(|p| &p.pod).collect();
            let reqs: Vec<Resources> = pods
                .iter()
                .filter(|p| placed.contains(&p.key()))
                .map(|p| p.effective_requests())
                .collect();
            let offering_ok = |o: &Offering| spot || o.capacity_type == "on-demand";
            // GPU types sit behind the gpu pool's taint: only pods that tolerate it may use them.
            let tolerates: Vec<bool> = pods
                .iter()
                .filter(|p| placed.contains(&p.key()))
                .map(|p| !p.tolerations.is_empty())
                .collect();
            let gpu_type = |t: &InstanceType| t.capacity.get("nvidia.com/gpu") > 0;
            let allowed = |i: usize, t: &InstanceType| tolerates[i] || !gpu_type(t);
            let overhead = Resources::cpu_mem(300, 300 << 20).with("pods", 2);
            let lb = fractional_lower_bound_with(&reqs, &types, &overhead, &offering_ok, &allowed);
            let simple = fractional_lower_bound(&reqs, &types, &overhead, &offering_ok);
            let cpu_only = lb
                .per_resource
                .iter()
                .find(|(n, _)| n == "cpu")
                .map(|x| x.1)
                .unwrap_or(0.0);
            println!(
                "{:<10} {:<8} {:>8.0} {:>7} {:>8} {:>10.2} {:>10.2} {:>7.3} {:>11.2} {:>9.2}",
                if spot { "spot+od" } else { "on-demand" },
                if improve { "ffd+cost" } else { "ffd" },
                ms,
                sol.new_claims.len(),
                sol.unschedulable.len(),
                sol.new_cost(),
                lb.value,
                sol.new_cost() / lb.value,
                simple.value,
                cpu_only
            );
            if improve && !spot {
                let w: Vec<String> = lb
                    .weights
                    .iter()
                    .map(|(n, w)| format!("{n}={w:.2}"))
                    .collect();
                println!("           bound weights: {}", w.join(" "));
                if let Some(u) = sol.unschedulable.first() {
                    println!("           e.g. {u}");
                }
                let mut by_type: std::collections::BTreeMap<&str, usize> = Default::default();
                for c in &sol.new_claims {
                    *by_type.entry(c.instance_type.as_str()).or_default() += 1;
                }
                let mut v: Vec<(&str, usize)> = by_type.into_iter().collect();
                v.sort_by_key(|x| std::cmp::Reverse(x.1));
                let top: Vec<String> = v.iter().take(8).map(|(t, n)| format!("{t}x{n}")).collect();
                println!("           types: {}", top.join(" "));
            }
        }
    }
}
