//! What a pass needs from an object's spec, checked before anything is read or started: a
//! spec the loop cannot act on is a [`Problem`] naming the field (`Ready=False`, `InvalidSpec`).

use ballast_api::jobs::{JobAutoscaler, PropagationPolicy};
use ballast_horizontal::jobs::JobLimits;
use k8s_openapi::api::batch::v1::Job;
use kube::api::DeleteParams;

use super::job::{new_job, template_hash};
use super::status::Problem;

/// The checked settings of one object.
pub struct Settings {
    /// For the core.
    pub limits: JobLimits,
    /// Each trigger's work per Job (its target), above zero.
    pub per_job: Vec<f64>,
    /// The Job each start creates.
    pub template: Job,
    /// The hash of `spec.jobTargetRef`.
    pub hash: String,
    /// `scalingStrategy.pendingPodConditions`.
    pub pending_conditions: Vec<String>,
    /// How Jobs are deleted.
    pub delete: DeleteParams,
}

/// Checks `object`'s spec.
pub fn settings(object: &JobAutoscaler) -> Result<Settings, Problem> {
    let spec = &object.spec;
    let strategy = spec.scaling_strategy.clone().unwrap_or_default();
    let running_share = match &strategy.custom_scaling_running_job_percentage {
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| {
                Problem::invalid_spec(format!(
                    "spec.scalingStrategy.customScalingRunningJobPercentage: {text:?} is not a number from 0 to 1"
                ))
            })?,
        None => 0.0,
    };
    let max = spec.max_replicas();
    if max < 0 {
        return Err(Problem::invalid_spec(format!(
            "spec.maxReplicaCount: {max} is below zero"
        )));
    }
    let limits = JobLimits {
        strategy: strategy.strategy,
        combine: strategy.multiple_scalers_calculation,
        max: max as u32,
        min: spec.min_replicas().max(0) as u32,
        deduction: i64::from(strategy.custom_scaling_queue_length_deduction.unwrap_or(0)),
        running_share,
    };
    let per_job = spec
        .triggers
        .iter()
        .enumerate()
        .map(|(i, trigger)| {
            trigger
                .target
                .as_ref()
                .and_then(|t| t.average_value.as_ref().or(t.value.as_ref()))
                .and_then(|q| ballast_api::common::quantity_value(q).ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| {
                    Problem::invalid_spec(format!(
                        "spec.triggers[{i}].target: needs an averageValue or value above zero (the work of one Job)"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hash = template_hash(&spec.job_target_ref);
    let template = new_job(object, &hash).map_err(Problem::invalid_spec)?;
    let policy = spec
        .rollout
        .as_ref()
        .map(|r| r.propagation_policy)
        .unwrap_or_default();
    let delete = DeleteParams {
        propagation_policy: Some(match policy {
            PropagationPolicy::Background => kube::api::PropagationPolicy::Background,
            PropagationPolicy::Foreground => kube::api::PropagationPolicy::Foreground,
        }),
        ..Default::default()
    };
    Ok(Settings {
        limits,
        per_job,
        template,
        hash,
        pending_conditions: strategy.pending_pod_conditions,
        delete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::jobs::JobAutoscalerSpec;

    fn object(spec: serde_json::Value) -> JobAutoscaler {
        let spec: JobAutoscalerSpec = serde_json::from_value(spec).unwrap();
        JobAutoscaler::new("work", spec)
    }

    fn trigger(target: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "type": "redis-list",
            "redisList": {"address": "redis:6379", "listName": "q"},
            "target": target,
        })
    }

    #[test]
    fn a_spec_the_loop_cannot_act_on_names_its_field() {
        let template = serde_json::json!({"template": {"spec": {"containers": []}}});
        let good = trigger(serde_json::json!({"type": "AverageValue", "averageValue": "2"}));
        let s = settings(&object(serde_json::json!({
            "jobTargetRef": template, "triggers": [good.clone()],
        })))
        .unwrap();
        assert_eq!(s.per_job, vec![2.0]);
        assert_eq!(s.limits.max, 100);
        // (spec, field named)
        let table = [
            (
                serde_json::json!({"jobTargetRef": template, "triggers": [good.clone(), trigger(serde_json::json!({"type": "Value", "value": "0"}))]}),
                "spec.triggers[1].target",
            ),
            (
                serde_json::json!({"jobTargetRef": {"template": {"spec": {"containers": "x"}}}, "triggers": [good.clone()]}),
                "jobTargetRef",
            ),
            (
                serde_json::json!({"jobTargetRef": template, "triggers": [good.clone()],
                    "scalingStrategy": {"strategy": "custom", "customScalingRunningJobPercentage": "half"}}),
                "spec.scalingStrategy.customScalingRunningJobPercentage",
            ),
        ];
        for (spec, field) in table {
            let problem = settings(&object(spec)).err().unwrap();
            assert_eq!(problem.reason, "InvalidSpec");
            assert!(problem.message.contains(field), "{}", problem.message);
        }
    }
}
