//! The entry point: a `VerticalAutoscaler`, the usage state of its tracked containers and `now`
//! → a recommendation per container, with the reasons behind it.

use ballast_api::vertical::{
    EstimatorMode, RecommendedContainerResources, RecommendedPodResources, ResourceList,
    VerticalAutoscaler, VerticalAutoscalerSpec,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

use crate::aggregate::ContainerState;
use crate::error::Error;
use crate::estimate::{Estimate, estimate, floors};
use crate::policy::{Resource, container_policy};
use crate::settings::{DAY_SECONDS, Settings};

/// A container with no sample for this long gets no recommendation (seconds).
pub const STALE_AFTER_SECONDS: i64 = 8 * DAY_SECONDS;
/// Below this confidence (days of history) a recommendation is flagged LowConfidence.
pub const LOW_CONFIDENCE_DAYS: f64 = 1.0;

/// One tracked container of the object's pods: its name in the pod template and its usage.
#[derive(Debug, Clone, Copy)]
pub struct TrackedContainer<'a> {
    pub name: &'a str,
    pub state: &'a ContainerState,
}

/// One resource's recommendation, base units (cores or bytes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRecommendation {
    pub target: f64,
    pub lower_bound: f64,
    pub upper_bound: f64,
    /// The target before minAllowed/maxAllowed.
    pub uncapped_target: f64,
}

/// The recommendation of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecommendation {
    pub container_name: String,
    pub cpu: Option<ResourceRecommendation>,
    pub memory: Option<ResourceRecommendation>,
    /// Days of history backing the bounds.
    pub confidence: f64,
    /// Why the values are what they are, in words.
    pub reasons: Vec<String>,
}

/// The recommendations of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub containers: Vec<ContainerRecommendation>,
    /// Some recommended container has less than [`LOW_CONFIDENCE_DAYS`] of history.
    pub low_confidence: bool,
    /// Containers left out, with why.
    pub skipped: Vec<String>,
}

/// Recommends requests for every tracked container of `object` at `now`.
pub fn recommend(
    object: &VerticalAutoscaler,
    containers: &[TrackedContainer<'_>],
    now: Timestamp,
) -> Result<Recommendation, Error> {
    let name = object.metadata.name.as_deref().unwrap_or("<unnamed>");
    let settings = Settings::from_spec(&object.spec, name)?;
    recommend_with(&object.spec, name, &settings, containers, now)
}

/// [`recommend`] with the settings already read (the evaluator and benches call this).
pub fn recommend_with(
    spec: &VerticalAutoscalerSpec,
    name: &str,
    settings: &Settings,
    containers: &[TrackedContainer<'_>],
    now: Timestamp,
) -> Result<Recommendation, Error> {
    let (cpu_floor, memory_floor) = floors(settings, containers.len());
    let mut out = Recommendation {
        containers: Vec::with_capacity(containers.len()),
        low_confidence: false,
        skipped: Vec::new(),
    };
    for c in containers {
        let policy = container_policy(spec, name, c.name)?;
        if !policy.enabled {
            out.skipped.push(format!("{}: mode Off", c.name));
            continue;
        }
        if c.state.is_empty() {
            out.skipped.push(format!("{}: no usage sample yet", c.name));
            continue;
        }
        if now.as_second() - c.state.last_sample() > STALE_AFTER_SECONDS {
            out.skipped
                .push(format!("{}: no sample for more than 8 days", c.name));
            continue;
        }
        let e = estimate(c.state, settings);
        let mut reasons = vec![describe_mode(settings, c.state)];
        let mut resource = |r: Resource, value: Option<Estimate>, floor: f64| {
            let value = value.filter(|_| policy.controls(r))?;
            let floored = value.at_least(floor);
            if floored.target > value.target {
                reasons.push(format!("{}: raised to the per-container floor", r.name()));
            }
            let capped = policy.cap(r, floored);
            if capped.target != floored.target {
                reasons.push(format!(
                    "{}: target capped by the resource policy",
                    r.name()
                ));
            }
            Some(ResourceRecommendation {
                target: capped.target,
                lower_bound: capped.lower,
                upper_bound: capped.upper,
                uncapped_target: floored.target,
            })
        };
        let cpu = resource(Resource::Cpu, e.cpu, cpu_floor);
        let memory = resource(Resource::Memory, e.memory, memory_floor);
        if e.confidence < LOW_CONFIDENCE_DAYS {
            out.low_confidence = true;
            reasons.push(format!(
                "low confidence: {:.2} days of history widen the bounds",
                e.confidence
            ));
        }
        out.containers.push(ContainerRecommendation {
            container_name: c.name.to_string(),
            cpu,
            memory,
            confidence: e.confidence,
            reasons,
        });
    }
    Ok(out)
}

fn describe_mode(settings: &Settings, state: &ContainerState) -> String {
    let pct = |p: f64| p * 100.0;
    match (settings.mode, state.adaptive()) {
        (EstimatorMode::Adaptive, Some(a)) => {
            let (ci, cpu) = a.cpu_choice();
            let (mi, memory) = a.memory_choice();
            format!(
                "adaptive: cpu candidate {ci} ({}), memory candidate {mi} ({})",
                cpu.describe(),
                memory.describe()
            )
        }
        _ => format!(
            "percentile: cpu P{} +{}% margin, memory P{} of interval peaks +{}% margin",
            pct(settings.cpu.target_percentile),
            pct(settings.cpu.safety_margin),
            pct(settings.memory.target_percentile),
            pct(settings.memory.safety_margin)
        ),
    }
}

/// A CPU amount as a quantity, rounded up to the millicore.
pub fn cpu_quantity(cores: f64) -> Quantity {
    Quantity(format!("{}m", (cores * 1000.0).ceil().max(0.0) as u64))
}

/// A memory amount as a quantity, rounded up to the byte.
pub fn memory_quantity(bytes: f64) -> Quantity {
    Quantity(format!("{}", bytes.ceil().max(0.0) as u64))
}

impl Recommendation {
    /// The recommendation as `status.recommendation`.
    pub fn to_status(&self) -> RecommendedPodResources {
        let list = |c: &ContainerRecommendation, pick: fn(&ResourceRecommendation) -> f64| {
            let mut l = ResourceList::new();
            if let Some(r) = &c.cpu {
                l.insert("cpu".into(), cpu_quantity(pick(r)));
            }
            if let Some(r) = &c.memory {
                l.insert("memory".into(), memory_quantity(pick(r)));
            }
            l
        };
        RecommendedPodResources {
            container_recommendations: self
                .containers
                .iter()
                .map(|c| RecommendedContainerResources {
                    container_name: c.container_name.clone(),
                    target: list(c, |r| r.target),
                    lower_bound: Some(list(c, |r| r.lower_bound)),
                    upper_bound: Some(list(c, |r| r.upper_bound)),
                    uncapped_target: Some(list(c, |r| r.uncapped_target)),
                })
                .collect(),
        }
    }
}
