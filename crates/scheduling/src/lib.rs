//! Ballast's scheduling core: a pure, deterministic function from a cluster snapshot (nodes,
//! pending and bound pods, NodePools, instance types) to a plan (placements on existing nodes,
//! new NodeClaims with their cheapest instance type, and a reason for every pod left pending).
//!
//! No API calls, no clock, no randomness: the live provisioner and the offline simulator call the
//! same [`solve`]. See `docs/scheduling.md` for the model and the algorithm.

pub mod aliases;
pub mod bound;
pub mod catalog;
pub mod check;
pub mod error;
pub mod first_fit;
pub mod model;
pub mod quantity;
mod req;
pub mod solution;
mod solver;

pub use error::{Kind, ModelError};
pub use model::*;
pub use solution::*;
pub use solver::prepared::PreparedCluster;

/// Packs the snapshot's pending pods: existing and in-flight nodes first, then NodeClaims opened
/// in this solve (fewest pods first), then new NodeClaims from NodePools by weight.
pub fn solve(snapshot: &Snapshot, options: &SolveOptions) -> Result<Solution, ModelError> {
    solve_with_claim_order(snapshot, options, ClaimOrder::default())
}

/// As [`solve`], choosing the order in which this solve's NodeClaims are tried:
/// `MostPodsFirst` packs fuller, cheaper nodes than Karpenter's `FewestPodsFirst`.
pub fn solve_with_claim_order(
    snapshot: &Snapshot,
    options: &SolveOptions,
    order: ClaimOrder,
) -> Result<Solution, ModelError> {
    let mut s = solver::Solver::new(snapshot, options)?;
    s.claim_order = order;
    Ok(s.run())
}
