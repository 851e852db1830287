//! The knobs of a disruption pass.

use serde::{Deserialize, Serialize};

/// How a PodDisruptionBudget stops a disruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PdbMode {
    /// Karpenter's rule: a node is blocked when one of its pods is covered by a PDB that allows
    /// no disruption right now, or by more than one PDB (the Eviction API refuses those).
    #[default]
    Karpenter,
    /// Also block an action that would evict more of a PDB's pods than it allows right now.
    Strict,
}

/// Disruption knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DisruptionOptions {
    /// Most candidates multi-node consolidation looks at (Karpenter: 100).
    pub multi_node_max_candidates: usize,
    /// Replace spot nodes with cheaper spot nodes.
    pub spot_to_spot: bool,
    /// Cheaper instance types a single spot node's replacement must be able to choose from.
    pub spot_to_spot_min_types: usize,
    /// Like Cluster Autoscaler: a pod without a controller cannot move.
    pub block_unowned_pods: bool,
    /// Like Cluster Autoscaler: a pod with local storage cannot move.
    pub block_local_storage: bool,
    /// Like Cluster Autoscaler: a kube-system pod without a PDB cannot move.
    pub block_kube_system_without_pdb: bool,
    pub pdb_mode: PdbMode,
    /// Evaluate every method and candidate even after one is chosen (for explanations and
    /// benchmarks); the chosen action is the same.
    pub explain_all: bool,
    pub simulation: SimulationMode,
}

impl Default for DisruptionOptions {
    fn default() -> Self {
        DisruptionOptions {
            multi_node_max_candidates: 100,
            spot_to_spot: true,
            spot_to_spot_min_types: 15,
            block_unowned_pods: true,
            block_local_storage: true,
            block_kube_system_without_pdb: true,
            pdb_mode: PdbMode::Karpenter,
            explain_all: false,
            simulation: SimulationMode::Fast,
        }
    }
}

/// How the simulation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SimulationMode {
    /// Incremental first-fit for plain pods, the solver on the cluster prepared once otherwise
    /// (same answers, faster).
    #[default]
    Fast,
    /// A full solve of a freshly built snapshot every time.
    FullSolve,
}
