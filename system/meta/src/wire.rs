//! Messages of the metadata service between shard hosts and clients (encoded with `tessera-proto`;
//! see docs/formats/wire.md).

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;
use tessera_raft::RaftBatch;

use crate::exec::{ReqId, ShardAnswer, ShardCall};
use crate::shard::Envelope;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaMessage {
    /// Raft traffic of every shard group two nodes share, in one envelope.
    Raft(RaftBatch),
    /// Two-phase-commit traffic between shards, sent by a shard's leader to a node it believes hosts
    /// (and leads) the destination shard; a node that does not lead `to` drops it (senders retry).
    Txn(Envelope),
    /// A client's call to `shard`. Retries reuse `req`; `epoch` is the shard-map epoch the client
    /// routed with.
    Request { req: ReqId, shard: u16, epoch: u64, call: ShardCall },
    /// The answer to `req`.
    Response { req: ReqId, answer: ShardAnswer },
    /// This node does not lead `shard`; `leader` is its best guess, `epoch` its shard-map epoch (a
    /// client with an older map refreshes it).
    NotLeader { req: ReqId, shard: u16, leader: Option<NodeId>, epoch: u64 },
    /// The node is overloaded (its request queue is full): retry after a backoff.
    Busy { req: ReqId },
    /// `req` is older than the latest request the shard remembers from the same client id: it is never
    /// applied. A client that still waits for it was restarted under an id it had used before.
    Stale { req: ReqId },
}

impl MetaMessage {
    pub fn encode(&self) -> Vec<u8> {
        tessera_proto::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<MetaMessage, tessera_proto::CodecError> {
        tessera_proto::decode(bytes)
    }
}
