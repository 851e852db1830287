//! From a forecast to replicas, and the one rule that joins them to the reactive count.
//!
//! The predicted count is the forecast load divided by what one replica should carry at the
//! target, rounded up. The count used is `max(reactive, min(predicted, maxReplicas))`: the
//! forecast can only add replicas, never take any away, and never past `maxReplicas`; with a
//! reactive count within `[minReplicas, maxReplicas]` the result stays within them too.

/// Replicas needed to carry `load` at `per_replica` each, rounded up; `None` when either is not
/// a finite number, `per_replica` is not positive or `load` is negative.
pub fn needed(load: f64, per_replica: f64) -> Option<u32> {
    if !load.is_finite() || !per_replica.is_finite() || per_replica <= 0.0 || load < 0.0 {
        return None;
    }
    let replicas = (load / per_replica).ceil();
    // A tiny relative excess from rounding (4.0000000001) is not a fifth replica.
    let replicas = if replicas - load / per_replica > 1.0 - 1e-9 {
        replicas - 1.0
    } else {
        replicas
    };
    Some(if replicas >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        replicas as u32
    })
}

/// The replica count when the forecast is used: `max(reactive, min(predicted, max))`; the
/// reactive count alone without a prediction.
pub fn combine(reactive: u32, predicted: Option<u32>, max: u32) -> u32 {
    predicted.map_or(reactive, |predicted| reactive.max(predicted.min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_rounds_up_and_refuses_nonsense() {
        assert_eq!(needed(10.0, 3.0), Some(4));
        assert_eq!(needed(9.0, 3.0), Some(3));
        assert_eq!(needed(0.3 * 3.0, 0.3), Some(3));
        assert_eq!(needed(0.0, 3.0), Some(0));
        assert_eq!(needed(1e30, 1.0), Some(u32::MAX));
        assert_eq!(needed(-1.0, 3.0), None);
        assert_eq!(needed(1.0, 0.0), None);
        assert_eq!(needed(f64::NAN, 1.0), None);
    }

    #[test]
    fn combine_only_adds_within_max() {
        assert_eq!(combine(3, Some(5), 10), 5);
        assert_eq!(combine(3, Some(2), 10), 3);
        assert_eq!(combine(3, Some(50), 10), 10);
        assert_eq!(combine(3, None, 10), 3);
    }
}
