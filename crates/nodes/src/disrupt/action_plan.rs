//! An action as a scheduling plan, for the scheduling crate's independent checker.

use std::collections::BTreeSet;

use ballast_scheduling::{self as sched, PodRef};

use super::memo::DisruptionMemo;
use super::options::{DisruptionOptions, SimulationMode};
use super::report::Action;
use super::what_if::WhatIf;
use crate::error::Error;
use crate::snapshot::ClusterSnapshot;
use crate::world::World;

/// The scheduling snapshot and plan an action amounts to ("these nodes are gone, their pods go
/// there"), for the scheduling crate's independent checker. An empty list from
/// `ballast_scheduling::check::check` on it means no pod is left without a valid place.
pub fn action_as_plan(
    snap: &ClusterSnapshot,
    action: &Action,
) -> Result<(sched::Snapshot, sched::Solution), Error> {
    let world = World::new(snap)?;
    let mut skipped = vec![];
    let mut memo = DisruptionMemo::default();
    let prepared = memo.prepare(&world, &DisruptionOptions::default());
    let sim = WhatIf::new(&world, &prepared, SimulationMode::FullSolve, &mut skipped);
    let idx: Vec<usize> = action
        .nodes
        .iter()
        .filter_map(|n| snap.nodes.iter().position(|x| &x.name == n))
        .collect();
    let model = sim.full_snapshot(&idx);
    let mut sol = sched::Solution::default();
    for r in &action.replacements {
        let mut c = r.model.clone();
        let p = &r.plan;
        if c.instance_type != p.instance_type {
            if let Some(old) = world.types.iter().find(|t| t.name == c.instance_type) {
                for k in old.labels.keys() {
                    c.labels.remove(k);
                }
            }
            if let Some(new) = world.types.iter().find(|t| t.name == p.instance_type) {
                c.labels.extend(new.labels.clone());
            }
        }
        c.instance_type = p.instance_type.clone();
        c.zone = p.zone.clone();
        c.capacity_type = p.capacity_type.clone();
        c.price = p.price;
        c.labels
            .insert(sched::labels::INSTANCE_TYPE.into(), p.instance_type.clone());
        c.labels.insert(sched::labels::ZONE.into(), p.zone.clone());
        c.labels
            .insert(sched::labels::CAPACITY_TYPE.into(), p.capacity_type.clone());
        c.instance_type_options = p.instance_types.iter().map(|o| o.name.clone()).collect();
        c.name = p.name.clone();
        sol.new_claims.push(c);
    }
    let in_model: BTreeSet<PodRef> = model
        .pods
        .iter()
        .filter(|p| p.node_name.is_none())
        .map(|p| p.key())
        .collect();
    for mv in &action.moves {
        if !in_model.contains(&mv.pod) {
            continue;
        }
        let target = if mv.to_replacement {
            match sol.new_claims.iter().position(|c| c.name == mv.to) {
                Some(i) => sched::Target::NewClaim(i),
                None => continue,
            }
        } else {
            sched::Target::Node(mv.to.clone())
        };
        sol.placements.push(sched::Placement {
            pod: mv.pod.clone(),
            target,
        });
    }
    // Pods with no move are left for the checker to flag.
    Ok((model, sol))
}
