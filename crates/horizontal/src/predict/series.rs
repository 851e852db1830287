//! The history one forecast reads: a fixed-capacity ring of evenly spaced values.
//!
//! Samples arrive at any time; each is put in the step it falls in (the last sample of a step
//! wins), a gap is filled with the value before it (a missing reading is not a zero load), and
//! the oldest steps drop out once the ring is full. The buffer is allocated once, at
//! [`Series::new`], and never grows.

/// Evenly spaced values of one metric, oldest first, at most `capacity` of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    step_millis: i64,
    values: Vec<f64>,
    /// Index in `values` of the oldest value once the ring has wrapped.
    start: usize,
    /// Step number (`at / step_millis`) of the newest value, if any.
    last_step: Option<i64>,
}

impl Series {
    /// An empty series of steps of `step_millis` (at least 1) holding at most `capacity` (at
    /// least 1) values.
    pub fn new(step_millis: i64, capacity: usize) -> Self {
        Series {
            step_millis: step_millis.max(1),
            values: Vec::with_capacity(capacity.max(1)),
            start: 0,
            last_step: None,
        }
    }

    /// The step length in milliseconds.
    pub fn step_millis(&self) -> i64 {
        self.step_millis
    }

    /// How many values the series holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the series holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The most values the series keeps.
    pub fn capacity(&self) -> usize {
        self.values.capacity()
    }

    /// The start time (milliseconds) of the newest step, if any.
    pub fn last_at_millis(&self) -> Option<i64> {
        self.last_step
            .map(|step| step.saturating_mul(self.step_millis))
    }

    /// The value `index` steps after the oldest one (`0..len()`), or `None` past the end.
    pub fn get(&self, index: usize) -> Option<f64> {
        if index >= self.values.len() {
            return None;
        }
        let slot = (self.start + index) % self.values.len();
        self.values.get(slot).copied()
    }

    /// The values oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.values.len()).filter_map(|index| self.get(index))
    }

    /// Records `value` read at `at_millis`. A non-finite value, or one older than the newest
    /// step, is ignored (the series only moves forward); a later step than the next fills the
    /// steps between with the newest value.
    pub fn record(&mut self, at_millis: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let step = at_millis.div_euclid(self.step_millis);
        match self.last_step {
            None => self.push(value),
            Some(last) if step < last => return,
            Some(last) if step == last => self.replace_newest(value),
            Some(last) => {
                let newest = self.newest().unwrap_or(value);
                let gap = usize::try_from(step - last - 1).unwrap_or(usize::MAX);
                for _ in 0..gap.min(self.capacity()) {
                    self.push(newest);
                }
                self.push(value);
            }
        }
        self.last_step = Some(step);
    }

    /// Forgets every value (the capacity stays).
    pub fn clear(&mut self) {
        self.values.clear();
        self.start = 0;
        self.last_step = None;
    }

    fn newest(&self) -> Option<f64> {
        self.len().checked_sub(1).and_then(|index| self.get(index))
    }

    fn replace_newest(&mut self, value: f64) {
        if let Some(index) = self.len().checked_sub(1) {
            let slot = (self.start + index) % self.values.len();
            if let Some(entry) = self.values.get_mut(slot) {
                *entry = value;
            }
        }
    }

    fn push(&mut self, value: f64) {
        if self.values.len() < self.values.capacity() {
            self.values.push(value);
        } else if let Some(entry) = self.values.get_mut(self.start) {
            *entry = value;
            self.start = (self.start + 1) % self.values.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_gaps_and_ring() {
        let mut series = Series::new(1000, 4);
        series.record(500, 1.0);
        series.record(900, 2.0); // same step: replaces
        series.record(3100, 5.0); // steps 1 and 2 filled with 2.0
        assert_eq!(series.iter().collect::<Vec<_>>(), vec![2.0, 2.0, 2.0, 5.0]);
        series.record(4000, 6.0); // ring drops the oldest
        assert_eq!(series.iter().collect::<Vec<_>>(), vec![2.0, 2.0, 5.0, 6.0]);
        series.record(1000, 9.0); // older than the newest step: ignored
        series.record(5000, f64::NAN); // not finite: ignored
        assert_eq!(series.len(), 4);
        assert_eq!(series.last_at_millis(), Some(4000));
        assert_eq!(series.capacity(), 4);
    }

    #[test]
    fn a_long_gap_never_grows_the_buffer() {
        let mut series = Series::new(1, 3);
        series.record(0, 1.0);
        series.record(1_000_000_000, 2.0);
        assert_eq!(series.iter().collect::<Vec<_>>(), vec![1.0, 1.0, 2.0]);
        assert_eq!(series.capacity(), 3);
    }
}
