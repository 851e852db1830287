//! Waiting for conditions, always with a timeout and an error that says what was last seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Watches one object until `cond` holds, for at most `timeout`. On timeout the error carries
/// the object's last state (as JSON) so a failing test shows why.
pub async fn wait_for<K, F>(api: &Api<K>, name: &str, timeout: Duration, cond: F) -> Result<K>
where
    K: Resource + Clone + Debug + Send + DeserializeOwned + serde::Serialize + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> bool + Send,
{
    let watch = kube::runtime::wait::await_condition(api.clone(), name, |o: Option<&K>| {
        o.is_some_and(&cond)
    });
    match tokio::time::timeout(timeout, watch).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(anyhow!(
            "{} {name} disappeared while waiting",
            K::kind(&Default::default())
        )),
        Ok(Err(e)) => Err(anyhow!(
            "watching {} {name}: {e}",
            K::kind(&Default::default())
        )),
        Err(_) => {
            let last = match api.get_opt(name).await {
                Ok(Some(o)) => serde_json::to_string(&o).unwrap_or_default(),
                Ok(None) => "<not found>".to_owned(),
                Err(e) => format!("<get failed: {e}>"),
            };
            Err(anyhow!(
                "timed out after {timeout:?} waiting for {} {name}; last seen: {last}",
                K::kind(&Default::default())
            ))
        }
    }
}

/// Polls `check` every `interval` until it yields `Some`, for at most `timeout`. Errors from
/// `check` are retried (the last one is reported on timeout): services may still be warming up.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("condition never held");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if tokio::time::Instant::now() + interval > deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}: {last}"
            ));
        }
        tokio::time::sleep(interval).await;
    }
}

/// Node condition `Ready=True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Pod phase `Running` and condition `Ready=True`.
pub fn pod_running_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .as_ref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Deployment's controller has observed the latest spec, and exactly `replicas` pods exist,
/// are up to date and ready.
pub fn deployment_ready(replicas: i32) -> impl Fn(&Deployment) -> bool + Send + Clone {
    move |d: &Deployment| {
        let generation = d.metadata.generation.unwrap_or(0);
        let Some(s) = d.status.as_ref() else {
            return false;
        };
        s.observed_generation.unwrap_or(0) >= generation
            && d.spec.as_ref().and_then(|sp| sp.replicas) == Some(replicas)
            && s.replicas.unwrap_or(0) == replicas
            && s.updated_replicas.unwrap_or(0) == replicas
            && s.ready_replicas.unwrap_or(0) == replicas
            && s.available_replicas.unwrap_or(0) == replicas
    }
}
