//! The one error of the node controllers: a failed API or cloud call (the reconcile is retried),
//! or a controller that cannot start or keep running, each naming what failed.

use ballast_cloud::CloudError;

/// Why a node controller step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API server call failed.
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    /// A cloud provider call failed.
    #[error("cloud provider: {0}")]
    Cloud(#[from] CloudError),
    /// The decision core refused its input (it names the object and field).
    #[error("decision: {0}")]
    Decision(#[from] ballast_nodes::Error),
    /// The object caches did not fill at start-up.
    #[error("the caches did not fill within {seconds}s (are the CRDs installed? RBAC?)")]
    CachesNotFilled { seconds: u64 },
    /// A reflector stopped before its cache filled.
    #[error("a reflector stopped")]
    ReflectorStopped,
    /// A disruption's replacement NodeClaims did not become Initialized in time.
    #[error("replacements {claims} did not become Initialized; the nodes stay")]
    ReplacementsNotInitialized {
        /// The replacement NodeClaims, comma-separated.
        claims: String,
    },
    /// The interruption queue was given without AWS credentials.
    #[error(
        "interruption queue {queue}: no AWS credentials (set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN for temporary ones)"
    )]
    NoCredentials {
        /// The queue's URL.
        queue: String,
    },
    /// The interruption queue's client could not be made (the message names the setting).
    #[error("{0}")]
    Queue(#[from] ballast_metrics::ReadError),
    /// One of the controller tasks panicked or was cancelled.
    #[error("a node controller task failed: {0}")]
    TaskFailed(#[from] tokio::task::JoinError),
    /// One of the controller tasks returned, which they never do while running.
    #[error("a node controller task stopped")]
    TaskStopped,
}
