//! Builders for the objects tests create most: kwok nodes and simple Deployments.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeSpec, NodeStatus, PodSpec, PodTemplateSpec, ResourceRequirements, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::KWOK_NODE_ANNOTATION;
use crate::usage::{RESOURCE_METRICS_PATH_ANNOTATION, resource_metrics_path, usage_annotations};

/// A node simulated by kwok: annotated `kwok.x-k8s.io/node=fake`, with the given capacity,
/// labels and taints. kwok makes it Ready and runs the pods bound to it, and emulates its kubelet
/// resource endpoint, which the annotation `metrics.k8s.io/resource-metrics-path` points
/// metrics-server at.
#[derive(Clone, Debug)]
pub struct KwokNode {
    pub(crate) name: String,
    capacity: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
}

impl KwokNode {
    /// A node with 4 CPUs, 16Gi memory and 110 pods. Inside a [`crate::TestNamespace`] the final
    /// name is `<namespace>-<name>` (node names are cluster-wide).
    pub fn new(name: impl Into<String>) -> KwokNode {
        let capacity = [
            ("cpu", "4"),
            ("memory", "16Gi"),
            ("pods", "110"),
            ("ephemeral-storage", "100Gi"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        KwokNode {
            name: name.into(),
            capacity,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }

    /// CPU capacity (= allocatable), e.g. `"4"` or `"3500m"`.
    pub fn cpu(self, q: impl Into<String>) -> Self {
        self.capacity("cpu", q)
    }

    /// Memory capacity, e.g. `"16Gi"`.
    pub fn memory(self, q: impl Into<String>) -> Self {
        self.capacity("memory", q)
    }

    /// Maximum number of pods.
    pub fn pods(self, n: u32) -> Self {
        self.capacity("pods", n.to_string())
    }

    /// Any capacity entry (`nvidia.com/gpu`, ...); allocatable is the same.
    pub fn capacity(mut self, resource: impl Into<String>, q: impl Into<String>) -> Self {
        self.capacity.insert(resource.into(), q.into());
        self
    }

    /// A label (e.g. `topology.kubernetes.io/zone`, `node.kubernetes.io/instance-type`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// A taint; `effect` is `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub fn taint(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        self.taints.push(Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Default::default()
        });
        self
    }

    /// The Node object under `name`.
    pub fn build(&self, name: &str) -> Node {
        let mut labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("type", "kwok"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        labels.extend(self.labels.clone());
        let quantities: BTreeMap<String, Quantity> = self
            .capacity
            .iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect();
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([
                    (
                        KWOK_NODE_ANNOTATION.0.to_owned(),
                        KWOK_NODE_ANNOTATION.1.to_owned(),
                    ),
                    (
                        RESOURCE_METRICS_PATH_ANNOTATION.to_owned(),
                        resource_metrics_path(name),
                    ),
                ])),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                allocatable: Some(quantities.clone()),
                capacity: Some(quantities),
                ..Default::default()
            }),
        }
    }
}

/// A Deployment of placeholder pods (kwok never pulls or runs the image).
#[derive(Clone, Debug)]
pub struct TestDeployment {
    pub(crate) name: String,
    replicas: i32,
    labels: BTreeMap<String, String>,
    requests: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    image: String,
}

impl TestDeployment {
    /// One replica, selector/template label `app=<name>`, requests 100m CPU / 64Mi memory.
    pub fn new(name: impl Into<String>) -> TestDeployment {
        let name = name.into();
        TestDeployment {
            labels: BTreeMap::from([("app".to_owned(), name.clone())]),
            name,
            replicas: 1,
            requests: BTreeMap::from([
                ("cpu".to_owned(), "100m".to_owned()),
                ("memory".to_owned(), "64Mi".to_owned()),
            ]),
            annotations: BTreeMap::new(),
            image: "registry.k8s.io/pause:3.10".to_owned(),
        }
    }

    /// `spec.replicas`.
    pub fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }

    /// A resource request of the single container (`cpu`, `memory`, ...).
    pub fn request(mut self, resource: impl Into<String>, q: impl Into<String>) -> Self {
        self.requests.insert(resource.into(), q.into());
        self
    }

    /// An extra pod label (the selector stays `app=<name>`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// An annotation of the pod template (every pod gets it; changing it later means a rollout).
    pub fn pod_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The CPU and memory (quantities) every pod's container uses from its start, as kwok
    /// reports it to metrics-server and Prometheus; see [`crate::usage`]. Change a running pod's
    /// usage with [`crate::usage::set_pod_usage`].
    pub fn usage(mut self, cpu: &str, memory: &str) -> Self {
        self.annotations.extend(usage_annotations(cpu, memory));
        self
    }

    /// The Deployment object (no namespace set).
    pub fn build(&self) -> Deployment {
        let selector = BTreeMap::from([("app".to_owned(), self.name.clone())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(selector.clone()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(self.replicas),
                selector: LabelSelector {
                    match_labels: Some(selector),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels.clone()),
                        annotations: (!self.annotations.is_empty())
                            .then(|| self.annotations.clone()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".to_owned(),
                            image: Some(self.image.clone()),
                            resources: Some(ResourceRequirements {
                                requests: Some(
                                    self.requests
                                        .iter()
                                        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                                        .collect(),
                                ),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
