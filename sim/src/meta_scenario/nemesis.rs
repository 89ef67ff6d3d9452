//! Faults for the metadata scenario's chaos phase: node kills and restarts (at most one server down at
//! a time, so every shard of three replicas keeps a majority alive), random two-sided partitions,
//! single-node isolation and one-way cuts. Message loss and duplication are set on the fabric for the
//! whole phase by the scenario.

use std::time::Duration;

use tessera_env::{Clock, DetRng, MonoTime, NodeId, Rng};

use crate::cluster::Cluster;
use crate::env::SimClock;
use crate::outages::Outages;

pub struct Nemesis {
    rng: DetRng,
    servers: Vec<NodeId>,
    clients: Vec<NodeId>,
    outages: Outages,
    fault_interval_ms_max: u64,
    pub kills: u64,
    pub partitions: u64,
}

impl Nemesis {
    pub fn new(rng: DetRng, servers: Vec<NodeId>, clients: Vec<NodeId>, fault_interval_ms_max: u64) -> Nemesis {
        Nemesis { rng, servers, clients, outages: Outages::default(), fault_interval_ms_max, kills: 0, partitions: 0 }
    }

    /// Inject faults until `until`, or until `stop()` says the workload is done.
    pub async fn run(&mut self, cluster: &mut Cluster, until: MonoTime, stop: impl Fn() -> bool) {
        while SimClock.now() < until && !stop() {
            let pause = Duration::from_millis(self.rng.range_inclusive(100, self.fault_interval_ms_max));
            SimClock.sleep(pause).await;
            self.housekeeping(cluster);
            match self.rng.below(10) {
                0..=2 => self.kill_random(cluster),
                3..=4 => self.partition(cluster),
                5 => self.isolate_one(cluster),
                6 => self.one_way(cluster),
                _ => {}
            }
        }
    }

    /// Undo everything: heal the network, restart every dead server.
    pub fn heal(&mut self, cluster: &mut Cluster) {
        self.outages.heal(cluster);
    }

    fn housekeeping(&mut self, cluster: &mut Cluster) {
        self.outages.housekeeping(cluster);
    }

    fn kill_random(&mut self, cluster: &mut Cluster) {
        if !self.outages.down.is_empty() || self.servers.len() < 3 {
            return;
        }
        let id = self.servers[self.rng.below(self.servers.len() as u64) as usize];
        let downtime = Duration::from_millis(self.rng.range_inclusive(300, 6_000));
        cluster.kill(id);
        self.kills += 1;
        self.outages.down.insert(id, SimClock.now() + downtime);
    }

    fn heal_later(&mut self) {
        self.partitions += 1;
        self.outages.heal_at = Some(SimClock.now() + Duration::from_millis(self.rng.range_inclusive(300, 5_000)));
    }

    fn partition(&mut self, cluster: &mut Cluster) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for &id in self.servers.iter().chain(&self.clients) {
            if self.rng.chance(1, 2) { a.push(id) } else { b.push(id) }
        }
        cluster.network().partition(&[a, b]);
        self.heal_later();
    }

    fn isolate_one(&mut self, cluster: &mut Cluster) {
        let lonely = self.servers[self.rng.below(self.servers.len() as u64) as usize];
        let rest: Vec<NodeId> = self.servers.iter().chain(&self.clients).copied().filter(|&id| id != lonely).collect();
        cluster.network().partition(&[vec![lonely], rest]);
        self.heal_later();
    }

    fn one_way(&mut self, cluster: &mut Cluster) {
        let n = self.servers.len() as u64;
        let (from, to) = (self.servers[self.rng.below(n) as usize], self.servers[self.rng.below(n) as usize]);
        if from != to {
            cluster.network().cut(from, to);
            self.heal_later();
        }
    }
}
