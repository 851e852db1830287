//! The controllers' `/metrics` as Prometheus sees them, against the REAL test bed
//! (`tests/testbed.sh up kube prometheus`).
//!
//! Each test starts a `ballast controller` process on a free loopback port, registers that port
//! as a scrape target of the bed's Prometheus (a file_sd file in `BALLAST_PROMETHEUS_TARGETS_DIR`,
//! labelled `run=<the test's namespace>`), and reads the metrics back through Prometheus's HTTP
//! API with PromQL:
//!
//! - `nodes_metrics_reach_prometheus`: `ballast controller nodes` (kwok provider) on the test's
//!   own NodePool provisions a node for one pending pod; Prometheus then has a NodeClaim created
//!   and launched for the pool, a registered one, a solve-duration histogram with a count, and
//!   the pool's hourly price (the c6i.large on-demand offering of the catalog).
//! - `horizontal_metrics_reach_prometheus`: `ballast controller horizontal` on an empty
//!   namespace; Prometheus has its `ballast_horizontal_objects` gauge.
//!
//! Without a test bed (or without its Prometheus) every test prints a skip note and passes,
//! unless `BALLAST_REQUIRE_TESTBED=1`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip};
use serde_json::json;

mod process_support;
use process_support::{
    RUN_LABEL, Replica, claims, cleanup_nodes, create_kwok_pool, install_horizontal_crd,
    install_node_crds,
};

/// A scrape target of the bed's Prometheus, removed on drop.
struct ScrapeTarget {
    file: PathBuf,
}

impl ScrapeTarget {
    /// Asks Prometheus to scrape `127.0.0.1:port`, its series labelled `run=<run>`.
    fn add(dir: &str, run: &str, port: u16) -> Result<ScrapeTarget> {
        let file = PathBuf::from(dir).join(format!("{run}.json"));
        let body = json!([{ "targets": [format!("127.0.0.1:{port}")], "labels": { "run": run } }]);
        std::fs::write(&file, serde_json::to_vec(&body)?)
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(ScrapeTarget { file })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Waits until the instant query `query` has a sample and `ok` holds for the first one; its
/// value.
async fn wait_query(
    prom: &prometheus_http_query::Client,
    query: &str,
    ok: impl Fn(f64) -> bool,
) -> Result<f64> {
    poll_until(
        &format!("Prometheus: {query}"),
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let r = prom.query(query).get().await?;
            let got = r
                .data()
                .as_vector()
                .and_then(|v| v.first())
                .map(|s| s.sample().value());
            Ok(got.filter(|v| ok(*v)))
        },
    )
    .await
}

fn logs_dir(run: &str) -> Result<PathBuf> {
    let logs = std::env::temp_dir().join(format!("ballast-{run}"));
    std::fs::create_dir_all(&logs)?;
    Ok(logs)
}

#[tokio::test]
async fn nodes_metrics_reach_prometheus() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prom = service_or_skip!(bed.prometheus(), Ok(()));
    let targets = service_or_skip!(bed.prometheus_targets_dir(), Ok(()));
    let client = bed.client();
    install_node_crds(&client).await?;
    let ns = bed.namespace("metrics-nodes").await?;
    let name = ns.name().to_owned();
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
        "--batch-max",
        "3",
        "--nodes-health-addr",
    ];
    let controller = Replica::spawn(&bed, &name, "nodes", &logs_dir(&name)?, &args)?;
    let _target = ScrapeTarget::add(&targets, &name, controller.port)?;
    controller.wait_ready().await?;
    create_kwok_pool(&client, &name).await?;
    let result = nodes_body(&bed, &prom, &ns, &controller).await;
    cleanup_nodes(&client, &ns).await;
    if result.is_err() {
        eprintln!("{}", controller.tail());
    }
    drop(controller);
    result?;
    ns.cleanup().await
}

async fn nodes_body(
    bed: &TestBed,
    prom: &prometheus_http_query::Client,
    ns: &TestNamespace,
    controller: &Replica,
) -> Result<()> {
    let client = bed.client();
    let name = ns.name();
    ns.create_deployment(
        TestDeployment::new("big")
            .replicas(1)
            .request("cpu", "1500m"),
    )
    .await?;
    poll_until(
        "a NodeClaim",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async { Ok((!claims(&client, name).await?.is_empty()).then_some(())) },
    )
    .await?;
    let pool = format!("nodepool=\"{name}\",run=\"{name}\"");
    let created = wait_query(
        prom,
        &format!("sum(ballast_nodes_nodeclaims_created_total{{{pool},reason=\"provisioning\"}})"),
        |v| v >= 1.0,
    )
    .await?;
    let launched = wait_query(
        prom,
        &format!(
            "sum(ballast_nodes_nodeclaims_launched_total{{{pool},capacity_type=\"on-demand\"}})"
        ),
        |v| v >= 1.0,
    )
    .await?;
    let registered = wait_query(
        prom,
        &format!("sum(ballast_nodes_nodeclaims_registered_total{{{pool}}})"),
        |v| v >= 1.0,
    )
    .await?;
    let solves = wait_query(
        prom,
        &format!("ballast_nodes_provisioning_solve_duration_seconds_count{{run=\"{name}\"}}"),
        |v| v > 0.0,
    )
    .await?;
    // The catalog's c6i.large on-demand price, for the one launched node.
    let price = wait_query(
        prom,
        &format!("ballast_nodes_managed_nodes_price_dollars_per_hour{{{pool}}}"),
        |v| v > 0.0,
    )
    .await?;
    println!(
        "through Prometheus: created {created}, launched {launched}, registered {registered}, \
         solves {solves}, price ${price}/h"
    );
    ensure!((price - 0.085).abs() < 1e-6, "price {price} $/h");
    let (status, text) = controller.get("/metrics").await?;
    ensure!(status == 200, "/metrics answered {status}");
    let sample: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# HELP ballast_nodes_") || l.contains(name))
        .collect();
    println!(
        "/metrics (ballast_nodes_ help lines and the pool's series):\n{}",
        sample.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn horizontal_metrics_reach_prometheus() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let prom = service_or_skip!(bed.prometheus(), Ok(()));
    let targets = service_or_skip!(bed.prometheus_targets_dir(), Ok(()));
    install_horizontal_crd(&bed.client()).await?;
    let ns = bed.namespace("metrics-hz").await?;
    let name = ns.name().to_owned();
    let controller = Replica::start(&bed, &name, "horizontal", &logs_dir(&name)?)?;
    let target = ScrapeTarget::add(&targets, &name, controller.port)?;
    controller.wait_ready().await?;
    let objects = wait_query(
        &prom,
        &format!("ballast_horizontal_objects{{run=\"{name}\"}}"),
        |_| true,
    )
    .await;
    if objects.is_err() {
        eprintln!("{}", controller.tail());
    }
    ensure!(objects? == 0.0, "objects in an empty namespace");
    drop(target);
    drop(controller);
    ns.cleanup().await
}
