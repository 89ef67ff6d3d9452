//! The metadata shard host: every shard replica one node holds, each shard a Raft group of
//! `tessera_raft::MultiRaft`, driven over the node's network, clocks and Raft log store
//! (docs/design/metadata.md).
//!
//! - [`ShardCommand`] (`command`): what a shard's log entries carry.
//! - [`ShardReplica`] (`replica`): the replicated state of one shard ([`crate::shard::ShardState`] plus
//!   the request-deduplication table [`DedupTable`]), applied purely and deterministically; its
//!   encoding is the shard's Raft snapshot.
//! - [`MetaHost`] (`node`): the node driver. It ticks the groups, steps Raft traffic, turns client
//!   requests and shard-to-shard envelopes into proposals, persists through `RaftLogStore`, applies
//!   committed commands and answers clients from the leader once their command applied. On timers it
//!   retransmits what the two-phase commit owes, aborts expired prepares, queries in-doubt intents,
//!   balances leadership towards `replicas[0]` and reconciles groups with the shard map
//!   (`duties`, `groups`).
//!
//! Not yet here: read index (reads go through the log), the config agent feeding the shard map (the
//! embedding process writes it into the [`SharedShardMap`]), deleting a removed group's log records.

mod command;
mod dedup;
mod duties;
mod groups;
mod node;
mod replica;
mod route;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tessera_config::placement::ShardMap;
use tessera_env::{DetRng, NodeId};
use tessera_raft::{MultiConfig, MultiRaftError, RaftLogError, RaftStatus};

use crate::InodeId;

pub use command::ShardCommand;
pub use dedup::{DEDUP_CAPACITY, DedupTable, Remembered, Seen};
pub use node::MetaHost;
pub use replica::{ApplyOutput, ShardReplica};

/// Tunables of a node's shard host. Every interval is in the node's monotonic time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// One Raft tick of every group.
    pub tick_interval_ms: u64,
    pub multi: MultiConfig,
    /// Client requests proposed and waiting for their answer, over all shards; beyond, `Busy`.
    pub waiting_requests_max: usize,
    /// Messages taken off the network before the groups' work is run (and persisted) once.
    pub recv_batch_max: usize,
    /// A leader re-sends what its transactions owe, aborts expired prepares and queries in-doubt
    /// intents this often (and as soon as it has applied its log after an election).
    pub txn_retransmit_interval_ms: u64,
    /// Groups are reconciled with the shard map this often (and at once on a new epoch).
    pub reconcile_interval_ms: u64,
    /// Leadership is moved towards `replicas[0]` this often.
    pub balance_interval_ms: u64,
    /// A group is compacted (snapshotted) after this many applied entries.
    pub compact_every_entries: u64,
    /// A replica the shard map no longer lists is dropped once it has had no leader this long (or at
    /// once when it applied its own removal).
    pub removal_grace_ms: u64,
    /// Client sessions each shard remembers for deduplication (see `DedupTable`).
    pub dedup_capacity: usize,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            tick_interval_ms: 50,
            multi: MultiConfig::default(),
            waiting_requests_max: 4096,
            recv_batch_max: 256,
            txn_retransmit_interval_ms: 500,
            reconcile_interval_ms: 200,
            balance_interval_ms: 1_000,
            compact_every_entries: 512,
            removal_grace_ms: 5_000,
            dedup_capacity: DEDUP_CAPACITY,
        }
    }
}

/// Facts about the cluster every host must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSetup {
    /// The shard map the groups were bootstrapped from: a node listed for a shard here starts that
    /// group with these voters; any other node joins it empty (from a snapshot).
    pub genesis: ShardMap,
    /// Shards holding a file system's root directory, with the root's id and creation time.
    pub roots: BTreeMap<u16, (InodeId, u64)>,
    /// A directory partition holding more entries than this splits (GIGA+); the same on every shard
    /// (`crate::shard::SPLIT_THRESHOLD_DEFAULT` in production, small in simulation to exercise splits).
    pub split_threshold_entries: u32,
}

/// A shard map and its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochMap {
    pub epoch: u64,
    pub map: ShardMap,
}

/// Where a host reads the current shard map (the embedding process writes newer epochs into it).
pub type SharedShardMap = Arc<Mutex<EpochMap>>;

/// What a host publishes for the rest of the node and for simulation checkers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostView {
    pub epoch: u64,
    /// Every hosted group.
    pub groups: BTreeMap<u16, GroupView>,
    /// Set by a checker: the host then publishes a copy of every hosted replica's state in `states`
    /// each round (expensive: for simulation checks at the end of a run only).
    pub capture_states: bool,
    pub states: BTreeMap<u16, crate::shard::ShardState>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub status: RaftStatus,
    /// Inodes the shard holds (as this replica applied).
    pub inodes: usize,
}

pub type SharedHostView = Arc<Mutex<HostView>>;

/// The node's doors and identity.
#[derive(Debug)]
pub struct HostEnv<C, W, N> {
    pub id: NodeId,
    pub clock: C,
    pub wall: W,
    pub net: N,
    pub rng: DetRng,
}

/// Why a host stopped. A failed persist is fatal: the node stops rather than acknowledge what it
/// could not make durable.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("raft log store failed: {0}")]
    Log(#[from] RaftLogError),
    #[error("multi-raft: {0}")]
    Raft(#[from] MultiRaftError),
    #[error("a shard snapshot does not decode: {0}")]
    Snapshot(tessera_proto::CodecError),
    #[error("network endpoint closed")]
    NetClosed,
}
