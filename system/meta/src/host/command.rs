//! [`ShardCommand`]: what one entry of a shard's Raft log carries, encoded with `tessera-proto`.

use serde::{Deserialize, Serialize};

use crate::exec::ReqId;
use crate::shard::{Envelope, PartitionId, ReadKey, TxnId, TxnPlan};
use crate::{InodeId, MetaOp};

/// One command of a shard's log. Every `now_ns` is the proposing leader's wall-clock reading; the
/// replica applies `max(now_ns, latest applied now_ns)`, so time never runs backwards in a shard even
/// when leaders' clocks disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// A client's single-shard operation ([`crate::exec::ShardCall::Apply`]).
    Apply { req: ReqId, op: MetaOp, now_ns: u64 },
    /// A client's read of records ([`crate::exec::ShardCall::Read`]), ordered by the log.
    Read { req: ReqId, keys: Vec<ReadKey> },
    /// A client's cross-shard transaction, coordinated by this shard ([`crate::exec::ShardCall::Begin`]).
    Begin { req: ReqId, plan: TxnPlan, now_ns: u64 },
    /// A two-phase-commit message from another shard (votes, decisions, acknowledgements, queries).
    Txn { envelope: Envelope, now_ns: u64 },
    /// The coordinator's prepare timeout of `id` fired on the leader.
    PrepareTimeout { id: TxnId, now_ns: u64 },
    /// The leader saw partition `part` of directory `dir` due to split: begin its split transaction
    /// (`ShardState::begin_split`; refused without effect if no longer due or locked).
    Split { dir: InodeId, part: PartitionId, now_ns: u64 },
}

impl ShardCommand {
    pub fn encode(&self) -> Vec<u8> {
        tessera_proto::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<ShardCommand, tessera_proto::CodecError> {
        tessera_proto::decode(bytes)
    }

    /// The client request this command answers, if any.
    pub fn req(&self) -> Option<ReqId> {
        match self {
            ShardCommand::Apply { req, .. } | ShardCommand::Read { req, .. } | ShardCommand::Begin { req, .. } => {
                Some(*req)
            }
            ShardCommand::Txn { .. } | ShardCommand::PrepareTimeout { .. } | ShardCommand::Split { .. } => None,
        }
    }
}
