//! Objects within the schema, generated at stated sizes, through the recommender and the
//! updater's choice of pods: never a panic, every value within the policy's [minAllowed,
//! maxAllowed] and ordered (lower ≤ target ≤ upper), a container's state of fixed size whatever
//! the number of samples, the updater within its budget, and the memory of each call under a
//! stated bound.
//!
//! Sizes: up to 4 containers of 400 samples each (gaps up to 2 h, so up to 33 days of history),
//! half-lives from one minute to 30 days; up to 200 pods of 3 containers for the updater.

#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::collections::BTreeMap;

use ballast_api::vertical::{
    ChangeRequirement, ContainerResourcePolicy, ContainerScalingMode, Estimation, EstimatorMode,
    EvictionRequirement, ResourceEstimation, ResourcePolicy, VerticalAutoscaler,
    VerticalAutoscalerSpec,
};
use ballast_vertical::apply::eviction::{Bounds, ContainerView, Limits, PodView, choose};
use ballast_vertical::policy::Resource;
use ballast_vertical::recommend::{TrackedContainer, recommend};
use ballast_vertical::{ContainerState, Settings};
use counting_alloc::{Counting, measure};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const START: i64 = 1_700_000_000;
const MIB: f64 = 1024.0 * 1024.0;

/// Bytes one recommendation may hold at its peak: a fixed part plus a part per container
/// (its reasons and name). Measured (debug build): about 1.5 KB a container.
fn recommend_bound(containers: usize) -> usize {
    4 * 1024 + 4 * 1024 * containers
}

/// Bytes one container's state may take, whatever the number of samples: two histograms of
/// fixed bucket layouts and the Adaptive candidates. Measured: see
/// `a_state_does_not_grow_with_its_samples`.
const STATE_BOUND: usize = 24 * 1024;

/// Bytes the updater's choice may hold at its peak, per pod (its choice and reason).
fn choose_bound(pods: usize) -> usize {
    1024 + 512 * pods
}

/// (lower, target, upper percentile, half-life in minutes, safety margin percent).
type Percentiles = (f64, f64, f64, u32, f64);
/// A generated (min, max) allowed, either order.
type Range = Option<(u32, u32)>;

#[derive(Debug, Clone)]
struct Case {
    estimation: Option<(bool, [Percentiles; 2])>,
    /// (off, cpu min/max millicores, memory min/max MiB)
    policy: Option<(bool, Range, Range)>,
    /// Per container: (gap seconds, cores, MiB, OOM) samples.
    containers: Vec<Vec<(i64, f64, f64, bool)>>,
    /// Seconds from the last sample to `now`.
    after: i64,
}

fn percentiles() -> impl Strategy<Value = Percentiles> {
    (
        0.001f64..=100.0,
        0.001f64..=100.0,
        0.001f64..=100.0,
        1u32..43_200,
        0.0f64..=1000.0,
    )
        .prop_map(|(a, b, c, half_life_minutes, margin)| {
            let mut p = [a, b, c];
            p.sort_by(f64::total_cmp);
            (p[0], p[1], p[2], half_life_minutes, margin)
        })
}

fn case() -> impl Strategy<Value = Case> {
    let sample = (
        1i64..7200,
        0.0f64..64.0,
        0.0f64..262_144.0,
        prop::bool::weighted(0.02),
    );
    (
        prop::option::of((any::<bool>(), [percentiles(), percentiles()])),
        prop::option::of((
            prop::bool::weighted(0.1),
            prop::option::of((1u32..64_000, 1u32..64_000)),
            prop::option::of((1u32..262_144, 1u32..262_144)),
        )),
        prop::collection::vec(prop::collection::vec(sample, 0..=400), 1..=4),
        0i64..900_000,
    )
        .prop_map(|(estimation, policy, containers, after)| Case {
            estimation,
            policy,
            containers,
            after,
        })
}

fn resource_estimation(p: Percentiles) -> ResourceEstimation {
    ResourceEstimation {
        lower_bound_percentile: Some(p.0),
        target_percentile: Some(p.1),
        upper_bound_percentile: Some(p.2),
        half_life: Some(format!("{}m", p.3)),
        safety_margin_percent: Some(p.4),
    }
}

/// The (min, max) of a generated range, ordered as the object's validation requires.
fn ordered(range: (u32, u32)) -> (u32, u32) {
    (range.0.min(range.1), range.0.max(range.1))
}

fn spec(c: &Case) -> VerticalAutoscalerSpec {
    let estimation = c.estimation.map(|(adaptive, [cpu, memory])| Estimation {
        mode: Some(if adaptive {
            EstimatorMode::Adaptive
        } else {
            EstimatorMode::Percentile
        }),
        cpu: Some(resource_estimation(cpu)),
        memory: Some(resource_estimation(memory)),
        ..Default::default()
    });
    let resource_policy = c.policy.map(|(off, cpu, memory)| {
        let list = |cpu: Option<u32>, memory: Option<u32>| {
            let mut l = BTreeMap::new();
            if let Some(m) = cpu {
                l.insert("cpu".to_string(), Quantity(format!("{m}m")));
            }
            if let Some(m) = memory {
                l.insert("memory".to_string(), Quantity(format!("{m}Mi")));
            }
            Some(l)
        };
        let (cpu, memory) = (cpu.map(ordered), memory.map(ordered));
        ResourcePolicy {
            container_policies: vec![ContainerResourcePolicy {
                container_name: Some("*".into()),
                mode: Some(if off {
                    ContainerScalingMode::Off
                } else {
                    ContainerScalingMode::Auto
                }),
                min_allowed: list(cpu.map(|r| r.0), memory.map(|r| r.0)),
                max_allowed: list(cpu.map(|r| r.1), memory.map(|r| r.1)),
                ..Default::default()
            }],
        }
    });
    VerticalAutoscalerSpec {
        estimation,
        resource_policy,
        ..Default::default()
    }
}

/// Each container's state fed its samples, and the time of the last sample.
fn feed(c: &Case, settings: &Settings) -> (Vec<ContainerState>, i64) {
    let mut last = START;
    let states = c
        .containers
        .iter()
        .map(|samples| {
            let mut state = ContainerState::new(settings);
            let mut at = START;
            for &(gap, cores, mib, oom) in samples {
                at += gap;
                state.add_cpu(at, cores, 0.5);
                state.add_memory(at, mib * MIB);
                if oom {
                    state.add_oom(at, mib * MIB);
                }
            }
            last = last.max(at);
            state
        })
        .collect();
    (states, last)
}

fn check_range(
    name: &str,
    value: f64,
    range: Option<(u32, u32)>,
    unit: f64,
) -> Result<(), TestCaseError> {
    prop_assert!(value.is_finite() && value >= 0.0, "{name}: {value}");
    if let Some((min, max)) = range.map(ordered) {
        let (min, max) = (f64::from(min) * unit, f64::from(max) * unit);
        // Quantities parse to the nearest representable value: allow a relative 1e-9.
        let slack = max * 1e-9;
        prop_assert!(
            value >= min - slack && value <= max + slack,
            "{name}: {value} outside [{min}, {max}]"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A recommendation within the policy's bounds, ordered, from states of bounded size, in
    /// bounded memory.
    #[test]
    fn recommendations_stay_within_policy_and_memory(c in case()) {
        let object = VerticalAutoscaler::new("web", spec(&c));
        let Ok(settings) = Settings::from_spec(&object.spec, "web") else {
            return Ok(());
        };
        let (states, last) = feed(&c, &settings);
        for s in &states {
            prop_assert!(s.footprint_bytes() <= STATE_BOUND, "state of {} B", s.footprint_bytes());
        }
        let names: Vec<String> = (0..states.len()).map(|i| format!("app{i}")).collect();
        let tracked: Vec<TrackedContainer<'_>> = names
            .iter()
            .zip(&states)
            .map(|(name, state)| TrackedContainer { name, state })
            .collect();
        let now = Timestamp::from_second(last + c.after).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Once before measuring: the quantity grammar's regex keeps a match cache per thread on
        // first use, which is not the recommendation's memory.
        let first = recommend(&object, &tracked, now);
        let (r, usage) = measure(|| recommend(&object, &tracked, now));
        prop_assert_eq!(&r, &first, "the same call twice");
        prop_assert!(usage.peak_bytes <= recommend_bound(states.len()), "peak {} B", usage.peak_bytes);
        let Ok(r) = r else { return Ok(()) };
        let (cpu_range, memory_range) = c.policy.map_or((None, None), |p| (p.1, p.2));
        for rec in &r.containers {
            for (resource, value, range, unit) in [
                ("cpu", rec.cpu, cpu_range, 1e-3),
                ("memory", rec.memory, memory_range, MIB),
            ] {
                let Some(v) = value else { continue };
                for x in [v.target, v.lower_bound, v.upper_bound] {
                    check_range(&format!("{} {resource}", rec.container_name), x, range, unit)?;
                }
                prop_assert!(v.lower_bound <= v.target && v.target <= v.upper_bound, "{resource}: {v:?}");
            }
        }
        if c.policy.is_some_and(|p| p.0) {
            prop_assert!(r.containers.is_empty(), "mode Off recommends nothing");
        }
    }
}

fn pod_gen() -> impl Strategy<Value = PodView> {
    let resource = (
        any::<bool>(),
        prop::option::of(0.0f64..100.0),
        prop::option::of((0.0f64..100.0, 0.0f64..100.0, 0.0f64..100.0)),
    );
    let container = (
        prop::collection::vec(resource, 0..=2),
        prop::option::weighted(0.1, (0i64..3600, 0i64..3600)),
    );
    (0i64..200_000, prop::collection::vec(container, 1..=3)).prop_map(|(age, containers)| PodView {
        name: String::new(),
        started: START - age,
        containers: containers
            .into_iter()
            .enumerate()
            .map(|(i, (resources, oom))| ContainerView {
                name: format!("c{i}"),
                resources: resources
                    .into_iter()
                    .map(|(cpu, request, bounds)| {
                        let bounds = bounds.map(|(a, b, c)| {
                            let mut v = [a, b, c];
                            v.sort_by(f64::total_cmp);
                            Bounds {
                                lower: v[0],
                                target: v[1],
                                upper: v[2],
                            }
                        });
                        let r = if cpu { Resource::Cpu } else { Resource::Memory };
                        (r, request, bounds)
                    })
                    .collect(),
                last_oom: oom.map(|(since_start, at)| (START - at, START - at - since_start)),
            })
            .collect(),
    })
}

fn limits_gen() -> impl Strategy<Value = Limits> {
    (
        0i32..6,
        0.0f64..=1.0,
        prop::option::of(0u32..10),
        0usize..=2,
    )
        .prop_map(
            |(min_replicas, tolerance, pdb_allowed, requirements)| Limits {
                min_replicas,
                tolerance,
                pdb_allowed,
                requirements: (0..requirements)
                    .map(|i| EvictionRequirement {
                        resources: vec![if i == 0 { "cpu" } else { "memory" }.into()],
                        change_requirement: if i == 0 {
                            ChangeRequirement::TargetHigherThanRequests
                        } else {
                            ChangeRequirement::TargetLowerThanRequests
                        },
                    })
                    .collect(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The updater names every pod once, updates first, never more than its budget
    /// (max(1, ⌊pods × tolerance⌋), the PDB's allowance, none under minReplicas), in bounded
    /// memory.
    #[test]
    fn the_updater_stays_within_its_budget(
        mut pods in prop::collection::vec(pod_gen(), 0..=200),
        limits in limits_gen(),
    ) {
        for (i, p) in pods.iter_mut().enumerate() {
            p.name = format!("p{i:03}");
        }
        let (choices, usage) = measure(|| choose(&pods, &limits, START));
        prop_assert!(usage.peak_bytes <= choose_bound(pods.len()), "peak {} B", usage.peak_bytes);
        prop_assert_eq!(choices.len(), pods.len());
        let mut named: Vec<&str> = choices.iter().map(|c| c.pod.as_str()).collect();
        named.sort_unstable();
        named.dedup();
        prop_assert_eq!(named.len(), pods.len(), "a pod named twice");
        let updates = choices.iter().take_while(|c| c.update).count();
        prop_assert_eq!(updates, choices.iter().filter(|c| c.update).count(), "updates first");
        let n = pods.len();
        let budget = if (n as i64) < i64::from(limits.min_replicas) {
            0
        } else {
            ((n as f64 * limits.tolerance).floor() as usize).max(1)
        }
        .min(limits.pdb_allowed.map_or(usize::MAX, |a| a as usize));
        prop_assert!(updates <= budget, "{updates} updates over a budget of {budget}");
    }
}

/// A container's state has a fixed size: ten thousand samples over a month take no more than
/// ten, in either estimator mode.
#[test]
fn a_state_does_not_grow_with_its_samples() {
    for mode in [EstimatorMode::Percentile, EstimatorMode::Adaptive] {
        let settings = Settings {
            mode,
            ..Settings::default()
        };
        let sizes: Vec<usize> = [10i64, 10_000]
            .iter()
            .map(|&n| {
                let mut s = ContainerState::new(&settings);
                for i in 0..n {
                    let at = START + 270 * i;
                    s.add_cpu(at, (i % 97) as f64 / 10.0, 0.5);
                    s.add_memory(at, (i % 89) as f64 * 64.0 * MIB);
                }
                s.footprint_bytes()
            })
            .collect();
        println!("{mode:?}: {sizes:?} B after 10 and 10000 samples");
        assert!(sizes[1] <= STATE_BOUND, "{mode:?}: {} B", sizes[1]);
        assert!(sizes[1] <= sizes[0].max(1) * 4, "{mode:?} grew: {sizes:?}");
    }
}
