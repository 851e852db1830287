//! The usage state of one tracked container: a CPU histogram of samples, a memory histogram of
//! per-interval peaks, the current interval's peak, and how much history it has seen.
//!
//! CPU samples weigh the container's CPU request (at least [`MIN_CPU_SAMPLE_WEIGHT`] cores), so a
//! container's usage counts in proportion to what it asked for. Memory keeps one sample per
//! interval (24 h by default): the interval's peak, weight 1, placed at the interval's start; a
//! higher value in the same interval replaces it. An OOM kill adds a memory sample of
//! `max(used × 1.2, used + 100 MiB)` where `used` is the larger of the request and the peak.

use serde::{Deserialize, Serialize};

use crate::adaptive::AdaptiveState;
use crate::histogram::{BucketLayout, DecayingHistogram};
use crate::settings::{DAY_SECONDS, MIB, Settings};

/// Smallest weight of a CPU sample, cores (a container with no request still counts).
pub const MIN_CPU_SAMPLE_WEIGHT: f64 = 0.1;
/// Memory added above the used memory after an OOM kill, bytes (or 20%, whichever is larger).
pub const OOM_MIN_BUMP_BYTES: f64 = 100.0 * MIB;
/// Factor applied to the used memory after an OOM kill.
pub const OOM_BUMP_RATIO: f64 = 1.2;

/// Usage history of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    pub(crate) cpu: DecayingHistogram,
    pub(crate) memory: DecayingHistogram,
    /// Peak of the current memory interval, bytes (0: none yet).
    pub(crate) memory_peak: f64,
    /// Unix second the current memory interval ends (0: no interval yet).
    pub(crate) memory_window_end: i64,
    pub(crate) memory_interval: i64,
    /// Unix seconds of the first and the last CPU sample (0: none).
    pub(crate) first_sample: i64,
    pub(crate) last_sample: i64,
    /// CPU samples seen.
    pub(crate) samples: u64,
    /// The model-choosing estimator's state (Adaptive mode only).
    pub(crate) adaptive: Option<Box<AdaptiveState>>,
}

impl ContainerState {
    /// No history yet, with the half-lives and interval of `settings`.
    pub fn new(settings: &Settings) -> ContainerState {
        let adaptive = match settings.mode {
            ballast_api::vertical::EstimatorMode::Adaptive => {
                Some(Box::new(AdaptiveState::new(settings)))
            }
            ballast_api::vertical::EstimatorMode::Percentile => None,
        };
        ContainerState {
            cpu: DecayingHistogram::new(settings.cpu.half_life_seconds),
            memory: DecayingHistogram::new(settings.memory.half_life_seconds),
            memory_peak: 0.0,
            memory_window_end: 0,
            memory_interval: settings.memory_interval_seconds.max(60),
            first_sample: 0,
            last_sample: 0,
            samples: 0,
            adaptive,
        }
    }

    /// Adds a CPU usage sample (cores) at unix second `at`, from a container requesting
    /// `request_cores` (0 when it has no request).
    pub fn add_cpu(&mut self, at: i64, cores: f64, request_cores: f64) {
        if !cores.is_finite() || cores < 0.0 {
            return;
        }
        let weight = request_cores.max(MIN_CPU_SAMPLE_WEIGHT);
        self.cpu.add(&CPU, cores, weight, at);
        if self.samples == 0 || at < self.first_sample {
            self.first_sample = at;
        }
        self.last_sample = self.last_sample.max(at);
        self.samples += 1;
        if let Some(a) = self.adaptive.as_mut() {
            a.observe_cpu(at, cores, weight, &self.cpu);
        }
    }

    /// Adds a memory usage sample (bytes) at unix second `at`: it becomes the interval's peak
    /// when it is the highest so far.
    pub fn add_memory(&mut self, at: i64, bytes: f64) {
        if !bytes.is_finite() || bytes < 0.0 {
            return;
        }
        if at >= self.memory_window_end {
            self.open_window(at);
        }
        if bytes > self.memory_peak {
            let start = self.memory_window_end - self.memory_interval;
            if self.memory_peak > 0.0 {
                self.memory.subtract(&MEMORY, self.memory_peak, 1.0, start);
            }
            self.memory.add(&MEMORY, bytes, 1.0, start);
            self.memory_peak = bytes;
        }
        if let Some(a) = self.adaptive.as_mut() {
            a.observe_memory(at, bytes, &self.memory);
        }
    }

    /// Records an OOM kill at `at` of a container requesting `request_bytes` of memory.
    pub fn add_oom(&mut self, at: i64, request_bytes: f64) {
        if at >= self.memory_window_end {
            self.open_window(at);
        }
        let used = request_bytes.max(self.memory_peak);
        let bumped = (used * OOM_BUMP_RATIO).max(used + OOM_MIN_BUMP_BYTES);
        self.add_memory(at, bumped);
    }

    /// Days of history (first to last CPU sample) and CPU samples seen.
    pub fn history(&self) -> (f64, u64) {
        let days = (self.last_sample - self.first_sample) as f64 / DAY_SECONDS as f64;
        (days.max(0.0), self.samples)
    }

    /// Unix second of the last CPU sample (0: none).
    pub fn last_sample(&self) -> i64 {
        self.last_sample
    }

    /// True when no usage was recorded.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_empty() && self.memory.is_empty()
    }

    /// Bytes this state takes: its own size plus what it holds on the heap.
    pub fn footprint_bytes(&self) -> usize {
        let adaptive = self
            .adaptive
            .as_ref()
            .map_or(0, |a| std::mem::size_of::<AdaptiveState>() + a.heap_bytes());
        std::mem::size_of::<ContainerState>()
            + self.cpu.heap_bytes()
            + self.memory.heap_bytes()
            + adaptive
    }

    /// The CPU histogram (cores).
    pub fn cpu_histogram(&self) -> &DecayingHistogram {
        &self.cpu
    }

    /// The memory histogram of interval peaks (bytes).
    pub fn memory_histogram(&self) -> &DecayingHistogram {
        &self.memory
    }

    /// The model-choosing estimator's state, in Adaptive mode.
    pub fn adaptive(&self) -> Option<&AdaptiveState> {
        self.adaptive.as_deref()
    }

    fn open_window(&mut self, at: i64) {
        if self.memory_window_end == 0 || at >= self.memory_window_end + self.memory_interval {
            // first interval, or a gap of whole intervals: start a new one at this sample
            self.memory_window_end = at + self.memory_interval;
        } else {
            self.memory_window_end += self.memory_interval;
        }
        self.memory_peak = 0.0;
    }
}

/// Bucket layout of every CPU histogram.
pub const CPU: BucketLayout = BucketLayout {
    first: 0.01,
    ratio: 1.05,
    count: 176,
};
/// Bucket layout of every memory histogram.
pub const MEMORY: BucketLayout = BucketLayout {
    first: 1e7,
    ratio: 1.05,
    count: 176,
};

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    #[test]
    fn layouts_match_the_computed_ones() {
        assert_eq!(CPU, BucketLayout::cpu());
        assert_eq!(MEMORY, BucketLayout::memory());
    }

    #[test]
    fn memory_keeps_one_peak_per_interval() {
        let mut s = ContainerState::new(&Settings::default());
        s.add_memory(0, 3e8);
        s.add_memory(H, 5e8);
        s.add_memory(2 * H, 4e8);
        assert_eq!(s.memory.buckets().count(), 1);
        assert_eq!(s.memory_peak, 5e8);
        s.add_memory(25 * H, 1e8);
        assert_eq!(s.memory.buckets().count(), 2);
        assert_eq!(s.memory_window_end, 48 * H);
    }

    #[test]
    fn cpu_samples_weigh_the_request() {
        let mut s = ContainerState::new(&Settings::default());
        s.add_cpu(0, 0.2, 2.0);
        s.add_cpu(0, 0.5, 0.0);
        let weights: Vec<f64> = s.cpu.buckets().map(|b| b.1).collect();
        assert_eq!(weights, vec![2.0, MIN_CPU_SAMPLE_WEIGHT]);
        assert_eq!(s.history(), (0.0, 2));
    }

    #[test]
    fn oom_bumps_memory() {
        let table = [
            (1e8, 0.0, 1e8 + OOM_MIN_BUMP_BYTES),
            (2e9, 0.0, 2.4e9),
            (1e8, 1e9, 1.2e9),
        ];
        for (peak, request, bumped) in table {
            let mut s = ContainerState::new(&Settings::default());
            s.add_memory(0, peak);
            s.add_oom(60, request);
            assert_eq!(s.memory_peak, bumped, "peak {peak} request {request}");
            assert_eq!(s.memory.buckets().count(), 1);
        }
    }
}
