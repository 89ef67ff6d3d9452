//! Replica sets: keep what is valid, strip over-target nodes, fill empty slots, repair stuck slots.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::{Cluster, PlacementReport, ShardMap, hash2, mix64};

/// The replica sets being built, as node indices, with per-node replica counts.
#[derive(Debug)]
pub(super) struct Work {
    /// Shard -> node indices, in distinct racks; never more than `replication` after [`Work::trim`].
    pub shards: Vec<Vec<u32>>,
    /// Node index -> number of shards it holds.
    pub loads: Vec<u32>,
    /// Shard -> the previous preferred leader, while it is still a replica.
    pub prev_leader: Vec<Option<u32>>,
}

impl Work {
    /// Keeps the valid part of `previous`: replicas on listed nodes, first replica per rack.
    pub fn from_previous(cluster: &Cluster, previous: Option<&ShardMap>) -> Self {
        let shard_count = cluster.shard_count as usize;
        let mut work = Work {
            shards: vec![Vec::new(); shard_count],
            loads: vec![0; cluster.node_count()],
            prev_leader: vec![None; shard_count],
        };
        let Some(previous) = previous else { return work };
        for (shard, old) in work.shards.iter_mut().zip(&previous.shards) {
            for id in &old.replicas {
                let Some(&node) = cluster.index_of.get(id) else { continue };
                // A duplicate node shares its own rack, so this also drops duplicates.
                if !cluster.uses_rack(shard, cluster.rack(node)) {
                    shard.push(node);
                    work.loads[node as usize] += 1;
                }
            }
        }
        for (s, old) in previous.shards.iter().enumerate() {
            let first = old.replicas.first().and_then(|id| cluster.index_of.get(id));
            // The old leader, if listed, is the first kept replica.
            work.prev_leader[s] = first.copied().filter(|&n| work.shards[s].first() == Some(&n));
        }
        work
    }

    /// Drops replicas beyond the replication factor (it shrank): the most over-target nodes go first,
    /// the previous leader last.
    pub fn trim(&mut self, cluster: &Cluster, targets: &[u32]) {
        let replication = cluster.replication as usize;
        for s in 0..self.shards.len() {
            while self.shards[s].len() > replication {
                let leader = self.prev_leader[s];
                let (pos, _) = self.shards[s]
                    .iter()
                    .enumerate()
                    .map(|(pos, &n)| {
                        let over = i64::from(self.loads[n as usize]) - i64::from(targets[n as usize]);
                        (pos, (Some(n) != leader, over, pos))
                    })
                    .max_by_key(|&(_, key)| key)
                    .expect("shard is not empty");
                let node = self.shards[s].remove(pos);
                self.loads[node as usize] -= 1;
            }
        }
    }

    /// Removes each over-target node's excess, choosing shards that an under-target rack can refill.
    pub fn strip(&mut self, cluster: &Cluster, targets: &[u32]) {
        let mut deficit_rack = vec![false; cluster.rack_ids.len()];
        for n in 0..cluster.node_count() {
            if self.loads[n] < targets[n] {
                deficit_rack[cluster.rack_of[n] as usize] = true;
            }
        }
        let deficit_racks = deficit_rack.iter().filter(|&&d| d).count();
        let mut held: Vec<Vec<u32>> = vec![Vec::new(); cluster.node_count()];
        for (s, shard) in (0u32..).zip(&self.shards) {
            for &n in shard {
                held[n as usize].push(s);
            }
        }
        for node in 0..cluster.node_count() {
            let Some(excess) = self.loads[node].checked_sub(targets[node]).filter(|&e| e > 0) else {
                continue;
            };
            let node_index = u32::try_from(node).expect("node count fits in u32");
            let mut candidates: Vec<(Reverse<usize>, bool, u64, u32)> = held[node]
                .iter()
                .map(|&s| {
                    let shard = &self.shards[s as usize];
                    // Deficit racks not used by the other replicas: the more, the easier the refill
                    // (none: it would be stuck).
                    let mut used = 0;
                    for (i, &n) in shard.iter().enumerate() {
                        let rack = cluster.rack(n);
                        let first_of_rack = shard[..i].iter().all(|&m| cluster.rack(m) != rack);
                        if n != node_index && deficit_rack[rack as usize] && first_of_rack {
                            used += 1;
                        }
                    }
                    let open = deficit_racks.saturating_sub(used);
                    let leads = self.prev_leader[s as usize] == Some(node_index);
                    (Reverse(open), leads, hash2(u64::from(s), cluster.ids[node].0), s)
                })
                .collect();
            candidates.sort_unstable();
            for &(_, _, _, s) in candidates.iter().take(excess as usize) {
                let shard = &mut self.shards[s as usize];
                shard.retain(|&n| n != node_index);
                if self.prev_leader[s as usize] == Some(node_index) {
                    self.prev_leader[s as usize] = None;
                }
            }
            self.loads[node] = targets[node];
        }
    }

    /// Fills every empty slot, shard by shard, from the racks and nodes with the largest deficits.
    pub fn fill(&mut self, cluster: &Cluster, targets: &[u32], report: &mut PlacementReport) {
        let mut deficits = Deficits::new(cluster, targets, &self.loads);
        let kept = self.shards.clone();
        let replication = cluster.replication as usize;
        for s in 0..self.shards.len() {
            while self.shards[s].len() < replication {
                if let Some(node) = deficits.pick(cluster, &self.shards[s]) {
                    self.add(&mut deficits, s, node);
                } else if self.repair(cluster, &mut deficits, s, Some(&kept)) {
                    // Swapped two replicas placed by this fill: no extra move.
                } else if self.repair(cluster, &mut deficits, s, None) {
                    report.repairs += 1;
                } else {
                    let node = self.fallback(cluster, targets, s);
                    self.shards[s].push(node);
                    self.loads[node as usize] += 1;
                    report.fallbacks += 1;
                }
            }
        }
    }

    fn add(&mut self, deficits: &mut Deficits, s: usize, node: u32) {
        deficits.take(node);
        self.shards[s].push(node);
        self.loads[node as usize] += 1;
    }

    /// Shard `s` is stuck: every rack with a deficit is already in it. Finds another shard `y` that
    /// lacks such a rack and holds a replica `m` in a rack `s` lacks; moves `m` to `s` and gives `y`
    /// the under-target node instead. With `kept` (the replicas before the fill), `m` must be one the
    /// fill placed, so the swap costs no extra move.
    fn repair(&mut self, cluster: &Cluster, deficits: &mut Deficits, s: usize, kept: Option<&[Vec<u32>]>) -> bool {
        let shard_count = self.shards.len();
        let deficit_racks: Vec<u32> = deficits.racks.iter().map(|&(_, _, r)| r).collect();
        for rack in deficit_racks {
            let node = deficits.top_node(rack);
            for y in (1..shard_count).map(|offset| (s + offset) % shard_count) {
                if cluster.uses_rack(&self.shards[y], rack) {
                    continue;
                }
                // Followers first: moving the old leader would also move leadership.
                let found = (0..self.shards[y].len()).rev().find(|&pos| {
                    let m = self.shards[y][pos];
                    let placed_now = kept.is_none_or(|kept| !kept[y].contains(&m));
                    placed_now && !cluster.uses_rack(&self.shards[s], cluster.rack(m))
                });
                if let Some(pos) = found {
                    let moved = self.shards[y][pos];
                    self.shards[y][pos] = node;
                    if self.prev_leader[y] == Some(moved) {
                        self.prev_leader[y] = None;
                    }
                    deficits.take(node);
                    self.loads[node as usize] += 1;
                    self.shards[s].push(moved);
                    return true;
                }
            }
        }
        false
    }

    /// The least-overloaded node in a rack shard `s` does not use yet (always exists: there are at
    /// least `replication` racks).
    fn fallback(&self, cluster: &Cluster, targets: &[u32], s: usize) -> u32 {
        (0..u32::try_from(cluster.node_count()).expect("node count fits in u32"))
            .filter(|&n| !cluster.uses_rack(&self.shards[s], cluster.rack(n)))
            .min_by_key(|&n| {
                let over = i64::from(self.loads[n as usize]) - i64::from(targets[n as usize]);
                (over, mix64(cluster.ids[n as usize].0), n)
            })
            .expect("an unused rack exists")
    }
}

/// Remaining deficits (target minus load, when positive) per rack and per node, ordered largest
/// first. Ties are broken by a hash of (id, deficit), which changes every time a deficit does, so
/// equal racks take turns in a scattered order.
#[derive(Debug)]
struct Deficits {
    node: Vec<u32>,
    rack: Vec<u64>,
    rack_of: Vec<u32>,
    racks: BTreeSet<(Reverse<u64>, u64, u32)>,
    nodes: Vec<BTreeSet<(Reverse<u32>, u64, u32)>>,
    rack_keys: Vec<u64>,
    node_keys: Vec<u64>,
}

impl Deficits {
    fn new(cluster: &Cluster, targets: &[u32], loads: &[u32]) -> Self {
        let mut d = Deficits {
            node: targets.iter().zip(loads).map(|(&t, &l)| t.saturating_sub(l)).collect(),
            rack: vec![0; cluster.rack_ids.len()],
            rack_of: cluster.rack_of.clone(),
            racks: BTreeSet::new(),
            nodes: vec![BTreeSet::new(); cluster.rack_ids.len()],
            rack_keys: cluster.rack_ids.iter().map(|&r| mix64(u64::from(r) ^ 0x5ACC)).collect(),
            node_keys: cluster.ids.iter().map(|id| mix64(id.0)).collect(),
        };
        for n in 0..cluster.node_count() {
            let rack = cluster.rack_of[n] as usize;
            d.rack[rack] += u64::from(d.node[n]);
            let n = u32::try_from(n).expect("node count fits in u32");
            if let Some(entry) = d.node_entry(n) {
                d.nodes[rack].insert(entry);
            }
        }
        for r in 0..d.rack.len() {
            if let Some(entry) = d.rack_entry(r) {
                d.racks.insert(entry);
            }
        }
        d
    }

    fn node_entry(&self, n: u32) -> Option<(Reverse<u32>, u64, u32)> {
        let deficit = self.node[n as usize];
        (deficit > 0).then(|| (Reverse(deficit), hash2(self.node_keys[n as usize], u64::from(deficit)), n))
    }

    fn rack_entry(&self, r: usize) -> Option<(Reverse<u64>, u64, u32)> {
        let deficit = self.rack[r];
        let r32 = u32::try_from(r).expect("rack count fits in u32");
        (deficit > 0).then(|| (Reverse(deficit), hash2(self.rack_keys[r], deficit), r32))
    }

    /// The node with the largest deficit in the rack with the largest deficit that `shard` lacks.
    fn pick(&self, cluster: &Cluster, shard: &[u32]) -> Option<u32> {
        let &(_, _, rack) = self.racks.iter().find(|&&(_, _, r)| !cluster.uses_rack(shard, r))?;
        Some(self.top_node(rack))
    }

    fn top_node(&self, rack: u32) -> u32 {
        let &(_, _, node) = self.nodes[rack as usize].first().expect("a deficit rack has a deficit node");
        node
    }

    /// Records one replica placed on `n` (which has a deficit).
    fn take(&mut self, n: u32) {
        let rack = self.rack_of[n as usize] as usize;
        let node_entry = self.node_entry(n).expect("node has a deficit");
        let rack_entry = self.rack_entry(rack).expect("rack has a deficit");
        self.nodes[rack].remove(&node_entry);
        self.racks.remove(&rack_entry);
        self.node[n as usize] -= 1;
        self.rack[rack] -= 1;
        if let Some(entry) = self.node_entry(n) {
            self.nodes[rack].insert(entry);
        }
        if let Some(entry) = self.rack_entry(rack) {
            self.racks.insert(entry);
        }
    }
}
