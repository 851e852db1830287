use super::*;
use crate::apply::fallback::ResizeState;
use proptest::prelude::*;

const NOW: i64 = 1_000_000;
const HOUR: i64 = 3600;

fn bounds(target: f64) -> Bounds {
    Bounds {
        target,
        lower: target * 0.8,
        upper: target * 1.5,
    }
}

fn pod(name: &str, age: i64, cpu_request: f64, cpu_target: f64) -> PodView {
    PodView {
        name: name.into(),
        started: NOW - age,
        containers: vec![ContainerView {
            name: "app".into(),
            resources: vec![(Resource::Cpu, Some(cpu_request), Some(bounds(cpu_target)))],
            last_oom: None,
        }],
    }
}

fn limits(min_replicas: i32, pdb_allowed: Option<u32>) -> Limits {
    Limits {
        min_replicas,
        tolerance: DEFAULT_TOLERANCE,
        pdb_allowed,
        requirements: vec![],
    }
}

fn updated(choices: &[Choice]) -> Vec<&str> {
    choices
        .iter()
        .filter(|c| c.update)
        .map(|c| c.pod.as_str())
        .collect()
}

#[test]
fn table() {
    // (pods, limits, pods updated in order)
    let cases: Vec<(Vec<PodView>, Limits, Vec<&str>)> = vec![
        // outside bounds: updated even when young; at most 50% of 2 = 1
        (
            vec![pod("a", HOUR, 0.1, 0.5), pod("b", HOUR, 0.5, 0.5)],
            limits(2, None),
            vec!["a"],
        ),
        // within bounds and young: left alone
        (
            vec![pod("a", HOUR, 0.45, 0.5), pod("b", HOUR, 0.5, 0.5)],
            limits(2, None),
            vec![],
        ),
        // within bounds, 12% off, older than 12 h: updated
        (
            vec![pod("a", 13 * HOUR, 0.44, 0.5), pod("b", HOUR, 0.5, 0.5)],
            limits(2, None),
            vec!["a"],
        ),
        // below minReplicas: nothing
        (vec![pod("a", HOUR, 0.1, 0.5)], limits(2, None), vec![]),
        // minReplicas 1 allows a single pod
        (vec![pod("a", HOUR, 0.1, 0.5)], limits(1, None), vec!["a"]),
        // 4 pods out of bounds, tolerance 50% → 2, the farthest first
        (
            vec![
                pod("a", HOUR, 0.2, 0.5),
                pod("b", HOUR, 0.1, 0.5),
                pod("c", HOUR, 0.3, 0.5),
                pod("d", HOUR, 0.05, 0.5),
            ],
            limits(2, None),
            vec!["d", "b"],
        ),
        // the PDB allows one
        (
            vec![
                pod("a", HOUR, 0.2, 0.5),
                pod("b", HOUR, 0.1, 0.5),
                pod("c", HOUR, 0.3, 0.5),
                pod("d", HOUR, 0.05, 0.5),
            ],
            limits(2, Some(1)),
            vec!["d"],
        ),
        // the PDB allows none
        (
            vec![pod("a", HOUR, 0.1, 0.5), pod("b", HOUR, 0.1, 0.5)],
            limits(2, Some(0)),
            vec![],
        ),
    ];
    for (i, (pods, limits, want)) in cases.iter().enumerate() {
        let got = choose(pods, limits, NOW);
        assert_eq!(updated(&got), *want, "case {i}: {got:?}");
        assert_eq!(got.len(), pods.len(), "case {i}: every pod has a reason");
    }
}

#[test]
fn an_early_oom_kill_qualifies_and_requirements_veto() {
    let mut p = pod("a", HOUR, 0.5, 0.5);
    p.containers[0]
        .resources
        .push((Resource::Memory, Some(100e6), Some(bounds(110e6))));
    p.containers[0].last_oom = Some((NOW - 100, NOW - 300));
    let single = limits(1, None);
    assert_eq!(
        updated(&choose(std::slice::from_ref(&p), &single, NOW)),
        ["a"]
    );
    // an OOM kill an hour into the container's life does not count
    p.containers[0].last_oom = Some((NOW - 100, NOW - HOUR));
    assert!(updated(&choose(std::slice::from_ref(&p), &single, NOW)).is_empty());

    // evictionRequirements: only evict when the CPU target is above the request
    let down = pod("b", HOUR, 1.0, 0.5);
    let higher_only = Limits {
        requirements: vec![EvictionRequirement {
            resources: vec!["cpu".into()],
            change_requirement: ChangeRequirement::TargetHigherThanRequests,
        }],
        ..limits(1, None)
    };
    assert!(updated(&choose(&[down], &higher_only, NOW)).is_empty());
    let up = pod("c", HOUR, 0.1, 0.5);
    assert_eq!(updated(&choose(&[up], &higher_only, NOW)), ["c"]);
}

#[test]
fn resizes_under_way_wait_and_overdue_ones_go_first() {
    // a: far out of bounds but its resize is under way; b: within bounds but its resize is
    // overdue; c: out of bounds.
    let pods = [
        pod("a", HOUR, 0.05, 0.5),
        pod("b", HOUR, 0.5, 0.5),
        pod("c", HOUR, 0.1, 0.5),
        pod("d", HOUR, 0.5, 0.5),
    ];
    let resizes = BTreeMap::from([
        (
            "a".to_owned(),
            ResizeState::Waiting("resize Deferred for 10s".into()),
        ),
        (
            "b".to_owned(),
            ResizeState::Overdue("resize Deferred for 400s".into()),
        ),
    ]);
    let got = choose_with(&pods, &resizes, &limits(2, None), NOW);
    assert_eq!(updated(&got), ["b", "c"], "{got:?}");
    let a = got.iter().find(|c| c.pod == "a");
    assert!(
        a.is_some_and(|c| c.reason.starts_with("in-place resize under way")),
        "{a:?}"
    );
    // the PDB still bounds the pass, overdue pods first
    let got = choose_with(&pods, &resizes, &limits(2, Some(1)), NOW);
    assert_eq!(updated(&got), ["b"], "{got:?}");
    // below minReplicas nothing moves, overdue or not
    let got = choose_with(&pods[..1], &resizes, &limits(2, None), NOW);
    assert!(updated(&got).is_empty(), "{got:?}");
}

fn arbitrary_pod() -> impl Strategy<Value = PodView> {
    ("[a-z]{3}", 0i64..(48 * HOUR), 0.01f64..4.0, 0.01f64..4.0)
        .prop_map(|(name, age, request, target)| pod(&name, age, request, target))
}

proptest! {
    #[test]
    fn never_below_min_replicas_nor_past_the_pdb_nor_a_young_pod_in_bounds(
        pods in proptest::collection::vec(arbitrary_pod(), 0..12),
        min_replicas in 1i32..6,
        pdb in proptest::option::of(0u32..4),
    ) {
        let l = limits(min_replicas, pdb);
        let got = choose(&pods, &l, NOW);
        let n = updated(&got).len();
        if (pods.len() as i32) < min_replicas {
            prop_assert_eq!(n, 0);
        }
        if let Some(p) = pdb {
            prop_assert!(n <= p as usize);
        }
        prop_assert!(n <= ((pods.len() as f64 * DEFAULT_TOLERANCE).floor() as usize).max(1));
        for c in got.iter().filter(|c| c.update) {
            let Some(p) = pods.iter().find(|p| p.name == c.pod) else { continue };
            let (_, request, b) = p.containers[0].resources[0];
            let (request, b) = (request.unwrap_or(0.0), b.unwrap_or(bounds(0.0)));
            let young = NOW - p.started < MIN_AGE_SECONDS;
            prop_assert!(!(young && request >= b.lower && request <= b.upper), "{c:?}");
        }
    }
}

proptest! {
    #[test]
    fn resizes_under_way_are_never_updated_and_the_bounds_hold(
        pods in proptest::collection::vec(arbitrary_pod(), 0..12),
        states in proptest::collection::vec(0u8..3, 12),
        min_replicas in 1i32..6,
        pdb in proptest::option::of(0u32..4),
    ) {
        let resizes: BTreeMap<String, ResizeState> = pods
            .iter()
            .zip(&states)
            .map(|(p, s)| {
                let state = match s {
                    0 => ResizeState::Idle,
                    1 => ResizeState::Waiting("under way".into()),
                    _ => ResizeState::Overdue("overdue".into()),
                };
                (p.name.clone(), state)
            })
            .collect();
        let l = limits(min_replicas, pdb);
        let got = choose_with(&pods, &resizes, &l, NOW);
        let n = updated(&got).len();
        if (pods.len() as i32) < min_replicas {
            prop_assert_eq!(n, 0);
        }
        if let Some(p) = pdb {
            prop_assert!(n <= p as usize);
        }
        prop_assert!(n <= ((pods.len() as f64 * DEFAULT_TOLERANCE).floor() as usize).max(1));
        for c in got.iter().filter(|c| c.update) {
            prop_assert!(!matches!(resizes.get(&c.pod), Some(ResizeState::Waiting(_))), "{c:?}");
        }
    }
}
