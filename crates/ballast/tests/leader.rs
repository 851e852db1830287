//! Leader election against the REAL test bed (`tests/testbed.sh up kube`).
//!
//! - `two_electors_share_one_lease`: two electors in this process on one Lease: exactly one leads
//!   at any sampled moment; the leader's shutdown releases the lease and the other takes over
//!   within about a retry period.
//! - `horizontal_failover_between_processes`: `ballast controller horizontal --leader-elect`
//!   processes (identities a, b, c, d by POD_NAME) on one namespace. Only the leader writes: the
//!   standby's `/metrics` count no rescale, status patch or event, and every event names the leader
//!   as `reportingInstance`. SIGKILL of the leader: the standby takes over and rescales (figure
//!   printed); SIGTERM: the leader releases the lease and the standby takes over in about a retry
//!   period; SIGSTOP for longer than the lease: a standby takes over, and the stopped leader, once
//!   continued, exits non-zero without writing. At each step the probes tell the roles apart:
//!   `/readyz` 200 on the leader and on the standby (both can serve, the standby can take over),
//!   `/leaderz` 200 and `ballast_horizontal_leader 1` on the leader only, 503 and 0 on a standby.
//! - `nodes_failover_never_launches_twice`: two `ballast controller nodes --leader-elect` processes
//!   (kwok provider) on the test's own NodePool: one pending pod gets one NodeClaim, every event is
//!   the leader's; after SIGKILL of the leader a second pod gets its node from the standby (figure
//!   printed), and still one NodeClaim per pod.
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::leader::{LeaderConfig, LeaderElector, Leadership, Timing};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace, testbed_or_skip};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

mod process_support;
use process_support::{
    FAST, RUN_LABEL, Replica, claims, cleanup_nodes, create_kwok_pool, install_horizontal_crd,
    install_node_crds,
};

const LEASE: &str = "ballast-horizontal";

// ---- in-process electors -------------------------------------------------------------------------

fn elector(client: &Client, ns: &str, identity: &str) -> Result<(LeaderElector, Leadership)> {
    Ok(LeaderElector::new(
        client.clone(),
        LeaderConfig {
            namespace: ns.to_owned(),
            name: "two-electors".to_owned(),
            identity: identity.to_owned(),
            timing: Timing::default(),
            clock: Default::default(),
        },
    )?)
}

#[tokio::test]
async fn two_electors_share_one_lease() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let ns = bed.namespace("leader-lease").await?;
    let client = bed.client();
    let (a, lead_a) = elector(&client, ns.name(), "a")?;
    let (b, lead_b) = elector(&client, ns.name(), "b")?;
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let task_a = tokio::spawn(a.run(async move {
        let _ = stopped_a.await;
    }));
    let task_b = tokio::spawn(b.run(async move {
        let _ = stopped_b.await;
    }));
    // Someone leads within a retry period or two; never both, over six seconds.
    let started = Instant::now();
    let mut first = None;
    while started.elapsed() < Duration::from_secs(6) {
        let (la, lb) = (lead_a.is_leading(), lead_b.is_leading());
        ensure!(!(la && lb), "both electors lead at once");
        if first.is_none() && (la || lb) {
            first = Some((if la { "a" } else { "b" }, started.elapsed()));
        }
        tokio::time::sleep(FAST).await;
    }
    let (leader, after) = first.context("no elector leads after 6 s")?;
    println!("first leader: {leader} after {:.2} s", after.as_secs_f64());
    let lease = Api::<Lease>::namespaced(client.clone(), ns.name())
        .get("two-electors")
        .await?;
    let spec = lease.spec.context("lease without spec")?;
    assert_eq!(spec.holder_identity.as_deref(), Some(leader));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert!(spec.renew_time.is_some() && spec.acquire_time.is_some());
    // The leader stops: it releases the lease and the other takes over quickly.
    let (stop, task, other) = if leader == "a" {
        (stop_a, task_a, &lead_b)
    } else {
        (stop_b, task_b, &lead_a)
    };
    let released = Instant::now();
    let _ = stop.send(());
    task.await??;
    poll_until(
        "the other elector leads",
        Duration::from_secs(10),
        FAST,
        || async { Ok(other.is_leading().then_some(())) },
    )
    .await?;
    let handoff = released.elapsed();
    println!(
        "graceful hand-off (in process): {:.2} s",
        handoff.as_secs_f64()
    );
    ensure!(
        handoff < Duration::from_secs(5),
        "hand-off took {handoff:?} (a retry period is 2 s)"
    );
    let lease = Api::<Lease>::namespaced(client, ns.name())
        .get("two-electors")
        .await?;
    let spec = lease.spec.context("lease without spec")?;
    assert_ne!(spec.holder_identity.as_deref(), Some(leader));
    assert_eq!(spec.lease_transitions, Some(1));
    ns.cleanup().await
}

// ---- processes ---------------------------------------------------------------------------------

async fn holder(ns: &TestNamespace) -> Result<Option<String>> {
    let lease = ns.api::<Lease>().get_opt(LEASE).await?;
    Ok(lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

async fn replicas(ns: &TestNamespace) -> Result<i32> {
    let d = ns.api::<Deployment>().get("web").await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// Scales `web` to 1 and waits until some leader sets it back to 3; the time from `since`.
async fn rescaled_after(ns: &TestNamespace, since: Instant, what: &str) -> Result<Duration> {
    ns.scale_deployment("web", 1).await?;
    poll_until(what, Duration::from_secs(40), FAST, || async {
        Ok((replicas(ns).await? == 3).then_some(()))
    })
    .await?;
    Ok(since.elapsed())
}

/// Events of the horizontal reconciler by `reportingInstance` (a repeated event counts its
/// series).
async fn events_by_instance(ns: &TestNamespace) -> Result<std::collections::BTreeMap<String, i32>> {
    let mut out = std::collections::BTreeMap::new();
    for e in ns.api::<Event>().list(&ListParams::default()).await? {
        if e.reporting_controller.as_deref() != Some("ballast-horizontal") {
            continue;
        }
        let n = e.series.as_ref().map_or(1, |s| s.count);
        *out.entry(e.reporting_instance.unwrap_or_default())
            .or_insert(0) += n;
    }
    Ok(out)
}

/// A replica's `/readyz` and `/leaderz` status codes and its `ballast_horizontal_leader` gauge.
async fn roles(r: &Replica) -> Result<(u16, u16, f64)> {
    let (ready, _) = r.get("/readyz").await?;
    let (leading, _) = r.get("/leaderz").await?;
    let gauge = r.counter("ballast_horizontal_leader").await?;
    Ok((ready, leading, gauge))
}

/// What a replica answers and what it should, when they differ.
type WrongRole = (&'static str, (u16, u16, f64), (u16, u16, f64));

async fn wrong_role(r: &Replica, leads: bool) -> Result<Option<WrongRole>> {
    let expected = if leads {
        (200, 200, 1.0)
    } else {
        (200, 503, 0.0)
    };
    let got = roles(r).await?;
    Ok((got != expected).then_some((r.name, got, expected)))
}

/// `leader` answers ready, leading and gauge 1; each of `standbys` ready, standby (503), gauge 0.
/// Polled for a few seconds: the standby's `/leaderz` turns 200 only after its write of the
/// Lease, a moment after the holder the test read.
async fn ensure_roles(leader: &Replica, standbys: &[&Replica]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut wrong = Vec::new();
        if let Some(e) = wrong_role(leader, true).await? {
            wrong.push(e);
        }
        for s in standbys {
            if let Some(e) = wrong_role(s, false).await? {
                wrong.push(e);
            }
        }
        if wrong.is_empty() {
            let names: Vec<&str> = standbys.iter().map(|s| s.name).collect();
            println!(
                "probes: leader {} /readyz 200 /leaderz 200 gauge 1; standby {names:?} /readyz 200 /leaderz 503 gauge 0",
                leader.name
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "(name, (readyz, leaderz, gauge), expected): {wrong:?}"
        );
        tokio::time::sleep(FAST).await;
    }
}

async fn wait_holder(ns: &TestNamespace, not: Option<&str>) -> Result<String> {
    poll_until("a lease holder", Duration::from_secs(40), FAST, || async {
        Ok(holder(ns).await?.filter(|h| Some(h.as_str()) != not))
    })
    .await
}

#[tokio::test]
async fn horizontal_failover_between_processes() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let client = bed.client();
    install_horizontal_crd(&client).await?;
    let ns = bed.namespace("leader-hz").await?;
    let logs = std::env::temp_dir().join(format!("ballast-{}", ns.name()));
    std::fs::create_dir_all(&logs)?;
    ns.create_deployment(TestDeployment::new("web").replicas(1))
        .await?;
    let mut replicas_by_name = vec![
        Replica::start(&bed, ns.name(), "a", &logs)?,
        Replica::start(&bed, ns.name(), "b", &logs)?,
    ];
    for r in &replicas_by_name {
        r.wait_ready().await?;
    }
    let first = wait_holder(&ns, None).await?;
    println!("first leader: {first}");
    // A paused autoscaler with pausedReplicas: the leader sets the target to 3 whenever it is not.
    let hza: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": 5, "syncPeriodSeconds": 1,
            "paused": true, "pausedReplicas": 3
        }
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &hza)
        .await?;
    poll_until(
        "web at 3 replicas",
        Duration::from_secs(30),
        FAST,
        || async { Ok((replicas(&ns).await? == 3).then_some(())) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Only the leader wrote.
    let (leader, standby) = if first == "a" { (0, 1) } else { (1, 0) };
    for (metric, min) in [
        ("ballast_horizontal_rescales_total", 1.0),
        ("ballast_horizontal_status_patches_total", 1.0),
        ("ballast_horizontal_events_total", 1.0),
    ] {
        let l = replicas_by_name[leader].counter(metric).await?;
        let s = replicas_by_name[standby].counter(metric).await?;
        println!("{metric}: leader {l}, standby {s}");
        ensure!(l >= min, "the leader counts {l} {metric}");
        ensure!(s == 0.0, "the standby counts {s} {metric}");
    }
    let events = events_by_instance(&ns).await?;
    ensure!(
        events.keys().all(|k| *k == first),
        "events from other instances than the leader {first}: {events:?}"
    );
    ensure_roles(&replicas_by_name[leader], &[&replicas_by_name[standby]]).await?;

    // SIGKILL: the standby takes the lease over once it expires, and decides at once.
    let killed = Instant::now();
    replicas_by_name[leader].signal("KILL")?;
    let kill_takeover = rescaled_after(&ns, killed, "the standby rescales after SIGKILL").await?;
    let second = holder(&ns).await?.context("no holder after SIGKILL")?;
    ensure!(second != first, "the killed {first} still holds the lease");
    println!(
        "takeover after SIGKILL of the leader: {:.2} s (lease 15 s, renew deadline 10 s, retry 2 s)",
        kill_takeover.as_secs_f64()
    );
    ensure_roles(&replicas_by_name[standby], &[]).await?;

    // SIGTERM: the leader releases the lease; a fresh standby takes over in about a retry period.
    replicas_by_name.push(Replica::start(&bed, ns.name(), "c", &logs)?);
    replicas_by_name[2].wait_ready().await?;
    ensure_roles(&replicas_by_name[standby], &[&replicas_by_name[2]]).await?;
    let terminated = Instant::now();
    replicas_by_name[standby].signal("TERM")?;
    let graceful = rescaled_after(&ns, terminated, "c rescales after SIGTERM").await?;
    let status = replicas_by_name[standby]
        .wait_exit(Duration::from_secs(20))
        .await?;
    ensure!(
        status.success(),
        "{second} exited with {status} after SIGTERM"
    );
    ensure!(
        holder(&ns).await?.as_deref() == Some("c"),
        "c does not hold the lease"
    );
    println!(
        "takeover after SIGTERM of the leader: {:.2} s",
        graceful.as_secs_f64()
    );
    ensure_roles(&replicas_by_name[2], &[]).await?;
    ensure!(
        graceful < Duration::from_secs(8),
        "graceful takeover took {graceful:?}"
    );

    // SIGSTOP for longer than the lease: d takes over; c, continued, exits non-zero unwritten.
    replicas_by_name.push(Replica::start(&bed, ns.name(), "d", &logs)?);
    replicas_by_name[3].wait_ready().await?;
    ensure_roles(&replicas_by_name[2], &[&replicas_by_name[3]]).await?;
    let stopped = Instant::now();
    replicas_by_name[2].signal("STOP")?;
    let stop_takeover = rescaled_after(&ns, stopped, "d rescales after SIGSTOP of c").await?;
    ensure!(
        holder(&ns).await?.as_deref() == Some("d"),
        "d does not hold the lease"
    );
    println!(
        "takeover after SIGSTOP of the leader: {:.2} s",
        stop_takeover.as_secs_f64()
    );
    ensure_roles(&replicas_by_name[3], &[]).await?;
    let before = events_by_instance(&ns)
        .await?
        .get("c")
        .copied()
        .unwrap_or(0);
    ns.scale_deployment("web", 1).await?;
    replicas_by_name[2].signal("CONT")?;
    let status = replicas_by_name[2]
        .wait_exit(Duration::from_secs(10))
        .await?;
    ensure!(
        !status.success(),
        "c exited with {status} after losing the lease"
    );
    let after = events_by_instance(&ns)
        .await?
        .get("c")
        .copied()
        .unwrap_or(0);
    ensure!(
        after == before,
        "c published {} event(s) after it lost the lease",
        after - before
    );
    ensure!(
        replicas_by_name[2].tail().contains("lost the leadership"),
        "{}",
        replicas_by_name[2].tail()
    );
    for (r, limit) in [(kill_takeover, 25), (stop_takeover, 25)] {
        ensure!(r < Duration::from_secs(limit), "takeover took {r:?}");
    }
    drop(replicas_by_name);
    ns.cleanup().await
}

// ---- nodes ---------------------------------------------------------------------------------------

/// Events of the nodes reconciler in `ns`, by `reportingInstance`.
async fn node_events_by_instance(
    ns: &TestNamespace,
) -> Result<std::collections::BTreeMap<String, i32>> {
    let mut out = std::collections::BTreeMap::new();
    for e in ns.api::<Event>().list(&ListParams::default()).await? {
        if e.reporting_controller.as_deref() == Some("ballast-nodes") {
            let n = e.series.as_ref().map_or(1, |s| s.count);
            *out.entry(e.reporting_instance.unwrap_or_default())
                .or_insert(0) += n;
        }
    }
    Ok(out)
}

#[tokio::test]
async fn nodes_failover_never_launches_twice() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let client = bed.client();
    install_node_crds(&client).await?;
    let ns = bed.namespace("leader-nodes").await?;
    let name = ns.name().to_owned();
    let logs = std::env::temp_dir().join(format!("ballast-{name}"));
    std::fs::create_dir_all(&logs)?;
    let selector = format!("{RUN_LABEL}={name}");
    let args = [
        "controller",
        "nodes",
        "--provider",
        "kwok",
        "--catalog",
        "simulations/catalogs/aws-like.yaml",
        "--nodepool-selector",
        &selector,
        "--provision-namespace",
        &name,
        "--no-disruption",
        "--batch-max",
        "3",
        "--nodes-health-addr",
    ];
    let mut replicas_by_name = vec![
        Replica::spawn(&bed, &name, "a", &logs, &args)?,
        Replica::spawn(&bed, &name, "b", &logs, &args)?,
    ];
    for r in &replicas_by_name {
        r.wait_ready().await?;
    }
    let first = poll_until(
        "a nodes lease holder",
        Duration::from_secs(30),
        FAST,
        || async {
            let lease = ns.api::<Lease>().get_opt("ballast-nodes").await?;
            Ok(lease
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty()))
        },
    )
    .await?;
    println!("first nodes leader: {first}");
    create_kwok_pool(&client, &name).await?;
    let result = nodes_failover_body(&bed, &ns, &mut replicas_by_name, &first, &args, &logs).await;
    cleanup_nodes(&client, &ns).await;
    if result.is_err() {
        for r in &replicas_by_name {
            eprintln!("{}", r.tail());
        }
    }
    drop(replicas_by_name);
    result?;
    ns.cleanup().await
}

async fn nodes_failover_body(
    bed: &TestBed,
    ns: &TestNamespace,
    replicas_by_name: &mut Vec<Replica>,
    first: &str,
    args: &[&str],
    logs: &Path,
) -> Result<()> {
    let client = bed.client();
    ns.create_deployment(
        TestDeployment::new("big")
            .replicas(1)
            .request("cpu", "1500m"),
    )
    .await?;
    poll_until("one NodeClaim", Duration::from_secs(60), FAST, || async {
        Ok((!claims(&client, ns.name()).await?.is_empty()).then_some(()))
    })
    .await?;
    // Time for a second launch, were the standby deciding too.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let n = claims(&client, ns.name()).await?.len();
    ensure!(n == 1, "{n} NodeClaims for one pending pod");
    let events = node_events_by_instance(ns).await?;
    println!("nodes events by reportingInstance: {events:?}");
    ensure!(
        !events.is_empty() && events.keys().all(|k| k == first),
        "events from other instances than the leader {first}: {events:?}"
    );

    // SIGKILL of the leader, then a second pod: the standby launches its node.
    let leader = if first == "a" { 0 } else { 1 };
    let killed = Instant::now();
    replicas_by_name[leader].signal("KILL")?;
    ns.scale_deployment("big", 2).await?;
    poll_until(
        "a second NodeClaim",
        Duration::from_secs(60),
        FAST,
        || async { Ok((claims(&client, ns.name()).await?.len() >= 2).then_some(())) },
    )
    .await?;
    let takeover = killed.elapsed();
    println!(
        "nodes: the standby created a NodeClaim {:.2} s after SIGKILL of the leader",
        takeover.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let n = claims(&client, ns.name()).await?.len();
    ensure!(n == 2, "{n} NodeClaims for two pods");
    ensure!(
        takeover < Duration::from_secs(30),
        "takeover took {takeover:?}"
    );
    // A fresh standby, for the cleanup to have a leader should this one stop.
    replicas_by_name.push(Replica::spawn(bed, ns.name(), "c", logs, args)?);
    Ok(())
}
