//! Table cases of the manifest reader and of the merge into a scenario.

use super::*;

fn taken(text: &str) -> Result<Manifests, ManifestError> {
    take(documents_of(text, "f.yaml")?)
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 4
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web, tier: front } }
    spec:
      nodeSelector: { kubernetes.io/os: linux }
      tolerations: [{ key: dedicated, operator: Equal, value: web, effect: NoSchedule }]
      initContainers: [{ name: init, resources: { requests: { cpu: "2" } } }]
      containers:
      - { name: a, resources: { requests: { cpu: 250m, memory: 256Mi } } }
      - { name: b, resources: { limits: { cpu: 1, memory: 1Gi } } }
"#;

const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: { name: web, namespace: shop }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - { type: Resource, resource: { name: cpu, target: { type: Utilization, averageUtilization: 70 } } }
"#;

const SCALED_OBJECT: &str = r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: { name: worker, namespace: shop }
spec:
  scaleTargetRef: { name: worker }
  maxReplicaCount: 8
  triggers:
  - { type: cpu, metricType: Utilization, metadata: { value: "60" } }
"#;

const VPA: &str = r#"
apiVersion: autoscaling.k8s.io/v1
kind: VerticalPodAutoscaler
metadata: { name: web, namespace: shop }
spec:
  targetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  updatePolicy: { updateMode: "Off" }
"#;

const KARPENTER_POOL: &str = r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: { name: general }
spec:
  template:
    spec:
      nodeClassRef: { group: karpenter.k8s.aws, kind: EC2NodeClass, name: default }
      requirements:
      - { key: karpenter.sh/capacity-type, operator: In, values: [on-demand] }
"#;

const EC2_NODE_CLASS: &str = r#"
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: { name: default }
spec:
  role: KarpenterNodeRole
  amiSelectorTerms: [{ alias: al2023@latest }]
  subnetSelectorTerms: [{ tags: { karpenter.sh/discovery: demo } }]
  securityGroupSelectorTerms: [{ tags: { karpenter.sh/discovery: demo } }]
"#;

const OUR_POOL: &str = r#"
apiVersion: nodes.ballast.dev/v1
kind: NodePool
metadata: { name: ours }
spec:
  template:
    spec:
      nodeClassRef: { group: nodes.ballast.dev, kind: KwokNodeClass, name: default }
      requirements: []
"#;

const STATEFUL_SET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: shop }
spec:
  serviceName: db
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec:
      containers: [{ name: pg, resources: { requests: { cpu: 1, memory: 2Gi } } }]
"#;

const PDB: &str = r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: web, namespace: shop }
spec:
  minAvailable: "75%"
  selector: { matchLabels: { app: web } }
"#;

const NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: ip-10-0-0-1
  labels:
    node.kubernetes.io/instance-type: m6i.large
    topology.kubernetes.io/zone: us-east-1a
    karpenter.sh/capacity-type: spot
    karpenter.sh/nodepool: general
    kubernetes.io/hostname: ip-10-0-0-1
    team: payments
spec:
  taints:
  - { key: node.kubernetes.io/not-ready, effect: NoSchedule }
  - { key: dedicated, value: web, effect: NoSchedule }
"#;

#[test]
fn each_accepted_kind_lands_where_the_simulator_reads_it() {
    // (document, kind counted, Ballast kind of the object taken or the shelf it lands on)
    let cases = [
        (HPA, "HorizontalPodAutoscaler", "HorizontalAutoscaler"),
        (SCALED_OBJECT, "ScaledObject", "HorizontalAutoscaler"),
        (VPA, "VerticalPodAutoscaler", "VerticalAutoscaler"),
        (KARPENTER_POOL, "NodePool", "NodePool"),
        (EC2_NODE_CLASS, "EC2NodeClass", "Ec2NodeClass"),
        (OUR_POOL, "NodePool", "NodePool"),
        (DEPLOYMENT, "Deployment", "workload"),
        (STATEFUL_SET, "StatefulSet", "workload"),
        (PDB, "PodDisruptionBudget", "budget"),
        (NODE, "Node", "node"),
    ];
    for (doc, counted, lands) in cases {
        let m = taken(doc).unwrap_or_else(|e| panic!("{counted}: {e}"));
        assert_eq!(m.counts.get(counted), Some(&1), "{counted}: {:?}", m.counts);
        let shelf = match (
            m.objects.first(),
            m.workloads.len(),
            m.budgets.len(),
            m.nodes.len(),
        ) {
            (Some(o), 0, 0, 0) => o.key().0,
            (None, 1, 0, 0) => "workload".into(),
            (None, 0, 1, 0) => "budget".into(),
            (None, 0, 0, 1) => "node".into(),
            other => panic!("{counted}: {other:?}"),
        };
        assert_eq!(shelf, lands, "{counted}");
        assert!(
            m.not_simulated.is_empty(),
            "{counted}: {:?}",
            m.not_simulated
        );
    }
}

#[test]
fn a_deployment_gives_replicas_requests_and_placement() {
    let m = taken(DEPLOYMENT).unwrap();
    let w = &m.workloads[0];
    assert_eq!(
        (w.namespace.as_str(), w.name.as_str(), w.replicas),
        ("shop", "web", 4)
    );
    // The containers ask for 250m + 1 (b's limit stands for its missing request); the init
    // container's 2 CPUs are more, so the pod asks for 2.
    assert_eq!(w.pod.requests.cpu_millis, 2000);
    assert_eq!(w.pod.requests.memory_bytes, (256 + 1024) << 20);
    assert_eq!(w.pod.labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(w.pod.node_selector.len(), 1);
    assert_eq!(w.pod.tolerations.len(), 1);
}

#[test]
fn a_node_reads_either_spelling_and_keeps_only_the_users_labels_and_taints() {
    let n = &taken(NODE).unwrap().nodes[0];
    assert_eq!(n.instance_type.as_deref(), Some("m6i.large"));
    assert_eq!(n.zone.as_deref(), Some("us-east-1a"));
    assert_eq!(n.capacity_type, "spot");
    assert_eq!(n.node_pool.as_deref(), Some("general"));
    assert_eq!(n.labels.keys().collect::<Vec<_>>(), ["team"]);
    assert_eq!(n.taints.len(), 1);
    assert_eq!(n.taints[0].key, "dedicated");
}

#[test]
fn several_documents_and_lists_are_taken_in_order() {
    let text = format!("{DEPLOYMENT}\n---\n{HPA}\n---\n---\n{PDB}");
    let m = taken(&text).unwrap();
    assert_eq!(
        m.counts_line(),
        "1 Deployment, 1 HorizontalPodAutoscaler, 1 PodDisruptionBudget"
    );
    assert_eq!(m.budgets[0].at.to_string(), "f.yaml: document 4");
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
         "spec": {"maxUnavailable": 1}}]}"#;
    let m = taken(list).unwrap();
    assert_eq!(m.budgets[0].at.to_string(), "f.yaml: document 1: items[1]");
    assert_eq!(m.not_simulated.len(), 1);
}

#[test]
fn kinds_not_simulated_are_listed_with_their_place() {
    let text = format!(
        "{DEPLOYMENT}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: shop}}\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {{name: j}}\n"
    );
    let m = taken(&text).unwrap();
    assert_eq!(
        m.not_simulated,
        [
            "f.yaml: document 2: v1 ConfigMap shop/settings (not a kind the simulator models)",
            "f.yaml: document 3: keda.sh/v1alpha1 ScaledJob j (Jobs from a queue are not simulated)",
        ]
    );
    assert_eq!(m.counts_line(), "1 Deployment");
}

#[test]
fn a_malformed_document_names_its_file_document_and_field() {
    let bad_replicas = DEPLOYMENT.replace("replicas: 4", "replicas: four");
    let bad_request = DEPLOYMENT.replace("cpu: 250m", "cpu: lots");
    let bad_budget = PDB.replace("\"75%\"", "\"half\"");
    let bad_pool = OUR_POOL.replace("requirements: []", "requirements: 3");
    let bad_hpa = HPA.replace("maxReplicas: 10", "maxReplicas: ten");
    let cases: [(&str, String, &str); 7] = [
        (
            "replicas",
            format!("{HPA}---\n{bad_replicas}"),
            "f.yaml: document 2: Deployment shop/web: spec.replicas: invalid type",
        ),
        (
            "request",
            bad_request,
            "f.yaml: document 1: Deployment shop/web: spec.template.spec.containers[0].resources.requests: resource cpu",
        ),
        (
            "budget",
            bad_budget,
            "f.yaml: document 1: PodDisruptionBudget shop/web: spec.minAvailable: \"half\": neither",
        ),
        (
            "our pool",
            bad_pool,
            "f.yaml: document 1: NodePool ours: spec.template.spec.requirements",
        ),
        (
            "upstream",
            bad_hpa,
            "f.yaml: document 1: (conversion): HorizontalPodAutoscaler shop/web: spec.maxReplicas",
        ),
        (
            "syntax",
            format!("{HPA}---\nkind: [unclosed\n"),
            "f.yaml: document 2: (yaml): ",
        ),
        (
            "no kind",
            "apiVersion: v1\nmetadata: {name: x}\n".into(),
            "f.yaml: document 1: (no kind) x: kind: missing",
        ),
    ];
    for (case, text, want) in cases {
        let e = taken(&text).map(|_| ()).unwrap_err().to_string();
        assert!(e.starts_with(want), "{case}: {e}");
    }
}

fn base() -> (crate::scenario::ScenarioFile, std::path::PathBuf) {
    let path = crate::bundle::scenario_path(crate::bundle::DEFAULT_SCENARIO).unwrap();
    let text = crate::bundle::read(&path).unwrap();
    (serde_yaml::from_str(&text).unwrap(), path)
}

#[test]
fn without_a_scenario_only_the_default_environment_is_kept() {
    let (file, path) = base();
    let m = taken(&format!("{DEPLOYMENT}---\n{HPA}---\n{PDB}---\n{OUR_POOL}")).unwrap();
    let merged = merge(&file, &path, &m, false, "dir").unwrap();
    let f = &merged.file;
    assert_eq!(f.duration, file.duration);
    assert!(
        matches!(&f.catalog, crate::scenario::CatalogRef::Path(p) if p == "bundled:catalogs/aws-like.yaml")
    );
    assert!(f.objects.is_empty() && f.batch.is_empty() && f.variants.is_empty());
    let kinds: Vec<_> = f.inline_objects.iter().map(|o| key_of(o).0).collect();
    assert_eq!(kinds, ["HorizontalAutoscaler", "NodePool"]);
    let w = &f.workloads[0];
    assert_eq!((w.name.as_str(), w.replicas), ("web", 4));
    // minAvailable 75% of 4 = 3, so one pod may be unavailable.
    assert_eq!(w.max_unavailable, Some(1));
    // The default load: 20% to 80% of what 4 pods serve; a pod uses its 2 CPUs at 100 units.
    assert!(
        matches!(w.load, crate::scenario::LoadSpec::Diurnal { min, max, .. } if min == 80.0 && max == 320.0)
    );
    assert_eq!(w.per_pod.cpu_per_unit, 20.0);
    assert!(merged.notes.is_empty(), "{:?}", merged.notes);
    // The result loads as a scenario.
    let yaml = serde_yaml::to_string(f).unwrap();
    crate::scenario::load_str(&yaml, std::path::Path::new("dir")).unwrap();
}

#[test]
fn with_a_scenario_objects_replace_by_kind_and_name_or_are_added() {
    let (file, path) = base();
    let api = DEPLOYMENT.replace("name: web, namespace: shop", "name: api, namespace: app");
    let hpa = HPA
        .replace(
            "name: web, namespace: shop",
            "name: api-hpa, namespace: app",
        )
        .replace("name: web }", "name: api }");
    let m = taken(&format!("{api}---\n{hpa}---\n{OUR_POOL}")).unwrap();
    let merged = merge(&file, &path, &m, true, "dir").unwrap();
    let f = &merged.file;
    assert_eq!(f.variants.len(), file.variants.len());
    let keys: Vec<_> = f.inline_objects.iter().map(key_of).collect();
    // api-hpa replaced in place, the pools of the scenario kept, ours added.
    assert_eq!(keys.iter().filter(|k| k.2 == "api-hpa").count(), 1);
    let hpa = f
        .inline_objects
        .iter()
        .find(|o| key_of(o).2 == "api-hpa")
        .unwrap();
    assert_eq!(
        hpa.pointer("/spec/maxReplicas"),
        Some(&serde_json::json!(10))
    );
    assert!(keys.iter().any(|k| k.2 == "spot-general") && keys.iter().any(|k| k.2 == "ours"));
    // The api workload keeps the scenario's load, takes the manifest's replicas and requests.
    let api = f.workloads.iter().find(|w| w.name == "api").unwrap();
    assert_eq!((api.replicas, api.pod.requests.cpu_millis), (4, 2000));
    assert!(matches!(api.load, crate::scenario::LoadSpec::Diurnal { max, .. } if max == 800.0));
    assert_eq!(api.pod.startup_seconds, 20.0);
    assert_eq!(
        merged.notes,
        [
            "f.yaml: document 2: HorizontalAutoscaler app/api-hpa: replaces the scenario's",
            "f.yaml: document 1: Deployment app/api: replaces the replicas and pod of the scenario's workload (its load stays)",
        ]
    );
    let yaml = serde_yaml::to_string(f).unwrap();
    let scenarios = crate::scenario::load_str(&yaml, std::path::Path::new("dir")).unwrap();
    assert_eq!(scenarios.len(), file.variants.len());
}

#[test]
fn nodes_are_grouped_and_those_the_catalog_lacks_are_named() {
    let (file, path) = base();
    let other = NODE.replace("name: ip-10-0-0-1", "name: ip-10-0-0-2");
    let unknown = NODE
        .replace("name: ip-10-0-0-1", "name: odd")
        .replace("m6i.large", "x9.huge");
    let zoneless = NODE
        .replace("name: ip-10-0-0-1", "name: nozone")
        .replace("    topology.kubernetes.io/zone: us-east-1a\n", "");
    let m = taken(&format!("{NODE}---\n{other}---\n{unknown}---\n{zoneless}")).unwrap();
    let merged = merge(&file, &path, &m, false, "dir").unwrap();
    let nodes = &merged.file.start_nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].count, nodes[0].capacity_type.as_str()),
        (2, "spot")
    );
    // No NodePool `general` among the objects: the nodes start static.
    assert_eq!(nodes[0].node_pool, None);
    let notes = merged.notes.join("\n");
    assert!(
        notes.contains("Node odd: instance type x9.huge is not in the catalog: left out"),
        "{notes}"
    );
    assert!(notes.contains("Node nozone: no zone label"), "{notes}");
    assert!(
        notes.contains("NodePool general is not among the objects"),
        "{notes}"
    );
}

#[test]
fn an_object_given_twice_is_taken_once_with_a_note() {
    let (file, path) = base();
    let twice = HPA.replace("maxReplicas: 10", "maxReplicas: 11");
    let m = taken(&format!(
        "{DEPLOYMENT}---\n{HPA}---\n{twice}---\n{DEPLOYMENT}"
    ))
    .unwrap();
    let merged = merge(&file, &path, &m, false, "dir").unwrap();
    assert_eq!(merged.file.inline_objects.len(), 1);
    let hpa = &merged.file.inline_objects[0];
    assert_eq!(
        hpa.pointer("/spec/maxReplicas"),
        Some(&serde_json::json!(11))
    );
    assert_eq!(merged.file.workloads.len(), 1);
    assert_eq!(
        merged.notes,
        [
            "f.yaml: document 3: HorizontalAutoscaler shop/web: is given twice: the later one is taken",
            "f.yaml: document 4: Deployment shop/web: a workload of this namespace and name is given twice: the later one is taken",
        ]
    );
}

#[test]
fn an_autoscaler_without_its_workload_is_left_out_with_a_note() {
    let (file, path) = base();
    let m = taken(HPA).unwrap();
    let merged = merge(&file, &path, &m, false, "dir").unwrap();
    assert!(merged.file.inline_objects.is_empty());
    assert_eq!(
        merged.notes,
        [
            "HorizontalAutoscaler shop/web: its scale target \"web\" is no Deployment or StatefulSet taken: left out"
        ]
    );
}

#[test]
fn a_folder_is_read_by_extension_in_name_order_and_a_file_alone_too() {
    let dir = std::env::temp_dir().join(format!("ballast-manifests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("b.yml"), HPA).unwrap();
    std::fs::write(dir.join("a.yaml"), DEPLOYMENT).unwrap();
    std::fs::write(
        dir.join("c.json"),
        r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "kind: [not read").unwrap();
    std::fs::write(dir.join("sub/d.yaml"), "kind: [not read").unwrap();
    let m = read_dir(&dir).unwrap();
    assert_eq!(
        m.counts_line(),
        "1 Deployment, 1 HorizontalPodAutoscaler, 1 Node"
    );
    assert!(
        m.workloads[0]
            .at
            .to_string()
            .ends_with("a.yaml: document 1")
    );
    let one = read_dir(&dir.join("b.yml")).unwrap();
    assert_eq!(one.counts_line(), "1 HorizontalPodAutoscaler");
    let e = read_dir(&dir.join("sub/d.yaml")).unwrap_err().to_string();
    assert!(e.ends_with("d.yaml: document 1: (yaml): did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 7"), "{e}");
    std::fs::remove_dir_all(dir.join("sub")).unwrap();
    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    std::fs::remove_file(dir.join("b.yml")).unwrap();
    std::fs::remove_file(dir.join("c.json")).unwrap();
    let e = read_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("no *.yaml, *.yml or *.json file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_captured_object_that_does_not_map_is_left_out_and_the_rest_taken() {
    let docs = |text: &str| documents_of(text, "cluster").unwrap();
    let mut captured = docs(DEPLOYMENT);
    let queue = SCALED_OBJECT.replace(
        "{ type: cpu, metricType: Utilization, metadata: { value: \"60\" } }",
        "{ type: redis, metadata: { address: \"redis:6379\", listName: jobs, listLength: \"5\" }, authenticationRef: { name: missing } }",
    );
    assert_ne!(queue, SCALED_OBJECT);
    captured.extend(docs(&queue));
    let m = take_captured(captured);
    assert_eq!(m.counts_line(), "1 Deployment");
    assert_eq!(m.left_out.len(), 1, "{:?}", m.left_out);
    assert!(
        m.left_out[0].contains("ScaledObject shop/worker: spec.triggers[0].authenticationRef"),
        "{:?}",
        m.left_out
    );
}
