//! The bed's custom and external metrics adapter is real: values written to it come back through
//! the API server's aggregator as `custom.metrics.k8s.io/v1beta2` and
//! `external.metrics.k8s.io/v1beta1`, as an autoscaler reads them. All on 127.0.0.1.

use std::time::Duration;

use anyhow::{Result, ensure};
use ballast_testbed::custom_metrics::{PodLoad, served_external_values, served_pod_values};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{KwokNode, TestDeployment, service_or_skip, testbed_or_skip};
use serde_json::json;

#[tokio::test]
async fn pod_values_are_served_for_the_selected_pods() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let metrics = service_or_skip!(bed.custom_metrics(), Ok(()));
    let client = bed.client();
    let ns = bed.namespace("custom-metrics").await?;
    ns.create_kwok_node(KwokNode::new("n1")).await?;
    ns.create_deployment(TestDeployment::new("web").replicas(2))
        .await?;
    ns.create_deployment(TestDeployment::new("other")).await?;
    ns.wait_deployment_ready("web", 2, Duration::from_secs(90))
        .await?;
    ns.wait_deployment_ready("other", 1, Duration::from_secs(90))
        .await?;

    // Nothing written: an empty list, not an error.
    let served = served_pod_values(&client, ns.name(), "app=web", "http_rps").await?;
    ensure!(served.is_empty(), "served before any write: {served:?}");

    let n = metrics
        .set_pods(&client, ns.name(), "app=other", "http_rps", "7")
        .await?;
    ensure!(n == 1, "set {n} pods of other");
    // 30 shared by the two pods of web: 15 each; other's value stays out of web's list.
    let load = PodLoad::start(
        metrics,
        client.clone(),
        ns.name(),
        "app=web",
        "http_rps",
        30,
    );
    let served = poll_until(
        "15 for each pod of web",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async {
            let v = served_pod_values(&client, ns.name(), "app=web", "http_rps").await?;
            Ok((v.len() == 2 && v.iter().all(|(_, value)| value == "15")).then_some(v))
        },
    )
    .await?;
    eprintln!("served: {served:?}");
    load.set_total(3);
    poll_until(
        "1500m for each pod of web",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async {
            let v = served_pod_values(&client, ns.name(), "app=web", "http_rps").await?;
            Ok(v.iter().all(|(_, value)| value == "1500m").then_some(()))
        },
    )
    .await?;
    let other = served_pod_values(&client, ns.name(), "app=other", "http_rps").await?;
    ensure!(other.len() == 1 && other[0].1 == "7", "other: {other:?}");
    drop(load);
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn external_series_are_replaced_by_their_labels() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let metrics = service_or_skip!(bed.custom_metrics(), Ok(()));
    let ns = bed.namespace("external-metrics").await?;
    let metric = "queue_messages_ready";
    metrics
        .set_external(ns.name(), metric, &[("queue", "orders")], "12")
        .await?;
    metrics
        .set_external(ns.name(), metric, &[("queue", "billing")], "3")
        .await?;
    metrics
        .set_external(ns.name(), metric, &[("queue", "orders")], "40")
        .await?;
    let mut served = served_external_values(&bed.client(), ns.name(), metric).await?;
    served.sort_by_key(|(labels, _)| labels.to_string());
    ensure!(
        served
            == vec![
                (json!({ "queue": "billing" }), "3".to_owned()),
                (json!({ "queue": "orders" }), "40".to_owned()),
            ],
        "served: {served:?}"
    );
    // Another namespace sees none of them.
    let elsewhere = served_external_values(&bed.client(), "default", metric).await?;
    ensure!(elsewhere.is_empty(), "default: {elsewhere:?}");
    let refused = metrics
        .set_external(ns.name(), metric, &[("queue", "orders")], "not a quantity")
        .await;
    match refused {
        Ok(()) => anyhow::bail!("a value that is no quantity was taken"),
        Err(e) => eprintln!("refused: {e:#}"),
    }
    ns.cleanup().await?;
    Ok(())
}
