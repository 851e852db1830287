//! State.

use super::*;

#[derive(Clone)]
pub(crate) struct Solver<'a> {
    /// The pods of this solve; `PPod::src` indexes it.
    pub(super) pod_src: Vec<&'a Pod>,
    pub(super) opts: SolveOptions,
    pub(super) keys: Interner<'a>,
    pub(super) vals: Interner<'a>,
    pub(super) k_zone: u32,
    pub(super) k_ct: u32,
    pub(super) k_host: u32,
    pub(super) k_pool: u32,
    pub(super) dims: Vec<String>,
    pub(super) zones: Vec<u32>,
    pub(super) zone_idx: FxHashMap<u32, usize>,
    pub(super) cts: Vec<u32>,
    pub(super) ct_idx: FxHashMap<u32, usize>,
    pub(super) type_key: Vec<bool>,
    pub(super) types: Cow<'a, [PType]>,
    pub(super) pools: Vec<PPool>,
    pub(super) slots: Cow<'a, [Slot]>,
    pub(super) slot_used: Cow<'a, [RV]>,
    pub(super) slot_ports: Cow<'a, [Vec<HostPort>]>,
    pub(super) n_existing: usize,
    /// The existing slots pods may go to in this solve, in order (all of them unless a prepared
    /// cluster took some nodes away).
    pub(super) live: Vec<usize>,
    /// The live slots that are not cordoned: where `place` looks.
    pub(super) placeable: Vec<usize>,
    pub(super) claims: Vec<Claim>,
    pub(super) open: BTreeSet<(usize, usize)>,
    pub(super) alts: Vec<AltInfo>,
    pub(super) alt_ids: FxHashMap<ReqSet, usize>,
    pub(super) groups: Vec<Group>,
    pub(super) group_ids: FxHashMap<GroupKey, usize>,
    pub(super) pods: Vec<PPod>,
    pub(super) domain_cache: FxHashMap<(u32, Vec<usize>), Vec<u32>>,
    pub(super) placements: Vec<(usize, usize)>,
    pub(super) ns_labels: FxHashMap<String, Labels>,
    pub(crate) claim_order: ClaimOrder,
}
