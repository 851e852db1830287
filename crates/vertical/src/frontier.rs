//! What simple rules and a perfect estimator can reach on replayed series, scored as
//! [`crate::evaluate`] scores a mode: the limits of the slack goal on a data set.
//!
//! Two measures, each per resource, over the samples at least `warmup_seconds` after a series'
//! first one:
//! - [`floor_bound`]: the target `max(floor, usage)` at every sample, a rule that knows the
//!   future. No estimator whose targets are at least `floor` has less slack; a sample with no
//!   usage costs a full unit of slack under any positive target.
//! - [`window_peak`]: the target `max(floor, (1 + margin) × the highest of the previous k
//!   samples)`, a rule that adapts within k samples (the Adaptive mode's window candidates, one
//!   uniform setting for every series).

use crate::evaluate::slack;
use crate::series::{Point, Series};

/// Which usage column a measure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Cores.
    Cpu,
    /// Bytes.
    Memory,
}

impl Usage {
    fn of(self, p: &Point) -> f64 {
        match self {
            Usage::Cpu => p.cpu,
            Usage::Memory => p.memory,
        }
    }
}

/// Sums over the scored samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    pub samples: u64,
    pub slack_sum: f64,
    /// Samples with usage above the target.
    pub over: u64,
    /// Samples with no usage at all.
    pub idle: u64,
}

impl Score {
    /// Mean relative slack.
    pub fn slack(&self) -> f64 {
        self.slack_sum / self.samples.max(1) as f64
    }

    /// Share of samples with usage above the target.
    pub fn over_share(&self) -> f64 {
        self.over as f64 / self.samples.max(1) as f64
    }

    /// Share of samples with no usage.
    pub fn idle_share(&self) -> f64 {
        self.idle as f64 / self.samples.max(1) as f64
    }
}

/// Scores `target(i, usages)` (the target for sample `i`, seeing the usages) on every series.
fn score(
    series: &[Series],
    usage: Usage,
    warmup_seconds: i64,
    target: impl Fn(usize, &[f64]) -> f64,
) -> Score {
    let mut out = Score::default();
    for s in series {
        let Some(first) = s.points.first() else {
            continue;
        };
        let values: Vec<f64> = s.points.iter().map(|p| usage.of(p)).collect();
        let targets = prefix_targets(&values, &target);
        for ((p, u), t) in s.points.iter().zip(&values).zip(targets) {
            if p.at < first.at + warmup_seconds {
                continue;
            }
            out.samples += 1;
            out.slack_sum += slack(t, *u);
            out.over += u64::from(*u > t);
            out.idle += u64::from(*u == 0.0);
        }
    }
    out
}

fn prefix_targets(values: &[f64], target: &impl Fn(usize, &[f64]) -> f64) -> Vec<f64> {
    (0..values.len()).map(|i| target(i, values)).collect()
}

/// The least slack of any estimator whose targets are at least `floor`, with no overrun.
pub fn floor_bound(series: &[Series], usage: Usage, floor: f64, warmup_seconds: i64) -> Score {
    score(series, usage, warmup_seconds, |i, v| v[i].max(floor))
}

/// The highest of the `k` samples before each sample times `1 + margin`, at least `floor`.
pub fn window_peak(
    series: &[Series],
    usage: Usage,
    k: usize,
    margin: f64,
    floor: f64,
    warmup_seconds: i64,
) -> Score {
    let mut out = Score::default();
    for s in series {
        let values: Vec<f64> = s.points.iter().map(|p| usage.of(p)).collect();
        let peaks = previous_peaks(&values, k);
        let one = std::slice::from_ref(s);
        let part = score(one, usage, warmup_seconds, |i, _| {
            (peaks[i] * (1.0 + margin)).max(floor)
        });
        out.samples += part.samples;
        out.slack_sum += part.slack_sum;
        out.over += part.over;
        out.idle += part.idle;
    }
    out
}

/// For each `i`, the highest of `values[i - k .. i]` (0 when there is none), in one pass.
pub fn previous_peaks(values: &[f64], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut candidates = std::collections::VecDeque::new();
    for (i, v) in values.iter().enumerate() {
        while candidates.front().is_some_and(|&f: &usize| f + k < i) {
            candidates.pop_front();
        }
        out.push(candidates.front().map_or(0.0, |&f| values[f]));
        while candidates.back().is_some_and(|&b| values[b] <= *v) {
            candidates.pop_back();
        }
        candidates.push_back(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(cpu: &[f64]) -> Series {
        Series {
            name: "s".into(),
            points: cpu
                .iter()
                .enumerate()
                .map(|(i, c)| Point {
                    at: 300 * i as i64,
                    cpu: *c,
                    memory: 2.0 * c,
                    cores: 1.0,
                })
                .collect(),
        }
    }

    #[test]
    fn previous_peaks_table() {
        let v = [1.0, 3.0, 2.0, 0.0, 0.0, 5.0];
        // (k, peaks of the k samples before each)
        let table: [(usize, [f64; 6]); 3] = [
            (1, [0.0, 1.0, 3.0, 2.0, 0.0, 0.0]),
            (2, [0.0, 1.0, 3.0, 3.0, 2.0, 0.0]),
            (3, [0.0, 1.0, 3.0, 3.0, 3.0, 2.0]),
        ];
        for (k, want) in table {
            assert_eq!(previous_peaks(&v, k), want, "k = {k}");
        }
    }

    #[test]
    fn floor_bound_counts_idle_samples_as_full_slack() {
        let s = [series(&[0.0, 0.5, 0.004, 2.0])];
        let b = floor_bound(&s, Usage::Cpu, 0.01, 0);
        assert_eq!((b.samples, b.over, b.idle), (4, 0, 1));
        assert!((b.slack_sum - (1.0 + 0.6)).abs() < 1e-12, "{b:?}");
        // the warm-up leaves the first two samples out; memory reads its own column
        let b = floor_bound(&s, Usage::Memory, 0.001, 600);
        assert_eq!((b.samples, b.idle), (2, 0));
        assert_eq!(b.slack(), 0.0);
    }

    #[test]
    fn window_peak_scores_overruns_and_slack() {
        let s = [series(&[1.0, 1.0, 2.0, 1.0])];
        let w = window_peak(&s, Usage::Cpu, 1, 0.0, 0.0, 0);
        // targets 0, 1, 1, 2: the first sample and the jump overrun, the fall leaves half
        assert_eq!((w.samples, w.over), (4, 2));
        assert!((w.slack() - 0.5 / 4.0).abs() < 1e-12, "{w:?}");
        let floored = window_peak(&s, Usage::Cpu, 1, 0.0, 4.0, 0);
        assert_eq!(floored.over, 0);
        assert!((floored.slack() - (3.0 + 3.0 + 2.0 + 3.0) / 16.0).abs() < 1e-12);
    }
}
