//! Taken objects put into a scenario. The rules (`docs/simulator.md`, "Your own objects"):
//!
//! - with the scenario given whole (`-f`, a file, `--scenario NAME`), an object replaces the
//!   scenario's object of the same kind, namespace and name (upstream kinds compared in their
//!   Ballast form), else it is added; a workload replaces the scenario's workload of the same
//!   namespace and name (its replicas and pod template; the load, `perPod`, `kind` and start-up
//!   time stay the scenario's), else it is added with the default load; Nodes, when there are
//!   any, replace `startNodes` as a whole;
//! - with no scenario, only the default scenario's environment is kept (catalog, duration,
//!   start, seed, settings): its objects, workloads, batch, start nodes and variants are not;
//! - a PodDisruptionBudget sets `maxUnavailable` of every workload of its namespace whose pod
//!   labels it selects, counted at the workload's starting replicas;
//! - a HorizontalAutoscaler whose scale target is no workload of the result is left out, said in
//!   a note (the simulator would refuse the scenario);
//! - a Node whose instance type, zone or capacity type has no offering in the catalog is left
//!   out, said in a note; one of a NodePool the result does not hold starts as a static node.

use super::{Manifests, TakenNode, TakenWorkload, key_of};
use crate::scenario::{
    BatchSource, CatalogRef, LoadSpec, PerPod, ScenarioError, ScenarioFile, StartNodes, Workload,
    WorkloadKind,
};
use ballast_scheduling::catalog::CatalogFile;
use ballast_scheduling::model::Taint;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The scenario the objects made, and what the merge left out or changed, one line each.
#[derive(Debug, Clone)]
pub struct Merged {
    pub file: ScenarioFile,
    pub notes: Vec<String>,
}

/// Load units one pod of a workload without a load of its own serves per second.
const DEFAULT_CAPACITY: f64 = 100.0;

/// Puts `taken` into the scenario `base` (read from `base_path`). `whole`: keep the base's own
/// objects, workloads, batch, start nodes and variants; otherwise keep only its environment.
/// `origin` names where the objects came from (a folder, `cluster`).
pub fn merge(
    base: &ScenarioFile,
    base_path: &Path,
    taken: &Manifests,
    whole: bool,
    origin: &str,
) -> Result<Merged, ScenarioError> {
    let mut file = base.clone();
    let mut notes = Vec::new();
    anchor_paths(&mut file, base_path);
    let mut objects = base_objects(&file, base_path)?;
    file.objects.clear();
    if !whole {
        file.name = "objects".into();
        file.description = format!(
            "the objects of {origin}, on the catalog and settings of scenario {}",
            base.name
        );
        objects.clear();
        file.workloads.clear();
        file.batch.clear();
        file.start_nodes.clear();
        file.variants.clear();
    }
    let scenario_objects = objects.len();
    for t in &taken.objects {
        let (kind, namespace, name) = t.key();
        match objects.iter().position(|o| key_of(o) == t.key()) {
            Some(i) => {
                let what = if i < scenario_objects {
                    "replaces the scenario's"
                } else {
                    "is given twice: the later one is taken"
                };
                notes.push(format!(
                    "{}: {kind} {}: {what}",
                    t.at,
                    qualified(&namespace, &name)
                ));
                objects[i] = t.object.clone();
            }
            None => objects.push(t.object.clone()),
        }
    }
    let scenario_workloads = file.workloads.len();
    for w in &taken.workloads {
        put_workload(&mut file.workloads, scenario_workloads, w, &mut notes);
    }
    for b in &taken.budgets {
        let mut matched = 0;
        for w in file.workloads.iter_mut() {
            let mut labels = w.pod.labels.clone();
            labels.entry("app".into()).or_insert_with(|| w.name.clone());
            if b.selects(&w.namespace, &labels) {
                w.max_unavailable = b.max_unavailable(w.replicas);
                matched += 1;
            }
        }
        if matched == 0 {
            notes.push(format!(
                "{}: PodDisruptionBudget {}/{} selects no workload: left out",
                b.at, b.namespace, b.name
            ));
        } else if b.limit.is_none() {
            notes.push(format!(
                "{}: PodDisruptionBudget {}/{} sets neither minAvailable nor maxUnavailable: no limit",
                b.at, b.namespace, b.name
            ));
        }
    }
    drop_orphan_autoscalers(&mut objects, &file.workloads, &mut notes);
    if !taken.nodes.is_empty() {
        let catalog = catalog_of(&file)?;
        let pools = pool_names(&objects);
        file.start_nodes = start_nodes(&taken.nodes, &catalog, &pools, &mut notes);
    }
    file.inline_objects = objects;
    Ok(Merged { file, notes })
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// A path of the scenario made absolute (or left `bundled:`), so the scenario reads the same
/// files wherever it is saved.
fn anchored(base_path: &Path, written: &str) -> String {
    let resolved = crate::bundle::resolve(base_path, written);
    if crate::bundle::is_bundled(&resolved) {
        return resolved.display().to_string();
    }
    std::path::absolute(&resolved)
        .unwrap_or(resolved)
        .display()
        .to_string()
}

fn anchor_paths(file: &mut ScenarioFile, base_path: &Path) {
    if let CatalogRef::Path(p) = &file.catalog {
        file.catalog = CatalogRef::Path(anchored(base_path, p));
    }
    for o in file.objects.iter_mut() {
        *o = anchored(base_path, o);
    }
    for w in file.workloads.iter_mut() {
        if let LoadSpec::Trace { path, .. } = &mut w.load {
            *path = anchored(base_path, path);
        }
    }
    for b in file.batch.iter_mut() {
        if let BatchSource::Openb { path, .. } = b {
            *path = anchored(base_path, path);
        }
    }
}

/// The base scenario's objects (files and inline) in their Ballast form.
fn base_objects(file: &ScenarioFile, base_path: &Path) -> Result<Vec<Value>, ScenarioError> {
    let mut out = Vec::new();
    for f in &file.objects {
        let path = PathBuf::from(f);
        let text = crate::bundle::read(&path)?;
        for (i, doc) in ballast_api::validate::yaml_documents(&text)
            .into_iter()
            .enumerate()
        {
            let doc = doc.map_err(|e| {
                ScenarioError::invalid(&path, format!("document {}", i + 1), e.message)
            })?;
            out.push(ballast_form(&doc).map_err(|m| ScenarioError::invalid(&path, "(object)", m))?);
        }
    }
    for (i, doc) in file.inline_objects.iter().enumerate() {
        out.push(
            ballast_form(doc)
                .map_err(|m| ScenarioError::invalid(base_path, format!("inlineObjects[{i}]"), m))?,
        );
    }
    Ok(out)
}

fn ballast_form(doc: &Value) -> Result<Value, String> {
    crate::scenario::to_ballast(doc)
}

/// Adds `w`, or puts its replicas and pod template into the workload of its namespace and name.
/// `scenario_workloads`: how many of `workloads` are the scenario's own (the rest were taken).
fn put_workload(
    workloads: &mut Vec<Workload>,
    scenario_workloads: usize,
    w: &TakenWorkload,
    notes: &mut Vec<String>,
) {
    let label = format!("{}: {} {}/{}", w.at, w.kind, w.namespace, w.name);
    for field in &w.unmapped {
        notes.push(format!("{label}: {field}"));
    }
    let found = workloads
        .iter()
        .position(|x| x.namespace == w.namespace && x.name == w.name);
    if let Some(i) = found {
        notes.push(if i < scenario_workloads {
            format!("{label}: replaces the replicas and pod of the scenario's workload (its load stays)")
        } else {
            format!("{label}: a workload of this namespace and name is given twice: the later one is taken")
        });
        let existing = &mut workloads[i];
        let startup = existing.pod.startup_seconds;
        existing.replicas = w.replicas;
        existing.pod = w.pod.clone();
        existing.pod.startup_seconds = startup;
        return;
    }
    let (load, per_pod) = default_load(w.replicas, &w.pod.requests);
    workloads.push(Workload {
        name: w.name.clone(),
        namespace: w.namespace.clone(),
        replicas: w.replicas,
        pod: w.pod.clone(),
        load,
        per_pod,
        kind: WorkloadKind::Service,
        max_unavailable: None,
    });
}

/// The load of a workload the scenario says nothing of: a daily curve from 20% to 80% of what
/// its starting replicas serve (100 units per pod per second), trough at 04:00; a pod uses its
/// CPU request at 100 units (5m per unit without a CPU request) and half its memory request.
pub fn default_load(
    replicas: i32,
    requests: &ballast_scheduling::model::Resources,
) -> (LoadSpec, PerPod) {
    let serves = f64::from(replicas.max(1)) * DEFAULT_CAPACITY;
    let cpu = requests.cpu_millis as f64;
    let per_pod = PerPod {
        capacity: DEFAULT_CAPACITY,
        cpu_per_unit: if cpu > 0.0 {
            cpu / DEFAULT_CAPACITY
        } else {
            5.0
        },
        base_cpu: 0.0,
        memory: (requests.memory_bytes > 0)
            .then(|| ballast_scheduling::quantity::format_bytes(requests.memory_bytes / 2)),
        memory_per_unit: None,
    };
    let load = LoadSpec::Diurnal {
        min: 0.2 * serves,
        max: 0.8 * serves,
        trough_hour: 4.0,
        weekend_factor: 1.0,
    };
    (load, per_pod)
}

/// Leaves out HorizontalAutoscalers whose scale target is not a workload of the scenario.
fn drop_orphan_autoscalers(
    objects: &mut Vec<Value>,
    workloads: &[Workload],
    notes: &mut Vec<String>,
) {
    objects.retain(|o| {
        let (kind, namespace, name) = key_of(o);
        if kind != "HorizontalAutoscaler" {
            return true;
        }
        let target = o
            .pointer("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace = if namespace.is_empty() { "default".to_string() } else { namespace };
        let found = workloads
            .iter()
            .any(|w| w.name == target && w.namespace == namespace);
        if !found {
            notes.push(format!(
                "HorizontalAutoscaler {namespace}/{name}: its scale target {target:?} is no Deployment or StatefulSet taken: left out"
            ));
        }
        found
    });
}

fn pool_names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(key_of)
        .filter(|(kind, _, _)| kind == "NodePool")
        .map(|(_, _, name)| name)
        .collect()
}

/// The scenario's catalog, read.
fn catalog_of(file: &ScenarioFile) -> Result<CatalogFile, ScenarioError> {
    match &file.catalog {
        CatalogRef::Inline(c) => Ok(c.clone()),
        CatalogRef::Path(p) => {
            let path = PathBuf::from(p);
            let text = crate::bundle::read(&path)?;
            serde_yaml::from_str(&text)
                .map_err(|e| ScenarioError::invalid(&path, "(catalog)", e.to_string()))
        }
    }
}

/// Why `node` cannot start in the simulator, if it cannot.
fn unmappable(node: &TakenNode, catalog: &CatalogFile) -> Option<String> {
    let Some(type_name) = &node.instance_type else {
        return Some("no instance-type label (node.kubernetes.io/instance-type)".into());
    };
    let Some(t) = catalog.types.iter().find(|t| &t.name == type_name) else {
        return Some(format!("instance type {type_name} is not in the catalog"));
    };
    let Some(zone) = &node.zone else {
        return Some("no zone label (topology.kubernetes.io/zone)".into());
    };
    if !catalog.zones.contains(zone) {
        return Some(format!(
            "zone {zone} is not in the catalog (zones: {})",
            catalog.zones.join(", ")
        ));
    }
    match node.capacity_type.as_str() {
        "on-demand" => None,
        "spot" if t.spot.contains_key(zone) => None,
        "spot" => Some(format!(
            "the catalog has no spot offering of {type_name} in {zone}"
        )),
        other => Some(format!(
            "capacity type {other:?} is neither on-demand nor spot"
        )),
    }
}

/// The nodes as start nodes, identical ones counted together.
fn start_nodes(
    nodes: &[TakenNode],
    catalog: &CatalogFile,
    pools: &[String],
    notes: &mut Vec<String>,
) -> Vec<StartNodes> {
    type Shape = (
        String,
        String,
        String,
        Option<String>,
        BTreeMap<String, String>,
        Vec<Taint>,
    );
    let mut groups: BTreeMap<Shape, u32> = BTreeMap::new();
    for n in nodes {
        if let Some(why) = unmappable(n, catalog) {
            notes.push(format!("{}: Node {}: {why}: left out", n.at, n.name));
            continue;
        }
        let pool = n.node_pool.clone().filter(|p| {
            let known = pools.contains(p);
            if !known {
                notes.push(format!(
                    "{}: Node {}: NodePool {p} is not among the objects: started as a static node",
                    n.at, n.name
                ));
            }
            known
        });
        let mut taints = n.taints.clone();
        taints.sort();
        let shape = (
            n.instance_type.clone().unwrap_or_default(),
            n.zone.clone().unwrap_or_default(),
            n.capacity_type.clone(),
            pool,
            n.labels.clone(),
            taints,
        );
        *groups.entry(shape).or_default() += 1;
    }
    groups
        .into_iter()
        .map(
            |((instance_type, zone, capacity_type, node_pool, labels, taints), count)| StartNodes {
                instance_type,
                zone,
                capacity_type,
                count,
                node_pool,
                labels,
                taints,
            },
        )
        .collect()
}
