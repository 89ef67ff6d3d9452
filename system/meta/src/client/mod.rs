//! The metadata client library: runs [`MetaOp`](crate::MetaOp)s against the shards over the network,
//! and a path API (`resolve`, `stat`, `mkdir`, ...) on top.
//!
//! - [`MetaClient`]: the I/O shell. Owns a network endpoint (every message it receives is taken to be
//!   for it), a clock, a wall clock and a seeded generator; runs one operation at a time by driving
//!   [`crate::exec::OpDriver`] and carrying each of its shard calls with the router.
//! - [`Router`]: the sans-IO core, one shard call at a time: request ids, the leader cache, redirects,
//!   backoff, timeouts; tested by stepping it directly.
//! - [`ShardDirectory`]: the shard map the client routes with; [`ClientConfig`]: its tunables.
//!
//! **Errors.** [`ClientError::Posix`] is the operation's own answer (an errno from the shard, or the
//! client's path checks, which answer exactly as Linux). Everything else is about getting an answer:
//! a transport problem never becomes an errno. [`ClientError::outcome_unknown`] tells which errors
//! leave an operation maybe applied (a history checker must treat it so).

mod backoff;
mod config;
mod directory;
mod meta_client;
mod path;
mod router;

#[cfg(test)]
mod tests_router;

pub use backoff::Backoff;
pub use config::{ATTEMPTS_MAX_LIMIT, ClientConfig, ClientConfigError, READDIR_PAGE_ENTRIES_MAX};
pub use directory::{DirectoryError, SHARDS_MAX, ShardDirectory};
pub use meta_client::{MetaClient, RefreshHook};
pub use path::{Component, PATH_LEN_MAX_BYTES, PathError, parse_path};
pub use router::{CallEvent, REDIRECTS_IMMEDIATE_MAX, Router};

use crate::{Errno, MetaReply};

/// Why a client call did not give the operation's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The operation failed with this POSIX error (from the shard, or from the client's path walk).
    #[error("{0}")]
    Posix(Errno),
    /// The path is not one the client resolves (nothing was sent).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: PathError },
    /// No answer in time: every attempt of a shard call went unanswered or was refused, or the
    /// operation's deadline passed. The operation may or may not have taken effect.
    #[error("no answer from shard {shard:?} after {attempts} attempts in {elapsed_ms} ms; outcome unknown")]
    Timeout { shard: Option<u16>, attempts: u32, elapsed_ms: u64 },
    /// The executor gave up on the operation after `crate::exec::ATTEMPTS_MAX` attempts met locked keys
    /// or stale plans (it kept conflicting with others). It did not take effect.
    #[error("gave up after repeated conflicts; not applied")]
    GaveUp,
    /// A shard answered a call with an answer of another kind (a service bug). Outcome unknown.
    #[error("shard {shard} answered a call with an answer of another kind")]
    UnexpectedAnswer { shard: u16 },
    /// The shard remembers a newer request from this client id, so it never applies this one: the
    /// client was restarted under an id it had used before (every incarnation needs a fresh id). Not
    /// applied.
    #[error("shard {shard} has seen newer requests from this client id; a restarted client needs a new id")]
    StaleClientId { shard: u16 },
    /// The operation named a shard outside the shard map (a stale or foreign inode id).
    #[error("shard {shard} is not in the shard map")]
    NoSuchShard { shard: u16 },
    /// The client's network endpoint is closed (the node is stopping). Outcome unknown.
    #[error("network endpoint closed")]
    Closed,
    /// The service answered with a reply of the wrong kind for the operation.
    #[error("unexpected reply to {op}: {got:?}")]
    UnexpectedReply { op: &'static str, got: Box<MetaReply> },
    /// A directory listing returned a page that does not advance (a service bug).
    #[error("readdir of a directory made no progress at cookie {cookie:#x}")]
    ReaddirStuck { cookie: u64 },
    /// [`MetaClient::readdir_all`] found more entries than `readdir_all_entries_max`.
    #[error("directory has more than {max} entries")]
    TooManyEntries { max: usize },
}

impl ClientError {
    /// Whether the operation may have taken effect although no answer says so.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ClientError::Timeout { .. } | ClientError::Closed | ClientError::UnexpectedAnswer { .. })
    }
}

impl From<Errno> for ClientError {
    fn from(e: Errno) -> ClientError {
        ClientError::Posix(e)
    }
}
