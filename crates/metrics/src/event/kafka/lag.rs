//! The lag arithmetic of the Kafka source, pure: given each partition's offsets, the previous
//! read's committed offsets and the source's rules, the metric value and the replica cap. No I/O,
//! no clock: the same offsets always give the same answer.
//!
//! Per partition, lag = log-end offset − committed offset (never below 0). A partition without a
//! committed offset counts 1 under `offsetResetPolicy: latest` (0 with
//! `scaleToZeroOnInvalidOffset`), and every record it holds (log-end − log-start) under `earliest`.
//! With `excludePersistentLag`, a partition whose committed offset equals the previous read's
//! counts 0. Without `allowIdleConsumers`, the replicas the lag asks for are capped at the number
//! of partitions (of partitions with lag under `limitToPartitionsWithLag`): the value is lowered to
//! cap × per-replica target, so an AverageValue target never asks for more.

use std::collections::BTreeMap;

use ballast_api::horizontal::KafkaOffsetResetPolicy;

/// One partition as read from the brokers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionOffsets {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The log-end offset (the offset the next record will get).
    pub(crate) latest: i64,
    /// The log-start offset, when it was read (only needed under `earliest` without a commit).
    pub(crate) earliest: Option<i64>,
    /// The group's committed offset; `None` when the group has none for this partition.
    pub(crate) committed: Option<i64>,
}

/// The committed offsets of a previous read, per (topic, partition).
pub(crate) type Committed = BTreeMap<(String, i32), i64>;

/// The rules of a source (its spec, defaults applied).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LagRules {
    pub(crate) offset_reset_policy: KafkaOffsetResetPolicy,
    pub(crate) scale_to_zero_on_invalid_offset: bool,
    pub(crate) allow_idle_consumers: bool,
    pub(crate) limit_to_partitions_with_lag: bool,
    pub(crate) exclude_persistent_lag: bool,
    /// The per-replica target (an AverageValue target's value); the cap needs it.
    pub(crate) per_replica_target: Option<f64>,
}

/// What the lag comes to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Lag {
    /// The metric value: the counted lag, lowered to the cap when there is one.
    pub(crate) value: f64,
    /// The counted lag before the cap.
    pub(crate) total: i64,
    /// Partitions counted.
    pub(crate) partitions: usize,
    /// Partitions whose counted lag is above 0.
    pub(crate) partitions_with_lag: usize,
    /// Most replicas the lag may ask for (`None` with `allowIdleConsumers`).
    pub(crate) replica_cap: Option<usize>,
}

/// The lag one partition counts for.
fn partition_lag(p: &PartitionOffsets, previous: &Committed, rules: &LagRules) -> i64 {
    let Some(committed) = p.committed else {
        return match rules.offset_reset_policy {
            KafkaOffsetResetPolicy::Latest if rules.scale_to_zero_on_invalid_offset => 0,
            KafkaOffsetResetPolicy::Latest => 1,
            KafkaOffsetResetPolicy::Earliest => (p.latest - p.earliest.unwrap_or(0)).max(0),
        };
    };
    let lag = (p.latest - committed).max(0);
    let stuck = previous.get(&(p.topic.clone(), p.partition)) == Some(&committed);
    if rules.exclude_persistent_lag && stuck && lag > 0 {
        return 0;
    }
    lag
}

/// The lag of `partitions` under `rules`; `previous` holds the committed offsets of the previous
/// read (for `excludePersistentLag`).
pub(crate) fn lag(partitions: &[PartitionOffsets], previous: &Committed, rules: &LagRules) -> Lag {
    let lags: Vec<i64> = partitions
        .iter()
        .map(|p| partition_lag(p, previous, rules))
        .collect();
    let total = lags.iter().fold(0i64, |sum, l| sum.saturating_add(*l));
    let partitions_with_lag = lags.iter().filter(|l| **l > 0).count();
    let replica_cap = match (
        rules.allow_idle_consumers,
        rules.limit_to_partitions_with_lag,
    ) {
        (true, _) => None,
        (false, true) => Some(partitions_with_lag),
        (false, false) => Some(partitions.len()),
    };
    let mut value = total as f64;
    if let (Some(cap), Some(target)) = (replica_cap, rules.per_replica_target)
        && target > 0.0
        && value / target > cap as f64
    {
        value = cap as f64 * target;
    }
    Lag {
        value,
        total,
        partitions: partitions.len(),
        partitions_with_lag,
        replica_cap,
    }
}

/// The committed offsets to remember for the next read.
pub(crate) fn committed_offsets(partitions: &[PartitionOffsets]) -> Committed {
    partitions
        .iter()
        .filter_map(|p| Some(((p.topic.clone(), p.partition), p.committed?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use KafkaOffsetResetPolicy::{Earliest, Latest};

    fn p(partition: i32, latest: i64, committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            topic: "jobs".into(),
            partition,
            latest,
            earliest: Some(2),
            committed,
        }
    }

    fn rules() -> LagRules {
        LagRules {
            offset_reset_policy: Latest,
            scale_to_zero_on_invalid_offset: false,
            allow_idle_consumers: true,
            limit_to_partitions_with_lag: false,
            exclude_persistent_lag: false,
            per_replica_target: Some(10.0),
        }
    }

    #[test]
    fn every_rule() {
        let none = Committed::new();
        let stuck: Committed = [(("jobs".to_string(), 0), 5)].into_iter().collect();
        let with = |f: fn(&mut LagRules)| {
            let mut r = rules();
            f(&mut r);
            r
        };
        // (name, partitions, previous, rules, value, total, with lag, cap)
        type Case<'a> = (
            &'a str,
            Vec<PartitionOffsets>,
            &'a Committed,
            LagRules,
            f64,
            i64,
            usize,
            Option<usize>,
        );
        let cases: Vec<Case> = vec![
            (
                "sum over partitions",
                vec![p(0, 50, Some(20)), p(1, 7, Some(7)), p(2, 100, Some(90))],
                &none,
                rules(),
                40.0,
                40,
                2,
                None,
            ),
            (
                "committed past the end counts 0",
                vec![p(0, 5, Some(9))],
                &none,
                rules(),
                0.0,
                0,
                0,
                None,
            ),
            (
                "no commit, latest: 1",
                vec![p(0, 50, None), p(1, 9, Some(4))],
                &none,
                rules(),
                6.0,
                6,
                2,
                None,
            ),
            (
                "no commit, latest, scale to zero: 0",
                vec![p(0, 50, None)],
                &none,
                with(|r| r.scale_to_zero_on_invalid_offset = true),
                0.0,
                0,
                0,
                None,
            ),
            (
                "no commit, earliest: every record held",
                vec![p(0, 50, None)],
                &none,
                with(|r| r.offset_reset_policy = Earliest),
                48.0,
                48,
                1,
                None,
            ),
            (
                "earliest ignores scale to zero",
                vec![p(0, 50, None)],
                &none,
                with(|r| {
                    r.offset_reset_policy = Earliest;
                    r.scale_to_zero_on_invalid_offset = true
                }),
                48.0,
                48,
                1,
                None,
            ),
            (
                "persistent lag counted by default",
                vec![p(0, 50, Some(5))],
                &stuck,
                rules(),
                45.0,
                45,
                1,
                None,
            ),
            (
                "persistent lag excluded",
                vec![p(0, 50, Some(5)), p(1, 30, Some(10))],
                &stuck,
                with(|r| r.exclude_persistent_lag = true),
                20.0,
                20,
                1,
                None,
            ),
            (
                "moved offset is not persistent",
                vec![p(0, 50, Some(6))],
                &stuck,
                with(|r| r.exclude_persistent_lag = true),
                44.0,
                44,
                1,
                None,
            ),
            (
                "capped at partitions",
                vec![p(0, 500, Some(0)), p(1, 500, Some(0)), p(2, 0, Some(0))],
                &none,
                with(|r| r.allow_idle_consumers = false),
                30.0,
                1000,
                2,
                Some(3),
            ),
            (
                "under the cap: unchanged",
                vec![p(0, 5, Some(0)), p(1, 4, Some(0))],
                &none,
                with(|r| r.allow_idle_consumers = false),
                9.0,
                9,
                2,
                Some(2),
            ),
            (
                "capped at partitions with lag",
                vec![p(0, 500, Some(0)), p(1, 500, Some(0)), p(2, 0, Some(0))],
                &none,
                with(|r| {
                    r.allow_idle_consumers = false;
                    r.limit_to_partitions_with_lag = true
                }),
                20.0,
                1000,
                2,
                Some(2),
            ),
            (
                "no target: cap reported, value kept",
                vec![p(0, 500, Some(0))],
                &none,
                with(|r| {
                    r.allow_idle_consumers = false;
                    r.per_replica_target = None
                }),
                500.0,
                500,
                1,
                Some(1),
            ),
            (
                "no partitions",
                vec![],
                &none,
                with(|r| r.allow_idle_consumers = false),
                0.0,
                0,
                0,
                Some(0),
            ),
        ];
        for (name, parts, previous, r, value, total, with_lag, cap) in cases {
            let got = lag(&parts, previous, &r);
            assert_eq!(
                (
                    got.value,
                    got.total,
                    got.partitions_with_lag,
                    got.replica_cap
                ),
                (value, total, with_lag, cap),
                "{name}"
            );
            assert_eq!(got.partitions, parts.len(), "{name}");
        }
    }

    #[test]
    fn remembers_only_committed_partitions() {
        let got = committed_offsets(&[p(0, 9, Some(3)), p(1, 9, None)]);
        assert_eq!(got, [(("jobs".to_string(), 0), 3)].into_iter().collect());
    }
}
