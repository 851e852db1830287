//! Table tests: one or more cases per constraint the solver honours. Every solve also goes through
//! the independent checker (`solve_ok`).

mod common;

use ballast_scheduling::*;
use common::*;

#[test]
fn packs_onto_one_cheapest_node() {
    let s = snapshot(pods("web", 3, 1000, 512));
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 1);
    let c = &sol.new_claims[0];
    assert_eq!(c.instance_type, "c-4", "3 cpu fit the 4-vCPU type");
    assert_eq!(c.capacity_type, "on-demand");
    assert_eq!(c.pods.len(), 3);
    assert!(
        c.instance_type_options
            .starts_with(&["c-4".to_string(), "c-8".to_string()])
    );
    assert!((sol.new_cost() - 0.2).abs() < 1e-9);
}

#[test]
fn existing_then_inflight_then_new() {
    let mut s = snapshot(pods("web", 3, 1500, 512));
    s.nodes.push(node("n1", "zone-a", 2, 4));
    s.in_flight.push(InFlightClaim {
        name: "claim-1".into(),
        node_pool: "default".into(),
        instance_type: "c-2".into(),
        zone: "zone-b".into(),
        capacity_type: "on-demand".into(),
    });
    let sol = solve_ok(&s);
    let targets: Vec<&Target> = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|p| target_of(&sol, p).unwrap())
        .collect();
    assert_eq!(targets[0], &Target::Node("n1".into()));
    assert_eq!(targets[1], &Target::Node("claim-1".into()));
    assert_eq!(targets[2], &Target::NewClaim(0));
}

#[test]
fn cordoned_and_full_nodes_are_skipped() {
    let mut s = snapshot(pods("web", 1, 500, 128));
    let mut cordoned = node("n1", "zone-a", 8, 16);
    cordoned.unschedulable = true;
    let mut full = node("n2", "zone-a", 8, 16);
    full.allocatable.cpu_millis = 400;
    s.nodes = vec![cordoned, full];
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "web-0"), Some(&Target::NewClaim(0)));
}

#[test]
fn taints_and_tolerations() {
    let mut s = snapshot(pods("web", 2, 500, 128));
    s.node_pools[0].taints = vec![Taint::new("dedicated", "gpu", TaintEffect::NoSchedule)];
    s.pods[1].tolerations.push(tolerate("dedicated"));
    let sol = solve_ok(&s);
    assert!(target_of(&sol, "web-1").is_some());
    assert!(target_of(&sol, "web-0").is_none());
    let w = why(&sol, "web-0");
    assert!(
        w.contains("does not tolerate taint dedicated=gpu:NoSchedule"),
        "{w}"
    );
}

#[test]
fn startup_taints_and_initializing_nodes_do_not_block() {
    let mut s = snapshot(pods("web", 1, 500, 128));
    s.node_pools[0].startup_taints =
        vec![Taint::new("agent-not-ready", "", TaintEffect::NoSchedule)];
    let mut n = node("n1", "zone-a", 4, 8);
    n.labels.insert(labels::NODEPOOL.into(), "default".into());
    n.taints = vec![
        Taint::new("agent-not-ready", "", TaintEffect::NoSchedule),
        Taint::new("node.kubernetes.io/not-ready", "", TaintEffect::NoSchedule),
    ];
    n.initializing = true;
    s.nodes.push(n);
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "web-0"), Some(&Target::Node("n1".into())));
    assert!(sol.new_claims.is_empty());
}

#[test]
fn prefer_no_schedule_is_avoided_then_relaxed() {
    let mut s = snapshot(pods("web", 1, 500, 128));
    let mut soft = pool("soft");
    soft.taints = vec![Taint::new("spot-only", "", TaintEffect::PreferNoSchedule)];
    soft.weight = 50;
    s.node_pools.push(soft);
    // The heavier pool carries the PreferNoSchedule taint: the pod avoids it while it can.
    let sol = solve_ok(&s);
    assert_eq!(claim_of(&sol, "web-0").unwrap().node_pool, "default");
    // Only the tainted pool left: the preference is dropped and reported.
    s.node_pools.remove(0);
    let sol = solve_ok(&s);
    assert_eq!(claim_of(&sol, "web-0").unwrap().node_pool, "soft");
    assert_eq!(sol.relaxed.len(), 1);
    assert!(sol.relaxed[0].dropped[0].contains("PreferNoSchedule"));
}

#[test]
fn node_selector_and_operators() {
    let mut s = snapshot(pods("p", 6, 500, 128));
    s.pods[0]
        .node_selector
        .insert(labels::ZONE.into(), "zone-b".into());
    let req = |key: &str, op: Operator, v: &[&str]| NodeSelectorTerm {
        match_expressions: vec![Requirement::new(key, op, v)],
    };
    s.pods[1].affinity.node_affinity.required = vec![req("example.com/cpu", Operator::Gt, &["8"])];
    s.pods[2].affinity.node_affinity.required = vec![req("example.com/cpu", Operator::Lt, &["4"])];
    s.pods[3].affinity.node_affinity.required =
        vec![req(labels::ZONE, Operator::NotIn, &["zone-a", "zone-b"])];
    s.pods[4].affinity.node_affinity.required =
        vec![req("example.com/gpu", Operator::DoesNotExist, &[])];
    s.pods[5].affinity.node_affinity.required = vec![req("example.com/gpu", Operator::Exists, &[])];
    let sol = solve_ok(&s);
    assert_eq!(claim_of(&sol, "p-0").unwrap().zone, "zone-b");
    assert_eq!(claim_of(&sol, "p-1").unwrap().instance_type, "c-16");
    assert_eq!(claim_of(&sol, "p-2").unwrap().instance_type, "c-2");
    assert_eq!(claim_of(&sol, "p-3").unwrap().zone, "zone-c");
    assert!(claim_of(&sol, "p-4").is_some());
    let w = why(&sol, "p-5");
    assert!(w.contains("example.com/gpu"), "{w}");
}

#[test]
fn required_node_affinity_terms_are_ored() {
    let mut s = snapshot(pods("p", 1, 500, 128));
    let t = |v: &str| NodeSelectorTerm {
        match_expressions: vec![Requirement::new(labels::ARCH, Operator::In, &[v])],
    };
    s.pods[0].affinity.node_affinity.required = vec![t("arm64"), t("amd64")];
    let sol = solve_ok(&s);
    assert!(claim_of(&sol, "p-0").is_some());
}

#[test]
fn nodepool_requirements_and_template_labels() {
    let mut s = snapshot(pods("p", 2, 500, 128));
    s.node_pools[0]
        .requirements
        .push(Requirement::new("team", Operator::In, &["a", "b"]));
    s.node_pools[0].labels.insert("env".into(), "prod".into());
    s.pods[0].node_selector.insert("team".into(), "b".into());
    s.pods[1].node_selector.insert("env".into(), "dev".into());
    let sol = solve_ok(&s);
    let c = claim_of(&sol, "p-0").unwrap();
    assert_eq!(c.labels.get("team").map(String::as_str), Some("b"));
    assert_eq!(c.labels.get("env").map(String::as_str), Some("prod"));
    let w = why(&sol, "p-1");
    assert!(
        w.contains("requirement env In [dev]") && w.contains("prod"),
        "{w}"
    );
}

#[test]
fn min_values_keep_enough_instance_types() {
    let mut s = snapshot(pods("p", 1, 3000, 128));
    let mut r = Requirement::new(labels::INSTANCE_TYPE, Operator::Exists, &[]);
    r.min_values = Some(3);
    s.node_pools[0].requirements.push(r);
    let sol = solve_ok(&s);
    assert!(sol.new_claims[0].instance_type_options.len() >= 3);
    // 9 cpu leave only c-16: minValues 3 cannot hold.
    let s2 = {
        let mut s2 = s.clone();
        s2.pods = pods("big", 1, 9000, 128);
        s2
    };
    let sol = solve_ok(&s2);
    let w = why(&sol, "big-0");
    assert!(w.contains("minValues 3"), "{w}");
}

#[test]
fn preferred_node_affinity_then_relaxed() {
    let mut s = snapshot(pods("p", 2, 500, 128));
    let pref = |zone: &str| PreferredNodeTerm {
        weight: 10,
        preference: NodeSelectorTerm {
            match_expressions: vec![Requirement::new(labels::ZONE, Operator::In, &[zone])],
        },
    };
    s.pods[0].affinity.node_affinity.preferred = vec![pref("zone-c")];
    s.pods[1].affinity.node_affinity.preferred = vec![pref("zone-nowhere")];
    let sol = solve_ok(&s);
    assert_eq!(claim_of(&sol, "p-0").unwrap().zone, "zone-c");
    assert!(claim_of(&sol, "p-1").is_some());
    let r: Vec<&Relaxed> = sol.relaxed.iter().filter(|r| r.pod.name == "p-1").collect();
    assert_eq!(r.len(), 1);
    assert!(r[0].dropped[0].contains("preferred node affinity"));
}

#[test]
fn zonal_topology_spread() {
    let mut s = snapshot(pods("web", 6, 500, 128));
    for p in &mut s.pods {
        p.topology_spread_constraints = vec![spread(
            labels::ZONE,
            1,
            "web",
            WhenUnsatisfiable::DoNotSchedule,
        )];
    }
    let sol = solve_ok(&s);
    let mut per_zone = std::collections::BTreeMap::new();
    for i in 0..6 {
        *per_zone
            .entry(claim_of(&sol, &format!("web-{i}")).unwrap().zone.clone())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
}

#[test]
fn zonal_spread_counts_existing_pods() {
    let mut s = snapshot(pods("web", 2, 500, 128));
    s.nodes.push(node("n-a", "zone-a", 1, 2));
    let mut bound = pod("web-old", 500, 128);
    bound.labels.insert("app".into(), "web".into());
    bound.node_name = Some("n-a".into());
    s.pods.push(bound);
    for p in s.pods.iter_mut().filter(|p| p.node_name.is_none()) {
        p.topology_spread_constraints = vec![spread(
            labels::ZONE,
            1,
            "web",
            WhenUnsatisfiable::DoNotSchedule,
        )];
    }
    let sol = solve_ok(&s);
    let zones: Vec<String> = ["web-0", "web-1"]
        .iter()
        .map(|p| claim_of(&sol, p).unwrap().zone.clone())
        .collect();
    assert!(!zones.contains(&"zone-a".to_string()), "{zones:?}");
}

#[test]
fn hostname_spread_and_schedule_anyway() {
    let mut s = snapshot(pods("web", 4, 500, 128));
    for p in &mut s.pods {
        p.topology_spread_constraints = vec![spread(
            labels::HOSTNAME,
            1,
            "web",
            WhenUnsatisfiable::DoNotSchedule,
        )];
    }
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 4);
    // With a one-node limit, DoNotSchedule leaves pods pending; ScheduleAnyway is relaxed.
    s.node_pools[0].limits = Some(Resources::default().with("nodes", 1));
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 1);
    assert_eq!(sol.unschedulable.len(), 3);
    for p in &mut s.pods {
        p.topology_spread_constraints[0].when_unsatisfiable = WhenUnsatisfiable::ScheduleAnyway;
    }
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 1);
    assert!(sol.unschedulable.is_empty());
    assert_eq!(sol.relaxed.len(), 3);
}

#[test]
fn pod_affinity_follows_existing_pod_zone() {
    let mut s = snapshot(pods("client", 2, 500, 128));
    s.nodes.push(node("db-node", "zone-c", 1, 1));
    let mut db = pod("db-0", 900, 128);
    db.node_name = Some("db-node".into());
    s.pods.push(db);
    for p in s.pods.iter_mut().filter(|p| p.node_name.is_none()) {
        p.affinity.pod_affinity.required = vec![term(labels::ZONE, "db")];
    }
    let sol = solve_ok(&s);
    for p in ["client-0", "client-1"] {
        assert_eq!(claim_of(&sol, p).unwrap().zone, "zone-c");
    }
}

#[test]
fn pod_affinity_waits_for_its_target_in_the_same_batch() {
    // The follower is bigger, so it is tried first, fails, and succeeds once the leader lands.
    let mut s = snapshot(vec![
        pod("leader-0", 500, 128),
        pod("follower-0", 1500, 128),
    ]);
    s.pods[1].affinity.pod_affinity.required = vec![term(labels::HOSTNAME, "leader")];
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "leader-0"), target_of(&sol, "follower-0"));
    // Without any leader, the follower stays pending with a reason.
    s.pods.remove(0);
    let sol = solve_ok(&s);
    assert!(
        why(&sol, "follower-0").contains("pod affinity"),
        "{}",
        why(&sol, "follower-0")
    );
}

#[test]
fn pod_anti_affinity_both_ways() {
    let mut s = snapshot(pods("db", 3, 500, 128));
    for p in &mut s.pods {
        p.affinity.pod_anti_affinity.required = vec![term(labels::HOSTNAME, "db")];
    }
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 3);
    // An existing pod's anti-affinity keeps matching pods off its node.
    let mut s = snapshot(pods("web", 1, 500, 128));
    s.nodes.push(node("n1", "zone-a", 8, 16));
    let mut lonely = pod("lonely-0", 100, 64);
    lonely.node_name = Some("n1".into());
    lonely.affinity.pod_anti_affinity.required = vec![term(labels::HOSTNAME, "web")];
    s.pods.push(lonely);
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "web-0"), Some(&Target::NewClaim(0)));
}

#[test]
fn anti_affinity_namespaces() {
    let mut s = snapshot(vec![]);
    s.nodes.push(node("n1", "zone-a", 8, 16));
    let mut other = Pod::new("other", "x", Resources::cpu_mem(100, MI));
    other.labels.insert("app".into(), "web".into());
    other.node_name = Some("n1".into());
    s.pods.push(other);
    let mut mine = pod("mine-0", 100, 64);
    mine.affinity.pod_anti_affinity.required = vec![term(labels::HOSTNAME, "web")];
    s.pods.push(mine.clone());
    // Own namespace only: the pod in "other" does not count.
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "mine-0"), Some(&Target::Node("n1".into())));
    // Listing the namespace makes it count.
    s.pods[1].affinity.pod_anti_affinity.required[0].namespaces = vec!["other".into()];
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "mine-0"), Some(&Target::NewClaim(0)));
    // An empty namespace selector means all namespaces.
    s.pods[1].affinity.pod_anti_affinity.required[0].namespaces = vec![];
    s.pods[1].affinity.pod_anti_affinity.required[0].namespace_selector =
        Some(LabelSelector::default());
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "mine-0"), Some(&Target::NewClaim(0)));
    // A namespace selector picks namespaces by label.
    s.namespaces = vec![Namespace {
        name: "other".into(),
        labels: [("tier".to_string(), "x".to_string())]
            .into_iter()
            .collect(),
    }];
    s.pods[1].affinity.pod_anti_affinity.required[0].namespace_selector =
        Some(LabelSelector::labels(&[("tier", "x")]));
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "mine-0"), Some(&Target::NewClaim(0)));
}

#[test]
fn host_ports_conflict() {
    let mut s = snapshot(pods("proxy", 2, 100, 64));
    for p in &mut s.pods {
        p.host_ports = vec![HostPort {
            port: 8080,
            protocol: Protocol::TCP,
            host_ip: String::new(),
        }];
    }
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 2);
    // Different protocol: no conflict.
    s.pods[1].host_ports[0].protocol = Protocol::UDP;
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims.len(), 1);
}

#[test]
fn volume_zone_topology() {
    let mut s = snapshot(pods("db", 2, 500, 128));
    s.pods[0].volumes = vec![VolumeTopology {
        name: "data-0".into(),
        zones: vec!["zone-b".into()],
    }];
    s.pods[1].volumes = vec![
        VolumeTopology {
            name: "data-1".into(),
            zones: vec!["zone-a".into()],
        },
        VolumeTopology {
            name: "logs-1".into(),
            zones: vec!["zone-c".into()],
        },
    ];
    let sol = solve_ok(&s);
    assert_eq!(claim_of(&sol, "db-0").unwrap().zone, "zone-b");
    let w = why(&sol, "db-1");
    assert!(w.contains("data-1") && w.contains("zone-a"), "{w}");
}

#[test]
fn priority_wins_existing_capacity() {
    let mut s = snapshot(vec![pod("low-0", 1000, 128), pod("high-0", 1000, 128)]);
    s.pods[1].priority = 1000;
    s.pods[0].requests.cpu_millis = 1500; // bigger, but lower priority
    s.nodes.push(node("n1", "zone-a", 1, 2));
    let sol = solve_ok(&s);
    assert_eq!(target_of(&sol, "high-0"), Some(&Target::Node("n1".into())));
}

#[test]
fn extended_resources_pick_gpu_types() {
    let mut s = snapshot(pods("train", 1, 1000, 1024));
    let mut g = itype("g-8", 8, 32, 2.0);
    g.capacity.set("nvidia.com/gpu", 1);
    s.instance_types.push(g);
    s.pods[0].requests.set("nvidia.com/gpu", 1);
    let sol = solve_ok(&s);
    assert_eq!(claim_of(&sol, "train-0").unwrap().instance_type, "g-8");
    s.pods[0].requests.set("nvidia.com/gpu", 2);
    let sol = solve_ok(&s);
    let w = why(&sol, "train-0");
    assert!(
        w.contains("exceeds largest instance type: needs 2 nvidia.com/gpu"),
        "{w}"
    );
}

#[test]
fn exceeds_largest_instance_type_reason() {
    let s = snapshot(pods("huge", 1, 300_000, 128));
    let sol = solve_ok(&s);
    let w = why(&sol, "huge-0");
    assert!(
        w.contains("exceeds largest instance type: needs 300 cpu (largest offers 16 cpu)"),
        "{w}"
    );
}

#[test]
fn nodepool_limits_stop_growth() {
    let mut s = snapshot(pods("web", 10, 3500, 128));
    s.node_pools[0].limits = Some(Resources::cpu_mem(16_000, 1 << 40));
    let sol = solve_ok(&s);
    let cpu: i64 = sol
        .new_claims
        .iter()
        .map(|c| c.instance_type[2..].parse::<i64>().unwrap())
        .sum();
    assert!(cpu <= 16, "{cpu}");
    assert!(!sol.unschedulable.is_empty());
    assert!(
        sol.unschedulable
            .iter()
            .all(|u| u.to_string().contains("limits reached")),
        "{}",
        sol.unschedulable[0]
    );
}

#[test]
fn nodepool_weight_wins_over_price() {
    let mut s = snapshot(pods("web", 1, 500, 128));
    let mut pricey = pool("pricey");
    pricey.weight = 10;
    pricey
        .requirements
        .push(Requirement::new("example.com/cpu", Operator::In, &["16"]));
    s.node_pools.push(pricey);
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims[0].node_pool, "pricey");
    assert_eq!(sol.new_claims[0].instance_type, "c-16");
}

#[test]
fn daemonset_overhead_and_init_containers() {
    let mut s = snapshot(pods("web", 1, 1000, 128));
    s.node_pools[0].daemonset_overhead = Resources::cpu_mem(1500, 256 * MI).with("pods", 2);
    let sol = solve_ok(&s);
    assert_eq!(
        sol.new_claims[0].instance_type, "c-4",
        "1 cpu + 1.5 cpu overhead > 2"
    );
    let mut s = snapshot(pods("web", 1, 500, 128));
    s.pods[0].init_containers = vec![Resources::cpu_mem(3000, 0)];
    let sol = solve_ok(&s);
    assert_eq!(
        sol.new_claims[0].instance_type, "c-4",
        "init container needs 3 cpu"
    );
}

#[test]
fn unavailable_offerings_and_spot() {
    let mut s = snapshot(pods("web", 1, 500, 128));
    s.node_pools[0].requirements.clear();
    for t in &mut s.instance_types {
        for o in &mut t.offerings {
            if o.capacity_type == "spot" && o.zone != "zone-c" {
                o.available = false;
            }
        }
    }
    let sol = solve_ok(&s);
    let c = &sol.new_claims[0];
    assert_eq!(
        (c.capacity_type.as_str(), c.zone.as_str()),
        ("spot", "zone-c")
    );
    assert!((c.price - 0.07).abs() < 1e-9);
}

#[test]
fn no_nodepools_reason() {
    let mut s = snapshot(pods("web", 1, 500, 128));
    s.node_pools.clear();
    let sol = solve_ok(&s);
    assert!(
        why(&sol, "web-0").contains("no NodePool"),
        "{}",
        why(&sol, "web-0")
    );
    let sol = solve(
        &snapshot(pods("web", 1, 500, 128)),
        &SolveOptions {
            allow_new_nodes: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(sol.unschedulable.len(), 1);
}

#[test]
fn deterministic_under_input_order() {
    let mut s = snapshot(pods("web", 20, 700, 300));
    for (i, p) in s.pods.iter_mut().enumerate() {
        if i % 3 == 0 {
            p.topology_spread_constraints = vec![spread(
                labels::ZONE,
                1,
                "web",
                WhenUnsatisfiable::DoNotSchedule,
            )];
        }
    }
    let a = solve_ok(&s);
    let mut r = s.clone();
    r.pods.reverse();
    r.instance_types.reverse();
    let b = solve_ok(&r);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut s = snapshot(pods("web", 2, 500, 128));
    s.pods[1].name = "web-0".into();
    let e = solve(&s, &SolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("duplicate pod"), "{e}");

    let mut s = snapshot(pods("web", 1, 500, 128));
    s.pods[0].requests.cpu_millis = -1;
    let e = solve(&s, &SolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("requests.cpu"), "{e}");

    let mut s = snapshot(pods("web", 1, 500, 128));
    s.pods[0].topology_spread_constraints = vec![spread(
        labels::ZONE,
        0,
        "web",
        WhenUnsatisfiable::DoNotSchedule,
    )];
    let e = solve(&s, &SolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("maxSkew"), "{e}");

    let mut s = snapshot(pods("web", 1, 500, 128));
    s.node_pools[0]
        .requirements
        .push(Requirement::new("example.com/cpu", Operator::Gt, &["many"]));
    let e = solve(&s, &SolveOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("NodePool \"default\": requirements[1]"),
        "{e}"
    );

    let mut s = snapshot(pods("web", 1, 500, 128));
    s.in_flight.push(InFlightClaim {
        name: "c".into(),
        node_pool: "default".into(),
        instance_type: "nope".into(),
        zone: "zone-a".into(),
        capacity_type: "on-demand".into(),
    });
    let e = solve(&s, &SolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("instanceType"), "{e}");

    let mut s = snapshot(pods("web", 1, 500, 128));
    s.instance_types[0].offerings[0].price = f64::NAN;
    let e = solve(&s, &SolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("offerings[0].price"), "{e}");
}

#[test]
fn snapshot_reads_from_yaml() {
    let yaml = r#"
nodePools:
  - name: default
    requirements:
      - {key: nodes.ballast.dev/capacity-type, operator: In, values: [on-demand]}
instanceTypes:
  - name: m-2
    capacity: {cpu: "2", memory: 8Gi, pods: 110}
    offerings:
      - {zone: zone-a, capacityType: on-demand, price: 0.096}
pods:
  - name: web
    requests: {cpu: 250m, memory: 256Mi}
    tolerations: [{operator: Exists}]
    topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, labelSelector: {matchLabels: {app: web}}}
"#;
    let s: Snapshot = serde_yaml::from_str(yaml).unwrap();
    let sol = solve_ok(&s);
    assert_eq!(sol.new_claims[0].instance_type, "m-2");
    let bad =
        serde_yaml::from_str::<Snapshot>("pods: [{name: x, requests: {cpu: lots}}]").unwrap_err();
    assert!(bad.to_string().contains("resource cpu"), "{bad}");
}

#[test]
fn cost_pass_beats_plain_first_fit() {
    // One big, badly priced type that first-fit grows claims into, and a cheap small one.
    let mut s = snapshot(pods("job", 6, 3000, 512));
    s.instance_types = vec![itype("small-4", 4, 8, 0.10), itype("big-24", 24, 48, 1.20)];
    let ffd = solve(
        &s,
        &SolveOptions {
            improve: false,
            ..Default::default()
        },
    )
    .unwrap();
    let best = solve_ok(&s);
    assert_eq!(
        ffd.new_claims.len(),
        1,
        "first-fit puts all six on one big node"
    );
    assert!((ffd.new_cost() - 1.2).abs() < 1e-9);
    assert!(
        best.new_cost() < ffd.new_cost(),
        "{} !< {}",
        best.new_cost(),
        ffd.new_cost()
    );
    assert!(
        (best.new_cost() - 0.6).abs() < 1e-9,
        "six small nodes: {}",
        best.new_cost()
    );
}

#[test]
fn shipped_catalog_parses() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../simulations/catalogs/aws-like.yaml"
    );
    let text = std::fs::read_to_string(path).expect("catalog file is in the repository");
    let file: catalog::CatalogFile = serde_yaml::from_str(&text).unwrap();
    let types = file.instance_types().unwrap();
    assert!(types.len() >= 24);
    let m = types.iter().find(|t| t.name == "m6i.large").unwrap();
    assert_eq!(m.capacity.cpu_millis, 2000);
    assert!(m.allocatable().memory_bytes < m.capacity.memory_bytes);
    assert_eq!(m.offerings.len(), 6, "on-demand and spot in three zones");
    assert_eq!(
        m.labels
            .get("nodes.ballast.dev/instance-category")
            .map(String::as_str),
        Some("m")
    );
}

#[test]
fn min_values_on_offering_keys() {
    let mut s = snapshot(pods("p", 1, 500, 128));
    let mut r = Requirement::new(labels::ZONE, Operator::Exists, &[]);
    r.min_values = Some(2);
    s.node_pools[0].requirements.push(r);
    // A pod pinned to one zone leaves one zone value: minValues 2 on zones cannot hold.
    let sol = solve_ok(&s);
    assert!(claim_of(&sol, "p-0").is_some(), "{}", why(&sol, "p-0"));
    s.pods[0]
        .node_selector
        .insert(labels::ZONE.into(), "zone-a".into());
    let sol = solve_ok(&s);
    assert!(
        why(&sol, "p-0").contains("minValues 2"),
        "{}",
        why(&sol, "p-0")
    );
}

#[test]
fn claims_record_the_keys_topology_pinned() {
    // web-1 has no term of its own, but web-0's zone spread counts it: its claim's zone is
    // fixed for that count, and a launch must keep it.
    let mut s = snapshot(pods("web", 2, 3000, 128));
    s.pods[0].topology_spread_constraints = vec![spread(
        labels::ZONE,
        1,
        "web",
        WhenUnsatisfiable::DoNotSchedule,
    )];
    s.pods[0].affinity.pod_anti_affinity.required = vec![term(labels::HOSTNAME, "web")];
    let sol = solve_ok(&s);
    let (a, b) = (
        claim_of(&sol, "web-0").unwrap(),
        claim_of(&sol, "web-1").unwrap(),
    );
    assert_ne!(a.name, b.name);
    assert_eq!(a.pinned, vec![labels::ZONE.to_string()]);
    assert_eq!(b.pinned, vec![labels::ZONE.to_string()]);
    // Nothing counts a lone pod: nothing is pinned.
    let sol = solve_ok(&snapshot(pods("lone", 1, 3000, 128)));
    assert!(claim_of(&sol, "lone-0").unwrap().pinned.is_empty());
}
