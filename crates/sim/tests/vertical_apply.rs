//! `VerticalAutoscaler` update modes in a simulation: `Initial` sizes the pods created after a
//! recommendation, `Recreate` evicts pods whose requests are off it (within the budget of each
//! pass), and the report sets the run beside the same run with every object `Off`.

use ballast_sim::report::{AppliedSizing, VariantResult};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs a scenario written inline (relative paths resolve against `simulations/`).
fn run_inline(yaml: &str) -> Vec<VariantResult> {
    let path = repo().join("simulations/inline-test.yaml");
    let scenarios = ballast_sim::scenario::load_str(yaml, &path).unwrap_or_else(|e| panic!("{e}"));
    scenarios
        .into_iter()
        .map(|s| ballast_sim::run(s, &mut |_| {}).unwrap())
        .collect()
}

fn only(results: Vec<VariantResult>) -> VariantResult {
    let [r] = results.try_into().ok().unwrap();
    r
}

/// The applied figures of the object on `app`.
fn applied(r: &VariantResult) -> &AppliedSizing {
    let v = r
        .summary
        .vertical
        .iter()
        .find(|v| v.name == "default/app")
        .unwrap_or_else(|| panic!("{:?}", r.summary.vertical));
    v.applied.as_ref().unwrap_or_else(|| panic!("{v:?}"))
}

/// `app` asks for 1 CPU and 2Gi and uses 300m and 500Mi per pod; a VerticalAutoscaler in mode
/// MODE; static nodes, so only the vertical autoscaler and HPA move pods.
const BASE: &str = r#"
name: vertical-apply
duration: DURATION
catalog: catalogs/aws-like.yaml
startNodes:
- { instanceType: m6i.4xlarge, zone: us-east-1a, count: 2 }
inlineObjects:
- apiVersion: autoscaling.ballast.dev/v1
  kind: VerticalAutoscaler
  metadata: { name: app }
  spec:
    targetRef: { apiVersion: apps/v1, kind: Deployment, name: app }
    updatePolicy: { updateMode: MODE }
EXTRA
workloads:
- name: app
  replicas: REPLICAS
  PDB
  pod: { requests: { cpu: "1", memory: 2Gi }, startupSeconds: 5 }
  perPod: { capacity: 150, cpuPerUnit: 2, baseCpu: 100, memory: 400Mi, memoryPerUnit: 1Mi }
  load: LOAD
"#;

struct Case<'a> {
    duration: &'a str,
    mode: &'a str,
    replicas: u32,
    /// `maxUnavailable: N`, or "".
    pdb: &'a str,
    load: &'a str,
    extra: &'a str,
}

impl Case<'_> {
    fn yaml(&self) -> String {
        BASE.replace("DURATION", self.duration)
            .replace("MODE", self.mode)
            .replace("REPLICAS", &self.replicas.to_string())
            .replace("PDB", self.pdb)
            .replace("LOAD", self.load)
            .replace("EXTRA", self.extra)
    }
}

/// An HPA on the per-pod load (not on CPU): `app` scales from 2 to about 6 pods at 2 h.
const HPA: &str = r#"- apiVersion: autoscaling.ballast.dev/v1
  kind: HorizontalAutoscaler
  metadata: { name: app }
  spec:
    scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: app }
    minReplicas: 2
    maxReplicas: 10
    metrics:
    - type: Pods
      pods:
        metric: { name: rps }
        target: { type: AverageValue, averageValue: "100" }"#;

const STEP_LOAD: &str = "{ kind: Steps, points: [[0, 200], [7200, 600]] }";
const CONSTANT_LOAD: &str = "{ kind: Constant, value: 600 }";

#[test]
fn initial_sizes_every_pod_created_after_the_first_recommendation() {
    let case = Case {
        duration: "4h",
        mode: "Initial",
        replicas: 2,
        pdb: "",
        load: STEP_LOAD,
        extra: HPA,
    };
    let r = only(run_inline(&case.yaml()));
    let s = &r.summary;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let a = applied(&r);
    assert_eq!(a.mode, "Initial");
    assert_eq!(a.evictions, 0, "Initial never evicts");
    // The two pods of the start state came before any recommendation; every other pod after.
    assert!(s.pods_created > 4, "the HPA scaled out: {}", s.pods_created);
    assert_eq!(a.pods_sized as usize, s.pods_created - 2, "{a:?}");
    // The sized pods ask for about 300m × 1.15 (the target), not 1 CPU: the Ready pods' mean
    // request is between the two.
    assert!(
        a.mean_requested_cpu < 0.9 && a.mean_requested_cpu > 0.3,
        "{a:?}"
    );
    assert!(a.mean_requested_memory < 2048.0 * 1024.0 * 1024.0, "{a:?}");
    let c = s.vertical_comparison.as_ref().unwrap();
    assert_eq!((c.evictions, c.pods_sized), (0, a.pods_sized));
}

#[test]
fn recreate_evicts_within_the_budget_and_replacements_get_the_recommendation() {
    for (pdb, most_unavailable) in [("maxUnavailable: 1", 1), ("", 3)] {
        let case = Case {
            duration: "30h",
            mode: "Recreate",
            replicas: 6,
            pdb,
            load: CONSTANT_LOAD,
            extra: "",
        };
        let r = only(run_inline(&case.yaml()));
        let s = &r.summary;
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let a = applied(&r);
        assert_eq!(a.mode, "Recreate");
        // Every pod is off the target by far more than 10% after 12 h: each is replaced at least
        // once, and every replacement (the only pods made after the start) is sized.
        assert!(a.evictions >= 6, "{pdb}: {a:?}");
        assert_eq!(a.pods_sized, a.evictions, "{pdb}: {a:?}");
        assert_eq!(s.evictions, a.evictions, "no node was drained");
        assert_eq!(s.pods_created, 6 + a.evictions as usize);
        // Sampled at the updater's period: never more pods unavailable than the PDB, or half the
        // replicas without one, allow.
        let fewest_ready = r.series.iter().map(|row| row.workloads[0].ready).min();
        assert_eq!(fewest_ready, Some(6 - most_unavailable), "{pdb}");
        assert!(a.mean_requested_cpu < 1.0, "{a:?}");
        let without = a.cost_per_hour_without.unwrap();
        assert!(a.cost_per_hour_applied < without, "{a:?}");
    }
}

#[test]
fn applied_recommendations_cost_less_on_the_bundled_scenario() {
    let path = repo().join("simulations/vertical-apply.yaml");
    let mut sc = ballast_sim::scenario::load(&path).unwrap().remove(0);
    sc.duration_seconds = 36.0 * 3600.0;
    let r = ballast_sim::run(sc, &mut |_| {}).unwrap();
    let s = &r.summary;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let c = s.vertical_comparison.as_ref().unwrap();
    assert!(c.cost_with < c.cost_without, "{c:?}");
    assert!(c.node_hours_with < c.node_hours_without, "{c:?}");
    assert!(c.evictions > 0 && c.pods_sized > c.evictions, "{c:?}");
    let modes: Vec<&str> = s
        .vertical
        .iter()
        .map(|v| v.applied.as_ref().map_or("Off", |a| a.mode.as_str()))
        .collect();
    assert_eq!(modes, ["Recreate", "Initial"]);
}

#[test]
fn same_seed_gives_the_same_report_when_applying() {
    let case = Case {
        duration: "14h",
        mode: "Recreate",
        replicas: 4,
        pdb: "",
        load: STEP_LOAD,
        extra: "",
    };
    let yaml = case.yaml();
    let run = || {
        let results = run_inline(&yaml);
        (
            ballast_sim::report::json(&results),
            ballast_sim::report::vertical_table(&results),
            ballast_sim::html::page(&results),
        )
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(a.0.contains("\"verticalComparison\""), "{}", a.0);
    assert!(a.1.contains("applied vs off"), "{}", a.1);
    assert!(a.2.contains("Vertical autoscaling applied vs off"));
}

#[test]
fn mode_off_applies_nothing_and_runs_once() {
    let case = Case {
        duration: "14h",
        mode: "\"Off\"",
        replicas: 4,
        pdb: "",
        load: CONSTANT_LOAD,
        extra: "",
    };
    let r = only(run_inline(&case.yaml()));
    let s = &r.summary;
    assert!(s.vertical_comparison.is_none());
    assert!(s.vertical.iter().all(|v| v.applied.is_none()));
    assert_eq!((s.evictions, s.pods_created), (0, 4));
    let json = ballast_sim::report::json(&[r]);
    assert!(!json.contains("applied") && !json.contains("verticalComparison"));
}

#[test]
fn an_object_without_an_update_mode_recreates() {
    let case = Case {
        duration: "14h",
        mode: "Off",
        replicas: 4,
        pdb: "",
        load: CONSTANT_LOAD,
        extra: "",
    };
    let yaml = case
        .yaml()
        .replace("    updatePolicy: { updateMode: Off }\n", "");
    assert!(!yaml.contains("updatePolicy"));
    let r = only(run_inline(&yaml));
    let a = applied(&r);
    assert_eq!(a.mode, "Recreate", "the API's default");
    assert!(a.evictions > 0, "{a:?}");
}

/// An HPA on CPU utilization, which reads each pod's own request.
const CPU_HPA: &str = r#"- apiVersion: autoscaling.ballast.dev/v1
  kind: HorizontalAutoscaler
  metadata: { name: app }
  spec:
    scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: app }
    minReplicas: 2
    maxReplicas: 20
    metrics:
    - type: Resource
      resource: { name: cpu, target: { type: Utilization, averageUtilization: 70 } }"#;

#[test]
fn an_hpa_on_cpu_reads_utilization_against_the_smaller_requests() {
    let mean_ready = |mode: &str| {
        let case = Case {
            duration: "30h",
            mode,
            replicas: 4,
            pdb: "",
            load: CONSTANT_LOAD,
            extra: CPU_HPA,
        };
        let r = only(run_inline(&case.yaml()));
        assert!(r.summary.errors.is_empty(), "{:?}", r.summary.errors);
        r.summary.workloads[0].mean_ready
    };
    // Off: about 300m of 1 CPU, 30%, so the HPA holds its minimum. Recreate: the requests
    // shrink to about the usage, utilization rises past 70% and the HPA scales out (the conflict
    // of a vertical and a horizontal autoscaler on the same resource).
    let (off, recreate) = (mean_ready("\"Off\""), mean_ready("Recreate"));
    assert!(recreate > off + 0.5, "Off {off}, Recreate {recreate}");
}

#[test]
fn admission_follows_the_container_policy() {
    let case = Case {
        duration: "4h",
        mode: "Initial",
        replicas: 2,
        pdb: "",
        load: STEP_LOAD,
        extra: HPA,
    };
    let with_policy = |policy: &str| {
        let yaml = case.yaml().replace(
            "    updatePolicy: { updateMode: Initial }\n",
            &format!(
                "    updatePolicy: {{ updateMode: Initial }}\n    resourcePolicy: {{ containerPolicies: [{policy}] }}\n"
            ),
        );
        assert!(yaml.contains("containerPolicies"), "{yaml}");
        let r = only(run_inline(&yaml));
        assert!(r.summary.errors.is_empty(), "{:?}", r.summary.errors);
        applied(&r).clone()
    };
    // Memory only: new pods keep the template's CPU request.
    let memory = with_policy("{ containerName: \"*\", controlledResources: [memory] }");
    assert!(memory.pods_sized > 0, "{memory:?}");
    assert_eq!(memory.mean_requested_cpu, 1.0, "{memory:?}");
    assert!(memory.mean_requested_memory < 2048.0 * 1024.0 * 1024.0);
    // The container left alone: no pod is sized.
    let off = with_policy("{ containerName: \"*\", mode: \"Off\" }");
    assert_eq!(off.pods_sized, 0, "{off:?}");
    assert_eq!(off.mean_requested_cpu, 1.0, "{off:?}");
}
