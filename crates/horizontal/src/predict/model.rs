//! The model: additive Holt-Winters with a damped trend.
//!
//! A value is level + trend + season. After each step the three are smoothed towards what was
//! seen (`alpha` the level, `beta` the trend, `gamma` the season's slot for that phase), and a
//! forecast `h` steps ahead is `level + (φ + φ² + … + φʰ) · trend + season[phase of t + h]`. The
//! damping `φ < 1` lets a trend fade instead of running on forever, so a ramp that stops is not
//! extrapolated into a cliff. Without a season the model is Holt's damped trend alone.
//!
//! Start: with a season of `m` steps the first two seasons give the level (the second's mean),
//! the trend (difference of the two means over `m`) and each slot (the mean of its two
//! deviations); updates run from step `2m`. Without a season the first value is the level and
//! the trend starts flat. The season buffer is allocated once, for the longest season allowed.

use super::series::Series;

/// The smoothing weights; fixed, so a forecast is a function of the history alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Smoothing {
    /// Weight of a new value in the level.
    pub alpha: f64,
    /// Weight of a new level change in the trend.
    pub beta: f64,
    /// Weight of a new deviation in its season slot.
    pub gamma: f64,
    /// Trend damping per step, in (0, 1].
    pub phi: f64,
}

/// The weights every forecast uses (see `docs/horizontal.md`).
pub const SMOOTHING: Smoothing = Smoothing {
    alpha: 0.2,
    beta: 0.01,
    gamma: 0.25,
    phi: 0.98,
};

/// One model's running state over a series.
#[derive(Clone, Debug, PartialEq)]
pub struct HoltWinters {
    smoothing: Smoothing,
    level: f64,
    trend: f64,
    /// Season slots by phase (`step % season`); empty without a season.
    season: Vec<f64>,
    /// Index of the last step taken in.
    last: usize,
}

impl HoltWinters {
    /// A model whose season buffer holds seasons of up to `longest_season` steps.
    pub fn new(smoothing: Smoothing, longest_season: usize) -> Self {
        HoltWinters {
            smoothing,
            level: 0.0,
            trend: 0.0,
            season: Vec::with_capacity(longest_season),
            last: 0,
        }
    }

    /// The steps `start` needs before updates can begin: two seasons, or one value.
    pub fn warm_up(season: usize) -> usize {
        if season == 0 {
            1
        } else {
            season.saturating_mul(2)
        }
    }

    /// Starts the model from the head of `series` with a season of `season` steps (0: none),
    /// returning the index of the first step to `update` with, or `None` when the series is
    /// shorter than [`HoltWinters::warm_up`] or the season longer than the buffer.
    pub fn start(&mut self, series: &Series, season: usize) -> Option<usize> {
        let warm_up = Self::warm_up(season);
        if series.len() < warm_up || season > self.season.capacity() {
            return None;
        }
        self.season.clear();
        if season == 0 {
            self.level = series.get(0)?;
            self.trend = 0.0;
            self.last = 0;
            return Some(1);
        }
        let mean = |from: usize| {
            (from..from + season)
                .filter_map(|i| series.get(i))
                .sum::<f64>()
        };
        let first = mean(0) / season as f64;
        let second = mean(season) / season as f64;
        for phase in 0..season {
            let a = series.get(phase).unwrap_or(first) - first;
            let b = series.get(phase + season).unwrap_or(second) - second;
            self.season.push((a + b) / 2.0);
        }
        self.trend = (second - first) / season as f64;
        // `second` is the level at the middle of the second season; move it to its end.
        self.level = second + self.trend * (season as f64 - 1.0) / 2.0;
        self.last = warm_up - 1;
        Some(warm_up)
    }

    /// Takes in the value of step `index` (the step after the last one taken in).
    pub fn update(&mut self, index: usize, value: f64) {
        let Smoothing {
            alpha,
            beta,
            gamma,
            phi,
        } = self.smoothing;
        let slot = self.slot(index);
        let seasonal = slot
            .and_then(|slot| self.season.get(slot).copied())
            .unwrap_or(0.0);
        let previous = self.level;
        self.level = alpha * (value - seasonal) + (1.0 - alpha) * (previous + phi * self.trend);
        self.trend = beta * (self.level - previous) + (1.0 - beta) * phi * self.trend;
        if let Some(entry) = slot.and_then(|slot| self.season.get_mut(slot)) {
            *entry = gamma * (value - self.level) + (1.0 - gamma) * *entry;
        }
        self.last = index;
    }

    /// The forecast `steps` steps after the last step taken in.
    pub fn project(&self, steps: usize) -> f64 {
        let seasonal = self
            .slot(self.last.saturating_add(steps))
            .and_then(|slot| self.season.get(slot).copied())
            .unwrap_or(0.0);
        self.level + damped_sum(self.smoothing.phi, steps) * self.trend + seasonal
    }

    /// The season in steps (0: none).
    pub fn season(&self) -> usize {
        self.season.len()
    }

    fn slot(&self, index: usize) -> Option<usize> {
        index.checked_rem(self.season.len())
    }
}

/// `φ + φ² + … + φʰ`.
fn damped_sum(phi: f64, steps: usize) -> f64 {
    if (phi - 1.0).abs() < f64::EPSILON {
        return steps as f64;
    }
    let power = phi.powi(i32::try_from(steps).unwrap_or(i32::MAX));
    phi * (1.0 - power) / (1.0 - phi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Series {
        let mut series = Series::new(1, values.len());
        for (at, value) in values.iter().enumerate() {
            series.record(at as i64, *value);
        }
        series
    }

    #[test]
    fn a_pure_season_is_repeated() {
        let values: Vec<f64> = (0..40).map(|t| [10.0, 20.0, 30.0, 20.0][t % 4]).collect();
        let s = series(&values);
        let mut model = HoltWinters::new(SMOOTHING, 8);
        let first = model.start(&s, 4);
        assert_eq!(first, Some(8));
        for index in 8..s.len() {
            model.update(index, s.get(index).unwrap_or(0.0));
        }
        // Last step is 39 (phase 3); the next phases are 0, 1, 2.
        for (steps, expected) in [(1, 10.0), (2, 20.0), (3, 30.0)] {
            assert!((model.project(steps) - expected).abs() < 1e-9, "{steps}");
        }
    }

    #[test]
    fn a_line_is_followed_and_its_trend_damped() {
        let values: Vec<f64> = (0..200).map(|t| 5.0 + 2.0 * t as f64).collect();
        let s = series(&values);
        let mut model = HoltWinters::new(SMOOTHING, 0);
        let first = model.start(&s, 0).unwrap_or(1);
        for index in first..s.len() {
            model.update(index, s.get(index).unwrap_or(0.0));
        }
        let next = model.project(1);
        // A damped trend lags a straight line a little (within 2%).
        assert!((next - 405.0).abs() / 405.0 < 0.02, "{next}");
        // Ten steps ahead rises further, but less than the straight line (425).
        let ten = model.project(10);
        assert!(ten > next && ten < 425.0, "{ten}");
    }

    #[test]
    fn too_short_or_too_long_a_season_does_not_start() {
        let s = series(&[1.0, 2.0, 3.0]);
        assert_eq!(HoltWinters::new(SMOOTHING, 8).start(&s, 2), None);
        assert_eq!(
            HoltWinters::new(SMOOTHING, 1).start(&series(&[1.0; 10]), 2),
            None
        );
        assert_eq!(damped_sum(1.0, 3), 3.0);
    }
}
