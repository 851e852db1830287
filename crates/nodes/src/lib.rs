//! Ballast's node decision cores, pure: a decision is a deterministic function of an observed
//! [`ClusterSnapshot`] and `now`. No API calls, no clock, no randomness; the live controllers and
//! the simulator call the same functions.
//!
//! - [`provision`]: the NodeClaims to create for pending pods, where every pod goes, and why the
//!   rest stay pending; plus [`batch_state`] (when to solve) and [`claim_lifecycle`] (NodeClaim
//!   conditions and launch / registration timeouts).
//! - [`disrupt`]: one disruption pass — emptiness, drift, expiration, multi-node and single-node
//!   consolidation, in that order — honouring budgets, PDBs, do-not-disrupt and pods that cannot
//!   move, with a reason for every node.
//! - [`adapt`]: NodePool / NodeClaim objects to and from the scheduling model.
//! - [`observe`]: Pods, Nodes, PDBs, DaemonSets, volumes and namespaces as the snapshot types.
//! - [`limits`]: NodePool limits as the solver reads them (zero limits kept) and which are
//!   reached.
//! - [`pool_types`]: whether a NodePool's requirements leave it any instance type, and which
//!   requirements to blame.
//! - [`resource_list`]: the one conversion between resource lists and model resources.
//!
//! See `docs/nodes.md`.

pub mod adapt;
pub mod budget;
pub mod disrupt;
pub mod error;
pub mod lifecycle;
pub mod limits;
pub mod observe;
pub mod pool_types;
pub mod provision;
pub mod resource_list;
mod revisions;
pub mod snapshot;
pub mod static_pool;
mod world;

pub use adapt::{
    LaunchPlan, TypeOption, model_requirement, node_claim_to_in_flight, node_pool_to_model,
    pool_label, requirement_holds, template_hash,
};
pub use disrupt::{
    Action, DisruptionDecision, DisruptionOptions, Method, NodeReport, PdbMode, PodMove,
    Replacement, SimulationMode, Verdict, Why, action_as_plan, disrupt,
};
pub use error::{Error, ObjectKind};
pub use lifecycle::{
    ClaimObservation, ConditionState, Lifecycle, LifecycleOptions, ObservedNode, Status, Timeout,
    claim_lifecycle, merge_conditions,
};
pub use limits::{LimitUse, limits_reached, pool_limits};
pub use pool_types::{NoInstanceType, no_instance_type};
pub use provision::{
    BatchState, BatchWindow, Destination, PendingCategory, PendingExplanation, PodPlacement,
    ProvisionMemo, ProvisionOptions, ProvisioningDecision, batch_state, batch_state_for, provision,
    provision_with_memo,
};
pub use resource_list::{readable_resources, resources_from_list, resources_to_list};
pub use snapshot::{
    BoundPod, ClusterNode, ClusterSnapshot, DaemonSet, PendingPod, PodDisruptionBudget,
};
