//! The vertical reconciler under its token: recommendations, checkpoints, the webhook's sizing of
//! a new pod and the updater's evictions work; deleting or patching pods, checkpoints or scales
//! does not.

use anyhow::{Context as _, Result};
use ballast_api::vertical::{VerticalAutoscaler, VerticalAutoscalerCheckpoint};
use ballast_controller::vertical::webhook;
use ballast_testbed::usage::wait_for_pod_metrics;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{KwokNode, TestBed, TestDeployment, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::calls::{Ledger, dry_delete, dry_patch, expect_denied};
use crate::{Identity, Namespaces, POLL, T};

/// Deployments `usage` (one pod) and `evict` (two), each pod requesting 100m and using 300m, on the
/// test's (unmanaged) kwok node, their usage served by metrics-server.
pub(crate) async fn vertical_workloads(bed: &TestBed, ns: &TestNamespace) -> Result<()> {
    ns.create_kwok_node(KwokNode::new("plain").cpu("16").memory("64Gi"))
        .await?;
    for (name, replicas) in [("usage", 1), ("evict", 2)] {
        let d = TestDeployment::new(name)
            .replicas(replicas)
            .usage("300m", "400Mi");
        ns.create_deployment(d).await?;
        ns.wait_deployment_ready(name, replicas, T).await?;
    }
    let timeout = bed.metric_resolution() * 6;
    for pod in ns.pods("app in (usage, evict)").await? {
        let name = pod.name_any();
        wait_for_pod_metrics(&bed.client(), ns.name(), &name, "300m", "400Mi", timeout).await?;
    }
    Ok(())
}

pub(crate) async fn create_va(ns: &TestNamespace, name: &str, mode: &str) -> Result<()> {
    let va: VerticalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "VerticalAutoscaler",
        "metadata": { "name": name },
        "spec": {
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "updatePolicy": { "updateMode": mode }
        }
    }))?;
    ns.api::<VerticalAutoscaler>()
        .create(&PostParams::default(), &va)
        .await?;
    Ok(())
}

/// `usage` (`Initial`) gets a recommendation and checkpoints, and a pod the admin creates with
/// its labels is sized by the webhook; a pod of `evict` (`Recreate`) is evicted by the updater
/// through the Eviction API.
pub(crate) async fn vertical_works(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = &namespaces.release;
    create_va(ns, "usage", "Initial").await?;
    create_va(ns, "evict", "Recreate").await?;
    poll_until("usage's recommendation", T, POLL, || async {
        let va = ns.api::<VerticalAutoscaler>().get("usage").await?;
        Ok(va.status.and_then(|s| s.recommendation).map(|_| ()))
    })
    .await?;
    ledger.allowed(
        &who.account,
        "patch verticalautoscalers/status (a recommendation)",
    );
    webhook_sizes_a_pod(ns, ledger, who).await?;
    poll_until("usage's checkpoints", T, POLL, || async {
        let list = ns
            .api::<VerticalAutoscalerCheckpoint>()
            .list(&ListParams::default())
            .await?;
        Ok((!list.items.is_empty()).then_some(()))
    })
    .await?;
    ledger.allowed(
        &who.account,
        "create and patch verticalautoscalercheckpoints (apply)",
    );
    let evicted = poll_until("an Evicted event of ballast-vertical", T, POLL, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await?;
        Ok(events.items.into_iter().find(|e| {
            e.reporting_controller.as_deref() == Some("ballast-vertical")
                && e.reason.as_deref() == Some("Evicted")
        }))
    })
    .await?;
    // No more evictions (the replacement pod is sized by the webhook, so within bounds anyway).
    ns.api::<VerticalAutoscaler>()
        .delete("evict", &DeleteParams::default())
        .await?;
    let note = evicted.note.unwrap_or_default();
    ledger.allowed(
        &who.account,
        &format!("create pods/eviction (the updater: {note})"),
    );
    Ok(())
}

/// A pod `sized` the admin creates with `usage`'s labels (container `app`, 100m): the webhook,
/// reading the recommendation from the VerticalAutoscalers it watches under its token, sets the
/// request to the recommended target and annotates the pod. Polled with server-side dry runs
/// (admission runs, nothing is stored) until the webhook's index has the recommendation, then
/// created for real and deleted.
async fn webhook_sizes_a_pod(
    ns: &TestNamespace,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "sized", "labels": { "app": "usage" } },
        "spec": {
            "nodeName": ns.node_name("plain"),
            "tolerations": [{ "operator": "Exists" }],
            "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10",
                "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }]
        }
    }))?;
    let pods = ns.api::<Pod>();
    let sized = |p: &Pod| {
        let annotated = p.annotations().contains_key(webhook::ANNOTATION);
        (annotated && cpu_request(p) != Some("100m".to_owned())).then(|| cpu_request(p))
    };
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    poll_until("the webhook sizes a dry-run pod", T, POLL, || async {
        Ok(sized(&pods.create(&dry, &pod).await?))
    })
    .await?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    let cpu = sized(&created)
        .flatten()
        .with_context(|| format!("pod sized not sized by the webhook: {:?}", created.spec))?;
    let va = ns.api::<VerticalAutoscaler>().get("usage").await?;
    let target = va
        .status
        .and_then(|s| s.recommendation)
        .and_then(|r| {
            r.container_recommendations
                .into_iter()
                .find(|c| c.container_name == "app")
        })
        .and_then(|c| c.target.get("cpu").map(|q| q.0.clone()));
    pods.delete("sized", &DeleteParams::default()).await?;
    ledger.allowed(
        &who.account,
        &format!(
            "serve the webhook: the admin's pod sized from 100m to {cpu} CPU (target {target:?}), its VerticalAutoscalers and LimitRanges read under its token"
        ),
    );
    Ok(())
}

/// The CPU request of container `app`, as written.
fn cpu_request(pod: &Pod) -> Option<String> {
    let c = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "app")?;
    Some(
        c.resources
            .as_ref()?
            .requests
            .as_ref()?
            .get("cpu")?
            .0
            .clone(),
    )
}

pub(crate) async fn vertical_denied(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = namespaces.release.name();
    let c = &who.client;
    let pod = namespaces
        .release
        .pods("app=usage")
        .await?
        .into_iter()
        .next()
        .context("a usage pod")?
        .name_any();
    let pods = Api::<Pod>::namespaced(c.clone(), ns);
    let what = format!("delete Pod {pod} (it evicts, never deletes)");
    expect_denied(ledger, who, &what, false, pods.delete(&pod, &dry_delete())).await?;
    let label = json!({ "metadata": { "labels": { "probe": "x" } } });
    let what = format!("patch Pod {pod} (resize subresource only)");
    expect_denied(
        ledger,
        who,
        &what,
        false,
        pods.patch(&pod, &dry_patch(), &Patch::Merge(&label)),
    )
    .await?;
    let checkpoints = Api::<VerticalAutoscalerCheckpoint>::namespaced(c.clone(), ns);
    let what = "delete VerticalAutoscalerCheckpoints (never deleted by it)";
    let (dp, lp) = (dry_delete(), ListParams::default());
    let all = checkpoints.delete_collection(&dp, &lp);
    expect_denied(ledger, who, what, false, all).await?;
    let deployments = Api::<Deployment>::namespaced(c.clone(), ns);
    let scale = json!({ "spec": { "replicas": 3 } });
    let what = "patch deployments/scale usage (reads scale only)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.patch_scale("usage", &dry_patch(), &Patch::Merge(&scale)),
    )
    .await?;
    let what = "get Secret kube-system/probe";
    let system = Api::<Secret>::namespaced(c.clone(), "kube-system");
    let secret = system.get("probe");
    expect_denied(ledger, who, what, false, secret).await?;
    let vas = Api::<VerticalAutoscaler>::namespaced(c.clone(), ns);
    let spec = json!({ "spec": { "updatePolicy": { "updateMode": "Recreate" } } });
    let what = "patch VerticalAutoscaler usage's spec (status only)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        vas.patch("usage", &dry_patch(), &Patch::Merge(&spec)),
    )
    .await
}
