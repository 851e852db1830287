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

/// What the pending count reads of one unfinished Job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnfinishedJob {
    /// Its pods that are ready or succeeded (the Job's `status.ready + status.succeeded`).
    pub started_pods: u32,
    /// For each of its pods, the types of the pod's conditions whose status is True.
    pub pods: Vec<Vec<String>>,
}

/// Whether `job` counts as pending.
///
/// With `required` conditions (`pendingPodConditions`), until one of its pods has every one of
/// them True; without, until one of its pods is ready or has succeeded.
pub fn is_pending(job: &UnfinishedJob, required: &[String]) -> bool {
    if required.is_empty() {
        return job.started_pods == 0;
    }
    !job.pods
        .iter()
        .any(|pod| required.iter().all(|c| pod.contains(c)))
}

/// The pending Jobs among `jobs` (see [`is_pending`]).
pub fn pending_count(jobs: &[UnfinishedJob], required: &[String]) -> u32 {
    let n = jobs.iter().filter(|j| is_pending(j, required)).count();
    u32::try_from(n).unwrap_or(u32::MAX)
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
/// With `wanted` the combined Jobs capped at `max`, `r` the *running* Jobs (the active ones
/// beyond `min`: the Jobs kept at all times wait for work and take none of the backlog) and `p`
/// the pending Jobs:
/// - default: `wanted − r`;
/// - custom: `min(wanted − deduction − ⌊r × running_share⌋, max)`;
/// - accurate: `max − r` when `wanted + r > max`, else `wanted − p`;
/// - eager: `min(max − r − p, wanted)`;
///
/// then never below `min − active` (the Jobs kept at all times), never so many that
/// `active + start` exceeds `max`, and never negative.
pub fn plan(readings: &[QueueReading], counts: JobCounts, limits: JobLimits) -> JobPlan {
    let max = i64::from(limits.max);
    let wanted = i64::try_from(combine(readings, limits.combine))
        .unwrap_or(i64::MAX)
        .min(max);
    let active = i64::from(counts.active);
    let pending = i64::from(counts.pending.min(counts.active));
    let min = i64::from(limits.min.min(limits.max));
    let running = (active - min).max(0);
    let by_strategy = match limits.strategy {
        JobScalingStrategy::Default => wanted - running,
        JobScalingStrategy::Custom => {
            let share = limits.running_share.clamp(0.0, 1.0);
            let running_part = (running as f64 * share).floor() as i64;
            (wanted - limits.deduction - running_part).min(max)
        }
        JobScalingStrategy::Accurate => {
            if wanted + running > max {
                max - running
            } else {
                wanted - pending
            }
        }
        JobScalingStrategy::Eager => (max - running - pending).min(wanted),
    };
    let floor = min - active;
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

    /// KEDA's documented examples (ScaledJob spec, `maxReplicaCount` and `minReplicaCount`):
    /// (queue length, max, target per Job, min, unfinished Jobs, Jobs started).
    const KEDA_EXAMPLES: &[(f64, u32, f64, u32, u32, u32)] = &[
        (10.0, 3, 1.0, 0, 0, 3),
        (10.0, 3, 2.0, 0, 0, 3),
        (10.0, 3, 1.0, 0, 1, 2),
        (10.0, 100, 1.0, 0, 0, 10),
        (4.0, 3, 5.0, 0, 0, 1),
        // min 2, both Jobs running idle, 3 messages: 3 more Jobs (the kept ones take none).
        (3.0, 100, 1.0, 2, 2, 3),
    ];

    #[test]
    fn default_strategy_matches_kedas_documented_examples() {
        for &(queue, max, per_job, min, active, want) in KEDA_EXAMPLES {
            let l = JobLimits {
                min,
                ..limits(Default, max)
            };
            let got = plan(&one(queue, per_job), counts(active, 0), l).start;
            assert_eq!(
                got, want,
                "queue {queue}/{per_job} max {max} min {min} active {active}"
            );
        }
    }

    #[test]
    fn strategies_count_only_the_jobs_beyond_min_as_running() {
        let with_min = |strategy, backlog, active, pending| {
            let l = JobLimits {
                min: 2,
                running_share: 1.0,
                ..limits(strategy, 10)
            };
            plan(&one(backlog, 1.0), counts(active, pending), l).start
        };
        // 4 unfinished, min 2: 2 running.
        assert_eq!(with_min(Default, 5.0, 4, 0), 3);
        assert_eq!(with_min(Custom, 5.0, 4, 0), 3);
        assert_eq!(with_min(Accurate, 5.0, 4, 1), 4);
        // Accurate past max: max − running, within the room left (10 − 4).
        assert_eq!(with_min(Accurate, 9.0, 4, 0), 6);
        // Eager: the free slots less the pending Jobs.
        assert_eq!(with_min(Eager, 20.0, 4, 0), 6);
        assert_eq!(with_min(Eager, 20.0, 4, 3), 5);
        // Eager without min: slots 10 − 3 running − 3 pending.
        assert_eq!(
            plan(&one(20.0, 1.0), counts(3, 3), limits(Eager, 10)).start,
            4
        );
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
    fn pending_follows_the_listed_pod_conditions() {
        let pod = |types: &[&str]| types.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let job = |started_pods, pods: Vec<Vec<String>>| UnfinishedJob { started_pods, pods };
        let required = vec!["PodScheduled".to_string(), "Initialized".to_string()];
        // (job, conditions required, pending)
        let table = [
            // Without conditions: pending until a pod is ready or succeeded.
            (job(0, vec![]), vec![], true),
            (
                job(0, vec![pod(&["PodScheduled", "Initialized"])]),
                vec![],
                true,
            ),
            (job(1, vec![]), vec![], false),
            // With conditions: the Job's ready pods do not matter, the listed conditions do.
            (job(1, vec![]), required.clone(), true),
            (job(0, vec![pod(&["PodScheduled"])]), required.clone(), true),
            (
                job(0, vec![pod(&["PodScheduled", "Initialized"])]),
                required.clone(),
                false,
            ),
            (
                job(0, vec![pod(&["Ready", "Initialized", "PodScheduled"])]),
                required.clone(),
                false,
            ),
            // Each listed condition on a different pod: no pod has them all.
            (
                job(0, vec![pod(&["PodScheduled"]), pod(&["Initialized"])]),
                required.clone(),
                true,
            ),
            // One pod of two has them all.
            (
                job(0, vec![pod(&[]), pod(&["Initialized", "PodScheduled"])]),
                required.clone(),
                false,
            ),
        ];
        for (j, required, want) in &table {
            assert_eq!(is_pending(j, required), *want, "{j:?} {required:?}");
        }
        let jobs: Vec<_> = table.iter().map(|(j, _, _)| j.clone()).collect();
        assert_eq!(pending_count(&jobs, &[]), 7);
        assert_eq!(pending_count(&jobs, &required), 5);
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
