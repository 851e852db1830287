//! The model-choosing estimator (`estimation.mode: Adaptive`).
//!
//! Each resource has a fixed list of candidate estimators: a percentile of either the long
//! histogram (the one the Percentile mode reads) or a short one (a faster half-life, raw samples)
//! plus a margin. Every candidate keeps the limit it would recommend (refreshed every
//! [`REFRESH_SECONDS`]) and a cost that decays with [`COST_HALF_LIFE_SECONDS`]: each sample adds
//! the overrun weight when usage passes the limit and the relative slack `(limit − usage) / limit`
//! when it does not; each refresh adds the change weight times the relative move of the limit.
//! The recommendation follows the cheapest candidate, switching only when another is cheaper by
//! [`SWITCH_MARGIN`]. Everything is a function of the samples, so it is deterministic.

use serde::{Deserialize, Serialize};

use crate::aggregate::{CPU, MEMORY};
use crate::histogram::{BucketLayout, DecayingHistogram};
use crate::settings::Settings;

/// Which histogram a candidate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The Percentile mode's histogram (CPU samples, or memory interval peaks).
    Long,
    /// Raw samples with a short half-life.
    Short,
}

/// One candidate estimator: a percentile of a histogram plus a margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub source: Source,
    pub percentile: f64,
    pub margin: f64,
}

const fn candidate(source: Source, percentile: f64, margin: f64) -> Candidate {
    Candidate {
        source,
        percentile,
        margin,
    }
}

/// The CPU candidates; the first is the Percentile mode's default.
pub const CPU_CANDIDATES: [Candidate; 9] = [
    candidate(Source::Long, 0.90, 0.15),
    candidate(Source::Long, 0.80, 0.15),
    candidate(Source::Long, 0.95, 0.0),
    candidate(Source::Long, 0.70, 0.15),
    candidate(Source::Short, 0.80, 0.0),
    candidate(Source::Short, 0.80, 0.15),
    candidate(Source::Short, 0.90, 0.15),
    candidate(Source::Short, 0.95, 0.15),
    candidate(Source::Short, 0.99, 0.15),
];

/// The memory candidates; the first is the Percentile mode's default.
pub const MEMORY_CANDIDATES: [Candidate; 7] = [
    candidate(Source::Long, 0.90, 0.15),
    candidate(Source::Long, 0.50, 0.15),
    candidate(Source::Long, 0.70, 0.15),
    candidate(Source::Short, 1.0, 0.15),
    candidate(Source::Short, 0.99, 0.15),
    candidate(Source::Short, 1.0, 0.05),
    candidate(Source::Short, 0.99, 0.05),
];

/// Half-life of the short CPU histogram, seconds.
pub const SHORT_CPU_HALF_LIFE_SECONDS: i64 = 2 * 3600;
/// Half-life of the short memory histogram, seconds.
pub const SHORT_MEMORY_HALF_LIFE_SECONDS: i64 = 6 * 3600;
/// How often each candidate's limit is recomputed, seconds.
pub const REFRESH_SECONDS: i64 = 1800;
/// Half-life of the candidates' costs, seconds.
pub const COST_HALF_LIFE_SECONDS: f64 = 2.0 * 86_400.0;
/// Cost of one CPU sample above the limit (a relative slack of 1 costs 1).
pub const CPU_OVERRUN_COST: f64 = 6.0;
/// Cost of one memory sample above the limit.
pub const MEMORY_OVERRUN_COST: f64 = 100.0;
/// Cost of moving a limit, per unit of relative change.
pub const CHANGE_COST: f64 = 2.0;
/// A challenger must cost this fraction less than the chosen candidate to replace it.
pub const SWITCH_MARGIN: f64 = 0.1;

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
    fn charge(&mut self, at: i64, usage: f64, weight: f64, overrun_cost: f64) {
        let elapsed = (at - self.last_sample).max(0) as f64;
        let decay = if self.last_sample == 0 {
            1.0
        } else {
            (-elapsed / COST_HALF_LIFE_SECONDS).exp2()
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

    /// Recomputes the limits when due and picks the cheapest candidate.
    fn refresh(&mut self, at: i64, mut limit_of: impl FnMut(usize) -> f64) {
        if self.last_refresh != 0 && at - self.last_refresh < REFRESH_SECONDS {
            return;
        }
        self.last_refresh = at;
        for (i, (limit, cost)) in self.limits.iter_mut().zip(&mut self.costs).enumerate() {
            let fresh = limit_of(i);
            if *limit > 0.0 && fresh > 0.0 {
                *cost += CHANGE_COST * (fresh - *limit).abs() / *limit;
            }
            *limit = fresh;
        }
        let best = (0..self.costs.len())
            .min_by(|a, b| self.costs[*a].total_cmp(&self.costs[*b]))
            .unwrap_or(0);
        if self.costs[best] < self.costs[self.chosen] * (1.0 - SWITCH_MARGIN) {
            self.chosen = best;
        }
    }
}

/// The short histograms and both resources' candidates of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveState {
    pub(crate) cpu_short: DecayingHistogram,
    pub(crate) memory_short: DecayingHistogram,
    pub(crate) cpu: ModelSet,
    pub(crate) memory: ModelSet,
}

impl AdaptiveState {
    /// No history yet.
    pub fn new(_settings: &Settings) -> AdaptiveState {
        AdaptiveState {
            cpu_short: DecayingHistogram::new(SHORT_CPU_HALF_LIFE_SECONDS),
            memory_short: DecayingHistogram::new(SHORT_MEMORY_HALF_LIFE_SECONDS),
            cpu: ModelSet::new(CPU_CANDIDATES.len()),
            memory: ModelSet::new(MEMORY_CANDIDATES.len()),
        }
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        let set = |m: &ModelSet| (m.limits.capacity() + m.costs.capacity()) * 8;
        self.cpu_short.heap_bytes()
            + self.memory_short.heap_bytes()
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
        self.cpu.charge(at, cores, 1.0, CPU_OVERRUN_COST);
        self.cpu_short.add(&CPU, cores, weight, at);
        let short = &self.cpu_short;
        self.cpu
            .refresh(at, |i| limit(&CPU, &CPU_CANDIDATES[i], long, short));
    }

    /// Charges a memory sample to the candidates, then adds it and refreshes the limits when due.
    pub(crate) fn observe_memory(&mut self, at: i64, bytes: f64, long: &DecayingHistogram) {
        self.memory.charge(at, bytes, 1.0, MEMORY_OVERRUN_COST);
        self.memory_short.add(&MEMORY, bytes, 1.0, at);
        let short = &self.memory_short;
        self.memory
            .refresh(at, |i| limit(&MEMORY, &MEMORY_CANDIDATES[i], long, short));
    }

    /// The CPU candidate followed now.
    pub fn cpu_choice(&self) -> (usize, Candidate) {
        (
            self.cpu.chosen,
            CPU_CANDIDATES[self.cpu.chosen.min(CPU_CANDIDATES.len() - 1)],
        )
    }

    /// The memory candidate followed now.
    pub fn memory_choice(&self) -> (usize, Candidate) {
        let i = self.memory.chosen.min(MEMORY_CANDIDATES.len() - 1);
        (i, MEMORY_CANDIDATES[i])
    }

    /// The chosen CPU candidate's limit from the current histograms (cores).
    pub fn cpu_target(&self, long: &DecayingHistogram) -> f64 {
        limit(&CPU, &self.cpu_choice().1, long, &self.cpu_short)
    }

    /// The chosen memory candidate's limit from the current histograms (bytes).
    pub fn memory_target(&self, long: &DecayingHistogram) -> f64 {
        limit(&MEMORY, &self.memory_choice().1, long, &self.memory_short)
    }

    /// The model sets, CPU then memory (for checkpoints).
    pub fn model_sets(&self) -> (&ModelSet, &ModelSet) {
        (&self.cpu, &self.memory)
    }

    /// The short histograms, CPU then memory (for checkpoints).
    pub fn short_histograms(&self) -> (&DecayingHistogram, &DecayingHistogram) {
        (&self.cpu_short, &self.memory_short)
    }
}

/// What `candidate` recommends from the two histograms.
pub fn limit(
    layout: &BucketLayout,
    candidate: &Candidate,
    long: &DecayingHistogram,
    short: &DecayingHistogram,
) -> f64 {
    let histogram = match candidate.source {
        Source::Long => long,
        Source::Short => short,
    };
    histogram.percentile(layout, candidate.percentile) * (1.0 + candidate.margin)
}
