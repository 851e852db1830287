//! Applying recommendations (issue 16's pure part): [`resize`] gives a container's new requests
//! and limits (the admission webhook and in-place resizes write them), [`eviction`] which pods of
//! a workload the updater updates this pass and why the others stay, [`pod`] a new pod's changes.

pub mod eviction;
pub mod pod;
pub mod resize;
