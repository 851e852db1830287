//! One object's demand history as this process keeps it: a fixed ring of `f32`, one value per
//! step, with the step semantics of the core's `predict::Series` (the last sample of a step wins,
//! a gap repeats the value before it, the oldest step drops out when full), so the samples it
//! hands to a decision rebuild the same series. Pure: no clock, no I/O.

use std::collections::{BTreeMap, VecDeque};

use ballast_horizontal::DemandSample;
use jiff::Timestamp;

/// Evenly spaced demands, oldest first, at most `capacity` of them.
#[derive(Clone, Debug, PartialEq)]
pub struct DemandRing {
    step_millis: i64,
    capacity: usize,
    values: VecDeque<f32>,
    /// Step number (`time / step`) of the newest value.
    last_step: Option<i64>,
}

impl DemandRing {
    /// An empty ring of steps of `step_millis` (at least 1) keeping at most `capacity` (at least
    /// 1) values. Memory grows with the values recorded, up to `capacity × 4` bytes.
    pub fn new(step_millis: i64, capacity: usize) -> Self {
        DemandRing {
            step_millis: step_millis.max(1),
            capacity: capacity.max(1),
            values: VecDeque::new(),
            last_step: None,
        }
    }

    pub fn step_millis(&self) -> i64 {
        self.step_millis
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Step number of the newest value.
    pub fn last_step(&self) -> Option<i64> {
        self.last_step
    }

    /// Step number of the oldest value.
    pub fn first_step(&self) -> Option<i64> {
        self.last_step.map(|last| last - self.len() as i64 + 1)
    }

    /// Records `value` read at `at_millis`; a non-finite or negative value, or one older than
    /// the newest step, is ignored.
    pub fn record(&mut self, at_millis: i64, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let step = at_millis.div_euclid(self.step_millis);
        let value = value as f32;
        match self.last_step {
            Some(last) if step < last => return,
            Some(last) if step == last => {
                if let Some(newest) = self.values.back_mut() {
                    *newest = value;
                }
            }
            Some(last) => {
                let repeat = self.values.back().copied().unwrap_or(value);
                let gap = usize::try_from(step - last - 1).unwrap_or(usize::MAX);
                for _ in 0..gap.min(self.capacity) {
                    self.push(repeat);
                }
                self.push(value);
            }
            None => self.push(value),
        }
        self.last_step = Some(step);
    }

    fn push(&mut self, value: f32) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// `(time in milliseconds of the step's start, value)`, oldest first.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        let first = self.first_step().unwrap_or(0);
        self.values.iter().enumerate().map(move |(i, value)| {
            (
                (first + i as i64).saturating_mul(self.step_millis),
                f64::from(*value),
            )
        })
    }

    /// The history as a snapshot's `demandHistory`.
    pub fn samples(&self) -> Vec<DemandSample> {
        self.points()
            .filter_map(|(at, replicas)| {
                Some(DemandSample {
                    time: Timestamp::from_millisecond(at).ok()?,
                    replicas,
                })
            })
            .collect()
    }

    /// The same history in steps of `step_millis`, at most `capacity` of them (a spec change).
    pub fn reshaped(&self, step_millis: i64, capacity: usize) -> DemandRing {
        let mut ring = DemandRing::new(step_millis, capacity);
        for (at, value) in self.points() {
            ring.record(at, value);
        }
        ring
    }

    /// This history completed with `older` points (time in milliseconds, demand) where it has
    /// no value of its own: its own values win; the result keeps the newest `capacity` steps.
    pub fn backfilled(&self, older: impl IntoIterator<Item = (i64, f64)>) -> DemandRing {
        let mut steps = BTreeMap::new();
        for (at, value) in older {
            if value.is_finite() && value >= 0.0 {
                steps.insert(at.div_euclid(self.step_millis), value);
            }
        }
        for (at, value) in self.points() {
            steps.insert(at.div_euclid(self.step_millis), value);
        }
        let mut ring = DemandRing::new(self.step_millis, self.capacity);
        for (step, value) in steps {
            ring.record(step.saturating_mul(self.step_millis), value);
        }
        ring
    }

    /// The newest `most` values as little-endian `f32` bytes, and the time (milliseconds) of the
    /// first of them.
    pub fn encode(&self, most: usize) -> (i64, Vec<u8>) {
        let skip = self.len().saturating_sub(most);
        let start = self.first_step().unwrap_or(0) + skip as i64;
        let bytes = self
            .values
            .iter()
            .skip(skip)
            .flat_map(|value| value.to_le_bytes())
            .collect();
        (start.saturating_mul(self.step_millis), bytes)
    }

    /// The ring [`DemandRing::encode`] wrote: values every `step_millis` from `start_millis`.
    /// Errors say what is wrong with the bytes.
    pub fn decode(
        step_millis: i64,
        capacity: usize,
        start_millis: i64,
        bytes: &[u8],
    ) -> Result<DemandRing, String> {
        if step_millis < 1 {
            return Err(format!("the step must be positive, got {step_millis} ms"));
        }
        if !bytes.len().is_multiple_of(4) {
            return Err(format!(
                "{} bytes is not a whole number of 4-byte values",
                bytes.len()
            ));
        }
        let mut ring = DemandRing::new(step_millis, capacity);
        for (i, chunk) in bytes.chunks_exact(4).enumerate() {
            let value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if !value.is_finite() || value < 0.0 {
                return Err(format!("value {i} is {value}, not a demand"));
            }
            let at = start_millis.saturating_add((i as i64).saturating_mul(step_millis));
            ring.record(at, f64::from(value));
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(ring: &DemandRing) -> Vec<f64> {
        ring.points().map(|(_, v)| v).collect()
    }

    /// The ring keeps what the core's series keeps for the same samples.
    #[test]
    fn steps_match_the_core_series() {
        let samples = [
            (500, 1.0),
            (900, 2.0),
            (3100, 5.0),
            (4000, 6.0),
            (1000, 9.0),
            (5000, f64::NAN),
            (9000, 7.5),
        ];
        let mut ring = DemandRing::new(1000, 4);
        let mut series = ballast_horizontal::predict::Series::new(1000, 4);
        for (at, value) in samples {
            ring.record(at, value);
            series.record(at, value);
        }
        assert_eq!(values(&ring), series.iter().collect::<Vec<_>>());
        assert_eq!(ring.last_step().map(|s| s * 1000), series.last_at_millis());
        // Rebuilt from the samples a decision receives, the series is the same.
        let mut again = ballast_horizontal::predict::Series::new(1000, 4);
        for sample in ring.samples() {
            again.record(sample.time.as_millisecond(), sample.replicas);
        }
        assert_eq!(
            again.iter().collect::<Vec<_>>(),
            series.iter().collect::<Vec<_>>()
        );
        assert_eq!(again.last_at_millis(), series.last_at_millis());
    }

    #[test]
    fn a_long_gap_keeps_the_capacity() {
        let mut ring = DemandRing::new(1, 3);
        ring.record(0, 1.0);
        ring.record(1_000_000_000, 2.0);
        assert_eq!(values(&ring), vec![1.0, 1.0, 2.0]);
        assert_eq!(ring.first_step(), Some(999_999_998));
    }

    #[test]
    fn encoding_round_trips_and_keeps_the_newest() {
        let mut ring = DemandRing::new(4000, 100);
        for i in 0..10 {
            ring.record(1_000_000 + i * 4000, i as f64 * 0.5);
        }
        let (start, bytes) = ring.encode(100);
        assert_eq!(bytes.len(), 40);
        let back = DemandRing::decode(4000, 100, start, &bytes).expect("decodes");
        assert_eq!(back, ring);
        let (start, bytes) = ring.encode(3);
        let newest = DemandRing::decode(4000, 100, start, &bytes).expect("decodes");
        assert_eq!(values(&newest), vec![3.5, 4.0, 4.5]);
        assert_eq!(newest.last_step(), ring.last_step());
    }

    #[test]
    fn malformed_bytes_are_refused_with_the_reason() {
        let rows: [(&[u8], i64, &str); 4] = [
            (&[0, 0, 0], 1000, "3 bytes is not a whole number"),
            (&[0, 0, 0xc0, 0x7f], 1000, "value 0 is NaN"),
            (&[0, 0, 0x80, 0xbf], 1000, "value 0 is -1"),
            (&[], 0, "the step must be positive"),
        ];
        for (bytes, step, want) in rows {
            let error = DemandRing::decode(step, 10, 0, bytes).expect_err(want);
            assert!(error.starts_with(want), "{error}");
        }
    }

    #[test]
    fn backfill_fills_only_where_the_ring_has_nothing() {
        let mut ring = DemandRing::new(1000, 6);
        ring.record(4000, 40.0);
        ring.record(5000, 50.0);
        let filled = ring.backfilled([
            (0, 1.0),
            (1000, 2.0),
            (2500, 3.0),
            (4000, 99.0),
            (6000, 6.0),
        ]);
        // Step 3 repeats step 2, step 4 keeps the ring's own value, step 6 (newer than the
        // ring) is added, and step 0 drops out of the 6 kept.
        assert_eq!(values(&filled), vec![2.0, 3.0, 3.0, 40.0, 50.0, 6.0]);
        assert_eq!(filled.last_step(), Some(6));
        let empty = DemandRing::new(1000, 2).backfilled([(0, 1.0), (1000, 2.0), (2000, 3.0)]);
        assert_eq!(values(&empty), vec![2.0, 3.0]);
    }

    #[test]
    fn reshaping_resamples() {
        let mut ring = DemandRing::new(1000, 10);
        for i in 0..6 {
            ring.record(i * 1000, i as f64);
        }
        let coarse = ring.reshaped(2000, 10);
        assert_eq!(values(&coarse), vec![1.0, 3.0, 5.0]);
        let short = ring.reshaped(1000, 2);
        assert_eq!(values(&short), vec![4.0, 5.0]);
    }
}
