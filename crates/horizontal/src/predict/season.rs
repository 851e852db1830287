//! Season detection: which candidate period (a day, a week, in steps) the history repeats at.
//!
//! The series' least-squares line is taken out first (a trend alone correlates with itself at
//! every lag), then the autocorrelation at each candidate lag is measured. A candidate counts
//! when the history covers at least two of its periods and its autocorrelation reaches
//! [`MIN_AUTOCORRELATION`]; a longer period wins only when it correlates clearly better
//! ([`LONGER_MARGIN`]), since a weekly series also repeats daily. No buffer is needed: the line
//! is recomputed on the fly.

use super::series::Series;

/// The autocorrelation a candidate period needs to count as a season.
pub const MIN_AUTOCORRELATION: f64 = 0.5;

/// How much better a longer candidate must correlate to win over a shorter one.
pub const LONGER_MARGIN: f64 = 0.05;

/// The season found, in steps, with its autocorrelation, or `None` when no candidate counts.
pub fn detect(series: &Series, candidates: &[usize]) -> Option<(usize, f64)> {
    let line = Line::fit(series)?;
    let mut best: Option<(usize, f64)> = None;
    let mut sorted = [0usize; 4];
    let count = candidates.len().min(sorted.len());
    sorted[..count].copy_from_slice(&candidates[..count]);
    sorted[..count].sort_unstable();
    for &period in &sorted[..count] {
        if period < 2 || series.len() < period.saturating_mul(2) {
            continue;
        }
        let correlation = autocorrelation(series, &line, period);
        if correlation < MIN_AUTOCORRELATION {
            continue;
        }
        best = match best {
            Some((_, known)) if correlation <= known + LONGER_MARGIN => best,
            _ => Some((period, correlation)),
        };
    }
    best
}

/// The autocorrelation of the series at `lag` steps once its least-squares line is removed,
/// in [-1, 1]; 0 when the series is flat or shorter than the lag.
pub fn autocorrelation_at(series: &Series, lag: usize) -> f64 {
    Line::fit(series).map_or(0.0, |line| autocorrelation(series, &line, lag))
}

fn autocorrelation(series: &Series, line: &Line, lag: usize) -> f64 {
    let n = series.len();
    if lag >= n {
        return 0.0;
    }
    let residual = |index: usize| {
        series
            .get(index)
            .map_or(0.0, |value| value - line.at(index))
    };
    let mut variance = 0.0;
    for index in 0..n {
        variance += residual(index).powi(2);
    }
    if variance <= f64::EPSILON {
        return 0.0;
    }
    let mut covariance = 0.0;
    for index in 0..n - lag {
        covariance += residual(index) * residual(index + lag);
    }
    // Scaled to the overlap, so a long lag is not penalised for having fewer pairs.
    let overlap = (n - lag) as f64 / n as f64;
    (covariance / variance / overlap).clamp(-1.0, 1.0)
}

/// The least-squares line through the series (index → value).
#[derive(Clone, Copy, Debug)]
struct Line {
    intercept: f64,
    slope: f64,
}

impl Line {
    fn fit(series: &Series) -> Option<Line> {
        let n = series.len();
        if n < 2 {
            return None;
        }
        let count = n as f64;
        let mean_x = (count - 1.0) / 2.0;
        let mean_y = series.iter().sum::<f64>() / count;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (index, value) in series.iter().enumerate() {
            let dx = index as f64 - mean_x;
            sxy += dx * (value - mean_y);
            sxx += dx * dx;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Some(Line {
            intercept: mean_y - slope * mean_x,
            slope,
        })
    }

    fn at(&self, index: usize) -> f64 {
        self.intercept + self.slope * index as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: impl Iterator<Item = f64>, capacity: usize) -> Series {
        let mut series = Series::new(1, capacity);
        for (at, value) in values.enumerate() {
            series.record(at as i64, value);
        }
        series
    }

    fn wave(period: usize) -> impl Fn(usize) -> f64 {
        move |t| (2.0 * std::f64::consts::PI * t as f64 / period as f64).sin()
    }

    #[test]
    fn finds_the_daily_period_under_a_trend() {
        let daily = wave(24);
        let s = series(
            (0..24 * 5).map(|t| 100.0 + 0.5 * t as f64 + 10.0 * daily(t)),
            200,
        );
        assert_eq!(detect(&s, &[24, 168]).map(|(p, _)| p), Some(24));
    }

    #[test]
    fn finds_the_weekly_period_when_days_differ() {
        // Weekdays high, weekends low, with a daily wave: the week repeats better than the day.
        let daily = wave(24);
        let value = |t: usize| {
            let weekend = (t / 24) % 7 >= 5;
            (if weekend { 20.0 } else { 100.0 }) + 10.0 * daily(t)
        };
        let s = series((0..24 * 7 * 3).map(value), 600);
        assert_eq!(detect(&s, &[24, 168]).map(|(p, _)| p), Some(168));
    }

    #[test]
    fn no_season_in_a_ramp_or_flat_or_short_series() {
        assert_eq!(
            detect(&series((0..100).map(|t| t as f64), 100), &[24]),
            None
        );
        assert_eq!(detect(&series((0..100).map(|_| 3.0), 100), &[24]), None);
        assert_eq!(detect(&series((0..30).map(wave(24)), 100), &[24]), None);
        assert_eq!(
            autocorrelation_at(&series((0..3).map(|t| t as f64), 10), 5),
            0.0
        );
    }
}
