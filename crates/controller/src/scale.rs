//! A target's `scale` subresource (the horizontal reconciler reads and writes it, the vertical
//! one reads its selector), for any kind that has one: `scaleTargetRef.apiVersion` and
//! `kind` are resolved to a resource through discovery (cached), then the scale is read and
//! written through `GET`/`PATCH .../NAME/scale` (`autoscaling/v1` `Scale`), as the HPA does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ballast_api::common::CrossVersionObjectReference;
use ballast_horizontal::TargetScale;
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};

/// How long a discovery answer is trusted: found, and not found.
const FOUND_TTL: Duration = Duration::from_secs(300);
const MISSING_TTL: Duration = Duration::from_secs(15);
/// Most (apiVersion, kind) pairs kept.
const MAX_ENTRIES: usize = 4096;

type Key = (String, String);
type Resolved = (Instant, Result<ApiResource, String>);

/// Resolves scale targets and reads/writes their scale.
pub struct Targets {
    client: Client,
    cache: Mutex<HashMap<Key, Resolved>>,
}

/// The scale as read: what the snapshot needs, and the API to write it back.
pub struct ScaleRead {
    pub scale: TargetScale,
    api: Option<Api<DynamicObject>>,
}

/// The text of a kube error, without the debug noise (`deployments.apps "web" not found`).
pub fn error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

impl Targets {
    pub fn new(client: Client) -> Targets {
        Targets {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `apps/v1` for the workload kinds when a reference names no apiVersion (the HPA requires one;
    /// we accept its absence for the built-in kinds).
    fn api_version(r: &CrossVersionObjectReference) -> Result<String, String> {
        match r.api_version.as_deref().filter(|s| !s.is_empty()) {
            Some(v) => Ok(v.to_owned()),
            None => match r.kind.as_str() {
                "Deployment" | "StatefulSet" | "ReplicaSet" => Ok("apps/v1".into()),
                "ReplicationController" => Ok("v1".into()),
                kind => Err(format!(
                    "scaleTargetRef.apiVersion is required for kind {kind}"
                )),
            },
        }
    }

    /// The resource of `apiVersion`/`kind`, from the cache or discovery.
    pub async fn resolve(&self, r: &CrossVersionObjectReference) -> Result<ApiResource, String> {
        let api_version = Self::api_version(r)?;
        let key = (api_version.clone(), r.kind.clone());
        if let Some((at, res)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            let ttl = if res.is_ok() { FOUND_TTL } else { MISSING_TTL };
            if at.elapsed() < ttl {
                return res.clone();
            }
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
        let res = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => {
                if caps
                    .subresources
                    .iter()
                    .any(|(sub, _)| sub.plural == "scale")
                {
                    Ok(ar)
                } else {
                    Err(format!("{} {api_version} has no scale subresource", r.kind))
                }
            }
            Err(kube::Error::Discovery(_)) => {
                Err(format!("no kind {} is served in {api_version}", r.kind))
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(format!("no kind {} is served in {api_version}", r.kind))
            }
            // Transient (API server unavailable...): not cached.
            Err(e) => {
                return Err(format!(
                    "discovery of {api_version} failed: {}",
                    error_text(&e)
                ));
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (at, res)| {
                at.elapsed() < if res.is_ok() { FOUND_TTL } else { MISSING_TTL }
            });
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), res.clone()));
        res
    }

    /// Reads the scale of `r` in `namespace`. Errors are folded into `TargetScale::error`.
    pub async fn read(&self, namespace: &str, r: &CrossVersionObjectReference) -> ScaleRead {
        let fail = |error: String| ScaleRead {
            scale: TargetScale {
                error: Some(error),
                ..Default::default()
            },
            api: None,
        };
        let ar = match self.resolve(r).await {
            Ok(ar) => ar,
            Err(e) => return fail(e),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        match api.get_scale(&r.name).await {
            Ok(s) => ScaleRead {
                scale: target_scale(&s),
                api: Some(api),
            },
            Err(e) => fail(error_text(&e)),
        }
    }
}

impl ScaleRead {
    /// Writes `spec.replicas` through the scale subresource.
    pub async fn write(&self, name: &str, replicas: i32) -> Result<(), String> {
        let Some(api) = &self.api else {
            return Err("the scale was not read".into());
        };
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        api.patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| error_text(&e))
    }
}

fn target_scale(s: &Scale) -> TargetScale {
    let spec_replicas = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(0);
    let status = s.status.as_ref();
    TargetScale {
        spec_replicas,
        status_replicas: status.map(|st| st.replicas),
        selector: status
            .and_then(|st| st.selector.clone())
            .unwrap_or_default(),
        error: None,
    }
}
