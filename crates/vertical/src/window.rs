//! Peaks of recent fixed-length time windows: the moving-window signal of the Adaptive mode.
//!
//! Time is cut into windows of [`WINDOW_SECONDS`] aligned on the unix epoch. The open window keeps
//! its peak so far; closed windows keep their peaks, newest first, for [`WINDOW_COUNT`] windows
//! (a day). A window with no sample counts as a peak of 0. Unlike a decaying histogram, a peak
//! leaves the record entirely once it is older than the windows asked for, so "the highest usage
//! of the last hour" can fall back when a burst is over.

use serde::{Deserialize, Serialize};

/// Length of one window, seconds.
pub const WINDOW_SECONDS: i64 = 900;
/// Closed windows kept (one day of 15-minute windows).
pub const WINDOW_COUNT: usize = 96;

/// The open window's peak and the peaks of the closed windows before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPeaks {
    /// Unix second the open window starts (0: no sample yet; samples are after 1970).
    open_start: i64,
    /// Peak of the open window.
    open_peak: f64,
    /// Peaks of the closed windows, newest first (`closed[j]` started `(j + 1)` windows before
    /// the open one); at most [`WINDOW_COUNT`], never ending with an empty window.
    closed: Vec<f64>,
}

impl Default for WindowPeaks {
    fn default() -> WindowPeaks {
        WindowPeaks::new()
    }
}

/// The start of the window holding unix second `at`.
pub fn window_start(at: i64) -> i64 {
    at.div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS
}

impl WindowPeaks {
    /// No sample yet.
    pub fn new() -> WindowPeaks {
        WindowPeaks {
            open_start: 0,
            open_peak: 0.0,
            closed: Vec::new(),
        }
    }

    /// Records `value` at unix second `at`; true when it closed one or more windows. A sample
    /// older than the open window counts in the open one (samples are expected in order).
    pub fn add(&mut self, at: i64, value: f64) -> bool {
        if !value.is_finite() || value < 0.0 {
            return false;
        }
        let start = window_start(at);
        let mut closed_some = false;
        if self.open_start == 0 {
            self.open_start = start;
        } else if start > self.open_start {
            // the open window and every empty one up to `start` close; the record keeps a day
            let skipped = ((start - self.open_start) / WINDOW_SECONDS - 1) as usize;
            if skipped >= WINDOW_COUNT {
                self.closed.clear();
            } else {
                self.closed.truncate(WINDOW_COUNT - skipped - 1);
                self.closed.reserve_exact(WINDOW_COUNT - self.closed.len());
                let newest = std::iter::repeat_n(0.0, skipped).chain([self.open_peak]);
                self.closed.splice(0..0, newest);
            }
            while self.closed.last() == Some(&0.0) {
                self.closed.pop();
            }
            self.open_start = start;
            self.open_peak = 0.0;
            closed_some = true;
        }
        self.open_peak = self.open_peak.max(value);
        closed_some
    }

    /// Highest peak of the `count` newest closed windows (0 when there are none).
    pub fn closed_max(&self, count: usize) -> f64 {
        self.closed.iter().take(count).fold(0.0, |a, b| a.max(*b))
    }

    /// Peaks of the closed windows, newest first (an empty window is 0; the record ends at its
    /// last non-empty window).
    pub fn closed_peaks(&self) -> &[f64] {
        &self.closed
    }

    /// Peak of the open window so far.
    pub fn open_peak(&self) -> f64 {
        self.open_peak
    }

    /// Highest usage of the open window and the `count` closed windows before it.
    pub fn max(&self, count: usize) -> f64 {
        self.closed_max(count).max(self.open_peak)
    }

    /// True when no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.open_start == 0
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.closed.capacity() * std::mem::size_of::<f64>()
    }

    /// The open window as (start, peak), and each non-empty closed window as (start, peak),
    /// newest first (for checkpoints).
    pub fn parts(&self) -> ((i64, f64), Vec<(i64, f64)>) {
        let closed = self
            .closed
            .iter()
            .enumerate()
            .filter(|(_, p)| **p > 0.0)
            .map(|(j, p)| (self.open_start - (j as i64 + 1) * WINDOW_SECONDS, *p))
            .collect();
        ((self.open_start, self.open_peak), closed)
    }

    /// Rebuilds the record from [`WindowPeaks::parts`]: the same parts give the same record.
    /// Closed windows that do not start on a window boundary before the open one, or that are
    /// older than [`WINDOW_COUNT`] windows, are ignored.
    pub fn from_parts(open: (i64, f64), closed: &[(i64, f64)]) -> WindowPeaks {
        let mut w = WindowPeaks {
            open_start: open.0,
            open_peak: open.1,
            closed: Vec::new(),
        };
        for (start, peak) in closed {
            let back = open.0 - start;
            if back <= 0 || back % WINDOW_SECONDS != 0 {
                continue;
            }
            let j = (back / WINDOW_SECONDS - 1) as usize;
            if j >= WINDOW_COUNT {
                continue;
            }
            if w.closed.len() <= j {
                w.closed.resize(j + 1, 0.0);
            }
            w.closed[j] = *peak;
        }
        while w.closed.last() == Some(&0.0) {
            w.closed.pop();
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = WINDOW_SECONDS;

    #[test]
    fn peaks_per_window_table() {
        let mut w = WindowPeaks::new();
        assert!(w.is_empty());
        assert_eq!(w.max(4), 0.0);
        // (at, value, closes a window, max of open + 1 closed, max of open + 4 closed)
        let table = [
            (10 * W, 1.0, false, 1.0, 1.0),
            (10 * W + 60, 3.0, false, 3.0, 3.0),
            (10 * W + 120, 2.0, false, 3.0, 3.0),
            (11 * W, 0.5, true, 3.0, 3.0),
            (12 * W + 1, 0.2, true, 0.5, 3.0),
            (15 * W, 0.1, true, 0.1, 0.5),
            (16 * W, 0.1, true, 0.1, 0.2),
        ];
        for (at, value, closes, max1, max4) in table {
            assert_eq!(w.add(at, value), closes, "at {at}");
            assert_eq!((w.max(1), w.max(4)), (max1, max4), "at {at}");
        }
        assert_eq!(w.open_peak(), 0.1);
        assert_eq!(w.closed_max(1), 0.1);
    }

    #[test]
    fn a_long_gap_forgets_everything_but_a_day() {
        let mut w = WindowPeaks::new();
        w.add(W * 1000, 5.0);
        w.add(W * 2000, 1.0);
        assert_eq!(w.max(WINDOW_COUNT), 1.0);
        assert!(w.closed.is_empty());
        assert!(!w.add(W * 2000 + 5, -1.0));
        assert!(!w.add(W * 2000 + 5, f64::NAN));
    }

    #[test]
    fn parts_round_trip() {
        let mut w = WindowPeaks::new();
        for i in 0..300 {
            w.add(i * 300, ((i * 37) % 11) as f64);
        }
        let (open, closed) = w.parts();
        let back = WindowPeaks::from_parts(open, &closed);
        for k in [0, 1, 4, 16, 96] {
            assert_eq!(back.max(k), w.max(k), "{k}");
        }
        let (open2, closed2) = back.parts();
        assert_eq!((open2, closed2), (open, closed));
    }
}
