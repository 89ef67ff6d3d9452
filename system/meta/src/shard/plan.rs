//! Optimistic planning of cross-shard operations (see [`crate::exec`]): the keys a planner reads
//! ([`ReadKey`]) and what it gets ([`Fetched`]), where keys live ([`entry_shard`], [`dir_shard`]), a
//! shard's answer to reads ([`ShardState::read`]) and the planning step itself ([`plan_op`]).
//!
//! **Planning.** [`plan_op`] runs an operation's own logic (`ops::dispatch`, the code
//! [`ShardState::apply`] runs) over a [`View`] of the records fetched so far. It stops at the first
//! key the view lacks ([`Planned::Need`]); the driver fetches it and plans again. Once the logic
//! completes, the view's accesses and writes become a [`TxnPlan`]: per shard, an `Expect` of every key
//! read (with the value read), `Put`/`Remove` of every record written and `Allocate` of every new inode
//! id. An operation whose answer is an errno is planned too (expectations only), so its answer is as
//! linearizable as a success. Every expectation is checked under locks at prepare: a plan that
//! commits was made from values that all held at its commit point, whatever the reads' timing.
//!
//! **Reads are snapshots per shard.** The driver reads all the keys it wants from one shard in one
//! call, again whenever it wants one more from that shard, so the records of one shard in a view are
//! from one moment and the logic's assertions about one shard's records hold; records of different
//! shards may be from different moments (an ancestor walk may then meet a cycle: [`Planned::Stale`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::store::cookie_range;
use super::txn_changes::{LockKey, TxnChange};
use super::view::View;

pub(crate) use super::ops::named_keys;
use super::{EntryRecord, Halt, InodeRecord, ShardState, ops};
use crate::{InodeId, MetaOp, MetaResult, name_hash};

/// A key the planner reads from a shard ([`ReadKey::shard`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReadKey {
    /// An inode record (absent if freed or never allocated).
    Inode(InodeId),
    /// Entry `name` of directory `parent`, with whatever decides the cookie a new entry of that name
    /// would get: every entry of `parent` whose cookie has `name`'s hash prefix.
    Entry { parent: InodeId, name: String },
    /// Whether directory `dir` has any entry in this shard.
    Children(InodeId),
    /// The shard's next inode counter (where a new inode of the shard would be numbered).
    NextInode(u16),
}

/// A key's value as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadValue {
    Inode(Option<InodeRecord>),
    /// The entries of the directory with the name's hash prefix, in cookie order.
    Entries(Vec<(u64, EntryRecord)>),
    Children(bool),
    NextInode(u64),
    /// The key is not this shard's: a typed refusal (the reader routed it wrongly, or with GIGA+
    /// splitting later, the entry's partition moved).
    NotHere,
}

/// A key and its value as read, and whether a transaction held it locked then (its value may be
/// about to change: the planner backs off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    pub key: ReadKey,
    pub value: ReadValue,
    pub locked: bool,
}

/// A cross-shard operation's plan: the coordinator (the op's home shard) and each shard's changes
/// (the coordinator's among them), the answer the client gets if it commits, and the planner's
/// clock reading, which is the time written into the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnPlan {
    pub coordinator: u16,
    pub changes: BTreeMap<u16, Vec<TxnChange>>,
    pub reply: MetaResult,
    pub now_ns: u64,
}

impl TxnPlan {
    /// Every shard the plan touches, in order.
    pub fn shards(&self) -> impl Iterator<Item = u16> + '_ {
        self.changes.keys().copied()
    }
}

/// The shard holding entry `name` of directory `parent`: the directory's own shard (no GIGA+ splitting
/// yet; splitting changes this function only).
pub fn entry_shard(parent: InodeId, name: &str) -> u16 {
    let _ = name;
    parent.shard()
}

/// The shard a new directory `name` of `parent` is allocated in: a hash of both, so that trees spread
/// over the shards deterministically.
pub fn dir_shard(parent: InodeId, name: &str, shard_count: u16) -> u16 {
    assert!(shard_count > 0, "no shards");
    let mut h = name_hash(name) ^ parent.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 29;
    (h % u64::from(shard_count)) as u16
}

impl ReadKey {
    /// The shard holding the key.
    pub fn shard(&self) -> u16 {
        match self {
            ReadKey::Inode(ino) | ReadKey::Children(ino) => ino.shard(),
            ReadKey::Entry { parent, name } => entry_shard(*parent, name),
            ReadKey::NextInode(shard) => *shard,
        }
    }

    /// The keys a transaction expecting this key's value locks (coarse: an entry locks its directory's
    /// inode too; the next-inode counter is never locked, new ids are reserved instead).
    pub fn locks(&self) -> Vec<LockKey> {
        match self {
            ReadKey::Inode(ino) | ReadKey::Children(ino) => vec![LockKey::Inode(*ino)],
            ReadKey::Entry { parent, name } => vec![LockKey::Entry(*parent, name.clone()), LockKey::Inode(*parent)],
            ReadKey::NextInode(_) => Vec::new(),
        }
    }
}

impl ReadValue {
    /// The value of `key` where nothing exists (a shard beyond the cluster).
    pub fn absent(key: &ReadKey) -> ReadValue {
        match key {
            ReadKey::Inode(_) => ReadValue::Inode(None),
            ReadKey::Entry { .. } => ReadValue::Entries(Vec::new()),
            ReadKey::Children(_) => ReadValue::Children(false),
            ReadKey::NextInode(_) => ReadValue::NextInode(InodeId::COUNTER_MAX + 1),
        }
    }

    /// Whether this value can answer `key` (a misrouted answer cannot).
    pub fn fits(&self, key: &ReadKey) -> bool {
        matches!(
            (key, self),
            (ReadKey::Inode(_), ReadValue::Inode(_))
                | (ReadKey::Entry { .. }, ReadValue::Entries(_))
                | (ReadKey::Children(_), ReadValue::Children(_))
                | (ReadKey::NextInode(_), ReadValue::NextInode(_))
        )
    }
}

impl ShardState {
    /// Read `keys`, in order, ignoring locks (a locked key is read and flagged). A key of another
    /// shard is answered [`ReadValue::NotHere`]. Changes nothing; the host runs it through the log (or
    /// a read index) so it reflects every operation committed before it.
    pub fn read(&self, keys: &[ReadKey]) -> Vec<Fetched> {
        keys.iter()
            .map(|key| {
                let value = self.read_value(key);
                let locked = !self.txn.locks.is_empty() && key.locks().iter().any(|k| self.txn.locks.contains_key(k));
                Fetched { key: key.clone(), value, locked }
            })
            .collect()
    }

    /// The value of `key` now (what an expectation compares with).
    pub(super) fn read_value(&self, key: &ReadKey) -> ReadValue {
        if key.shard() != self.shard {
            return ReadValue::NotHere;
        }
        match key {
            ReadKey::Inode(ino) => ReadValue::Inode(self.inodes.get(ino).cloned()),
            ReadKey::Entry { parent, name } => {
                let (from, to) = cookie_range(name);
                let range = self.entry_range(*parent, std::ops::Bound::Included(from), to);
                ReadValue::Entries(range.map(|(c, e)| (c, e.clone())).collect())
            }
            ReadKey::Children(dir) => ReadValue::Children(!self.holds_no_entries(*dir)),
            ReadKey::NextInode(_) => ReadValue::NextInode(self.next_counter),
        }
    }
}

/// What one planning step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Planned {
    /// The logic needs this key, not fetched yet.
    Need(ReadKey),
    /// The fetched records are inconsistent: fetch afresh and plan again.
    Stale,
    Plan(TxnPlan),
}

/// Run `op` at `now_ns` over the records `fetched` so far (see the module documentation). Keys of
/// shards beyond the cluster (an op naming such an inode) are expected nowhere: they never exist.
pub(crate) fn plan_op(op: &MetaOp, now_ns: u64, shard_count: u16, fetched: &BTreeMap<ReadKey, ReadValue>) -> Planned {
    let mut view = View::new(shard_count, fetched);
    let reply = match ops::dispatch(&mut view, op, now_ns) {
        Ok(reply) => Ok(reply),
        Err(Halt::Errno(e)) => Err(e),
        Err(Halt::Missing(key)) => return Planned::Need(key),
        Err(Halt::Stale) => return Planned::Stale,
    };
    let changes = view.into_changes(reply.is_ok());
    // The home shard, unless the op names an inode beyond the cluster there.
    let home = ops::home_shard(op);
    let coordinator = if home < shard_count { home } else { changes.keys().next().copied().unwrap_or(0) };
    Planned::Plan(TxnPlan { coordinator, changes, reply, now_ns })
}
