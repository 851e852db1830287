//! Scenario files: the cluster at the start, the instance catalog, NodePools and autoscalers in
//! their real CRD format, workloads with load traces, batch pod lists, and variants to compare.
//! See `simulations/README.md` for the format with examples.

use ballast_api::vertical::VerticalAutoscaler;
use ballast_api::{HorizontalAutoscaler, NodePool};
use ballast_scheduling::catalog::CatalogFile;
use ballast_scheduling::model::{Resources, Taint, Toleration, TopologySpreadConstraint};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a scenario could not be loaded. Every message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
}

impl ScenarioError {
    pub fn invalid(path: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        ScenarioError::Invalid {
            path: path.display().to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A scenario as written in its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Simulated time, a duration ("24h", "7d" is written "168h").
    pub duration: String,
    /// Wall-clock instant the simulation starts at (RFC 3339), for cron schedules.
    #[serde(default = "default_start")]
    pub start: String,
    /// Seed of every random draw (start-up jitter).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Instance catalog: a path relative to this file, a bundled one (`bundled:aws-like`), or the
    /// catalog inline.
    pub catalog: CatalogRef,
    /// Files of Ballast objects (NodePool, KwokNodeClass, HorizontalAutoscaler...) in CRD format,
    /// relative to this file. Upstream objects (HPA, ScaledObject, Karpenter) are converted first.
    #[serde(default)]
    pub objects: Vec<String>,
    /// Objects written inline.
    #[serde(default)]
    pub inline_objects: Vec<Value>,
    /// Nodes present at the start.
    #[serde(default)]
    pub start_nodes: Vec<StartNodes>,
    #[serde(default)]
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub batch: Vec<BatchSource>,
    #[serde(default)]
    pub settings: Settings,
    /// Variants to run; none means one run of the scenario as written ("baseline").
    #[serde(default)]
    pub variants: Vec<Variant>,
}

fn default_start() -> String {
    "2026-01-05T00:00:00Z".into()
}
fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CatalogRef {
    Path(String),
    Inline(CatalogFile),
}

/// `count` identical nodes present at time 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartNodes {
    pub instance_type: String,
    pub zone: String,
    #[serde(default = "on_demand")]
    pub capacity_type: String,
    #[serde(default = "one")]
    pub count: u32,
    /// NodePool the nodes belong to; without one they are static (never disrupted).
    #[serde(default)]
    pub node_pool: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
}

fn on_demand() -> String {
    "on-demand".into()
}
fn one() -> u32 {
    1
}

/// A Deployment-like workload whose pods turn load into resource usage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// Replicas at the start (and for good, without an autoscaler targeting the workload).
    pub replicas: i32,
    pub pod: PodTemplate,
    /// The load the workload serves (units per second), or the arrival rate of its queue.
    pub load: LoadSpec,
    /// How a pod turns load into usage.
    #[serde(default)]
    pub per_pod: PerPod,
    /// `service`: load is served as it comes (capacity shortfall is under-provision);
    /// `queue`: load arrives into a backlog that ready pods drain at `perPod.capacity`.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// PodDisruptionBudget: at most this many of the workload's pods unavailable at once.
    #[serde(default)]
    pub max_unavailable: Option<i32>,
}

fn default_ns() -> String {
    "default".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkloadKind {
    #[default]
    Service,
    Queue,
}

/// What every pod of a workload looks like to the scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    pub requests: Resources,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default)]
    pub priority: i32,
    /// Seconds from binding to Ready.
    #[serde(default = "default_startup")]
    pub startup_seconds: f64,
}

pub(crate) fn default_startup() -> f64 {
    10.0
}

/// Load over time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum LoadSpec {
    /// A constant.
    Constant { value: f64 },
    /// A daily curve: `min` at `troughHour`, `max` twelve hours later, cosine in between.
    Diurnal {
        min: f64,
        max: f64,
        #[serde(default = "default_trough")]
        trough_hour: f64,
        /// Weekend days (Saturday, Sunday) are scaled by this factor.
        #[serde(default = "one_f")]
        weekend_factor: f64,
    },
    /// Points read from a CSV file (`seconds,value` or `HH:MM,value` rows, header optional),
    /// linearly interpolated; `repeat` loops the trace with the period of its last point.
    Trace {
        path: String,
        #[serde(default)]
        repeat: bool,
        #[serde(default = "one_f")]
        scale: f64,
    },
    /// Inline points `[seconds, value]`, stepwise (each value holds until the next point).
    Steps { points: Vec<(f64, f64)> },
}

fn default_trough() -> f64 {
    4.0
}
fn one_f() -> f64 {
    1.0
}

/// How one pod turns load into usage and metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerPod {
    /// Load units one ready pod serves per second at most.
    pub capacity: f64,
    /// CPU millicores used per unit of load.
    pub cpu_per_unit: f64,
    /// CPU millicores used when idle.
    pub base_cpu: f64,
    /// Working-set memory in bytes when idle (a quantity).
    #[serde(default)]
    pub memory: Option<String>,
    /// Working-set memory added per unit of load the pod serves (a quantity, e.g. `2Mi`); absent:
    /// memory stays at `memory` whatever the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_unit: Option<String>,
}

impl PerPod {
    /// CPU millicores one ready pod uses while serving `load` units per second.
    pub fn cpu_millis(&self, load: f64) -> f64 {
        self.base_cpu + load * self.cpu_per_unit
    }

    /// Working-set bytes one ready pod uses while serving `load` units per second (a quantity
    /// that does not parse counts as 0; `load` checks them).
    pub fn memory_bytes(&self, load: f64) -> f64 {
        let bytes = |q: &Option<String>| {
            q.as_deref()
                .and_then(|m| ballast_api::common::parse_quantity(m).ok())
                .unwrap_or(0.0)
        };
        let per_unit = match &self.memory_per_unit {
            Some(_) => bytes(&self.memory_per_unit) * load,
            None => 0.0,
        };
        bytes(&self.memory) + per_unit
    }
}

impl Default for PerPod {
    fn default() -> Self {
        PerPod {
            capacity: 100.0,
            cpu_per_unit: 5.0,
            base_cpu: 20.0,
            memory: None,
            memory_per_unit: None,
        }
    }
}

/// Independent pods arriving and leaving at given times (batch jobs, or a replayed trace).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "format", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum BatchSource {
    /// The Alibaba `openb_pod_list` CSV (name, cpu_milli, memory_mib, num_gpu, gpu_milli,
    /// gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time), times in seconds.
    Openb {
        path: String,
        /// Only pods whose creation falls in [from, from + duration of the scenario).
        #[serde(default)]
        from_seconds: f64,
        /// Keep at most this many pods (in creation order).
        #[serde(default)]
        limit: Option<usize>,
        /// Skip pods that ask for GPUs (the catalog may have none).
        #[serde(default = "yes")]
        skip_gpu: bool,
    },
    /// A burst: `count` pods of `requests` created at `at`, each running `runSeconds`.
    Burst {
        name: String,
        at: String,
        count: u32,
        requests: Resources,
        run_seconds: f64,
        #[serde(default)]
        tolerations: Vec<Toleration>,
        #[serde(default)]
        node_selector: BTreeMap<String, String>,
    },
}

fn yes() -> bool {
    true
}

/// Timings of the environment (not of Ballast).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Age of the metrics an autoscaler reads (metrics pipeline lag), seconds.
    pub metrics_lag_seconds: f64,
    /// From NodeClaim creation to the node being Ready, seconds.
    pub node_startup_seconds: f64,
    /// Per instance type override of `nodeStartupSeconds`.
    pub node_startup_by_type: BTreeMap<String, f64>,
    /// Relative jitter (0.1 = ±10%) applied to pod and node start-up times, drawn from `seed`.
    pub startup_jitter: f64,
    /// How kube-scheduler scores feasible nodes.
    pub scheduler_scoring: Scoring,
    /// Seconds between two passes of the disruption controller.
    pub disruption_interval_seconds: f64,
    /// Provisioning batch window: idle and max seconds.
    pub batch_idle_seconds: f64,
    pub batch_max_seconds: f64,
    /// Seconds between two samples of the time series in the report.
    pub sample_seconds: f64,
    /// Seconds an evicted pod takes to terminate.
    pub termination_seconds: f64,
    /// Spot interruptions (`crate::spot`); absent: no node is ever interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_interruptions: Option<crate::spot::SpotInterruptions>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            metrics_lag_seconds: 30.0,
            node_startup_seconds: 60.0,
            node_startup_by_type: BTreeMap::new(),
            startup_jitter: 0.0,
            scheduler_scoring: Scoring::LeastAllocated,
            disruption_interval_seconds: 10.0,
            batch_idle_seconds: 1.0,
            batch_max_seconds: 10.0,
            sample_seconds: 60.0,
            termination_seconds: 0.0,
            spot_interruptions: None,
        }
    }
}

/// kube-scheduler's NodeResourcesFit scoring strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scoring {
    /// Default: prefer the emptiest node (spreads pods).
    #[default]
    LeastAllocated,
    /// Bin-packing: prefer the fullest node.
    MostAllocated,
}

/// A named variation of the scenario: JSON merge patches on objects, workloads or settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub patches: Vec<Patch>,
}

/// A JSON merge patch (RFC 7386) applied to one thing: `HorizontalAutoscaler/NAME`,
/// `VerticalAutoscaler/NAME`, `NodePool/NAME`, `Workload/NAME` or `Settings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    pub target: String,
    pub merge: Value,
}

/// A scenario ready to run: files read, objects parsed and validated, one variant applied.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file the scenario was read from.
    pub path: PathBuf,
    pub name: String,
    pub variant: String,
    pub description: String,
    pub duration_seconds: f64,
    pub start: jiff::Timestamp,
    pub seed: u64,
    pub catalog: CatalogFile,
    pub node_pools: Vec<NodePool>,
    pub autoscalers: Vec<HorizontalAutoscaler>,
    /// `VerticalAutoscaler` objects: recommendations, applied as each one's `updateMode` says.
    pub verticals: Vec<VerticalAutoscaler>,
    pub start_nodes: Vec<StartNodes>,
    pub workloads: Vec<Workload>,
    /// Load traces read from files, by workload name.
    pub traces: BTreeMap<String, crate::trace::Trace>,
    pub batch_pods: Vec<crate::trace::BatchPod>,
    pub settings: Settings,
    /// Each spot offering's interruptions per instance-day (`crate::spot`).
    pub spot_rates: crate::spot::SpotRates,
    /// What loading the variant noticed and accepted (a merge patch replacing a whole list).
    pub warnings: Vec<String>,
}

/// Reads a scenario file (on disk, or `bundled:NAME.yaml`, see `crate::bundle`) and everything
/// it points to; returns one runnable scenario per variant (or one "baseline" when the file
/// lists none).
pub fn load(path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let text = crate::bundle::read(path)?;
    load_str(&text, path)
}

/// The scenario file at `path` (on disk or bundled) as written, its paths not yet followed.
pub fn read_file(path: &Path) -> Result<ScenarioFile, ScenarioError> {
    let text = crate::bundle::read(path)?;
    serde_path_to_error_yaml(&text, path)
}

/// Same as [`load`] for a scenario already read; `path` resolves relative file names and names
/// the file in errors.
pub fn load_str(text: &str, path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let file: ScenarioFile = serde_path_to_error_yaml(text, path)?;
    let resolve = |p: &str| -> PathBuf { crate::bundle::resolve(path, p) };

    // The catalog, and where its fields are written (for errors).
    let (catalog, catalog_at) = match &file.catalog {
        CatalogRef::Inline(c) => (c.clone(), (path.to_path_buf(), "catalog.")),
        CatalogRef::Path(p) => {
            let cp = resolve(p);
            let t = crate::bundle::read(&cp)?;
            let c = serde_yaml::from_str(&t)
                .map_err(|e| ScenarioError::invalid(&cp, "(catalog)", e.to_string()))?;
            (c, (cp, ""))
        }
    };

    // Objects: files and inline, converted from upstream kinds when needed, then validated.
    let mut objects: Vec<(String, Value)> = Vec::new();
    for f in &file.objects {
        let op = resolve(f);
        let t = crate::bundle::read(&op)?;
        for (i, doc) in ballast_api::validate::yaml_documents(&t)
            .into_iter()
            .enumerate()
        {
            let v = doc.map_err(|e| {
                ScenarioError::invalid(&op, format!("document {}", i + 1), e.message)
            })?;
            objects.push((op.display().to_string(), v));
        }
    }
    for v in &file.inline_objects {
        objects.push((path.display().to_string(), v.clone()));
    }

    let variants = if file.variants.is_empty() {
        vec![Variant {
            name: "baseline".into(),
            description: String::new(),
            patches: vec![],
        }]
    } else {
        file.variants.clone()
    };

    let duration_seconds = ballast_api::common::parse_duration_seconds(&file.duration)
        .map_err(|e| ScenarioError::invalid(path, "duration", e.to_string()))?;
    let start: jiff::Timestamp = file
        .start
        .parse()
        .map_err(|e: jiff::Error| ScenarioError::invalid(path, "start", e.to_string()))?;

    let mut traces = BTreeMap::new();
    for w in &file.workloads {
        if let LoadSpec::Trace {
            path: p,
            repeat,
            scale,
        } = &w.load
        {
            let tp = resolve(p);
            let t = crate::trace::Trace::read_csv(&tp, *repeat, *scale)?;
            traces.insert(w.name.clone(), t);
        }
    }
    let mut batch_pods = Vec::new();
    for (i, b) in file.batch.iter().enumerate() {
        if let BatchSource::Burst { count, .. } = b {
            crate::limits::check_batch(
                path,
                &format!("batch[{i}].count"),
                batch_pods.len() as u64,
                u64::from(*count),
            )?;
        }
        batch_pods.extend(
            crate::trace::batch_pods(b, &resolve, duration_seconds, start).map_err(
                |e| match e {
                    ScenarioError::Invalid {
                        path,
                        field,
                        message,
                    } => ScenarioError::Invalid {
                        path,
                        field: format!("batch[{i}].{field}"),
                        message,
                    },
                    other => other,
                },
            )?,
        );
    }

    let mut out = Vec::new();
    for variant in variants {
        let mut workloads = file.workloads.clone();
        let mut settings = file.settings.clone();
        let mut objs = objects.clone();
        let mut warnings = Vec::new();
        for (pi, patch) in variant.patches.iter().enumerate() {
            let field = format!("variants[{}].patches[{pi}]", variant.name);
            let mut lists = Vec::new();
            apply_patch(patch, &mut objs, &mut workloads, &mut settings, &mut lists)
                .map_err(|m| ScenarioError::invalid(path, &field, m))?;
            for list in lists {
                warnings.push(format!(
                    "{field} ({}): the merge patch replaces the whole list {list}; write every \
                     entry the variant keeps",
                    patch.target
                ));
            }
        }
        let mut node_pools = Vec::new();
        let mut autoscalers = Vec::new();
        let mut verticals = Vec::new();
        for (oi, (src, obj)) in objs.iter().enumerate() {
            // An object a patch changed is the variant's to answer for, not its file's.
            let blame = |field: String| match patched_by(&variant, obj, &objects[oi].1) {
                Some(patch) => (path.to_path_buf(), format!("{patch}: {field}")),
                None => (PathBuf::from(src), field),
            };
            let obj = to_ballast(obj).map_err(|m| {
                let (p, f) = blame("(object)".into());
                ScenarioError::invalid(&p, f, m)
            })?;
            let report = ballast_api::validate::validate_object(&obj);
            if !report.is_valid() {
                let errs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
                let (p, f) = blame(report.object);
                return Err(ScenarioError::invalid(&p, f, errs.join("; ")));
            }
            match obj.get("kind").and_then(Value::as_str) {
                Some("NodePool") => node_pools.push(parse_obj(&obj, src)?),
                Some("HorizontalAutoscaler") => autoscalers.push(parse_obj(&obj, src)?),
                Some("VerticalAutoscaler") => verticals.push(parse_obj(&obj, src)?),
                _ => {} // node classes and the like carry nothing the simulation needs
            }
        }
        crate::limits::check_variant(path, &workloads, &settings, duration_seconds)
            .and_then(|()| crate::limits::check_static_pools(path, &node_pools))
            .map_err(|e| in_variant(e, &variant, !file.variants.is_empty()))?;
        let spot_rates = crate::spot::rates(&settings, &catalog, path, &catalog_at)
            .map_err(|e| in_variant(e, &variant, !file.variants.is_empty()))?;
        for (i, w) in workloads.iter().enumerate() {
            if w.per_pod.capacity <= 0.0 {
                return Err(ScenarioError::invalid(
                    path,
                    format!("workloads[{i}].perPod.capacity"),
                    "must be above 0",
                ));
            }
            if let Some(q) = &w.per_pod.memory_per_unit {
                check_memory_per_unit(q).map_err(|m| {
                    ScenarioError::invalid(path, format!("workloads[{i}].perPod.memoryPerUnit"), m)
                })?;
            }
            if w.replicas < 0 {
                return Err(ScenarioError::invalid(
                    path,
                    format!("workloads[{i}].replicas"),
                    "must not be negative",
                ));
            }
        }
        out.push(Scenario {
            path: path.to_path_buf(),
            name: file.name.clone(),
            variant: variant.name.clone(),
            description: if variant.description.is_empty() {
                file.description.clone()
            } else {
                variant.description.clone()
            },
            duration_seconds,
            start,
            seed: file.seed,
            catalog: catalog.clone(),
            node_pools,
            autoscalers,
            verticals,
            start_nodes: file.start_nodes.clone(),
            workloads,
            traces: traces.clone(),
            batch_pods: batch_pods.clone(),
            settings,
            spot_rates,
            warnings,
        });
    }
    Ok(out)
}

/// A memory quantity per unit of load: it must parse and not be negative.
fn check_memory_per_unit(q: &str) -> Result<(), String> {
    match ballast_api::common::parse_quantity(q) {
        Ok(v) if v >= 0.0 => Ok(()),
        Ok(_) => Err(format!("{q:?} is negative")),
        Err(e) => Err(format!("{q:?}: {e}")),
    }
}

fn serde_path_to_error_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ScenarioError> {
    let value: Value = serde_yaml::from_str(text)
        .map_err(|e| ScenarioError::invalid(path, "(yaml)", e.to_string()))?;
    serde_json::from_value(value.clone()).map_err(|e| {
        // Re-run with field tracking for a precise message.
        let tracked: Result<T, _> = serde_path_to_error::deserialize(value);
        match tracked {
            Err(te) => ScenarioError::invalid(path, te.path().to_string(), te.inner().to_string()),
            Ok(_) => ScenarioError::invalid(path, "(scenario)", e.to_string()),
        }
    })
}

fn parse_obj<T: serde::de::DeserializeOwned>(obj: &Value, src: &str) -> Result<T, ScenarioError> {
    serde_path_to_error::deserialize(obj.clone()).map_err(|e| {
        ScenarioError::invalid(Path::new(src), e.path().to_string(), e.inner().to_string())
    })
}

/// Ballast objects pass through; upstream ones are converted (notes are not fatal here).
pub(crate) fn to_ballast(obj: &Value) -> Result<Value, String> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if ballast_api::validate::is_ballast_kind(api_version, kind) {
        return Ok(obj.clone());
    }
    ballast_api::convert::convert(obj)
        .map(|c| c.object)
        .map_err(|e| e.to_string())
}

/// The paths (`spec.template.spec.requirements`) where merging `patch` into `target` replaces a
/// non-empty list with another: a merge patch never merges lists, which surprises.
fn replaced_lists(target: &Value, patch: &Value, at: &str, out: &mut Vec<String>) {
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return;
    };
    for (k, v) in p {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match (t.get(k), v) {
            (Some(Value::Array(old)), Value::Array(new)) if !old.is_empty() && old != new => {
                out.push(format!(
                    "{path} ({} entries replaced by {})",
                    old.len(),
                    new.len()
                ));
            }
            (Some(old), new) => replaced_lists(old, new, &path, out),
            (None, _) => {}
        }
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// `variants[NAME].patches[i] (TARGET)` of the first patch of `variant` aimed at `obj`, when the
/// variant changed it from `original`.
fn patched_by(variant: &Variant, obj: &Value, original: &Value) -> Option<String> {
    if obj == original {
        return None;
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let target = format!("{kind}/{name}");
    let (i, patch) = variant
        .patches
        .iter()
        .enumerate()
        .find(|(_, p)| p.target == target)?;
    Some(format!(
        "variants[{}].patches[{i}] ({})",
        variant.name, patch.target
    ))
}

/// `e` with the variant's name before its field, when the file lists variants.
fn in_variant(e: ScenarioError, variant: &Variant, named: bool) -> ScenarioError {
    match e {
        ScenarioError::Invalid {
            path,
            field,
            message,
        } if named => ScenarioError::Invalid {
            path,
            field: format!("variants[{}]: {field}", variant.name),
            message,
        },
        other => other,
    }
}

fn apply_patch(
    patch: &Patch,
    objs: &mut [(String, Value)],
    workloads: &mut [Workload],
    settings: &mut Settings,
    lists: &mut Vec<String>,
) -> Result<(), String> {
    let (kind, name) = patch
        .target
        .split_once('/')
        .unwrap_or((patch.target.as_str(), ""));
    match kind {
        "Settings" => {
            let mut v = serde_json::to_value(&*settings).expect("settings serialize");
            replaced_lists(&v, &patch.merge, "", lists);
            merge(&mut v, &patch.merge);
            *settings = serde_json::from_value(v).map_err(|e| format!("Settings: {e}"))?;
        }
        "Workload" => {
            let w = workloads
                .iter_mut()
                .find(|w| w.name == name)
                .ok_or_else(|| format!("no workload named {name:?}"))?;
            let mut v = serde_json::to_value(&*w).expect("workloads serialize");
            replaced_lists(&v, &patch.merge, "", lists);
            merge(&mut v, &patch.merge);
            *w = serde_json::from_value(v).map_err(|e| format!("Workload/{name}: {e}"))?;
        }
        _ => {
            let hit = objs.iter_mut().find(|(_, o)| {
                let k = o.get("kind").and_then(Value::as_str).unwrap_or_default();
                let n = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                n == name && (k == kind || upstream_kind_of(k) == Some(kind))
            });
            let (_, obj) = hit.ok_or_else(|| format!("no object {kind}/{name} in the scenario"))?;
            // Patches are written against the Ballast form of the object.
            *obj = to_ballast(obj)?;
            replaced_lists(obj, &patch.merge, "", lists);
            merge(obj, &patch.merge);
        }
    }
    Ok(())
}

fn upstream_kind_of(k: &str) -> Option<&'static str> {
    match k {
        "HorizontalPodAutoscaler" | "ScaledObject" => Some("HorizontalAutoscaler"),
        "NodePool" => Some("NodePool"),
        "VerticalPodAutoscaler" => Some("VerticalAutoscaler"),
        _ => None,
    }
}
