//! Every CRD in crds/ installs on the real API server, and the API server itself (not a client)
//! rejects invalid objects through the CRDs' CEL validation rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use ballast_testbed::testbed_or_skip;
use ballast_testbed::wait::wait_for;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde::Deserialize as _;

fn crd_files() -> Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    Ok(files)
}

fn load(path: &Path) -> Result<Vec<CustomResourceDefinition>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        ensure!(
            value.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition"),
            "{}: a document that is not a CustomResourceDefinition",
            path.display()
        );
        out.push(
            serde_yaml::from_value(value).with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    Ok(out)
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

#[tokio::test]
async fn crds_install_and_cel_rules_reject_invalid_objects() -> Result<()> {
    let bed = testbed_or_skip!(Ok(()));
    let files = crd_files()?;
    ensure!(
        !files.is_empty(),
        "crds/ has no YAML files: generate them with `ballast crds`"
    );

    // Apply every CRD, collecting failures, so one run names all CRDs the API server refuses.
    let crds: Api<CustomResourceDefinition> = Api::all(bed.client());
    let mut hza_plural = None;
    let mut refused = Vec::new();
    for file in &files {
        for crd in load(file)? {
            let name = crd.metadata.name.clone().context("CRD without name")?;
            let applied = crds
                .patch(
                    &name,
                    &PatchParams::apply("ballast-testbed").force(),
                    &Patch::Apply(&crd),
                )
                .await;
            if let Err(e) = applied {
                let msg = match e {
                    kube::Error::Api(s) => s.message,
                    e => e.to_string(),
                };
                refused.push(format!("{name} ({}): {msg}", file.display()));
                continue;
            }
            wait_for(&crds, &name, Duration::from_secs(30), established).await?;
            if crd.spec.group == "autoscaling.ballast.dev"
                && crd.spec.names.kind == "HorizontalAutoscaler"
            {
                hza_plural = Some(crd.spec.names.plural.clone());
            }
            eprintln!("installed {name}");
        }
    }
    let Some(plural) = hza_plural else {
        bail!(
            "the HorizontalAutoscaler CRD is missing from crds/ or was refused:\n{}",
            refused.join("\n")
        )
    };

    let ns = bed.namespace("crds").await?;
    let ar = ApiResource {
        group: "autoscaling.ballast.dev".into(),
        version: "v1".into(),
        api_version: "autoscaling.ballast.dev/v1".into(),
        kind: "HorizontalAutoscaler".into(),
        plural,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client(), ns.name(), &ar);
    let object = |name: &str, min: i32, max: i32| {
        DynamicObject::new(name, &ar).data(serde_json::json!({
            "spec": {
                "minReplicas": min,
                "maxReplicas": max,
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "x" }
            }
        }))
    };

    // The control: the same object with consistent bounds is accepted.
    api.create(&PostParams::default(), &object("valid", 1, 2))
        .await
        .context("creating a valid HorizontalAutoscaler")?;

    match api
        .create(&PostParams::default(), &object("invalid", 5, 2))
        .await
    {
        Err(kube::Error::Api(status)) => {
            eprintln!("rejected: {} {}", status.code, status.message);
            ensure!(
                status.code == 422,
                "expected 422 Unprocessable Entity, got {status:?}"
            );
            ensure!(
                status.message.contains("minReplicas"),
                "message does not mention minReplicas: {}",
                status.message
            );
        }
        Err(e) => bail!("unexpected error: {e}"),
        Ok(o) => bail!("the API server accepted minReplicas 5 > maxReplicas 2: {o:?}"),
    }
    ns.cleanup().await?;
    ensure!(
        refused.is_empty(),
        "the API server refused {} CRD(s):\n{}",
        refused.len(),
        refused.join("\n")
    );
    Ok(())
}
