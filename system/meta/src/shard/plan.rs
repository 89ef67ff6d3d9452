//! Optimistic planning of cross-shard operations (see [`crate::exec`]): the keys a planner reads
//! ([`ReadKey`]) and what it gets ([`Fetched`]), where keys live ([`ShardState::entry_shard`] for
//! entries, [`dir_shard`] for new directories), a shard's answer to reads ([`ShardState::read`]) and
//! the planning step itself ([`plan_op`]).
//!
//! **Routing.** Entries and pages of a directory live in the shard owning their partition (see
//! `partition`). A reader asks the directory's home first; a shard that does not hold the key answers
//! [`ReadValue::Moved`] naming the shard to ask, and the driver reads it there. The view keeps which
//! shard answered each key: the plan's expectations and writes of that key go there.
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
use tessera_env::mark;

use super::partition::{DirAccess, Owner, PartitionId};
use super::store::cookie_range;
use super::txn_changes::{LockKey, TxnChange};
use super::view::View;

pub(crate) use super::ops::named_keys;
use super::{EntryRecord, Halt, InodeRecord, ShardState, ops};
use crate::{InodeId, MetaOp, MetaResult, name_hash};

/// A key the planner reads from a shard. [`ReadKey::shard`] is where it is asked first; an entry or a
/// page of a split directory may live elsewhere, and a shard that does not hold it answers
/// [`ReadValue::Moved`] with the shard to ask (the GIGA+ correction of a stale route).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReadKey {
    /// An inode record (absent if freed or never allocated).
    Inode(InodeId),
    /// Entry `name` of directory `parent`, with whatever decides the cookie a new entry of that name
    /// would get: every entry of `parent` whose cookie has `name`'s hash prefix. Held by the shard
    /// owning the name's partition.
    Entry { parent: InodeId, name: String },
    /// Whether directory `dir` has any entry in its home shard.
    Children(InodeId),
    /// The shard's next inode counter (where a new inode of the shard would be numbered).
    NextInode(u16),
    /// Directory `dir`'s partition map, at its home (empty while it is unsplit).
    Partitions(InodeId),
    /// Whether `shard` (a partition owner other than the home) holds entries of directory `dir`.
    ChildrenAt { dir: InodeId, shard: u16 },
    /// The copy of directory `dir`'s access attributes `shard` keeps (a partition owner other than
    /// the home).
    Access { dir: InodeId, shard: u16 },
    /// A page of directory `dir`: up to `max_entries` entries after cookie `after` in the partition
    /// holding position `after + 1`, held by that partition's shard.
    Page { dir: InodeId, after: u64, max_entries: u32 },
}

/// A key's value as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadValue {
    Inode(Option<InodeRecord>),
    /// The entries of the directory with the name's hash prefix, in cookie order.
    Entries(Vec<(u64, EntryRecord)>),
    Children(bool),
    NextInode(u64),
    /// The key is not this shard's: a typed refusal (the reader routed it wrongly).
    NotHere,
    /// The key's partition is not held here: ask this shard.
    Moved(u16),
    /// Every partition of the directory and its shard, in hash order.
    Partitions(Vec<(PartitionId, u16)>),
    Access(Option<DirAccess>),
    Page(DirPage),
}

/// A page of one partition of a directory (the value of [`ReadKey::Page`]): the first entries after
/// the cookie asked for, up to the partition's end `end`; `more` when the partition holds entries
/// after the last one returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPage {
    pub entries: Vec<(u64, EntryRecord)>,
    pub end: u64,
    pub more: bool,
}

impl DirPage {
    /// The page after the last cookie: nothing, and the end of the directory.
    pub fn past_the_end() -> DirPage {
        DirPage { entries: Vec::new(), end: u64::MAX, more: false }
    }
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

/// The shard a request for entry `name` of `parent` goes to first: the directory's home, which holds
/// its entries while it is unsplit and its partition map once split (then it answers with the shard of
/// the name's partition: [`ShardState::entry_shard`] is the routing decision itself).
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
    /// The shard the key is asked of first (for an entry or a page: the directory's home).
    pub fn shard(&self) -> u16 {
        match self {
            ReadKey::Inode(ino) | ReadKey::Children(ino) | ReadKey::Partitions(ino) => ino.shard(),
            ReadKey::Entry { parent, name } => entry_shard(*parent, name),
            ReadKey::Page { dir, .. } => dir.shard(),
            ReadKey::NextInode(shard) | ReadKey::ChildrenAt { shard, .. } | ReadKey::Access { shard, .. } => *shard,
        }
    }

    /// Whether the key lives in a directory partition, wherever that is (not at a fixed shard).
    pub fn is_routed(&self) -> bool {
        matches!(self, ReadKey::Entry { .. } | ReadKey::Page { .. })
    }

    /// The keys a transaction expecting this key's value locks (coarse: an entry, a page or a
    /// directory's partition records lock the directory's inode key in that shard too; the
    /// next-inode counter is never locked, new ids are reserved instead).
    pub fn locks(&self) -> Vec<LockKey> {
        match self {
            ReadKey::Inode(ino) | ReadKey::Children(ino) | ReadKey::Partitions(ino) => vec![LockKey::Inode(*ino)],
            ReadKey::Entry { parent, name } => vec![LockKey::Entry(*parent, name.clone()), LockKey::Inode(*parent)],
            ReadKey::ChildrenAt { dir, .. } | ReadKey::Access { dir, .. } | ReadKey::Page { dir, .. } => {
                vec![LockKey::Inode(*dir)]
            }
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
            ReadKey::Children(_) | ReadKey::ChildrenAt { .. } => ReadValue::Children(false),
            ReadKey::NextInode(_) => ReadValue::NextInode(InodeId::COUNTER_MAX + 1),
            ReadKey::Partitions(_) => ReadValue::Partitions(Vec::new()),
            ReadKey::Access { .. } => ReadValue::Access(None),
            ReadKey::Page { .. } => ReadValue::Page(DirPage::past_the_end()),
        }
    }

    /// Whether this value can answer `key` (a misrouted answer cannot; [`ReadValue::Moved`] is a
    /// redirection, not an answer).
    pub fn fits(&self, key: &ReadKey) -> bool {
        matches!(
            (key, self),
            (ReadKey::Inode(_), ReadValue::Inode(_))
                | (ReadKey::Entry { .. }, ReadValue::Entries(_))
                | (ReadKey::Children(_) | ReadKey::ChildrenAt { .. }, ReadValue::Children(_))
                | (ReadKey::NextInode(_), ReadValue::NextInode(_))
                | (ReadKey::Partitions(_), ReadValue::Partitions(_))
                | (ReadKey::Access { .. }, ReadValue::Access(_))
                | (ReadKey::Page { .. }, ReadValue::Page(_))
        )
    }
}

impl ShardState {
    /// Read `keys`, in order, ignoring locks (a locked key is read and flagged). A key of another
    /// shard is answered [`ReadValue::NotHere`], an entry or page of a partition held elsewhere
    /// [`ReadValue::Moved`]. Changes nothing; the host runs it through the log (or a read index) so it
    /// reflects every operation committed before it.
    pub fn read(&self, keys: &[ReadKey]) -> Vec<Fetched> {
        keys.iter()
            .map(|key| {
                let value = self.read_value(key);
                let locked = !self.txn.locks.is_empty() && key.locks().iter().any(|k| self.txn.locks.contains_key(k));
                if locked && key.locks().iter().any(|k| self.locked_by_split(k)) {
                    mark!("meta.split_under_way");
                }
                Fetched { key: key.clone(), value, locked }
            })
            .collect()
    }

    /// The shard holding entry `name` of `dir` as this shard knows it: itself if it owns the name's
    /// partition, else the shard to ask (see `partition`). The one routing decision of entries.
    pub fn entry_shard(&self, dir: InodeId, name: &str) -> u16 {
        self.position_shard(dir, name_hash(name))
    }

    /// The shard holding position `h` (a name's hash, or a cookie) of `dir`, as this shard knows it.
    pub fn position_shard(&self, dir: InodeId, h: u64) -> u16 {
        match self.parts.owner(self.shard, dir, h) {
            Owner::Here(_) => self.shard,
            Owner::There(shard) => shard,
        }
    }

    /// Where this shard would send a request for `key` (itself if it holds it).
    pub(super) fn route(&self, key: &ReadKey) -> u16 {
        match key {
            ReadKey::Entry { parent, name } => self.entry_shard(*parent, name),
            ReadKey::Page { dir, after, .. } if *after < u64::MAX => self.position_shard(*dir, after + 1),
            _ => key.shard(),
        }
    }

    /// The value of `key` now (what an expectation compares with).
    pub(super) fn read_value(&self, key: &ReadKey) -> ReadValue {
        if !key.is_routed() && key.shard() != self.shard {
            return ReadValue::NotHere;
        }
        match key {
            ReadKey::Inode(ino) => ReadValue::Inode(self.inodes.get(ino).cloned()),
            ReadKey::Entry { parent, name } => match self.parts.owner(self.shard, *parent, name_hash(name)) {
                Owner::Here(_) => {
                    let (from, to) = cookie_range(name);
                    let range = self.entry_range(*parent, std::ops::Bound::Included(from), to);
                    ReadValue::Entries(range.map(|(c, e)| (c, e.clone())).collect())
                }
                Owner::There(shard) => ReadValue::Moved(shard),
            },
            ReadKey::Children(dir) | ReadKey::ChildrenAt { dir, .. } => {
                ReadValue::Children(!self.holds_no_entries(*dir))
            }
            ReadKey::NextInode(_) => ReadValue::NextInode(self.next_counter),
            ReadKey::Partitions(dir) => ReadValue::Partitions(self.parts.records_of(*dir).collect()),
            ReadKey::Access { dir, .. } => ReadValue::Access(self.parts.access(*dir)),
            ReadKey::Page { dir, after, max_entries } => match self.page_here(*dir, *after, *max_entries) {
                Ok(page) => ReadValue::Page(page),
                Err(shard) => ReadValue::Moved(shard),
            },
        }
    }

    /// The page of `dir` after `after` if this shard owns position `after + 1`, else the shard to ask.
    pub(super) fn page_here(&self, dir: InodeId, after: u64, max_entries: u32) -> Result<DirPage, u16> {
        if after == u64::MAX {
            return Ok(DirPage::past_the_end());
        }
        let part = match self.parts.owner(self.shard, dir, after + 1) {
            Owner::Here(part) => part,
            Owner::There(shard) => return Err(shard),
        };
        let mut range = self.entry_range(dir, std::ops::Bound::Excluded(after), part.last()).peekable();
        let mut entries = Vec::new();
        while entries.len() < max_entries as usize
            && let Some((cookie, entry)) = range.next()
        {
            entries.push((cookie, entry.clone()));
        }
        Ok(DirPage { entries, end: part.last(), more: range.peek().is_some() })
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

/// Run `op` at `now_ns` over the records `fetched` so far, each with the shard that answered it (see
/// the module documentation). Keys of shards beyond the cluster (an op naming such an inode) are
/// expected nowhere: they never exist.
pub(crate) fn plan_op(
    op: &MetaOp,
    now_ns: u64,
    shard_count: u16,
    fetched: &BTreeMap<ReadKey, (u16, ReadValue)>,
) -> Planned {
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
