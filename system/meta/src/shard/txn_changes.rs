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
//! the directory's inode (its size, link count, times and cookie space change; any operation on the
//! directory's entries reads the directory first), `Children(dir)` the directory's inode, an inode
//! record the inode. The next-inode counter is not locked: allocations are reserved at prepare
//! instead (the counter moves past them, so an id is never reused, even on abort). A single-shard
//! operation reading a locked key gets `EAGAIN` (see `store`); so does a transaction whose keys are
//! locked.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Errno, InodeId, cookie_matches};

use super::plan::{ReadKey, ReadValue, entry_shard};
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

/// Whether `changes` expect an entry of `parent` held by this shard whose cookie range holds `cookie`.
fn covers_entry(changes: &[TxnChange], shard: u16, parent: InodeId, cookie: u64) -> bool {
    changes.iter().any(|c| match c {
        TxnChange::Expect { key: ReadKey::Entry { parent: p, name }, .. } => {
            *p == parent && cookie_matches(name, cookie) && entry_shard(parent, name) == shard
        }
        _ => false,
    })
}

impl ShardState {
    /// Check `changes` (see the module documentation) and that none of their keys is locked by
    /// another transaction than `txn`; the keys to lock. Changes nothing.
    pub(super) fn validate_changes(&self, txn: TxnId, changes: &[TxnChange]) -> Result<BTreeSet<LockKey>, Errno> {
        let locks: BTreeSet<LockKey> = changes.iter().flat_map(TxnChange::locks).collect();
        if locks.iter().any(|k| self.txn.locks.get(k).is_some_and(|&holder| holder != txn)) {
            return Err(Errno::EAGAIN);
        }
        for change in changes {
            self.validate_one(change, changes)?;
        }
        Ok(locks)
    }

    fn validate_one(&self, change: &TxnChange, changes: &[TxnChange]) -> Result<(), Errno> {
        let here = |ino: InodeId| if ino.shard() == self.shard { Ok(()) } else { Err(Errno::EINVAL) };
        match change {
            TxnChange::Expect { key, value } => {
                if key.shard() != self.shard {
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
                if !cookie_matches(&entry.name, *cookie) || !covers_entry(changes, self.shard, *parent, *cookie) {
                    return Err(Errno::EINVAL);
                }
            }
            TxnChange::RemoveEntry { parent, cookie } => {
                if !covers_entry(changes, self.shard, *parent, *cookie) {
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
                TxnChange::PutInode { record } => {
                    self.inodes.insert(record.attr.ino, record.clone());
                }
                TxnChange::RemoveInode { ino } => {
                    self.inodes.remove(ino).expect("expected inode exists at commit");
                }
                TxnChange::PutEntry { parent, cookie, entry } => {
                    if self.entries.contains_key(&(*parent, *cookie)) {
                        self.take_entry(*parent, *cookie);
                    }
                    self.put_entry(*parent, *cookie, entry.clone());
                }
                TxnChange::RemoveEntry { parent, cookie } => {
                    self.take_entry(*parent, *cookie);
                }
            }
        }
    }
}
