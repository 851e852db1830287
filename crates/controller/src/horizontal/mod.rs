//! The `HorizontalAutoscaler` reconciler.
