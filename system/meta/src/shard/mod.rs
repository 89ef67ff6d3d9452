//! One metadata shard's state machine: a pure, deterministic `apply(op, now_ns) -> reply` over the keys
//! one shard holds, replicated later by the shard's Raft group (docs/design/metadata.md, "One shard's
//! state machine").
//!
//! **Key space.** Ordered maps, as the replicated store will keep them:
//! - inodes, keyed by [`InodeId`] (this shard's ids: their top 16 bits are [`ShardState::shard`]);
//! - directory entries, keyed by `(parent directory, cookie)` so a directory's entries are one
//!   contiguous range in hash order (readdir is a range scan, and a GIGA+ split moves a sub-range),
//!   with a `(parent, name) -> cookie` index for lookups;
//! - directory partitions (`partition`): a directory's entries live in its own shard (its home) until
//!   it grows past the split threshold; then they are partitioned by name hash into ranges spread over
//!   the shards ([`partition_shard`]). The home keeps the partition map, every other shard the
//!   partitions it owns, where it sent the halves it split off, and a copy of the directory's access
//!   attributes. Splits are cross-shard transactions the partition's shard starts (`split`:
//!   [`ShardState::due_splits`], [`ShardState::begin_split`]).
//!
//! **Locality.** [`ShardState::apply`] answers `Ok(reply)` when every key the operation reads or writes
//! is held here, and `Err(NotLocal)` (changing nothing) when it would need another shard: an inode id
//! the operation names that belongs to another shard, an entry of a partition another shard owns
//! (`NotLocal` then names the partition's shard as this shard knows it: the GIGA+ correction of a
//! stale route), or one reached while applying it (the child an entry names, a directory's ancestor in
//! a rename, a new directory placed in another shard by [`dir_shard`]). A lookup is answered by the
//! shard of its name's partition alone. The logic of every operation is written once over a
//! `store::Store`, so the same code runs over this shard's keys and over a planner's view of keys
//! fetched from several shards (`plan`): a cross-shard operation is planned by the client
//! ([`crate::exec::OpDriver`]) into per-shard changes ([`TxnChange`]: expectations of what was read,
//! records written) run as a two-phase commit (`txn`, `txn_changes`). An operation reading a key a
//! transaction has locked is answered `EAGAIN`.
//!
//! **Semantics** are `specs::posix::Namespace`'s (Linux behaviour, errno order): every check runs in
//! that order and state changes only after all passed, so a failed operation changes nothing.
//!
//! Call order: [`ShardState::new`] once per shard (the shard holding a file system's root creates it),
//! then, for each committed log entry in log order and with the entry's `now_ns`: [`ShardState::apply`]
//! (a client's operation), [`ShardState::read`] (a planner's read, through the log), one of the
//! transaction commands of `txn` ([`ShardState::begin_plan`], [`ShardState::on_message`], ...), or
//! [`ShardState::begin_split`] (a leader's split of a partition it found in
//! [`ShardState::due_splits`]; see `split` for the call order). [`ShardState::is_settled`] tells when
//! nothing is in flight.

mod attrs;
mod create;
mod entries;
mod file;
mod invariants;
mod ops;
mod partition;
mod perm;
pub(crate) mod plan;
mod records;
mod remove;
mod rename;
mod split;
mod store;
mod txn;
mod txn_changes;
mod view;
mod xattr;

#[cfg(test)]
mod file_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::content::{FileContent, StripeRef};
use crate::{Attr, Errno, FileType, InodeId, MetaOp, MetaResult};

use partition::Partitions;

pub use ops::home_shard;
pub use partition::{
    DirAccess, PARTITION_DEPTH_MAX, PartitionId, SPLIT_MOVE_ENTRIES_MAX, SPLIT_THRESHOLD_DEFAULT, SPLIT_THRESHOLD_MAX,
    partition_shard,
};
pub use plan::{DirPage, Fetched, ReadKey, ReadValue, TxnPlan, dir_shard, entry_shard};
pub use records::{EntryRecord, InodeRecord};
pub use txn::{
    Decision, Envelope, Intent, Outcome, PREPARE_TIMEOUT_NS, PrepareVote, QueryAnswer, RESOLVE_TIMEOUT_NS,
    TOMBSTONE_TTL_NS, TxnId, TxnMsg, TxnRecord, TxnState, TxnTables,
};
pub use txn_changes::{LockKey, TxnChange};

/// The operation needs keys held by these shards (sorted, without this one); nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("operation needs shards {shards:?}")]
pub struct NotLocal {
    pub shards: Vec<u16>,
}

/// Why an operation's logic stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Halt {
    /// An expected POSIX error: the operation's answer.
    Errno(Errno),
    /// The store does not hold this key (another shard's, or not fetched yet).
    Missing(ReadKey),
    /// A planner's view is inconsistent (read from several shards at different times): plan again.
    Stale,
}

impl From<Errno> for Halt {
    fn from(e: Errno) -> Halt {
        Halt::Errno(e)
    }
}

/// What an operation's body returns before [`ShardState::apply`] splits it into reply and locality.
pub(crate) type Step<T> = Result<T, Halt>;

/// The state of one metadata shard. Serializable as a whole: a snapshot is the encoded value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    shard: u16,
    /// The number of shards of the cluster (where new directories go, see [`dir_shard`]).
    shard_count: u16,
    /// The counter of the next inode id this shard allocates; ids are never reused.
    next_counter: u64,
    /// The file system's root, if this shard holds it.
    root: Option<InodeId>,
    inodes: BTreeMap<InodeId, InodeRecord>,
    entries: BTreeMap<(InodeId, u64), EntryRecord>,
    /// `(parent, name) -> cookie`: the lookup index of `entries`.
    entry_names: BTreeMap<(InodeId, String), u64>,
    /// Directory partitions: records, access copies, entry counts (see `partition`).
    parts: Partitions,
    /// Cross-shard transactions: coordinator records, intents, locks, tombstones (see `txn`).
    txn: TxnTables,
    /// Stripes no inode of this shard references any more, by sequence number, until the reclaimer
    /// releases them (see `file`).
    garbage: BTreeMap<u64, StripeRef>,
    /// The sequence number of the next garbage entry; never reused.
    next_garbage_seq: u64,
}

impl ShardState {
    /// Shard `shard` of `shard_count`, empty; with `root = Some((ino, now_ns))` it holds a file
    /// system's root directory `ino` (of this shard: mode 0o755, owned by root, all times `now_ns`)
    /// and allocates after it.
    pub fn new(shard: u16, shard_count: u16, root: Option<(InodeId, u64)>) -> ShardState {
        assert!(shard < shard_count, "shard {shard} of {shard_count}");
        let mut state = ShardState {
            shard,
            shard_count,
            next_counter: 1,
            root: None,
            inodes: BTreeMap::new(),
            entries: BTreeMap::new(),
            entry_names: BTreeMap::new(),
            parts: Partitions::new(SPLIT_THRESHOLD_DEFAULT),
            txn: TxnTables::default(),
            garbage: BTreeMap::new(),
            next_garbage_seq: 0,
        };
        if let Some((ino, now_ns)) = root {
            assert_eq!(ino.shard(), shard, "the root {ino:?} belongs to another shard than {shard}");
            let attr = Attr {
                ino,
                kind: FileType::Directory,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                atime_ns: now_ns,
                mtime_ns: now_ns,
                ctime_ns: now_ns,
                rdev: 0,
            };
            let record = InodeRecord {
                attr,
                parent: Some(ino),
                symlink_target: None,
                xattrs: BTreeMap::new(),
                content: FileContent::default(),
            };
            state.inodes.insert(ino, record);
            state.root = Some(ino);
            state.next_counter = ino.counter() + 1;
        }
        state
    }

    /// This shard with split threshold `entries` (every shard of a cluster must use the same; it is
    /// part of the replicated state): a partition holding more entries splits. Call right after
    /// [`ShardState::new`]. Panics outside `1..=`[`SPLIT_THRESHOLD_MAX`].
    pub fn with_split_threshold(mut self, entries: u32) -> ShardState {
        assert!(self.entries.is_empty(), "the split threshold is set before any entry exists");
        self.parts = Partitions::new(entries);
        self
    }

    /// A partition holding more entries than this splits.
    pub fn split_threshold(&self) -> u32 {
        self.parts.split_threshold()
    }

    pub fn shard(&self) -> u16 {
        self.shard
    }

    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// The root directory, if this shard holds one.
    pub fn root(&self) -> Option<InodeId> {
        self.root
    }

    /// The id the next created inode gets (if the counter is not exhausted).
    pub fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// The inodes this shard holds, in id order.
    pub fn inodes(&self) -> impl Iterator<Item = (&InodeId, &InodeRecord)> {
        self.inodes.iter()
    }

    /// How many inodes this shard holds.
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    pub fn inode_record(&self, ino: InodeId) -> Option<&InodeRecord> {
        self.inodes.get(&ino)
    }

    /// Every directory entry held here, in key order (parent, then cookie).
    pub fn entries(&self) -> impl Iterator<Item = (&(InodeId, u64), &EntryRecord)> {
        self.entries.iter()
    }

    /// Apply one committed operation at wall-clock time `now_ns`. `Ok` holds the POSIX reply (a failed
    /// operation changes nothing); `Err(NotLocal)` means the operation needs another shard's keys and
    /// nothing was changed. An operation reading a key a cross-shard transaction has locked is
    /// answered `Ok(Err(EAGAIN))` (the client retries), changing nothing.
    pub fn apply(&mut self, op: &MetaOp, now_ns: u64) -> Result<MetaResult, NotLocal> {
        if let Some(shard) = op.target_shard()
            && shard != self.shard
        {
            return Err(NotLocal { shards: vec![shard] });
        }
        if let Some(result) = self.apply_shard_op(op) {
            return Ok(result);
        }
        let named: BTreeSet<u16> =
            ops::named_inodes(op).iter().map(|ino| ino.shard()).filter(|&s| s != self.shard).collect();
        if !named.is_empty() && !self.serves_lookup(op) {
            return Err(NotLocal { shards: named.into_iter().collect() });
        }
        let before = self.next_counter;
        let outcome = ops::dispatch(self, op, now_ns);
        assert!(self.next_counter >= before, "inode counter went backwards");
        match outcome {
            Ok(reply) => Ok(Ok(reply)),
            Err(Halt::Errno(e)) => Ok(Err(e)),
            Err(Halt::Missing(key)) => {
                let shard = self.route(&key);
                assert_ne!(shard, self.shard, "{key:?} is this shard's");
                Err(NotLocal { shards: vec![shard] })
            }
            Err(Halt::Stale) => panic!("a shard's own keys are never stale"),
        }
    }

    /// Whether `op` is a lookup in a directory of another shard whose name's partition this shard
    /// owns: it answers from the partition's entry and its copy of the directory's access attributes.
    fn serves_lookup(&self, op: &MetaOp) -> bool {
        match op {
            MetaOp::Lookup { parent, name, .. } => {
                let h = crate::name_hash(name);
                matches!(self.parts.owner(self.shard, *parent, h), partition::Owner::Here(_))
            }
            _ => false,
        }
    }
}
