//! Preferred leaders: one replica per shard; a node holding `l` replicas leads `floor(l/R)` to
//! `ceil(l/R)` shards.
//!
//! Such an assignment always exists: giving each replica `1/R` of its shard's leadership is a
//! fractional one, and a flow with integral bounds that has a fractional solution has an integral one.
//! It is found as a flow: greedy first, then augmenting paths for shards without a leader (upper
//! bounds) and for nodes below their lower bound.

use std::collections::{BTreeSet, VecDeque};

use super::replicas::Work;
use super::{Cluster, PlacementReport, hash2};

/// Chooses the preferred leader (a node index) of every shard of `work`.
pub(super) fn choose(cluster: &Cluster, work: &Work, report: &mut PlacementReport) -> Vec<u32> {
    let shards = &work.shards;
    let replication = cluster.replication;
    let mut held: Vec<Vec<u32>> = vec![Vec::new(); cluster.node_count()];
    for (s, shard) in (0u32..).zip(shards) {
        for &n in shard {
            held[n as usize].push(s);
        }
    }
    let mut state = Leaders {
        lower: work.loads.iter().map(|&l| l / replication).collect(),
        upper: work.loads.iter().map(|&l| l.div_ceil(replication)).collect(),
        led: vec![0; cluster.node_count()],
        led_shards: vec![BTreeSet::new(); cluster.node_count()],
        leader: vec![None; shards.len()],
    };
    // Keep previous leaders up to their upper bounds.
    for (s, shard) in (0u32..).zip(shards) {
        if let Some(n) = work.prev_leader[s as usize].filter(|n| shard.contains(n))
            && state.led[n as usize] < state.upper[n as usize]
        {
            state.assign(s, n);
        }
    }
    // The replica furthest below its bounds leads.
    let mut pending = Vec::new();
    for (s, shard) in (0u32..).zip(shards) {
        if state.leader[s as usize].is_some() {
            continue;
        }
        let best =
            shard.iter().copied().filter(|&n| state.led[n as usize] < state.upper[n as usize]).max_by_key(|&n| {
                let i = n as usize;
                let below_lower = i64::from(state.lower[i]) - i64::from(state.led[i]);
                (below_lower, state.upper[i] - state.led[i], hash2(u64::from(s), cluster.ids[i].0), n)
            });
        match best {
            Some(n) => state.assign(s, n),
            None => pending.push(s),
        }
    }
    for s in pending {
        if !state.augment_shard(shards, s) {
            // Unreachable by the flow argument; keep the hard guarantee (a leader) regardless.
            state.assign(s, shards[s as usize][0]);
            report.leader_misses += 1;
        }
    }
    for n in 0..u32::try_from(cluster.node_count()).expect("node count fits in u32") {
        while state.led[n as usize] < state.lower[n as usize] {
            if !state.raise(&held, n) {
                report.leader_misses += 1;
                break;
            }
        }
    }
    state.leader.into_iter().map(|l| l.expect("every shard has a leader")).collect()
}

#[derive(Debug)]
struct Leaders {
    lower: Vec<u32>,
    upper: Vec<u32>,
    led: Vec<u32>,
    led_shards: Vec<BTreeSet<u32>>,
    leader: Vec<Option<u32>>,
}

impl Leaders {
    fn assign(&mut self, s: u32, n: u32) {
        if let Some(old) = self.leader[s as usize].replace(n) {
            self.led[old as usize] -= 1;
            self.led_shards[old as usize].remove(&s);
        }
        self.led[n as usize] += 1;
        self.led_shards[n as usize].insert(s);
    }

    /// Shard `s` has no leader and all its replicas are at their upper bound. Breadth-first search for a
    /// chain: `s` is led by replica `u0`, a shard `u0` led is handed to its replica `u1`, and so on,
    /// ending at a node below its upper bound. Applies the chain and returns true if one exists.
    fn augment_shard(&mut self, shards: &[Vec<u32>], s: u32) -> bool {
        // parent[n] = (shard n would take, node it takes it from).
        let mut parent: Vec<Option<(u32, Option<u32>)>> = vec![None; self.led.len()];
        let mut queue = VecDeque::new();
        for &n in &shards[s as usize] {
            parent[n as usize] = Some((s, None));
            queue.push_back(n);
        }
        while let Some(u) = queue.pop_front() {
            if self.led[u as usize] < self.upper[u as usize] {
                let mut v = u;
                while let Some((t, from)) = parent[v as usize] {
                    self.assign(t, v);
                    match from {
                        Some(from) => v = from,
                        None => break,
                    }
                }
                return true;
            }
            for &t in &self.led_shards[u as usize] {
                for &v in &shards[t as usize] {
                    if parent[v as usize].is_none() {
                        parent[v as usize] = Some((t, Some(u)));
                        queue.push_back(v);
                    }
                }
            }
        }
        false
    }

    /// Node `u` leads fewer shards than its lower bound. Breadth-first search for a chain: `u` takes a
    /// shard it holds from its leader `y1`, `y1` takes one from `y2`, and so on, ending at a node above
    /// its lower bound. Applies the chain and returns true if one exists.
    fn raise(&mut self, held: &[Vec<u32>], u: u32) -> bool {
        // parent[y] = (shard taken from y, node taking it).
        let mut parent: Vec<Option<(u32, u32)>> = vec![None; self.led.len()];
        let mut visited = vec![false; self.led.len()];
        visited[u as usize] = true;
        let mut queue = VecDeque::from([u]);
        while let Some(x) = queue.pop_front() {
            for &t in &held[x as usize] {
                let y = self.leader[t as usize].expect("all shards have leaders by now");
                if visited[y as usize] {
                    continue;
                }
                visited[y as usize] = true;
                parent[y as usize] = Some((t, x));
                if self.led[y as usize] > self.lower[y as usize] {
                    let mut z = y;
                    while z != u {
                        let (t, x) = parent[z as usize].expect("on the path");
                        self.assign(t, x);
                        z = x;
                    }
                    return true;
                }
                queue.push_back(y);
            }
        }
        false
    }
}
