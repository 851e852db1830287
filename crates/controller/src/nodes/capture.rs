//! One [`ClusterSnapshot`] read straight from the API server, as the provisioner or the
//! disruption pass would build it on its next turn (`ballast explain provision|disruption
//! --live`).
//!
//! Every kind the node controllers cache is listed once into [`Stores`]
//! ([`Stores::from_objects`]), scoped by the same NodePool selector, and the snapshot is built by
//! the controllers' own [`cluster::snapshot`] with the pending pods each pass takes
//! ([`Stores::provisionable_pods`], [`Stores::unbound_pods`]) and the provider's instance types.
//! What only a running controller knows is absent: offerings it found short of capacity in the
//! last minutes, NodeClaims it created that the API server does not list yet, and when it first
//! saw each pending pod (a capture says `now`). Nothing is written.

use std::fmt::Debug;

use ballast_api::nodes::{NodeClaim, NodePool};
use ballast_cloud::{CloudError, CloudProvider};
use ballast_nodes::ClusterSnapshot;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::cluster::{self, Objects, SnapshotInputs, Stores};
use crate::scale::error_text;

/// Which pass's snapshot to build: they differ in the pending pods they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The provisioner's: pods the kube-scheduler marked unschedulable.
    Provisioning,
    /// The disruption pass's: every pod waiting for a node.
    Disruption,
}

/// What the controller manages, as its flags say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// `--nodepool-selector`: only NodePools with these labels.
    pub nodepool_selector: Option<&'a str>,
    /// `--provision-namespace`: only pending pods of these namespaces (all when empty).
    pub namespaces: &'a [String],
    /// Only this NodePool (it must exist and match the selector), as a controller whose
    /// selector matched it alone would see the cluster.
    pub pool: Option<&'a str>,
}

/// Why a capture could not be made; each names the resource or object.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The kubeconfig's user may not read a resource the node controllers read.
    #[error(
        "forbidden: the kubeconfig's user may not {verb} {resource} at the cluster scope (the node controller's role allows it): {message}"
    )]
    Forbidden {
        verb: &'static str,
        resource: String,
        message: String,
    },
    /// The API server does not serve a resource (a CRD not installed).
    #[error(
        "the API server does not serve {resource} (are the Ballast CRDs installed? `ballast crds | kubectl apply -f -`)"
    )]
    NotServed { resource: String },
    /// Any other failed read.
    #[error("listing {resource}: {message}")]
    List { resource: String, message: String },
    /// The NodePool asked for does not exist (or is outside `--nodepool-selector`).
    #[error("NodePool {pool} not found{within}")]
    PoolNotFound { pool: String, within: String },
    /// The provider's instance types could not be read.
    #[error("reading the instance types from the cloud provider: {0}")]
    Cloud(#[from] CloudError),
}

/// Lists everything in `scope` and returns the snapshot `pass` would decide on at `now`, with
/// the instance types of `provider`.
pub async fn capture<P: CloudProvider>(
    client: &Client,
    provider: &P,
    scope: Scope<'_>,
    pass: Pass,
    now: Timestamp,
) -> Result<ClusterSnapshot, CaptureError> {
    let stores = list_stores(client, scope).await?;
    let instance_types = provider.instance_types().await?;
    let pods = match pass {
        Pass::Provisioning => stores.provisionable_pods(scope.namespaces),
        Pass::Disruption => stores.unbound_pods(scope.namespaces),
    };
    let pending: Vec<_> = pods.into_iter().map(|p| (p, now)).collect();
    Ok(cluster::snapshot(
        &stores,
        SnapshotInputs {
            pending: &pending,
            instance_types,
            extra_claims: &[],
            last_pod_events: &Default::default(),
        },
    ))
}

/// One list of every kind, scoped as [`Stores::start`] scopes its watches.
async fn list_stores(client: &Client, scope: Scope<'_>) -> Result<Stores, CaptureError> {
    let mut pool_params = ListParams::default();
    if let Some(s) = scope.nodepool_selector {
        pool_params = pool_params.labels(s);
    }
    let mut node_pools: Vec<NodePool> = list(client, pool_params).await?;
    let mut selector = scope.nodepool_selector.map(str::to_string);
    if let Some(pool) = scope.pool {
        node_pools.retain(|p| p.metadata.name.as_deref() == Some(pool));
        if node_pools.is_empty() {
            let within = scope
                .nodepool_selector
                .map(|s| format!(" among the NodePools matching --nodepool-selector {s:?}"))
                .unwrap_or_default();
            return Err(CaptureError::PoolNotFound {
                pool: pool.to_string(),
                within,
            });
        }
        selector = Some(format!("metadata.name={pool}"));
    }
    let all = ListParams::default;
    let objects = Objects {
        pods: list(client, all()).await?,
        nodes: list(client, all()).await?,
        node_pools,
        node_claims: list::<NodeClaim>(client, all()).await?,
        pdbs: list(client, all()).await?,
        daemon_sets: list(client, all()).await?,
        namespaces: list(client, all()).await?,
        pvcs: list(client, all()).await?,
        pvs: list(client, all()).await?,
        storage_classes: list(client, all()).await?,
    };
    Ok(Stores::from_objects(objects, selector))
}

/// Every object of kind `K` in all namespaces.
async fn list<K>(client: &Client, params: ListParams) -> Result<Vec<K>, CaptureError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    api.list(&params)
        .await
        .map(|l| l.items)
        .map_err(|e| list_error(&resource_name::<K>(), &e))
}

/// `nodepools.nodes.ballast.dev`, `pods`: a resource as RBAC rules and errors name it.
fn resource_name<K: Resource>() -> String
where
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let group = K::group(&dt);
    let plural = K::plural(&dt);
    if group.is_empty() {
        plural.into_owned()
    } else {
        format!("{plural}.{group}")
    }
}

/// A failed list of `resource` as the user should read it.
fn list_error(resource: &str, e: &kube::Error) -> CaptureError {
    match e {
        kube::Error::Api(s) if s.code == 403 => CaptureError::Forbidden {
            verb: "list",
            resource: resource.to_string(),
            message: s.message.clone(),
        },
        kube::Error::Api(s) if s.code == 404 => CaptureError::NotServed {
            resource: resource.to_string(),
        },
        other => CaptureError::List {
            resource: resource.to_string(),
            message: error_text(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn resources_are_named_as_rbac_names_them() {
        assert_eq!(resource_name::<Pod>(), "pods");
        assert_eq!(resource_name::<NodePool>(), "nodepools.nodes.ballast.dev");
        assert_eq!(
            resource_name::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(),
            "poddisruptionbudgets.policy"
        );
    }

    #[test]
    fn forbidden_and_missing_resources_say_so() {
        let status = |code: u16, message: &str| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: message.into(),
                ..Default::default()
            }))
        };
        let e = list_error("nodepools.nodes.ballast.dev", &status(403, "no"));
        let text = e.to_string();
        assert!(
            text.contains("may not list nodepools.nodes.ballast.dev"),
            "{text}"
        );
        let e = list_error("nodeclaims.nodes.ballast.dev", &status(404, "not found"));
        assert!(e.to_string().contains("CRDs installed"), "{e}");
    }
}
