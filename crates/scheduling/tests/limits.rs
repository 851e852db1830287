//! NodePool limits hold whichever instance type a new NodeClaim is launched as: the cloud falls
//! back from the cheapest option to the others, so every option must fit beside the pool's other
//! claims (counted at their cheapest types, the ones they get).

mod common;

use ballast_scheduling::*;
use common::*;

/// vCPUs of a catalog type (`c-4` → 4).
fn cpus(instance_type: &str) -> i64 {
    instance_type
        .strip_prefix("c-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(i64::MAX)
}

#[test]
fn every_launch_option_fits_the_pool_limits() {
    // (cpu limit in vCPUs, pods, millicores each)
    let table = [
        (2, 1, 1),
        (6, 3, 1500),
        (16, 10, 3500),
        (5, 4, 900),
        (20, 12, 1000),
    ];
    for (limit, n, millis) in table {
        let mut s = snapshot(pods("web", n, millis, 128));
        s.node_pools[0].limits = Some(Resources::cpu_mem(limit * 1000, 1 << 40));
        let sol = solve_ok(&s);
        assert!(!sol.new_claims.is_empty(), "limit {limit}: no claim");
        // Each claim counts at its cheapest type (what it gets); any option it may fall back to
        // fits beside the other claims' cheapest types.
        let cheapest_total: i64 = sol.new_claims.iter().map(|c| cpus(&c.instance_type)).sum();
        assert!(
            cheapest_total <= limit,
            "limit {limit}: {cheapest_total} vCPUs planned"
        );
        for c in &sol.new_claims {
            let others = cheapest_total - cpus(&c.instance_type);
            let largest = c
                .instance_type_options
                .iter()
                .map(|t| cpus(t))
                .max()
                .unwrap_or(0);
            assert!(
                others + largest <= limit,
                "limit {limit}: {} may launch as {:?} beside {others} vCPUs",
                c.name,
                c.instance_type_options
            );
        }
    }
}

#[test]
fn limits_narrow_before_min_values_are_checked() {
    // (minValues, cpu limit in vCPUs, whether a claim is made)
    let table = [(2, 4, true), (3, 4, false), (3, 8, true), (1, 2, true)];
    for (min, limit, launches) in table {
        let mut s = snapshot(pods("web", 1, 500, 128));
        let mut r = Requirement::new(labels::INSTANCE_TYPE, Operator::Exists, &[]);
        r.min_values = Some(min);
        s.node_pools[0].requirements.push(r);
        s.node_pools[0].limits = Some(Resources::cpu_mem(limit * 1000, 1 << 40));
        let sol = solve_ok(&s);
        assert_eq!(
            !sol.new_claims.is_empty(),
            launches,
            "minValues {min}, limit {limit}: {:?} / {}",
            sol.new_claims
                .iter()
                .map(|c| &c.instance_type_options)
                .collect::<Vec<_>>(),
            why(&sol, "web-0")
        );
        for c in &sol.new_claims {
            assert!(c.instance_type_options.len() >= min as usize);
            assert!(c.instance_type_options.iter().all(|t| cpus(t) <= limit));
        }
    }
}
