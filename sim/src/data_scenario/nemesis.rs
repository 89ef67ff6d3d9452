//! Faults of the data scenario's safety phase: node crashes with restarts (one node at a time), network
//! partitions and one-way cuts, and the loss of whole failure domains for good (every node of a rack
//! killed and never restarted; after a detection delay the rack's nodes are declared dead in the data
//! map, which starts the rebuild). Message loss and duplication are set on the fabric by the scenario.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_data::rebuild::SharedDataMap;
use tessera_env::{Clock, DetRng, MonoTime, NodeId, Rng};

use super::DataScenario;
use crate::cluster::Cluster;
use crate::env::SimClock;
use crate::outages::Outages;

/// How long after a rack is lost its nodes are declared dead (the failure detector's timeout).
const DETECTION_DELAY_MS: u64 = 2_000;

pub struct Nemesis {
    rng: DetRng,
    s: Arc<DataScenario>,
    map: SharedDataMap,
    outages: Outages,
    /// Racks to lose during the run, and those lost so far.
    losses: u64,
    lost: BTreeSet<u32>,
    /// Racks lost but not yet declared dead, with when they will be.
    pending: Vec<(u32, MonoTime)>,
    /// Nodes with a data drive made to fail (at most one drive per node).
    failed_drives: BTreeSet<NodeId>,
    pub corruptions: u64,
    /// Chunk-losing disk faults (corruptions, drive failures) still allowed: a stripe may lose at most
    /// K chunks in all, and the lost racks take `losses` of them (the fault budget of the safety phase).
    disk_faults_left: u64,
}

impl Nemesis {
    pub fn new(rng: DetRng, s: Arc<DataScenario>, map: SharedDataMap, losses: u64) -> Nemesis {
        let disk_faults_left = super::tolerated(s.protection).saturating_sub(losses);
        Nemesis {
            rng,
            s,
            map,
            outages: Outages::default(),
            losses,
            lost: BTreeSet::new(),
            pending: Vec::new(),
            failed_drives: BTreeSet::new(),
            corruptions: 0,
            disk_faults_left,
        }
    }

    pub fn racks_lost(&self) -> u64 {
        self.lost.len() as u64
    }

    pub fn lost_racks(&self) -> Vec<u32> {
        self.lost.iter().copied().collect()
    }

    fn servers(&self) -> Vec<NodeId> {
        (1..=self.s.nodes()).map(NodeId).filter(|id| !self.lost.contains(&self.rack_of(*id))).collect()
    }

    fn rack_of(&self, id: NodeId) -> u32 {
        crate::meta_support::rack_of(self.s.nodes_per_rack, id)
    }

    /// Inject faults until `until` or until `stop()`; lose the planned racks at random moments (all of
    /// them before the workload ends).
    pub async fn run(&mut self, cluster: &mut Cluster, until: MonoTime, stop: impl Fn() -> bool) {
        while SimClock.now() < until && !stop() {
            let pause = Duration::from_millis(self.rng.range_inclusive(100, self.s.fault_interval_ms_max));
            SimClock.sleep(pause).await;
            self.housekeeping(cluster);
            if (self.lost.len() as u64) < self.losses && self.rng.chance(1, 4) {
                self.lose_rack(cluster);
                continue;
            }
            if !self.s.faults {
                continue;
            }
            match self.rng.below(12) {
                0..=2 => self.kill_random(cluster),
                3..=4 => self.partition(cluster),
                5 => self.one_way(cluster),
                6..=7 => self.corrupt(cluster),
                8 => self.fail_drive(cluster),
                _ => {}
            }
        }
        while (self.lost.len() as u64) < self.losses {
            self.lose_rack(cluster);
        }
    }

    /// Lose `n` more racks at the same moment.
    pub fn lose_racks_now(&mut self, cluster: &mut Cluster, n: u64) {
        for _ in 0..n {
            self.lose_rack(cluster);
        }
    }

    /// Heal the network, restart every crashed node (and every node with a failed drive: the operator
    /// replaced it), declare the lost racks dead now.
    pub fn heal(&mut self, cluster: &mut Cluster) {
        self.outages.heal(cluster);
        for id in std::mem::take(&mut self.failed_drives) {
            if !self.lost.contains(&self.rack_of(id)) {
                cluster.restart(id);
            }
        }
        for (rack, _) in std::mem::take(&mut self.pending) {
            self.declare_dead(rack);
        }
    }

    fn housekeeping(&mut self, cluster: &mut Cluster) {
        self.outages.housekeeping(cluster);
        let now = SimClock.now();
        let due: Vec<u32> = self.pending.iter().filter(|(_, at)| *at <= now).map(|(r, _)| *r).collect();
        self.pending.retain(|(_, at)| *at > now);
        for rack in due {
            self.declare_dead(rack);
        }
    }

    fn declare_dead(&mut self, rack: u32) {
        let ids: Vec<NodeId> = (1..=self.s.nodes()).map(NodeId).filter(|id| self.rack_of(*id) == rack).collect();
        let mut map = self.map.lock().expect("data map");
        map.declare_dead(&ids);
    }

    fn lose_rack(&mut self, cluster: &mut Cluster) {
        let alive: Vec<u32> =
            (0..self.s.racks as u32).map(|r| self.first_rack() + r).filter(|r| !self.lost.contains(r)).collect();
        let rack = alive[self.rng.below(alive.len() as u64) as usize];
        let ids: Vec<NodeId> = (1..=self.s.nodes()).map(NodeId).filter(|id| self.rack_of(*id) == rack).collect();
        for id in ids {
            self.outages.down.remove(&id);
            if cluster.is_alive(id) {
                cluster.kill(id);
            }
        }
        self.lost.insert(rack);
        let at = SimClock.now() + Duration::from_millis(DETECTION_DELAY_MS);
        self.pending.push((rack, at));
        cluster.trace().record("nemesis", format_args!("rack {rack} lost for good"));
    }

    /// The rack number of node 1 (racks are numbered from it).
    fn first_rack(&self) -> u32 {
        self.rack_of(NodeId(1))
    }

    fn kill_random(&mut self, cluster: &mut Cluster) {
        let servers = self.servers();
        if !self.outages.down.is_empty() || servers.len() < 3 {
            return;
        }
        let id = servers[self.rng.below(servers.len() as u64) as usize];
        let downtime = Duration::from_millis(self.rng.range_inclusive(300, 5_000));
        cluster.kill(id);
        self.outages.down.insert(id, SimClock.now() + downtime);
    }

    /// Latent corruption of a written data block of a random data drive of a random node.
    fn corrupt(&mut self, cluster: &mut Cluster) {
        if self.disk_faults_left == 0 {
            return;
        }
        let servers = self.servers();
        let id = servers[self.rng.below(servers.len() as u64) as usize];
        let disks = cluster.disks(id);
        let disk = &disks[1 + self.rng.below(disks.len() as u64 - 1) as usize];
        // Data blocks only: the store's superblocks, checkpoints and journal are covered by its own crash
        // tests, and the chunk checksums protect the data region.
        let Some(region) =
            tessera_store::data_region_blocks(disk.model().capacity_bytes, super::node::DATA_JOURNAL_BYTES)
        else {
            return;
        };
        let written: Vec<u64> =
            disk.durable_sectors_from(region.start).into_iter().take_while(|s| *s < region.end).collect();
        if written.is_empty() {
            return;
        }
        let sector = written[self.rng.below(written.len() as u64) as usize];
        disk.corrupt_sector(sector);
        self.corruptions += 1;
        self.disk_faults_left -= 1;
    }

    /// The next write of one data drive of a node fails: the drive is fenced and its chunks are lost to
    /// the node until it restarts (the operator repairs it when everything heals).
    fn fail_drive(&mut self, cluster: &mut Cluster) {
        if self.disk_faults_left == 0 {
            return;
        }
        let servers = self.servers();
        let id = servers[self.rng.below(servers.len() as u64) as usize];
        if !self.failed_drives.insert(id) {
            return;
        }
        self.disk_faults_left -= 1;
        let disks = cluster.disks(id);
        disks[1 + self.rng.below(disks.len() as u64 - 1) as usize].fail_next_write();
    }

    fn heal_later(&mut self) {
        self.outages.heal_at = Some(SimClock.now() + Duration::from_millis(self.rng.range_inclusive(300, 4_000)));
    }

    fn partition(&mut self, cluster: &mut Cluster) {
        let servers = self.servers();
        let lonely = servers[self.rng.below(servers.len() as u64) as usize];
        let rest: Vec<NodeId> = cluster.nodes().into_iter().filter(|&id| id != lonely).collect();
        cluster.network().partition(&[vec![lonely], rest]);
        self.heal_later();
    }

    fn one_way(&mut self, cluster: &mut Cluster) {
        let servers = self.servers();
        let n = servers.len() as u64;
        let (from, to) = (servers[self.rng.below(n) as usize], servers[self.rng.below(n) as usize]);
        if from != to {
            cluster.network().cut(from, to);
            self.heal_later();
        }
    }
}
