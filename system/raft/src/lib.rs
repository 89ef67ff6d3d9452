//! Tessera's Raft: a sans-IO driver around tikv's `raft` crate (raft-rs 0.7) for the config service and
//! the metadata shards, and a Raft log store on the per-drive extent store.
//!
//! - [`RaftNode`]: one replica, stepped by its caller (`tick`/`step`/`propose` -> `ready` -> persist ->
//!   send -> apply -> `advance`). It owns no clock, thread or randomness of its own: ticks come from the
//!   caller and the election jitter from a [`tessera_env::DetRng`] (see "Determinism" on [`RaftNode`]).
//! - [`RaftMessage`], [`LogEntry`], [`HardState`], [`SnapshotData`]: our serde types. Messages travel and
//!   records are stored only as these, encoded with `tessera-proto`; protobuf bytes are never decoded by
//!   us (protobuf 2.28, RUSTSEC-2024-0437).
//! - [`MultiRaft`]: every group (metadata shard) one node hosts, stepped together: one [`RaftBatch`]
//!   envelope per node pair, one [`MultiReady`] (and one `RaftLogStore::save_many`) per round, leadership
//!   balancing and shard moves (learner -> voter -> removal).
//! - [`RaftLogStore`]: persists [`PersistBatch`]es of many groups as extents of one
//!   `tessera_store::Store` (the batches of one round in one extent), and rebuilds a group's
//!   [`PersistedState`] after a restart.
//!
//! Protobuf exposure, accepted and bounded: raft-rs encodes conf changes with protobuf into the `data`
//! of conf-change entries, and those bytes travel to peers and to disk inside our types. raft-rs itself
//! decodes such bytes only when a leader handles a `MsgPropose`; we never forward proposals and refuse
//! `MsgPropose` from peers, so it only ever decodes bytes it just encoded itself. To apply a committed
//! conf change we do not decode `data` either: the change travels a second time, in the entry's
//! `context`, encoded with `tessera-proto`; we rebuild raft-rs's `ConfChangeV2` from it and check that
//! encoding it reproduces `data` byte for byte.

mod config;
mod log_store;
mod multi;
mod node;
mod persist;
mod storage;
mod types;

pub use config::{ConfigError, RaftConfig};
pub use log_store::{DEFAULT_MAX_RECORD_BYTES, RECORD_MAGIC, RECORD_MAGIC_V1, RaftLogError, RaftLogStore};
pub use multi::{
    DEFAULT_MAX_BATCH_BYTES, GroupApply, MultiConfig, MultiRaft, MultiRaftError, MultiReady, MultiReadyToken, Outbox,
    RaftBatch, ReconcileStep, message_size_bytes,
};
pub use node::{ConfChangeRequest, PeerProgress, RaftError, RaftNode, RaftReady, RaftRole, RaftStatus, ReadyToken};
pub use persist::{PersistBatch, PersistedState, PersistedStateError};
pub use types::{EntryKind, HardState, LogEntry, MessageType, RaftMessage, SnapshotData};

#[cfg(test)]
mod tests_types;
