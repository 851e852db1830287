//! Applying recommendations (issue 16's pure part): [`resize`] gives a container's new requests
//! and limits (the admission webhook and in-place resizes write them), [`pod`] a pod's changes,
//! [`view`] a live pod beside its recommendation, [`eviction`] which pods of a workload the updater
//! updates this pass and why the others stay, [`fallback`] when an in-place resize gives way to an
//! eviction.

pub mod eviction;
pub mod fallback;
pub mod pod;
pub mod resize;
pub mod view;
