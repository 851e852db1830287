//! From a container's histograms to target, lower and upper bound per resource.
//!
//! Percentile mode: each value is a percentile of the histogram times `1 + safetyMargin`. The
//! bounds then widen with little history: with confidence `c = min(days of history, samples ÷
//! samples per day)`, the upper bound is multiplied by `1 + 1/c` and the lower bound by
//! `(1 + 0.001/c)⁻²`; the upper bound is cut at the end of the bucket layout, but never below the
//! target. Adaptive mode takes the target from the chosen candidate and keeps the
//! Percentile mode's bounds, widened to hold that target and (upper bound) the last day's peak. Last, each value is raised to the per-container
//! floor (the per-pod minimum split evenly across the pod's containers).

use ballast_api::vertical::EstimatorMode;
use serde::{Deserialize, Serialize};

use crate::aggregate::{CPU, ContainerState, MEMORY};
use crate::histogram::{BucketLayout, DecayingHistogram};
use crate::settings::{ResourceSettings, Settings};

/// One resource's recommendation, in base units (cores or bytes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub target: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Estimate {
    /// Every value raised to at least `floor`.
    pub fn at_least(self, floor: f64) -> Estimate {
        Estimate {
            target: self.target.max(floor),
            lower: self.lower.max(floor),
            upper: self.upper.max(floor),
        }
    }
}

/// Both resources' estimates of one container, with the confidence they were made with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimates {
    /// None: no CPU sample yet.
    pub cpu: Option<Estimate>,
    /// None: no memory sample yet.
    pub memory: Option<Estimate>,
    /// History in days, limited by the sample count (see the module documentation).
    pub confidence: f64,
}

/// How much history backs the bounds: `min(days, samples ÷ samples per day)`.
pub fn confidence(state: &ContainerState, settings: &Settings) -> f64 {
    let (days, samples) = state.history();
    days.min(samples as f64 / settings.samples_per_day.max(1.0))
}

/// Upper bound multiplier `1 + 1/c` (capped so a cold start stays finite).
pub fn upper_multiplier(confidence: f64) -> f64 {
    (1.0 + 1.0 / confidence.max(1e-3)).min(1e3)
}

/// Lower bound multiplier `(1 + 0.001/c)⁻²`.
pub fn lower_multiplier(confidence: f64) -> f64 {
    (1.0 + 0.001 / confidence.max(1e-9)).powi(-2)
}

fn percentile_estimate(
    layout: &BucketLayout,
    histogram: &DecayingHistogram,
    r: &ResourceSettings,
    c: f64,
) -> Option<Estimate> {
    if histogram.is_empty() {
        return None;
    }
    let margin = 1.0 + r.safety_margin;
    let cap = layout.max_value();
    let target = histogram.percentile(layout, r.target_percentile) * margin;
    Some(Estimate {
        target,
        lower: histogram.percentile(layout, r.lower_percentile) * margin * lower_multiplier(c),
        // Cut at the layout's end (a cold start stays finite), but never below the target: usage
        // near the end, or a large margin, puts the target past it.
        upper: (histogram.percentile(layout, r.upper_percentile) * margin * upper_multiplier(c))
            .min(cap)
            .max(target),
    })
}

/// The Percentile mode's bounds, widened to hold another target and, above, the last day's peak
/// plus the resource's margin (a request that covers the day's peak is not worth an eviction).
fn retarget(e: Estimate, target: f64, day_peak: f64) -> Estimate {
    Estimate {
        target,
        lower: target.min(e.lower),
        upper: target.max(e.upper).max(day_peak),
    }
}

/// The estimates of one container before floors and policy.
pub fn estimate(state: &ContainerState, settings: &Settings) -> Estimates {
    let c = confidence(state, settings);
    let mut cpu = percentile_estimate(&CPU, &state.cpu, &settings.cpu, c);
    let mut memory = percentile_estimate(&MEMORY, &state.memory, &settings.memory, c);
    if settings.mode == EstimatorMode::Adaptive
        && let Some(a) = state.adaptive()
    {
        let (cpu_day, memory_day) = a.day_peaks();
        let cpu_peak = cpu_day * (1.0 + settings.cpu.safety_margin);
        let memory_peak = memory_day * (1.0 + settings.memory.safety_margin);
        cpu = cpu.map(|e| retarget(e, a.cpu_target(&state.cpu).max(0.0), cpu_peak));
        memory = memory.map(|e| retarget(e, a.memory_target(&state.memory).max(0.0), memory_peak));
    }
    Estimates {
        cpu,
        memory,
        confidence: c,
    }
}

/// Per-container floors: the per-pod minimums split across `containers_in_pod` containers.
pub fn floors(settings: &Settings, containers_in_pod: usize) -> (f64, f64) {
    let n = containers_in_pod.max(1) as f64;
    (settings.pod_min_cpu / n, settings.pod_min_memory / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::DAY_SECONDS;

    fn steady(days: i64, cpu: f64, memory: f64) -> ContainerState {
        let mut s = ContainerState::new(&Settings::default());
        for minute in 0..days * 1440 {
            s.add_cpu(minute * 60, cpu, 1.0);
            s.add_memory(minute * 60, memory);
        }
        s
    }

    #[test]
    fn confidence_table() {
        let settings = Settings::default();
        let empty = ContainerState::new(&settings);
        assert_eq!(confidence(&empty, &settings), 0.0);
        let s = steady(2, 0.5, 1e9);
        let c = confidence(&s, &settings);
        assert!((c - (2.0 - 1.0 / 1440.0)).abs() < 1e-9, "{c}");
        assert_eq!(upper_multiplier(1.0), 2.0);
        assert_eq!(upper_multiplier(0.0), 1e3);
        assert!((lower_multiplier(1.0) - 1.0 / 1.001f64.powi(2)).abs() < 1e-15);
    }

    #[test]
    fn steady_usage_gives_the_bucket_end_plus_margin() {
        let s = steady(8, 0.5, 1e9);
        let e = estimate(&s, &Settings::default());
        let cpu = e.cpu.unwrap_or(Estimate {
            target: 0.0,
            lower: 0.0,
            upper: 0.0,
        });
        let bucket_end = CPU.bucket_start(CPU.bucket_of(0.5) + 1);
        assert!((cpu.target - bucket_end * 1.15).abs() < 1e-12);
        assert!(cpu.upper > cpu.target && cpu.upper < cpu.target * (1.0 + 1.0 / 7.9));
        assert!(cpu.lower < cpu.target && cpu.lower > cpu.target * 0.999);
        let memory = e.memory.unwrap_or(Estimate {
            target: 0.0,
            lower: 0.0,
            upper: 0.0,
        });
        assert!(memory.target > 1.15e9 && memory.target < 1.15e9 * 1.05);
    }

    /// Usage near the top of the memory layout (1e12 bytes), or a large safety margin, puts the
    /// target above the layout's end, where the upper bound is cut: the upper bound must still
    /// hold the target (else every pod is "outside the bounds" and evicted at each pass).
    #[test]
    fn the_upper_bound_never_falls_below_the_target() {
        let mut large_margin = Settings::default();
        large_margin.memory.safety_margin = 2.47;
        // (memory usage in bytes, settings)
        let table = [
            (950e9, Settings::default()),
            (0.999e12, Settings::default()),
            (260e9, large_margin),
        ];
        for (usage, settings) in table {
            let e = estimate(&steady(2, 0.5, usage), &settings);
            let Some(m) = e.memory else {
                panic!("no memory estimate for {usage}");
            };
            assert!(
                m.lower <= m.target && m.target <= m.upper,
                "usage {usage}: {m:?}"
            );
        }
    }

    #[test]
    fn retarget_widens_the_bounds() {
        let e = Estimate {
            target: 1.0,
            lower: 0.5,
            upper: 2.0,
        };
        // (target, day peak, target, lower, upper)
        let table = [
            (1.5, 0.0, 1.5, 0.5, 2.0),
            (0.3, 0.0, 0.3, 0.3, 2.0),
            (3.0, 0.0, 3.0, 0.5, 3.0),
            (1.0, 2.5, 1.0, 0.5, 2.5),
            (3.0, 2.5, 3.0, 0.5, 3.0),
        ];
        for (target, peak, t, l, u) in table {
            let want = Estimate {
                target: t,
                lower: l,
                upper: u,
            };
            assert_eq!(
                retarget(e, target, peak),
                want,
                "target {target} peak {peak}"
            );
        }
    }

    #[test]
    fn floors_split_across_containers() {
        let s = Settings::default();
        assert_eq!(floors(&s, 1), (0.025, 250.0 * 1024.0 * 1024.0));
        assert_eq!(floors(&s, 2), (0.0125, 125.0 * 1024.0 * 1024.0));
        assert_eq!(floors(&s, 0), floors(&s, 1));
        let e = Estimate {
            target: 0.01,
            lower: 0.001,
            upper: 0.05,
        }
        .at_least(0.0125);
        assert_eq!(
            e,
            Estimate {
                target: 0.0125,
                lower: 0.0125,
                upper: 0.05
            }
        );
    }

    #[test]
    fn empty_history_gives_nothing() {
        let e = estimate(
            &ContainerState::new(&Settings::default()),
            &Settings::default(),
        );
        assert_eq!((e.cpu, e.memory), (None, None));
        let _ = DAY_SECONDS;
    }
}
