//! Predictive scaling in the live horizontal reconciler, on the test bed
//! (`tests/testbed.sh up kube prometheus`): the demand history backfilled from Prometheus,
//! stored in the object's ConfigMap and restored by a restarted controller.
//!
//! The metric is a PromQL expression of `time()` (`1 + 10 × (1 + sin(2π t / 120))`): a "day"
//! of 120 s that Prometheus can answer for any past instant, so a range query over the history
//! window returns a full history without the test waiting for it. `spec.predictive`: `Scale`,
//! `Daily`, a day of 120 s, steps of 4 s, 480 s of history, 20 s ahead, quantile 0.5, an error
//! window of 10 steps; the forecast needs 2 days + 5 + 10 steps = 75 steps of history.
//!
//! `backfill_scales_ahead_and_a_restart_restores_the_history`:
//! 1. with backfill, `status.prediction` is trusted (`PredictionActive=True/Forecasting`) on
//!    the first decisions, without 300 s of live history;
//! 2. in `Scale` mode the Deployment runs at least 2 replicas more than the load of the moment
//!    asks for (twice within a day of 120 s) while the load rises (the reactive count is at most
//!    one above it: the load moves by at most 1.05 every 2 s, one decision; 20 s ahead the forecast
//!    is up to 10 replicas above it, so the margin is wide where the load rises fast);
//! 3. the history is stored in the ConfigMap `web-demand-history`, owned by the autoscaler;
//! 4. a controller started again with backfill off restores it: its first decision (forced by a
//!    spec change) is trusted;
//! 5. a ConfigMap whose `stepSeconds` is not a number is reported (Warning event
//!    `InvalidDemandHistory` naming the ConfigMap and the key) and ignored: the history starts
//!    again (`HistoryTooShort`).
//!
//! `forecast_only_reports_and_never_scales_ahead`: the same object in `ForecastOnly` mode. The
//! forecast is trusted and `status.prediction.predictedReplicas` runs at least 2 above the
//! replicas while the load rises, but the replicas never do: on every sample of a rising load
//! they stay within one of it, as reactive scaling keeps them. (Run in `Scale` mode, the test
//! fails on one check or the other.)
//!
//! Without a test bed the test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

mod vertical_support;

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_controller::horizontal::{Config, DemandHistoryConfig, HorizontalController};
use ballast_metrics::MetricsConfig;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use serde_json::json;

type Running = ballast_testbed::running::Running<ballast_controller::horizontal::Error>;

const DAY_SECONDS: f64 = 120.0;
const QUERY: &str = "1 + 10 * (1 + sin(vector(2 * pi() * time() / 120)))";

/// The load the query gives at `unix_seconds`, in replicas (averageValue 1).
fn load_at(unix_seconds: f64) -> f64 {
    1.0 + 10.0 * (1.0 + (2.0 * PI * unix_seconds / DAY_SECONDS).sin())
}

fn unix_now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

fn start_controller(
    bed: &TestBed,
    ns: &TestNamespace,
    prometheus: &str,
    backfill: bool,
) -> Result<Running> {
    let config = Config {
        namespace: Some(ns.name().to_owned()),
        metrics: MetricsConfig {
            prometheus_url: Some(prometheus.to_owned()),
            read_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        instance: format!("test-{}", ns.name()),
        demand_history: DemandHistoryConfig {
            save_interval: Duration::from_secs(4),
            backfill,
        },
        ..Default::default()
    };
    let mut registry = Registry::default();
    let controller = HorizontalController::new(bed.client(), config, &mut registry)?;
    Ok(Running::spawn(|s| controller.run(s), registry))
}

fn autoscaler(ns: &TestNamespace, mode: &str) -> Result<HorizontalAutoscaler> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web", "namespace": ns.name() },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": 30, "syncPeriodSeconds": 2,
            "metrics": [{ "type": "Prometheus", "prometheus": {
                "query": QUERY, "target": { "type": "AverageValue", "averageValue": "1" } } }],
            "behavior": {
                "scaleUp": { "stabilizationWindowSeconds": 0, "policies": [{ "type": "Pods", "value": 20, "periodSeconds": 1 }] },
                "scaleDown": { "stabilizationWindowSeconds": 0, "policies": [{ "type": "Pods", "value": 20, "periodSeconds": 1 }] }
            },
            "predictive": {
                "mode": mode, "seasonality": "Daily", "seasonLengthSeconds": 120,
                "stepSeconds": 4, "historyWindowSeconds": 480, "lookAheadSeconds": 20,
                "quantile": "0.5", "errorWindowSteps": 10
            }
        }
    }))?)
}

/// `status.prediction` as `(trusted, reason)` and the generation the status was decided for.
async fn prediction(ns: &TestNamespace) -> Result<(Option<(bool, String)>, Option<i64>)> {
    let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
    let status = h.status.unwrap_or_default();
    Ok((
        status.prediction.map(|p| (p.trusted, p.reason)),
        status.observed_generation,
    ))
}

/// Waits for a status decided for the current generation whose prediction has `reason`.
async fn wait_prediction(ns: &TestNamespace, reason: &str, timeout: Duration) -> Result<()> {
    let generation = ns
        .api::<HorizontalAutoscaler>()
        .get("web")
        .await?
        .metadata
        .generation;
    let r = poll_until(
        &format!("status.prediction.reason {reason} at generation {generation:?}"),
        timeout,
        Duration::from_millis(250),
        || async {
            let (p, observed) = prediction(ns).await?;
            Ok((observed == generation && p.as_ref().is_some_and(|p| p.1 == reason)).then_some(()))
        },
    )
    .await;
    if r.is_err() {
        let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
        eprintln!("status: {}", serde_json::to_string_pretty(&h.status)?);
    }
    r
}

/// Bumps the spec (maxReplicas), so the controller decides at once.
async fn touch_spec(ns: &TestNamespace, max: i32) -> Result<()> {
    ns.api::<HorizontalAutoscaler>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "maxReplicas": max } })),
        )
        .await?;
    Ok(())
}

/// A namespace with a kwok node, Deployment `web` of one ready pod and the autoscaler `web` in
/// predictive `mode`.
async fn web_with_autoscaler(bed: &TestBed, prefix: &str, mode: &str) -> Result<TestNamespace> {
    vertical_support::install_crds(bed).await?;
    let ns = bed.namespace(prefix).await?;
    ns.create_kwok_node(KwokNode::new("n1").cpu("32").memory("64Gi"))
        .await?;
    ns.create_deployment(TestDeployment::new("web").replicas(1))
        .await?;
    ns.wait_deployment_ready("web", 1, Duration::from_secs(90))
        .await?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &autoscaler(&ns, mode)?)
        .await?;
    Ok(ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_scales_ahead_and_a_restart_restores_the_history() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    let ns = web_with_autoscaler(&bed, "hza-predict", "Scale").await?;

    // 1. Trusted at once: the history came from Prometheus.
    let started = Instant::now();
    let ctl = start_controller(&bed, &ns, &prometheus, true)?;
    wait_prediction(&ns, "Forecasting", Duration::from_secs(20)).await?;
    eprintln!(
        "trusted {:.1} s after the controller started",
        started.elapsed().as_secs_f64()
    );
    let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
    let active = h
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "PredictionActive"))
        .context("no PredictionActive condition")?;
    ensure!(
        active.status == "True" && active.reason == "Forecasting",
        "{active:?}"
    );
    eprintln!("PredictionActive: {}", active.message);

    // 2. Ahead of the load: watch a whole day (120 s) for the replicas beyond the load.
    let deployments = ns.api::<Deployment>();
    let mut ahead = 0;
    let mut widest = f64::MIN;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(120) && ahead < 2 {
        let replicas = deployments
            .get("web")
            .await?
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let load = load_at(unix_now());
        let beyond = f64::from(replicas) - load.ceil();
        widest = widest.max(beyond);
        if beyond >= 2.0 {
            ahead += 1;
            eprintln!(
                "{replicas} replicas for a load of {load:.2} now, {:.2} in 20 s",
                load_at(unix_now() + 20.0)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if ahead < 2 {
        let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
        eprintln!("status: {}", serde_json::to_string_pretty(&h.status)?);
    }
    ensure!(
        ahead >= 2,
        "the replicas never ran 2 beyond the load (widest margin {widest:.2})"
    );
    eprintln!(
        "ahead of the load {:.1} s into the watch",
        watch.elapsed().as_secs_f64()
    );

    // 3. Stored, owned by the autoscaler.
    let cm: ConfigMap = poll_until(
        "the stored history",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || async { Ok(ns.api::<ConfigMap>().get_opt("web-demand-history").await?) },
    )
    .await?;
    let owner = cm.metadata.owner_references.clone().unwrap_or_default();
    ensure!(
        owner
            .iter()
            .any(|o| o.kind == "HorizontalAutoscaler" && Some(&o.uid) == h.metadata.uid.as_ref()),
        "{owner:?}"
    );
    let bytes = cm
        .binary_data
        .as_ref()
        .and_then(|b| b.get("values"))
        .map_or(0, |v| v.0.len());
    eprintln!("stored: {:?}, {bytes} bytes of values", cm.data);
    ensure!(
        bytes >= 75 * 4,
        "{bytes} bytes stored, want at least 75 values"
    );

    // 4. Restart without backfill: the first decision is trusted from the stored history.
    ctl.stop().await?;
    let ctl = start_controller(&bed, &ns, &prometheus, false)?;
    let restarted = Instant::now();
    touch_spec(&ns, 29).await?;
    wait_prediction(&ns, "Forecasting", Duration::from_secs(20)).await?;
    eprintln!(
        "trusted {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    ctl.stop().await?;

    // 5. A malformed stored history is reported and ignored.
    ns.api::<ConfigMap>()
        .patch(
            "web-demand-history",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "data": { "stepSeconds": "four" } })),
        )
        .await?;
    let ctl = start_controller(&bed, &ns, &prometheus, false)?;
    touch_spec(&ns, 28).await?;
    wait_prediction(&ns, "HistoryTooShort", Duration::from_secs(20)).await?;
    let event = poll_until(
        "an InvalidDemandHistory event",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || async {
            let events = ns.api::<Event>().list(&ListParams::default()).await?;
            Ok(events
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("InvalidDemandHistory")))
        },
    )
    .await?;
    let note = event.note.unwrap_or_default();
    eprintln!("event: {note}");
    ensure!(
        event.type_.as_deref() == Some("Warning"),
        "{:?}",
        event.type_
    );
    ensure!(
        note.contains(&format!("ConfigMap {}/web-demand-history", ns.name()))
            && note.contains("key stepSeconds"),
        "{note}"
    );
    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_only_reports_and_never_scales_ahead() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prometheus = service_or_skip!(bed.prometheus_url(), Ok(()));
    let ns = web_with_autoscaler(&bed, "hza-forecast-only", "ForecastOnly").await?;
    let ctl = start_controller(&bed, &ns, &prometheus, true)?;
    wait_prediction(&ns, "Forecasting", Duration::from_secs(20)).await?;

    // Samples while the load rises (it does for half of each 120 s day): the forecast asks for
    // more than runs, the replicas stay reactive.
    let deployments = ns.api::<Deployment>();
    let (mut rising, mut asked_ahead) = (0, 0);
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(130) && (rising < 40 || asked_ahead < 2) {
        let now = unix_now();
        let load = load_at(now);
        let replicas = deployments
            .get("web")
            .await?
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
        let predicted = h
            .status
            .and_then(|s| s.prediction)
            .and_then(|p| p.predicted_replicas);
        if load_at(now + 4.0) > load {
            rising += 1;
            ensure!(
                f64::from(replicas) - load.ceil() < 2.0,
                "ForecastOnly scaled ahead: {replicas} replicas for a load of {load:.2}"
            );
            if predicted.is_some_and(|p| p >= replicas + 2) {
                asked_ahead += 1;
                eprintln!(
                    "forecast asks for {predicted:?}, {replicas} run, load {load:.2} now, {:.2} in 20 s",
                    load_at(now + 20.0)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(rising >= 40, "only {rising} samples of a rising load");
    ensure!(
        asked_ahead >= 2,
        "status.prediction.predictedReplicas never ran 2 above the replicas"
    );
    ctl.stop().await?;
    ns.cleanup().await?;
    Ok(())
}
