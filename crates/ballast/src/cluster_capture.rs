//! `ballast simulate --from-cluster`: a read-only capture of the cluster's autoscalers, node
//! pools, node classes, workloads, PodDisruptionBudgets and Nodes, handed to
//! `ballast_sim::manifests::take` as if they had been read from files. Only `list` is called.

use anyhow::{Result, anyhow};
use ballast_sim::manifests::Source;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;
use std::path::Path;

/// One kind the capture lists.
struct Listed {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// A custom resource that a cluster may not have installed: not served means skipped.
    optional: bool,
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    optional: bool,
) -> Listed {
    Listed {
        group,
        version,
        kind,
        plural,
        namespaced,
        optional,
    }
}

/// What the capture lists, in this order.
const KINDS: [Listed; 16] = [
    kind(
        "autoscaling.ballast.dev",
        "v1",
        "HorizontalAutoscaler",
        "horizontalautoscalers",
        true,
        true,
    ),
    kind(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        false,
    ),
    kind(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
        "scaledobjects",
        true,
        true,
    ),
    kind(
        "keda.sh",
        "v1alpha1",
        "TriggerAuthentication",
        "triggerauthentications",
        true,
        true,
    ),
    kind(
        "keda.sh",
        "v1alpha1",
        "ClusterTriggerAuthentication",
        "clustertriggerauthentications",
        false,
        true,
    ),
    kind(
        "autoscaling.ballast.dev",
        "v1",
        "VerticalAutoscaler",
        "verticalautoscalers",
        true,
        true,
    ),
    kind(
        "autoscaling.k8s.io",
        "v1",
        "VerticalPodAutoscaler",
        "verticalpodautoscalers",
        true,
        true,
    ),
    kind(
        "nodes.ballast.dev",
        "v1",
        "NodePool",
        "nodepools",
        false,
        true,
    ),
    kind(
        "nodes.ballast.dev",
        "v1",
        "Ec2NodeClass",
        "ec2nodeclasses",
        false,
        true,
    ),
    kind(
        "nodes.ballast.dev",
        "v1",
        "KwokNodeClass",
        "kwoknodeclasses",
        false,
        true,
    ),
    kind("karpenter.sh", "v1", "NodePool", "nodepools", false, true),
    kind(
        "karpenter.k8s.aws",
        "v1",
        "EC2NodeClass",
        "ec2nodeclasses",
        false,
        true,
    ),
    kind("apps", "v1", "Deployment", "deployments", true, false),
    kind("apps", "v1", "StatefulSet", "statefulsets", true, false),
    kind(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        false,
    ),
    kind("", "v1", "Node", "nodes", false, false),
];

impl Listed {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, `nodes`: the resource as RBAC names it.
    fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// What a capture read: the objects, and the kinds the cluster does not serve.
pub struct Captured {
    pub documents: Vec<(Source, Value)>,
    pub not_served: Vec<String>,
}

/// Lists every kind of [`KINDS`] (namespaced kinds in `namespace` only, when given).
pub async fn capture(client: &kube::Client, namespace: Option<&str>) -> Result<Captured> {
    let mut out = Captured {
        documents: Vec::new(),
        not_served: Vec::new(),
    };
    for listed in &KINDS {
        match list(client, listed, namespace).await {
            Ok(objects) => out.documents.extend(objects),
            Err(Refused::NotServed) if listed.optional => {
                out.not_served
                    .push(format!("{} ({})", listed.kind, listed.api_version()))
            }
            Err(Refused::NotServed) => {
                return Err(anyhow!(
                    "list {}: the API server does not serve {} {}: is this a Kubernetes cluster of 1.23 or later?",
                    listed.resource(),
                    listed.api_version(),
                    listed.kind
                ));
            }
            Err(Refused::Other(e)) => return Err(e),
        }
    }
    Ok(out)
}

enum Refused {
    NotServed,
    Other(anyhow::Error),
}

/// Every object of one kind, page by page, as a manifest (apiVersion, kind, metadata without
/// the server's bookkeeping, spec).
async fn list(
    client: &kube::Client,
    listed: &Listed,
    namespace: Option<&str>,
) -> Result<Vec<(Source, Value)>, Refused> {
    let resource = ApiResource {
        group: listed.group.into(),
        version: listed.version.into(),
        api_version: listed.api_version(),
        kind: listed.kind.into(),
        plural: listed.plural.into(),
    };
    let api: Api<DynamicObject> = match (listed.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    let scope = match (listed.namespaced, namespace) {
        (true, Some(ns)) => format!("in namespace {ns}"),
        (true, None) => "in all namespaces".to_string(),
        (false, _) => "(cluster-scoped)".to_string(),
    };
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| refused(e, listed, &scope))?;
        for object in page.items {
            // Messages name the object themselves: the place is only `cluster`.
            let at = Source {
                origin: "cluster".into(),
                document: None,
            };
            out.push((at, manifest(listed, &object)));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Why a list failed, naming the verb and resource: RBAC refusals say what the capture needs.
fn refused(e: kube::Error, listed: &Listed, scope: &str) -> Refused {
    let resource = listed.resource();
    match e {
        kube::Error::Api(s) if s.code == 404 => Refused::NotServed,
        kube::Error::Api(s) if s.code == 403 => Refused::Other(anyhow!(
            "forbidden: cannot list {resource} {scope}: {}. The capture only reads; it needs \
             the verb list on {resource} {scope} (and on every other kind it captures: \
             horizontalpodautoscalers.autoscaling, deployments.apps, statefulsets.apps, \
             poddisruptionbudgets.policy, nodes, and the Ballast, KEDA and Karpenter kinds the \
             cluster serves); --namespace limits the namespaced ones to one namespace",
            s.message
        )),
        other => Refused::Other(anyhow!("list {resource} {scope}: {other}")),
    }
}

/// The object as a manifest: apiVersion, kind, name, namespace, labels, annotations and spec
/// (status and the server's metadata left out).
fn manifest(listed: &Listed, object: &DynamicObject) -> Value {
    let mut metadata = serde_json::Map::new();
    let m = &object.metadata;
    let put = |map: &mut serde_json::Map<String, Value>, key: &str, value: Value| {
        if !value.is_null() {
            map.insert(key.into(), value);
        }
    };
    put(&mut metadata, "name", serde_json::json!(m.name));
    put(&mut metadata, "namespace", serde_json::json!(m.namespace));
    put(&mut metadata, "labels", serde_json::json!(m.labels));
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), listed.api_version().into());
    out.insert("kind".into(), listed.kind.into());
    out.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = object.data.get("spec") {
        out.insert("spec".into(), spec.clone());
    }
    Value::Object(out)
}

/// A client for `kubeconfig` (or the usual one) and `context` (or its current one).
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<kube::Client> {
    if kubeconfig.is_none() && context.is_none() {
        return crate::kubeconfig::client().await;
    }
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| anyhow!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    };
    let config = config.map_err(|e| match context {
        Some(c) => anyhow!("--context {c}: {e}"),
        None => anyhow!("loading the kubeconfig: {e}"),
    })?;
    kube::Client::try_from(config).map_err(|e| anyhow!("building the API client: {e}"))
}
