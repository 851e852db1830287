//! Simulator speed at scale: a generated week of 50 diurnal services with one autoscaler each
//! (15 s sync), about 10,000 pods at peak on about 500 nodes. Prints the speed as a multiple of
//! real time and the peak resident memory.
//!
//!     cargo bench -p ballast-sim --bench scale [-- HOURS]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

fn scenario(hours: u32) -> String {
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
        // Peaks spread over the day; ~200 pods each at peak (10,000 in all).
        let trough = (i % 24) as f64;
        let _ = write!(
            y,
            r#"- name: svc-{i}
  namespace: bench
  replicas: 100
  pod: {{ requests: {{ cpu: 700m, memory: 1Gi }}, startupSeconds: 20 }}
  perPod: {{ capacity: 100, cpuPerUnit: 4.5, baseCpu: 40 }}
  load: {{ kind: Diurnal, min: 4000, max: 14000, troughHour: {trough} }}
"#
        );
    }
    y.push_str("settings: { sampleSeconds: 300, startupJitter: 0.1 }\n");
    y
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0)))
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let hours: u32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(168);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../simulations/bench.yaml");
    let text = scenario(hours);
    let scenarios = ballast_sim::scenario::load_str(&text, &dir).expect("the bench scenario loads");
    let sc = scenarios.into_iter().next().expect("one variant");
    let t0 = Instant::now();
    let r = ballast_sim::run(sc, &mut |_| {}).expect("the bench scenario runs");
    let wall = t0.elapsed().as_secs_f64();
    let s = &r.summary;
    let sim_s = s.hours * 3600.0;
    println!("sim scale bench: {hours} h simulated, 50 autoscalers (15 s sync), peak {} nodes, {} pods created", s.peak_nodes, s.pods_created);
    println!("  wall {wall:.2} s  →  {:.0}x real time", sim_s / wall);
    println!("  peak RSS {:.0} MiB", peak_rss_mib());
    println!("  cost ${:.0} vs bound ${:.0} (x{:.3}); scale events {}; disruptions {}; errors {}", s.cost, s.lower_bound_cost, s.cost_over_lower_bound, s.scale_events, s.disruptions, s.errors.len());
    let phases: Vec<String> = r.phase_seconds.iter().map(|(k, v)| format!("{k} {v:.2}s")).collect();
    println!("  time by phase: {}", phases.join(", "));
    for e in s.errors.iter().take(3) {
        println!("  error: {e}");
    }
}
