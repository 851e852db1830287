//! The node controllers with the EC2 provider on the test bed (kube-apiserver, kube-scheduler,
//! kwok, moto): one test's namespace, Ec2NodeClass, NodePool, controllers and stand-in kubelet
//! ([`Run`]), and what tests read back from EC2. Shared by `nodes_aws.rs` and
//! `nodes_aws_faults.rs`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aws_sdk_ec2::types::Filter;
use ballast_api::nodes::{Ec2NodeClass, NodeClaim, NodePool, labels};
use ballast_cloud_aws::retry::RetryOptions;
use ballast_cloud_aws::{AwsOptions, AwsProvider, NodeClasses, StaticCredentials, tags};
use ballast_controller::nodes::NodesOptions;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

pub const MANAGER: &str = "ballast-nodes-aws-test";
pub const RUN_LABEL: &str = "test.ballast.dev/run";
pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
pub const T: Duration = Duration::from_secs(120);

pub fn prices() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../simulations/catalogs/aws-like.yaml"
    ))
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BALLAST_TEST_LOG")
                .unwrap_or_else(|_| "ballast_controller=info,ballast_cloud_aws=info".into()),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

pub fn provider(endpoint: &str, cluster: &str, classes: NodeClasses) -> Result<AwsProvider> {
    provider_with(endpoint, cluster, classes, |_| {})
}

/// [`provider`] with its options adjusted by `tweak`.
pub fn provider_with(
    endpoint: &str,
    cluster: &str,
    classes: NodeClasses,
    tweak: impl FnOnce(&mut AwsOptions),
) -> Result<AwsProvider> {
    let mut o = AwsOptions::new(
        "us-east-1",
        cluster,
        StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        },
    );
    o.endpoint = Some(endpoint.into());
    o.retry = RetryOptions {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    };
    tweak(&mut o);
    let prices = ballast_cloud_aws::catalog::load_prices(prices()).map_err(anyhow::Error::msg)?;
    AwsProvider::new(o, prices, classes).map_err(anyhow::Error::msg)
}

/// One test's namespace, Ec2NodeClass, NodePool, controllers and stand-in kubelet.
pub struct Run {
    pub ns: TestNamespace,
    pub client: Client,
    pub moto: String,
    /// A provider of the test's own, for looking at EC2 (same cluster tag).
    pub ec2: AwsProvider,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Run {
    pub fn cluster(&self) -> &str {
        self.ns.name()
    }

    pub fn pool_name(&self) -> String {
        format!("{}-general", self.ns.name())
    }

    pub async fn start(
        bed: &TestBed,
        moto: &str,
        prefix: &str,
        endpoint: Option<&str>,
    ) -> Result<Run> {
        Run::start_with(bed, moto, prefix, endpoint, |_| {}).await
    }

    /// [`Run::start`] with the controllers' options adjusted by `tweak`.
    pub async fn start_with(
        bed: &TestBed,
        moto: &str,
        prefix: &str,
        endpoint: Option<&str>,
        tweak: impl FnOnce(&mut NodesOptions),
    ) -> Result<Run> {
        Run::start_full(bed, moto, prefix, endpoint, tweak, |_| {}).await
    }

    /// [`Run::start_with`] with the controllers' provider options adjusted by `aws`.
    pub async fn start_full(
        bed: &TestBed,
        moto: &str,
        prefix: &str,
        endpoint: Option<&str>,
        tweak: impl FnOnce(&mut NodesOptions),
        aws: impl FnOnce(&mut AwsOptions),
    ) -> Result<Run> {
        init_logs();
        let client = bed.client();
        let crds = ballast_api::crds()
            .into_iter()
            .filter(|c| c.spec.group == "nodes.ballast.dev");
        ballast_testbed::crds::apply(&client, crds, MANAGER, T).await?;
        let ns = bed.namespace(prefix).await?;
        let name = ns.name().to_string();
        let ec2 = provider(moto, &name, NodeClasses::Fixed(BTreeMap::new()))?;
        let subnets = ballast_testbed::services::moto_default_subnets(moto).await?;
        let ids: Vec<serde_json::Value> = ZONES
            .iter()
            .map(|z| {
                Ok(json!({ "id": subnets.get(*z).with_context(|| format!("moto subnet of {z}"))? }))
            })
            .collect::<Result<_>>()?;
        let class: Ec2NodeClass = serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "Ec2NodeClass",
            "metadata": { "name": name, "labels": { RUN_LABEL: name } },
            "spec": {
                "subnetSelectorTerms": ids,
                "securityGroupSelectorTerms": [{ "name": "default" }],
                "amiSelectorTerms": [{ "name": "amzn2-ami-hvm-2.0.*-gp2", "owner": "amazon" }],
                "instanceProfile": "ballast-nodes",
                "tags": { "team": "autoscaling" },
            },
        }))?;
        Api::<Ec2NodeClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await?;
        let pool: NodePool = serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
            "metadata": { "name": format!("{name}-general"), "labels": { RUN_LABEL: name } },
            "spec": { "template": {
                "metadata": { "labels": { ballast_testbed::ISOLATION_KEY: name } },
                "spec": {
                    "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "Ec2NodeClass", "name": name },
                    "taints": [{ "key": ballast_testbed::ISOLATION_KEY, "value": name, "effect": "NoSchedule" }],
                    "requirements": [
                        { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"] },
                        { "key": "nodes.ballast.dev/instance-family", "operator": "In", "values": ["c6i", "m6i", "r6i"] },
                        { "key": labels::ZONE, "operator": "In", "values": ZONES },
                    ],
                },
            } },
        }))?;
        Api::<NodePool>::all(client.clone())
            .create(&PostParams::default(), &pool)
            .await?;
        let mut o = NodesOptions {
            nodepool_selector: Some(format!("{RUN_LABEL}={name}")),
            namespaces: vec![name.clone()],
            resync: Duration::from_secs(10),
            gc_interval: Duration::from_secs(2),
            gc_grace: Duration::from_secs(5),
            status_interval: Duration::from_secs(2),
            disruption: None,
            ..Default::default()
        };
        o.batch.max_seconds = 5.0;
        tweak(&mut o);
        let controllers = provider_with(
            endpoint.unwrap_or(moto),
            &name,
            NodeClasses::Kube(client.clone()),
            aws,
        )?;
        let config = bed.kube_config().clone();
        let controller = tokio::spawn(async move {
            if let Err(e) =
                ballast_controller::nodes::run(config, controllers, o, std::future::pending()).await
            {
                eprintln!("node controllers stopped: {e:#}");
            }
        });
        let kubelet = tokio::spawn(play_kubelet(client.clone(), format!("{name}-general")));
        Ok(Run {
            ns,
            client,
            moto: moto.into(),
            ec2,
            tasks: vec![controller, kubelet],
        })
    }

    pub fn claims_api(&self) -> Api<NodeClaim> {
        Api::all(self.client.clone())
    }

    pub async fn claims(&self) -> Result<Vec<NodeClaim>> {
        let lp =
            ListParams::default().labels(&format!("{}={}", labels::NODEPOOL, self.pool_name()));
        Ok(self.claims_api().list(&lp).await?.items)
    }

    pub async fn nodes(&self) -> Result<Vec<Node>> {
        let lp =
            ListParams::default().labels(&format!("{}={}", labels::NODEPOOL, self.pool_name()));
        Ok(Api::<Node>::all(self.client.clone()).list(&lp).await?.items)
    }

    /// (instance id, type, zone, state, tags) of every instance tagged with this run's cluster.
    pub async fn instances(
        &self,
    ) -> Result<Vec<(String, String, String, String, BTreeMap<String, String>)>> {
        let out = self
            .ec2
            .client()
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{}", tags::CLUSTER))
                    .values(self.cluster())
                    .build(),
            )
            .send()
            .await?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                Some((
                    i.instance_id()?.to_string(),
                    i.instance_type()?.as_str().to_string(),
                    i.placement()?.availability_zone()?.to_string(),
                    i.state()?.name()?.as_str().to_string(),
                    i.tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect(),
                ))
            })
            .collect())
    }

    pub async fn running(
        &self,
    ) -> Result<Vec<(String, String, String, String, BTreeMap<String, String>)>> {
        Ok(self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.3 == "running" || i.3 == "pending")
            .collect())
    }

    pub async fn state_of(&self, id: &str) -> Result<String> {
        Ok(self
            .instances()
            .await?
            .into_iter()
            .find(|i| i.0 == id)
            .map(|i| i.3)
            .unwrap_or_else(|| "absent".into()))
    }

    /// Deletes what the test made: workloads, NodeClaims (the controllers terminate their
    /// instances), pool and class; then anything still running under the cluster tag.
    pub async fn cleanup(self) {
        let dp = DeleteParams::background();
        let _ = self
            .ns
            .api::<Deployment>()
            .delete_collection(&dp, &ListParams::default())
            .await;
        let _ = self
            .ns
            .api::<Pod>()
            .delete_collection(
                &DeleteParams::default().grace_period(0),
                &ListParams::default(),
            )
            .await;
        let _ = Api::<NodePool>::all(self.client.clone())
            .delete(&self.pool_name(), &dp)
            .await;
        let gone = poll_until(
            "NodeClaims of the run to go",
            T,
            Duration::from_millis(500),
            || async {
                let cs = self.claims().await?;
                for c in &cs {
                    if c.metadata.deletion_timestamp.is_none() {
                        let _ = self.claims_api().delete(&c.name_any(), &dp).await;
                    }
                }
                Ok(cs.is_empty().then_some(()))
            },
        )
        .await;
        if let Err(e) = gone {
            eprintln!("cleanup: {e:#}; removing finalizers");
            for c in self.claims().await.unwrap_or_default() {
                let patch = json!({ "metadata": { "finalizers": null } });
                let _ = self
                    .claims_api()
                    .patch(
                        &c.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        for n in self.nodes().await.unwrap_or_default() {
            let _ = Api::<Node>::all(self.client.clone())
                .delete(&n.name_any(), &dp)
                .await;
        }
        let _ = Api::<Ec2NodeClass>::all(self.client.clone())
            .delete(self.ns.name(), &dp)
            .await;
        if let Ok(left) = self.running().await {
            for (id, ..) in left {
                eprintln!("cleanup: terminating {id}");
                let _ = self
                    .ec2
                    .client()
                    .terminate_instances()
                    .instance_ids(id)
                    .send()
                    .await;
            }
        }
        let ns = self.ns.name().to_string();
        if let Err(e) = self.ns.cleanup().await {
            eprintln!("cleanup of {ns}: {e:#}");
        }
    }
}

/// The stand-in kubelet: a kwok-managed Node for every launched NodeClaim of the pool, with the
/// NodeClaim's providerID, labels, taints (startup taints included) and capacity.
pub async fn play_kubelet(client: Client, pool: String) {
    let claims: Api<NodeClaim> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={pool}", labels::NODEPOOL));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (Ok(cs), Ok(ns)) = (claims.list(&lp).await, nodes.list(&lp).await) else {
            continue;
        };
        let registered: BTreeSet<String> = ns
            .items
            .iter()
            .filter_map(|n| n.spec.as_ref()?.provider_id.clone())
            .collect();
        for c in cs
            .items
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
        {
            let Some(st) = &c.status else { continue };
            let Some(pid) = st.provider_id.clone() else {
                continue;
            };
            if registered.contains(&pid) {
                continue;
            }
            let Some((zone, id)) = ballast_cloud_aws::parse_provider_id(&pid) else {
                continue;
            };
            let mut l = c.labels().clone();
            l.insert(labels::ZONE.into(), zone.into());
            l.insert(labels::REGION.into(), "us-east-1".into());
            l.insert(labels::HOSTNAME.into(), id.into());
            l.entry(labels::ARCH.into())
                .or_insert_with(|| "amd64".into());
            l.entry(labels::OS.into()).or_insert_with(|| "linux".into());
            let taints: Vec<Taint> = c
                .spec
                .taints
                .iter()
                .chain(&c.spec.startup_taints)
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: format!("{:?}", t.effect),
                    time_added: None,
                })
                .collect();
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(id.to_string()),
                    labels: Some(l),
                    annotations: Some(BTreeMap::from([(
                        "kwok.x-k8s.io/node".to_string(),
                        "fake".to_string(),
                    )])),
                    ..Default::default()
                },
                spec: Some(NodeSpec {
                    provider_id: Some(pid.clone()),
                    taints: (!taints.is_empty()).then_some(taints),
                    ..Default::default()
                }),
                status: Some(NodeStatus {
                    capacity: st.capacity.clone(),
                    allocatable: st.allocatable.clone(),
                    ..Default::default()
                }),
            };
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => eprintln!(
                    "kubelet: node {id} registered for NodeClaim {}",
                    c.name_any()
                ),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => eprintln!("kubelet: node {id}: {e}"),
            }
        }
    }
}

pub fn condition(c: &NodeClaim, t: &str) -> Option<String> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == t)
        .map(|x| x.status.clone())
}

pub async fn with_run(run: Run, body: impl AsyncFnOnce(&Run) -> Result<()>) -> Result<()> {
    let r = body(&run).await;
    if r.is_err() && std::env::var("BALLAST_TESTBED_KEEP").is_ok_and(|v| v == "1") {
        eprintln!("keeping namespace {} for inspection", run.ns.name());
        std::mem::forget(run);
        return r;
    }
    run.cleanup().await;
    r
}

/// Waits until `n` instances of the cluster run, all of type `want`.
pub async fn wait_instances(
    run: &Run,
    n: usize,
    want: &str,
) -> Result<Vec<(String, String, String, String, BTreeMap<String, String>)>> {
    poll_until(
        &format!("{n} running {want} instances"),
        T,
        Duration::from_millis(500),
        || async {
            let r = run.running().await?;
            Ok((r.len() == n).then_some(r))
        },
    )
    .await
    .and_then(|r| {
        for (id, t, ..) in &r {
            ensure!(
                t == want,
                "instance {id} is {t}, not the cheapest fitting type {want}"
            );
        }
        Ok(r)
    })
}
