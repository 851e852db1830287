//! How soon a failed watch is tried again.
//!
//! kube-runtime's default (client-go's reflector backoff: 0.8 s doubling up to 30 s, reset only
//! after 2 minutes without a call) is kind to a struggling API server but slow to notice one
//! that came back: after a 5 s restart of the API server every watch had failed a handful of
//! times, the next try was up to 30 s away, and the first try after the restart fails once more
//! (its resource version is too old for the new watch cache), so NodeClaims waited 28 s and 82 s
//! for their launch. A controller's watches all talk to one API server and each retry is one
//! request, so [`WatchBackoff`] retries at 200 ms, doubling up to 2 s, and starts again from
//! 200 ms after the first event that arrives.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The first wait after a failed watch.
pub const FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries.
pub const MAX: Duration = Duration::from_secs(2);

/// Waits [`FIRST`], doubling up to [`MAX`], between failed tries of a watch; `reset` (on any
/// event received) starts again from [`FIRST`]. Never gives up.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (wait * 2).min(MAX);
        Some(wait)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_again_after_a_reset() {
        let mut b = WatchBackoff::default();
        let millis: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(millis, vec![200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(FIRST));
    }
}
