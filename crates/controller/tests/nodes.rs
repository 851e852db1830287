//! The node controllers against the REAL test bed (`tests/testbed.sh up kube`): kube-apiserver,
//! kube-controller-manager, the real kube-scheduler and kwok. The controllers create NodeClaims,
//! the kwok provider turns them into kwok Nodes, and the real scheduler binds the pods to them.
//!
//! - `scaled_past_capacity_gets_cheapest_nodes`: a Deployment scaled past capacity one step at a
//!   time gets a new node per step, of the cheapest fitting offering (type, zone, capacity type);
//!   the NodeClaims go Launched → Registered → Initialized; NodePool status counts them.
//! - `taints_zone_spread_and_anti_affinity`: pods without a toleration never land on the tainted
//!   pool's nodes; zone spread and hostname anti-affinity hold on the nodes made for them; the
//!   tolerating pods get nodes of the tainted pool.
//! - `limits_stop_growth`: NodePool limits stop new nodes, with a `LimitsReached` condition on the
//!   pool and `FailedProvisioning` events on the pods left pending.
//! - `deleting_a_nodeclaim_drains_it_respecting_the_pdb`: the node is cordoned and tainted, the
//!   eviction is refused while the PDB allows none, goes through once it allows one, and then the
//!   node and the NodeClaim are gone.
//! - `deleting_a_node_drains_it_like_its_nodeclaim`: `delete` of a Node Ballast made: the Node
//!   (held by the termination finalizer) stays while its NodeClaim is deleted and drained one pod
//!   at a time within a PDB of maxUnavailable 1 (watchers see available replicas never below
//!   replicas − 1); the pods move to a replacement, then the Node and its NodeClaim go.
//! - `unsatisfiable_pod_makes_no_node`: a pod whose node selector matches no NodePool gets a
//!   `NoCompatibleNodePool` event and no NodeClaim.
//! - `karpenter_label_spellings_select_our_nodes`: a Deployment selecting only Karpenter's keys
//!   (`karpenter.sh/capacity-type=on-demand`, `karpenter.k8s.aws/instance-family=m6i`) in a pool
//!   offering spot and on-demand gets on-demand m6i nodes carrying both spellings of each label.
//! - `insufficient_capacity_falls_back_to_the_next_offering`: the cheapest offering fails at
//!   launch; the NodeClaim launches as the next one.
//! - `orphans_are_garbage_collected`: a kwok instance without NodeClaim is deleted (its node
//!   holding our termination finalizer is released), a NodeClaim whose node was deleted is
//!   deleted.
//! - `emptiness_removes_empty_nodes`, `consolidation_leaves_one_cheapest_node` and
//!   `drift_replaces_nodes_but_do_not_disrupt_pins`: the disruption controller (emptiness: its
//!   decision and the two NodeClaims it deleted are counted in the metrics).
//! - `scale_down_consolidates_a_half_empty_pair_within_the_pdb`: scaled up one node per step,
//!   then down; empty nodes go, the half-empty pair becomes one cheaper node, and watchers see
//!   the Deployment's available replicas never below replicas − 1 (PDB maxUnavailable 1).
//! - `drift_replaces_nodes_one_at_a_time_within_the_budget`: a budget of one node: a watch never
//!   sees two drifted nodes disrupted at once; the metrics count three drift replacements created
//!   and terminated.
//! - `stale_disruption_taints_are_cleared_at_start`: a node tainted and cordoned for a disruption
//!   by a controller killed right after is untainted and uncordoned by the next one at start.
//! - `a_pool_that_cannot_launch_does_not_stop_disruption_elsewhere`: a pod only a pool with a
//!   missing node class could take; that pool goes `Ready=False` (`LaunchFailing`) and the other
//!   pool's empty node is still removed while the pod waits.
//! - `spot_interruption_from_sqs_drains_and_replaces_the_node`: interruption messages from an
//!   SQS queue on moto (`tests/testbed.sh up moto`).
//! - `static_pool_keeps_its_replicas`: a static NodePool (`spec.replicas`) keeps its nodes without
//!   pods and through consolidation, launches nothing for a pod, follows its scale subresource
//!   (removing the nodes with fewest pods first) and stops at `limits.nodes`, saying so.
//!
//! Each test runs its own controllers, restricted to its own NodePools (label selector) and its
//! own namespace's pending pods, so tests run in parallel. Without a test bed every test prints a
//! skip note and passes, unless `BALLAST_REQUIRE_TESTBED=1` (as `tests/run.sh` sets).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ballast_api::nodes::{KwokNodeClass, NodeClaim, NodePool, labels};
use ballast_cloud::{CloudProvider, Instance, LaunchOffering, LaunchRequest, OfferingKey};
use ballast_cloud_kwok::KwokProvider;
use ballast_controller::metric_labels::labels as metric_labels;
use ballast_controller::nodes::interruption::{InterruptionMetrics, InterruptionOptions};
use ballast_controller::nodes::{NodesMetrics, NodesOptions, disruption::DisruptionShellOptions};
use ballast_testbed::wait::poll_until;
use ballast_testbed::{TestBed, TestDeployment, TestNamespace, service_or_skip, testbed_or_skip};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const MANAGER: &str = "ballast-nodes-test";
const RUN_LABEL: &str = "test.ballast.dev/run";
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

fn catalog() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../simulations/catalogs/aws-like.yaml"
    ))
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BALLAST_TEST_LOG")
                .unwrap_or_else(|_| "ballast_controller=info,ballast_cloud_kwok=info".into()),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

async fn install_crds(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ballast_api::crds()
        .into_iter()
        .filter(|c| c.spec.group == "nodes.ballast.dev")
    {
        let name = crd.metadata.name.clone().context("CRD name")?;
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        ballast_testbed::wait::wait_for(
            &crds,
            &name,
            Duration::from_secs(30),
            |c: &CustomResourceDefinition| {
                c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        )
        .await?;
    }
    Ok(())
}

/// One test's controllers, NodePools, KwokNodeClass and namespace.
struct Run {
    ns: TestNamespace,
    client: Client,
    config: kube::Config,
    controller: tokio::task::JoinHandle<Result<(), ballast_controller::nodes::Error>>,
}

impl Run {
    /// A NodePool spec for this run: its nodes carry the namespace's isolation label and taint,
    /// so only this test's pods (which select and tolerate them) go there. `extra` is merged into
    /// `spec.template.spec` (requirements, taints...) and `spec` (limits, disruption...).
    fn pool(&self, suffix: &str, spec: Value, template_spec: Value) -> NodePool {
        let ns = self.ns.name();
        let mut taints = vec![
            json!({ "key": ballast_testbed::ISOLATION_KEY, "value": ns, "effect": "NoSchedule" }),
        ];
        if let Some(t) = template_spec.get("taints").and_then(|t| t.as_array()) {
            taints.extend(t.iter().cloned());
        }
        let mut ts = json!({
            "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": ns },
            "requirements": [
                { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["on-demand"] },
                { "key": "nodes.ballast.dev/instance-family", "operator": "In", "values": ["c6i", "m6i", "r6i"] }
            ],
        });
        for (k, v) in template_spec.as_object().into_iter().flatten() {
            ts[k] = v.clone();
        }
        ts["taints"] = Value::Array(taints);
        let mut s = json!({
            "template": {
                "metadata": { "labels": { ballast_testbed::ISOLATION_KEY: ns } },
                "spec": ts,
            }
        });
        for (k, v) in spec.as_object().into_iter().flatten() {
            s[k] = v.clone();
        }
        serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1",
            "kind": "NodePool",
            "metadata": { "name": self.pool_name(suffix), "labels": { RUN_LABEL: ns } },
            "spec": s,
        }))
        .expect("a valid NodePool")
    }

    fn pool_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.ns.name())
    }

    async fn start(
        bed: &TestBed,
        prefix: &str,
        pools: &[(&str, Value, Value)],
        opts: impl FnOnce(&mut NodesOptions),
    ) -> Result<Run> {
        init_logs();
        let client = bed.client();
        install_crds(&client).await?;
        let ns = bed.namespace(prefix).await?;
        let class: KwokNodeClass = serde_json::from_value(json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "KwokNodeClass",
            "metadata": { "name": ns.name(), "labels": { RUN_LABEL: ns.name() } },
            "spec": {},
        }))?;
        Api::<KwokNodeClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await?;
        let mut o = NodesOptions {
            nodepool_selector: Some(format!("{RUN_LABEL}={}", ns.name())),
            namespaces: vec![ns.name().to_string()],
            resync: Duration::from_secs(10),
            gc_interval: Duration::from_secs(5),
            gc_grace: Duration::from_secs(15),
            status_interval: Duration::from_secs(2),
            disruption: None,
            ..Default::default()
        };
        o.batch.max_seconds = 5.0;
        opts(&mut o);
        let run = Run {
            ns,
            client: client.clone(),
            config: bed.kube_config().clone(),
            controller: tokio::spawn(async { Ok(()) }),
        };
        for (suffix, spec, template) in pools {
            let p = run.pool(suffix, spec.clone(), template.clone());
            Api::<NodePool>::all(client.clone())
                .create(&PostParams::default(), &p)
                .await?;
        }
        let provider = KwokProvider::from_catalog_file(client.clone(), catalog())
            .map_err(anyhow::Error::msg)?;
        Ok(run.with_controller(provider, o))
    }

    fn with_controller<P: CloudProvider>(mut self, provider: P, o: NodesOptions) -> Run {
        self.controller = tokio::spawn(ballast_controller::nodes::run(
            self.config.clone(),
            provider,
            o,
            std::future::pending(),
        ));
        self
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn claims_api(&self) -> Api<NodeClaim> {
        Api::all(self.client.clone())
    }

    /// Nodes of one of this run's pools.
    async fn pool_nodes(&self, suffix: &str) -> Result<Vec<Node>> {
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            labels::NODEPOOL,
            self.pool_name(suffix)
        ));
        Ok(self.nodes().list(&lp).await?.items)
    }

    /// NodeClaims of one of this run's pools.
    async fn claims(&self, suffix: &str) -> Result<Vec<NodeClaim>> {
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            labels::NODEPOOL,
            self.pool_name(suffix)
        ));
        Ok(self.claims_api().list(&lp).await?.items)
    }

    async fn ready_nodes(&self, suffix: &str, n: usize, timeout: Duration) -> Result<Vec<Node>> {
        poll_until(
            &format!("{n} Ready nodes in pool {suffix}"),
            timeout,
            Duration::from_millis(500),
            || async {
                let nodes = self.pool_nodes(suffix).await?;
                let ready: Vec<Node> = nodes.into_iter().filter(ready).collect();
                Ok((ready.len() == n).then_some(ready))
            },
        )
        .await
    }

    async fn get_pool(&self, suffix: &str) -> Result<NodePool> {
        Ok(Api::<NodePool>::all(self.client.clone())
            .get(&self.pool_name(suffix))
            .await?)
    }

    /// Events (events.k8s.io) about an object of the namespace.
    async fn events_about(&self, name: &str) -> Result<Vec<Event>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.ns.name());
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect())
    }

    /// Deletes what the test made, in an order that leaves nothing behind: the namespace's
    /// workloads, then the NodeClaims (the controllers drain and delete their nodes), then the
    /// pools and the class; last the controllers and the namespace.
    async fn cleanup(self, pools: &[&str]) {
        let ns = self.ns.name().to_string();
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
        for suffix in pools {
            let pool = self.pool_name(suffix);
            let _ = Api::<NodePool>::all(self.client.clone())
                .delete(&pool, &dp)
                .await;
        }
        let gone = poll_until(
            "NodeClaims of the run to go",
            Duration::from_secs(90),
            Duration::from_millis(500),
            || async {
                let mut left = 0;
                for suffix in pools {
                    for c in self.claims(suffix).await? {
                        left += 1;
                        if c.metadata.deletion_timestamp.is_none() {
                            let _ = self.claims_api().delete(&c.name_any(), &dp).await;
                        }
                    }
                }
                Ok((left == 0).then_some(()))
            },
        )
        .await;
        if let Err(e) = gone {
            eprintln!("cleanup: {e:#}; removing finalizers");
            for suffix in pools {
                for c in self.claims(suffix).await.unwrap_or_default() {
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
        }
        for suffix in pools {
            for n in self.pool_nodes(suffix).await.unwrap_or_default() {
                let _ = self.nodes().delete(&n.name_any(), &dp).await;
            }
        }
        // Nodes without NodeClaim lose the termination finalizer to the controllers; should they
        // not, it is removed here before the controllers stop (else the nodes would stay).
        let nodes_gone = poll_until(
            "nodes of the run to go",
            Duration::from_secs(30),
            Duration::from_millis(500),
            || async {
                let mut left = 0;
                for suffix in pools {
                    left += self.pool_nodes(suffix).await?.len();
                }
                Ok((left == 0).then_some(()))
            },
        )
        .await;
        if let Err(e) = nodes_gone {
            eprintln!("cleanup: {e:#}; removing node finalizers");
            for suffix in pools {
                for n in self.pool_nodes(suffix).await.unwrap_or_default() {
                    let patch = json!({ "metadata": { "finalizers": null } });
                    let _ = self
                        .nodes()
                        .patch(
                            &n.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                }
            }
        }
        let _ = Api::<KwokNodeClass>::all(self.client.clone())
            .delete(&ns, &dp)
            .await;
        self.controller.abort();
        if let Err(e) = self.ns.cleanup().await {
            eprintln!("cleanup of {ns}: {e:#}");
        }
    }
}

fn ready(n: &Node) -> bool {
    ballast_testbed::wait::node_ready(n)
}

fn label<'a>(n: &'a Node, key: &str) -> &'a str {
    n.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or("")
}

fn condition(c: &NodeClaim, t: &str) -> Option<String> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == t)
        .map(|x| x.status.clone())
}

/// A Deployment of this namespace (isolated to its nodes), with `edit` applied to its pod spec
/// and template metadata.
async fn deploy(
    ns: &TestNamespace,
    d: TestDeployment,
    edit: impl FnOnce(&mut Value),
) -> Result<()> {
    let mut dep = serde_json::to_value(d.build())?;
    edit(&mut dep["spec"]["template"]);
    let mut dep: Deployment = serde_json::from_value(dep)?;
    if let Some(spec) = dep.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        ns.isolate(spec);
    }
    ns.api::<Deployment>()
        .create(&PostParams::default(), &dep)
        .await?;
    Ok(())
}

fn anti_affinity(app: &str) -> Value {
    json!({ "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [
        { "labelSelector": { "matchLabels": { "app": app } }, "topologyKey": "kubernetes.io/hostname" }
    ] } })
}

/// Node name of each running pod of the app.
async fn placements(ns: &TestNamespace, app: &str) -> Result<BTreeMap<String, String>> {
    Ok(ns
        .pods(&format!("app={app}"))
        .await?
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.name_any(), p.spec?.node_name?)))
        .collect())
}

async fn with_run(
    run: Run,
    pools: &[&str],
    body: impl AsyncFnOnce(&Run) -> Result<()>,
) -> Result<()> {
    let r = body(&run).await;
    if r.is_err() && std::env::var("BALLAST_TESTBED_KEEP").is_ok_and(|v| v == "1") {
        eprintln!("keeping namespace {} for inspection", run.ns.name());
        std::mem::forget(run);
        return r;
    }
    run.cleanup(pools).await;
    r
}

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_past_capacity_gets_cheapest_nodes() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    // Spot allowed, every family: the cheapest offering for a 3-CPU pod is c6i.xlarge spot in
    // us-east-1b ($0.0639/h; m6i.xlarge spot is $0.0693 at best, c6i.large is too small).
    let any = json!({ "requirements": [
        { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["spot", "on-demand"] }
    ] });
    let run = Run::start(&bed, "nodes-scale", &[("general", json!({}), any)], |_| {}).await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "3")
                .request("memory", "2Gi"),
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        for replicas in [2, 3] {
            ns.scale_deployment("web", replicas).await?;
            ns.wait_deployment_ready("web", replicas, T).await?;
            let nodes = run.ready_nodes("general", replicas as usize, T).await?;
            for n in &nodes {
                ensure!(
                    (
                        label(n, labels::INSTANCE_TYPE),
                        label(n, labels::ZONE),
                        label(n, labels::CAPACITY_TYPE)
                    ) == ("c6i.xlarge", "us-east-1b", "spot"),
                    "node {} is {} {} {}, not the cheapest fitting offering",
                    n.name_any(),
                    label(n, labels::INSTANCE_TYPE),
                    label(n, labels::ZONE),
                    label(n, labels::CAPACITY_TYPE)
                );
                ensure!(
                    label(n, "nodes.ballast.dev/instance-family") == "c6i",
                    "catalog labels under nodes.ballast.dev/"
                );
                ensure!(
                    n.spec.as_ref().and_then(|s| s.provider_id.clone())
                        == Some(format!("kwok://{}", n.name_any()))
                );
            }
        }
        // One pod per node: the scheduler bound them to the nodes we made.
        let nodes_used: BTreeSet<String> = placements(ns, "web").await?.into_values().collect();
        ensure!(nodes_used.len() == 3, "pods on {nodes_used:?}");
        let claims = poll_until(
            "3 initialized NodeClaims",
            T,
            Duration::from_millis(500),
            || async {
                let cs = run.claims("general").await?;
                let init = cs
                    .iter()
                    .filter(|c| condition(c, "Initialized").as_deref() == Some("True"))
                    .count();
                Ok((init == 3).then_some(cs))
            },
        )
        .await?;
        for c in &claims {
            for t in ["Launched", "Registered", "Initialized", "Ready"] {
                ensure!(
                    condition(c, t).as_deref() == Some("True"),
                    "{} {t} = {:?}",
                    c.name_any(),
                    condition(c, t)
                );
            }
            let st = c.status.as_ref().context("status")?;
            ensure!(
                st.node_name.is_some() && st.capacity.as_ref().is_some_and(|m| m["cpu"].0 == "4")
            );
            ensure!(
                c.finalizers()
                    .iter()
                    .any(|f| f == labels::TERMINATION_FINALIZER)
            );
        }
        let pool = poll_until(
            "NodePool status with 3 nodes",
            T,
            Duration::from_millis(500),
            || async {
                let p = run.get_pool("general").await?;
                let n = p
                    .status
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.get("nodes"))
                    .map(|q| q.0.clone());
                Ok((n.as_deref() == Some("3")).then_some(p))
            },
        )
        .await?;
        let res = pool.status.unwrap().resources.unwrap();
        ensure!(res["cpu"].0 == "12", "pool cpu in use: {:?}", res["cpu"]);
        let nominated = run
            .events_about(&ns.pods("app=web").await?[0].name_any())
            .await?;
        eprintln!(
            "events on a pod: {:?}",
            nominated
                .iter()
                .map(|e| e.reason.clone())
                .collect::<Vec<_>>()
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_zone_spread_and_anti_affinity() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let tainted =
        json!({ "taints": [{ "key": "dedicated", "value": "special", "effect": "NoSchedule" }] });
    let run = Run::start(
        &bed,
        "nodes-taints",
        &[
            ("plain", json!({}), json!({})),
            ("special", json!({ "weight": 100 }), tainted),
        ],
        |_| {},
    )
    .await?;
    with_run(run, &["plain", "special"], async |run| {
        let ns = &run.ns;
        // The tainted pool has the higher weight, but these pods do not tolerate its taint.
        deploy(ns, TestDeployment::new("spread").replicas(3).request("cpu", "1"), |t| {
            t["spec"]["affinity"] = anti_affinity("spread");
            t["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": { "matchLabels": { "app": "spread" } }
            }]);
        })
        .await?;
        deploy(ns, TestDeployment::new("special").replicas(1).request("cpu", "1"), |t| {
            t["spec"]["tolerations"] = json!([{ "key": "dedicated", "operator": "Equal", "value": "special", "effect": "NoSchedule" }]);
            t["spec"]["nodeSelector"] = json!({ labels::NODEPOOL: run.pool_name("special") });
        })
        .await?;
        ns.wait_deployment_ready("spread", 3, T).await?;
        ns.wait_deployment_ready("special", 1, T).await?;
        let nodes: BTreeMap<String, Node> = run
            .nodes()
            .list(&ListParams::default().labels(labels::NODEPOOL))
            .await?
            .items
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect();
        let spread = placements(ns, "spread").await?;
        let mut zones = BTreeSet::new();
        let mut hosts = BTreeSet::new();
        for (pod, node) in &spread {
            let n = nodes.get(node).with_context(|| format!("{pod} is on {node}, not a node we made"))?;
            ensure!(label(n, labels::NODEPOOL) == run.pool_name("plain"), "{pod} landed on {node} of pool {}", label(n, labels::NODEPOOL));
            ensure!(!n.spec.as_ref().and_then(|s| s.taints.as_ref()).into_iter().flatten().any(|t| t.key == "dedicated"));
            zones.insert(label(n, labels::ZONE).to_string());
            hosts.insert(node.clone());
        }
        ensure!(hosts.len() == 3, "anti-affinity: pods share nodes {spread:?}");
        ensure!(zones == ZONES.iter().map(|z| z.to_string()).collect(), "zone spread: {zones:?}");
        let special = placements(ns, "special").await?;
        for node in special.values() {
            let n = nodes.get(node).context("special pod on a node we did not make")?;
            ensure!(label(n, labels::NODEPOOL) == run.pool_name("special"));
            ensure!(n.spec.as_ref().and_then(|s| s.taints.as_ref()).into_iter().flatten().any(|t| t.key == "dedicated" && t.effect == "NoSchedule"));
        }
        ensure!(run.pool_nodes("special").await?.len() == 1, "one node for the tolerating pod");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_stop_growth() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    // c6i.xlarge (4 CPU) per 3-CPU pod: the 8-CPU limit allows two nodes.
    let run = Run::start(
        &bed,
        "nodes-limits",
        &[("capped", json!({ "limits": { "cpu": "8" } }), json!({}))],
        |_| {},
    )
    .await?;
    with_run(run, &["capped"], async |run| {
        let ns = &run.ns;
        deploy(
            ns,
            TestDeployment::new("big").replicas(4).request("cpu", "3"),
            |t| t["spec"]["affinity"] = anti_affinity("big"),
        )
        .await?;
        run.ready_nodes("capped", 2, T).await?;
        let pool = poll_until(
            "LimitsReached=True on the pool",
            T,
            Duration::from_millis(500),
            || async {
                let p = run.get_pool("capped").await?;
                let c = p.status.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == "LimitsReached")
                        .cloned()
                });
                Ok(c.filter(|c| c.status == "True").map(|c| (p, c)))
            },
        )
        .await?;
        eprintln!("LimitsReached: {}", pool.1.message);
        ensure!(pool.1.message.contains("cpu 8 of 8"), "{}", pool.1.message);
        ns.wait_deployment_ready("big", 4, Duration::from_secs(1))
            .await
            .err()
            .context("all four pods ran despite the limit")?;
        let pending: Vec<Pod> = poll_until(
            "two pods bound, two pending",
            T,
            Duration::from_millis(500),
            || async {
                let pods = ns.pods("app=big").await?;
                let pending: Vec<Pod> = pods
                    .into_iter()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
                    .collect();
                Ok((pending.len() == 2).then_some(pending))
            },
        )
        .await?;
        let ev = poll_until(
            "FailedProvisioning event on a pending pod",
            T,
            Duration::from_millis(500),
            || async {
                let evs = run.events_about(&pending[0].name_any()).await?;
                Ok(evs
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("FailedProvisioning")))
            },
        )
        .await?;
        let note = ev.note.unwrap_or_default();
        ensure!(note.contains("LimitsReached"), "{note}");
        // No growth past the limit, even after more passes.
        tokio::time::sleep(Duration::from_secs(15)).await;
        ensure!(
            run.claims("capped").await?.len() == 2,
            "claims beyond the limit"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_nodeclaim_drains_it_respecting_the_pdb() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let run = Run::start(
        &bed,
        "nodes-drain",
        &[("general", json!({}), json!({}))],
        |_| {},
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        deploy(
            ns,
            TestDeployment::new("db").replicas(2).request("cpu", "3"),
            |t| {
                t["spec"]["affinity"] = anti_affinity("db");
            },
        )
        .await?;
        ns.wait_deployment_ready("db", 2, T).await?;
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": "db" },
            "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "db" } } }
        }))?;
        ns.api::<PodDisruptionBudget>()
            .create(&PostParams::default(), &pdb)
            .await?;
        poll_until("PDB status", T, Duration::from_millis(300), || async {
            let p = ns.api::<PodDisruptionBudget>().get("db").await?;
            Ok(p.status
                .filter(|s| s.current_healthy == 2 && s.disruptions_allowed == 0)
                .map(|_| ()))
        })
        .await?;
        let placed = placements(ns, "db").await?;
        let (victim_pod, victim_node) = placed
            .iter()
            .next()
            .map(|(p, n)| (p.clone(), n.clone()))
            .context("no db pod")?;
        let claim = run
            .claims("general")
            .await?
            .into_iter()
            .find(|c| {
                c.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(victim_node.as_str())
            })
            .context("no NodeClaim for the node")?;
        run.claims_api()
            .delete(&claim.name_any(), &DeleteParams::background())
            .await?;
        // Cordoned and tainted; the eviction is refused by the PDB.
        poll_until(
            "node cordoned and tainted",
            T,
            Duration::from_millis(300),
            || async {
                let n = run.nodes().get(&victim_node).await?;
                let spec = n.spec.unwrap_or_default();
                let tainted = spec
                    .taints
                    .iter()
                    .flatten()
                    .any(|t| t.key == labels::DISRUPTED_TAINT && t.effect == "NoSchedule");
                Ok((spec.unschedulable == Some(true) && tainted).then_some(()))
            },
        )
        .await?;
        poll_until(
            "EvictionBlocked event",
            T,
            Duration::from_millis(500),
            || async {
                let evs = run.events_about(&victim_pod).await?;
                Ok(evs
                    .iter()
                    .any(|e| e.reason.as_deref() == Some("EvictionBlocked"))
                    .then_some(()))
            },
        )
        .await?;
        let p = ns.api::<Pod>().get(&victim_pod).await?;
        ensure!(
            p.metadata.deletion_timestamp.is_none(),
            "the PDB did not hold the eviction"
        );
        ensure!(
            run.nodes().get_opt(&victim_node).await?.is_some(),
            "node deleted before the drain"
        );
        // The PDB allows one: the pod goes (to a node made for it), then the node and the claim.
        let patch = json!({ "spec": { "minAvailable": 1 } });
        ns.api::<PodDisruptionBudget>()
            .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        poll_until(
            "node and NodeClaim gone",
            Duration::from_secs(120),
            Duration::from_millis(500),
            || async {
                let node = run.nodes().get_opt(&victim_node).await?;
                let c = run.claims_api().get_opt(&claim.name_any()).await?;
                Ok((node.is_none() && c.is_none()).then_some(()))
            },
        )
        .await?;
        ns.wait_deployment_ready("db", 2, Duration::from_secs(120))
            .await?;
        let placed = placements(ns, "db").await?;
        ensure!(!placed.values().any(|n| *n == victim_node), "{placed:?}");
        Ok(())
    })
    .await
}

/// One poll of the node being deleted: whether it exists (and is being deleted), and how many
/// of the Deployment's pods are still bound to it and not evicted.
#[derive(Debug, Clone, Copy)]
struct DrainSample {
    node: bool,
    deleting: bool,
    pods_on_it: usize,
}

/// `kubectl delete node` of a node Ballast made goes through the NodeClaim's drain: the Node is
/// held by the termination finalizer, its NodeClaim is deleted, the pods are evicted one at a time
/// within a PDB of maxUnavailable 1 (watchers see available replicas never below replicas − 1)
/// and run on a replacement; then the Node and the NodeClaim go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_node_drains_it_like_its_nodeclaim() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let run = Run::start(
        &bed,
        "nodes-nodedel",
        &[("general", json!({}), json!({}))],
        |_| {},
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        // Three 1-CPU pods: one c6i.xlarge ($0.17/h) holds them, cheaper than three c6i.large.
        ns.create_deployment(TestDeployment::new("web").replicas(3).request("cpu", "1"))
            .await?;
        ns.wait_deployment_ready("web", 3, T).await?;
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for n in placements(ns, "web").await?.into_values() {
            *per_node.entry(n).or_default() += 1;
        }
        let (victim, on_victim) = per_node
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(n, c)| (n.clone(), *c))
            .context("no web pod placed")?;
        ensure!(
            on_victim >= 2,
            "no node holds two pods to drain: {per_node:?}"
        );
        // The node carries the termination finalizer once registered.
        poll_until(
            "termination finalizer on the node",
            T,
            Duration::from_millis(300),
            || async {
                let n = run.nodes().get(&victim).await?;
                Ok(n.finalizers()
                    .iter()
                    .any(|f| f == labels::TERMINATION_FINALIZER)
                    .then_some(()))
            },
        )
        .await?;
        let claim = run
            .claims("general")
            .await?
            .into_iter()
            .find(|c| c.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&victim))
            .context("no NodeClaim for the node")?;
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": "web" },
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "web" } } }
        }))?;
        ns.api::<PodDisruptionBudget>()
            .create(&PostParams::default(), &pdb)
            .await?;
        poll_until("PDB status", T, Duration::from_millis(300), || async {
            let p = ns.api::<PodDisruptionBudget>().get("web").await?;
            Ok(p.status
                .filter(|s| s.current_healthy == 3 && s.disruptions_allowed == 1)
                .map(|_| ()))
        })
        .await?;
        let deployment_watch = watch_named::<Deployment>(ns, "web", available);
        let pdb_watch = watch_named::<PodDisruptionBudget>(ns, "web", pdb_healthy);

        run.nodes()
            .delete(&victim, &DeleteParams::background())
            .await?;
        let n = run
            .nodes()
            .get_opt(&victim)
            .await?
            .context("the node went at once: no finalizer held it")?;
        ensure!(n.metadata.deletion_timestamp.is_some());

        let timeline = std::sync::Mutex::new(Vec::<DrainSample>::new());
        let replacement = poll_until(
            "node and NodeClaim gone, the pods elsewhere",
            Duration::from_secs(240),
            Duration::from_millis(250),
            || async {
                let node = run.nodes().get_opt(&victim).await?;
                let pods = ns.pods("app=web").await?;
                let pods_on_it = pods
                    .iter()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                                == Some(victim.as_str())
                    })
                    .count();
                timeline.lock().expect("lock").push(DrainSample {
                    node: node.is_some(),
                    deleting: node
                        .as_ref()
                        .is_some_and(|n| n.metadata.deletion_timestamp.is_some()),
                    pods_on_it,
                });
                let claim_gone = run.claims_api().get_opt(&claim.name_any()).await?.is_none();
                let placed = placements(ns, "web").await?;
                let ready = available(&ns.api::<Deployment>().get("web").await?) == 3;
                Ok((node.is_none()
                    && claim_gone
                    && ready
                    && placed.len() == 3
                    && placed.values().all(|n| *n != victim))
                .then(|| placed.into_values().collect::<BTreeSet<String>>()))
            },
        )
        .await?;
        let timeline = timeline.into_inner().expect("lock");
        eprintln!("drain timeline: {timeline:?}; pods now on {replacement:?}");
        ensure!(
            timeline.iter().all(|s| !s.node || s.deleting),
            "the node lost its deletion timestamp: {timeline:?}"
        );
        ensure!(
            timeline.iter().all(|s| s.node || s.pods_on_it == 0),
            "the node went while pods were still on it: {timeline:?}"
        );
        ensure!(
            timeline.iter().any(|s| s.node && s.pods_on_it > 0),
            "the node was never seen held with its pods: {timeline:?}"
        );
        // Pods were evicted (not left to the pod garbage collector), the PDB holding back all
        // but one at a time.
        let blocked = poll_until("EvictionBlocked events", T, Duration::from_millis(500), || async {
            let evs: Api<Event> = Api::namespaced(run.client.clone(), ns.name());
            let n = evs
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("EvictionBlocked"))
                .count();
            Ok((n > 0).then_some(n))
        })
        .await?;
        let seen = deployment_watch.samples();
        let healthy = pdb_watch.samples();
        eprintln!(
            "available replicas seen: {seen:?}; PDB healthy seen: {healthy:?}; {blocked} EvictionBlocked events"
        );
        ensure!(
            !seen.is_empty() && !healthy.is_empty(),
            "the watchers saw nothing"
        );
        ensure!(
            seen.iter().all(|a| *a >= 2),
            "available replicas fell below replicas - 1: {seen:?}"
        );
        ensure!(
            healthy.iter().all(|h| *h >= 2),
            "the PDB's healthy pods fell below replicas - 1: {healthy:?}"
        );
        // Events on the node: its NodeClaim deleted, then the finalizer removed by termination.
        let evs = cluster_events_about(&run.client, &victim).await?;
        let reasons: Vec<String> = evs.iter().filter_map(|e| e.reason.clone()).collect();
        ensure!(
            reasons.iter().any(|r| r == "DeletingNodeClaim")
                && reasons.iter().any(|r| r == "Terminated"),
            "events on the node: {reasons:?}"
        );
        let evs = cluster_events_about(&run.client, &claim.name_any()).await?;
        ensure!(
            evs.iter()
                .any(|e| e.reason.as_deref() == Some("NodeDeleted")),
            "no NodeDeleted event on the NodeClaim"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_pod_makes_no_node() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let run = Run::start(
        &bed,
        "nodes-unsat",
        &[("general", json!({}), json!({}))],
        |_| {},
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        deploy(ns, TestDeployment::new("nowhere").replicas(1), |t| {
            t["spec"]["nodeSelector"] = json!({ "nodes.ballast.dev/instance-family": "z9" });
        })
        .await?;
        let pod = poll_until("the pod", T, Duration::from_millis(300), || async {
            Ok(ns.pods("app=nowhere").await?.into_iter().next())
        })
        .await?;
        let ev = poll_until(
            "NoCompatibleNodePool event",
            T,
            Duration::from_millis(500),
            || async {
                let evs = run.events_about(&pod.name_any()).await?;
                Ok(evs
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("NoCompatibleNodePool")))
            },
        )
        .await?;
        let note = ev.note.unwrap_or_default();
        eprintln!("NoCompatibleNodePool: {note}");
        ensure!(note.contains("instance-family"), "{note}");
        ensure!(ev.type_.as_deref() == Some("Warning"));
        tokio::time::sleep(Duration::from_secs(12)).await;
        ensure!(
            run.claims("general").await?.is_empty(),
            "a NodeClaim was made for an unsatisfiable pod"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn karpenter_label_spellings_select_our_nodes() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let both = json!({ "requirements": [
        { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["spot", "on-demand"] },
        { "key": "nodes.ballast.dev/instance-family", "operator": "In", "values": ["c6i", "m6i", "r6i"] }
    ] });
    let run = Run::start(&bed, "nodes-karp", &[("general", json!({}), both)], |_| {}).await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        // Written for Karpenter: its keys only.
        deploy(ns, TestDeployment::new("karp").replicas(2), |t| {
            t["spec"]["nodeSelector"] = json!({
                "karpenter.sh/capacity-type": "on-demand",
                "karpenter.k8s.aws/instance-family": "m6i",
            });
        })
        .await?;
        let placed = poll_until("both pods bound", T, Duration::from_millis(500), || async {
            let p = placements(ns, "karp").await?;
            Ok((p.len() == 2).then_some(p))
        })
        .await?;
        let nodes = run.pool_nodes("general").await?;
        ensure!(!nodes.is_empty(), "no node was made");
        for n in &nodes {
            for (key, want) in [
                ("karpenter.sh/capacity-type", "on-demand"),
                (labels::CAPACITY_TYPE, "on-demand"),
                ("karpenter.k8s.aws/instance-family", "m6i"),
                ("nodes.ballast.dev/instance-family", "m6i"),
                ("karpenter.sh/nodepool", run.pool_name("general").as_str()),
            ] {
                ensure!(
                    label(n, key) == want,
                    "{}: {key}={:?}",
                    n.name_any(),
                    label(n, key)
                );
            }
        }
        let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        ensure!(
            placed.values().all(|n| names.contains(n)),
            "{placed:?} not on {names:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_capacity_falls_back_to_the_next_offering() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    init_logs();
    let client = bed.client();
    install_crds(&client).await?;
    let ns = bed.namespace("nodes-ice").await?;
    let class: KwokNodeClass = serde_json::from_value(json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "KwokNodeClass",
        "metadata": { "name": ns.name() }, "spec": { "registrationDelay": "2s" },
    }))?;
    Api::<KwokNodeClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await?;
    let run = Run {
        ns,
        client: client.clone(),
        config: bed.kube_config().clone(),
        controller: tokio::spawn(async { Ok(()) }),
    };
    let pool = run.pool("general", json!({}), json!({}));
    Api::<NodePool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await?;
    let provider =
        KwokProvider::from_catalog_file(client.clone(), catalog()).map_err(anyhow::Error::msg)?;
    // On-demand c6i.xlarge (the cheapest for a 3-CPU pod) has no capacity in any zone.
    provider.simulate_insufficient_capacity(
        ZONES
            .iter()
            .map(|z| OfferingKey::new("c6i.xlarge", z, "on-demand")),
    );
    let o = NodesOptions {
        nodepool_selector: Some(format!("{RUN_LABEL}={}", run.ns.name())),
        namespaces: vec![run.ns.name().to_string()],
        disruption: None,
        ..Default::default()
    };
    let run = run.with_controller(provider, o);
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        ns.create_deployment(TestDeployment::new("web").replicas(1).request("cpu", "3"))
            .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let nodes = run.ready_nodes("general", 1, T).await?;
        ensure!(
            label(&nodes[0], labels::INSTANCE_TYPE) == "m6i.xlarge",
            "fell back to {}",
            label(&nodes[0], labels::INSTANCE_TYPE)
        );
        let claim = &run.claims("general").await?[0];
        ensure!(
            claim.labels()[labels::INSTANCE_TYPE] == "m6i.xlarge",
            "claim labels say what launched"
        );
        // NodeClaims are cluster-scoped: their events go to the default namespace.
        let events: Api<Event> = Api::namespaced(run.client.clone(), "default");
        let ice = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .any(|e| {
                e.reason.as_deref() == Some("InsufficientCapacity")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some(claim.name_any().as_str())
            });
        ensure!(ice, "no InsufficientCapacity event on the NodeClaim");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_garbage_collected() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let run = Run::start(
        &bed,
        "nodes-gc",
        &[("general", json!({}), json!({}))],
        |o| {
            o.gc_grace = Duration::from_secs(3);
            o.gc_interval = Duration::from_secs(2);
        },
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        // An instance launched behind the controllers' back: a kwok node of the pool, no NodeClaim.
        let provider = KwokProvider::from_catalog_file(run.client.clone(), catalog())
            .map_err(anyhow::Error::msg)?;
        let types = provider.instance_types().await?;
        let t = types
            .iter()
            .find(|t| t.name == "c6i.large")
            .context("c6i.large")?
            .clone();
        let mut ghost = NodeClaim::new(
            &format!("{}-ghost", run.pool_name("general")),
            run.get_pool("general")
                .await?
                .spec
                .template
                .spec
                .clone()
                .into_claim_spec(),
        );
        ghost.metadata.labels = Some(BTreeMap::from([(
            labels::NODEPOOL.to_string(),
            run.pool_name("general"),
        )]));
        let inst: Instance = provider
            .create(&LaunchRequest {
                node_claim: ghost.clone(),
                offerings: vec![LaunchOffering {
                    instance_type: t,
                    zone: "us-east-1a".into(),
                    capacity_type: "on-demand".into(),
                    price: 0.085,
                }],
            })
            .await?;
        let ghost_node = ghost.name_any();
        ensure!(run.nodes().get_opt(&ghost_node).await?.is_some());
        // It holds our termination finalizer (as if its NodeClaim had vanished without a
        // termination): it must not keep the node once the instance is deleted.
        let patch = json!({ "metadata": { "finalizers": [labels::TERMINATION_FINALIZER] } });
        run.nodes()
            .patch(&ghost_node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        poll_until(
            "orphaned instance deleted",
            T,
            Duration::from_millis(500),
            || async {
                Ok(run
                    .nodes()
                    .get_opt(&ghost_node)
                    .await?
                    .is_none()
                    .then_some(()))
            },
        )
        .await?;
        let _ = inst;
        poll_until(
            "TerminationFinalizerRemoved event on the orphaned node",
            T,
            Duration::from_millis(500),
            || async {
                let evs = cluster_events_about(&run.client, &ghost_node).await?;
                Ok(evs
                    .iter()
                    .any(|e| e.reason.as_deref() == Some("TerminationFinalizerRemoved"))
                    .then_some(()))
            },
        )
        .await?;
        // A NodeClaim whose node (on kwok: its instance) is deleted from under it is deleted,
        // and its pod gets a new node. (The node's termination finalizer turns this into the
        // NodeClaim's drain; garbage collection deletes it too once the instance is gone.)
        ns.create_deployment(TestDeployment::new("web").replicas(1).request("cpu", "3"))
            .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let node = run.ready_nodes("general", 1, T).await?.remove(0);
        let claim = run.claims("general").await?.remove(0);
        run.nodes()
            .delete(&node.name_any(), &DeleteParams::background())
            .await?;
        poll_until(
            "NodeClaim of the vanished instance deleted",
            T,
            Duration::from_millis(500),
            || async {
                Ok(run
                    .claims_api()
                    .get_opt(&claim.name_any())
                    .await?
                    .is_none()
                    .then_some(()))
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        Ok(())
    })
    .await
}

trait IntoClaimSpec {
    fn into_claim_spec(self) -> ballast_api::nodes::NodeClaimSpec;
}

impl IntoClaimSpec for ballast_api::nodes::NodeClaimTemplateSpec {
    fn into_claim_spec(self) -> ballast_api::nodes::NodeClaimSpec {
        ballast_api::nodes::NodeClaimSpec {
            requirements: self.requirements,
            taints: self.taints,
            startup_taints: self.startup_taints,
            node_class_ref: self.node_class_ref,
            ..Default::default()
        }
    }
}

/// The value of one series of a counter family (0 when it has none yet).
fn count<const N: usize>(
    family: &prometheus_client::metrics::family::Family<
        ballast_controller::metric_labels::Labels,
        prometheus_client::metrics::counter::Counter,
    >,
    pairs: [(&'static str, &str); N],
) -> u64 {
    family.get(&metric_labels(pairs)).map_or(0, |c| c.get())
}

fn disruption_on(o: &mut NodesOptions) {
    o.disruption = Some(DisruptionShellOptions {
        poll: Duration::from_secs(2),
        validation_delay: Duration::from_secs(3),
        replacement_timeout: Duration::from_secs(90),
        ..Default::default()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptiness_removes_empty_nodes() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let d = json!({ "disruption": { "consolidateAfter": "5s", "budgets": [{ "nodes": "100%" }] } });
    let metrics = NodesMetrics::default();
    let run = Run::start(&bed, "nodes-empty", &[("general", d, json!({}))], |o| {
        disruption_on(o);
        o.metrics = metrics.clone();
    })
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        deploy(
            ns,
            TestDeployment::new("web").replicas(3).request("cpu", "3"),
            |t| {
                t["spec"]["affinity"] = anti_affinity("web");
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 3, T).await?;
        run.ready_nodes("general", 3, T).await?;
        ns.scale_deployment("web", 1).await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        let kept = placements(ns, "web")
            .await?
            .into_values()
            .next()
            .context("web pod")?;
        poll_until(
            "empty nodes removed",
            Duration::from_secs(120),
            Duration::from_millis(500),
            || async {
                let nodes = run.pool_nodes("general").await?;
                let claims = run.claims("general").await?;
                Ok((nodes.len() == 1 && claims.len() == 1).then_some(()))
            },
        )
        .await?;
        let left = run.pool_nodes("general").await?;
        ensure!(
            left[0].name_any() == kept,
            "the node with the pod went: {} left, pod on {kept}",
            left[0].name_any()
        );
        // The metrics say the same: emptiness deleted the two NodeClaims.
        let pool = run.pool_name("general");
        let (decisions, terminated) = (
            &metrics.disruption_decisions,
            &metrics.nodeclaims_terminated,
        );
        let done = [
            ("method", "emptiness"),
            ("decision", "delete"),
            ("result", "disrupted"),
        ];
        ensure!(count(decisions, done) >= 1, "no emptiness decision counted");
        let gone = count(terminated, [("nodepool", &pool), ("reason", "emptiness")]);
        ensure!(
            gone == 2,
            "{gone} NodeClaims counted terminated by emptiness"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_replaces_nodes_but_do_not_disrupt_pins() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    // No consolidation: only drift acts.
    let d = json!({ "disruption": { "consolidateAfter": "Never", "budgets": [{ "nodes": "1" }] } });
    let run = Run::start(
        &bed,
        "nodes-drift",
        &[("general", d, json!({}))],
        disruption_on,
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        // One pod per node (anti-affinity on a label both carry).
        let apart = json!({ "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [
            { "labelSelector": { "matchLabels": { "group": "drift" } }, "topologyKey": "kubernetes.io/hostname" }
        ] } });
        let a = apart.clone();
        deploy(ns, TestDeployment::new("pinned").replicas(1).request("cpu", "3").label("group", "drift"), |t| {
            t["metadata"]["annotations"] = json!({ labels::DO_NOT_DISRUPT: "true" });
            t["spec"]["affinity"] = a;
        })
        .await?;
        deploy(ns, TestDeployment::new("free").replicas(1).request("cpu", "3").label("group", "drift"), |t| {
            t["spec"]["affinity"] = apart;
        })
        .await?;
        ns.wait_deployment_ready("pinned", 1, T).await?;
        ns.wait_deployment_ready("free", 1, T).await?;
        run.ready_nodes("general", 2, T).await?;
        let pinned_node = placements(ns, "pinned").await?.into_values().next().context("pinned pod")?;
        let free_node = placements(ns, "free").await?.into_values().next().context("free pod")?;
        ensure!(pinned_node != free_node);
        // Change the template: every node drifts.
        let patch = json!({ "spec": { "template": { "metadata": { "annotations": { "example.com/revision": "2" } } } } });
        Api::<NodePool>::all(run.client.clone())
            .patch(&run.pool_name("general"), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        poll_until("the free pod's node replaced", Duration::from_secs(150), Duration::from_millis(500), || async {
            let gone = run.nodes().get_opt(&free_node).await?.is_none();
            let now = placements(ns, "free").await?.into_values().next();
            Ok((gone && now.as_ref().is_some_and(|n| *n != free_node && *n != pinned_node)).then_some(()))
        })
        .await?;
        ns.wait_deployment_ready("free", 1, T).await?;
        tokio::time::sleep(Duration::from_secs(15)).await;
        ensure!(run.nodes().get_opt(&pinned_node).await?.is_some(), "the do-not-disrupt pod's node was disrupted");
        ensure!(placements(ns, "pinned").await?.values().all(|n| *n == pinned_node));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consolidation_leaves_one_cheapest_node() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let d = json!({ "disruption": { "consolidateAfter": "5s", "budgets": [{ "nodes": "100%" }] } });
    let run = Run::start(
        &bed,
        "nodes-consol",
        &[("general", d, json!({}))],
        disruption_on,
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        // Two 1.5-CPU pods: one c6i.xlarge or two c6i.large (same price). Scaled to one pod, the
        // cheapest home is a single c6i.large: an empty node goes (emptiness) or the xlarge is
        // replaced by a large (single-node consolidation, replacement Initialized first).
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(2)
                .request("cpu", "1500m"),
        )
        .await?;
        ns.wait_deployment_ready("web", 2, T).await?;
        ns.scale_deployment("web", 1).await?;
        poll_until(
            "one c6i.large left, running the pod",
            Duration::from_secs(150),
            Duration::from_millis(500),
            || async {
                let nodes = run.pool_nodes("general").await?;
                let claims = run.claims("general").await?;
                let on: Vec<String> = placements(ns, "web").await?.into_values().collect();
                Ok((nodes.len() == 1
                    && claims.len() == 1
                    && label(&nodes[0], labels::INSTANCE_TYPE) == "c6i.large"
                    && on == vec![nodes[0].name_any()])
                .then_some(()))
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        Ok(())
    })
    .await
}

// ---- watchers: every state seen, not polls ------------------------------------------------------

/// One observed state of a node (or its deletion).
#[derive(Debug, Clone)]
struct NodeSample {
    name: String,
    gone: bool,
    cordoned: bool,
    tainted: bool,
    deleting: bool,
}

impl NodeSample {
    fn of(n: &Node, gone: bool) -> NodeSample {
        let spec = n.spec.clone().unwrap_or_default();
        NodeSample {
            name: n.name_any(),
            gone,
            cordoned: spec.unschedulable == Some(true),
            tainted: spec
                .taints
                .iter()
                .flatten()
                .any(|t| t.key == labels::DISRUPTED_TAINT && t.effect == "NoSchedule"),
            deleting: n.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Being disrupted: cordoned, tainted or deleted, and not gone yet.
    fn disrupted(&self) -> bool {
        !self.gone && (self.cordoned || self.tainted || self.deleting)
    }
}

/// Records every watch event of a set of objects until aborted.
struct Recorder<S> {
    samples: std::sync::Arc<std::sync::Mutex<Vec<S>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S: Clone + Send + 'static> Recorder<S> {
    /// Watches `api` (narrowed by `cfg`) and keeps `sample(object, deleted)` of every event.
    fn start<K>(
        api: Api<K>,
        cfg: kube::runtime::watcher::Config,
        sample: impl Fn(&K, bool) -> S + Send + 'static,
    ) -> Recorder<S>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        K::DynamicType: Default,
    {
        use futures::StreamExt;
        use kube::runtime::watcher::{Event as W, watcher};
        let samples = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let out = samples.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, cfg).boxed();
            while let Some(ev) = stream.next().await {
                let s = match ev {
                    Ok(W::Apply(o) | W::InitApply(o)) => sample(&o, false),
                    Ok(W::Delete(o)) => sample(&o, true),
                    _ => continue,
                };
                out.lock().expect("lock").push(s);
            }
        });
        Recorder { samples, task }
    }

    fn samples(&self) -> Vec<S> {
        self.samples.lock().expect("lock").clone()
    }
}

impl<S> Drop for Recorder<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every state of one pool's nodes.
fn watch_pool_nodes(run: &Run, suffix: &str) -> Recorder<NodeSample> {
    let cfg = kube::runtime::watcher::Config::default().labels(&format!(
        "{}={}",
        labels::NODEPOOL,
        run.pool_name(suffix)
    ));
    Recorder::start(run.nodes(), cfg, NodeSample::of)
}

/// The most nodes of `among` disrupted at once over the samples, and the nodes ever disrupted.
fn most_disrupted_at_once(
    samples: &[NodeSample],
    among: &BTreeSet<String>,
) -> (usize, BTreeSet<String>) {
    let mut now: BTreeMap<String, bool> = BTreeMap::new();
    let mut most = 0;
    let mut ever = BTreeSet::new();
    for s in samples.iter().filter(|s| among.contains(&s.name)) {
        now.insert(s.name.clone(), s.disrupted());
        if s.disrupted() {
            ever.insert(s.name.clone());
        }
        most = most.max(now.values().filter(|d| **d).count());
    }
    (most, ever)
}

/// Every watch event of one named object of the namespace, as `f` of it.
fn watch_named<K>(ns: &TestNamespace, name: &str, f: fn(&K) -> i32) -> Recorder<i32>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let cfg = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    Recorder::start(
        ns.api::<K>(),
        cfg,
        move |o, deleted| if deleted { -1 } else { f(o) },
    )
}

fn available(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn pdb_healthy(p: &PodDisruptionBudget) -> i32 {
    p.status.as_ref().map(|s| s.current_healthy).unwrap_or(0)
}

/// A scale-down leaves two half-empty nodes: with a PDB of maxUnavailable 1 in force, emptiness
/// removes the empty nodes and multi-node consolidation replaces the pair by one cheaper node,
/// while watchers see the Deployment's available replicas (and the PDB's healthy count) at
/// every change and never below replicas − 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_consolidates_a_half_empty_pair_within_the_pdb() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    // No consolidation while the nodes are made; turned on after the scale-down.
    let d =
        json!({ "disruption": { "consolidateAfter": "Never", "budgets": [{ "nodes": "100%" }] } });
    let run = Run::start(
        &bed,
        "nodes-pair",
        &[("general", d, json!({}))],
        disruption_on,
    )
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        // 1 CPU + 3500Mi: too much memory for a c6i.large, and two do not share an m6i.large
        // (1930m allocatable): every pod gets its own m6i.large ($0.096/h). Two such pods fit one
        // c6i.xlarge ($0.17/h < 2 × $0.096/h), and neither half-empty m6i.large can take the
        // other's pod: only a replacement consolidates the pair.
        ns.create_deployment(
            TestDeployment::new("web")
                .replicas(1)
                .request("cpu", "1")
                .request("memory", "3500Mi"),
        )
        .await?;
        for n in 1..=4 {
            if n > 1 {
                ns.scale_deployment("web", n).await?;
            }
            ns.wait_deployment_ready("web", n, T).await?;
            run.ready_nodes("general", n as usize, T).await?;
        }
        let nodes = run.pool_nodes("general").await?;
        ensure!(
            nodes
                .iter()
                .all(|n| label(n, labels::INSTANCE_TYPE) == "m6i.large"),
            "scale-up made {:?}",
            nodes
                .iter()
                .map(|n| label(n, labels::INSTANCE_TYPE))
                .collect::<Vec<_>>()
        );
        let originals: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        // Down to two: each node held one pod, so two nodes are empty and two half-empty.
        ns.scale_deployment("web", 2).await?;
        ns.wait_deployment_ready("web", 2, T).await?;
        let kept: BTreeSet<String> = poll_until(
            "two web pods left",
            T,
            Duration::from_millis(300),
            || async {
                let p = placements(ns, "web").await?;
                Ok((p.len() == 2).then(|| p.into_values().collect::<BTreeSet<String>>()))
            },
        )
        .await?;
        ensure!(kept.len() == 2, "the two pods share a node: {kept:?}");
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": { "name": "web" },
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "web" } } }
        }))?;
        ns.api::<PodDisruptionBudget>()
            .create(&PostParams::default(), &pdb)
            .await?;
        poll_until("PDB status", T, Duration::from_millis(300), || async {
            let p = ns.api::<PodDisruptionBudget>().get("web").await?;
            Ok(p.status
                .filter(|s| s.current_healthy == 2 && s.disruptions_allowed == 1)
                .map(|_| ()))
        })
        .await?;
        let deployment_watch = watch_named::<Deployment>(ns, "web", available);
        let pdb_watch = watch_named::<PodDisruptionBudget>(ns, "web", pdb_healthy);
        let node_watch = watch_pool_nodes(run, "general");
        let patch = json!({ "spec": { "disruption": { "consolidateAfter": "5s" } } });
        Api::<NodePool>::all(run.client.clone())
            .patch(
                &run.pool_name("general"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        let last = poll_until(
            "one c6i.xlarge left, running both pods",
            Duration::from_secs(240),
            Duration::from_millis(500),
            || async {
                let nodes = run.pool_nodes("general").await?;
                let claims = run.claims("general").await?;
                let on: BTreeSet<String> = placements(ns, "web").await?.into_values().collect();
                let ready = available(&ns.api::<Deployment>().get("web").await?) == 2;
                Ok((nodes.len() == 1
                    && claims.len() == 1
                    && label(&nodes[0], labels::INSTANCE_TYPE) == "c6i.xlarge"
                    && on.len() == 1
                    && on.contains(&nodes[0].name_any())
                    && ready)
                    .then(|| nodes[0].name_any()))
            },
        )
        .await?;
        ensure!(
            !originals.contains(&last),
            "the pair was not replaced: {last} is an original node"
        );
        let seen = deployment_watch.samples();
        let healthy = pdb_watch.samples();
        eprintln!("available replicas seen: {seen:?}; PDB healthy seen: {healthy:?}");
        ensure!(
            !seen.is_empty() && !healthy.is_empty(),
            "the watchers saw nothing"
        );
        ensure!(
            seen.iter().all(|a| *a >= 1),
            "available replicas fell below replicas - 1: {seen:?}"
        );
        ensure!(
            healthy.iter().all(|h| *h >= 1),
            "the PDB's healthy pods fell below replicas - 1: {healthy:?}"
        );
        // Every original node went through the disruption taint (emptiness and consolidation
        // both taint before deleting) and is gone.
        let (_, ever) = most_disrupted_at_once(&node_watch.samples(), &originals);
        ensure!(ever == originals, "disrupted {ever:?} of {originals:?}");
        for n in &originals {
            ensure!(run.nodes().get_opt(n).await?.is_none(), "{n} still exists");
        }
        Ok(())
    })
    .await
}

/// A template change drifts three nodes; a budget of one node replaces them one at a time: a
/// watch on the nodes never sees two of the original nodes disrupted at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_replaces_nodes_one_at_a_time_within_the_budget() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let d = json!({ "disruption": { "consolidateAfter": "Never", "budgets": [{ "nodes": "1" }] } });
    let metrics = NodesMetrics::default();
    let run = Run::start(&bed, "nodes-budget", &[("general", d, json!({}))], |o| {
        disruption_on(o);
        o.metrics = metrics.clone();
    })
    .await?;
    with_run(run, &["general"], async |run| {
        let ns = &run.ns;
        deploy(
            ns,
            TestDeployment::new("web").replicas(3).request("cpu", "3"),
            |t| {
                t["spec"]["affinity"] = anti_affinity("web");
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 3, T).await?;
        let originals: BTreeSet<String> = run
            .ready_nodes("general", 3, T)
            .await?
            .iter()
            .map(|n| n.name_any())
            .collect();
        let node_watch = watch_pool_nodes(run, "general");
        let patch = json!({ "spec": { "template": { "metadata": { "annotations": { "example.com/revision": "2" } } } } });
        Api::<NodePool>::all(run.client.clone())
            .patch(&run.pool_name("general"), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        poll_until(
            "every original node replaced",
            Duration::from_secs(300),
            Duration::from_millis(500),
            || async {
                let nodes = run.pool_nodes("general").await?;
                let old = nodes.iter().filter(|n| originals.contains(&n.name_any())).count();
                let ready = available(&ns.api::<Deployment>().get("web").await?) == 3;
                Ok((old == 0 && nodes.len() == 3 && nodes.iter().all(ready_node) && ready).then_some(()))
            },
        )
        .await?;
        let (most, ever) = most_disrupted_at_once(&node_watch.samples(), &originals);
        ensure!(ever == originals, "disrupted {ever:?} of {originals:?}");
        ensure!(most == 1, "{most} nodes disrupted at once with a budget of 1");
        ns.wait_deployment_ready("web", 3, T).await?;
        // The metrics: three drift replacements (the budget's blocks are printed: kwok drains a
        // node before the next pass, so the budget seldom has to hold one back).
        let pool = run.pool_name("general");
        let m = &metrics;
        let created = count(&m.nodeclaims_created, [("nodepool", &pool), ("reason", "drift")]);
        let terminated = count(&m.nodeclaims_terminated, [("nodepool", &pool), ("reason", "drift")]);
        let blocks = count(&m.budget_blocks, [("nodepool", &pool), ("reason", "Drifted")]);
        println!("drift: {created} replacements created, {terminated} terminated, {blocks} budget blocks");
        ensure!(created == 3 && terminated == 3, "{created} created, {terminated} terminated");
        Ok(())
    })
    .await
}

fn ready_node(n: &Node) -> bool {
    ready(n)
}

// ---- interruption queue -------------------------------------------------------------------------

fn aws_testing() -> ballast_metrics::AwsCredentials {
    ballast_metrics::AwsCredentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        session_token: None,
    }
}

/// An EventBridge event as EC2 publishes it, for `instance`.
fn ec2_event(detail_type: &str, instance: &str, detail: Value) -> String {
    let mut d = json!({ "instance-id": instance });
    for (k, v) in detail.as_object().into_iter().flatten() {
        d[k] = v.clone();
    }
    json!({
        "version": "0",
        "id": format!("test-{instance}-{}", detail_type.len()),
        "detail-type": detail_type,
        "source": "aws.ec2",
        "account": "123456789012",
        "time": jiff::Timestamp::now().to_string(),
        "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1b:instance/{instance}")],
        "detail": d,
    })
    .to_string()
}

/// Events (events.k8s.io) about a cluster-scoped object (published in `default`).
async fn cluster_events_about(client: &Client, name: &str) -> Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

/// Spot interruption messages from an SQS queue on moto: a garbage message, one for an unknown
/// instance and a rebalance recommendation are consumed without action (the loop goes on); a spot
/// interruption warning naming a node's instance cordons and taints it, marks its offering
/// unavailable, deletes its NodeClaim (drained), and its pod runs on a replacement of another
/// offering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_interruption_from_sqs_drains_and_replaces_the_node() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let moto = service_or_skip!(bed.moto_url(), Ok(()));
    let queue_name = format!(
        "ballast-interruption-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond()
    );
    let queue =
        ballast_metrics::create_queue(&moto, "us-east-1", &queue_name, &aws_testing()).await?;
    ensure!(
        queue.starts_with("http://127.0.0.1"),
        "queue URL {queue} is not loopback"
    );
    let metrics = InterruptionMetrics::default();
    let (m, q) = (metrics.clone(), queue.clone());
    let spot_only = json!({ "requirements": [
        { "key": labels::CAPACITY_TYPE, "operator": "In", "values": ["spot"] },
        { "key": "nodes.ballast.dev/instance-family", "operator": "In", "values": ["c6i"] }
    ] });
    let run = Run::start(
        &bed,
        "nodes-spot",
        &[("spot", json!({}), spot_only)],
        move |o| {
            let mut i = InterruptionOptions::new(q);
            i.credentials = Some(aws_testing());
            i.region = Some("us-east-1".into());
            i.wait = Duration::from_secs(2);
            i.metrics = m;
            o.interruption = Some(i);
        },
    )
    .await?;
    let sqs = ballast_metrics::SqsClient::new(&queue, aws_testing(), Default::default())?;
    let result = with_run(run, &["spot"], async |run| {
        let ns = &run.ns;
        deploy(
            ns,
            TestDeployment::new("web").replicas(2).request("cpu", "3"),
            |t| {
                t["spec"]["affinity"] = anti_affinity("web");
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 2, T).await?;
        let nodes = run.ready_nodes("spot", 2, T).await?;
        ensure!(
            nodes
                .iter()
                .all(|n| label(n, labels::CAPACITY_TYPE) == "spot"),
            "not spot nodes"
        );
        let (victim, other) = (nodes[0].clone(), nodes[1].clone());
        let instance = |n: &Node| -> Result<String> {
            let pid = n
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .context("node without providerID")?;
            Ok(ballast_cloud::interruption::instance_id(&pid).to_owned())
        };
        let claim_of = async |n: &Node| -> Result<NodeClaim> {
            run.claims("spot")
                .await?
                .into_iter()
                .find(|c| {
                    c.status.as_ref().and_then(|s| s.node_name.as_deref())
                        == Some(n.name_any().as_str())
                })
                .with_context(|| format!("no NodeClaim for node {}", n.name_any()))
        };
        let victim_claim = claim_of(&victim).await?;
        let other_claim = claim_of(&other).await?;
        let node_watch = watch_pool_nodes(run, "spot");

        // Nothing to act on: garbage, an unknown instance, a rebalance recommendation.
        sqs.send("this is not an EventBridge event").await?;
        sqs.send(&ec2_event(
            "EC2 Spot Instance Interruption Warning",
            "i-0000000000000dead",
            json!({ "instance-action": "terminate" }),
        ))
        .await?;
        sqs.send(&ec2_event(
            "EC2 Instance Rebalance Recommendation",
            &instance(&other)?,
            json!({}),
        ))
        .await?;
        poll_until(
            "three messages handled",
            T,
            Duration::from_millis(300),
            || async {
                Ok((metrics.get("unparseable", "not_understood") == 1
                    && metrics.get("spot_interruption", "unknown_instance") == 1
                    && metrics.get("rebalance_recommendation", "notified") == 1)
                    .then_some(()))
            },
        )
        .await?;
        poll_until(
            "the queue emptied",
            T,
            Duration::from_millis(500),
            || async { Ok((sqs.depth().await? == (0, 0)).then_some(())) },
        )
        .await?;
        poll_until(
            "SpotRebalanceRecommendation event",
            T,
            Duration::from_millis(500),
            || async {
                let evs = cluster_events_about(&run.client, &other_claim.name_any()).await?;
                Ok(evs
                    .iter()
                    .any(|e| e.reason.as_deref() == Some("SpotRebalanceRecommendation"))
                    .then_some(()))
            },
        )
        .await?;
        ensure!(
            node_watch.samples().iter().all(|s| !s.disrupted()),
            "a node was disrupted before the interruption: {:?}",
            node_watch.samples()
        );

        // The interruption.
        let interrupted = cloud_offering(&victim);
        sqs.send(&ec2_event(
            "EC2 Spot Instance Interruption Warning",
            &instance(&victim)?,
            json!({ "instance-action": "terminate" }),
        ))
        .await?;
        let replacement = poll_until(
            "the interrupted node replaced",
            Duration::from_secs(180),
            Duration::from_millis(500),
            || async {
                let node_gone = run.nodes().get_opt(&victim.name_any()).await?.is_none();
                let claim_gone = run
                    .claims_api()
                    .get_opt(&victim_claim.name_any())
                    .await?
                    .is_none();
                let placed = placements(ns, "web").await?;
                let ready = available(&ns.api::<Deployment>().get("web").await?) == 2;
                let elsewhere =
                    placed.len() == 2 && placed.values().all(|n| *n != victim.name_any());
                let new = placed.values().find(|n| **n != other.name_any()).cloned();
                Ok((node_gone && claim_gone && ready && elsewhere)
                    .then_some(new)
                    .flatten())
            },
        )
        .await?;
        let samples = node_watch.samples();
        ensure!(
            samples
                .iter()
                .any(|s| s.name == victim.name_any() && s.cordoned && s.tainted),
            "the interrupted node was never seen cordoned and tainted: {samples:?}"
        );
        ensure!(
            samples
                .iter()
                .filter(|s| s.name == other.name_any())
                .all(|s| !s.disrupted()),
            "the other node was disrupted"
        );
        let new = run.nodes().get(&replacement).await?;
        ensure!(
            cloud_offering(&new) != interrupted,
            "the replacement {replacement} runs as the interrupted offering {interrupted:?}"
        );
        ensure!(metrics.get("spot_interruption", "disrupted") == 1);
        poll_until(
            "the queue emptied",
            T,
            Duration::from_millis(500),
            || async { Ok((sqs.depth().await? == (0, 0)).then_some(())) },
        )
        .await?;
        let evs = cluster_events_about(&run.client, &victim_claim.name_any()).await?;
        ensure!(
            evs.iter()
                .any(|e| e.reason.as_deref() == Some("SpotInterrupted")
                    && e.type_.as_deref() == Some("Warning")),
            "no SpotInterrupted event on the NodeClaim: {:?}",
            evs.iter().map(|e| e.reason.clone()).collect::<Vec<_>>()
        );
        let evs = cluster_events_about(&run.client, &victim.name_any()).await?;
        ensure!(
            evs.iter()
                .any(|e| e.reason.as_deref() == Some("SpotInterrupted")),
            "no SpotInterrupted event on the node"
        );
        Ok(())
    })
    .await;
    let _ = sqs.call("DeleteQueue", &json!({ "QueueUrl": queue })).await;
    result
}

/// (instance type, zone, capacity type) of a node.
fn cloud_offering(n: &Node) -> (String, String, String) {
    (
        label(n, labels::INSTANCE_TYPE).to_owned(),
        label(n, labels::ZONE).to_owned(),
        label(n, labels::CAPACITY_TYPE).to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_disruption_taints_are_cleared_at_start() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let run = Run::start(
        &bed,
        "nodes-stale",
        &[("general", json!({}), json!({}))],
        |_| {},
    )
    .await?;
    deploy(
        &run.ns,
        TestDeployment::new("web").replicas(1).request("cpu", "1"),
        |_| {},
    )
    .await?;
    run.ns.wait_deployment_ready("web", 1, T).await?;
    let node = run.ready_nodes("general", 1, T).await?.remove(0);
    // The controller dies right after tainting the node for a disruption.
    run.controller.abort();
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    taints.push(k8s_openapi::api::core::v1::Taint {
        key: labels::DISRUPTED_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    });
    let patch = json!({ "spec": { "unschedulable": true, "taints": taints } });
    run.nodes()
        .patch(
            &node.name_any(),
            &PatchParams::apply(MANAGER),
            &Patch::Merge(&patch),
        )
        .await?;
    let provider = KwokProvider::from_catalog_file(run.client.clone(), catalog())
        .map_err(anyhow::Error::msg)?;
    let o = NodesOptions {
        nodepool_selector: Some(format!("{RUN_LABEL}={}", run.ns.name())),
        namespaces: vec![run.ns.name().to_string()],
        disruption: None,
        ..Default::default()
    };
    let run = run.with_controller(provider, o);
    with_run(run, &["general"], async |run| {
        poll_until(
            "the stale disruption taint removed",
            Duration::from_secs(30),
            Duration::from_millis(500),
            || async {
                let n = run.nodes().get(&node.name_any()).await?;
                let spec = n.spec.unwrap_or_default();
                let tainted = spec
                    .taints
                    .unwrap_or_default()
                    .iter()
                    .any(|t| t.key == labels::DISRUPTED_TAINT);
                Ok((!tainted && spec.unschedulable != Some(true)).then_some(()))
            },
        )
        .await?;
        let left = run.pool_nodes("general").await?;
        ensure!(left.len() == 1, "{} nodes left", left.len());
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_cannot_launch_does_not_stop_disruption_elsewhere() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let d = json!({ "disruption": { "consolidateAfter": "5s", "budgets": [{ "nodes": "100%" }] } });
    let missing = json!({ "nodeClassRef": {
        "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": "no-such-class" } });
    let run = Run::start(
        &bed,
        "nodes-broken",
        &[("good", d, json!({})), ("broken", json!({}), missing)],
        disruption_on,
    )
    .await?;
    with_run(run, &["good", "broken"], async |run| {
        let ns = &run.ns;
        let good = run.pool_name("good");
        deploy(
            ns,
            TestDeployment::new("web").replicas(2).request("cpu", "3"),
            |t| {
                t["spec"]["affinity"] = anti_affinity("web");
                t["spec"]["nodeSelector"] = json!({ labels::NODEPOOL: good });
            },
        )
        .await?;
        ns.wait_deployment_ready("web", 2, T).await?;
        run.ready_nodes("good", 2, T).await?;
        // A pod only the broken pool could take: its NodeClaim cannot launch.
        let broken = run.pool_name("broken");
        deploy(
            ns,
            TestDeployment::new("stuck").replicas(1).request("cpu", "1"),
            |t| {
                t["spec"]["nodeSelector"] = json!({ labels::NODEPOOL: broken });
            },
        )
        .await?;
        poll_until(
            "the broken pool Ready=False",
            T,
            Duration::from_millis(500),
            || async {
                let p = run.get_pool("broken").await?;
                let ready = p
                    .status
                    .iter()
                    .flat_map(|s| s.conditions.iter())
                    .find(|c| c.type_ == "Ready")
                    .cloned();
                Ok(ready
                    .filter(|c| c.status == "False" && c.reason == "LaunchFailing")
                    .map(|c| eprintln!("broken pool: {}", c.message)))
            },
        )
        .await?;
        ns.scale_deployment("web", 1).await?;
        ns.wait_deployment_ready("web", 1, T).await?;
        poll_until(
            "the good pool's empty node removed while the pod waits",
            Duration::from_secs(120),
            Duration::from_millis(500),
            || async {
                let nodes = run.pool_nodes("good").await?;
                Ok((nodes.len() == 1).then_some(()))
            },
        )
        .await?;
        Ok(())
    })
    .await
}

/// A static NodePool's NodeClaims, its `status.nodes` and its scale subresource's replicas.
async fn static_counts(run: &Run, suffix: &str) -> Result<(usize, Option<i64>, Option<i32>)> {
    let active = run
        .claims(suffix)
        .await?
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .count();
    let pool = run.get_pool(suffix).await?;
    let scale = Api::<NodePool>::all(run.client.clone())
        .get_scale(&run.pool_name(suffix))
        .await?;
    let replicas = scale.status.map(|s| s.replicas);
    Ok((active, pool.status.and_then(|s| s.nodes), replicas))
}

async fn scale_pool(run: &Run, suffix: &str, replicas: i64) -> Result<()> {
    Api::<NodePool>::all(run.client.clone())
        .patch_scale(
            &run.pool_name(suffix),
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
        )
        .await?;
    Ok(())
}

/// `n` NodeClaims of the static pool, none being deleted, as many Ready nodes, and the pool's
/// `status.nodes` (so the scale subresource) saying `n`.
async fn static_pool_at(run: &Run, suffix: &str, n: usize) -> Result<()> {
    poll_until(
        &format!("static pool {suffix} at {n} nodes"),
        T,
        Duration::from_millis(500),
        || async {
            let all = run.claims(suffix).await?.len();
            let (active, status, scale) = static_counts(run, suffix).await?;
            let ready = run
                .pool_nodes(suffix)
                .await?
                .iter()
                .filter(|n| ready(n))
                .count();
            let want = Some(n as i64);
            Ok((all == n
                && active == n
                && ready == n
                && status == want
                && scale.map(i64::from) == want)
                .then_some(()))
        },
    )
    .await
}

/// Static NodePools (`spec.replicas`): two nodes with no pod at all; a pod too large for them
/// gets no NodeClaim (the pool is static) but an event saying so; the empty static nodes stay
/// through consolidation passes (`consolidateAfter: 0s`); the scale subresource to 3 adds one
/// node, to 1 removes the two without pods; `limits.nodes: 2` with 3 replicas stops at 2 with a
/// Warning naming `limits.nodes` and `LimitsReached` on the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pool_keeps_its_replicas() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let spec = json!({
        "replicas": 2,
        "disruption": { "consolidateAfter": "0s", "budgets": [{ "nodes": "100%" }] },
    });
    let metrics = NodesMetrics::default();
    let run = Run::start(&bed, "nodes-static", &[("fixed", spec, json!({}))], |o| {
        disruption_on(o);
        o.metrics = metrics.clone();
    })
    .await?;
    with_run(run, &["fixed"], async |run| {
        let ns = &run.ns;
        static_pool_at(run, "fixed", 2).await?;
        // A pod larger than the static nodes: no NodeClaim for it, and it is told why.
        deploy(
            ns,
            TestDeployment::new("big").replicas(1).request("cpu", "3"),
            |_| {},
        )
        .await?;
        let big = poll_until("the big pod", T, Duration::from_millis(500), || async {
            Ok(ns.pods("app=big").await?.into_iter().next())
        })
        .await?;
        let ev = poll_until(
            "FailedProvisioning event on the big pod",
            T,
            Duration::from_millis(500),
            || async {
                let evs = run.events_about(&big.name_any()).await?;
                Ok(evs
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("FailedProvisioning")))
            },
        )
        .await?;
        let note = ev.note.unwrap_or_default();
        ensure!(note.contains("static NodePool"), "{note}");
        // A small pod lands on one static node.
        deploy(
            ns,
            TestDeployment::new("small")
                .replicas(1)
                .request("cpu", "100m"),
            |_| {},
        )
        .await?;
        ns.wait_deployment_ready("small", 1, T).await?;
        let busy = placements(ns, "small")
            .await?
            .into_values()
            .next()
            .context("small pod's node")?;
        // Consolidation passes (every 2 s) leave the empty static node alone.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let (active, _, _) = static_counts(run, "fixed").await?;
        let all = run.claims("fixed").await?.len();
        ensure!(
            active == 2 && all == 2,
            "consolidation touched the static pool: {active} active of {all} NodeClaims"
        );
        let pool = run.pool_name("fixed");
        for method in ["emptiness", "single-node", "multi-node"] {
            let gone = count(
                &metrics.nodeclaims_terminated,
                [("nodepool", &pool), ("reason", method)],
            );
            ensure!(gone == 0, "{gone} NodeClaims terminated by {method}");
        }
        ensure!(
            run.claims("fixed").await?.len() == 2,
            "a NodeClaim was made for the big pod"
        );

        scale_pool(run, "fixed", 3).await?;
        static_pool_at(run, "fixed", 3).await?;
        scale_pool(run, "fixed", 1).await?;
        static_pool_at(run, "fixed", 1).await?;
        let left = run.pool_nodes("fixed").await?;
        ensure!(
            left.len() == 1 && left[0].name_any() == busy,
            "the node with the pod ({busy}) should stay, left: {:?}",
            left.iter().map(|n| n.name_any()).collect::<Vec<_>>()
        );
        let created = count(
            &metrics.nodeclaims_created,
            [("nodepool", &pool), ("reason", "static")],
        );
        let deleted = count(
            &metrics.nodeclaims_terminated,
            [("nodepool", &pool), ("reason", "static")],
        );
        ensure!(
            (created, deleted) == (3, 2),
            "static NodeClaims created {created}, deleted {deleted}"
        );

        // limits.nodes 2 with replicas 3: two nodes, and the pool says why not three.
        Api::<NodePool>::all(run.client.clone())
            .patch(
                &pool,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": 3, "limits": { "nodes": "2" } } })),
            )
            .await?;
        static_pool_at(run, "fixed", 2).await?;
        let warning = poll_until(
            "a StaticLimitReached event on the pool",
            T,
            Duration::from_millis(500),
            || async {
                let evs = cluster_events_about(&run.client, &pool).await?;
                Ok(evs
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("StaticLimitReached")))
            },
        )
        .await?;
        let note = warning.note.unwrap_or_default();
        ensure!(note.contains("limits.nodes 2"), "{note}");
        let limited = poll_until(
            "LimitsReached=True on the pool",
            T,
            Duration::from_millis(500),
            || async {
                let p = run.get_pool("fixed").await?;
                Ok(p.status
                    .into_iter()
                    .flat_map(|s| s.conditions)
                    .find(|c| c.type_ == "LimitsReached" && c.status == "True"))
            },
        )
        .await?;
        ensure!(
            limited.message.contains("nodes 2 of 2"),
            "{}",
            limited.message
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        ensure!(
            run.claims("fixed").await?.len() == 2,
            "the static pool grew past limits.nodes"
        );
        Ok(())
    })
    .await
}
