//! The election's state machine, without I/O: given the Lease as read and the time, what to write
//! (create it, take it over, renew it) or how long to wait; whether this candidate leads.
//!
//! Two clocks: `now` is monotonic (the process's `Instant`), used for every expiry and deadline;
//! `wall` is only written into the record (`acquireTime`, `renewTime`). A candidate does not trust
//! another's wall clock: a lease held by someone else expires `leaseDurationSeconds` after this
//! candidate saw its record change. The moment of the change is taken from the record's
//! `renewTime` but never earlier than one retry period before the read that saw it, so a skewed
//! clock moves an expiry by at most one retry period. The holder stops leading `renew_deadline`
//! after the start of its last successful write; with the defaults (lease 15 s, deadline 10 s,
//! retry 2 s) that is at least 3 s before any other candidate can take the lease over.

use std::time::{Duration, Instant};

use jiff::Timestamp;

/// The timing of an election (defaults: lease 15 s, renew deadline 10 s, retry 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease stays held after its last renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal; shorter than
    /// `lease_duration` so it stops before another candidate may take over.
    pub renew_deadline: Duration,
    /// Time between two attempts (renewals of the holder, reads of a standby).
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why a [`Timing`] cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    /// `renew_deadline` must be shorter than `lease_duration`, and `retry_period` than
    /// `renew_deadline`; all positive, the lease a whole number of seconds of at least one.
    #[error(
        "leader election timing: need 0 < retry period ({retry:?}) < renew deadline ({deadline:?}) < lease duration ({lease:?}), the lease at least 1 s"
    )]
    Order {
        lease: Duration,
        deadline: Duration,
        retry: Duration,
    },
}

impl Timing {
    /// Checks the order retry < deadline < lease.
    pub fn validate(&self) -> Result<(), TimingError> {
        let ok = !self.retry_period.is_zero()
            && self.retry_period < self.renew_deadline
            && self.renew_deadline < self.lease_duration
            && self.lease_duration >= Duration::from_secs(1);
        if ok {
            Ok(())
        } else {
            Err(TimingError::Order {
                lease: self.lease_duration,
                deadline: self.renew_deadline,
                retry: self.retry_period,
            })
        }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// The fields of a Lease's spec an election reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Who holds the lease; `None` (or empty) when free.
    pub holder: Option<String>,
    /// How long the lease stays held after `renew_time`, seconds.
    pub lease_duration_seconds: Option<i32>,
    /// When the current holder acquired it.
    pub acquire_time: Option<Timestamp>,
    /// When the current holder last renewed it.
    pub renew_time: Option<Timestamp>,
    /// How many times the holder changed.
    pub transitions: i32,
}

impl Record {
    /// The holder, when there is one.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What a candidate does after reading the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// There is no Lease: create it with this record.
    Create(Record),
    /// Replace the record just read (guarded by its `resourceVersion`) with this one: a renewal
    /// when this candidate holds the lease, else a take-over of a free or expired lease.
    Write(Record),
    /// Another candidate holds a live lease until `expires` (unless it renews it).
    Wait { holder: String, expires: Instant },
}

/// One candidate's view of the election.
#[derive(Clone, Debug)]
pub struct Election {
    identity: String,
    timing: Timing,
    /// The record as last read or written, and when it was (taken to be) written.
    observed: Option<(Record, Instant)>,
    /// The start of this candidate's last successful write while it holds the lease.
    renewed: Option<Instant>,
}

impl Election {
    /// A candidate named `identity` (unique among the candidates: the pod name).
    pub fn new(identity: impl Into<String>, timing: Timing) -> Election {
        Election {
            identity: identity.into(),
            timing,
            observed: None,
            renewed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timing in force.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Notes the Lease as read at `now` (`None`: it does not exist) and says what to do.
    pub fn step(&mut self, read: Option<&Record>, now: Instant, wall: Timestamp) -> Step {
        let Some(record) = read else {
            self.observed = None;
            return Step::Create(self.acquired(None, wall));
        };
        if self.observed.as_ref().is_none_or(|(r, _)| r != record) {
            let age = record
                .renew_time
                .map(|t| Duration::try_from(wall.duration_since(t)).unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::MAX)
                .min(self.timing.retry_period);
            let at = now.checked_sub(age).unwrap_or(now);
            self.observed = Some((record.clone(), at));
        }
        match record.holder() {
            Some(h) if h == self.identity => Step::Write(self.renewal(record, wall)),
            None => Step::Write(self.acquired(Some(record), wall)),
            Some(h) => {
                let expires = self.expiry(record, now);
                if now >= expires {
                    Step::Write(self.acquired(Some(record), wall))
                } else {
                    if self.renewed.is_some() {
                        // Someone else took it over: this candidate leads no more.
                        self.renewed = None;
                    }
                    Step::Wait {
                        holder: h.to_owned(),
                        expires,
                    }
                }
            }
        }
    }

    /// Notes that `record` (from [`Election::step`]) was written by a request sent at `sent`.
    pub fn written(&mut self, record: Record, sent: Instant) {
        if record.holder() == Some(self.identity.as_str()) {
            self.renewed = Some(sent);
        }
        self.observed = Some((record, sent));
    }

    /// Whether this candidate leads at `now`: it holds the lease and renewed it less than the
    /// renew deadline ago.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.leads_until().is_some_and(|d| now < d)
    }

    /// When this candidate stops leading unless it renews first (`None` when it does not lead).
    pub fn leads_until(&self) -> Option<Instant> {
        self.renewed.map(|t| t + self.timing.renew_deadline)
    }

    /// Whether this candidate led and its renew deadline passed: it must stop writing.
    pub fn lost(&self, now: Instant) -> bool {
        self.leads_until().is_some_and(|d| now >= d)
    }

    /// The record that gives the lease up (no holder, a one-second lease), when this candidate
    /// holds it; written at shutdown so a standby takes over at its next read.
    pub fn release(&self, read: &Record, wall: Timestamp) -> Option<Record> {
        (read.holder() == Some(self.identity.as_str())).then_some(Record {
            holder: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: read.transitions,
        })
    }

    /// Notes that the lease was given up: this candidate leads no more.
    pub fn released(&mut self) {
        self.renewed = None;
        self.observed = None;
    }

    fn expiry(&self, record: &Record, now: Instant) -> Instant {
        let seen = self.observed.as_ref().map_or(now, |(_, t)| *t);
        let seconds = record
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .unwrap_or(self.timing.lease_seconds());
        let lease = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        seen + lease
    }

    fn renewal(&self, record: &Record, wall: Timestamp) -> Record {
        Record {
            holder: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_seconds()),
            acquire_time: record.acquire_time.or(Some(wall)),
            renew_time: Some(wall),
            transitions: record.transitions,
        }
    }

    fn acquired(&self, previous: Option<&Record>, wall: Timestamp) -> Record {
        Record {
            holder: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_seconds()),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: previous.map_or(0, |r| r.transitions.saturating_add(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn wall(start: Timestamp, start_instant: Instant, now: Instant) -> Timestamp {
        start + (now - start_instant)
    }

    fn write(step: Step) -> Record {
        match step {
            Step::Create(r) | Step::Write(r) => r,
            Step::Wait { .. } => panic!("expected a write, got {step:?}"),
        }
    }

    #[test]
    fn the_first_candidate_creates_the_lease_and_leads_until_its_deadline() {
        let t0 = Instant::now();
        let w0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut a = Election::new("a", Timing::default());
        let Step::Create(r) = a.step(None, t0, w0) else {
            panic!()
        };
        assert_eq!(r.holder(), Some("a"));
        assert_eq!(r.lease_duration_seconds, Some(15));
        assert_eq!(r.transitions, 0);
        assert!(!a.is_leader(t0));
        a.written(r.clone(), t0);
        assert!(a.is_leader(t0 + 9 * S));
        assert!(!a.is_leader(t0 + 10 * S));
        assert!(a.lost(t0 + 10 * S));
        // A renewal keeps acquireTime and the transitions, moves renewTime.
        let r2 = write(a.step(Some(&r), t0 + 2 * S, wall(w0, t0, t0 + 2 * S)));
        assert_eq!(r2.acquire_time, r.acquire_time);
        assert_eq!(r2.renew_time, Some(w0 + 2 * S));
        assert_eq!(r2.transitions, 0);
        a.written(r2, t0 + 2 * S);
        assert!(a.is_leader(t0 + 11 * S));
    }

    #[test]
    fn a_standby_waits_for_expiry_then_takes_over() {
        let t0 = Instant::now();
        let w0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let held = Record {
            holder: Some("a".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(w0),
            renew_time: Some(w0),
            transitions: 3,
        };
        let mut b = Election::new("b", Timing::default());
        // Read at once: the record is taken as written when its renewTime says.
        match b.step(Some(&held), t0, w0) {
            Step::Wait { holder, expires } => {
                assert_eq!(holder, "a");
                assert_eq!(expires, t0 + 15 * S);
            }
            s => panic!("{s:?}"),
        }
        // The same record, read again: the expiry does not move.
        assert!(matches!(
            b.step(Some(&held), t0 + 14 * S, w0 + 14 * S),
            Step::Wait { expires, .. } if expires == t0 + 15 * S
        ));
        let r = write(b.step(Some(&held), t0 + 15 * S, w0 + 15 * S));
        assert_eq!(r.holder(), Some("b"));
        assert_eq!(r.transitions, 4);
        assert_eq!(r.acquire_time, Some(w0 + 15 * S));
        b.written(r, t0 + 15 * S);
        assert!(b.is_leader(t0 + 16 * S));
    }

    #[test]
    fn a_renewal_seen_moves_the_expiry() {
        let t0 = Instant::now();
        let w0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut held = Record {
            holder: Some("a".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(w0),
            ..Default::default()
        };
        let mut b = Election::new("b", Timing::default());
        b.step(Some(&held), t0, w0);
        held.renew_time = Some(w0 + 10 * S);
        assert!(matches!(
            b.step(Some(&held), t0 + 11 * S, w0 + 11 * S),
            Step::Wait { expires, .. } if expires == t0 + 25 * S
        ));
    }

    #[test]
    fn a_skewed_renew_time_moves_the_expiry_by_at_most_one_retry_period() {
        let t0 = Instant::now();
        let w0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut b = Election::new("b", Timing::default());
        // The holder's clock is an hour behind: its renewal looks an hour old.
        let old = Record {
            holder: Some("a".into()),
            renew_time: Some(w0 - 3600 * S),
            ..Default::default()
        };
        assert!(matches!(
            b.step(Some(&old), t0 + 100 * S, w0 + 100 * S),
            Step::Wait { expires, .. } if expires == t0 + 113 * S
        ));
        // An hour ahead: taken as written at the read.
        let mut b = Election::new("b", Timing::default());
        let ahead = Record {
            holder: Some("a".into()),
            renew_time: Some(w0 + 3600 * S),
            ..Default::default()
        };
        assert!(matches!(
            b.step(Some(&ahead), t0 + 100 * S, w0 + 100 * S),
            Step::Wait { expires, .. } if expires == t0 + 115 * S
        ));
    }

    #[test]
    fn a_released_lease_is_taken_over_at_once() {
        let t0 = Instant::now();
        let w0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut a = Election::new("a", Timing::default());
        let r = write(a.step(None, t0, w0));
        a.written(r.clone(), t0);
        let released = a.release(&r, w0 + S).expect("a holds it");
        assert_eq!(released.holder(), None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        a.released();
        assert!(!a.is_leader(t0 + S));
        assert!(!a.lost(t0 + 20 * S));
        let mut b = Election::new("b", Timing::default());
        let taken = write(b.step(Some(&released), t0 + 2 * S, w0 + 2 * S));
        assert_eq!(taken.holder(), Some("b"));
        assert_eq!(taken.transitions, 1);
        // Only the holder may release.
        assert_eq!(b.release(&r, w0), None);
    }

    #[test]
    fn a_holder_that_sees_another_holder_leads_no_more() {
        let t0 = Instant::now();
        let w0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut a = Election::new("a", Timing::default());
        let r = write(a.step(None, t0, w0));
        a.written(r, t0);
        let other = Record {
            holder: Some("b".into()),
            renew_time: Some(w0 + 3 * S),
            transitions: 1,
            ..Default::default()
        };
        assert!(matches!(
            a.step(Some(&other), t0 + 3 * S, w0 + 3 * S),
            Step::Wait { .. }
        ));
        assert!(!a.is_leader(t0 + 3 * S));
        assert_eq!(a.leads_until(), None);
    }

    #[test]
    fn timing_order_is_checked() {
        assert_eq!(Timing::default().validate(), Ok(()));
        let bad = Timing {
            renew_deadline: Duration::from_secs(15),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = Timing {
            retry_period: Duration::ZERO,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
