//! One metadata shard's state machine: a pure, deterministic `apply(op, now_ns) -> reply` over the keys
//! one shard holds, replicated later by the shard's Raft group (docs/design/metadata.md, "One shard's
//! state machine").
//!
//! **Key space.** Two ordered maps, as the replicated store will keep them:
//! - inodes, keyed by [`InodeId`] (this shard's ids: their top 16 bits are [`ShardState::shard`]);
//! - directory entries, keyed by `(parent directory, cookie)` so a directory's entries are one
//!   contiguous range in hash order (readdir is a range scan, and a GIGA+ split later moves a sub-range),
//!   with a `(parent, name) -> cookie` index for lookups.
//!
//! **Locality.** [`ShardState::apply`] answers `Ok(reply)` when every key the operation reads or writes
//! is held here, and `Err(NotLocal)` (changing nothing) when it would need another shard: an inode id
//! the operation names that belongs to another shard, or one reached while applying it (the child an
//! entry names, a directory's ancestor in a rename). New inodes are allocated in this shard. The rest
//! is served by cross-shard transactions: this shard's side of them (coordinator records, intents,
//! locks, tombstones) is in `txn` and `txn_changes`; an operation touching a key a transaction has
//! locked is answered `EAGAIN`.
//!
//! **Semantics** are `specs::posix::Namespace`'s (Linux behaviour, errno order): every check runs in
//! that order and state changes only after all passed, so a failed operation changes nothing.
//!
//! Call order: [`ShardState::new`] once (the shard holding a file system's root creates it), then
//! [`ShardState::apply`] for each committed log entry, in log order, with the entry's `now_ns`.

mod attrs;
mod create;
mod entries;
mod invariants;
mod perm;
mod plan;
mod records;
mod remove;
mod rename;
mod txn;
mod txn_changes;
mod xattr;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Attr, Errno, FileType, InodeId, MetaOp, MetaReply, MetaResult};

pub use plan::{Fetched, ReadKey, TxnPlan};
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

/// Why applying stopped early: an expected POSIX error, or a key of another shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    Errno(Errno),
    NotLocal(u16),
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
    /// The counter of the next inode id this shard allocates; ids are never reused.
    next_counter: u64,
    /// The file system's root, if this shard holds it.
    root: Option<InodeId>,
    inodes: BTreeMap<InodeId, InodeRecord>,
    entries: BTreeMap<(InodeId, u64), EntryRecord>,
    /// `(parent, name) -> cookie`: the lookup index of `entries`.
    entry_names: BTreeMap<(InodeId, String), u64>,
    /// Cross-shard transactions: coordinator records, intents, locks, tombstones (see `txn`).
    txn: TxnTables,
}

impl ShardState {
    /// An empty shard; with `root = Some((ino, now_ns))` it holds a file system's root directory
    /// `ino` (of this shard: mode 0o755, owned by root, all times `now_ns`) and allocates after it.
    pub fn new(shard: u16, root: Option<(InodeId, u64)>) -> ShardState {
        let mut state = ShardState {
            shard,
            next_counter: 1,
            root: None,
            inodes: BTreeMap::new(),
            entries: BTreeMap::new(),
            entry_names: BTreeMap::new(),
            txn: TxnTables::default(),
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
            let record = InodeRecord { attr, parent: Some(ino), symlink_target: None, xattrs: BTreeMap::new() };
            state.inodes.insert(ino, record);
            state.root = Some(ino);
            state.next_counter = ino.counter() + 1;
        }
        state
    }

    pub fn shard(&self) -> u16 {
        self.shard
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

    pub fn inode_record(&self, ino: InodeId) -> Option<&InodeRecord> {
        self.inodes.get(&ino)
    }

    /// Every directory entry held here, in key order (parent, then cookie).
    pub fn entries(&self) -> impl Iterator<Item = (&(InodeId, u64), &EntryRecord)> {
        self.entries.iter()
    }

    /// Apply one committed operation at wall-clock time `now_ns`. `Ok` holds the POSIX reply (a failed
    /// operation changes nothing); `Err(NotLocal)` means the operation needs another shard's keys and
    /// nothing was changed. An operation touching a key a cross-shard transaction has locked is
    /// answered `Ok(Err(EAGAIN))` (the client retries) after the locality check.
    pub fn apply(&mut self, op: &MetaOp, now_ns: u64) -> Result<MetaResult, NotLocal> {
        let named: BTreeSet<u16> =
            named_inodes(op).iter().map(|ino| ino.shard()).filter(|&s| s != self.shard).collect();
        if !named.is_empty() {
            return Err(NotLocal { shards: named.into_iter().collect() });
        }
        if self.busy(op) {
            return Ok(Err(Errno::EAGAIN));
        }
        let before = self.next_counter;
        let outcome = self.dispatch(op, now_ns);
        assert!(self.next_counter >= before, "inode counter went backwards");
        match outcome {
            Ok(reply) => Ok(Ok(reply)),
            Err(Halt::Errno(e)) => Ok(Err(e)),
            Err(Halt::NotLocal(shard)) => {
                assert_ne!(shard, self.shard);
                Err(NotLocal { shards: vec![shard] })
            }
        }
    }

    fn dispatch(&mut self, op: &MetaOp, now: u64) -> Step<MetaReply> {
        match op {
            MetaOp::Lookup { parent, name, creds } => self.lookup(*parent, name, creds),
            MetaOp::GetAttr { ino } => Ok(MetaReply::Attr(self.inode(*ino)?.attr.clone())),
            MetaOp::SetAttr { ino, set, creds } => self.setattr(*ino, set, creds, now),
            MetaOp::Create { parent, name, mode, creds } => {
                self.make_node(*parent, name, creds, create::NewNode::plain(FileType::Regular, *mode), now)
            }
            MetaOp::Mkdir { parent, name, mode, creds } => {
                self.make_node(*parent, name, creds, create::NewNode::plain(FileType::Directory, *mode), now)
            }
            MetaOp::Mknod { parent, name, mode, kind, rdev, creds } => {
                self.mknod(*parent, name, *mode, *kind, *rdev, creds, now)
            }
            MetaOp::Symlink { parent, name, target, creds } => self.symlink(*parent, name, target, creds, now),
            MetaOp::Readlink { ino } => {
                self.inode(*ino)?.symlink_target.clone().map(MetaReply::LinkTarget).ok_or(Halt::Errno(Errno::EINVAL))
            }
            MetaOp::Link { ino, new_parent, new_name, creds } => self.link(*ino, *new_parent, new_name, creds, now),
            MetaOp::Unlink { parent, name, creds } => self.remove(*parent, name, creds, false, now),
            MetaOp::Rmdir { parent, name, creds } => self.remove(*parent, name, creds, true, now),
            MetaOp::Rename { parent, name, new_parent, new_name, creds } => {
                self.rename(*parent, name, *new_parent, new_name, creds, now)
            }
            MetaOp::Readdir { dir, cookie, max_entries, creds } => self.readdir(*dir, *cookie, *max_entries, creds),
            MetaOp::SetXattr { ino, name, value, flags, creds } => {
                self.set_xattr(*ino, name, value, *flags, creds, now)
            }
            MetaOp::GetXattr { ino, name, creds } => self.get_xattr(*ino, name, creds),
            MetaOp::ListXattr { ino, creds } => self.list_xattr(*ino, creds),
            MetaOp::RemoveXattr { ino, name, creds } => self.remove_xattr(*ino, name, creds, now),
            MetaOp::Truncate { ino, size, creds } => {
                let set = crate::SetAttr { size: Some(*size), ..crate::SetAttr::default() };
                self.setattr(*ino, &set, creds, now)
            }
        }
    }

    /// The inode `ino`: NotLocal if another shard holds it, ESTALE if it does not exist.
    pub(crate) fn inode(&self, ino: InodeId) -> Step<&InodeRecord> {
        if ino.shard() != self.shard {
            return Err(Halt::NotLocal(ino.shard()));
        }
        self.inodes.get(&ino).ok_or(Halt::Errno(Errno::ESTALE))
    }

    /// A local inode already checked to exist, for mutation.
    pub(crate) fn inode_mut(&mut self, ino: InodeId) -> &mut InodeRecord {
        self.inodes.get_mut(&ino).expect("inode checked before mutation")
    }

    /// The directory `ino`: as [`ShardState::inode`], and ENOTDIR if it is not a directory.
    pub(crate) fn dir(&self, ino: InodeId) -> Step<&InodeRecord> {
        let record = self.inode(ino)?;
        if record.is_dir() { Ok(record) } else { Err(Halt::Errno(Errno::ENOTDIR)) }
    }

    /// The id a new inode would get: ENOSPC once the 48-bit counter is exhausted.
    pub(crate) fn plan_ino(&self) -> Result<InodeId, Errno> {
        if self.next_counter > InodeId::COUNTER_MAX {
            return Err(Errno::ENOSPC);
        }
        Ok(InodeId::new(self.shard, self.next_counter))
    }

    /// Store a new inode under the id [`ShardState::plan_ino`] gave, consuming it.
    pub(crate) fn insert_inode(&mut self, record: InodeRecord) {
        let ino = record.attr.ino;
        assert_eq!(ino, InodeId::new(self.shard, self.next_counter), "inode id not the planned one");
        self.next_counter += 1;
        let previous = self.inodes.insert(ino, record);
        assert!(previous.is_none(), "inode id {ino:?} reused");
    }

    /// Stamp `ino`'s ctime, and its mtime too when `modified` (a directory whose entries changed).
    pub(crate) fn stamp(&mut self, ino: InodeId, modified: bool, now: u64) {
        let attr = &mut self.inode_mut(ino).attr;
        attr.ctime_ns = now;
        if modified {
            attr.mtime_ns = now;
        }
    }
}

/// The inode ids an operation names directly (each is read by it).
fn named_inodes(op: &MetaOp) -> Vec<InodeId> {
    match op {
        MetaOp::Lookup { parent, .. }
        | MetaOp::Create { parent, .. }
        | MetaOp::Mkdir { parent, .. }
        | MetaOp::Mknod { parent, .. }
        | MetaOp::Symlink { parent, .. }
        | MetaOp::Unlink { parent, .. }
        | MetaOp::Rmdir { parent, .. } => vec![*parent],
        MetaOp::GetAttr { ino }
        | MetaOp::SetAttr { ino, .. }
        | MetaOp::Readlink { ino }
        | MetaOp::SetXattr { ino, .. }
        | MetaOp::GetXattr { ino, .. }
        | MetaOp::ListXattr { ino, .. }
        | MetaOp::RemoveXattr { ino, .. }
        | MetaOp::Truncate { ino, .. } => vec![*ino],
        MetaOp::Readdir { dir, .. } => vec![*dir],
        MetaOp::Link { ino, new_parent, .. } => vec![*ino, *new_parent],
        MetaOp::Rename { parent, new_parent, .. } => vec![*parent, *new_parent],
    }
}
