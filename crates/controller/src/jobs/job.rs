//! The Job a `JobAutoscaler` starts: its template with the owner label, the template's hash,
//! an owner reference and a generated name.

use ballast_api::jobs::{JobAutoscaler, OWNER_LABEL, TEMPLATE_HASH_ANNOTATION};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use kube::{Resource, ResourceExt};

/// A stable hash (FNV-1a, hex) of the Job template as JSON: Jobs started from another template
/// carry another hash.
pub fn template_hash(template: &serde_json::Value) -> String {
    let text = template.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The Job to create for `object` (template hash `hash`), or why its template is not a JobSpec.
pub fn new_job(object: &JobAutoscaler, hash: &str) -> Result<Job, String> {
    let spec: JobSpec = serde_json::from_value(object.spec.job_target_ref.clone())
        .map_err(|e| format!("spec.jobTargetRef: not a batch/v1 JobSpec: {e}"))?;
    let name = object.name_any();
    let mut labels = object.labels().clone();
    labels.insert(OWNER_LABEL.into(), name.clone());
    let mut annotations = object.annotations().clone();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.insert(TEMPLATE_HASH_ANNOTATION.into(), hash.into());
    let mut job = Job {
        spec: Some(spec),
        ..Default::default()
    };
    job.metadata.generate_name = Some(format!("{name}-"));
    job.metadata.namespace = object.namespace();
    job.metadata.labels = Some(labels);
    job.metadata.annotations = Some(annotations);
    job.metadata.owner_references = object.controller_owner_ref(&()).map(|r| vec![r]);
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_carry_owner_label_hash_and_reference() {
        let mut object = JobAutoscaler::new(
            "work",
            ballast_api::jobs::JobAutoscalerSpec {
                job_target_ref: serde_json::json!({"template": {"spec": {"containers": [], "restartPolicy": "Never"}}}),
                ..Default::default()
            },
        );
        object.metadata.namespace = Some("ns".into());
        object.metadata.uid = Some("u1".into());
        let hash = template_hash(&object.spec.job_target_ref);
        let job = new_job(&object, &hash).unwrap();
        assert_eq!(job.metadata.generate_name.as_deref(), Some("work-"));
        assert_eq!(job.labels()[OWNER_LABEL], "work");
        assert_eq!(job.annotations()[TEMPLATE_HASH_ANNOTATION], hash);
        assert_eq!(job.owner_references()[0].uid, "u1");
        assert_ne!(hash, template_hash(&serde_json::json!({"template": {}})));
        object.spec.job_target_ref = serde_json::json!({"template": 3});
        assert!(new_job(&object, &hash).is_err());
    }
}
