//! Per-test namespaces, and the cluster-wide objects (kwok nodes) that belong to them.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use k8s_openapi::ByteString;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{
    Namespace, Node, Pod, PodSpec, Secret, ServiceAccount, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};

use crate::objects::{KwokNode, TestDeployment};
use crate::wait;

/// Label and taint key tying kwok nodes to the namespace (test) that made them.
pub const ISOLATION_KEY: &str = "testbed.ballast.dev/namespace";
/// Label (`"true"`) on every namespace and node the helpers create, for bulk cleanup:
/// `kubectl delete ns,nodes -l testbed.ballast.dev/test=true`.
pub const TEST_LABEL: &str = "testbed.ballast.dev/test";
/// Set to `1` to keep namespaces and nodes after the test (debugging with kubectl).
pub const KEEP_VAR: &str = "BALLAST_TESTBED_KEEP";

/// A namespace `<prefix>-<random>` for one test, deleted (with the test's kwok nodes) when
/// dropped or on [`TestNamespace::cleanup`]. Workloads made through it only run on its own nodes.
pub struct TestNamespace {
    name: String,
    client: Client,
    config: kube::Config,
    nodes: Mutex<Vec<String>>,
    done: bool,
}

impl TestNamespace {
    pub(crate) async fn create(bed: &crate::TestBed, prefix: &str) -> Result<TestNamespace> {
        let name = format!("{}-{}", sanitize(prefix), random_suffix());
        let client = bed.client();
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(TEST_LABEL.to_owned(), "true".to_owned())])),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let this = TestNamespace {
            name,
            client,
            config: bed.kube_config().clone(),
            nodes: Mutex::new(Vec::new()),
            done: false,
        };
        // Pods are rejected until the serviceaccount controller has made `default`.
        wait::poll_until(
            "ServiceAccount default",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async { Ok(this.api::<ServiceAccount>().get_opt("default").await?) },
        )
        .await?;
        Ok(this)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test bed client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An `Api` of a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The cluster-wide name a node `name` of this test gets: `<namespace>-<name>`.
    pub fn node_name(&self, name: &str) -> String {
        format!("{}-{}", self.name, name)
    }

    /// Creates a kwok node owned by this test (label and `NoSchedule` taint [`ISOLATION_KEY`]) and
    /// waits until kwok has made it Ready.
    pub async fn create_kwok_node(&self, node: KwokNode) -> Result<Node> {
        let name = self.node_name(&node.name);
        let node = node
            .label(ISOLATION_KEY, self.name.clone())
            .label(TEST_LABEL, "true")
            .taint(ISOLATION_KEY, self.name.clone(), "NoSchedule");
        let api = Api::<Node>::all(self.client.clone());
        api.create(&PostParams::default(), &node.build(&name))
            .await
            .with_context(|| format!("creating node {name}"))?;
        self.nodes.lock().unwrap().push(name.clone());
        wait::wait_for(&api, &name, Duration::from_secs(60), wait::node_ready)
            .await
            .context("kwok did not make the node Ready (is kwok running? tests/testbed.sh status)")
    }

    /// Lets a pod run on this test's nodes and only there (node selector + toleration).
    pub fn isolate(&self, spec: &mut PodSpec) {
        spec.node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(ISOLATION_KEY.to_owned(), self.name.clone());
        spec.tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: Some(ISOLATION_KEY.to_owned()),
                operator: Some("Equal".to_owned()),
                value: Some(self.name.clone()),
                effect: Some("NoSchedule".to_owned()),
                ..Default::default()
            });
    }

    /// Creates a Deployment whose pods run on this test's kwok nodes.
    pub async fn create_deployment(&self, deployment: TestDeployment) -> Result<Deployment> {
        let mut d = deployment.build();
        if let Some(spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            self.isolate(spec);
        }
        self.api::<Deployment>()
            .create(&PostParams::default(), &d)
            .await
            .with_context(|| format!("creating deployment {}/{}", self.name, deployment.name))
    }

    /// Sets `replicas` through the `scale` subresource (as an autoscaler does).
    pub async fn scale_deployment(&self, name: &str, replicas: i32) -> Result<Scale> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.api::<Deployment>()
            .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("scaling deployment {}/{name} to {replicas}", self.name))
    }

    /// Fails as soon as Deployment `name`'s `spec.replicas` is other than `want`, checked every
    /// 250 ms for `period` (an autoscaler must hold it).
    pub async fn hold_deployment_replicas(
        &self,
        name: &str,
        want: i32,
        period: Duration,
    ) -> Result<()> {
        let end = tokio::time::Instant::now() + period;
        while tokio::time::Instant::now() < end {
            let got = self
                .api::<Deployment>()
                .get(name)
                .await?
                .spec
                .and_then(|s| s.replicas)
                .unwrap_or(-1);
            anyhow::ensure!(
                got == want,
                "deployment {}/{name} went to {got} replicas, expected to hold {want}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// Waits until the Deployment has exactly `replicas` ready, up-to-date pods.
    pub async fn wait_deployment_ready(
        &self,
        name: &str,
        replicas: i32,
        timeout: Duration,
    ) -> Result<Deployment> {
        wait::wait_for(
            &self.api::<Deployment>(),
            name,
            timeout,
            wait::deployment_ready(replicas),
        )
        .await
    }

    /// Creates Secret `name` in this namespace holding `data` (key, text value).
    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) -> Result<()> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {}/{name}", self.name()))?;
        Ok(())
    }

    /// Pods in this namespace matching a label selector (`""` for all).
    pub async fn pods(&self, selector: &str) -> Result<Vec<Pod>> {
        Ok(self
            .api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await?
            .items)
    }

    /// Deletes the namespace and this test's nodes now (otherwise done on drop).
    pub async fn cleanup(mut self) -> Result<()> {
        self.done = true;
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
        delete_all(self.client.clone(), &self.name, &nodes).await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.done || std::env::var(KEEP_VAR).is_ok_and(|v| v == "1") {
            return;
        }
        // Drop cannot await, and the test's runtime may be single-threaded: delete from a thread
        // with its own runtime and its own client.
        let config = self.config.clone();
        let name = self.name.clone();
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move { delete_all(Client::try_from(config)?, &name, &nodes).await })
        });
        if let Ok(Err(e)) = worker.join() {
            eprintln!("testbed: cleanup of namespace {} failed: {e:#}", self.name);
        }
    }
}

async fn delete_all(client: Client, namespace: &str, nodes: &[String]) -> Result<()> {
    let dp = DeleteParams::background();
    let mut first_err = None;
    if let Err(e) = Api::<Namespace>::all(client.clone())
        .delete(namespace, &dp)
        .await
    {
        first_err.get_or_insert(
            anyhow::Error::from(e).context(format!("deleting namespace {namespace}")),
        );
    } else if !nodes.is_empty() {
        // kwok finishes pod deletion only on nodes that still exist; without them pods would wait
        // for the pod GC. So let the namespace's pods go first, then the nodes.
        let pods = Api::<Pod>::namespaced(client.clone(), namespace);
        let gone = wait::poll_until(
            "pods of the namespace to go",
            Duration::from_secs(60),
            Duration::from_millis(250),
            || async {
                Ok(pods
                    .list_metadata(&ListParams::default().limit(1))
                    .await?
                    .items
                    .is_empty()
                    .then_some(()))
            },
        )
        .await;
        if let Err(e) = gone {
            eprintln!("testbed: {namespace}: {e:#}");
        }
    }
    let api = Api::<Node>::all(client);
    for node in nodes {
        if let Err(e) = api.delete(node, &dp).await {
            first_err
                .get_or_insert(anyhow::Error::from(e).context(format!("deleting node {node}")));
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A DNS-label-safe prefix of at most 40 characters.
fn sanitize(prefix: &str) -> String {
    let mut s: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(40);
    let s = s.trim_matches('-');
    if s.is_empty() {
        "test".to_owned()
    } else {
        s.to_owned()
    }
}

/// Six base-36 characters, different for every call (randomly keyed hash of time and a counter).
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let mut n = h.finish();
    (0..6)
        .map(|_| {
            let d = (n % 36) as u32;
            n /= 36;
            char::from_digit(d, 36).unwrap()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(sanitize("Scale_Subresource test"), "scale-subresource-test");
        assert_eq!(sanitize("--"), "test");
        assert_eq!(sanitize(&"x".repeat(80)).len(), 40);
        let a = random_suffix();
        let b = random_suffix();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
