//! The node controllers with the EC2 provider against the REAL test bed: kube-apiserver, the real
//! kube-scheduler, kwok, and moto for EC2 (`tests/testbed.sh up kube moto`).
//!
//! moto runs no kubelet, so the test plays it: for every NodeClaim the controllers launched (it
//! has a providerID `aws:///zone/i-...`), it registers a Node with that providerID, the labels
//! and taints the NodeClaim asks for and its capacity, managed by kwok, which makes it Ready and
//! runs the pods the scheduler binds to it.
//!
//! - `scaled_past_capacity_launches_and_terminates_ec2_instances`: a Deployment scaled past
//!   capacity gets one EC2 instance per step, of the cheapest fitting type (checked with
//!   DescribeInstances, tags included); the NodeClaims go Launched → Registered → Initialized;
//!   deleting an empty node's NodeClaim terminates its instance. Garbage collection: an instance
//!   tagged for the pool without a NodeClaim is terminated, and a NodeClaim whose instance was
//!   terminated behind the controllers' back is deleted.
//! - `insufficient_capacity_on_ec2_launches_the_next_type`: behind the EC2 fault proxy, the
//!   cheapest type has no capacity in any zone; the fleet reports it, and the NodeClaim launches
//!   as the next cheapest fitting type.
//!
//! - `node_class_drift_on_ec2_replaces_the_node`: with disruption on, a launched node's
//!   Ec2NodeClass changes (its user data): the NodeClaim controller's drift check marks the
//!   NodeClaim `Drifted=True` ("node class drift: ..."), and the disruption controller replaces
//!   it: a new NodeClaim runs the pod, the old NodeClaim is deleted and its instance terminated.
//!
//! Each test has its own namespace, NodePool, Ec2NodeClass and cluster tag (the namespace name),
//! so tests and other users of the shared moto never see each other's instances.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::nodes::{Ec2NodeClass, NodeClaim, NodePool, labels};
use ballast_cloud::{CloudProvider, LaunchRequest};
use ballast_cloud_aws::{NodeClasses, tags};
use ballast_testbed::ec2_faults::Ec2FaultProxy;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestDeployment, service_or_skip, testbed_or_skip};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

mod nodes_aws_support;

use nodes_aws_support::{Run, T, ZONES, condition, provider, wait_instances, with_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_past_capacity_launches_and_terminates_ec2_instances() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let run = Run::start(&bed, &moto, "nodes-aws", None).await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        // A 3-CPU pod: c6i.large is too small; c6i.xlarge ($0.17/h on-demand) is the cheapest
        // that fits (m6i.xlarge $0.192, r6i.xlarge $0.252).
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        wait_instances(run, 1, "c6i.xlarge").await?;
        for replicas in [2, 3] {
            ns.scale_deployment("web", replicas).await?;
            ns.wait_deployment_ready("web", replicas, T).await?;
            wait_instances(run, replicas as usize, "c6i.xlarge").await?;
        }
        let instances = run.running().await?;
        for (id, _, zone, _, t) in &instances {
            ensure!(ZONES.contains(&zone.as_str()), "{id} in {zone}");
            for (k, v) in [
                (tags::NODEPOOL, run.pool_name()),
                (tags::NODECLASS, run.ns.name().to_string()),
                ("team", "autoscaling".into()),
            ] {
                ensure!(t.get(k) == Some(&v), "{id} tag {k}: {t:?}");
            }
            ensure!(t.contains_key(tags::NODECLAIM), "{id}: {t:?}");
        }
        let claims = poll_until(
            "3 initialized NodeClaims",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims().await?;
                let init = cs
                    .iter()
                    .filter(|c| condition(c, "Initialized").as_deref() == Some("True"))
                    .count();
                Ok((init == 3).then_some(cs))
            },
        )
        .await?;
        let ids: BTreeSet<String> = instances.iter().map(|i| i.0.clone()).collect();
        for c in &claims {
            for t in ["Launched", "Registered", "Initialized"] {
                ensure!(
                    condition(c, t).as_deref() == Some("True"),
                    "{} {t}",
                    c.name_any()
                );
            }
            let pid = c
                .status
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .context("providerID")?;
            let (_, id) = ballast_cloud_aws::parse_provider_id(&pid).context("aws providerID")?;
            ensure!(ids.contains(id), "{pid} is not a running instance");
            ensure!(
                c.labels().get(labels::INSTANCE_TYPE).map(String::as_str) == Some("c6i.xlarge")
            );
        }
        // Scale down; the NodeClaim of the node left empty is deleted: its instance terminates.
        ns.scale_deployment("web", 2).await?;
        let busy = poll_until(
            "2 web pods on 2 nodes",
            T,
            Duration::from_millis(500),
            || async {
                let pods: Vec<Pod> = ns
                    .pods("app=web")
                    .await?
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let on: BTreeSet<String> = pods
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                    .collect();
                Ok((pods.len() == 2 && on.len() == 2).then_some(on))
            },
        )
        .await?;
        let nodes = run.nodes().await?;
        let empty = nodes
            .iter()
            .find(|n| !busy.contains(&n.name_any()))
            .context("an empty node")?;
        let empty_pid = empty
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .context("providerID")?;
        let claim = claims
            .iter()
            .find(|c| {
                c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(empty_pid.as_str())
            })
            .context("the empty node's NodeClaim")?;
        run.claims_api()
            .delete(&claim.name_any(), &DeleteParams::background())
            .await?;
        let (_, empty_id) =
            ballast_cloud_aws::parse_provider_id(&empty_pid).context("providerID")?;
        poll_until(
            "the empty node's instance terminated",
            T,
            Duration::from_millis(500),
            || async {
                let s = run.state_of(empty_id).await?;
                Ok((s == "terminated").then_some(()))
            },
        )
        .await?;
        poll_until(
            "its NodeClaim and Node gone",
            T,
            Duration::from_millis(500),
            || async {
                let claim_left = run
                    .claims()
                    .await?
                    .iter()
                    .any(|c| c.name_any() == claim.name_any());
                let node_left = run
                    .nodes()
                    .await?
                    .iter()
                    .any(|n| n.name_any() == empty.name_any());
                Ok((!claim_left && !node_left).then_some(()))
            },
        )
        .await?;
        // Orphan: an instance tagged for the pool, launched behind the controllers' back.
        let pool = Api::<NodePool>::all(run.client.clone())
            .get(&run.pool_name())
            .await?;
        let class = Api::<Ec2NodeClass>::all(run.client.clone())
            .get(run.ns.name())
            .await?;
        let ghost_launcher = provider(
            &run.moto,
            run.cluster(),
            NodeClasses::Fixed(BTreeMap::from([(
                run.ns.name().to_string(),
                class.spec.clone(),
            )])),
        )?;
        let mut ghost = NodeClaim::new(&format!("{}-ghost", run.pool_name()), Default::default());
        ghost.spec.node_class_ref = pool.spec.template.spec.node_class_ref.clone();
        ghost.metadata.labels = Some(BTreeMap::from([(
            labels::NODEPOOL.to_string(),
            run.pool_name(),
        )]));
        let types = ghost_launcher.instance_types().await?;
        let t = types
            .iter()
            .find(|t| t.name == "c6i.large")
            .context("c6i.large")?;
        let ghost_instance = ghost_launcher
            .create(&LaunchRequest {
                node_claim: ghost,
                offerings: vec![ballast_cloud::LaunchOffering {
                    instance_type: t.clone(),
                    zone: "us-east-1a".into(),
                    capacity_type: "on-demand".into(),
                    price: 0.085,
                }],
            })
            .await?;
        let (_, ghost_id) =
            ballast_cloud_aws::parse_provider_id(&ghost_instance.provider_id).context("pid")?;
        ensure!(run.state_of(ghost_id).await? == "running");
        poll_until(
            "the orphaned instance terminated",
            T,
            Duration::from_millis(500),
            || async { Ok((run.state_of(ghost_id).await? == "terminated").then_some(())) },
        )
        .await?;
        // A NodeClaim whose instance vanished (terminated outside Ballast) is deleted.
        let victim = run
            .claims()
            .await?
            .into_iter()
            .find(|c| {
                c.metadata.deletion_timestamp.is_none()
                    && c.status.as_ref().is_some_and(|s| s.provider_id.is_some())
            })
            .context("a launched NodeClaim")?;
        let vpid = victim
            .status
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default();
        let (_, vid) = ballast_cloud_aws::parse_provider_id(&vpid).context("pid")?;
        run.ec2
            .client()
            .terminate_instances()
            .instance_ids(vid)
            .send()
            .await?;
        poll_until(
            "the NodeClaim of the vanished instance deleted",
            T,
            Duration::from_millis(500),
            || async {
                let left = run
                    .claims()
                    .await?
                    .iter()
                    .any(|c| c.name_any() == victim.name_any());
                Ok((!left).then_some(()))
            },
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_capacity_on_ec2_launches_the_next_type() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let proxy = Ec2FaultProxy::start(&moto).await?;
    // No c6i.xlarge anywhere: the next cheapest fitting type is m6i.xlarge ($0.192/h).
    proxy.insufficient_capacity("c6i.xlarge", None);
    let run = Run::start(&bed, &moto, "nodes-aws-ice", Some(proxy.url())).await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        wait_instances(run, 1, "m6i.xlarge").await?;
        ensure!(
            proxy.insufficient_answered() >= 1,
            "the fleet was asked for c6i.xlarge first"
        );
        let claims = run.claims().await?;
        ensure!(claims.len() == 1, "{} NodeClaims", claims.len());
        ensure!(
            claims[0]
                .labels()
                .get(labels::INSTANCE_TYPE)
                .map(String::as_str)
                == Some("m6i.xlarge")
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_class_drift_on_ec2_replaces_the_node() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let run = Run::start_with(&bed, &moto, "nodes-aws-drift", None, |o| {
        o.drift_interval = Duration::from_secs(2);
        o.disruption = Some(
            ballast_controller::nodes::disruption::DisruptionShellOptions {
                poll: Duration::from_secs(2),
                validation_delay: Duration::from_secs(1),
                ..Default::default()
            },
        );
    })
    .await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let first = poll_until(
            "an initialized NodeClaim",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims().await?;
                Ok(cs
                    .into_iter()
                    .find(|c| condition(c, "Initialized").as_deref() == Some("True")))
            },
        )
        .await?;
        // Checked every 2s since it initialized: not drifted.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let now = run.claims_api().get(&first.name_any()).await?;
        ensure!(
            condition(&now, "Drifted").is_none(),
            "drifted before any change: {:?}",
            now.status
        );
        let pid = first
            .status
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .context("providerID")?;
        let (_, old_id) = ballast_cloud_aws::parse_provider_id(&pid).context("aws providerID")?;
        let old_id = old_id.to_string();
        // The class changes under the running instance.
        let patch = json!({ "spec": { "userData": "#!/bin/sh\necho drifted" } });
        Api::<Ec2NodeClass>::all(run.client.clone())
            .patch(
                run.ns.name(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        let message = poll_until(
            "Drifted=True on the NodeClaim",
            T,
            Duration::from_millis(500),
            || async {
                let Some(c) = run.claims_api().get_opt(&first.name_any()).await? else {
                    return Ok(Some("(replaced before seen)".to_string()));
                };
                Ok(c.status.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|x| x.type_ == "Drifted" && x.status == "True")
                        .map(|x| format!("{}: {}", x.reason, x.message))
                }))
            },
        )
        .await?;
        eprintln!("drift: {message}");
        ensure!(
            message == "(replaced before seen)"
                || (message.starts_with("NodeClassDrifted: node class drift: ")
                    && message.contains("changed since launch")),
            "{message}"
        );
        poll_until(
            "the drifted NodeClaim replaced and its instance terminated",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims().await?;
                let old_left = cs.iter().any(|c| c.name_any() == first.name_any());
                let new_ready = cs.iter().any(|c| {
                    c.name_any() != first.name_any()
                        && condition(c, "Initialized").as_deref() == Some("True")
                });
                let state = run.state_of(&old_id).await?;
                Ok((!old_left && new_ready && state == "terminated").then_some(()))
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let cs = run.claims().await?;
        ensure!(
            cs.len() == 1,
            "{} NodeClaims after the replacement",
            cs.len()
        );
        ensure!(
            condition(&cs[0], "Drifted").is_none(),
            "the replacement is not drifted: {:?}",
            cs[0].status
        );
        Ok(())
    })
    .await
}
