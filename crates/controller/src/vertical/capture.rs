//! One explain snapshot of a `VerticalAutoscaler` read straight from the API server: the object
//! and its containers' checkpoints, as the recommender restores them when it starts
//! ([`checkpoints::load`]), for `ballast explain vertical --live`.
//!
//! The recommender's state between two checkpoint writes lives only in its memory, so a capture
//! explains the recommendation of the last checkpoint (written every `--checkpoint-interval`),
//! decided at `now`. Nothing is written.

use ballast_api::vertical::VerticalAutoscaler;
use ballast_vertical::explain::{ContainerCheckpoint, Snapshot};
use jiff::Timestamp;
use kube::{Api, Client};

use super::checkpoints;
use crate::scale::error_text;

/// Why a capture could not be made; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The VerticalAutoscaler does not exist.
    #[error("VerticalAutoscaler {key} not found")]
    NotFound { key: String },
    /// The kubeconfig's user may not read it.
    #[error(
        "forbidden: the kubeconfig's user may not get verticalautoscalers.autoscaling.ballast.dev in namespace {namespace} (the recommender's role allows it): {message}"
    )]
    Forbidden { namespace: String, message: String },
    /// Reading the VerticalAutoscaler failed otherwise.
    #[error("reading VerticalAutoscaler {key}: {message}")]
    Read { key: String, message: String },
    /// Its checkpoints could not be listed (the message names the verb and resource).
    #[error("VerticalAutoscaler {key}: {message}")]
    Checkpoints { key: String, message: String },
}

/// Reads `namespace/name` and its checkpoints: the snapshot the recommender would restore and
/// recommend from at `now` (containers in name order; the object without its status).
pub async fn capture(
    client: &Client,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<Snapshot, CaptureError> {
    let key = format!("{namespace}/{name}");
    let api: Api<VerticalAutoscaler> = Api::namespaced(client.clone(), namespace);
    let mut object = match api.get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => return Err(CaptureError::NotFound { key }),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Err(CaptureError::Forbidden {
                namespace: namespace.to_string(),
                message: s.message.clone(),
            });
        }
        Err(e) => {
            return Err(CaptureError::Read {
                key,
                message: error_text(&e),
            });
        }
    };
    object.metadata.managed_fields = None;
    if let Some(a) = object.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    object.status = None;
    let mut saved = checkpoints::load(client, Some(namespace))
        .await
        .map_err(|message| CaptureError::Checkpoints {
            key: key.clone(),
            message,
        })?;
    let checkpoints = saved
        .remove(&(namespace.to_string(), name.to_string()))
        .unwrap_or_default()
        .into_iter()
        .map(|(name, status)| ContainerCheckpoint { name, status })
        .collect();
    Ok(Snapshot {
        object,
        now,
        containers: Vec::new(),
        checkpoints,
    })
}
