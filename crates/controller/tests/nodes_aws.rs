//! The node controllers with the EC2 provider against the REAL test bed: kube-apiserver, the real
//! kube-scheduler, kwok, and moto for EC2 (`tests/testbed.sh up kube moto`).
//!
//! moto runs no kubelet, so the test plays it: for every NodeClaim the controllers launched (it
//! has a providerID `aws:///zone/i-...`), it registers a Node with that providerID, the labels
//! and taints the NodeClaim asks for and its capacity, managed by kwok, which makes it Ready and
//! runs the pods the scheduler binds to it.
//!
//! - `scaled_past_capacity_launches_and_terminates_ec2_instances`: a Deployment scaled past
//!   capacity gets one EC2 instance per step, of the cheapest fitting type (checked with
//!   DescribeInstances, tags included); the NodeClaims go Launched → Registered → Initialized;
//!   deleting an empty node's NodeClaim terminates its instance. Garbage collection: an instance
//!   tagged for the pool without a NodeClaim is terminated, and a NodeClaim whose instance was
//!   terminated behind the controllers' back is deleted.
//! - `insufficient_capacity_on_ec2_launches_the_next_type`: behind the EC2 fault proxy, the
//!   cheapest type has no capacity in any zone; the fleet reports it, and the NodeClaim launches
//!   as the next cheapest fitting type.
//!
//! - `node_class_drift_on_ec2_replaces_the_node`: with disruption on, a launched node's
//!   Ec2NodeClass changes (its user data): the NodeClaim controller's drift check marks the
//!   NodeClaim `Drifted=True` ("node class drift: ..."), and the disruption controller replaces
//!   it: a new NodeClaim runs the pod, the old NodeClaim is deleted and its instance terminated.
//!
//! Each test has its own namespace, NodePool, Ec2NodeClass and cluster tag (the namespace name),
//! so tests and other users of the shared moto never see each other's instances.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aws_sdk_ec2::types::Filter;
use ballast_api::nodes::{Ec2NodeClass, NodeClaim, NodePool, labels};
use ballast_cloud::{CloudProvider, LaunchRequest};
use ballast_cloud_aws::retry::RetryOptions;
use ballast_cloud_aws::{AwsOptions, AwsProvider, NodeClasses, StaticCredentials, tags};
use ballast_controller::nodes::NodesOptions;
use ballast_testbed::ec2_faults::Ec2FaultProxy;
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const MANAGER: &str = "ballast-nodes-aws-test";
const RUN_LABEL: &str = "test.ballast.dev/run";
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const T: Duration = Duration::from_secs(120);

fn prices() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../simulations/catalogs/aws-like.yaml"
    ))
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BALLAST_TEST_LOG")
                .unwrap_or_else(|_| "ballast_controller=info,ballast_cloud_aws=info".into()),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

fn provider(endpoint: &str, cluster: &str, classes: NodeClasses) -> Result<AwsProvider> {
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
    let prices = ballast_cloud_aws::catalog::load_prices(prices()).map_err(anyhow::Error::msg)?;
    AwsProvider::new(o, prices, classes).map_err(anyhow::Error::msg)
}

/// One test's namespace, Ec2NodeClass, NodePool, controllers and stand-in kubelet.
struct Run {
    ns: TestNamespace,
    client: Client,
    moto: String,
    /// A provider of the test's own, for looking at EC2 (same cluster tag).
    ec2: AwsProvider,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Run {
    fn cluster(&self) -> &str {
        self.ns.name()
    }

    fn pool_name(&self) -> String {
        format!("{}-general", self.ns.name())
    }

    async fn start(bed: &TestBed, moto: &str, prefix: &str, endpoint: Option<&str>) -> Result<Run> {
        Run::start_with(bed, moto, prefix, endpoint, |_| {}).await
    }

    /// [`Run::start`] with the controllers' options adjusted by `tweak`.
    async fn start_with(
        bed: &TestBed,
        moto: &str,
        prefix: &str,
        endpoint: Option<&str>,
        tweak: impl FnOnce(&mut NodesOptions),
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
        let controllers = provider(
            endpoint.unwrap_or(moto),
            &name,
            NodeClasses::Kube(client.clone()),
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

    fn claims_api(&self) -> Api<NodeClaim> {
        Api::all(self.client.clone())
    }

    async fn claims(&self) -> Result<Vec<NodeClaim>> {
        let lp =
            ListParams::default().labels(&format!("{}={}", labels::NODEPOOL, self.pool_name()));
        Ok(self.claims_api().list(&lp).await?.items)
    }

    async fn nodes(&self) -> Result<Vec<Node>> {
        let lp =
            ListParams::default().labels(&format!("{}={}", labels::NODEPOOL, self.pool_name()));
        Ok(Api::<Node>::all(self.client.clone()).list(&lp).await?.items)
    }

    /// (instance id, type, zone, state, tags) of every instance tagged with this run's cluster.
    async fn instances(
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

    async fn running(
        &self,
    ) -> Result<Vec<(String, String, String, String, BTreeMap<String, String>)>> {
        Ok(self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.3 == "running" || i.3 == "pending")
            .collect())
    }

    async fn state_of(&self, id: &str) -> Result<String> {
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
    async fn cleanup(self) {
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
async fn play_kubelet(client: Client, pool: String) {
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

fn condition(c: &NodeClaim, t: &str) -> Option<String> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == t)
        .map(|x| x.status.clone())
}

async fn with_run(run: Run, body: impl AsyncFnOnce(&Run) -> Result<()>) -> Result<()> {
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
async fn wait_instances(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_past_capacity_launches_and_terminates_ec2_instances() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let run = Run::start(&bed, &moto, "nodes-aws", None).await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        // A 3-CPU pod: c6i.large is too small; c6i.xlarge ($0.17/h on-demand) is the cheapest
        // that fits (m6i.xlarge $0.192, r6i.xlarge $0.252).
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        wait_instances(run, 1, "c6i.xlarge").await?;
        for replicas in [2, 3] {
            ns.scale_deployment("web", replicas).await?;
            ns.wait_deployment_ready("web", replicas, T).await?;
            wait_instances(run, replicas as usize, "c6i.xlarge").await?;
        }
        let instances = run.running().await?;
        for (id, _, zone, _, t) in &instances {
            ensure!(ZONES.contains(&zone.as_str()), "{id} in {zone}");
            for (k, v) in [
                (tags::NODEPOOL, run.pool_name()),
                (tags::NODECLASS, run.ns.name().to_string()),
                ("team", "autoscaling".into()),
            ] {
                ensure!(t.get(k) == Some(&v), "{id} tag {k}: {t:?}");
            }
            ensure!(t.contains_key(tags::NODECLAIM), "{id}: {t:?}");
        }
        let claims = poll_until(
            "3 initialized NodeClaims",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims().await?;
                let init = cs
                    .iter()
                    .filter(|c| condition(c, "Initialized").as_deref() == Some("True"))
                    .count();
                Ok((init == 3).then_some(cs))
            },
        )
        .await?;
        let ids: BTreeSet<String> = instances.iter().map(|i| i.0.clone()).collect();
        for c in &claims {
            for t in ["Launched", "Registered", "Initialized"] {
                ensure!(
                    condition(c, t).as_deref() == Some("True"),
                    "{} {t}",
                    c.name_any()
                );
            }
            let pid = c
                .status
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .context("providerID")?;
            let (_, id) = ballast_cloud_aws::parse_provider_id(&pid).context("aws providerID")?;
            ensure!(ids.contains(id), "{pid} is not a running instance");
            ensure!(
                c.labels().get(labels::INSTANCE_TYPE).map(String::as_str) == Some("c6i.xlarge")
            );
        }
        // Scale down; the NodeClaim of the node left empty is deleted: its instance terminates.
        ns.scale_deployment("web", 2).await?;
        let busy = poll_until(
            "2 web pods on 2 nodes",
            T,
            Duration::from_millis(500),
            || async {
                let pods: Vec<Pod> = ns
                    .pods("app=web")
                    .await?
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let on: BTreeSet<String> = pods
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                    .collect();
                Ok((pods.len() == 2 && on.len() == 2).then_some(on))
            },
        )
        .await?;
        let nodes = run.nodes().await?;
        let empty = nodes
            .iter()
            .find(|n| !busy.contains(&n.name_any()))
            .context("an empty node")?;
        let empty_pid = empty
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .context("providerID")?;
        let claim = claims
            .iter()
            .find(|c| {
                c.status.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(empty_pid.as_str())
            })
            .context("the empty node's NodeClaim")?;
        run.claims_api()
            .delete(&claim.name_any(), &DeleteParams::background())
            .await?;
        let (_, empty_id) =
            ballast_cloud_aws::parse_provider_id(&empty_pid).context("providerID")?;
        poll_until(
            "the empty node's instance terminated",
            T,
            Duration::from_millis(500),
            || async {
                let s = run.state_of(empty_id).await?;
                Ok((s == "terminated").then_some(()))
            },
        )
        .await?;
        poll_until(
            "its NodeClaim and Node gone",
            T,
            Duration::from_millis(500),
            || async {
                let claim_left = run
                    .claims()
                    .await?
                    .iter()
                    .any(|c| c.name_any() == claim.name_any());
                let node_left = run
                    .nodes()
                    .await?
                    .iter()
                    .any(|n| n.name_any() == empty.name_any());
                Ok((!claim_left && !node_left).then_some(()))
            },
        )
        .await?;
        // Orphan: an instance tagged for the pool, launched behind the controllers' back.
        let pool = Api::<NodePool>::all(run.client.clone())
            .get(&run.pool_name())
            .await?;
        let class = Api::<Ec2NodeClass>::all(run.client.clone())
            .get(run.ns.name())
            .await?;
        let ghost_launcher = provider(
            &run.moto,
            run.cluster(),
            NodeClasses::Fixed(BTreeMap::from([(
                run.ns.name().to_string(),
                class.spec.clone(),
            )])),
        )?;
        let mut ghost = NodeClaim::new(&format!("{}-ghost", run.pool_name()), Default::default());
        ghost.spec.node_class_ref = pool.spec.template.spec.node_class_ref.clone();
        ghost.metadata.labels = Some(BTreeMap::from([(
            labels::NODEPOOL.to_string(),
            run.pool_name(),
        )]));
        let types = ghost_launcher.instance_types().await?;
        let t = types
            .iter()
            .find(|t| t.name == "c6i.large")
            .context("c6i.large")?;
        let ghost_instance = ghost_launcher
            .create(&LaunchRequest {
                node_claim: ghost,
                offerings: vec![ballast_cloud::LaunchOffering {
                    instance_type: t.clone(),
                    zone: "us-east-1a".into(),
                    capacity_type: "on-demand".into(),
                    price: 0.085,
                }],
            })
            .await?;
        let (_, ghost_id) =
            ballast_cloud_aws::parse_provider_id(&ghost_instance.provider_id).context("pid")?;
        ensure!(run.state_of(ghost_id).await? == "running");
        poll_until(
            "the orphaned instance terminated",
            T,
            Duration::from_millis(500),
            || async { Ok((run.state_of(ghost_id).await? == "terminated").then_some(())) },
        )
        .await?;
        // A NodeClaim whose instance vanished (terminated outside Ballast) is deleted.
        let victim = run
            .claims()
            .await?
            .into_iter()
            .find(|c| {
                c.metadata.deletion_timestamp.is_none()
                    && c.status.as_ref().is_some_and(|s| s.provider_id.is_some())
            })
            .context("a launched NodeClaim")?;
        let vpid = victim
            .status
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default();
        let (_, vid) = ballast_cloud_aws::parse_provider_id(&vpid).context("pid")?;
        run.ec2
            .client()
            .terminate_instances()
            .instance_ids(vid)
            .send()
            .await?;
        poll_until(
            "the NodeClaim of the vanished instance deleted",
            T,
            Duration::from_millis(500),
            || async {
                let left = run
                    .claims()
                    .await?
                    .iter()
                    .any(|c| c.name_any() == victim.name_any());
                Ok((!left).then_some(()))
            },
        )
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_capacity_on_ec2_launches_the_next_type() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let proxy = Ec2FaultProxy::start(&moto).await?;
    // No c6i.xlarge anywhere: the next cheapest fitting type is m6i.xlarge ($0.192/h).
    proxy.insufficient_capacity("c6i.xlarge", None);
    let run = Run::start(&bed, &moto, "nodes-aws-ice", Some(proxy.url())).await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        wait_instances(run, 1, "m6i.xlarge").await?;
        ensure!(
            proxy.insufficient_answered() >= 1,
            "the fleet was asked for c6i.xlarge first"
        );
        let claims = run.claims().await?;
        ensure!(claims.len() == 1, "{} NodeClaims", claims.len());
        ensure!(
            claims[0]
                .labels()
                .get(labels::INSTANCE_TYPE)
                .map(String::as_str)
                == Some("m6i.xlarge")
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_class_drift_on_ec2_replaces_the_node() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let run = Run::start_with(&bed, &moto, "nodes-aws-drift", None, |o| {
        o.drift_interval = Duration::from_secs(2);
        o.disruption = Some(
            ballast_controller::nodes::disruption::DisruptionShellOptions {
                poll: Duration::from_secs(2),
                validation_delay: Duration::from_secs(1),
                ..Default::default()
            },
        );
    })
    .await?;
    with_run(run, async |run| {
        let ns = &run.ns;
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let first = poll_until(
            "an initialized NodeClaim",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims().await?;
                Ok(cs
                    .into_iter()
                    .find(|c| condition(c, "Initialized").as_deref() == Some("True")))
            },
        )
        .await?;
        // Checked every 2s since it initialized: not drifted.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let now = run.claims_api().get(&first.name_any()).await?;
        ensure!(
            condition(&now, "Drifted").is_none(),
            "drifted before any change: {:?}",
            now.status
        );
        let pid = first
            .status
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .context("providerID")?;
        let (_, old_id) = ballast_cloud_aws::parse_provider_id(&pid).context("aws providerID")?;
        let old_id = old_id.to_string();
        // The class changes under the running instance.
        let patch = json!({ "spec": { "userData": "#!/bin/sh\necho drifted" } });
        Api::<Ec2NodeClass>::all(run.client.clone())
            .patch(
                run.ns.name(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        let message = poll_until(
            "Drifted=True on the NodeClaim",
            T,
            Duration::from_millis(500),
            || async {
                let Some(c) = run.claims_api().get_opt(&first.name_any()).await? else {
                    return Ok(Some("(replaced before seen)".to_string()));
                };
                Ok(c.status.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|x| x.type_ == "Drifted" && x.status == "True")
                        .map(|x| format!("{}: {}", x.reason, x.message))
                }))
            },
        )
        .await?;
        eprintln!("drift: {message}");
        ensure!(
            message == "(replaced before seen)"
                || (message.starts_with("NodeClassDrifted: node class drift: ")
                    && message.contains("changed since launch")),
            "{message}"
        );
        poll_until(
            "the drifted NodeClaim replaced and its instance terminated",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims().await?;
                let old_left = cs.iter().any(|c| c.name_any() == first.name_any());
                let new_ready = cs.iter().any(|c| {
                    c.name_any() != first.name_any()
                        && condition(c, "Initialized").as_deref() == Some("True")
                });
                let state = run.state_of(&old_id).await?;
                Ok((!old_left && new_ready && state == "terminated").then_some(()))
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let cs = run.claims().await?;
        ensure!(
            cs.len() == 1,
            "{} NodeClaims after the replacement",
            cs.len()
        );
        ensure!(
            condition(&cs[0], "Drifted").is_none(),
            "the replacement is not drifted: {:?}",
            cs[0].status
        );
        Ok(())
    })
    .await
}
