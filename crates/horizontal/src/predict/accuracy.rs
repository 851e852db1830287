//! Recent forecast error and whether the forecast is trusted.
//!
//! Each forecast made `look-ahead` steps earlier is compared with the value that came; the
//! symmetric mean absolute percentage error (sMAPE, `2|a − f| / (|a| + |f|)`, 0 when both are 0,
//! so between 0 and 2) is averaged over the last `window` comparisons, whose root mean square error also sets the
//! prediction interval. [`Trust`] turns the
//! forecast off when the window's error rises above the threshold and on again only once it falls
//! below [`RECOVERY`] × the threshold, so an error near the threshold does not flap. The window's
//! buffer is allocated once and reused.

/// The share of the threshold the error must fall below before a distrusted forecast is trusted
/// again.
pub const RECOVERY: f64 = 0.8;

/// The sMAPE of one forecast against the value that came, in [0, 2].
pub fn symmetric_error(actual: f64, forecast: f64) -> f64 {
    let scale = actual.abs() + forecast.abs();
    if scale <= f64::EPSILON {
        0.0
    } else {
        (2.0 * (actual - forecast).abs() / scale).min(2.0)
    }
}

/// The sMAPE of the last `window` comparisons.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorWindow {
    terms: Vec<f64>,
    /// Squared errors `(a − f)²`, slot for slot with `terms`.
    squares: Vec<f64>,
    next: usize,
    window: usize,
}

impl ErrorWindow {
    /// An empty window of `window` comparisons (at least 1).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        ErrorWindow {
            terms: Vec::with_capacity(window),
            squares: Vec::with_capacity(window),
            next: 0,
            window,
        }
    }

    /// Empties the window, keeping its buffer; `window` is capped at the buffer's capacity.
    pub fn reset(&mut self, window: usize) {
        self.terms.clear();
        self.squares.clear();
        self.next = 0;
        self.window = window.clamp(1, self.terms.capacity().max(1));
    }

    /// Adds one comparison, dropping the oldest once the window is full.
    pub fn add(&mut self, actual: f64, forecast: f64) {
        let term = symmetric_error(actual, forecast);
        let square = (actual - forecast).powi(2);
        if self.terms.len() < self.window {
            self.terms.push(term);
            self.squares.push(square);
        } else {
            if let Some(slot) = self.terms.get_mut(self.next) {
                *slot = term;
            }
            if let Some(slot) = self.squares.get_mut(self.next) {
                *slot = square;
            }
        }
        self.next = (self.next + 1) % self.window;
    }

    /// Whether the window holds `window` comparisons.
    pub fn is_full(&self) -> bool {
        self.terms.len() >= self.window
    }

    /// How many comparisons the window holds.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether the window holds no comparison.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The mean sMAPE of the window (0 when empty). Recomputed from the terms, so rounding does
    /// not drift over a long history.
    pub fn error(&self) -> f64 {
        if self.terms.is_empty() {
            return 0.0;
        }
        self.terms.iter().sum::<f64>() / self.terms.len() as f64
    }

    /// The root mean square of the window's errors, in the metric's unit (0 when empty).
    pub fn root_mean_square(&self) -> f64 {
        if self.squares.is_empty() {
            return 0.0;
        }
        (self.squares.iter().sum::<f64>() / self.squares.len() as f64).sqrt()
    }
}

/// Whether the forecast is trusted, with hysteresis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Trust {
    /// Not judged yet: the error window is not full.
    #[default]
    Unjudged,
    Trusted,
    Distrusted,
}

impl Trust {
    /// The state after a full window showed `error` against `threshold`.
    pub fn judge(self, error: f64, threshold: f64) -> Trust {
        match self {
            Trust::Unjudged | Trust::Trusted if error > threshold => Trust::Distrusted,
            Trust::Unjudged | Trust::Trusted => Trust::Trusted,
            Trust::Distrusted if error < threshold * RECOVERY => Trust::Trusted,
            Trust::Distrusted => Trust::Distrusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_error_is_bounded_and_symmetric() {
        assert_eq!(symmetric_error(0.0, 0.0), 0.0);
        assert_eq!(symmetric_error(10.0, 0.0), 2.0);
        assert!((symmetric_error(100.0, 110.0) - symmetric_error(110.0, 100.0)).abs() < 1e-12);
        assert!((symmetric_error(100.0, 110.0) - 20.0 / 210.0).abs() < 1e-12);
    }

    #[test]
    fn window_slides() {
        let mut window = ErrorWindow::new(2);
        window.add(1.0, 1.0);
        assert!(!window.is_full());
        window.add(1.0, 0.0);
        assert!(window.is_full());
        assert_eq!(window.error(), 1.0);
        window.add(1.0, 0.0);
        assert_eq!(window.error(), 2.0);
        assert_eq!(window.root_mean_square(), 1.0);
        window.reset(5); // capped at the buffer's capacity
        assert!(window.is_empty());
        window.add(1.0, 1.0);
        window.add(1.0, 1.0);
        assert!(window.is_full());
    }

    #[test]
    fn trust_has_hysteresis() {
        let threshold = 0.2;
        let trust = Trust::Unjudged.judge(0.19, threshold);
        assert_eq!(trust, Trust::Trusted);
        let trust = trust.judge(0.21, threshold);
        assert_eq!(trust, Trust::Distrusted);
        let trust = trust.judge(0.19, threshold); // below the threshold, not below 80% of it
        assert_eq!(trust, Trust::Distrusted);
        assert_eq!(trust.judge(0.15, threshold), Trust::Trusted);
        assert_eq!(Trust::Unjudged.judge(0.3, threshold), Trust::Distrusted);
    }
}
