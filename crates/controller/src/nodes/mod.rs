//! The node reconcilers: provisioning, NodeClaim lifecycle, disruption and termination.
