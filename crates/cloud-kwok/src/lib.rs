//! The kwok cloud provider. "Launching" an instance creates a `Node` that kwok manages
//! (annotation `kwok.x-k8s.io/node=fake`): kwok makes it Ready and runs the pods bound to it, so
//! the real kube-scheduler places pods on the nodes Ballast made. Deleting the instance deletes
//! the `Node`. The Node *is* the instance: once it has a deletion timestamp (a finalizer may keep
//! the object a while, and kwok still runs its pods meanwhile) the instance is shutting down, so
//! `get` no longer finds it and `list` leaves it out.
//!
//! The node gets the offering's instance type, zone, region and capacity type labels, the
//! catalog's provider labels under `nodes.ballast.dev/` (`instance-family`, `instance-cpu`...),
//! the NodeClaim's labels (NodePool, template labels), the `KwokNodeClass`'s extra labels, the
//! NodeClaim's taints and startup taints, capacity and allocatable from the catalog, and the
//! provider ID `kwok://<name>` (the node is named after the NodeClaim). Each of Ballast's labels
//! is also written under Karpenter's key (`karpenter.sh/capacity-type`,
//! `karpenter.k8s.aws/instance-family`...), so selectors written for Karpenter match. A `KwokNodeClass` may
//! restrict zones and delay the node's appearance (`registrationDelay`) to mimic boot time.
//!
//! Instance types come from a catalog file (`ballast_scheduling::catalog::CatalogFile`, for
//! example `simulations/catalogs/aws-like.yaml`); its label prefix is replaced by
//! `nodes.ballast.dev` so the labels the solver reasons about are the labels the nodes carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_api::common::parse_duration_seconds;
use ballast_api::nodes::{KwokNodeClass, KwokNodeClassSpec, NodeClaim, TaintEffect, labels};
use ballast_cloud::{
    CloudError, CloudProvider, Instance, LaunchOffering, LaunchRequest, OfferingKey,
};
use ballast_nodes::{readable_resources, resources_to_list};
use ballast_scheduling::InstanceType;
use ballast_scheduling::catalog::CatalogFile;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};

/// Provider IDs look like `kwok://<node name>`.
pub const PROVIDER_ID_PREFIX: &str = "kwok://";
/// Annotation that makes kwok manage a node.
pub const KWOK_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// The label prefix provider labels get on kwok nodes.
pub const LABEL_PREFIX: &str = "nodes.ballast.dev";

/// Reads a catalog file (YAML or JSON) and puts its provider labels under `nodes.ballast.dev/`.
pub fn load_catalog(path: &Path) -> Result<CatalogFile, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut cat: CatalogFile = serde_yaml::from_str(&text)
        .map_err(|e| format!("{}: not a catalog file: {e}", path.display()))?;
    cat.label_prefix = LABEL_PREFIX.into();
    Ok(cat)
}

/// `kwok://name` → `name`.
pub fn node_name_of(provider_id: &str) -> Option<&str> {
    provider_id
        .strip_prefix(PROVIDER_ID_PREFIX)
        .filter(|n| !n.is_empty())
}

struct Pending {
    instance: Instance,
    task: tokio::task::JoinHandle<()>,
}

/// The kwok provider.
pub struct KwokProvider {
    client: Client,
    types: Vec<InstanceType>,
    pending: Arc<Mutex<BTreeMap<String, Pending>>>,
    /// Offerings that fail with insufficient capacity at launch although the catalog lists them
    /// as available (to exercise the fallback path).
    insufficient: Mutex<BTreeSet<OfferingKey>>,
}

impl KwokProvider {
    /// A provider over the catalog (its label prefix is replaced by `nodes.ballast.dev`).
    pub fn new(client: Client, mut catalog: CatalogFile) -> Result<Self, String> {
        catalog.label_prefix = LABEL_PREFIX.into();
        let types = catalog.instance_types().map_err(|e| e.to_string())?;
        Ok(KwokProvider {
            client,
            types,
            pending: Arc::default(),
            insufficient: Mutex::default(),
        })
    }

    /// A provider over a catalog file.
    pub fn from_catalog_file(client: Client, path: &Path) -> Result<Self, String> {
        Self::new(client, load_catalog(path)?)
    }

    /// Makes launches of these offerings fail with insufficient capacity (a test hook: kwok
    /// itself never runs out).
    pub fn simulate_insufficient_capacity(&self, keys: impl IntoIterator<Item = OfferingKey>) {
        self.insufficient.lock().expect("lock").extend(keys);
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    async fn node_class(&self, claim: &NodeClaim) -> Result<KwokNodeClassSpec, CloudError> {
        let r = &claim.spec.node_class_ref;
        if r.kind != "KwokNodeClass" {
            return Err(CloudError::NodeClass(format!(
                "the kwok provider launches only KwokNodeClass nodes, not {} {}",
                r.kind, r.name
            )));
        }
        match Api::<KwokNodeClass>::all(self.client.clone())
            .get_opt(&r.name)
            .await
        {
            Ok(Some(c)) => Ok(c.spec),
            Ok(None) => Err(CloudError::NodeClass(format!(
                "KwokNodeClass {} not found",
                r.name
            ))),
            Err(e) => Err(CloudError::Transient(format!(
                "reading KwokNodeClass {}: {e}",
                r.name
            ))),
        }
    }
}

fn kube_err(what: &str, e: kube::Error) -> CloudError {
    match &e {
        kube::Error::Api(s) if s.code == 429 || s.code >= 500 => {
            CloudError::Transient(format!("{what}: {e}"))
        }
        kube::Error::Api(_) => CloudError::Other(format!("{what}: {e}")),
        _ => CloudError::Transient(format!("{what}: {e}")),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// `us-east-1a` → `us-east-1`; zones not ending in a letter are their own region.
pub fn region_of(zone: &str) -> String {
    match zone.chars().last() {
        Some(c) if c.is_ascii_lowercase() && zone.len() > 1 => zone[..zone.len() - 1].to_string(),
        _ => zone.to_string(),
    }
}

fn effect(e: TaintEffect) -> &'static str {
    match e {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    }
}

/// The `Node` kwok will run for the NodeClaim, launched as `offering`.
pub fn node_for(claim: &NodeClaim, offering: &LaunchOffering, class: &KwokNodeClassSpec) -> Node {
    let name = claim.metadata.name.clone().unwrap_or_default();
    let t = &offering.instance_type;
    let mut l: BTreeMap<String, String> = t.labels.clone();
    l.extend(claim.metadata.labels.clone().unwrap_or_default());
    l.extend(class.labels.clone());
    for (k, v) in [
        (labels::INSTANCE_TYPE, t.name.clone()),
        (labels::ZONE, offering.zone.clone()),
        (labels::REGION, region_of(&offering.zone)),
        (labels::CAPACITY_TYPE, offering.capacity_type.clone()),
        (labels::HOSTNAME, name.clone()),
    ] {
        l.insert(k.to_string(), v);
    }
    l.entry(labels::OS.into()).or_insert_with(|| "linux".into());
    l.entry(labels::ARCH.into())
        .or_insert_with(|| "amd64".into());
    ballast_scheduling::aliases::add_karpenter_spellings(&mut l);
    let taints: Vec<Taint> = claim
        .spec
        .taints
        .iter()
        .chain(&claim.spec.startup_taints)
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: effect(t.effect).into(),
            time_added: None,
        })
        .collect();
    let owner = claim.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: "nodes.ballast.dev/v1".into(),
        kind: "NodeClaim".into(),
        name: name.clone(),
        uid,
        block_owner_deletion: None,
        controller: None,
    });
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(l),
            annotations: Some(BTreeMap::from([(
                KWOK_ANNOTATION.0.to_string(),
                KWOK_ANNOTATION.1.to_string(),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!("{PROVIDER_ID_PREFIX}{name}")),
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(resources_to_list(&t.capacity)),
            allocatable: Some(resources_to_list(&t.allocatable())),
            ..Default::default()
        }),
    }
}

/// Whether the Node's instance still runs: the Node exists and is not being deleted.
pub fn instance_running(node: &Node) -> bool {
    node.metadata.deletion_timestamp.is_none()
}

/// What a kwok Node says about its instance.
pub fn instance_of(node: &Node) -> Option<Instance> {
    let provider_id = node.spec.as_ref()?.provider_id.clone()?;
    node_name_of(&provider_id)?;
    let l = node.metadata.labels.clone().unwrap_or_default();
    let get = |k: &str| l.get(k).cloned().unwrap_or_default();
    let status = node.status.as_ref();
    Some(Instance {
        node_name: node.metadata.name.clone(),
        node_claim: node.metadata.name.clone(),
        node_pool: l.get(labels::NODEPOOL).cloned(),
        instance_type: get(labels::INSTANCE_TYPE),
        zone: get(labels::ZONE),
        capacity_type: get(labels::CAPACITY_TYPE),
        image_id: None,
        capacity: readable_resources(status.and_then(|s| s.capacity.as_ref())),
        allocatable: readable_resources(status.and_then(|s| s.allocatable.as_ref())),
        created: node.metadata.creation_timestamp.as_ref().map(|t| t.0),
        provider_id,
    })
}

fn instance_for(claim: &NodeClaim, o: &LaunchOffering) -> Instance {
    let name = claim.metadata.name.clone().unwrap_or_default();
    Instance {
        provider_id: format!("{PROVIDER_ID_PREFIX}{name}"),
        node_name: Some(name.clone()),
        node_claim: Some(name),
        node_pool: claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::NODEPOOL).cloned()),
        instance_type: o.instance_type.name.clone(),
        zone: o.zone.clone(),
        capacity_type: o.capacity_type.clone(),
        image_id: None,
        capacity: o.instance_type.capacity.clone(),
        allocatable: o.instance_type.allocatable(),
        created: Some(Timestamp::now()),
    }
}

async fn create_node(api: &Api<Node>, node: &Node) -> Result<(), CloudError> {
    match api.create(&PostParams::default(), node).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(kube_err("creating node", e)),
    }
}

impl CloudProvider for KwokProvider {
    fn name(&self) -> &str {
        "kwok"
    }

    async fn instance_types(&self) -> Result<Vec<InstanceType>, CloudError> {
        Ok(self.types.clone())
    }

    async fn create(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let claim = &request.node_claim;
        let name = claim
            .metadata
            .name
            .clone()
            .ok_or_else(|| CloudError::Other("NodeClaim without a name".into()))?;
        if let Some(p) = self.pending.lock().expect("lock").get(&name) {
            return Ok(p.instance.clone());
        }
        let api = self.nodes();
        if let Some(n) = api
            .get_opt(&name)
            .await
            .map_err(|e| kube_err("reading node", e))?
        {
            return instance_of(&n).ok_or_else(|| {
                CloudError::Other(format!(
                    "a node {name} that is not a kwok instance already exists"
                ))
            });
        }
        let class = self.node_class(claim).await?;
        let offerings: Vec<&LaunchOffering> = request
            .offerings
            .iter()
            .filter(|o| class.zones.is_empty() || class.zones.contains(&o.zone))
            .collect();
        let Some(first) = offerings.first() else {
            return Err(CloudError::InsufficientCapacity {
                offerings: request.offerings.iter().map(LaunchOffering::key).collect(),
                message: format!(
                    "no offering in the zones of KwokNodeClass ({})",
                    class.zones.join(", ")
                ),
            });
        };
        if self
            .insufficient
            .lock()
            .expect("lock")
            .contains(&first.key())
        {
            return Err(CloudError::InsufficientCapacity {
                offerings: vec![first.key()],
                message: "simulated: kwok has no capacity for this offering".into(),
            });
        }
        let node = node_for(claim, first, &class);
        let instance = instance_for(claim, first);
        let delay = match class.registration_delay.as_deref() {
            None => 0.0,
            Some(d) => parse_duration_seconds(d)
                .map_err(|e| CloudError::NodeClass(format!("registrationDelay: {e}")))?,
        };
        if delay <= 0.0 {
            create_node(&api, &node).await?;
            tracing::info!(node = %name, instance_type = %instance.instance_type, zone = %instance.zone, "kwok node created");
            return Ok(instance);
        }
        let pending = self.pending.clone();
        let key = name.clone();
        let mut guard = self.pending.lock().expect("lock");
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
            match create_node(&api, &node).await {
                Ok(()) => {
                    tracing::info!(node = %key, "kwok node created after its registration delay")
                }
                Err(e) => tracing::warn!(node = %key, error = %e, "kwok node creation failed"),
            }
            pending.lock().expect("lock").remove(&key);
        });
        guard.insert(
            name,
            Pending {
                instance: instance.clone(),
                task,
            },
        );
        Ok(instance)
    }

    async fn delete(&self, provider_id: &str) -> Result<(), CloudError> {
        let name = node_name_of(provider_id).ok_or_else(|| CloudError::NotFound {
            provider_id: provider_id.into(),
        })?;
        if let Some(p) = self.pending.lock().expect("lock").remove(name) {
            p.task.abort();
        }
        match self.nodes().delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(CloudError::NotFound {
                provider_id: provider_id.into(),
            }),
            Err(e) => Err(kube_err("deleting node", e)),
        }
    }

    async fn get(&self, provider_id: &str) -> Result<Option<Instance>, CloudError> {
        let Some(name) = node_name_of(provider_id) else {
            return Ok(None);
        };
        if let Some(p) = self.pending.lock().expect("lock").get(name) {
            return Ok(Some(p.instance.clone()));
        }
        let node = self
            .nodes()
            .get_opt(name)
            .await
            .map_err(|e| kube_err("reading node", e))?;
        Ok(node
            .as_ref()
            .filter(|n| instance_running(n))
            .and_then(instance_of)
            .filter(|i| i.provider_id == provider_id))
    }

    async fn list(&self) -> Result<Vec<Instance>, CloudError> {
        let lp = ListParams::default().labels(labels::NODEPOOL);
        let nodes = self
            .nodes()
            .list(&lp)
            .await
            .map_err(|e| kube_err("listing nodes", e))?;
        let mut out: BTreeMap<String, Instance> = nodes
            .items
            .iter()
            .filter(|n| {
                n.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(KWOK_ANNOTATION.0))
                    .map(String::as_str)
                    == Some(KWOK_ANNOTATION.1)
            })
            .filter(|n| instance_running(n))
            .filter_map(instance_of)
            .map(|i| (i.provider_id.clone(), i))
            .collect();
        for p in self.pending.lock().expect("lock").values() {
            out.entry(p.instance.provider_id.clone())
                .or_insert_with(|| p.instance.clone());
        }
        Ok(out.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::nodes::{NodeClaimSpec, NodeClassReference};

    fn catalog() -> CatalogFile {
        serde_yaml::from_str(
            "zones: [us-east-1a, us-east-1b]\nlabelPrefix: karpenter.k8s.aws\ntypes:\n  - {name: m6i.large, vcpu: 2, memory: 8Gi, pods: 29, onDemand: 0.096, spot: {us-east-1a: 0.0365}}\n",
        )
        .unwrap()
    }

    fn claim() -> NodeClaim {
        let mut c = NodeClaim::new(
            "general-0123456789",
            NodeClaimSpec {
                taints: vec![ballast_api::nodes::Taint {
                    key: "team".into(),
                    value: Some("a".into()),
                    effect: TaintEffect::NoSchedule,
                }],
                startup_taints: vec![ballast_api::nodes::Taint {
                    key: "agent-not-ready".into(),
                    value: None,
                    effect: TaintEffect::NoExecute,
                }],
                node_class_ref: NodeClassReference {
                    group: "nodes.ballast.dev".into(),
                    kind: "KwokNodeClass".into(),
                    name: "default".into(),
                },
                ..Default::default()
            },
        );
        c.metadata.uid = Some("uid-1".into());
        c.metadata.labels = Some(BTreeMap::from([
            (labels::NODEPOOL.to_string(), "general".to_string()),
            (
                labels::INSTANCE_TYPE.to_string(),
                "planned.type".to_string(),
            ),
            ("team".to_string(), "a".to_string()),
        ]));
        c
    }

    #[test]
    fn node_carries_the_offering_the_claim_and_the_class() {
        let mut cat = catalog();
        cat.label_prefix = LABEL_PREFIX.into();
        let t = cat.instance_types().unwrap().remove(0);
        let o = LaunchOffering {
            instance_type: t.clone(),
            zone: "us-east-1a".into(),
            capacity_type: "spot".into(),
            price: 0.0365,
        };
        let class = KwokNodeClassSpec {
            labels: BTreeMap::from([("extra".to_string(), "yes".to_string())]),
            ..Default::default()
        };
        let n = node_for(&claim(), &o, &class);
        let l = n.metadata.labels.as_ref().unwrap();
        assert_eq!(l[labels::INSTANCE_TYPE], "m6i.large");
        assert_eq!(l[labels::ZONE], "us-east-1a");
        assert_eq!(l[labels::REGION], "us-east-1");
        assert_eq!(l[labels::CAPACITY_TYPE], "spot");
        assert_eq!(l[labels::NODEPOOL], "general");
        assert_eq!(l[labels::HOSTNAME], "general-0123456789");
        assert_eq!(l["nodes.ballast.dev/instance-family"], "m6i");
        assert_eq!(l["nodes.ballast.dev/instance-cpu"], "2");
        // Karpenter's spellings beside ours.
        for (key, want) in [
            ("karpenter.sh/capacity-type", "spot"),
            ("karpenter.sh/nodepool", "general"),
            ("karpenter.k8s.aws/instance-family", "m6i"),
            ("karpenter.k8s.aws/instance-size", "large"),
            ("karpenter.k8s.aws/instance-cpu", "2"),
        ] {
            assert_eq!(l.get(key).map(String::as_str), Some(want), "{key}");
        }
        assert_eq!(l["team"], "a");
        assert_eq!(l["extra"], "yes");
        assert_eq!(l[labels::ARCH], "amd64");
        assert_eq!(
            n.metadata.annotations.as_ref().unwrap()[KWOK_ANNOTATION.0],
            "fake"
        );
        let spec = n.spec.as_ref().unwrap();
        assert_eq!(
            spec.provider_id.as_deref(),
            Some("kwok://general-0123456789")
        );
        let taints = spec.taints.as_ref().unwrap();
        assert_eq!(taints.len(), 2);
        assert_eq!(
            (taints[1].key.as_str(), taints[1].effect.as_str()),
            ("agent-not-ready", "NoExecute")
        );
        let st = n.status.as_ref().unwrap();
        assert_eq!(st.capacity.as_ref().unwrap()["cpu"].0, "2");
        assert_eq!(st.capacity.as_ref().unwrap()["memory"].0, "8Gi");
        assert_eq!(st.allocatable.as_ref().unwrap()["cpu"].0, "1930m");
        assert_eq!(
            n.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        let i = instance_of(&n).unwrap();
        assert_eq!(i.instance_type, "m6i.large");
        assert_eq!(i.capacity.cpu_millis, 2000);
        assert_eq!(i.allocatable, t.allocatable());
        assert_eq!(i.node_pool.as_deref(), Some("general"));
        assert!(instance_running(&n));
        let mut deleting = n.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        assert!(!instance_running(&deleting));
    }

    #[test]
    fn provider_ids_and_regions() {
        assert_eq!(node_name_of("kwok://n1"), Some("n1"));
        assert_eq!(node_name_of("kwok://"), None);
        assert_eq!(node_name_of("aws:///us-east-1a/i-1"), None);
        assert_eq!(region_of("us-east-1a"), "us-east-1");
        assert_eq!(region_of("zone-1"), "zone-1");
    }

    #[test]
    fn catalog_labels_move_under_ballast_prefix() {
        let dir =
            std::env::temp_dir().join(format!("ballast-kwok-cat-{}.yaml", std::process::id()));
        std::fs::write(&dir, serde_yaml::to_string(&catalog()).unwrap()).unwrap();
        let cat = load_catalog(&dir).unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(cat.label_prefix, LABEL_PREFIX);
        let t = cat.instance_types().unwrap();
        assert!(t[0].labels.contains_key("nodes.ballast.dev/instance-size"));
    }
}
