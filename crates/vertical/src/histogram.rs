//! Decaying histograms over exponential buckets.
//!
//! Bucket 0 covers `[0, first)`; bucket `i ≥ 1` starts at `first × (ratioⁱ − 1) / (ratio − 1)`, so
//! each bucket is `ratio` times wider than the one before; the last bucket also takes every value
//! above the maximum. A sample at time `t` weighs `weight × 2^((t − reference) / halfLife)`: newer
//! samples weigh exponentially more, which is the same as older ones decaying, without touching
//! the stored weights at every sample. When the exponent would pass [`MAX_DECAY_EXPONENT`] the
//! reference moves forward and every stored weight is scaled down by the same factor.
//!
//! Weights are kept densely between the lowest and the highest non-empty bucket only, so a
//! container whose usage stays in a narrow band stores a handful of buckets.

use serde::{Deserialize, Serialize};

/// A bucket lighter than this counts as empty (and is dropped at the edges).
pub const EPSILON: f64 = 1e-4;
/// Largest decay exponent before the reference time moves forward.
pub const MAX_DECAY_EXPONENT: f64 = 100.0;

/// The shape of a histogram's buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLayout {
    /// Width of bucket 0 (and start of bucket 1), in base units.
    pub first: f64,
    /// Growth of each bucket's width over the previous one.
    pub ratio: f64,
    /// Number of buckets; the last one is open-ended.
    pub count: u16,
}

impl BucketLayout {
    /// Buckets from `first` growing by `ratio` until they cover `max`.
    pub fn covering(first: f64, ratio: f64, max: f64) -> BucketLayout {
        let span = (max * (ratio - 1.0) / first + 1.0).ln() / ratio.ln();
        BucketLayout {
            first,
            ratio,
            count: (span.ceil() as u16).saturating_add(1),
        }
    }

    /// CPU in cores: 0.01 cores first, ratio 1.05, up to 1000 cores (176 buckets).
    pub fn cpu() -> BucketLayout {
        BucketLayout::covering(0.01, 1.05, 1000.0)
    }

    /// Memory in bytes: 1e7 bytes first, ratio 1.05, up to 1e12 bytes (176 buckets).
    pub fn memory() -> BucketLayout {
        BucketLayout::covering(1e7, 1.05, 1e12)
    }

    /// Where bucket `index` starts.
    pub fn bucket_start(&self, index: u16) -> f64 {
        if index == 0 {
            return 0.0;
        }
        self.first * (self.ratio.powi(i32::from(index)) - 1.0) / (self.ratio - 1.0)
    }

    /// The bucket holding `value` (values below zero go to bucket 0, above the maximum to the last).
    pub fn bucket_of(&self, value: f64) -> u16 {
        if value.is_nan() || value < self.first {
            return 0;
        }
        let last = self.count - 1;
        let guess =
            ((value * (self.ratio - 1.0) / self.first + 1.0).ln() / self.ratio.ln()).floor();
        let mut index = if guess >= f64::from(last) {
            last
        } else {
            guess.max(0.0) as u16
        };
        // The logarithm can land one bucket off at a boundary: settle it on the starts.
        if index > 0 && self.bucket_start(index) > value {
            index -= 1;
        } else if index < last && self.bucket_start(index + 1) <= value {
            index += 1;
        }
        index
    }

    /// The largest value the histogram tells apart (start of the last bucket).
    pub fn max_value(&self) -> f64 {
        self.bucket_start(self.count - 1)
    }
}

/// A decaying histogram: bucket weights relative to a reference time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecayingHistogram {
    /// Seconds after which a sample's weight halves (relative to newer ones).
    half_life: i64,
    /// Unix seconds the stored weights are relative to.
    reference: i64,
    /// Index of `weights[0]`.
    offset: u16,
    /// Weights of buckets `offset..offset + weights.len()`.
    weights: Vec<f64>,
    /// Sum of `weights`.
    total: f64,
}

impl DecayingHistogram {
    /// An empty histogram with the given half-life in seconds (at least one second).
    pub fn new(half_life_seconds: i64) -> DecayingHistogram {
        DecayingHistogram {
            half_life: half_life_seconds.max(1),
            reference: 0,
            offset: 0,
            weights: Vec::new(),
            total: 0.0,
        }
    }

    /// Half-life in seconds.
    pub fn half_life(&self) -> i64 {
        self.half_life
    }

    /// Unix seconds the stored weights are relative to.
    pub fn reference(&self) -> i64 {
        self.reference
    }

    /// Sum of the weights, relative to the reference time.
    pub fn total_weight(&self) -> f64 {
        self.total
    }

    /// True when no bucket weighs more than [`EPSILON`].
    pub fn is_empty(&self) -> bool {
        self.total < EPSILON
    }

    /// Buckets with any weight as (index, weight), lowest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, f64)> + '_ {
        self.weights
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > 0.0)
            .map(|(i, w)| (self.offset + i as u16, *w))
    }

    /// Bytes on the heap (the bucket array).
    pub fn heap_bytes(&self) -> usize {
        self.weights.capacity() * std::mem::size_of::<f64>()
    }

    /// Rebuilds a histogram from its parts (a checkpoint): the same parts give back the same
    /// histogram, bit for bit. Buckets may come in any order.
    pub fn from_parts(
        half_life_seconds: i64,
        reference: i64,
        buckets: &[(u16, f64)],
        total: f64,
    ) -> DecayingHistogram {
        let mut h = DecayingHistogram::new(half_life_seconds);
        h.reference = reference;
        let mut sorted = buckets.to_vec();
        sorted.sort_by_key(|(i, _)| *i);
        for (index, weight) in sorted {
            if weight > 0.0 {
                h.add_to_bucket(index, weight);
            }
        }
        h.total = total;
        h
    }

    /// Adds `weight` at `value` observed at unix second `at`.
    pub fn add(&mut self, layout: &BucketLayout, value: f64, weight: f64, at: i64) {
        if weight.is_nan() || weight <= 0.0 {
            return;
        }
        let w = weight * self.decay_factor(at);
        self.add_to_bucket(layout.bucket_of(value), w);
        self.total += w;
    }

    /// Removes a sample added earlier with the same value, weight and time.
    pub fn subtract(&mut self, layout: &BucketLayout, value: f64, weight: f64, at: i64) {
        if weight.is_nan() || weight <= 0.0 || self.weights.is_empty() {
            return;
        }
        let w = weight * self.decay_factor(at);
        let index = layout.bucket_of(value);
        if index < self.offset || usize::from(index - self.offset) >= self.weights.len() {
            return;
        }
        let slot = &mut self.weights[usize::from(index - self.offset)];
        let removed = w.min(*slot);
        *slot -= removed;
        if *slot < EPSILON {
            *slot = 0.0;
        }
        self.total = self.weights.iter().sum();
        self.trim();
    }

    /// The value below which `fraction` (0..=1) of the weight lies: the end of the bucket that
    /// reaches it (the start for the open-ended last bucket); 0 when empty.
    pub fn percentile(&self, layout: &BucketLayout, fraction: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let wanted = fraction.clamp(0.0, 1.0) * self.total;
        let mut sum = 0.0;
        let mut reached = self.offset + self.weights.len() as u16 - 1;
        for (i, w) in self.weights.iter().enumerate() {
            sum += w;
            if *w >= EPSILON && sum >= wanted {
                reached = self.offset + i as u16;
                break;
            }
        }
        if reached + 1 >= layout.count {
            layout.bucket_start(reached)
        } else {
            layout.bucket_start(reached + 1)
        }
    }

    /// The weight factor of a sample at `at`, moving the reference forward first if needed.
    fn decay_factor(&mut self, at: i64) -> f64 {
        if self.weights.is_empty() {
            self.reference = at;
        }
        let exponent = (at - self.reference) as f64 / self.half_life as f64;
        if exponent > MAX_DECAY_EXPONENT {
            self.move_reference(at);
        }
        2f64.powf((at - self.reference) as f64 / self.half_life as f64)
    }

    /// Moves the reference time to `to` and rescales every weight to it.
    pub fn move_reference(&mut self, to: i64) {
        let scale = 2f64.powf((self.reference - to) as f64 / self.half_life as f64);
        for w in &mut self.weights {
            *w *= scale;
            if *w < EPSILON {
                *w = 0.0;
            }
        }
        self.reference = to;
        self.total = self.weights.iter().sum();
        self.trim();
    }

    fn add_to_bucket(&mut self, index: u16, weight: f64) {
        if self.weights.is_empty() {
            self.offset = index;
            self.weights.push(weight);
            return;
        }
        if index < self.offset {
            let grow = usize::from(self.offset - index);
            self.weights.splice(0..0, std::iter::repeat_n(0.0, grow));
            self.offset = index;
        }
        let at = usize::from(index - self.offset);
        if at >= self.weights.len() {
            self.weights.resize(at + 1, 0.0);
        }
        self.weights[at] += weight;
    }

    /// Drops empty buckets at both ends.
    fn trim(&mut self) {
        let first = self.weights.iter().position(|w| *w >= EPSILON);
        let Some(first) = first else {
            self.weights.clear();
            self.offset = 0;
            self.total = 0.0;
            return;
        };
        let last = self
            .weights
            .iter()
            .rposition(|w| *w >= EPSILON)
            .unwrap_or(first);
        self.weights.truncate(last + 1);
        self.weights.drain(..first);
        self.offset += first as u16;
        self.weights.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn layouts_have_176_buckets() {
        assert_eq!(BucketLayout::cpu().count, 176);
        assert_eq!(BucketLayout::memory().count, 176);
    }

    #[test]
    fn bucket_index_table() {
        let l = BucketLayout::cpu();
        let cases = [
            (0.0, 0),
            (0.005, 0),
            (0.01, 1),
            (0.0204, 1),
            (0.0205, 2),
            (1.0, 36),
            (1e6, 175),
            (-3.0, 0),
        ];
        for (value, index) in cases {
            assert_eq!(l.bucket_of(value), index, "value {value}");
        }
        for i in 1..l.count {
            assert_eq!(l.bucket_of(l.bucket_start(i)), i, "start of bucket {i}");
        }
    }

    #[test]
    fn percentile_returns_the_end_of_the_reaching_bucket() {
        let l = BucketLayout::cpu();
        let mut h = DecayingHistogram::new(DAY);
        for v in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] {
            h.add(&l, v, 1.0, 1000);
        }
        let p50 = h.percentile(&l, 0.5);
        assert_eq!(p50, l.bucket_start(l.bucket_of(0.5) + 1));
        assert!(p50 > 0.5 && p50 < 0.5 * 1.06);
        assert_eq!(h.percentile(&l, 1.0), l.bucket_start(l.bucket_of(1.0) + 1));
        assert_eq!(h.percentile(&l, 0.0), l.bucket_start(l.bucket_of(0.1) + 1));
        assert_eq!(DecayingHistogram::new(DAY).percentile(&l, 0.9), 0.0);
    }

    #[test]
    fn newer_samples_weigh_double_after_one_half_life() {
        let l = BucketLayout::cpu();
        let mut h = DecayingHistogram::new(DAY);
        h.add(&l, 1.0, 1.0, 0);
        h.add(&l, 2.0, 1.0, DAY);
        let buckets: Vec<_> = h.buckets().collect();
        assert_eq!(buckets.first().map(|b| b.1), Some(1.0));
        assert_eq!(buckets.last().map(|b| b.1), Some(2.0));
        // two thirds of the weight sit at 2.0: the 50th percentile is there
        assert!(h.percentile(&l, 0.5) > 2.0);
        assert!(h.percentile(&l, 0.3) < 1.06);
    }

    #[test]
    fn reference_moves_forward_and_rescales() {
        let l = BucketLayout::cpu();
        let mut h = DecayingHistogram::new(3600);
        h.add(&l, 1.0, 1.0, 0);
        let late = 101 * 3600;
        h.add(&l, 2.0, 1.0, late);
        assert_eq!(h.reference(), late);
        // the old sample decayed 2^-101 below epsilon: dropped
        assert_eq!(h.buckets().count(), 1);
        assert!((h.total_weight() - 1.0).abs() < 1e-12);
        let mut g = DecayingHistogram::new(3600);
        g.add(&l, 1.0, 1.0, 0);
        g.add(&l, 2.0, 1.0, 3600);
        g.move_reference(3600);
        let weights: Vec<f64> = g.buckets().map(|b| b.1).collect();
        assert_eq!(weights, vec![0.5, 1.0]);
    }

    #[test]
    fn subtract_removes_a_sample() {
        let l = BucketLayout::memory();
        let mut h = DecayingHistogram::new(DAY);
        h.add(&l, 3e8, 1.0, 10);
        h.add(&l, 5e8, 1.0, 20);
        h.subtract(&l, 5e8, 1.0, 20);
        assert_eq!(h.buckets().count(), 1);
        assert_eq!(h.percentile(&l, 1.0), l.bucket_start(l.bucket_of(3e8) + 1));
        h.subtract(&l, 3e8, 1.0, 10);
        assert!(h.is_empty());
    }

    #[test]
    fn from_parts_rebuilds_the_same_histogram() {
        let l = BucketLayout::cpu();
        let mut h = DecayingHistogram::new(DAY);
        for (i, v) in [0.3, 0.05, 2.0, 0.7].into_iter().enumerate() {
            h.add(&l, v, 0.5, 100 * i as i64);
        }
        let parts: Vec<_> = h.buckets().collect();
        let back = DecayingHistogram::from_parts(DAY, h.reference(), &parts, h.total_weight());
        assert_eq!(back.buckets().collect::<Vec<_>>(), parts);
        assert_eq!(back.total_weight(), h.total_weight());
        for p in [0.1, 0.5, 0.9, 0.95] {
            assert_eq!(back.percentile(&l, p), h.percentile(&l, p));
        }
    }
}
