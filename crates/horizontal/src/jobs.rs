//! How many Jobs a `JobAutoscaler` starts: a pure function of the triggers' backlogs, the Jobs
//! already unfinished and the object's strategy. The `jobs` controller calls it once per pass.
//!
//! Terms: a trigger's *wanted* Jobs are `ceil(backlog / work per Job)`; triggers combine by
//! `multipleScalersCalculation` into `wanted`, capped at `maxReplicaCount`. *Active* Jobs are the
//! unfinished ones (running or pending); *pending* ones are those whose pods have not started.

use ballast_api::jobs::{JobScalingStrategy, MultipleScalersCalculation};

/// One trigger's reading: its backlog and the work one Job takes (both > 0 for a target).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueReading {
    /// Items waiting (a list's length, a consumer group's lag, ...).
    pub backlog: f64,
    /// Items one Job takes (the trigger's target).
    pub per_job: f64,
}

/// The object's settings the arithmetic reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobLimits {
    pub strategy: JobScalingStrategy,
    pub combine: MultipleScalersCalculation,
    /// `maxReplicaCount`.
    pub max: u32,
    /// `minReplicaCount` (capped at `max`).
    pub min: u32,
    /// `customScalingQueueLengthDeduction` (custom only; 0 otherwise).
    pub deduction: i64,
    /// `customScalingRunningJobPercentage`, 0 to 1 (custom only; 0 otherwise).
    pub running_share: f64,
}

/// The Jobs already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct JobCounts {
    /// Unfinished Jobs (running or pending).
    pub active: u32,
    /// Of those, Jobs whose pods have not started.
    pub pending: u32,
}

/// The decision of one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobPlan {
    /// Jobs the backlog asks for (combined, capped at `max`).
    pub wanted: u32,
    /// Jobs to start now.
    pub start: u32,
    /// Whether any trigger has work (backlog above zero).
    pub active: bool,
}

/// A trigger's wanted Jobs: `ceil(backlog / per_job)`, 0 for an empty or negative backlog.
pub fn wanted_by(reading: QueueReading) -> u64 {
    let positive = |v: f64| v.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater);
    if !positive(reading.backlog) || !positive(reading.per_job) {
        return 0;
    }
    let jobs = (reading.backlog / reading.per_job).ceil();
    if jobs >= u64::MAX as f64 {
        u64::MAX
    } else {
        jobs as u64
    }
}

/// The triggers' wanted Jobs combined (`avg` rounds up), 0 without triggers.
pub fn combine(readings: &[QueueReading], how: MultipleScalersCalculation) -> u64 {
    let each = readings.iter().map(|r| wanted_by(*r));
    match how {
        MultipleScalersCalculation::Max => each.max().unwrap_or(0),
        MultipleScalersCalculation::Min => each.min().unwrap_or(0),
        MultipleScalersCalculation::Sum => each.fold(0u64, u64::saturating_add),
        MultipleScalersCalculation::Avg => {
            let n = readings.len() as u64;
            if n == 0 {
                return 0;
            }
            each.fold(0u64, u64::saturating_add).div_ceil(n)
        }
    }
}

/// Jobs to start for `readings` with `counts` already there under `limits`.
///
/// With `wanted` the combined Jobs capped at `max`, `a` the active and `p` the pending Jobs:
/// - default: `wanted − a`;
/// - custom: `wanted − deduction − ⌊a × running_share⌋`;
/// - accurate: `max − a` when `wanted + a > max`, else `wanted − p`;
/// - eager: `min(max − a, wanted)`;
///
/// then never below `min − a` (the Jobs kept at all times), never so many that `a + start`
/// exceeds `max`, and never negative.
pub fn plan(readings: &[QueueReading], counts: JobCounts, limits: JobLimits) -> JobPlan {
    let max = i64::from(limits.max);
    let wanted = i64::try_from(combine(readings, limits.combine))
        .unwrap_or(i64::MAX)
        .min(max);
    let active = i64::from(counts.active);
    let pending = i64::from(counts.pending.min(counts.active));
    let by_strategy = match limits.strategy {
        JobScalingStrategy::Default => wanted - active,
        JobScalingStrategy::Custom => {
            let share = limits.running_share.clamp(0.0, 1.0);
            let running_part = (active as f64 * share).floor() as i64;
            wanted - limits.deduction - running_part
        }
        JobScalingStrategy::Accurate => {
            if wanted + active > max {
                max - active
            } else {
                wanted - pending
            }
        }
        JobScalingStrategy::Eager => (max - active).min(wanted),
    };
    let floor = i64::from(limits.min.min(limits.max)) - active;
    let room = max - active;
    let start = by_strategy.max(floor).min(room).max(0);
    JobPlan {
        wanted: u32::try_from(wanted.max(0)).unwrap_or(u32::MAX),
        start: u32::try_from(start).unwrap_or(u32::MAX),
        active: readings.iter().any(|r| r.backlog > 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobScalingStrategy::{Accurate, Custom, Default, Eager};

    fn limits(strategy: JobScalingStrategy, max: u32) -> JobLimits {
        JobLimits {
            strategy,
            combine: MultipleScalersCalculation::Max,
            max,
            min: 0,
            deduction: 0,
            running_share: 0.0,
        }
    }

    fn one(backlog: f64, per_job: f64) -> Vec<QueueReading> {
        vec![QueueReading { backlog, per_job }]
    }

    fn counts(active: u32, pending: u32) -> JobCounts {
        JobCounts { active, pending }
    }

    /// (strategy, backlog, per job, active, pending, max, jobs to start)
    const TABLE: &[(JobScalingStrategy, f64, f64, u32, u32, u32, u32)] = &[
        // The bed's case: 5 items, 1 per job, max 3.
        (Default, 5.0, 1.0, 0, 0, 3, 3),
        (Default, 0.0, 1.0, 0, 0, 3, 0),
        (Default, 5.0, 1.0, 3, 0, 3, 0),
        (Default, 5.0, 2.0, 0, 0, 10, 3),
        (Default, 5.0, 2.0, 1, 0, 10, 2),
        (Default, 3.0, 1.0, 3, 0, 10, 0),
        (Default, 2.0, 1.0, 4, 0, 10, 0),
        // Accurate: the backlog excludes work in progress, pending Jobs will take some.
        (Accurate, 3.0, 1.0, 3, 0, 10, 3),
        (Accurate, 3.0, 1.0, 3, 2, 10, 1),
        (Accurate, 8.0, 1.0, 5, 0, 10, 5),
        (Accurate, 8.0, 1.0, 5, 1, 10, 5),
        (Accurate, 3.0, 1.0, 4, 4, 10, 0),
        (Accurate, 10.0, 1.0, 10, 0, 10, 0),
        // Eager: every free slot up to max, as far as the backlog goes.
        (Eager, 3.0, 1.0, 3, 0, 10, 3),
        (Eager, 10.0, 1.0, 3, 0, 10, 7),
        (Eager, 20.0, 1.0, 3, 0, 10, 7),
        (Eager, 0.0, 1.0, 3, 0, 10, 0),
        (Eager, 5.0, 1.0, 10, 0, 10, 0),
    ];

    #[test]
    fn strategies_follow_their_arithmetic() {
        for &(strategy, backlog, per_job, active, pending, max, want) in TABLE {
            let got = plan(
                &one(backlog, per_job),
                counts(active, pending),
                limits(strategy, max),
            );
            assert_eq!(
                got.start, want,
                "{strategy:?} backlog {backlog}/{per_job} active {active} pending {pending} max {max}"
            );
        }
    }

    #[test]
    fn custom_deducts_a_constant_and_a_share_of_active_jobs() {
        let custom = |deduction, share, backlog, active| {
            let l = JobLimits {
                deduction,
                running_share: share,
                ..limits(Custom, 100)
            };
            plan(&one(backlog, 1.0), counts(active, 0), l).start
        };
        // No deduction and no share: all the backlog, running Jobs ignored.
        assert_eq!(custom(0, 0.0, 10.0, 4), 10);
        // Share 1 is the default strategy.
        assert_eq!(custom(0, 1.0, 10.0, 4), 6);
        assert_eq!(custom(1, 0.5, 10.0, 4), 7);
        // Half of 3 running Jobs rounds down to 1.
        assert_eq!(custom(0, 0.5, 10.0, 3), 9);
        assert_eq!(custom(20, 0.0, 10.0, 0), 0);
        // Negative deductions add Jobs, within max.
        let l = JobLimits {
            deduction: -5,
            ..limits(Custom, 12)
        };
        assert_eq!(plan(&one(10.0, 1.0), counts(0, 0), l).start, 12);
    }

    #[test]
    fn min_keeps_jobs_without_work_and_max_caps_every_strategy() {
        for strategy in [Default, Custom, Accurate, Eager] {
            let l = JobLimits {
                min: 2,
                ..limits(strategy, 5)
            };
            assert_eq!(plan(&one(0.0, 1.0), counts(0, 0), l).start, 2);
            assert_eq!(plan(&one(0.0, 1.0), counts(1, 0), l).start, 1);
            assert_eq!(plan(&one(0.0, 1.0), counts(3, 0), l).start, 0);
            assert_eq!(plan(&one(1e12, 1.0), counts(4, 0), l).start, 1);
            assert_eq!(plan(&one(1e12, 1.0), counts(9, 0), l).start, 0);
        }
        let zero = limits(Eager, 0);
        assert_eq!(plan(&one(5.0, 1.0), counts(0, 0), zero).start, 0);
    }

    #[test]
    fn triggers_combine_as_asked() {
        let readings = [
            QueueReading {
                backlog: 5.0,
                per_job: 1.0,
            },
            QueueReading {
                backlog: 4.0,
                per_job: 2.0,
            },
        ];
        let table = [
            (MultipleScalersCalculation::Max, 5),
            (MultipleScalersCalculation::Min, 2),
            (MultipleScalersCalculation::Avg, 4),
            (MultipleScalersCalculation::Sum, 7),
        ];
        for (how, want) in table {
            assert_eq!(combine(&readings, how), want, "{how:?}");
            let l = JobLimits {
                combine: how,
                ..limits(Default, 100)
            };
            assert_eq!(u64::from(plan(&readings, counts(0, 0), l).wanted), want);
        }
        assert_eq!(combine(&[], MultipleScalersCalculation::Avg), 0);
    }

    #[test]
    fn odd_readings_ask_for_nothing() {
        for (backlog, per_job) in [(-3.0, 1.0), (3.0, 0.0), (f64::NAN, 1.0), (3.0, f64::NAN)] {
            assert_eq!(wanted_by(QueueReading { backlog, per_job }), 0);
        }
        assert_eq!(
            wanted_by(QueueReading {
                backlog: 0.5,
                per_job: 1.0
            }),
            1
        );
        let p = plan(&one(0.0, 1.0), counts(0, 0), limits(Default, 3));
        assert!(!p.active);
        // Pending above active (a racy list) is read as all active pending.
        let p = plan(&one(3.0, 1.0), counts(1, 5), limits(Accurate, 10));
        assert_eq!(p.start, 2);
    }
}
