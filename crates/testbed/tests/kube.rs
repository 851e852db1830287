//! The control plane is real: the scheduler binds pods to kwok nodes, kwok runs them, and the
//! `scale` subresource drives the Deployment/ReplicaSet controllers.

use std::time::Duration;

use anyhow::{Result, ensure};
use ballast_testbed::wait::{node_ready, pod_running_ready, poll_until};
use ballast_testbed::{KwokNode, TestDeployment, testbed_or_skip};
use k8s_openapi::api::core::v1::Pod;

const TIMEOUT: Duration = Duration::from_secs(90);

fn condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

#[tokio::test]
async fn scheduler_binds_pods_to_a_kwok_node_and_kwok_runs_them() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let version = bed.client().apiserver_version().await?;
    eprintln!("API server {}", version.git_version);

    let ns = bed.namespace("bind").await?;
    let node = ns
        .create_kwok_node(KwokNode::new("n1").cpu("2").memory("4Gi"))
        .await?;
    let node_name = node.metadata.name.clone().unwrap();
    ensure!(node_ready(&node));
    // kwok runs with --node-ip=127.0.0.1: nothing may ever dial a non-loopback node address.
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default();
    ensure!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"),
        "node addresses {addresses:?}"
    );

    ns.create_deployment(TestDeployment::new("web").replicas(3))
        .await?;
    ns.wait_deployment_ready("web", 3, TIMEOUT).await?;

    let pods = ns.pods("app=web").await?;
    ensure!(pods.len() == 3, "expected 3 pods, got {}", pods.len());
    for pod in &pods {
        let spec = pod.spec.as_ref().unwrap();
        ensure!(
            spec.node_name.as_deref() == Some(node_name.as_str()),
            "pod bound to {:?}",
            spec.node_name
        );
        ensure!(spec.scheduler_name.as_deref() == Some("default-scheduler"));
        ensure!(
            condition(pod, "PodScheduled").is_some_and(|c| c.status == "True"),
            "not scheduled: {:?}",
            pod.status
        );
        ensure!(
            pod_running_ready(pod),
            "pod not Running/Ready: {:?}",
            pod.status
        );
        ensure!(
            pod.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_ref())
                .is_some(),
            "kwok gave no pod IP"
        );
    }
    ns.cleanup().await
}

#[tokio::test]
async fn scale_subresource_moves_pods_within_node_capacity() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let ns = bed.namespace("scale").await?;
    // 2 CPUs, pods request 500m: room for exactly 4.
    ns.create_kwok_node(KwokNode::new("n1").cpu("2").memory("8Gi"))
        .await?;
    ns.create_deployment(
        TestDeployment::new("api")
            .replicas(1)
            .request("cpu", "500m"),
    )
    .await?;
    ns.wait_deployment_ready("api", 1, TIMEOUT).await?;

    let scale = ns.scale_deployment("api", 3).await?;
    ensure!(
        scale.spec.as_ref().and_then(|s| s.replicas) == Some(3),
        "scale returned {scale:?}"
    );
    ns.wait_deployment_ready("api", 3, TIMEOUT).await?;
    let got = ns
        .api::<k8s_openapi::api::apps::v1::Deployment>()
        .get_scale("api")
        .await?;
    ensure!(
        got.status.as_ref().map(|s| s.replicas) == Some(3),
        "scale status {got:?}"
    );
    ensure!(
        got.status.as_ref().and_then(|s| s.selector.as_deref()) == Some("app=api"),
        "scale selector {got:?}"
    );

    // Beyond capacity: the real scheduler leaves the fifth pod Pending as Unschedulable.
    ns.scale_deployment("api", 5).await?;
    let (running, unschedulable) = poll_until(
        "4 running + 1 unschedulable pod",
        TIMEOUT,
        Duration::from_millis(500),
        || async {
            let pods = ns.pods("app=api").await?;
            let running = pods.iter().filter(|p| pod_running_ready(p)).count();
            let unschedulable = pods
                .iter()
                .filter(|p| {
                    condition(p, "PodScheduled").is_some_and(|c| {
                        c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
                .count();
            Ok((running == 4 && unschedulable == 1).then_some((running, unschedulable)))
        },
    )
    .await?;
    eprintln!("at 5 replicas: {running} running, {unschedulable} unschedulable");

    ns.scale_deployment("api", 1).await?;
    ns.wait_deployment_ready("api", 1, TIMEOUT).await?;
    poll_until(
        "pods to follow the scale-down",
        TIMEOUT,
        Duration::from_millis(500),
        || async {
            let pods = ns.pods("app=api").await?;
            Ok((pods.len() == 1 && pods.iter().all(pod_running_ready)).then_some(()))
        },
    )
    .await?;
    ns.cleanup().await
}
