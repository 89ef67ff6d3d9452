//! Shard placement: which nodes hold the replicas of each metadata shard, and which replica leads.
//!
//! [`place`] is a pure, deterministic function of its inputs (no clock, no randomness, no hash-map
//! iteration order; the order of `nodes` in the input slice does not matter either). The config service
//! calls it whenever membership changes, passing the current map as `previous`, and commits the result
//! under a new epoch.
//!
//! # Algorithm
//!
//! 1. **Targets** (`targets.rs`). Every node gets an integer replica target. The ideal share of a node is
//!    proportional to its weight, except that a failure domain (rack) can hold at most one replica of
//!    each shard: racks whose weighted share would exceed `shard_count` are capped at exactly that (split
//!    among their nodes by weight) and the rest is shared out over the other racks by weight
//!    (water-filling, exact rational arithmetic). Ideals are rounded per node by largest remainder so
//!    that they sum to `shard_count * replication`: every node gets the floor or the ceiling of its
//!    ideal, and no rack more than `shard_count`. Ceilings go first to nodes that already hold at least
//!    that many replicas (so nothing moves needlessly), then to larger remainders, then by a fixed hash
//!    of the node id.
//! 2. **Keep** (`replicas.rs`). Start from `previous`: drop replicas on nodes that are no longer listed,
//!    duplicates, and replicas whose rack is already used by an earlier replica of the same shard; if the
//!    replication factor shrank, drop the replicas on the most over-target nodes (never the leader).
//! 3. **Strip.** A node above its target gives up exactly its excess, from the shards that leave the
//!    most under-target racks able to refill the slot, preferring shards it does not lead, then a hash of
//!    (shard, node).
//! 4. **Fill.** Empty slots are filled shard by shard: the rack with the largest remaining deficit that
//!    the shard does not use yet, then that rack's node with the largest deficit (ties broken by a hash
//!    of id and deficit, which scatters replica sets). On a fresh placement this is the Havel-Hakimi
//!    construction and never gets stuck (a rack's deficit never exceeds the shards left). If an
//!    incremental fill gets stuck (every under-target rack is already in the shard), another shard `Y`
//!    that lacks such a rack hands the stuck shard one of its replicas (in a rack the stuck shard lacks)
//!    and takes the under-target node instead: free when that replica was itself placed by this fill,
//!    otherwise a *repair* costing one extra moved replica. If no swap exists the slot goes to the
//!    least-overloaded node of an unused rack (a *fallback*; never observed in tests).
//! 5. **Leaders** (`leaders.rs`). A node holding `l` replicas leads between `floor(l/R)` and `ceil(l/R)`
//!    shards; such an assignment always exists (a flow argument, see there). Previous leaders that are
//!    still replicas keep their shards up to the upper bound, the other shards go to the replica furthest
//!    below its bounds, and augmenting paths (re-leading chains of shards) settle the rest. The leader is
//!    moved to `replicas[0]`; the other replicas keep their order.
//!
//! Cost: O(S·R·(R + log N) + N log N) for S shards and N nodes, plus O(S·R) per stuck slot or leader
//! augmentation (rare). 4096 shards × 3 over 4000 nodes take about 7 ms in release, 16384 shards
//! about 25 ms (the `placement_balance` example of `tessera-sim` prints current figures).
//!
//! # Guarantees
//!
//! - **Hard constraints, always** (or a typed error, never a panic on any input): every shard has exactly
//!   `replication` replicas, on listed nodes, pairwise in distinct racks; [`place`] checks this with
//!   [`validate`] before returning. [`PlacementError::NotEnoughFailureDomains`] when fewer racks than
//!   `replication` exist.
//! - **Balance.** Unless a fallback happened ([`PlacementReport::fallbacks`]), every node holds exactly its
//!   target, i.e. the floor or ceiling of its ideal share: for equal weights and no rack holding more
//!   than `1/R` of the nodes (e.g. equal racks), `floor(S·R/N)` or `ceil(S·R/N)` replicas; otherwise
//!   within one of the rack-capped weighted share `S·R·w/W`. When racks are so unequal that a rack would
//!   need more than one replica per shard, that rack holds (up to rounding) one replica of every shard,
//!   the most it can, and the other racks share the rest by weight: as close to proportional as the rack
//!   constraint allows. Leaders: each node leads `floor(l/R)` to `ceil(l/R)` shards for its `l`
//!   replicas; for equal shares, `floor(S/N)` or `ceil(S/N)`.
//! - **Minimal movement.** A replica on a listed node, in a rack not already used by its shard, and within
//!   its node's target is never moved, except by a repair swap. The rounding picks, among balanced targets, ones that need the
//!   fewest new replicas (ignoring only per-shard rack conflicts), and exactly those are added, plus one
//!   per repair ([`PlacementReport::repairs`]). So with equal shares a join moves the joiner's target,
//!   about `S·R/(N+1)`, and a leave or a rack loss moves exactly the lost replicas, plus repairs (0 or 1
//!   in the `placement_balance` runs). With weights or capped racks, balance can force a few more moves
//!   (a node whose share rose past an integer must grow). Re-placing a map with the same nodes moves
//!   nothing and keeps every leader. Leadership changes on other shards can follow a membership change
//!   (augmenting chains), usually a few.
//! - **Determinism.** Same inputs, same output: ties are broken by fixed hashes of ids, never by input
//!   order or memory addresses. No clock, no randomness.

mod leaders;
mod replicas;
mod stats;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use stats::{BalanceStats, balance, moved_replicas, validate};
use tessera_env::NodeId;

/// The largest replication factor [`place`] accepts.
pub const MAX_REPLICATION: u32 = 9;

/// A node eligible to hold replicas: up and not being drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacementNode {
    pub id: NodeId,
    /// Failure domain. Replicas of one shard always sit in distinct racks.
    pub rack: u32,
    /// Relative capacity, at least 1. A node of weight 2 gets twice the replicas of a node of weight 1.
    pub weight: u32,
}

/// The replica sets of all shards. Index = shard id.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ShardMap {
    pub shards: Vec<ShardReplicas>,
}

/// The replicas of one shard, in distinct racks. `replicas[0]` is the preferred leader.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardReplicas {
    pub replicas: Vec<NodeId>,
}

/// Why no placement could be computed. All are caller errors or impossible configurations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("{needed} failure domains needed, only {available} available")]
    NotEnoughFailureDomains { needed: u32, available: u32 },
    #[error("replication factor {replication} is not in 1..={MAX_REPLICATION}")]
    InvalidReplication { replication: u32 },
    #[error("node {0} is listed twice")]
    DuplicateNode(NodeId),
    #[error("node {0} has weight 0")]
    ZeroWeight(NodeId),
    #[error("previous map has {previous} shards, {requested} requested")]
    ShardCountChanged { previous: u32, requested: u32 },
    #[error("shard count is 0")]
    ZeroShards,
}

/// What a placement had to do beyond the plain algorithm. All zero in the common case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlacementReport {
    /// Stuck slots solved by a swap with another shard (each costs one extra moved replica).
    pub repairs: u64,
    /// Stuck slots given to an over-target node because no swap existed (balance lost by one per fallback).
    pub fallbacks: u64,
    /// Leader assignments outside the floor/ceiling bounds (none exist by the flow argument; counted
    /// rather than asserted so that a bug degrades balance, not availability).
    pub leader_misses: u64,
}

/// Computes the shard map for `nodes` (eligible nodes only: the caller filters out down and
/// decommissioning nodes). `previous` is the current map (`None` on first placement). See the module
/// documentation for the algorithm and its guarantees.
pub fn place(
    nodes: &[PlacementNode],
    shard_count: u32,
    replication: u32,
    previous: Option<&ShardMap>,
) -> Result<ShardMap, PlacementError> {
    place_with_report(nodes, shard_count, replication, previous).map(|(map, _)| map)
}

/// [`place`], also reporting repairs and fallbacks.
pub fn place_with_report(
    nodes: &[PlacementNode],
    shard_count: u32,
    replication: u32,
    previous: Option<&ShardMap>,
) -> Result<(ShardMap, PlacementReport), PlacementError> {
    let cluster = Cluster::new(nodes, shard_count, replication, previous)?;
    let mut report = PlacementReport::default();
    let mut work = replicas::Work::from_previous(&cluster, previous);
    let targets = targets::replica_targets(&cluster, &work.loads);
    work.trim(&cluster, &targets);
    work.strip(&cluster, &targets);
    work.fill(&cluster, &targets, &mut report);
    let leaders = leaders::choose(&cluster, &work, &mut report);

    let shards = work
        .shards
        .iter()
        .zip(&leaders)
        .map(|(shard, &leader)| {
            let mut replicas = Vec::with_capacity(shard.len());
            replicas.push(cluster.ids[leader as usize]);
            replicas.extend(shard.iter().filter(|&&n| n != leader).map(|&n| cluster.ids[n as usize]));
            ShardReplicas { replicas }
        })
        .collect();
    let map = ShardMap { shards };
    if let Err(violation) = validate(&map, nodes, replication) {
        panic!("placement broke its own invariant: {violation}");
    }
    Ok((map, report))
}

/// The validated inputs, with nodes sorted by id and racks numbered densely (index order = id order).
#[derive(Debug)]
struct Cluster {
    shard_count: u32,
    replication: u32,
    /// Node index -> id, ascending.
    ids: Vec<NodeId>,
    weights: Vec<u32>,
    /// Node index -> rack index.
    rack_of: Vec<u32>,
    /// Rack index -> rack id, ascending.
    rack_ids: Vec<u32>,
    /// Rack index -> node indices, ascending.
    rack_nodes: Vec<Vec<u32>>,
    index_of: BTreeMap<NodeId, u32>,
}

impl Cluster {
    fn new(
        nodes: &[PlacementNode],
        shard_count: u32,
        replication: u32,
        previous: Option<&ShardMap>,
    ) -> Result<Self, PlacementError> {
        if replication == 0 || replication > MAX_REPLICATION {
            return Err(PlacementError::InvalidReplication { replication });
        }
        if shard_count == 0 {
            return Err(PlacementError::ZeroShards);
        }
        if let Some(previous) = previous
            && previous.shards.len() != shard_count as usize
        {
            let previous = u32::try_from(previous.shards.len()).unwrap_or(u32::MAX);
            return Err(PlacementError::ShardCountChanged { previous, requested: shard_count });
        }
        let mut by_id = BTreeMap::new();
        for node in nodes {
            if node.weight == 0 {
                return Err(PlacementError::ZeroWeight(node.id));
            }
            if by_id.insert(node.id, *node).is_some() {
                return Err(PlacementError::DuplicateNode(node.id));
            }
        }
        let rack_ids: Vec<u32> =
            by_id.values().map(|n| n.rack).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let available = u32::try_from(rack_ids.len()).unwrap_or(u32::MAX);
        if available < replication {
            return Err(PlacementError::NotEnoughFailureDomains { needed: replication, available });
        }
        let node_count = u32::try_from(by_id.len()).expect("node count fits in u32");
        let mut cluster = Cluster {
            shard_count,
            replication,
            ids: Vec::with_capacity(by_id.len()),
            weights: Vec::with_capacity(by_id.len()),
            rack_of: Vec::with_capacity(by_id.len()),
            rack_nodes: vec![Vec::new(); rack_ids.len()],
            rack_ids,
            index_of: BTreeMap::new(),
        };
        for (index, node) in (0..node_count).zip(by_id.values()) {
            let rack = cluster.rack_ids.binary_search(&node.rack).expect("rack was collected");
            let rack = u32::try_from(rack).expect("rack count fits in u32");
            cluster.ids.push(node.id);
            cluster.weights.push(node.weight);
            cluster.rack_of.push(rack);
            cluster.rack_nodes[rack as usize].push(index);
            cluster.index_of.insert(node.id, index);
        }
        Ok(cluster)
    }

    fn node_count(&self) -> usize {
        self.ids.len()
    }

    fn rack(&self, node: u32) -> u32 {
        self.rack_of[node as usize]
    }

    /// Whether any node of `shard` sits in `rack`.
    fn uses_rack(&self, shard: &[u32], rack: u32) -> bool {
        shard.iter().any(|&n| self.rack(n) == rack)
    }
}

/// A fixed 64-bit mixer (splitmix64's finalizer): the deterministic stand-in for randomness.
pub(crate) fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic hash of a pair, for tie-breaks.
pub(crate) fn hash2(a: u64, b: u64) -> u64 {
    mix64(mix64(a) ^ b.rotate_left(29))
}
