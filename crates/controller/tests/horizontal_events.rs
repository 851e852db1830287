//! Scale to and from zero on the backlog of the REAL event sources of the test bed
//! (`tests/testbed.sh up kube redis rabbitmq postgres moto kafka`), through the horizontal
//! reconciler:
//!
//! - `redis_list_zero_to_n_and_back`, `rabbitmq_queue_zero_to_n_and_back`,
//!   `postgresql_query_zero_to_n_and_back`, `sqs_queue_zero_to_n_and_back`,
//!   `kafka_lag_zero_to_n_and_back`: a consumer Deployment of kwok pods at 0 replicas
//!   (minReplicas 0, activation threshold 0, 5 items per replica) goes to 1 when the first item
//!   arrives, to 4 with 18 items, back to 0 once the backlog is empty and the cooldown (10 s, set
//!   on the object) is over. The time from the first item to the scale to 1 (the default sync
//!   period, 15 s, and the default activation poll, 250 ms) is printed for each of three
//!   activations. Kafka's backlog is the lag of a consumer group on a topic of 6 partitions
//!   (`offsetResetPolicy: earliest`; the group "consumes" by committing the log ends).
//! - `activation_poll_wakes_an_object_with_a_long_sync_period`: with `syncPeriodSeconds: 60`,
//!   the first item still scales the consumer from 0 to 1 within 5 s (the activation poll), and
//!   with `activationPollMilliseconds: 0` it stays at 0 for those 5 s (the next sync decides).
//! - `fallback_and_pause_with_a_source_down`: Redis is stopped (`tests/testbed.sh down redis`)
//!   under an autoscaler reading Redis and PostgreSQL: the fallback replicas apply, a higher
//!   demand of PostgreSQL wins over them, `paused` with `pausedReplicas` holds the count against
//!   that demand, and unpausing resumes it. Redis is started again at the end.
//!
//! Each test runs its own reconciler restricted to its own namespace. Without a test bed every
//! test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod backlog_support;
mod vertical_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use backlog_support::Backlog;
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::horizontal::{Config, HorizontalController};
use ballast_metrics::MetricsConfig;
use ballast_testbed::faults::Part;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace, testbed_or_skip};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;

type Running = ballast_testbed::running::Running<ballast_controller::horizontal::Error>;

/// Taken for reading by the tests that need Redis up, for writing by the one that stops it.
static REDIS_UP: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const CONSUMER: &str = "consumer";
const ACTIVATION_TRIALS: usize = 3;

fn start_controller(bed: &TestBed, ns: &TestNamespace) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        metrics: MetricsConfig {
            read_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            ..Default::default()
        },
        instance: format!("test-{}", ns.name()),
        ..Default::default()
    };
    let mut registry = Registry::default();
    let controller = HorizontalController::new(bed.client(), config, &mut registry)?;
    Ok(Running::spawn(|s| controller.run(s), registry))
}

/// The namespace with a kwok node, the consumer Deployment at 0 replicas and the moto credentials.
async fn consumer_namespace(bed: &TestBed, prefix: &str) -> Result<TestNamespace> {
    vertical_support::install_crds(bed).await?;
    backlog_support::consumer_namespace(bed, prefix, CONSUMER).await
}

/// An autoscaler of the consumer on `events` (each with an AverageValue target of 5 per replica),
/// minReplicas 0, the default sync period, a 10 s cooldown and no scale-down stabilization.
async fn create_autoscaler(
    ns: &TestNamespace,
    events: Vec<serde_json::Value>,
    extra: serde_json::Value,
) -> Result<()> {
    let metrics: Vec<serde_json::Value> = events
        .into_iter()
        .map(|mut e| {
            e["target"] = json!({ "type": "AverageValue", "averageValue": "5" });
            e["activationThreshold"] = json!("0");
            json!({ "type": "Event", "event": e })
        })
        .collect();
    let mut spec = json!({
        "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": CONSUMER },
        "minReplicas": 0,
        "maxReplicas": 6,
        "cooldownPeriodSeconds": 10,
        "behavior": { "scaleDown": { "stabilizationWindowSeconds": 0 } },
        "metrics": metrics,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let obj: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": CONSUMER, "namespace": ns.name() },
        "spec": spec,
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &obj)
        .await
        .context("creating the HorizontalAutoscaler")?;
    Ok(())
}

async fn replicas(ns: &TestNamespace) -> Result<i32> {
    let d = ns.api::<Deployment>().get(CONSUMER).await?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(-1))
}

/// Waits until the consumer has `want` replicas; the time it took.
async fn wait_replicas(ns: &TestNamespace, want: i32, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let r = poll_until(
        &format!("{CONSUMER} at {want} replicas"),
        timeout,
        Duration::from_millis(100),
        || async { Ok((replicas(ns).await? == want).then_some(())) },
    )
    .await;
    if r.is_err() {
        let h = ns.api::<HorizontalAutoscaler>().get(CONSUMER).await?;
        eprintln!("{}", serde_json::to_string(&h.status).unwrap_or_default());
    }
    r.map(|()| started.elapsed())
}

/// Checks the consumer keeps `want` replicas for `period`.
async fn holds_replicas(ns: &TestNamespace, want: i32, period: Duration) -> Result<()> {
    let end = Instant::now() + period;
    while Instant::now() < end {
        let got = replicas(ns).await?;
        ensure!(
            got == want,
            "{CONSUMER} went to {got} replicas, expected to stay at {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// 0 → 1 on the first item (timed), → 4 on 18 items, → 0 when empty after the cooldown; then
/// two more timed activations.
async fn zero_to_n_and_back(kind: &str) -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let Some(backlog) = Backlog::create(&bed, kind).await? else {
        eprintln!("skipped: {kind} not running in the test bed");
        return Ok(());
    };
    let ns = consumer_namespace(&bed, &format!("hza-zero-{kind}")).await?;
    create_autoscaler(&ns, vec![backlog.source()?], json!({})).await?;
    let running = start_controller(&bed, &ns)?;
    // Idle at zero: nothing to do, nothing done.
    holds_replicas(&ns, 0, Duration::from_secs(5)).await?;
    let sync = Duration::from_secs(15);
    let mut activations = Vec::new();
    for trial in 0..ACTIVATION_TRIALS {
        backlog.push(1).await?;
        let took = wait_replicas(&ns, 1, sync * 3).await?;
        eprintln!(
            "activation {kind} trial {}: {} ms",
            trial + 1,
            took.as_millis()
        );
        activations.push(took);
        if trial == 0 {
            backlog.push(17).await?;
            wait_replicas(&ns, 4, sync * 3).await?;
        }
        backlog.clear().await?;
        wait_replicas(&ns, 0, sync * 4).await?;
    }
    activations.sort();
    eprintln!(
        "activation {kind}: p50 {} ms over {} trials (default sync period 15 s, activation poll 250 ms)",
        activations[activations.len() / 2].as_millis(),
        activations.len()
    );
    running.stop().await?;
    ns.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_list_zero_to_n_and_back() -> Result<()> {
    let _up = REDIS_UP.read().await;
    zero_to_n_and_back("redis").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_queue_zero_to_n_and_back() -> Result<()> {
    zero_to_n_and_back("rabbitmq").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_query_zero_to_n_and_back() -> Result<()> {
    zero_to_n_and_back("postgres").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_zero_to_n_and_back() -> Result<()> {
    zero_to_n_and_back("sqs").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_lag_zero_to_n_and_back() -> Result<()> {
    zero_to_n_and_back("kafka").await
}

/// With a 60 s sync period an object at zero wakes on its first item within a few seconds: the
/// activation poll, not the sync. With the poll off for the object it stays at zero meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_poll_wakes_an_object_with_a_long_sync_period() -> Result<()> {
    let _up = REDIS_UP.read().await;
    let bed = testbed_or_skip!(Ok(()));
    let Some(backlog) = Backlog::create(&bed, "redis").await? else {
        eprintln!("skipped: redis not running in the test bed");
        return Ok(());
    };
    let ns = consumer_namespace(&bed, "hza-wake").await?;
    let extra = json!({ "syncPeriodSeconds": 60, "cooldownPeriodSeconds": 0 });
    create_autoscaler(&ns, vec![backlog.source()?], extra).await?;
    let running = start_controller(&bed, &ns)?;
    // The first decision (at start) leaves it at rest; the next sync is 30–60 s away.
    wait_decided(&ns).await?;
    backlog.push(1).await?;
    let took = wait_replicas(&ns, 1, Duration::from_secs(5))
        .await
        .context("the activation poll did not wake the object at zero (sync period 60 s)")?;
    eprintln!(
        "activation with a 60 s sync period: {} ms",
        took.as_millis()
    );
    // Poll off for this object: the spec change decides at once (empty backlog, no cooldown: to
    // zero), then the first item waits for the next sync.
    backlog.clear().await?;
    // The last active time is stored in whole seconds: cooldown 0 is over a second later.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    patch_spec(&ns, json!({ "activationPollMilliseconds": 0 })).await?;
    wait_replicas(&ns, 0, Duration::from_secs(10)).await?;
    backlog.push(1).await?;
    holds_replicas(&ns, 0, Duration::from_secs(5)).await?;
    running.stop().await?;
    ns.cleanup().await
}

/// Waits until the autoscaler has a status (its first decision was written).
async fn wait_decided(ns: &TestNamespace) -> Result<()> {
    poll_until(
        "the first decision",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let h = ns.api::<HorizontalAutoscaler>().get(CONSUMER).await?;
            Ok(h.status.and_then(|s| s.observed_generation).map(|_| ()))
        },
    )
    .await
}

async fn patch_spec(ns: &TestNamespace, spec: serde_json::Value) -> Result<()> {
    ns.api::<HorizontalAutoscaler>()
        .patch(
            CONSUMER,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_and_pause_with_a_source_down() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let (Some(redis), Some(postgres)) = (
        Backlog::create(&bed, "redis").await?,
        Backlog::create(&bed, "postgres").await?,
    ) else {
        eprintln!("skipped: redis and postgres must run in the test bed");
        return Ok(());
    };
    let _down = REDIS_UP.write().await;
    let ns = consumer_namespace(&bed, "hza-fallback").await?;
    // Every 2 s (set on the object); after 2 failed reads in a row the fallback proposes 3.
    let extra = json!({
        "syncPeriodSeconds": 2,
        "fallback": { "failureThreshold": 2, "replicas": 3 },
    });
    create_autoscaler(&ns, vec![redis.source()?, postgres.source()?], extra).await?;
    let running = start_controller(&bed, &ns)?;
    let t = Duration::from_secs(60);
    redis.push(10).await?;
    wait_replicas(&ns, 2, t).await?;

    ballast_testbed::faults::stop(&bed, Part::Redis)?;
    let result = async {
        wait_replicas(&ns, 3, t)
            .await
            .context("fallback replicas while Redis is down")?;
        // PostgreSQL's 30 rows propose 6 (22 would be 5.5 per replica at 4, within the 10% tolerance):
        // the healthy source's higher demand wins.
        postgres.push(30).await?;
        wait_replicas(&ns, 6, t)
            .await
            .context("higher demand than the fallback")?;
        // Paused with pausedReplicas: set once, then held against the demand.
        patch_spec(&ns, json!({ "paused": true, "pausedReplicas": 1 })).await?;
        wait_replicas(&ns, 1, t).await?;
        holds_replicas(&ns, 1, Duration::from_secs(8)).await?;
        patch_spec(&ns, json!({ "paused": null, "pausedReplicas": null })).await?;
        wait_replicas(&ns, 6, t).await.context("resumed")?;
        anyhow::Ok(())
    }
    .await;
    let restarted = ballast_testbed::faults::start(&bed, Part::Redis);
    result?;
    restarted?;
    postgres.clear().await?;
    running.stop().await?;
    ns.cleanup().await
}
