//! The model-choosing estimator (`estimation.mode: Adaptive`).
//!
//! Each resource has a fixed list of candidate estimators: a percentile of either the long
//! histogram (the one the Percentile mode reads) or a short one (a faster half-life, raw samples)
//! plus a margin, or the highest usage of the last few time windows (see [`crate::window`]) plus
//! a margin. Every candidate keeps the limit it would recommend (histogram candidates refreshed
//! every [`REFRESH_SECONDS`], window candidates at every sample) and a cost that decays with
//! [`Tuning::cost_half_life_seconds`]: each sample adds the overrun weight when usage passes the
//! limit and the relative slack `(limit − usage) / limit` when it does not; each move of a limit
//! adds the change weight times its relative size. Every [`REFRESH_SECONDS`] the recommendation
//! follows the cheapest candidate, switching only when another is cheaper by
//! [`Tuning::switch_margin`]. Everything is a function of the samples, so it is deterministic.

use serde::{Deserialize, Serialize};

use crate::aggregate::{CPU, MEMORY};
use crate::histogram::{BucketLayout, DecayingHistogram};
use crate::settings::Settings;
use crate::window::WindowPeaks;

/// Which signal a candidate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The Percentile mode's histogram (CPU samples, or memory interval peaks).
    Long,
    /// Raw samples with a short half-life.
    Short,
    /// The highest usage of the open window and this many closed windows before it (the
    /// candidate's percentile is not used).
    Window(u16),
}

/// One candidate estimator: a percentile of a histogram (or a window peak) plus a margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub source: Source,
    pub percentile: f64,
    pub margin: f64,
}

impl Candidate {
    /// The candidate in words, e.g. "P90 of the long histogram +15%" or "peak of the last 1h15m
    /// +10%".
    pub fn describe(&self) -> String {
        let margin = (self.margin * 100.0).round();
        match self.source {
            Source::Window(count) => {
                let minutes = (i64::from(count) + 1) * crate::window::WINDOW_SECONDS / 60;
                let (h, m) = (minutes / 60, minutes % 60);
                let span = match (h, m) {
                    (0, m) => format!("{m}m"),
                    (h, 0) => format!("{h}h"),
                    (h, m) => format!("{h}h{m}m"),
                };
                format!("peak of the last {span} +{margin}%")
            }
            Source::Long | Source::Short => format!(
                "P{} of the {} histogram +{margin}%",
                (self.percentile * 100.0).round(),
                if self.source == Source::Long {
                    "long"
                } else {
                    "short"
                }
            ),
        }
    }
}

const fn candidate(source: Source, percentile: f64, margin: f64) -> Candidate {
    Candidate {
        source,
        percentile,
        margin,
    }
}

const fn window(windows: u16, margin: f64) -> Candidate {
    candidate(Source::Window(windows), 1.0, margin)
}

/// The CPU candidates; the first is the Percentile mode's default.
pub const CPU_CANDIDATES: [Candidate; 24] = [
    candidate(Source::Long, 0.90, 0.15),
    candidate(Source::Long, 0.80, 0.15),
    candidate(Source::Long, 0.95, 0.0),
    candidate(Source::Long, 0.70, 0.15),
    candidate(Source::Short, 0.80, 0.0),
    candidate(Source::Short, 0.90, 0.15),
    window(1, 0.1),
    window(1, 0.25),
    window(1, 0.5),
    window(4, 0.1),
    window(4, 0.25),
    window(4, 0.5),
    window(8, 0.1),
    window(8, 0.25),
    window(8, 0.5),
    window(16, 0.1),
    window(16, 0.25),
    window(16, 0.5),
    window(48, 0.1),
    window(48, 0.25),
    window(48, 0.5),
    window(96, 0.1),
    window(96, 0.25),
    window(96, 0.5),
];

/// The memory candidates; the first is the Percentile mode's default.
pub const MEMORY_CANDIDATES: [Candidate; 19] = [
    candidate(Source::Long, 0.90, 0.15),
    candidate(Source::Long, 0.50, 0.15),
    candidate(Source::Long, 0.70, 0.15),
    candidate(Source::Short, 1.0, 0.15),
    window(4, 0.1),
    window(4, 0.25),
    window(4, 0.5),
    window(8, 0.1),
    window(8, 0.25),
    window(8, 0.5),
    window(16, 0.1),
    window(16, 0.25),
    window(16, 0.5),
    window(48, 0.1),
    window(48, 0.25),
    window(48, 0.5),
    window(96, 0.1),
    window(96, 0.25),
    window(96, 0.5),
];

/// Half-life of the short CPU histogram, seconds.
pub const SHORT_CPU_HALF_LIFE_SECONDS: i64 = 2 * 3600;
/// Half-life of the short memory histogram, seconds.
pub const SHORT_MEMORY_HALF_LIFE_SECONDS: i64 = 6 * 3600;
/// How often the histogram candidates' limits are recomputed and the cheapest is chosen, seconds.
pub const REFRESH_SECONDS: i64 = 1800;
/// Default half-life of the candidates' costs, seconds.
pub const COST_HALF_LIFE_SECONDS: f64 = 2.0 * 86_400.0;
/// Default cost of one CPU sample above the limit (a relative slack of 1 costs 1).
pub const CPU_OVERRUN_COST: f64 = 6.0;
/// Default cost of one memory sample above the limit.
pub const MEMORY_OVERRUN_COST: f64 = 3000.0;
/// Default cost of moving a limit, per unit of relative change.
pub const CHANGE_COST: f64 = 5.0;
/// Default fraction a challenger must cost less than the chosen candidate to replace it.
pub const SWITCH_MARGIN: f64 = 0.1;

/// The weights of the candidates' costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tuning {
    /// Cost of one CPU sample above the limit.
    pub cpu_overrun_cost: f64,
    /// Cost of one memory sample above the limit.
    pub memory_overrun_cost: f64,
    /// Cost of moving a limit, per unit of relative change.
    pub change_cost: f64,
    /// Fraction a challenger must cost less than the chosen candidate to replace it.
    pub switch_margin: f64,
    /// Half-life of the costs, seconds.
    pub cost_half_life_seconds: f64,
}

impl Default for Tuning {
    /// The constants of this module.
    fn default() -> Tuning {
        Tuning {
            cpu_overrun_cost: CPU_OVERRUN_COST,
            memory_overrun_cost: MEMORY_OVERRUN_COST,
            change_cost: CHANGE_COST,
            switch_margin: SWITCH_MARGIN,
            cost_half_life_seconds: COST_HALF_LIFE_SECONDS,
        }
    }
}

/// Limits and costs of one resource's candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSet {
    /// Current limit of each candidate (0: not computed yet).
    pub limits: Vec<f64>,
    /// Decayed cost of each candidate.
    pub costs: Vec<f64>,
    /// Index of the candidate followed.
    pub chosen: usize,
    /// Unix second of the last sample that updated the costs (0: none).
    pub last_sample: i64,
    /// Unix second of the last refresh of the limits (0: none).
    pub last_refresh: i64,
}

impl ModelSet {
    fn new(count: usize) -> ModelSet {
        ModelSet {
            limits: vec![0.0; count],
            costs: vec![0.0; count],
            chosen: 0,
            last_sample: 0,
            last_refresh: 0,
        }
    }

    /// Charges `usage` (weighing `weight`) at `at` to every candidate with a limit.
    fn charge(&mut self, at: i64, usage: f64, weight: f64, overrun_cost: f64, tuning: &Tuning) {
        let elapsed = (at - self.last_sample).max(0) as f64;
        let decay = if self.last_sample == 0 {
            1.0
        } else {
            (-elapsed / tuning.cost_half_life_seconds.max(1.0)).exp2()
        };
        self.last_sample = at;
        for (limit, cost) in self.limits.iter().zip(self.costs.iter_mut()) {
            *cost *= decay;
            if *limit <= 0.0 {
                continue;
            }
            *cost += weight
                * if usage > *limit {
                    overrun_cost
                } else {
                    (limit - usage) / limit
                };
        }
    }

    /// Sets candidate `i`'s limit to `fresh`, charging the change weight for the move.
    fn move_limit(&mut self, i: usize, fresh: f64, change_cost: f64) {
        let limit = self.limits[i];
        if limit > 0.0 && fresh > 0.0 {
            self.costs[i] += change_cost * (fresh - limit).abs() / limit;
        }
        self.limits[i] = fresh;
    }

    /// Sets every window candidate's limit from `windows` (one pass over the closed windows when
    /// the candidates come in ascending window counts, as the lists do).
    fn follow_windows(&mut self, candidates: &[Candidate], windows: &WindowPeaks, tuning: &Tuning) {
        let closed = windows.closed_peaks();
        let (mut scanned, mut running) = (0, 0.0f64);
        for (i, c) in candidates.iter().enumerate() {
            let Source::Window(count) = c.source else {
                continue;
            };
            let count = usize::from(count).min(closed.len());
            if count < scanned {
                (scanned, running) = (0, 0.0);
            }
            running = closed[scanned..count]
                .iter()
                .fold(running, |a, b| a.max(*b));
            scanned = count;
            let fresh = running.max(windows.open_peak()) * (1.0 + c.margin);
            if fresh != self.limits[i] {
                self.move_limit(i, fresh, tuning.change_cost);
            }
        }
    }

    /// When due: recomputes the histogram candidates' limits and picks the cheapest candidate.
    fn refresh(
        &mut self,
        at: i64,
        candidates: &[Candidate],
        tuning: &Tuning,
        mut limit_of: impl FnMut(&Candidate) -> f64,
    ) {
        if self.last_refresh != 0 && at - self.last_refresh < REFRESH_SECONDS {
            return;
        }
        self.last_refresh = at;
        for (i, c) in candidates.iter().enumerate() {
            if !matches!(c.source, Source::Window(_)) {
                self.move_limit(i, limit_of(c), tuning.change_cost);
            }
        }
        let best = (0..self.costs.len())
            .min_by(|a, b| self.costs[*a].total_cmp(&self.costs[*b]))
            .unwrap_or(0);
        if self.costs[best] < self.costs[self.chosen] * (1.0 - tuning.switch_margin) {
            self.chosen = best;
        }
    }
}

/// The short histograms, window peaks and both resources' candidates of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveState {
    pub(crate) cpu_short: DecayingHistogram,
    pub(crate) memory_short: DecayingHistogram,
    pub(crate) cpu_windows: WindowPeaks,
    pub(crate) memory_windows: WindowPeaks,
    pub(crate) cpu: ModelSet,
    pub(crate) memory: ModelSet,
    pub(crate) tuning: Tuning,
}

impl AdaptiveState {
    /// No history yet, with the cost weights of `settings`.
    pub fn new(settings: &Settings) -> AdaptiveState {
        AdaptiveState {
            cpu_short: DecayingHistogram::new(SHORT_CPU_HALF_LIFE_SECONDS),
            memory_short: DecayingHistogram::new(SHORT_MEMORY_HALF_LIFE_SECONDS),
            cpu_windows: WindowPeaks::new(),
            memory_windows: WindowPeaks::new(),
            cpu: ModelSet::new(CPU_CANDIDATES.len()),
            memory: ModelSet::new(MEMORY_CANDIDATES.len()),
            tuning: settings.adaptive,
        }
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        let set = |m: &ModelSet| (m.limits.capacity() + m.costs.capacity()) * 8;
        self.cpu_short.heap_bytes()
            + self.memory_short.heap_bytes()
            + self.cpu_windows.heap_bytes()
            + self.memory_windows.heap_bytes()
            + set(&self.cpu)
            + set(&self.memory)
    }

    /// Charges a CPU sample to the candidates, then adds it and refreshes the limits when due.
    pub(crate) fn observe_cpu(
        &mut self,
        at: i64,
        cores: f64,
        weight: f64,
        long: &DecayingHistogram,
    ) {
        let t = self.tuning;
        self.cpu.charge(at, cores, 1.0, t.cpu_overrun_cost, &t);
        self.cpu_short.add(&CPU, cores, weight, at);
        self.cpu_windows.add(at, cores);
        self.cpu
            .follow_windows(&CPU_CANDIDATES, &self.cpu_windows, &t);
        let short = &self.cpu_short;
        self.cpu
            .refresh(at, &CPU_CANDIDATES, &t, |c| limit(&CPU, c, long, short));
    }

    /// Charges a memory sample to the candidates, then adds it and refreshes the limits when due.
    pub(crate) fn observe_memory(&mut self, at: i64, bytes: f64, long: &DecayingHistogram) {
        let t = self.tuning;
        self.memory
            .charge(at, bytes, 1.0, t.memory_overrun_cost, &t);
        self.memory_short.add(&MEMORY, bytes, 1.0, at);
        self.memory_windows.add(at, bytes);
        self.memory
            .follow_windows(&MEMORY_CANDIDATES, &self.memory_windows, &t);
        let short = &self.memory_short;
        self.memory.refresh(at, &MEMORY_CANDIDATES, &t, |c| {
            limit(&MEMORY, c, long, short)
        });
    }

    /// The CPU candidate followed now.
    pub fn cpu_choice(&self) -> (usize, Candidate) {
        let i = self.cpu.chosen.min(CPU_CANDIDATES.len() - 1);
        (i, CPU_CANDIDATES[i])
    }

    /// The memory candidate followed now.
    pub fn memory_choice(&self) -> (usize, Candidate) {
        let i = self.memory.chosen.min(MEMORY_CANDIDATES.len() - 1);
        (i, MEMORY_CANDIDATES[i])
    }

    /// The chosen CPU candidate's limit from the current histograms and windows (cores).
    pub fn cpu_target(&self, long: &DecayingHistogram) -> f64 {
        let c = self.cpu_choice().1;
        window_limit(&c, &self.cpu_windows)
            .unwrap_or_else(|| limit(&CPU, &c, long, &self.cpu_short))
    }

    /// The chosen memory candidate's limit from the current histograms and windows (bytes).
    pub fn memory_target(&self, long: &DecayingHistogram) -> f64 {
        let c = self.memory_choice().1;
        window_limit(&c, &self.memory_windows)
            .unwrap_or_else(|| limit(&MEMORY, &c, long, &self.memory_short))
    }

    /// The highest usage of the last day (open window and every closed one), CPU then memory.
    pub fn day_peaks(&self) -> (f64, f64) {
        (
            self.cpu_windows.max(crate::window::WINDOW_COUNT),
            self.memory_windows.max(crate::window::WINDOW_COUNT),
        )
    }

    /// The model sets, CPU then memory (for checkpoints).
    pub fn model_sets(&self) -> (&ModelSet, &ModelSet) {
        (&self.cpu, &self.memory)
    }

    /// The short histograms, CPU then memory (for checkpoints).
    pub fn short_histograms(&self) -> (&DecayingHistogram, &DecayingHistogram) {
        (&self.cpu_short, &self.memory_short)
    }

    /// The window peaks, CPU then memory (for checkpoints).
    pub fn window_peaks(&self) -> (&WindowPeaks, &WindowPeaks) {
        (&self.cpu_windows, &self.memory_windows)
    }
}

/// What a window candidate recommends from `windows`; None for a histogram candidate.
pub fn window_limit(candidate: &Candidate, windows: &WindowPeaks) -> Option<f64> {
    match candidate.source {
        Source::Window(count) => Some(windows.max(usize::from(count)) * (1.0 + candidate.margin)),
        Source::Long | Source::Short => None,
    }
}

/// What a histogram `candidate` recommends from the two histograms (a window candidate reads
/// the short histogram's maximum here: use [`window_limit`] for it).
pub fn limit(
    layout: &BucketLayout,
    candidate: &Candidate,
    long: &DecayingHistogram,
    short: &DecayingHistogram,
) -> f64 {
    let histogram = match candidate.source {
        Source::Long => long,
        Source::Short | Source::Window(_) => short,
    };
    histogram.percentile(layout, candidate.percentile) * (1.0 + candidate.margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::ContainerState;
    use crate::window::WINDOW_SECONDS;
    use ballast_api::vertical::EstimatorMode;

    const T: i64 = 1_700_000_000 / WINDOW_SECONDS * WINDOW_SECONDS;

    #[test]
    fn candidates_in_words() {
        let table = [
            (window(4, 0.1), "peak of the last 1h15m +10%"),
            (window(3, 0.25), "peak of the last 1h +25%"),
            (window(0, 0.5), "peak of the last 15m +50%"),
            (CPU_CANDIDATES[0], "P90 of the long histogram +15%"),
            (
                candidate(Source::Short, 0.99, 0.0),
                "P99 of the short histogram +0%",
            ),
        ];
        for (c, words) in table {
            assert_eq!(c.describe(), words);
        }
    }

    #[test]
    fn window_limit_table() {
        let mut w = WindowPeaks::new();
        for (i, v) in [0.1, 0.4, 0.2].into_iter().enumerate() {
            w.add(T + WINDOW_SECONDS * i as i64, v);
        }
        let table = [
            (window(4, 0.1), Some(0.4 * 1.1)),
            (window(1, 0.5), Some(0.4 * 1.5)),
            (window(0, 0.25), Some(0.2 * 1.25)),
            (candidate(Source::Long, 0.9, 0.15), None),
            (candidate(Source::Short, 0.9, 0.15), None),
        ];
        for (c, want) in table {
            assert_eq!(window_limit(&c, &w), want, "{c:?}");
        }
    }

    #[test]
    fn steady_usage_follows_a_tight_window() {
        let settings = Settings {
            mode: EstimatorMode::Adaptive,
            ..Settings::default()
        };
        let mut s = ContainerState::new(&settings);
        for i in 0..3 * 288 {
            let at = T + 300 * i;
            s.add_cpu(at, 0.2 + 0.01 * (i % 3) as f64, 0.0);
            s.add_memory(at, 1e9 + 1e6 * (i % 5) as f64);
        }
        let Some(a) = s.adaptive() else {
            panic!("an Adaptive state")
        };
        assert!(matches!(a.cpu_choice().1.source, Source::Window(_)));
        assert!(matches!(a.memory_choice().1.source, Source::Window(_)));
        let cpu = a.cpu_target(&s.cpu);
        assert!((0.22 * 1.1..0.22 * 1.3).contains(&cpu), "{cpu}");
        let memory = a.memory_target(&s.memory);
        assert!((1.004e9 * 1.1..1.004e9 * 1.3).contains(&memory), "{memory}");
        // the VPA default reads the long histogram: a bucket end plus 15%
        assert!(limit(&CPU, &CPU_CANDIDATES[0], &s.cpu, &a.cpu_short) > cpu);
    }
}
