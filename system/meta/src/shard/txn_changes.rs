//! The primitive changes one shard applies for a cross-shard operation ([`TxnChange`]), the keys
//! they lock ([`LockKey`]), their validation against the shard's state (all before any change) and
//! their application at commit.
//!
//! **Locks** are exclusive and coarse in this first stage: an entry change locks the entry's key
//! `(parent, name)` and the parent directory's inode (its size, link count, times and cookie space
//! change, and an rmdir of it must see the planned entry); an inode change locks the inode; a
//! directory changing parent also locks [`LockKey::Tree`], the shard's ancestor pointers, which a
//! single-shard rename across directories walks. A single-shard operation touching a locked key
//! gets `EAGAIN` (see [`ShardState::busy`]); so does a transaction whose keys are locked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Errno, FileType, InodeId, LINK_MAX, MetaOp, validate_name};

use super::{EntryRecord, InodeRecord, ShardState};

/// One primitive change of a cross-shard operation, applied by the shard holding its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnChange {
    /// Add entry `name` of directory `parent` naming `ino` (of any shard) of type `kind`; the parent's
    /// size (and link count, for a subdirectory) and times follow. Refused: ESTALE/ENOTDIR for the
    /// parent, EINVAL/ENAMETOOLONG for the name, EEXIST, EMLINK, ENOSPC (no cookie).
    InsertEntry { parent: InodeId, name: String, ino: InodeId, kind: FileType },
    /// Remove entry `name` of `parent`, which the plan saw naming `ino`. Refused: ENOENT if it is
    /// gone, EAGAIN if it names another inode now (the plan is stale: the client plans again).
    RemoveEntry { parent: InodeId, name: String, ino: InodeId },
    /// One more link to a non-directory (EPERM for a directory, EMLINK at [`LINK_MAX`]).
    IncLink { ino: InodeId },
    /// One link fewer: a non-directory is freed at 0, a directory is freed (ENOTEMPTY unless empty).
    DecLink { ino: InodeId },
    /// A new inode of this shard. Its id must not be allocated yet (EEXIST): the id is reserved at
    /// prepare (the shard's counter moves past it, so it is never reused, even on abort).
    CreateInode { record: InodeRecord },
    /// Directory `dir`'s `..` becomes `parent` (a directory renamed into another directory).
    SetParent { dir: InodeId, parent: InodeId },
    /// Stamp `ino`'s ctime, and its mtime too when `modified`, with the commit's time.
    Touch { ino: InodeId, modified: bool },
}

/// A key a transaction locks from prepare until it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LockKey {
    Inode(InodeId),
    Entry(InodeId, String),
    /// The shard's directory `..` pointers as a whole.
    Tree,
}

impl TxnChange {
    /// The keys this change locks.
    pub fn locks(&self) -> Vec<LockKey> {
        match self {
            TxnChange::InsertEntry { parent, name, .. } | TxnChange::RemoveEntry { parent, name, .. } => {
                vec![LockKey::Entry(*parent, name.clone()), LockKey::Inode(*parent)]
            }
            TxnChange::IncLink { ino } | TxnChange::DecLink { ino } | TxnChange::Touch { ino, .. } => {
                vec![LockKey::Inode(*ino)]
            }
            TxnChange::CreateInode { record } => vec![LockKey::Inode(record.attr.ino)],
            TxnChange::SetParent { dir, .. } => vec![LockKey::Inode(*dir), LockKey::Tree],
        }
    }
}

/// The state as a list of changes validated so far would leave it (validation only).
#[derive(Default)]
struct Overlay {
    names: BTreeMap<(InodeId, String), Option<InodeId>>,
    removed: BTreeMap<InodeId, Vec<String>>,
    nlink: BTreeMap<InodeId, i64>,
    size: BTreeMap<InodeId, i64>,
    created: BTreeMap<InodeId, FileType>,
    freed: BTreeSet<InodeId>,
}

impl ShardState {
    /// Check `changes` in order, each against the state the previous ones leave, and that none of
    /// their keys is locked by another transaction than `txn`; the keys to lock. Changes nothing.
    pub(super) fn validate_changes(
        &self,
        txn: super::TxnId,
        changes: &[TxnChange],
    ) -> Result<BTreeSet<LockKey>, Errno> {
        let locks: BTreeSet<LockKey> = changes.iter().flat_map(TxnChange::locks).collect();
        if locks.iter().any(|k| self.txn.locks.get(k).is_some_and(|&holder| holder != txn)) {
            return Err(Errno::EAGAIN);
        }
        let mut o = Overlay::default();
        for change in changes {
            self.validate_one(change, &mut o)?;
        }
        Ok(locks)
    }

    /// The kind of local inode `ino` as the overlay leaves it; ESTALE if missing, EINVAL if another
    /// shard's (a plan naming a key of another shard is malformed).
    fn kind_in(&self, o: &Overlay, ino: InodeId) -> Result<FileType, Errno> {
        if ino.shard() != self.shard {
            return Err(Errno::EINVAL);
        }
        if o.freed.contains(&ino) {
            return Err(Errno::ESTALE);
        }
        if let Some(&kind) = o.created.get(&ino) {
            return Ok(kind);
        }
        self.inodes.get(&ino).map(|r| r.attr.kind).ok_or(Errno::ESTALE)
    }

    fn nlink_in(&self, o: &Overlay, ino: InodeId) -> i64 {
        let base = self.inodes.get(&ino).map_or(0, |r| i64::from(r.attr.nlink));
        base + o.nlink.get(&ino).copied().unwrap_or(0)
    }

    fn entry_in(&self, o: &Overlay, parent: InodeId, name: &str) -> Option<InodeId> {
        match o.names.get(&(parent, name.to_string())) {
            Some(planned) => *planned,
            None => self.entry(parent, name).map(|(_, e)| e.ino),
        }
    }

    fn parent_dir_in(&self, o: &Overlay, parent: InodeId, name: &str) -> Result<(), Errno> {
        if self.kind_in(o, parent)? != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        validate_name(name)
    }

    fn validate_one(&self, change: &TxnChange, o: &mut Overlay) -> Result<(), Errno> {
        match change {
            TxnChange::InsertEntry { parent, name, ino, kind } => {
                self.parent_dir_in(o, *parent, name)?;
                if self.entry_in(o, *parent, name).is_some() {
                    return Err(Errno::EEXIST);
                }
                if ino.shard() == self.shard && self.kind_in(o, *ino)? != *kind {
                    return Err(Errno::EINVAL);
                }
                if *kind == FileType::Directory {
                    if self.nlink_in(o, *parent) >= i64::from(LINK_MAX) {
                        return Err(Errno::EMLINK);
                    }
                    *o.nlink.entry(*parent).or_default() += 1;
                }
                let leaving: Vec<&str> =
                    o.removed.get(parent).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default();
                self.plan_cookie(*parent, name, &leaving)?;
                o.names.insert((*parent, name.clone()), Some(*ino));
                *o.size.entry(*parent).or_default() += 1;
            }
            TxnChange::RemoveEntry { parent, name, ino } => {
                self.parent_dir_in(o, *parent, name)?;
                let found = self.entry_in(o, *parent, name).ok_or(Errno::ENOENT)?;
                if found != *ino {
                    return Err(Errno::EAGAIN);
                }
                let kind = self.entry(*parent, name).map(|(_, e)| e.kind);
                if kind == Some(FileType::Directory) {
                    *o.nlink.entry(*parent).or_default() -= 1;
                }
                o.names.insert((*parent, name.clone()), None);
                o.removed.entry(*parent).or_default().push(name.clone());
                *o.size.entry(*parent).or_default() -= 1;
            }
            TxnChange::IncLink { ino } => {
                if self.kind_in(o, *ino)? == FileType::Directory {
                    return Err(Errno::EPERM);
                }
                if self.nlink_in(o, *ino) >= i64::from(LINK_MAX) {
                    return Err(Errno::EMLINK);
                }
                *o.nlink.entry(*ino).or_default() += 1;
            }
            TxnChange::DecLink { ino } => {
                if self.kind_in(o, *ino)? == FileType::Directory {
                    let size = self.inodes.get(ino).map_or(0, |r| r.attr.size as i64);
                    if size + o.size.get(ino).copied().unwrap_or(0) != 0 {
                        return Err(Errno::ENOTEMPTY);
                    }
                    o.freed.insert(*ino);
                } else {
                    let left = self.nlink_in(o, *ino) - 1;
                    if left < 0 {
                        return Err(Errno::EINVAL);
                    }
                    *o.nlink.entry(*ino).or_default() -= 1;
                    if left == 0 {
                        o.freed.insert(*ino);
                    }
                }
            }
            TxnChange::CreateInode { record } => {
                let ino = record.attr.ino;
                if ino.shard() != self.shard || record.is_dir() != record.parent.is_some() {
                    return Err(Errno::EINVAL);
                }
                if ino.counter() < self.next_counter || o.created.contains_key(&ino) {
                    return Err(Errno::EEXIST);
                }
                o.created.insert(ino, record.attr.kind);
            }
            TxnChange::SetParent { dir, .. } => {
                if self.kind_in(o, *dir)? != FileType::Directory {
                    return Err(Errno::ENOTDIR);
                }
            }
            TxnChange::Touch { ino, .. } => {
                self.kind_in(o, *ino)?;
            }
        }
        Ok(())
    }

    /// Reserve the ids of the inodes `changes` create: the counter moves past them.
    pub(super) fn reserve_ids(&mut self, changes: &[TxnChange]) {
        for change in changes {
            if let TxnChange::CreateInode { record } = change {
                self.next_counter = self.next_counter.max(record.attr.ino.counter() + 1);
            }
        }
    }

    /// Apply validated (and since locked) changes at time `now`.
    pub(super) fn apply_changes(&mut self, changes: &[TxnChange], now: u64) {
        for change in changes {
            match change {
                TxnChange::InsertEntry { parent, name, ino, kind } => {
                    let cookie = self.plan_cookie(*parent, name, &[]).expect("cookie checked at prepare");
                    self.insert_entry(*parent, cookie, EntryRecord { name: name.clone(), ino: *ino, kind: *kind });
                    let attr = &mut self.inode_mut(*parent).attr;
                    attr.size += 1;
                    if *kind == FileType::Directory {
                        attr.nlink += 1;
                    }
                    self.stamp(*parent, true, now);
                }
                TxnChange::RemoveEntry { parent, name, .. } => self.unlink_entry(*parent, name, now),
                TxnChange::IncLink { ino } => {
                    self.inode_mut(*ino).attr.nlink += 1;
                    self.stamp(*ino, false, now);
                }
                TxnChange::DecLink { ino } => self.drop_link(*ino, now),
                TxnChange::CreateInode { record } => {
                    let previous = self.inodes.insert(record.attr.ino, record.clone());
                    assert!(previous.is_none(), "inode id {:?} reused", record.attr.ino);
                }
                TxnChange::SetParent { dir, parent } => self.inode_mut(*dir).parent = Some(*parent),
                TxnChange::Touch { ino, modified } => self.stamp(*ino, *modified, now),
            }
        }
    }

    /// Whether single-shard operation `op` touches a key a transaction has locked: it is then
    /// answered `EAGAIN` (the client retries) and changes nothing. Reads count too: nothing may read
    /// a key whose committed value may already have changed at the coordinator.
    pub(super) fn busy(&self, op: &MetaOp) -> bool {
        if self.txn.locks.is_empty() {
            return false;
        }
        let mut keys: Vec<LockKey> = super::named_inodes(op).into_iter().map(LockKey::Inode).collect();
        let entry = |parent: InodeId, name: &str, keys: &mut Vec<LockKey>| {
            keys.push(LockKey::Entry(parent, name.to_string()));
            if let Some((_, e)) = self.entry(parent, name) {
                keys.push(LockKey::Inode(e.ino));
            }
        };
        match op {
            MetaOp::Lookup { parent, name, .. }
            | MetaOp::Create { parent, name, .. }
            | MetaOp::Mkdir { parent, name, .. }
            | MetaOp::Mknod { parent, name, .. }
            | MetaOp::Symlink { parent, name, .. }
            | MetaOp::Unlink { parent, name, .. }
            | MetaOp::Rmdir { parent, name, .. } => entry(*parent, name, &mut keys),
            MetaOp::Link { new_parent, new_name, .. } => entry(*new_parent, new_name, &mut keys),
            MetaOp::Rename { parent, name, new_parent, new_name, .. } => {
                entry(*parent, name, &mut keys);
                entry(*new_parent, new_name, &mut keys);
                if parent != new_parent {
                    keys.push(LockKey::Tree);
                }
            }
            _ => {}
        }
        keys.iter().any(|k| self.txn.locks.contains_key(k))
    }
}
