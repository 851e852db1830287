//! `VerticalAutoscalerCheckpoint` objects: one per (autoscaler, container), named
//! `<autoscaler>-<container>`, owned by the autoscaler (the API server's garbage collector deletes
//! them with it). Read once at start, written every checkpoint interval.

use std::collections::{BTreeMap, HashMap};

use ballast_api::vertical::{
    VerticalAutoscaler, VerticalAutoscalerCheckpoint, VerticalAutoscalerCheckpointSpec,
    VerticalAutoscalerCheckpointStatus,
};
use ballast_vertical::Workload;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::scale::error_text;

/// `(namespace, autoscaler)` → container → saved status.
pub type Saved = HashMap<(String, String), BTreeMap<String, VerticalAutoscalerCheckpointStatus>>;

/// Reads every checkpoint in scope (one namespace, or all).
pub async fn load(client: &Client, namespace: Option<&str>) -> Result<Saved, String> {
    let api: Api<VerticalAutoscalerCheckpoint> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing VerticalAutoscalerCheckpoints: {}", error_text(&e)))?;
    let mut saved = Saved::new();
    for c in list.items {
        let (Some(ns), Some(status)) = (c.namespace(), c.status) else {
            continue;
        };
        saved
            .entry((ns, c.spec.vertical_autoscaler_name))
            .or_default()
            .insert(c.spec.container_name, status);
    }
    Ok(saved)
}

/// The checkpoint's name for one container.
pub fn name(autoscaler: &str, container: &str) -> String {
    format!("{autoscaler}-{container}")
}

/// Writes one checkpoint per container of `workload` (spec, then status, by server-side apply).
/// Returns how many were written; the first error stops and is returned with the object's name.
pub async fn save(
    client: &Client,
    owner: &VerticalAutoscaler,
    workload: &Workload,
    now: Timestamp,
    manager: &str,
) -> Result<usize, String> {
    let ns = owner.namespace().unwrap_or_default();
    let va = owner.name_any();
    let api: Api<VerticalAutoscalerCheckpoint> = Api::namespaced(client.clone(), &ns);
    let mut written = 0;
    for (container, state) in workload.containers() {
        let name = name(&va, container);
        let object = VerticalAutoscalerCheckpoint {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                owner_references: owner_reference(owner).map(|o| vec![o]),
                ..Default::default()
            },
            spec: VerticalAutoscalerCheckpointSpec {
                vertical_autoscaler_name: va.clone(),
                container_name: container.to_owned(),
            },
            status: None,
        };
        let fail = |e: kube::Error| format!("writing checkpoint {ns}/{name}: {}", error_text(&e));
        let params = PatchParams::apply(manager).force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(fail)?;
        // Applied, not merged: a bucket dropped since the last save must go (a merge patch would
        // keep its key).
        let status = serde_json::json!({
            "apiVersion": VerticalAutoscalerCheckpoint::api_version(&()),
            "kind": VerticalAutoscalerCheckpoint::kind(&()),
            "status": ballast_vertical::checkpoint::save(state, now)
        });
        api.patch_status(&name, &params, &Patch::Apply(&status))
            .await
            .map_err(fail)?;
        written += 1;
    }
    Ok(written)
}

fn owner_reference(owner: &VerticalAutoscaler) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: VerticalAutoscaler::api_version(&()).into_owned(),
        kind: VerticalAutoscaler::kind(&()).into_owned(),
        name: owner.metadata.name.clone()?,
        uid: owner.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_join_autoscaler_and_container() {
        assert_eq!(super::name("web", "app"), "web-app");
    }
}
