//! A mutating admission webhook served by a test on 127.0.0.1, registered with the bed's API
//! server: the configuration's `clientConfig` becomes `url: https://127.0.0.1:PORT/PATH` (nothing
//! may dial a non-loopback address, so never a Service) and its `namespaceSelector` the test's own
//! namespace (the bed is shared: other tests' pods must not go through this test's webhook).

use anyhow::{Context as _, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The name of the vertical webhook in the chart's configuration.
pub const POD_WEBHOOK: &str = "pods.vertical.ballast.dev";

/// A configuration `name` with one webhook, [`POD_WEBHOOK`], called at pod creations
/// (`failurePolicy: Ignore`, 5 s timeout, as the chart's), its client config left for
/// [`register`] to fill.
pub fn pods_configuration(name: &str) -> Result<MutatingWebhookConfiguration> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "webhooks": [{
            "name": POD_WEBHOOK,
            "clientConfig": {},
            "rules": [{ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"] }],
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))?)
}

/// Points every webhook of `config` at `https://127.0.0.1:{port}{path}`, trusting `ca_pem`,
/// for pods of `namespace` only, and creates it; returns its name. Cluster-scoped: the caller
/// deletes it ([`unregister`]).
pub async fn register(
    client: &Client,
    mut config: MutatingWebhookConfiguration,
    port: u16,
    path: &str,
    ca_pem: &str,
    namespace: &str,
) -> Result<String> {
    let url = format!("https://127.0.0.1:{port}{path}");
    let only: LabelSelector = serde_json::from_value(json!({
        "matchLabels": { "kubernetes.io/metadata.name": namespace }
    }))?;
    for w in config.webhooks.iter_mut().flatten() {
        w.client_config.service = None;
        w.client_config.url = Some(url.clone());
        w.client_config.ca_bundle = Some(ByteString(ca_pem.as_bytes().to_vec()));
        w.namespace_selector = Some(only.clone());
    }
    config.metadata.resource_version = None;
    let name = config.metadata.name.clone().unwrap_or_default();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .with_context(|| format!("creating MutatingWebhookConfiguration {name}"))?;
    Ok(name)
}

/// Deletes the configuration `name` (best effort: a test's cleanup).
pub async fn unregister(client: &Client, name: &str) {
    let api = Api::<MutatingWebhookConfiguration>::all(client.clone());
    if let Err(e) = api.delete(name, &DeleteParams::default()).await {
        eprintln!("deleting MutatingWebhookConfiguration {name}: {e}");
    }
}
