//! The one error of the horizontal reconciler: why a reconcile could not finish, or why the
//! reconciler could not start. The decision itself reports target, selector and metric problems
//! through conditions and events, not through this.

/// Why a reconcile, or the reconciler's start, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HorizontalAutoscaler has no namespace.
    #[error("the object has no namespace")]
    NoNamespace,
    /// The decision core refused the snapshot (it names the field).
    #[error("snapshot: {0}")]
    Snapshot(#[from] ballast_horizontal::SnapshotError),
    /// Writing the status failed.
    #[error("writing the status of {key}: {message}")]
    Status { key: String, message: String },
    /// The status could not be encoded as a patch.
    #[error("encoding the status: {0}")]
    Encode(#[from] serde_json::Error),
    /// The metric readers could not be built.
    #[error("building the metric readers: {0}")]
    MetricReaders(#[source] reqwest::Error),
    /// The HorizontalAutoscaler to capture does not exist (`ballast explain horizontal --live`).
    #[error("HorizontalAutoscaler {key} not found")]
    NotFound { key: String },
    /// Reading the HorizontalAutoscaler `key`, or what its capture lists (`what`), failed.
    #[error("reading {what} of HorizontalAutoscaler {key}: {message}")]
    Read {
        what: &'static str,
        key: String,
        message: String,
    },
    /// HorizontalAutoscalers cannot be listed at start-up.
    #[error("listing HorizontalAutoscalers (is the CRD installed? see crds/): {0}")]
    NoCrd(#[source] kube::Error),
}
