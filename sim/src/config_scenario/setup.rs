//! Swarm configuration of the config-service scenario, and each node's boot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::{
    CONFIG_GROUP, ClusterParams, ConfigMember, ConfigNode, ConfigView, DetectorConfig, NodeAgent, SharedView,
};
use tessera_env::{DetRng, NodeId, Rng};
use tessera_raft::{RaftConfig, RaftLogStore};
use tessera_store::{DeviceIdentity, Store, StoreConfig};

use crate::cluster::NodeEnv;
use crate::net::NetConfig;

pub const MIB: u64 = 1024 * 1024;
/// Client node ids (never crashed; they only submit changes).
pub const CLIENTS: [NodeId; 2] = [NodeId(1001), NodeId(1002)];

/// What the seed chose.
#[derive(Clone, Debug)]
pub struct ConfigScenario {
    pub seed: u64,
    pub nodes: u64,
    pub racks: u32,
    pub members: Vec<NodeId>,
    pub params: ClusterParams,
    pub timing: DetectorConfig,
    pub raft: RaftConfig,
    pub tick: Duration,
    pub net: NetConfig,
    /// Length of the chaos phase.
    pub chaos: Duration,
    /// Nemesis pause between actions.
    pub fault_interval_ms_max: u64,
}

impl ConfigScenario {
    pub fn from_seed(seed: u64) -> ConfigScenario {
        let mut rng = DetRng::from_seed(seed).fork("config-scenario");
        let racks = rng.range_inclusive(3, 6) as u32;
        let nodes = rng.range_inclusive(u64::from(racks) + 1, (u64::from(racks) * 2).min(12));
        let member_count = if racks >= 5 && rng.chance(1, 2) { 5 } else { 3 };
        // Node i sits in rack (i - 1) % racks, so nodes 1..=members are in distinct racks.
        let members = (1..=member_count).map(NodeId).collect();
        let heartbeat_interval_ms = rng.range_inclusive(200, 500);
        let suspect_after_ms = heartbeat_interval_ms * rng.range_inclusive(3, 5);
        let timing = DetectorConfig {
            heartbeat_interval_ms,
            suspect_after_ms,
            down_after_ms: suspect_after_ms + rng.range_inclusive(1_000, 3_000),
        };
        let raft = RaftConfig { election_ticks: rng.range_inclusive(8, 15) as usize, ..RaftConfig::default() };
        let net = NetConfig {
            latency_us_min: 200,
            latency_us_max: rng.range_inclusive(1_000, 8_000),
            loss_per_million: if rng.chance(1, 4) { 0 } else { rng.range_inclusive(1, 30_000) },
            duplicate_per_million: if rng.chance(1, 2) { 0 } else { rng.range_inclusive(1, 10_000) },
            queue_limit_messages: 4096,
        };
        ConfigScenario {
            seed,
            nodes,
            racks,
            members,
            params: ClusterParams { cluster_id: u128::from(seed) + 1, shard_count: 256, shard_replication: 3 },
            timing,
            raft,
            tick: Duration::from_millis(100),
            net,
            chaos: Duration::from_secs(rng.range_inclusive(20, 60)),
            fault_interval_ms_max: rng.range_inclusive(1_000, 5_000),
        }
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.nodes).map(NodeId).collect()
    }

    pub fn rack_of(&self, id: NodeId) -> u32 {
        if let Some(i) = CLIENTS.iter().position(|c| *c == id) {
            return i as u32 % self.racks;
        }
        ((id.0 - 1) % u64::from(self.racks)) as u32
    }

    pub fn summary(&self) -> String {
        format!(
            "{} nodes in {} racks, {} config members, heartbeat {} ms, suspect {} ms, down {} ms, election {} ticks of {} ms, loss {}/M, dup {}/M, chaos {} s",
            self.nodes,
            self.racks,
            self.members.len(),
            self.timing.heartbeat_interval_ms,
            self.timing.suspect_after_ms,
            self.timing.down_after_ms,
            self.raft.election_ticks,
            self.tick.as_millis(),
            self.net.loss_per_million,
            self.net.duplicate_per_million,
            self.chaos.as_secs()
        )
    }
}

/// Boot one node: members open (or, the first time, format) their drive, load the config group's Raft
/// state and run member + agent; other nodes run the agent only.
pub async fn boot(env: NodeEnv, s: Arc<ConfigScenario>, view: SharedView, provisioned: Arc<AtomicBool>) {
    *view.lock().expect("view lock") = ConfigView::default();
    let NodeEnv { id, disks, net, clock, mut rng, trace, .. } = env;
    let source = id.to_string();
    let member = if s.members.contains(&id) {
        match open_member(id, &s, disks[0].clone(), &provisioned, &mut rng).await {
            Ok(m) => Some(m),
            Err(reason) => {
                trace.record(&source, format_args!("config member cannot start: {reason}"));
                return std::future::pending().await;
            }
        }
    } else {
        None
    };
    let agent = NodeAgent::new(s.members.clone(), s.timing.heartbeat_interval_ms, id.0 as usize);
    let node = ConfigNode::new(id, clock, net, s.tick, member, agent, view);
    if let Err(e) = node.run().await {
        trace.record(&source, format_args!("config loop stopped: {e}"));
    }
    std::future::pending().await
}

async fn open_member(
    id: NodeId,
    s: &ConfigScenario,
    disk: crate::SimDisk,
    provisioned: &AtomicBool,
    rng: &mut DetRng,
) -> Result<(ConfigMember, RaftLogStore<crate::SimDisk>), String> {
    let store = if provisioned.load(Ordering::Relaxed) {
        Store::open(disk).await.map_err(|e| format!("open store: {e}"))?
    } else {
        let identity = DeviceIdentity { cluster_id: s.params.cluster_id, device_id: u128::from(id.0) };
        let config = StoreConfig { max_extent_bytes: 4 * MIB as u32, journal_bytes: Some(MIB) };
        let store = Store::format(disk, identity, config).await.map_err(|e| format!("format store: {e}"))?;
        provisioned.store(true, Ordering::Relaxed);
        store
    };
    let log = RaftLogStore::open(store).await.map_err(|e| format!("open raft log: {e}"))?;
    let persisted = log.load(CONFIG_GROUP).await.map_err(|e| format!("load raft log: {e}"))?;
    let member =
        ConfigMember::new(id, &s.members, s.params.clone(), s.raft.clone(), s.timing, persisted, rng.fork("raft"))
            .map_err(|e| format!("raft: {e}"))?;
    Ok((member, log))
}

/// A fresh shared view.
pub fn new_view() -> SharedView {
    Arc::new(Mutex::new(ConfigView::default()))
}
