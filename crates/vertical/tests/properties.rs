//! Property and round-trip tests of the vertical core.

use ballast_api::vertical::{
    ContainerResourcePolicy, EstimatorMode, ResourcePolicy, VerticalAutoscalerCheckpointStatus,
    VerticalAutoscalerSpec,
};
use ballast_vertical::checkpoint::{restore, save};
use ballast_vertical::recommend::{Recommendation, TrackedContainer, recommend_with};
use ballast_vertical::{ContainerState, Settings};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

const START: i64 = 1_700_000_000;

fn settings(mode: EstimatorMode) -> Settings {
    Settings {
        mode,
        ..Settings::default()
    }
}

/// A state fed `usage` (cores, bytes) one sample every 5 minutes, times `scale`.
fn fed(mode: EstimatorMode, usage: &[(f64, f64)], scale: f64) -> ContainerState {
    let mut s = ContainerState::new(&settings(mode));
    for (i, (cpu, memory)) in usage.iter().enumerate() {
        let at = START + 300 * i as i64;
        s.add_cpu(at, cpu * scale, 0.5);
        s.add_memory(at, memory * scale);
    }
    s
}

fn run(
    spec: &VerticalAutoscalerSpec,
    mode: EstimatorMode,
    state: &ContainerState,
    n: usize,
) -> Recommendation {
    let now = Timestamp::from_second(START + 300 * n as i64).expect("a valid time");
    let tracked = [TrackedContainer { name: "app", state }];
    recommend_with(spec, "web", &settings(mode), &tracked, now).expect("a valid spec")
}

fn usage() -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec((0.0f64..8.0, 1e6f64..8e9), 1..400)
}

fn mode() -> impl Strategy<Value = EstimatorMode> {
    prop_oneof![
        Just(EstimatorMode::Percentile),
        Just(EstimatorMode::Adaptive)
    ]
}

fn capped_spec() -> VerticalAutoscalerSpec {
    let list = |cpu: &str, memory: &str| {
        Some(
            [("cpu", cpu), ("memory", memory)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    };
    VerticalAutoscalerSpec {
        resource_policy: Some(ResourcePolicy {
            container_policies: vec![ContainerResourcePolicy {
                container_name: Some("*".into()),
                max_allowed: list("2", "4Gi"),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn percentile_targets_are_monotone_in_usage(usage in usage(), scale in 1.0f64..4.0) {
        let spec = VerticalAutoscalerSpec::default();
        let m = EstimatorMode::Percentile;
        let low = run(&spec, m, &fed(m, &usage, 1.0), usage.len());
        let high = run(&spec, m, &fed(m, &usage, scale), usage.len());
        let (l, h) = (&low.containers[0], &high.containers[0]);
        for (a, b) in [(l.cpu, h.cpu), (l.memory, h.memory)] {
            let (a, b) = (a.expect("a value"), b.expect("a value"));
            prop_assert!(b.target >= a.target && b.upper_bound >= a.upper_bound && b.lower_bound >= a.lower_bound);
        }
    }

    #[test]
    fn never_below_floors_nor_above_max_allowed(usage in usage(), mode in mode()) {
        let spec = capped_spec();
        let r = run(&spec, mode, &fed(mode, &usage, 1.0), usage.len());
        let c = &r.containers[0];
        let (cpu, memory) = (c.cpu.expect("cpu"), c.memory.expect("memory"));
        for v in [cpu.target, cpu.lower_bound, cpu.upper_bound] {
            prop_assert!((0.025..=2.0).contains(&v), "cpu {v}");
        }
        for v in [memory.target, memory.lower_bound, memory.upper_bound] {
            prop_assert!((250.0 * 1048576.0..=4.0 * 1073741824.0).contains(&v), "memory {v}");
        }
        prop_assert!(cpu.uncapped_target >= cpu.target);
        prop_assert!(cpu.lower_bound <= cpu.target && cpu.target <= cpu.upper_bound);
    }

    #[test]
    fn checkpoint_restore_gives_the_same_recommendation(usage in usage(), mode in mode(), more in usage()) {
        let spec = VerticalAutoscalerSpec::default();
        let state = fed(mode, &usage, 1.0);
        let now = Timestamp::from_second(START + 300 * usage.len() as i64).expect("a valid time");
        let text = serde_json::to_string(&save(&state, now)).expect("serializes");
        let status: VerticalAutoscalerCheckpointStatus = serde_json::from_str(&text).expect("parses");
        let back = restore(&status, &settings(mode), "web-app").expect("restores");
        prop_assert_eq!(&back, &state);
        prop_assert_eq!(run(&spec, mode, &back, usage.len()), run(&spec, mode, &state, usage.len()));
        // and both keep agreeing as new samples arrive
        let (mut a, mut b) = (state, back);
        for (i, (cpu, memory)) in more.iter().enumerate() {
            let at = START + 300 * (usage.len() + i) as i64;
            for s in [&mut a, &mut b] {
                s.add_cpu(at, *cpu, 0.5);
                s.add_memory(at, *memory);
            }
        }
        prop_assert_eq!(a, b);
    }
}

#[test]
fn checkpoint_round_trip_is_exact_in_yaml_too() {
    for mode in [EstimatorMode::Percentile, EstimatorMode::Adaptive] {
        let usage: Vec<(f64, f64)> = (0..3000)
            .map(|i| {
                (
                    0.1 + 0.37 * ((i * 7919) % 101) as f64 / 101.0,
                    2e8 + 1e6 * ((i * 31) % 97) as f64,
                )
            })
            .collect();
        let state = fed(mode, &usage, 1.0);
        let now = Timestamp::from_second(START + 300 * 3000).expect("a valid time");
        let saved = save(&state, now);
        let text = serde_yaml::to_string(&saved).expect("serializes");
        let status: VerticalAutoscalerCheckpointStatus =
            serde_yaml::from_str(&text).expect("parses");
        assert_eq!(status, saved);
        let back = restore(&status, &settings(mode), "web-app").expect("restores");
        assert_eq!(back, state, "{mode:?}");
        assert_eq!(save(&back, now), saved);
    }
}

#[test]
fn compact_state_per_container() {
    let usage: Vec<(f64, f64)> = (0..8640)
        .map(|i| {
            (
                0.01 + 7.0 * ((i * 7919) % 1009) as f64 / 1009.0,
                1e7 + 1e10 * ((i * 31) % 997) as f64 / 997.0,
            )
        })
        .collect();
    for mode in [EstimatorMode::Percentile, EstimatorMode::Adaptive] {
        let bytes = fed(mode, &usage, 1.0).footprint_bytes();
        assert!(bytes <= 8 * 1024, "{mode:?}: {bytes} bytes");
    }
}
