//! Simulator speed at scale: a generated week of 50 diurnal services with one autoscaler each
//! (15 s sync) on one NodePool of m6i.4xlarge nodes. Prints the speed as a multiple of real time
//! (wall clock and, as the machine is shared, the process's CPU time), the peak resident memory,
//! and what the run did.
//!
//!     cargo bench -p ballast-sim --bench scale [-- HOURS] [--saturated]
//!
//! The default load keeps about 6,500–7,500 pods on 450–470 nodes all week (the services' peaks
//! are spread over the day; 25,000 pods are created a day). `--saturated` is the bench as first
//! written, which issue #7's figures were measured on: a pod's CPU use is capped exactly at the
//! autoscalers' 70% target when it serves its full capacity, so no autoscaler ever scales up;
//! the services shrink to about 40 pods each and the cluster to 98 nodes after the first day,
//! and stays so.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

fn scenario(hours: u32, saturated: bool) -> String {
    // CPU per unit of load, and the load range: saturated = 40 + 100 × 4.5 = 490m = 70% of 700m.
    let (per_unit, min, max) = if saturated {
        (4.5, 4000, 14000)
    } else {
        (6.0, 8000, 22000)
    };
    let mut y = String::new();
    let _ = write!(
        y,
        r#"name: scale-bench
duration: {hours}h
seed: 3
catalog: catalogs/aws-like.yaml
inlineObjects:
- apiVersion: nodes.ballast.dev/v1
  kind: NodePool
  metadata: {{ name: bench }}
  spec:
    template:
      spec:
        nodeClassRef: {{ group: nodes.ballast.dev, kind: KwokNodeClass, name: default }}
        requirements:
        - {{ key: node.kubernetes.io/instance-type, operator: In, values: [m6i.4xlarge] }}
        - {{ key: nodes.ballast.dev/capacity-type, operator: In, values: [on-demand] }}
    disruption: {{ consolidationPolicy: WhenEmptyOrUnderutilized, consolidateAfter: 5m }}
"#
    );
    for i in 0..50 {
        let _ = write!(
            y,
            r#"- apiVersion: autoscaling.ballast.dev/v1
  kind: HorizontalAutoscaler
  metadata: {{ name: svc-{i}, namespace: bench }}
  spec:
    scaleTargetRef: {{ apiVersion: apps/v1, kind: Deployment, name: svc-{i} }}
    minReplicas: 20
    maxReplicas: 400
    metrics:
    - {{ type: Resource, resource: {{ name: cpu, target: {{ type: Utilization, averageUtilization: 70 }} }} }}
"#
        );
    }
    y.push_str("workloads:\n");
    for i in 0..50 {
        // Peaks spread over the day.
        let trough = (i % 24) as f64;
        let _ = write!(
            y,
            r#"- name: svc-{i}
  namespace: bench
  replicas: 100
  pod: {{ requests: {{ cpu: 700m, memory: 1Gi }}, startupSeconds: 20 }}
  perPod: {{ capacity: 100, cpuPerUnit: {per_unit}, baseCpu: 40 }}
  load: {{ kind: Diurnal, min: {min}, max: {max}, troughHour: {trough} }}
"#
        );
    }
    y.push_str("settings: { sampleSeconds: 300, startupJitter: 0.1 }\n");
    y
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses): state, then utime and stime 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ on Linux
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hours: u32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(168);
    let saturated = args.iter().any(|a| a == "--saturated");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../simulations/bench.yaml");
    let text = scenario(hours, saturated);
    let scenarios = ballast_sim::scenario::load_str(&text, &dir).expect("the bench scenario loads");
    let sc = scenarios.into_iter().next().expect("one variant");
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let r = ballast_sim::run(sc, &mut |_| {}).expect("the bench scenario runs");
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let s = &r.summary;
    let sim_s = s.hours * 3600.0;
    let peak_live = r
        .series
        .iter()
        .map(|row| row.workloads.iter().map(|w| w.ready).sum::<usize>())
        .max()
        .unwrap_or(0);
    println!(
        "sim scale bench{}: {hours} h simulated, 50 autoscalers (15 s sync), peak {} nodes, peak {peak_live} pods ready, {} pods created",
        if saturated { " (--saturated)" } else { "" },
        s.peak_nodes,
        s.pods_created
    );
    println!(
        "  wall {wall:.2} s  →  {:.0}x real time; CPU {cpu:.2} s  →  {:.0}x",
        sim_s / wall,
        sim_s / cpu.max(1e-9)
    );
    println!("  peak RSS {:.0} MiB", peak_rss_mib());
    println!(
        "  cost ${:.0} vs bound ${:.0} (x{:.3}); scale events {}; disruptions {}; errors {}",
        s.cost,
        s.lower_bound_cost,
        s.cost_over_lower_bound,
        s.scale_events,
        s.disruptions,
        s.errors.len()
    );
    let phases: Vec<String> = r
        .phase_seconds
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}s"))
        .collect();
    println!("  time by phase: {}", phases.join(", "));
    let counts: Vec<String> = r
        .phase_counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("  events by phase: {}", counts.join(", "));
    for e in s.errors.iter().take(3) {
        println!("  error: {e}");
    }
}
