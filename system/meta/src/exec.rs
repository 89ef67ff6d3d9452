//! Executing one [`MetaOp`] over the shards, as a sans-IO state machine ([`OpDriver`]) that both the
//! networked client library (`crate::client`) and the in-process cluster (`crate::local`) drive.
//!
//! An operation is first tried on its home shard ([`ShardCall::Apply`]): most operations touch keys of
//! one shard only and commit in one log entry there. When the home shard answers `NotLocal`, the
//! driver plans the operation optimistically: it reads the records it needs from each shard
//! ([`ShardCall::Read`]), runs the operation's own logic over the merged view (so its checks and errno
//! order are exactly the single-shard code's), and turns the result into a [`TxnPlan`]: per shard, the
//! records it expects unchanged and the records it writes. The coordinator shard runs the plan as a
//! two-phase commit ([`ShardCall::Begin`]); every participant validates its expectations under locks at
//! prepare, so a plan made from stale reads is refused and the driver plans again.
//!
//! Work in progress (issue 4): the types are the contract between the driver, the shard host and the
//! client library; see docs/design/metadata.md.

use serde::{Deserialize, Serialize};

use crate::shard::{Fetched, NotLocal, ReadKey, TxnPlan};
use crate::{Errno, MetaResult};

/// A request id: a client's id and a sequence number it never reuses. A shard remembers the answers
/// to recent requests, so a retried `Apply` or `Begin` takes effect at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReqId {
    pub client: u64,
    pub seq: u64,
}

/// What the driver asks of one shard (its leader). Each call is one command in that shard's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardCall {
    /// Apply the operation if every key it needs is held by this shard.
    Apply { op: crate::MetaOp },
    /// Read these keys (through the log: the answer reflects every operation committed before it).
    Read { keys: Vec<ReadKey> },
    /// Coordinate this plan as a cross-shard transaction; answered once decided.
    Begin { plan: TxnPlan },
}

/// A shard's answer to a [`ShardCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardAnswer {
    Applied(Result<MetaResult, NotLocal>),
    Read(Vec<Fetched>),
    /// The transaction committed (`Ok`) or aborted with this errno (EAGAIN: a participant's
    /// expectation failed or a key was locked; the driver plans again).
    Decided(Result<(), Errno>),
}
