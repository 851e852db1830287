//! Objects within the schema, generated at stated sizes, through the whole pipeline
//! (`prepare → decide → render`): never a panic, the replica count within [min, max], `decide`
//! allocation-free once its buffers have grown (its stated contract), and the memory of one
//! decision under a bound that grows with the input.
//!
//! Sizes: up to 300 pods, 6 metrics (every source kind with a reading), 4 scaling policies a
//! direction and 120 stored history entries.

mod common;
#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use ballast_api::horizontal::{MetricSpec, ScalingPolicyType, ScalingRules, SelectPolicy};
use ballast_horizontal::*;
use common::*;
use counting_alloc::{Counting, measure};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes one decision may hold at its peak: a fixed part (the prepared spec, the rendered
/// conditions, events and explanation) plus a part per pod, per metric and per history entry.
/// Measured (debug build): 11 KB for no pod and one metric; about 190 B a pod, 6 KB a metric and
/// 80 B a history entry; 103 KB for 300 pods, 6 metrics and 180 entries.
fn memory_bound(pods: usize, metrics: usize, history: usize) -> usize {
    16 * 1024 + 512 * pods + 8 * 1024 * metrics + 256 * history
}

/// (select policy, policies as (of pods?, value, period seconds), stabilization window seconds).
type RulesCase = Option<(u8, Vec<(bool, i32, i32)>, i32)>;

#[derive(Debug, Clone)]
struct MetricGen {
    kind: u8,
    target: u32,
    value: u32,
    failed: bool,
}

#[derive(Debug, Clone)]
struct Case {
    min: i32,
    max: i32,
    current: i32,
    metrics: Vec<MetricGen>,
    /// (request in millicores, sample in millicores or none, ready)
    pods: Vec<(u32, Option<u32>, bool)>,
    /// (select policy, [(type, value, period)], stabilization window) for up and down.
    up: RulesCase,
    down: RulesCase,
    recs: Vec<(i64, i32)>,
    events: Vec<(i64, i32)>,
}

fn metric_gen() -> impl Strategy<Value = MetricGen> {
    (0u8..6, 1u32..500, 0u32..50_000, prop::bool::weighted(0.1)).prop_map(
        |(kind, target, value, failed)| MetricGen {
            kind,
            target,
            value,
            failed,
        },
    )
}

fn rules_gen() -> impl Strategy<Value = RulesCase> {
    prop::option::of((
        0u8..3,
        prop::collection::vec((any::<bool>(), 1i32..1000, 1i32..1800), 0..=4),
        0i32..=3600,
    ))
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1i32..10, 0i32..200, 0i32..250),
        prop::collection::vec(metric_gen(), 1..=6),
        prop::collection::vec(
            (
                1u32..4000,
                prop::option::weighted(0.9, 0u32..8000),
                any::<bool>(),
            ),
            0..=300,
        ),
        (rules_gen(), rules_gen()),
        prop::collection::vec((0i64..1200, 0i32..250), 0..=60),
        prop::collection::vec((0i64..1800, 1i32..50), 0..=60),
    )
        .prop_map(
            |((min, extra, current), metrics, pods, (up, down), recs, events)| Case {
                min,
                max: min + extra,
                current,
                metrics,
                pods,
                up,
                down,
                recs,
                events,
            },
        )
}

fn metric_spec(m: &MetricGen) -> MetricSpec {
    let t = m.target.to_string();
    match m.kind {
        0 => cpu_util(m.target.min(200) as i32),
        1 => pods_metric("rps", &t),
        2 => external_metric("queue", target_value(&t)),
        3 => object_metric("rps", target_avg(&t)),
        4 => prometheus(target_avg(&t), Some("5")),
        _ => container_resource("cpu", "app", target_avg(&format!("{t}m"))),
    }
}

fn reading(m: &MetricGen, c: &Case, names: &[String]) -> MetricReading {
    if m.failed {
        return error("source unavailable");
    }
    if matches!(m.kind, 0 | 1 | 5) {
        let vals: Vec<String> = c
            .pods
            .iter()
            .map(|(_, s, _)| format!("{}m", s.unwrap_or(0)))
            .collect();
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .zip(&vals)
            .zip(&c.pods)
            .filter(|(_, (_, s, _))| s.is_some())
            .map(|((n, v), _)| (n.as_str(), v.as_str()))
            .collect();
        samples(&pairs)
    } else {
        value(&m.value.to_string())
    }
}

fn scaling_rules(r: &RulesCase) -> Option<ScalingRules> {
    let (select, policies, window) = r.as_ref()?;
    let select = match select {
        0 => SelectPolicy::Max,
        1 => SelectPolicy::Min,
        _ => SelectPolicy::Disabled,
    };
    let policies: Vec<(ScalingPolicyType, i32, i32)> = policies
        .iter()
        .map(|&(pods, v, period)| {
            if pods {
                (ScalingPolicyType::Pods, v, period)
            } else {
                (ScalingPolicyType::Percent, v, period)
            }
        })
        .collect();
    Some(rules(Some(*window), Some(select), &policies))
}

fn build(c: &Case) -> Snapshot {
    let names: Vec<String> = (0..c.pods.len()).map(|i| format!("p{i}")).collect();
    let pods: Vec<PodSnapshot> = c
        .pods
        .iter()
        .zip(&names)
        .map(|(&(request, _, ready), name)| {
            let p = pod(name, &format!("{request}m"));
            if ready { p } else { never_ready(p) }
        })
        .collect();
    let mut b = hpa(
        Some(c.min),
        c.max,
        c.metrics.iter().map(metric_spec).collect(),
    )
    .current(c.current)
    .pods(pods)
    .behavior(scaling_rules(&c.up), scaling_rules(&c.down))
    .recs(&c.recs)
    .ups(&c.events)
    .downs(&c.events);
    for m in &c.metrics {
        b = b.reading(reading(m, c, &names));
    }
    b.snapshot()
}

fn history_len(c: &Case) -> usize {
    c.recs.len() + 2 * c.events.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The whole pipeline on one generated object: within [min, max] (or left where it is), and
    /// under the memory bound.
    #[test]
    fn a_decision_stays_within_bounds_and_memory(c in case()) {
        let snapshot = build(&c);
        let (decision, usage) = measure(|| explain(&snapshot));
        let d = decision.map_err(|e| TestCaseError::fail(format!("rejected: {e}")))?;
        match d.path {
            Path::Normal | Path::AboveMax | Path::BelowMin | Path::Activated => prop_assert!(
                (c.min..=c.max).contains(&d.desired_replicas),
                "{:?}: desired {} not in [{}, {}]", d.path, d.desired_replicas, c.min, c.max
            ),
            _ => prop_assert_eq!(d.desired_replicas, c.current, "{:?}", d.path),
        }
        let bound = memory_bound(c.pods.len(), c.metrics.len(), history_len(&c));
        prop_assert!(
            usage.peak_bytes <= bound,
            "peak {} B over the bound {bound} B ({} pods, {} metrics, {} history entries)",
            usage.peak_bytes, c.pods.len(), c.metrics.len(), history_len(&c)
        );
    }

    /// `decide` allocates nothing once the outcome buffers have grown to the object's size, even
    /// when another object grew them first.
    #[test]
    fn decide_allocates_nothing_once_grown(a in case(), b in case()) {
        let (sa, sb) = (build(&a), build(&b));
        let pa = prepare(&sa).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let pb = prepare(&sb).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut out = Outcome::default();
        decide(&pb, &mut out);
        decide(&pa, &mut out);
        let ((), usage) = measure(|| decide(&pa, &mut out));
        prop_assert_eq!(usage.allocations, 0, "decide allocated {} B", usage.peak_bytes);
    }
}

/// The bound above is not vacuous: the largest inputs come within a small factor of it, and a
/// trivial one is far below it (so a regression that doubles memory per pod shows).
#[test]
fn the_memory_bound_is_tight_enough_to_matter() {
    let big = Case {
        min: 1,
        max: 200,
        current: 250,
        metrics: (0..6)
            .map(|kind| MetricGen {
                kind,
                target: 100,
                value: 40_000,
                failed: false,
            })
            .collect(),
        pods: vec![(500, Some(700), true); 300],
        up: Some((0, vec![(true, 4, 60), (false, 100, 60)], 0)),
        down: Some((1, vec![(false, 10, 60)], 300)),
        recs: (0..60).map(|i| (i * 15, 100)).collect(),
        events: (0..60).map(|i| (i * 30, 3)).collect(),
    };
    let snapshot = build(&big);
    let (d, usage) = measure(|| explain(&snapshot));
    assert!(d.is_ok());
    let bound = memory_bound(300, 6, history_len(&big));
    println!(
        "300 pods, 6 metrics, 180 history entries: peak {} B of a bound of {bound} B",
        usage.peak_bytes
    );
    assert!(usage.peak_bytes <= bound);
    assert!(
        usage.peak_bytes * 4 >= bound,
        "bound {bound} B is loose for {} B",
        usage.peak_bytes
    );
}
