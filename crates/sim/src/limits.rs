//! Sizes and settings a scenario is refused for before it runs: a sample period that would never
//! advance, and sizes whose records would not fit in memory. Each error names the field and the
//! limit.

use std::path::Path;

use crate::scenario::{ScenarioError, Settings, Workload};

/// Most replicas a workload may start with or be patched to.
pub const MAX_REPLICAS: i32 = 20_000;
/// Most batch pods one scenario may create (bursts and trace rows together).
pub const MAX_BATCH_PODS: u64 = 1_000_000;
/// Most samples one run may record (duration / sampleSeconds).
pub const MAX_SAMPLES: f64 = 2_000_000.0;

/// Checks one variant's settings and workloads against the limits above.
pub fn check_variant(
    path: &Path,
    workloads: &[Workload],
    settings: &Settings,
    duration_seconds: f64,
) -> Result<(), ScenarioError> {
    let sample = settings.sample_seconds;
    if !(sample.is_finite() && sample > 0.0) {
        return Err(ScenarioError::invalid(
            path,
            "settings.sampleSeconds",
            format!("{sample} must be above 0"),
        ));
    }
    if duration_seconds / sample > MAX_SAMPLES {
        return Err(ScenarioError::invalid(
            path,
            "settings.sampleSeconds",
            format!(
                "{sample}s over {duration_seconds}s makes more than {MAX_SAMPLES} samples, the \
                 limit"
            ),
        ));
    }
    for (i, w) in workloads.iter().enumerate() {
        if w.replicas > MAX_REPLICAS {
            return Err(ScenarioError::invalid(
                path,
                format!("workloads[{i}].replicas"),
                format!(
                    "{} is above the limit of {MAX_REPLICAS} replicas per workload",
                    w.replicas
                ),
            ));
        }
    }
    Ok(())
}

/// Most nodes a static NodePool (`spec.replicas`) may keep.
pub const MAX_STATIC_NODES: i64 = 20_000;

/// Checks each static NodePool's `spec.replicas` against [`MAX_STATIC_NODES`].
pub fn check_static_pools(
    path: &Path,
    pools: &[ballast_api::nodes::NodePool],
) -> Result<(), ScenarioError> {
    for p in pools {
        if let Some(r) = p.spec.replicas
            && r > MAX_STATIC_NODES
        {
            return Err(ScenarioError::invalid(
                path,
                format!(
                    "NodePool {} spec.replicas",
                    p.metadata.name.as_deref().unwrap_or_default()
                ),
                format!("{r} is above the limit of {MAX_STATIC_NODES} nodes per static NodePool"),
            ));
        }
    }
    Ok(())
}

/// Checks that `count` more batch pods (at `field`) keep the scenario within [`MAX_BATCH_PODS`]
/// given the `so_far` already made.
pub fn check_batch(path: &Path, field: &str, so_far: u64, count: u64) -> Result<(), ScenarioError> {
    if so_far.saturating_add(count) > MAX_BATCH_PODS {
        return Err(ScenarioError::invalid(
            path,
            field,
            format!("{count} pods is above the limit of {MAX_BATCH_PODS} batch pods per scenario"),
        ));
    }
    Ok(())
}
