//! [`Metered`]: the cloud provider the node controllers call, counting each failed call by
//! operation and error code into [`NodesMetrics::cloud_errors`] and passing every answer through
//! unchanged.

use ballast_api::nodes::NodeClaim;
use ballast_cloud::{CloudError, CloudProvider, Instance, LaunchRequest};
use ballast_scheduling::InstanceType;

use super::metrics::NodesMetrics;

/// A provider whose failed calls are counted.
pub struct Metered<P> {
    inner: P,
    metrics: NodesMetrics,
}

impl<P> Metered<P> {
    /// `inner`, counting into `metrics`.
    pub fn new(inner: P, metrics: NodesMetrics) -> Self {
        Metered { inner, metrics }
    }

    fn count<T>(&self, operation: &str, r: Result<T, CloudError>) -> Result<T, CloudError> {
        if let Err(e) = &r {
            self.metrics.cloud_error(operation, e);
        }
        r
    }
}

impl<P: CloudProvider> CloudProvider for Metered<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn instance_types(&self) -> Result<Vec<InstanceType>, CloudError> {
        self.count("instance_types", self.inner.instance_types().await)
    }

    async fn create(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        self.count("create", self.inner.create(request).await)
    }

    async fn delete(&self, provider_id: &str) -> Result<(), CloudError> {
        self.count("delete", self.inner.delete(provider_id).await)
    }

    async fn get(&self, provider_id: &str) -> Result<Option<Instance>, CloudError> {
        self.count("get", self.inner.get(provider_id).await)
    }

    async fn list(&self) -> Result<Vec<Instance>, CloudError> {
        self.count("list", self.inner.list().await)
    }

    async fn is_drifted(&self, claim: &NodeClaim) -> Result<Option<String>, CloudError> {
        self.count("is_drifted", self.inner.is_drifted(claim).await)
    }
}
