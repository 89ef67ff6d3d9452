//! Checking and measuring shard maps.

use std::collections::{BTreeMap, BTreeSet};

use tessera_env::NodeId;

use super::{PlacementNode, ShardMap};

/// Per-node replica and leader counts over a set of nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct BalanceStats {
    pub nodes: usize,
    pub replicas_max: u32,
    pub replicas_min: u32,
    pub replicas_mean: f64,
    pub leaders_max: u32,
    pub leaders_min: u32,
    pub leaders_mean: f64,
}

/// Replica and preferred-leader counts of the listed `nodes` (replicas on unlisted nodes are ignored;
/// a listed node holding nothing counts as 0). All zero for an empty node list.
pub fn balance(map: &ShardMap, nodes: &[PlacementNode]) -> BalanceStats {
    let mut counts: BTreeMap<NodeId, (u32, u32)> = nodes.iter().map(|n| (n.id, (0, 0))).collect();
    for shard in &map.shards {
        for (i, id) in shard.replicas.iter().enumerate() {
            if let Some((replicas, leaders)) = counts.get_mut(id) {
                *replicas += 1;
                if i == 0 {
                    *leaders += 1;
                }
            }
        }
    }
    let len = counts.len();
    let stats = |pick: fn(&(u32, u32)) -> u32| {
        let values = counts.values().map(pick);
        let total: u64 = values.clone().map(u64::from).sum();
        let mean = if len == 0 { 0.0 } else { total as f64 / len as f64 };
        (values.clone().max().unwrap_or(0), values.min().unwrap_or(0), mean)
    };
    let (replicas_max, replicas_min, replicas_mean) = stats(|c| c.0);
    let (leaders_max, leaders_min, leaders_mean) = stats(|c| c.1);
    BalanceStats { nodes: len, replicas_max, replicas_min, replicas_mean, leaders_max, leaders_min, leaders_mean }
}

/// Replicas present in `new` that were not in `old` for the same shard: the replicas that must be
/// copied. Shards `old` does not have count in full.
pub fn moved_replicas(old: &ShardMap, new: &ShardMap) -> u64 {
    new.shards
        .iter()
        .enumerate()
        .map(|(s, shard)| {
            let before = old.shards.get(s).map_or(&[][..], |o| &o.replicas[..]);
            shard.replicas.iter().filter(|id| !before.contains(id)).count() as u64
        })
        .sum()
}

/// Checks the hard invariants: every shard has exactly `replication` replicas, all on listed nodes,
/// no node twice, in distinct racks. Returns a description of the first violation.
pub fn validate(map: &ShardMap, nodes: &[PlacementNode], replication: u32) -> Result<(), String> {
    let racks: BTreeMap<NodeId, u32> = nodes.iter().map(|n| (n.id, n.rack)).collect();
    for (s, shard) in map.shards.iter().enumerate() {
        if shard.replicas.len() != replication as usize {
            return Err(format!("shard {s} has {} replicas, expected {replication}", shard.replicas.len()));
        }
        let mut seen_nodes = BTreeSet::new();
        let mut seen_racks = BTreeSet::new();
        for id in &shard.replicas {
            let Some(&rack) = racks.get(id) else {
                return Err(format!("shard {s} has a replica on unlisted node {id}"));
            };
            if !seen_nodes.insert(*id) {
                return Err(format!("shard {s} has node {id} twice"));
            }
            if !seen_racks.insert(rack) {
                return Err(format!("shard {s} has two replicas in rack {rack} (second: {id})"));
            }
        }
    }
    Ok(())
}
