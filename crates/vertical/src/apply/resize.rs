//! The new requests and limits of one container from its recommendation: what the admission
//! webhook writes into a new pod and what an in-place resize asks for.
//!
//! Per resource with a target:
//! 1. the request becomes the target, kept within the namespace's LimitRange `min`/`max`;
//! 2. the limit (only when the container has one): with `RequestsOnly` it stays; with
//!    `RequestsAndLimits` it keeps the original limit-to-request ratio, then is capped by the
//!    LimitRange `max` and `maxLimitRequestRatio`, and by [`LIMIT_GROWTH_CAP`] × the new request
//!    or its old value, whichever is larger (ours: VPA issue #5217, a 1m request with a 1-core limit
//!    and a 500m target would get a 500-core limit);
//! 3. a limit is never left below its request.
//!
//! Every adjustment past step 1's plain copy is said in `notes` (the webhook writes them into an
//! annotation), so a user sees why a value is not the recommendation.

use ballast_api::vertical::ControlledValues;

use crate::policy::{Resource, scaled_limit};

/// A scaled limit is at most this many times the new request, unless it was already higher.
pub const LIMIT_GROWTH_CAP: f64 = 10.0;

/// One resource's values, base units (cores or bytes); None: not set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    pub request: Option<f64>,
    pub limit: Option<f64>,
}

/// A container LimitRange's bounds for one resource (`type: Container`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimitRangeBounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_limit_request_ratio: Option<f64>,
}

/// A resource's new values, and why they differ from the plain recommendation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resized {
    pub values: Values,
    pub notes: Vec<String>,
}

/// The new values of `resource` for a container whose values are `current`, towards `target`.
pub fn resize(
    resource: Resource,
    current: Values,
    target: f64,
    controlled: ControlledValues,
    bounds: LimitRangeBounds,
) -> Resized {
    let name = resource.name();
    let mut notes = Vec::new();
    let mut request = target;
    if let Some(min) = bounds.min.filter(|m| request < *m) {
        notes.push(format!("{name} request raised to the LimitRange min"));
        request = min;
    }
    if let Some(max) = bounds.max.filter(|m| request > *m) {
        notes.push(format!("{name} request lowered to the LimitRange max"));
        request = max;
    }
    // A container with a limit and no request gets request = limit from the API server.
    let original_request = current.request.or(current.limit).unwrap_or(0.0);
    let limit = scaled_limit(controlled, original_request, current.limit, request)
        .map(|l| cap_limit(name, l, request, current.limit, bounds, &mut notes));
    let limit = limit.map(|l| {
        if l < request {
            notes.push(format!("{name} limit raised to the new request"));
            request
        } else {
            l
        }
    });
    Resized {
        values: Values {
            request: Some(request),
            limit,
        },
        notes,
    }
}

fn cap_limit(
    name: &str,
    scaled: f64,
    request: f64,
    original: Option<f64>,
    bounds: LimitRangeBounds,
    notes: &mut Vec<String>,
) -> f64 {
    let mut limit = scaled;
    let growth_cap = (request * LIMIT_GROWTH_CAP).max(original.unwrap_or(0.0));
    if limit > growth_cap {
        notes.push(format!(
            "{name} limit capped at {LIMIT_GROWTH_CAP}× the new request (the kept ratio gave {})",
            short(scaled)
        ));
        limit = growth_cap;
    }
    if let Some(ratio) = bounds
        .max_limit_request_ratio
        .filter(|r| limit > request * r)
    {
        notes.push(format!(
            "{name} limit capped by the LimitRange maxLimitRequestRatio"
        ));
        limit = request * ratio;
    }
    if let Some(max) = bounds.max.filter(|m| limit > *m) {
        notes.push(format!("{name} limit capped at the LimitRange max"));
        limit = max;
    }
    limit
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0}Mi", v / (1024.0 * 1024.0))
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AND_LIMITS: ControlledValues = ControlledValues::RequestsAndLimits;
    const ONLY: ControlledValues = ControlledValues::RequestsOnly;

    fn v(request: Option<f64>, limit: Option<f64>) -> Values {
        Values { request, limit }
    }

    #[test]
    fn table() {
        let none = LimitRangeBounds::default();
        let range = LimitRangeBounds {
            min: Some(0.1),
            max: Some(2.0),
            max_limit_request_ratio: Some(4.0),
        };
        // (current, target, controlled values, limit range, expected request, expected limit, notes)
        let cases = [
            (
                v(Some(0.5), Some(1.0)),
                0.25,
                AND_LIMITS,
                none,
                0.25,
                Some(0.5),
                0,
            ),
            (
                v(Some(0.5), Some(1.0)),
                0.25,
                ONLY,
                none,
                0.25,
                Some(1.0),
                0,
            ),
            (v(Some(0.5), None), 0.25, AND_LIMITS, none, 0.25, None, 0),
            (
                v(None, Some(1.0)),
                0.25,
                AND_LIMITS,
                none,
                0.25,
                Some(0.25),
                0,
            ),
            (v(None, None), 0.3, AND_LIMITS, none, 0.3, None, 0),
            // #5217: a 1000× ratio is not carried to a large request
            (
                v(Some(0.001), Some(1.0)),
                0.5,
                AND_LIMITS,
                none,
                0.5,
                Some(5.0),
                1,
            ),
            // an old limit above 10× stays where it was, never higher
            (
                v(Some(0.1), Some(8.0)),
                0.2,
                AND_LIMITS,
                none,
                0.2,
                Some(8.0),
                1,
            ),
            // RequestsOnly with a limit below the new request: raised to it
            (v(Some(0.5), Some(1.0)), 1.5, ONLY, none, 1.5, Some(1.5), 1),
            // LimitRange: request raised to min, limit by ratio within 4×
            (
                v(Some(0.5), Some(1.0)),
                0.05,
                AND_LIMITS,
                range,
                0.1,
                Some(0.2),
                1,
            ),
            // LimitRange: request lowered to max; the ratio (2) within 4×; the limit capped at max
            (
                v(Some(0.5), Some(1.0)),
                3.0,
                AND_LIMITS,
                range,
                2.0,
                Some(2.0),
                2,
            ),
            // LimitRange ratio: 1.0/0.1 = 10 > 4
            (
                v(Some(0.1), Some(1.0)),
                0.2,
                AND_LIMITS,
                range,
                0.2,
                Some(0.8),
                1,
            ),
        ];
        for (i, (current, target, controlled, bounds, request, limit, notes)) in
            cases.into_iter().enumerate()
        {
            let r = resize(Resource::Cpu, current, target, controlled, bounds);
            assert_eq!(r.values.request, Some(request), "case {i}: {r:?}");
            match (r.values.limit, limit) {
                (Some(got), Some(want)) => assert!((got - want).abs() < 1e-9, "case {i}: {r:?}"),
                (got, want) => assert_eq!(got, want, "case {i}: {r:?}"),
            }
            assert_eq!(r.notes.len(), notes, "case {i}: {:?}", r.notes);
        }
    }

    proptest! {
        #[test]
        fn limits_stay_sane(
            request in proptest::option::of(0.001f64..64.0),
            limit in proptest::option::of(0.001f64..512.0),
            target in 0.001f64..64.0,
            only in any::<bool>(),
        ) {
            let controlled = if only { ONLY } else { AND_LIMITS };
            let r = resize(Resource::Cpu, v(request, limit), target, controlled, LimitRangeBounds::default());
            prop_assert_eq!(r.values.request, Some(target));
            prop_assert_eq!(r.values.limit.is_some(), limit.is_some());
            if let Some(l) = r.values.limit {
                prop_assert!(l >= target - 1e-12);
                prop_assert!(l <= (target * LIMIT_GROWTH_CAP).max(limit.unwrap_or(0.0)) + 1e-9);
            }
        }
    }
}
