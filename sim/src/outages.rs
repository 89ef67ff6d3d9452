//! What a nemesis has broken and must undo: killed nodes with the time each comes back, and when the
//! network heals. Shared by the scenarios' nemeses.

use std::collections::BTreeMap;

use tessera_env::{Clock, MonoTime, NodeId};

use crate::cluster::Cluster;
use crate::env::SimClock;

#[derive(Debug, Default)]
pub struct Outages {
    /// Killed nodes and when each restarts.
    pub down: BTreeMap<NodeId, MonoTime>,
    /// When the network heals, if it is cut.
    pub heal_at: Option<MonoTime>,
}

impl Outages {
    /// Restart the nodes whose downtime is over; heal the network if its time came.
    pub fn housekeeping(&mut self, cluster: &mut Cluster) {
        let now = SimClock.now();
        let due: Vec<NodeId> = self.down.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for id in due {
            self.down.remove(&id);
            cluster.restart(id);
        }
        if self.heal_at.is_some_and(|at| at <= now) {
            cluster.network().heal();
            self.heal_at = None;
        }
    }

    /// Undo everything: heal the network, restart every dead node.
    pub fn heal(&mut self, cluster: &mut Cluster) {
        cluster.network().heal();
        self.heal_at = None;
        for (id, _) in std::mem::take(&mut self.down) {
            cluster.restart(id);
        }
    }
}
