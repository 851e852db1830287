//! Where the reconcilers read the time. The decision cores take `now` as an argument; the shells
//! take it from the [`Clock`] they are given: the system clock in production, a clock the test
//! sets (and moves) in tests, so a timeout or an expiry can be tested without waiting for it.

use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// The wall clock of a controller: cheap to clone, every clone reads the same time.
#[derive(Clone, Default)]
pub struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    /// The system clock.
    #[default]
    System,
    /// A time that moves only when told to.
    Manual(Arc<Mutex<Timestamp>>),
}

impl Clock {
    /// The system clock (what production runs with; also the default).
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock standing at `start` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(start: Timestamp) -> Clock {
        Clock(Source::Manual(Arc::new(Mutex::new(start))))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Source::System => Timestamp::now(),
            Source::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Sets a manual clock to `to` (the system clock ignores it).
    pub fn set(&self, to: Timestamp) {
        if let Source::Manual(t) = &self.0 {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = to;
        }
    }

    /// Moves a manual clock on by `by` (the system clock ignores it; a move past the end of
    /// time stays where it was).
    pub fn advance(&self, by: SignedDuration) {
        if let Source::Manual(t) = &self.0 {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(moved) = t.checked_add(by) {
                *t = moved;
            }
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system()"),
            Source::Manual(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_secs(90));
        assert_eq!(other.now(), start + SignedDuration::from_secs(90));
        other.set(start);
        assert_eq!(clock.now(), start);
        assert!(Clock::system().now() > start - SignedDuration::from_hours(24 * 365 * 10));
    }
}
