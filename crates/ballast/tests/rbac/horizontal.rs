//! The horizontal reconciler under its token: what it needs works, and what it must not do.

use std::collections::BTreeMap;

use anyhow::Result;
use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_testbed::TestDeployment;
use ballast_testbed::wait::poll_until;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::calls::{Ledger, dry_delete, dry_patch, dry_post, expect_allowed, expect_denied};
use crate::{Identity, Namespaces, POLL, T};

/// A paused autoscaler holding `web` at 3: the scale patch, the status patch and an event.
pub(crate) async fn horizontal_works(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let ns = &namespaces.release;
    ns.create_deployment(TestDeployment::new("web").replicas(1))
        .await?;
    let hza: HorizontalAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
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
    poll_until("web scaled to 3", T, POLL, || async {
        let d = ns.api::<Deployment>().get("web").await?;
        Ok((d.spec.and_then(|s| s.replicas) == Some(3)).then_some(()))
    })
    .await?;
    ledger.allowed(
        &who.account,
        "patch deployments/scale (the controller scaled web to 3)",
    );
    poll_until("web's status written", T, POLL, || async {
        let h = ns.api::<HorizontalAutoscaler>().get("web").await?;
        Ok(h.status.filter(|s| s.desired_replicas == 3).map(|_| ()))
    })
    .await?;
    ledger.allowed(&who.account, "patch horizontalautoscalers/status");
    poll_until("an event of ballast-horizontal", T, POLL, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await?;
        Ok(events
            .items
            .into_iter()
            .find(|e| e.reporting_controller.as_deref() == Some("ballast-horizontal")))
    })
    .await?;
    ledger.allowed(&who.account, "create events (events.k8s.io)");
    Ok(())
}

pub(crate) async fn horizontal_denied(
    namespaces: &Namespaces,
    ledger: &mut Ledger,
    who: &Identity,
) -> Result<()> {
    let (ns, secrets) = (namespaces.release.name(), namespaces.secrets.name());
    let c = &who.client;
    namespaces
        .secrets
        .api::<Secret>()
        .create(&PostParams::default(), &secret("probe"))
        .await?;
    let secret_api = |n: &str| Api::<Secret>::namespaced(c.clone(), n);
    let what = format!("get Secret {secrets}/probe (horizontal.secretNamespaces)");
    expect_allowed(ledger, who, &what, secret_api(secrets).get("probe")).await?;
    let deployments = Api::<Deployment>::namespaced(c.clone(), ns);
    let scale = json!({ "spec": { "replicas": 3 } });
    let what = "patch deployments/scale web (dry run)";
    expect_allowed(
        ledger,
        who,
        what,
        deployments.patch_scale("web", &dry_patch(), &Patch::Merge(&scale)),
    )
    .await?;
    let what = "delete Deployment web (dry run)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.delete("web", &dry_delete()),
    )
    .await?;
    let what = "get Secret kube-system/probe";
    expect_denied(
        ledger,
        who,
        what,
        false,
        secret_api("kube-system").get("probe"),
    )
    .await?;
    let what = format!("get Secret {ns}/probe (its own namespace, not listed)");
    expect_denied(ledger, who, &what, false, secret_api(ns).get("probe")).await?;
    let what = format!("list Secrets in {secrets} (get by name only)");
    expect_denied(
        ledger,
        who,
        &what,
        false,
        secret_api(secrets).list(&ListParams::default()),
    )
    .await?;
    let current = deployments.get_scale("web").await?;
    let what = "update (PUT) deployments/scale web (it only patches)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        deployments.replace_scale("web", &dry_post(), &current),
    )
    .await?;
    let hzas = Api::<HorizontalAutoscaler>::namespaced(c.clone(), ns);
    let spec = json!({ "spec": { "maxReplicas": 50 } });
    let what = "patch HorizontalAutoscaler web's spec (status only)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        hzas.patch("web", &dry_patch(), &Patch::Merge(&spec)),
    )
    .await?;
    let mut current = namespaces
        .release
        .api::<HorizontalAutoscaler>()
        .get("web")
        .await?;
    current.metadata.managed_fields = None;
    let what = "update (PUT) horizontalautoscalers/status web (it only patches)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        hzas.replace_status("web", &dry_post(), &current),
    )
    .await?;
    configmaps(ledger, who, ns).await?;
    let nodes = Api::<Node>::all(c.clone());
    let what = "list Nodes";
    expect_denied(ledger, who, what, false, nodes.list(&ListParams::default())).await
}

/// The demand history's ConfigMap: created and written by server-side apply, read by name;
/// never listed, replaced or deleted (garbage collection deletes it with its autoscaler).
async fn configmaps(ledger: &mut Ledger, who: &Identity, ns: &str) -> Result<()> {
    let api = Api::<ConfigMap>::namespaced(who.client.clone(), ns);
    let body = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "web-demand-history" },
        "data": { "format": "f32le", "stepSeconds": "60", "start": "2026-01-01T00:00:00Z" }
    });
    let apply = PatchParams {
        dry_run: true,
        ..PatchParams::apply("ballast-horizontal").force()
    };
    let what = "server-side apply ConfigMap web-demand-history (dry run; creates it)";
    expect_allowed(
        ledger,
        who,
        what,
        api.patch("web-demand-history", &apply, &Patch::Apply(&body)),
    )
    .await?;
    let what = "get ConfigMap web-demand-history";
    expect_allowed(ledger, who, what, api.get_opt("web-demand-history")).await?;
    let what = format!("list ConfigMaps in {ns} (get by name only)");
    expect_denied(ledger, who, &what, false, api.list(&ListParams::default())).await?;
    let what = "delete ConfigMap web-demand-history (dry run)";
    expect_denied(
        ledger,
        who,
        what,
        false,
        api.delete("web-demand-history", &dry_delete()),
    )
    .await
}

pub(crate) fn secret(name: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "token".to_owned(),
            "not-a-secret".to_owned(),
        )])),
        ..Default::default()
    }
}
