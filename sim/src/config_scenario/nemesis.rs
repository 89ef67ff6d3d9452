//! Faults for the config scenario's chaos phase: kills (the leader first), restarts, symmetric and
//! asymmetric partitions, rack isolation. A majority of config members always stays alive, so the
//! service can make progress whenever the network lets it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tessera_config::SharedView;
use tessera_env::{Clock, DetRng, MonoTime, NodeId, Rng};

use super::leader_of;
use super::setup::{CLIENTS, ConfigScenario};
use crate::cluster::Cluster;
use crate::env::SimClock;
use crate::outages::Outages;

pub struct Nemesis {
    rng: DetRng,
    s: Arc<ConfigScenario>,
    outages: Outages,
    pub leader_kills: u64,
}

impl Nemesis {
    pub fn new(rng: DetRng, s: Arc<ConfigScenario>) -> Nemesis {
        Nemesis { rng, s, outages: Outages::default(), leader_kills: 0 }
    }

    pub async fn run(&mut self, cluster: &mut Cluster, views: &BTreeMap<NodeId, SharedView>, until: MonoTime) {
        // Let the first leader settle, then kill it: every run has a leader change.
        SimClock.sleep(Duration::from_millis(self.rng.range_inclusive(500, 3_000))).await;
        self.kill_leader(cluster, views);
        while SimClock.now() < until {
            let pause = Duration::from_millis(self.rng.range_inclusive(200, self.s.fault_interval_ms_max));
            SimClock.sleep(pause).await;
            self.housekeeping(cluster);
            match self.rng.below(10) {
                0..=2 => self.kill_random(cluster),
                3 => self.kill_leader(cluster, views),
                4..=5 => self.partition(cluster),
                6 => self.isolate_rack(cluster),
                7 => self.asymmetric(cluster),
                _ => {}
            }
        }
    }

    /// Undo everything: heal the network, restart every dead node.
    pub fn heal(&mut self, cluster: &mut Cluster) {
        self.outages.heal(cluster);
    }

    fn housekeeping(&mut self, cluster: &mut Cluster) {
        self.outages.housekeeping(cluster);
    }

    fn members_down(&self) -> usize {
        self.s.members.iter().filter(|m| self.outages.down.contains_key(m)).count()
    }

    fn may_kill(&self, id: NodeId) -> bool {
        let minority = (self.s.members.len() - 1) / 2;
        !self.outages.down.contains_key(&id) && (!self.s.members.contains(&id) || self.members_down() < minority)
    }

    fn kill(&mut self, cluster: &mut Cluster, id: NodeId) {
        let downtime = Duration::from_millis(self.rng.range_inclusive(300, 8_000));
        cluster.kill(id);
        self.outages.down.insert(id, SimClock.now() + downtime);
    }

    fn kill_random(&mut self, cluster: &mut Cluster) {
        let nodes = self.s.node_ids();
        let id = nodes[self.rng.below(nodes.len() as u64) as usize];
        if self.may_kill(id) {
            self.kill(cluster, id);
        }
    }

    fn kill_leader(&mut self, cluster: &mut Cluster, views: &BTreeMap<NodeId, SharedView>) {
        if let Some((leader, _)) = leader_of(cluster, views, &self.s.members)
            && self.may_kill(leader)
        {
            self.leader_kills += 1;
            self.kill(cluster, leader);
        }
    }

    fn partition_for(&mut self) -> MonoTime {
        SimClock.now() + Duration::from_millis(self.rng.range_inclusive(500, 6_000))
    }

    fn partition(&mut self, cluster: &mut Cluster) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for id in self.s.node_ids().into_iter().chain(CLIENTS) {
            if self.rng.chance(1, 2) { a.push(id) } else { b.push(id) }
        }
        cluster.network().partition(&[a, b]);
        self.outages.heal_at = Some(self.partition_for());
    }

    fn isolate_rack(&mut self, cluster: &mut Cluster) {
        let rack = self.rng.below(u64::from(self.s.racks)) as u32;
        cluster.network().isolate_rack(rack);
        self.outages.heal_at = Some(self.partition_for());
    }

    fn asymmetric(&mut self, cluster: &mut Cluster) {
        let m = &self.s.members;
        let from = m[self.rng.below(m.len() as u64) as usize];
        let to = m[self.rng.below(m.len() as u64) as usize];
        if from != to {
            cluster.network().cut(from, to);
            self.outages.heal_at = Some(self.partition_for());
        }
    }
}
