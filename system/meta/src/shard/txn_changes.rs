//! The changes one shard applies for a planned cross-shard operation ([`TxnChange`]), the keys they
//! lock ([`LockKey`]), their validation at prepare (all before any change) and their application at
//! commit.
//!
//! A shard's part of a [`super::TxnPlan`] is exact, not semantic: the expectations of every key the
//! planner read (value equality: a record equal to what was read makes the plan valid, whatever
//! happened in between), the records it writes and the ids it allocates. Validation checks every
//! expectation against the shard's state, every allocation against the inode counter, and that every
//! write is covered by an expectation or an allocation of its key (a malformed plan is refused with
//! EINVAL); a stale plan is refused with EAGAIN and the client plans again. Between prepare and the
//! decision the keys are locked, so the expectations still hold at the commit point, where the writes
//! are applied as planned (times included: the planner's clock).
//!
//! **Locks** are exclusive and coarse in this first stage: an entry locks its key `(parent, name)` and
//! the directory's inode key in that shard (its size, link count, times and cookie space change; any
//! operation on the directory's entries reads the directory first; in a shard holding only a
//! partition of the directory the key stands for the directory's entries there), `Children(dir)` and
//! every partition record or copy the directory's inode key, an inode record the inode. The
//! next-inode counter is not locked: allocations are reserved at prepare instead (the counter moves
//! past them, so an id is never reused, even on abort). A single-shard operation reading a locked key
//! gets `EAGAIN` (see `store`); so does a transaction whose keys are locked.
//!
//! **Directory partitions** change through [`TxnChange::Split`] (a GIGA+ split, see `split`: each
//! shard involved validates and applies its own part), [`TxnChange::PutAccess`] (a split directory's
//! new access attributes, for a shard keeping a copy) and [`TxnChange::DropPartitions`] (a removed
//! split directory's records in a shard owning partitions of it).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Errno, InodeId, cookie_matches};

use super::partition::{DirAccess, PartitionId};
use super::plan::{ReadKey, ReadValue};
use super::{EntryRecord, InodeRecord, ShardState, TxnId};

/// One change of a shard's part of a cross-shard operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnChange {
    /// `key` still has the value the planner read (refused with EAGAIN otherwise).
    Expect { key: ReadKey, value: ReadValue },
    /// A new inode id of this shard: refused with EAGAIN if already allocated; reserved at prepare.
    Allocate { ino: InodeId },
    /// Write an inode record (its key is `record.attr.ino`).
    PutInode { record: InodeRecord },
    /// Free an inode.
    RemoveInode { ino: InodeId },
    /// Write the entry at `cookie` of `parent`, replacing the one there.
    PutEntry { parent: InodeId, cookie: u64, entry: EntryRecord },
    /// Remove the entry at `cookie` of `parent`.
    RemoveEntry { parent: InodeId, cookie: u64 },
    /// Split partition `part` of directory `dir`, owned by shard `source`: its upper half goes to
    /// shard `upper` (`source` itself for a relabelling), which keeps `access` as its copy of the
    /// directory's access attributes. Sent to the source, the destination and the directory's home;
    /// each applies its part (see `split`). The moved entries are the source's `RemoveEntry`s (before
    /// the split in its list) and the destination's `PutEntry`s (after it); `digest` is theirs, checked
    /// by the source.
    Split { dir: InodeId, part: PartitionId, source: u16, upper: u16, access: DirAccess, digest: u64 },
    /// A split directory's new access attributes, for a shard (not its home) keeping a copy.
    PutAccess { dir: InodeId, access: DirAccess },
    /// Forget the partition records of removed (empty) directory `dir` in a shard other than its home.
    DropPartitions { dir: InodeId },
}

/// A key a transaction locks from prepare until it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LockKey {
    Inode(InodeId),
    Entry(InodeId, String),
}

impl TxnChange {
    /// The keys this change locks.
    pub fn locks(&self) -> Vec<LockKey> {
        match self {
            TxnChange::Expect { key, .. } => key.locks(),
            TxnChange::Allocate { ino } | TxnChange::RemoveInode { ino } => vec![LockKey::Inode(*ino)],
            TxnChange::PutInode { record } => vec![LockKey::Inode(record.attr.ino)],
            TxnChange::PutEntry { parent, entry, .. } => {
                vec![LockKey::Entry(*parent, entry.name.clone()), LockKey::Inode(*parent)]
            }
            TxnChange::RemoveEntry { parent, .. } => vec![LockKey::Inode(*parent)],
            TxnChange::Split { dir, .. } | TxnChange::PutAccess { dir, .. } | TxnChange::DropPartitions { dir } => {
                vec![LockKey::Inode(*dir)]
            }
        }
    }
}

/// Whether `changes` expect or allocate inode `ino`.
fn covers_inode(changes: &[TxnChange], ino: InodeId) -> bool {
    changes.iter().any(|c| match c {
        TxnChange::Expect { key: ReadKey::Inode(i), .. } | TxnChange::Allocate { ino: i } => *i == ino,
        _ => false,
    })
}

/// The splits among `changes` (at most one in a plan the service makes).
fn splits(changes: &[TxnChange]) -> Vec<&TxnChange> {
    changes.iter().filter(|c| matches!(c, TxnChange::Split { .. })).collect()
}

/// Whether `changes` cover a write of the entry at `cookie` of `parent` in this shard `me`: an
/// expectation of an entry of `parent` held here (read as entries, so the partition is this shard's)
/// whose cookie range holds `cookie`, or a split moving the range holding `cookie` out of this shard
/// (a removal) or into it (a write).
fn covers_entry(
    changes: &[TxnChange],
    splits: &[&TxnChange],
    me: u16,
    parent: InodeId,
    cookie: u64,
    put: bool,
) -> bool {
    let moved = splits.iter().any(|c| match c {
        TxnChange::Split { dir, part, source, upper, .. } => {
            let moving_here = if put { *upper == me } else { *source == me };
            *dir == parent && source != upper && moving_here && part.halves().1.contains(cookie)
        }
        _ => false,
    });
    moved
        || changes.iter().any(|c| match c {
            TxnChange::Expect { key: ReadKey::Entry { parent: p, name }, value: ReadValue::Entries(_) } => {
                *p == parent && cookie_matches(name, cookie)
            }
            _ => false,
        })
}

/// Whether `changes` expect `key` in this shard.
fn expects(changes: &[TxnChange], key: &ReadKey) -> bool {
    changes.iter().any(|c| matches!(c, TxnChange::Expect { key: k, .. } if k == key))
}

impl ShardState {
    /// Check `changes` (see the module documentation) and that none of their keys is locked by
    /// another transaction than `txn`; the keys to lock. Changes nothing.
    pub(super) fn validate_changes(&self, txn: TxnId, changes: &[TxnChange]) -> Result<BTreeSet<LockKey>, Errno> {
        let locks: BTreeSet<LockKey> = changes.iter().flat_map(TxnChange::locks).collect();
        if locks.iter().any(|k| self.txn.locks.get(k).is_some_and(|&holder| holder != txn)) {
            return Err(Errno::EAGAIN);
        }
        let splits = splits(changes);
        for change in changes {
            self.validate_one(change, changes, &splits)?;
        }
        Ok(locks)
    }

    fn validate_one(&self, change: &TxnChange, changes: &[TxnChange], splits: &[&TxnChange]) -> Result<(), Errno> {
        let here = |ino: InodeId| if ino.shard() == self.shard { Ok(()) } else { Err(Errno::EINVAL) };
        match change {
            TxnChange::Expect { key, value } => {
                if !key.is_routed() && key.shard() != self.shard {
                    return Err(Errno::EINVAL);
                }
                if self.read_value(key) != *value {
                    return Err(Errno::EAGAIN);
                }
            }
            TxnChange::Allocate { ino } => {
                here(*ino)?;
                if ino.counter() < self.next_counter {
                    return Err(Errno::EAGAIN);
                }
            }
            TxnChange::PutInode { record } => {
                here(record.attr.ino)?;
                if !covers_inode(changes, record.attr.ino) {
                    return Err(Errno::EINVAL);
                }
            }
            TxnChange::RemoveInode { ino } => {
                here(*ino)?;
                if !covers_inode(changes, *ino) {
                    return Err(Errno::EINVAL);
                }
            }
            TxnChange::PutEntry { parent, cookie, entry } => {
                if !cookie_matches(&entry.name, *cookie)
                    || !covers_entry(changes, splits, self.shard, *parent, *cookie, true)
                {
                    return Err(Errno::EINVAL);
                }
            }
            TxnChange::RemoveEntry { parent, cookie } => {
                if !covers_entry(changes, splits, self.shard, *parent, *cookie, false) {
                    return Err(Errno::EINVAL);
                }
            }
            TxnChange::Split { .. } => {
                if splits.len() != 1 {
                    return Err(Errno::EINVAL);
                }
                self.validate_split(change, changes)?;
            }
            TxnChange::PutAccess { dir, .. } => {
                let key = ReadKey::Access { dir: *dir, shard: self.shard };
                if dir.shard() == self.shard || self.parts.access(*dir).is_none() || !expects(changes, &key) {
                    return Err(Errno::EINVAL);
                }
            }
            TxnChange::DropPartitions { dir } => {
                let key = ReadKey::ChildrenAt { dir: *dir, shard: self.shard };
                if dir.shard() == self.shard || !expects(changes, &key) || !self.holds_no_entries(*dir) {
                    return Err(Errno::EINVAL);
                }
            }
        }
        Ok(())
    }

    /// Reserve the ids `changes` allocate: the counter moves past them.
    pub(super) fn reserve_ids(&mut self, changes: &[TxnChange]) {
        for change in changes {
            if let TxnChange::Allocate { ino } = change {
                self.next_counter = self.next_counter.max(ino.counter() + 1);
            }
        }
    }

    /// Apply validated (and since locked) changes, in order (a plan lists an entry's removal before
    /// a write that reuses its name).
    pub(super) fn apply_changes(&mut self, changes: &[TxnChange]) {
        for change in changes {
            match change {
                TxnChange::Expect { .. } | TxnChange::Allocate { .. } => {}
                TxnChange::PutInode { record } => self.put_inode(record.clone()),
                TxnChange::RemoveInode { ino } => self.free_inode(*ino),
                TxnChange::PutEntry { parent, cookie, entry } => {
                    if self.entries.contains_key(&(*parent, *cookie)) {
                        self.take_entry(*parent, *cookie);
                    }
                    self.put_entry(*parent, *cookie, entry.clone());
                }
                TxnChange::RemoveEntry { parent, cookie } => {
                    self.take_entry(*parent, *cookie);
                }
                TxnChange::Split { .. } => self.apply_split(change),
                TxnChange::PutAccess { dir, access } => self.parts.set_access(*dir, *access),
                TxnChange::DropPartitions { dir } => self.parts.drop_dir(*dir),
            }
        }
    }
}
