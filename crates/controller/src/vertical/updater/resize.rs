//! One in-place resize: the pod's `resize` subresource patched with the resources
//! `apply::pod::plan_held` gives (the same values the webhook would give a new pod, requests held
//! for a horizontal autoscaler included).

use ballast_vertical::apply::pod::{ContainerLimitRange, plan_held};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::super::CONTROLLER_NAME;
use super::super::webhook::Entry;
use crate::scale::error_text;

/// What became of a resize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resized {
    /// The new resources were accepted (what was set, in words); the kubelet carries them out.
    Yes(String),
    /// The plan changes nothing.
    Unchanged,
    /// The API server will not resize this pod (its message): evict instead.
    Refused(String),
    /// The pod was already gone.
    Gone,
    /// Any other error (a conflict, the API server unreachable), in words: try next pass.
    Failed(String),
}

/// Resizes `pod` to the recommendation of `entry` (object `object`) within `limit_range`.
pub async fn resize(
    client: &Client,
    pod: &Pod,
    entry: &Entry,
    object: &str,
    limit_range: &ContainerLimitRange,
) -> Resized {
    let (Some(spec), Some(recommendation)) = (&pod.spec, &entry.recommendation) else {
        return Resized::Unchanged;
    };
    let changes = match plan_held(
        &spec.containers,
        recommendation,
        &entry.spec,
        object,
        limit_range,
        &entry.held,
    ) {
        Ok(c) if c.is_empty() => return Resized::Unchanged,
        Ok(c) => c,
        Err(e) => return Resized::Failed(e.to_string()),
    };
    let containers: Vec<_> = changes
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "resources": c.resources }))
        .collect();
    let body = serde_json::json!({ "spec": { "containers": containers } });
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let params = PatchParams {
        field_manager: Some(CONTROLLER_NAME.to_owned()),
        ..Default::default()
    };
    let said = changes
        .iter()
        .map(|c| format!("{}: {}", c.name, c.notes.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    match api
        .patch_subresource("resize", &pod.name_any(), &params, &Patch::Strategic(&body))
        .await
    {
        Ok(_) => Resized::Yes(said),
        Err(kube::Error::Api(s)) if s.code == 404 => Resized::Gone,
        Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
            Resized::Refused(s.message.clone())
        }
        Err(e) => Resized::Failed(error_text(&e)),
    }
}
