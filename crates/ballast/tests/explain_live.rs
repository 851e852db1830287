//! `ballast explain horizontal --live` against the REAL test bed
//! (`tests/testbed.sh up kube metrics-server`).
//!
//! - `explains_a_live_autoscaler_and_saves_its_snapshot`: a Deployment of two pods at 100% of
//!   their CPU request (kwok usage annotations, served by metrics-server) and a
//!   HorizontalAutoscaler on 50% CPU utilization, with no controller running: the live
//!   explanation says scale 2 → 4 because of the CPU metric; `--save-snapshot` writes a file that
//!   `explain -f` decides on identically; nothing was written to the cluster.
//! - `a_missing_autoscaler_is_named`: `--live ns/missing` fails with a non-zero exit and an error
//!   naming `HorizontalAutoscaler ns/missing`.
//!
//! Without a test bed every test prints a skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_testbed::usage::wait_for_pod_metrics;
use ballast_testbed::{
    KwokNode, TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use serde::Deserialize as _;
use serde_json::json;

/// CPU per pod just under the 100m request: metrics-server reads it as 100m, i.e. 100%.
const HIGH_CPU: &str = "99500u";
const MEMORY: &str = "10Mi";

async fn install_crd(bed: &TestBed) -> Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../crds/horizontalautoscalers.autoscaling.ballast.dev.yaml");
    let text = std::fs::read_to_string(&path)?;
    let mut crds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if !value.is_null() {
            crds.push(serde_yaml::from_value::<CustomResourceDefinition>(value)?);
        }
    }
    let client = bed.client();
    ballast_testbed::crds::apply(
        &client,
        crds,
        "ballast-explain-test",
        Duration::from_secs(30),
    )
    .await
}

/// `ballast ARGS...` on the bed's kubeconfig, run to completion.
fn ballast(bed: &TestBed, args: &[&str]) -> Result<Output> {
    let kubeconfig = bed
        .env()
        .get("BALLAST_KUBECONFIG")
        .context("BALLAST_KUBECONFIG")?;
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .context("running ballast")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Two pods at 100% CPU, metrics served, and `web` on 50% CPU utilization (no controller).
async fn web_at_full_cpu(bed: &TestBed, ns: &TestNamespace) -> Result<()> {
    ns.create_kwok_node(KwokNode::new("n1").cpu("16").memory("64Gi"))
        .await?;
    ns.create_deployment(
        TestDeployment::new("web")
            .replicas(2)
            .usage(HIGH_CPU, MEMORY),
    )
    .await?;
    ns.wait_deployment_ready("web", 2, Duration::from_secs(90))
        .await?;
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods("app=web").await? {
        let pod = pod.metadata.name.context("pod without a name")?;
        wait_for_pod_metrics(&bed.client(), ns.name(), &pod, HIGH_CPU, MEMORY, timeout).await?;
    }
    let hza: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web", "namespace": ns.name() },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1,
            "maxReplicas": 6,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                "target": { "type": "Utilization", "averageUtilization": 50 } } }]
        }
    }))?;
    ns.api::<HorizontalAutoscaler>()
        .create(&PostParams::default(), &hza)
        .await
        .context("creating HorizontalAutoscaler web")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_a_live_autoscaler_and_saves_its_snapshot() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    service_or_skip!(bed.metrics_server_url(), Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("explain-live").await?;
    web_at_full_cpu(&bed, &ns).await?;
    let target = format!("{}/web", ns.name());

    // The explanation: 100% against 50% → ratio 2 → 4 replicas, the CPU metric named.
    let out = ballast(&bed, &["explain", "horizontal", "--live", &target])?;
    let shown = text(&out.stdout);
    println!("$ ballast explain horizontal --live {target}\n{shown}");
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(shown.contains("scale 2 → 4"), "no scale 2 → 4:\n{shown}");
    ensure!(
        shown.contains("cpu"),
        "the CPU metric is not named:\n{shown}"
    );
    ensure!(
        shown.contains("→ 4"),
        "the CPU metric proposes no 4:\n{shown}"
    );

    // --save-snapshot: the file decides as the capture did.
    let dir = tempfile_dir(ns.name())?;
    let file = dir.join("web.yaml");
    let file_arg = file.to_str().context("temporary path")?;
    let live = ballast(
        &bed,
        &[
            "explain",
            "horizontal",
            "--live",
            &target,
            "--save-snapshot",
            file_arg,
            "-o",
            "json",
        ],
    )?;
    ensure!(live.status.success(), "{}", text(&live.stderr));
    let saved = ballast(
        &bed,
        &["explain", "horizontal", "-f", file_arg, "-o", "json"],
    )?;
    ensure!(saved.status.success(), "{}", text(&saved.stderr));
    ensure!(
        live.stdout == saved.stdout,
        "the saved snapshot decides differently:\nlive:\n{}\nsaved:\n{}",
        text(&live.stdout),
        text(&saved.stdout)
    );
    let decision: serde_json::Value = serde_json::from_slice(&saved.stdout)?;
    ensure!(decision["desiredReplicas"] == 4, "{decision}");
    ensure!(decision["metrics"][0]["replicas"] == 4, "{decision}");

    // Explaining writes nothing: the Deployment keeps 2 replicas, the autoscaler no status.
    let web = ns.api::<Deployment>().get("web").await?;
    let replicas = web.spec.and_then(|s| s.replicas);
    ensure!(
        replicas == Some(2),
        "the Deployment was rescaled: {replicas:?}"
    );
    let hza = ns.api::<HorizontalAutoscaler>().get("web").await?;
    ensure!(
        hza.status.is_none(),
        "a status was written: {:?}",
        hza.status
    );
    std::fs::remove_dir_all(&dir)?;
    ns.cleanup().await
}

#[tokio::test]
async fn a_missing_autoscaler_is_named() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    install_crd(&bed).await?;
    let ns = bed.namespace("explain-missing").await?;
    let target = format!("{}/missing", ns.name());
    let out = ballast(&bed, &["explain", "horizontal", "--live", &target])?;
    let err = text(&out.stderr);
    ensure!(
        !out.status.success(),
        "a missing object explained: {}",
        text(&out.stdout)
    );
    ensure!(
        err.contains(&format!("HorizontalAutoscaler {target} not found")),
        "the error does not name the object: {err}"
    );
    ns.cleanup().await
}

/// A fresh folder under the system's temporary folder.
fn tempfile_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ballast-explain-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
