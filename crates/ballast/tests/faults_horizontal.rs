//! Faults under a running `ballast controller horizontal` process, on the REAL test bed
//! (`tests/testbed.sh up kube prometheus redis rabbitmq postgres moto kafka`), one scenario at a
//! time (`faults::serial()`), with invariant watchers running through each (`faults_horizontal_support::watch`:
//! a watch on the namespace's Deployments and one on its HorizontalAutoscalers):
//!
//! - `<source>_stopped_and_frozen` for Prometheus, Redis, RabbitMQ, PostgreSQL, SQS (moto) and
//!   Kafka: three autoscalers every 2 s — `faulty` (15 items, 5 per replica: 3 replicas) and
//!   `fallback` (the same, with `fallback: {failureThreshold: 2, replicas: 2}`) read the source,
//!   `healthy` reads another one. The source is stopped (SIGKILL) for 6 s and started again (the
//!   bed's sources come back empty: the test puts the backlog back), then frozen (SIGSTOP) for
//!   14 s, longer than a read's 10 s timeout, and thawed. Checked: no replica count outside [min, max]; no
//!   scale-down of `faulty` while the source is down, `fallback` only to its fallback count (and
//!   to it, when stopped); a `ScalingActive=False` condition naming the source's port while it
//!   is down; `healthy` follows a change of its demand during each outage (the loop is not
//!   blocked); the failed reads of the source are bounded (a frozen source times out); the process
//!   lives; and the time from the source's return to a valid reading (`ScalingActive=True`) and
//!   to the count the source asks for is printed (bounded by 60 s).
//! - `api_server_restart_mid_scale_up`: `climber` scales 1 → 6 at one replica per 4 s; at 3 the
//!   API server is SIGKILLed, kept down 5 s and started again. Checked: never a scale-down, never
//!   more than one replica per write, [min, max], `steady` (3 replicas) untouched, the process
//!   lives; the time from the API server's return to the next step is printed (goal 10 s).
//! - `leader_killed_mid_write`: two processes under leader election; the leader is SIGKILLed the
//!   moment one of its scale writes is seen (its status patch and event still in flight). The
//!   standby takes over and goes on with the scale-up; it wrote nothing before (its counters),
//!   every event before the kill is the old leader's and every one after is the new leader's; one
//!   replica per write across the hand-over.
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

// `faults::serial()` is a std lock held for a whole test on purpose: each test runs on a runtime
// of its own thread, and the next one must wait for the bed to be whole again.
#![allow(clippy::await_holding_lock)]

mod faults_horizontal_support;
mod process_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_testbed::backlog::Backlog;
use ballast_testbed::faults::{self, Heal, Part};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace, testbed_or_skip};
use faults_horizontal_support::source::FaultSource;
use faults_horizontal_support::watch::{Rules, Watch};
use faults_horizontal_support::{
    RECOVERY_BOUND, assert_none, controller, decided, failed, scenario_namespace, target,
    wait_active, wait_replicas, within,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use process_support::{FAST, Replica};
use serde_json::json;

/// Items in the faulted source: 3 replicas at 5 per replica.
const LEVEL: usize = 15;
/// `fallback.replicas` of the `fallback` autoscaler.
const FALLBACK: i32 = 2;
/// A read's timeout in the controller (`MetricsConfig::read_timeout`'s default).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

// ---- Prometheus and the event sources stopped, then frozen -----------------------------------

/// How the source is taken away.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Stop,
    Freeze,
}

/// One source scenario in progress.
struct SourceScenario {
    bed: TestBed,
    source: FaultSource,
    healthy: Backlog,
    watch: Watch,
    replica: Replica,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopped_and_frozen() -> Result<()> {
    source_faults("prometheus").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_frozen() -> Result<()> {
    source_faults("redis").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_and_frozen() -> Result<()> {
    source_faults("rabbitmq").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_frozen() -> Result<()> {
    source_faults("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_stopped_and_frozen() -> Result<()> {
    source_faults("sqs").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_stopped_and_frozen() -> Result<()> {
    source_faults("kafka").await
}

async fn source_faults(kind: &str) -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let healthy_kind = if kind == "redis" { "postgres" } else { "redis" };
    let (Some(source), Some(healthy)) = (
        FaultSource::create(&bed, kind, LEVEL).await?,
        Backlog::create(&bed, healthy_kind).await?,
    ) else {
        eprintln!("skipped: {kind} and {healthy_kind} must run in the test bed");
        return Ok(());
    };
    let (ns, logs) = scenario_namespace(&bed, &format!("faults-{kind}")).await?;
    healthy.push(5).await?;
    let metric = source.metric()?;
    target(&ns, "faulty", 3, (1, 6), vec![metric.clone()], json!({})).await?;
    let fallback = json!({ "fallback": { "failureThreshold": 2, "replicas": FALLBACK } });
    target(&ns, "fallback", 3, (1, 6), vec![metric], fallback).await?;
    let mut event = healthy.source()?;
    event["target"] = json!({ "type": "AverageValue", "averageValue": "5" });
    let healthy_metric = json!({ "type": "Event", "event": event });
    target(&ns, "healthy", 1, (1, 6), vec![healthy_metric], json!({})).await?;
    let watch = Watch::start(
        &ns,
        &[
            ("faulty", within(1, 6)),
            (
                "fallback",
                Rules {
                    fallback: Some(FALLBACK),
                    ..within(1, 6)
                },
            ),
            ("healthy", within(1, 6)),
        ],
    );
    let replica = controller(&bed, &ns, "solo", &logs, false).await?;
    let mut s = SourceScenario {
        bed,
        source,
        healthy,
        watch,
        replica,
    };
    let result = source_phases(&mut s, kind).await;
    let violations = s.watch.finish();
    if result.is_err() {
        eprintln!("{}", s.replica.tail());
    }
    result?;
    assert_none(kind, &violations, &s.replica)?;
    drop(s.replica);
    ns.cleanup().await
}

async fn source_phases(s: &mut SourceScenario, kind: &str) -> Result<()> {
    let started = Instant::now();
    for object in ["faulty", "fallback", "healthy"] {
        wait_active(&s.watch, object, Instant::now()).await?;
    }
    wait_replicas(&s.watch, "faulty", 3, RECOVERY_BOUND).await?;
    wait_replicas(&s.watch, "healthy", 1, RECOVERY_BOUND).await?;
    let cpu = s.replica.cpu_seconds()?;
    let decisions = decided(&s.replica).await?;
    // Stopped: the healthy object's demand goes to 20 (4 replicas) meanwhile.
    outage(s, kind, How::Stop, (20, 4)).await?;
    // Frozen: the healthy object's demand goes to 10 (2 replicas) meanwhile.
    outage(s, kind, How::Freeze, (10, 2)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = s.replica.cpu_seconds()? - cpu;
    let decisions = decided(&s.replica).await? - decisions;
    println!(
        "{kind}: {decisions} decisions of 3 objects in {elapsed:.0} s, {cpu:.2} CPU s ({:.1}% of a core)",
        cpu / elapsed * 100.0
    );
    // No hot loop: no object is decided more often than once a second on average.
    ensure!(
        decisions <= 3.0 * elapsed + 5.0,
        "{kind}: {decisions} decisions in {elapsed:.0} s: a hot loop"
    );
    ensure!(
        s.replica.alive(),
        "the controller exited\n{}",
        s.replica.tail()
    );
    Ok(())
}

/// Takes the source away (`how`) and brings it back, checking what the watchers cannot.
async fn outage(s: &mut SourceScenario, kind: &str, how: How, healthy: (usize, i32)) -> Result<()> {
    let part = s.source.part();
    let label = match how {
        How::Stop => format!("{kind} stopped"),
        How::Freeze => format!("{kind} frozen"),
    };
    let heal = Heal::new(&s.bed, part);
    let failed_before = failed(&s.replica).await?;
    let began = Instant::now();
    s.watch.fault_begins(part.name(), &["faulty", "fallback"]);
    match how {
        How::Stop => faults::crash(&s.bed, part)?,
        How::Freeze => faults::freeze(&s.bed, part)?,
    }
    // The object beside keeps being decided: its demand changes and it follows.
    s.healthy.clear().await?;
    s.healthy.push(healthy.0).await?;
    let followed = wait_replicas(&s.watch, "healthy", healthy.1, Duration::from_secs(20))
        .await
        .with_context(|| format!("{label}: the healthy object beside"))?;
    println!(
        "{label}: the healthy object beside followed its demand in {:.1} s",
        followed.as_secs_f64()
    );
    if how == How::Stop {
        let fell_back = wait_replicas(&s.watch, "fallback", FALLBACK, Duration::from_secs(30))
            .await
            .with_context(|| format!("{label}: the fallback replicas"))?;
        println!(
            "{label}: fallback to {FALLBACK} replicas after {:.1} s",
            (began.elapsed()).as_secs_f64()
        );
        let _ = fell_back;
    }
    let hold = match how {
        How::Stop => Duration::from_secs(6),
        How::Freeze => READ_TIMEOUT + Duration::from_secs(4),
    };
    tokio::time::sleep(hold.saturating_sub(began.elapsed())).await;
    let named = s.watch.check_named(&s.source.fragment()?);
    match how {
        How::Stop => {
            faults::start(&s.bed, part)?;
        }
        How::Freeze => faults::thaw(&s.bed, part)?,
    }
    let back = s.watch.fault_ends();
    let down_for = began.elapsed();
    let fell_back = s.watch.replicas("fallback") != Some(3);
    drop(heal);
    if how == How::Stop {
        s.source.restore(LEVEL).await?;
    }
    for (object, message) in &named {
        println!("{label}: {object}: {message}");
    }
    let failed_during = failed(&s.replica).await? - failed_before;
    recovery(s, &label, back, fell_back).await?;
    // A stopped source fails at once and is retried after 1, 2, 4 ... s; a frozen one times out.
    let spacing = match how {
        How::Stop => 1.0,
        How::Freeze => READ_TIMEOUT.as_secs_f64(),
    };
    let bound = 2.0 * (down_for.as_secs_f64() / spacing + 2.0);
    println!(
        "{label}: down {:.1} s, {failed_during} failed decisions (bound {bound:.0})",
        down_for.as_secs_f64()
    );
    ensure!(
        failed_during <= bound,
        "{label}: {failed_during} failed decisions in {down_for:?}: the source is read too often"
    );
    ensure!(
        s.replica.alive(),
        "the controller exited\n{}",
        s.replica.tail()
    );
    Ok(())
}

/// Waits for both objects of the source to read it again and to have the count it asks for.
async fn recovery(s: &SourceScenario, label: &str, back: Instant, fell_back: bool) -> Result<()> {
    // While it falls back, `fallback` counts as valid: only its return to 3 replicas tells.
    let valid = wait_active(&s.watch, "faulty", back).await?;
    let mut figures = vec![format!("faulty read it {:.1} s", valid.as_secs_f64())];
    for object in ["faulty", "fallback"] {
        wait_replicas(&s.watch, object, 3, RECOVERY_BOUND)
            .await
            .with_context(|| format!("{label}: {object} after the source came back"))?;
    }
    if fell_back {
        figures.push(format!(
            "fallback back at 3 replicas {:.1} s",
            back.elapsed().as_secs_f64()
        ));
    }
    println!(
        "{label}: recovery: {} after the source was back",
        figures.join(", ")
    );
    if valid > RECOVERY_BOUND {
        s.watch
            .violation(format!("{label}: faulty recovered after {valid:?}"));
    }
    Ok(())
}

// ---- the API server restarted in the middle of a scale-up ------------------------------------

/// Scales up by one replica per `period` seconds, decided every 2 s.
fn one_by_one(period: u64) -> serde_json::Value {
    json!({ "behavior": {
        "scaleUp": { "stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                     "policies": [{ "type": "Pods", "value": 1, "periodSeconds": period }] },
        "scaleDown": { "stabilizationWindowSeconds": 0 },
    }})
}

fn climbing() -> Rules {
    Rules {
        never_down: true,
        max_step: Some(1),
        ..within(1, 8)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_mid_scale_up() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let (Some(climb), Some(steady)) = (
        Backlog::create(&bed, "redis").await?,
        Backlog::create(&bed, "redis").await?,
    ) else {
        eprintln!("skipped: redis must run in the test bed");
        return Ok(());
    };
    let (ns, logs) = scenario_namespace(&bed, "faults-apiserver").await?;
    climb.push(30).await?;
    steady.push(15).await?;
    let metric = |b: &Backlog| -> Result<serde_json::Value> {
        let mut event = b.source()?;
        event["target"] = json!({ "type": "AverageValue", "averageValue": "5" });
        Ok(json!({ "type": "Event", "event": event }))
    };
    let steady_rules = Rules {
        never_down: true,
        ..within(1, 8)
    };
    let watch = Watch::start(&ns, &[("climber", climbing()), ("steady", steady_rules)]);
    target(&ns, "steady", 3, (1, 8), vec![metric(&steady)?], json!({})).await?;
    target(
        &ns,
        "climber",
        1,
        (1, 8),
        vec![metric(&climb)?],
        one_by_one(4),
    )
    .await?;
    let mut replica = controller(&bed, &ns, "solo", &logs, false).await?;
    let result = api_server_body(&bed, &watch, &mut replica).await;
    let violations = watch.finish();
    if result.is_err() {
        eprintln!("{}", replica.tail());
    }
    result?;
    assert_none("kube-apiserver", &violations, &replica)?;
    drop(replica);
    ns.cleanup().await
}

async fn api_server_body(bed: &TestBed, watch: &Watch, replica: &mut Replica) -> Result<()> {
    wait_replicas(watch, "climber", 3, Duration::from_secs(60)).await?;
    let heal = Heal::new(bed, Part::ApiServer);
    let cpu = replica.cpu_seconds()?;
    watch.fault_begins(Part::ApiServer.name(), &["climber", "steady"]);
    faults::crash(bed, Part::ApiServer)?;
    let crashed = Instant::now();
    // The moment the API server answers again (before `up kube` returns: it waits for more).
    let client = bed.client();
    let answered = tokio::spawn(async move {
        loop {
            let version = tokio::time::timeout(Duration::from_secs(1), client.apiserver_version());
            if matches!(version.await, Ok(Ok(_))) {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| faults::start(bed, Part::ApiServer))?;
    let back = answered.await?;
    watch.fault_ends();
    drop(heal);
    wait_replicas(watch, "climber", 6, RECOVERY_BOUND).await?;
    let step = watch
        .reached("climber", 4)
        .context("climber never seen at 4")?;
    let done = watch
        .reached("climber", 6)
        .context("climber never seen at 6")?;
    let next_step = step.saturating_duration_since(back);
    println!(
        "kube-apiserver: crashed, answering again {:.1} s later; the next scale step {:.1} s after that (goal 10 s), 6 replicas after {:.1} s",
        back.duration_since(crashed).as_secs_f64(),
        next_step.as_secs_f64(),
        done.saturating_duration_since(back).as_secs_f64()
    );
    if next_step > RECOVERY_BOUND {
        watch.violation(format!(
            "the next scale step {next_step:?} after the API server was back"
        ));
    }
    ensure!(
        watch.replicas("steady") == Some(3),
        "steady moved to {:?}",
        watch.replicas("steady")
    );
    println!(
        "kube-apiserver: {:.2} CPU s over the scenario",
        replica.cpu_seconds()? - cpu
    );
    ensure!(replica.alive(), "the controller exited\n{}", replica.tail());
    Ok(())
}

// ---- the leader SIGKILLed in the middle of its writes --------------------------------------------

/// SuccessfulRescale events by `reportingInstance`, with their times.
async fn rescale_events(ns: &TestNamespace) -> Result<Vec<(String, jiff::Timestamp)>> {
    let mut out = Vec::new();
    for e in ns.api::<Event>().list(&ListParams::default()).await? {
        if e.reason.as_deref() != Some("SuccessfulRescale") {
            continue;
        }
        let at = e
            .event_time
            .as_ref()
            .map(|t| t.0)
            .context("an event without eventTime")?;
        out.push((e.reporting_instance.unwrap_or_default(), at));
        if let Some(last) = e.series.as_ref().map(|s| s.last_observed_time.0) {
            out.push((out[out.len() - 1].0.clone(), last));
        }
    }
    Ok(out)
}

async fn holder(ns: &TestNamespace) -> Result<Option<String>> {
    let lease = ns.api::<Lease>().get_opt("ballast-horizontal").await?;
    Ok(lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_write() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let _serial = faults::serial();
    let Some(climb) = Backlog::create(&bed, "redis").await? else {
        eprintln!("skipped: redis must run in the test bed");
        return Ok(());
    };
    let (ns, logs) = scenario_namespace(&bed, "faults-leader").await?;
    climb.push(30).await?;
    let mut replicas = vec![
        controller(&bed, &ns, "a", &logs, true).await?,
        controller(&bed, &ns, "b", &logs, true).await?,
    ];
    let first = poll_until("a lease holder", Duration::from_secs(30), FAST, || {
        holder(&ns)
    })
    .await?;
    let watch = Watch::start(&ns, &[("climber", climbing())]);
    let mut event = climb.source()?;
    event["target"] = json!({ "type": "AverageValue", "averageValue": "5" });
    let metric = json!({ "type": "Event", "event": event });
    target(&ns, "climber", 1, (1, 8), vec![metric], one_by_one(3)).await?;
    let result = leader_body(&ns, &watch, &mut replicas, &first).await;
    let violations = watch.finish();
    if result.is_err() {
        for r in &replicas {
            eprintln!("{}", r.tail());
        }
    }
    result?;
    assert_none("leader", &violations, &replicas[0])?;
    drop(replicas);
    ns.cleanup().await
}

async fn leader_body(
    ns: &TestNamespace,
    watch: &Watch,
    replicas: &mut [Replica],
    first: &str,
) -> Result<()> {
    let (leader, standby) = if first == "a" { (0, 1) } else { (1, 0) };
    wait_replicas(watch, "climber", 2, Duration::from_secs(60)).await?;
    // The scale write is seen; its status patch and event are being sent: kill now.
    replicas[leader].signal("KILL")?;
    let killed = Instant::now();
    let killed_at = jiff::Timestamp::now();
    for metric in [
        "ballast_horizontal_rescales_total",
        "ballast_horizontal_status_patches_total",
        "ballast_horizontal_events_total",
    ] {
        let n = replicas[standby].counter(metric).await?;
        ensure!(n == 0.0, "the standby counted {n} {metric} before it led");
    }
    let took = wait_replicas(watch, "climber", 3, Duration::from_secs(60)).await?;
    let second = holder(ns).await?.context("no holder after the kill")?;
    ensure!(second != first, "the killed {first} still holds the lease");
    println!(
        "leader: SIGKILL of {first} right after its write; {second} wrote the next step {:.1} s later",
        killed.elapsed().as_secs_f64()
    );
    let _ = took;
    wait_replicas(watch, "climber", 4, RECOVERY_BOUND).await?;
    let events = rescale_events(ns).await?;
    println!("leader: SuccessfulRescale events {events:?}");
    for (instance, at) in &events {
        let before = *at < killed_at;
        let expected = if before { first } else { second.as_str() };
        if instance != expected {
            watch.violation(format!(
                "a SuccessfulRescale at {at} from {instance}, while {expected} led"
            ));
        }
    }
    ensure!(
        events.iter().any(|(i, _)| *i == second),
        "no event from the new leader {second}"
    );
    ensure!(
        replicas[standby].alive(),
        "the new leader exited\n{}",
        replicas[standby].tail()
    );
    Ok(())
}
