//! The replicated cluster configuration: what every node and client caches, stamped with an epoch.
//!
//! `ClusterConfig` is the state machine's state. It changes only through [`crate::command::apply`], which
//! is a pure function: the same commands in the same order give byte-identical configs on every replica.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;

use crate::placement::ShardMap;

/// Longest accepted node address (`host:port`) in bytes.
pub const ADDRESS_LEN_MAX_BYTES: usize = 256;
/// Longest accepted file system name in bytes.
pub const FS_NAME_LEN_MAX_BYTES: usize = 64;
/// Most drives one node may declare.
pub const DRIVES_PER_NODE_MAX: usize = 64;
/// Most file systems one cluster may hold.
pub const FILESYSTEMS_MAX: usize = 4096;
/// Most nodes one cluster may hold (DESIGN.md section 4: design point 64K).
pub const NODES_MAX: usize = 65_536;
/// Recent changes kept in the config (for operators and for history checkers).
pub const RECENT_CHANGES_KEPT: usize = 1024;

/// Identifies one client request: the client's id and its per-client sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub client: u64,
    pub seq: u64,
}

/// One applied change, as remembered in [`ClusterConfig::recent_changes`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The epoch this change created.
    pub epoch: u64,
    /// The client request that asked for it; `None` for the failure detector's changes.
    pub request: Option<RequestId>,
    /// A one-line description.
    pub summary: String,
}

/// Life cycle of a node in the config.
///
/// `Up` -> `Suspect` (missed heartbeats) -> `Down` (declared dead: replicas move off) and back to `Up` when
/// it heartbeats again. `Decommissioning`: an operator asked it to drain; its replicas move off; it is
/// removed by a `Remove` command once drained (or replaced).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeState {
    Up,
    Suspect,
    Down,
    Decommissioning,
}

impl NodeState {
    /// May this node hold shard replicas? Suspect nodes keep theirs (a suspicion is not a verdict);
    /// down and draining nodes hold none.
    pub fn holds_replicas(self) -> bool {
        matches!(self, NodeState::Up | NodeState::Suspect)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveInfo {
    pub capacity_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    /// Where peers and clients reach it (`host:port`).
    pub address: String,
    /// Its failure domain.
    pub rack: u32,
    pub drives: Vec<DriveInfo>,
    /// Relative share of shard replicas (and later data) it should carry; >= 1.
    pub weight: u32,
    pub state: NodeState,
    /// Epoch of the change that last set `state`.
    pub state_epoch: u64,
}

impl NodeRecord {
    pub fn capacity_bytes(&self) -> u64 {
        self.drives.iter().map(|d| d.capacity_bytes).sum()
    }
}

/// How a file system protects its data (DESIGN.md section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protection {
    /// Full copies, for clusters too small for striping. `copies` in 2..=5.
    Replicated { copies: u8 },
    /// N+K erasure coding: N in 4..=16, K in 2..=4.
    ErasureCoded { data: u8, parity: u8 },
}

/// `4+2` (erasure coding), `3 copies` (replication): how operators and reports name a protection.
impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::ErasureCoded { data, parity } => write!(f, "{data}+{parity}"),
            Protection::Replicated { copies } => write!(f, "{copies} copies"),
        }
    }
}

impl Protection {
    /// Distinct failure domains one stripe (or one set of copies) needs.
    pub fn failure_domains_needed(self) -> u32 {
        match self {
            Protection::Replicated { copies } => u32::from(copies),
            Protection::ErasureCoded { data, parity } => u32::from(data) + u32::from(parity),
        }
    }

    pub fn is_valid(self) -> bool {
        match self {
            Protection::Replicated { copies } => (2..=5).contains(&copies),
            Protection::ErasureCoded { data, parity } => (4..=16).contains(&data) && (2..=4).contains(&parity),
        }
    }
}

/// How a file system places its stripes (DESIGN.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlacementMode {
    Hash,
    PerformanceAware,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRecord {
    pub id: u64,
    pub name: String,
    pub protection: Protection,
    pub placement: PlacementMode,
    pub created_epoch: u64,
}

/// Parameters fixed when the cluster is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterParams {
    pub cluster_id: u128,
    /// Number of virtual metadata shards (fixed for the cluster's life).
    pub shard_count: u32,
    /// Replicas per shard (3 or 5), each in its own failure domain.
    pub shard_replication: u32,
}

/// The whole replicated configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub params: ClusterParams,
    /// Raised by every successful change; caches compare epochs to know they are stale.
    pub epoch: u64,
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    /// Virtual shard -> replica set. Empty until enough failure domains have joined.
    pub shard_map: ShardMap,
    pub filesystems: BTreeMap<String, FsRecord>,
    pub next_fs_id: u64,
    /// Last request sequence applied per client, so a retried request is not applied twice.
    pub client_sessions: BTreeMap<u64, ClientSession>,
    /// The last [`RECENT_CHANGES_KEPT`] changes, oldest first.
    pub recent_changes: VecDeque<ChangeRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    pub last_seq: u64,
    pub last_result: Result<u64, crate::command::ConfigError>,
    /// Epoch when the session last applied a request (the oldest session is forgotten first).
    pub epoch: u64,
}

impl ClusterConfig {
    pub fn new(params: ClusterParams) -> ClusterConfig {
        ClusterConfig {
            params,
            epoch: 0,
            nodes: BTreeMap::new(),
            shard_map: ShardMap::default(),
            filesystems: BTreeMap::new(),
            next_fs_id: 1,
            client_sessions: BTreeMap::new(),
            recent_changes: VecDeque::new(),
        }
    }

    /// The answer already recorded for `request`, if its client's session has applied it (or a later
    /// request: clients keep one request in flight, so an older one was answered already and the
    /// recorded answer of the latest stands for it).
    pub fn recorded_result(&self, request: RequestId) -> Option<Result<u64, crate::command::ConfigError>> {
        let session = self.client_sessions.get(&request.client)?;
        (request.seq <= session.last_seq).then(|| session.last_result.clone())
    }

    /// Distinct failure domains among nodes that may hold replicas.
    pub fn live_failure_domains(&self) -> u32 {
        let mut racks: Vec<u32> = self.nodes.values().filter(|n| n.state.holds_replicas()).map(|n| n.rack).collect();
        racks.sort_unstable();
        racks.dedup();
        racks.len() as u32
    }

    /// Shards that have a replica on `node`.
    pub fn shards_on(&self, node: NodeId) -> Vec<u32> {
        self.shard_map
            .shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.replicas.contains(&node))
            .map(|(i, _)| i as u32)
            .collect()
    }
}
