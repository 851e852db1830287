//! The tunables of one `VerticalAutoscaler`: VPA's defaults, overridden by `spec.estimation`.

use ballast_api::common::{parse_duration_seconds, parse_quantity};
use ballast_api::vertical::{EstimatorMode, ResourceEstimation, VerticalAutoscalerSpec};
use serde::{Deserialize, Serialize};

use crate::adaptive::Tuning;
use crate::error::Error;

/// How one resource's histogram is read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSettings {
    /// Percentile (0..=1) of the target.
    pub target_percentile: f64,
    /// Percentile (0..=1) of the lower bound.
    pub lower_percentile: f64,
    /// Percentile (0..=1) of the upper bound.
    pub upper_percentile: f64,
    /// Seconds after which a sample weighs half as much as a new one.
    pub half_life_seconds: i64,
    /// Fraction added on top of every percentile (0.15 = 15%).
    pub safety_margin: f64,
}

/// Every tunable of the estimation for one object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub mode: EstimatorMode,
    pub cpu: ResourceSettings,
    pub memory: ResourceSettings,
    /// Smallest CPU request of a whole pod, cores (split evenly across its containers).
    pub pod_min_cpu: f64,
    /// Smallest memory request of a whole pod, bytes (split evenly across its containers).
    pub pod_min_memory: f64,
    /// Length of a memory peak interval, seconds.
    pub memory_interval_seconds: i64,
    /// Samples a day that count as a full day of confidence (1440: one a minute).
    pub samples_per_day: f64,
    /// Cost weights of the Adaptive mode's candidates.
    #[serde(default)]
    pub adaptive: Tuning,
}

/// One day in seconds.
pub const DAY_SECONDS: i64 = 86_400;
/// One mebibyte in bytes.
pub const MIB: f64 = 1024.0 * 1024.0;

impl Default for Settings {
    /// VPA's recommender defaults.
    fn default() -> Settings {
        let resource = |target| ResourceSettings {
            target_percentile: target,
            lower_percentile: 0.5,
            upper_percentile: 0.95,
            half_life_seconds: DAY_SECONDS,
            safety_margin: 0.15,
        };
        Settings {
            mode: EstimatorMode::Percentile,
            cpu: resource(0.9),
            memory: resource(0.9),
            pod_min_cpu: 0.025,
            pod_min_memory: 250.0 * MIB,
            memory_interval_seconds: DAY_SECONDS,
            samples_per_day: 1440.0,
            adaptive: Tuning::default(),
        }
    }
}

impl Settings {
    /// The defaults overridden by `spec.estimation` of the object `name`; every value is checked
    /// (percentiles ordered and within 0..100, positive half-lives, quantities that parse).
    pub fn from_spec(spec: &VerticalAutoscalerSpec, name: &str) -> Result<Settings, Error> {
        let mut s = Settings::default();
        let Some(e) = &spec.estimation else {
            return Ok(s);
        };
        if let Some(mode) = e.mode {
            s.mode = mode;
        }
        if let Some(cpu) = &e.cpu {
            s.cpu = resource_overrides(s.cpu, cpu, name, "spec.estimation.cpu")?;
        }
        if let Some(memory) = &e.memory {
            s.memory = resource_overrides(s.memory, memory, name, "spec.estimation.memory")?;
        }
        if let Some(q) = &e.pod_min_cpu {
            s.pod_min_cpu = quantity(&q.0, name, "spec.estimation.podMinCpu")?;
        }
        if let Some(q) = &e.pod_min_memory {
            s.pod_min_memory = quantity(&q.0, name, "spec.estimation.podMinMemory")?;
        }
        Ok(s)
    }
}

fn quantity(text: &str, name: &str, field: &str) -> Result<f64, Error> {
    match parse_quantity(text) {
        Ok(v) if v >= 0.0 => Ok(v),
        Ok(_) => Err(Error::invalid(name, field, format!("{text:?} is negative"))),
        Err(e) => Err(Error::invalid(name, field, e.to_string())),
    }
}

fn percent(value: Option<f64>, default: f64, name: &str, field: &str) -> Result<f64, Error> {
    match value {
        None => Ok(default),
        Some(p) if p > 0.0 && p <= 100.0 => Ok(p / 100.0),
        Some(p) => Err(Error::invalid(
            name,
            field,
            format!("{p} is not a percentile in (0, 100]"),
        )),
    }
}

fn resource_overrides(
    mut s: ResourceSettings,
    e: &ResourceEstimation,
    name: &str,
    prefix: &str,
) -> Result<ResourceSettings, Error> {
    let f = |leaf: &str| format!("{prefix}.{leaf}");
    s.target_percentile = percent(
        e.target_percentile,
        s.target_percentile,
        name,
        &f("targetPercentile"),
    )?;
    s.lower_percentile = percent(
        e.lower_bound_percentile,
        s.lower_percentile.min(s.target_percentile),
        name,
        &f("lowerBoundPercentile"),
    )?;
    s.upper_percentile = percent(
        e.upper_bound_percentile,
        s.upper_percentile.max(s.target_percentile),
        name,
        &f("upperBoundPercentile"),
    )?;
    if s.lower_percentile > s.target_percentile || s.target_percentile > s.upper_percentile {
        return Err(Error::invalid(
            name,
            prefix,
            "percentiles must be ordered: lowerBound ≤ target ≤ upperBound".into(),
        ));
    }
    if let Some(text) = &e.half_life {
        let seconds = parse_duration_seconds(text)
            .map_err(|w| Error::invalid(name, &f("halfLife"), w.to_string()))?;
        if seconds < 60.0 {
            return Err(Error::invalid(
                name,
                &f("halfLife"),
                format!("{text:?} is shorter than one minute"),
            ));
        }
        s.half_life_seconds = seconds.round() as i64;
    }
    if let Some(m) = e.safety_margin_percent {
        if !(0.0..=1000.0).contains(&m) {
            return Err(Error::invalid(
                name,
                &f("safetyMarginPercent"),
                format!("{m} is not within 0..1000"),
            ));
        }
        s.safety_margin = m / 100.0;
    }
    Ok(s)
}
