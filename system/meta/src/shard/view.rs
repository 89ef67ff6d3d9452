//! [`View`]: a planner's [`Store`] over records fetched from several shards, which records what the
//! logic read and wrote and turns it into per-shard [`TxnChange`]s (see `plan`).
//!
//! Every fetched key comes with the shard that answered it: an entry or a page lives in its
//! partition's shard, wherever that is, and the expectation of a key, and the writes of an entry, go
//! to that shard.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::content::{FileContent, StripeId};
use crate::{Errno, InodeId};

use super::partition::{DirAccess, PartitionId};
use super::plan::{DirPage, ReadKey, ReadValue};
use super::store::{Store, cookie_range};
use super::txn_changes::TxnChange;
use super::{EntryRecord, Halt, InodeRecord, Step};

/// The records fetched so far, as the operation's logic reads and changes them. Built afresh for each
/// planning step; a key not fetched halts the logic with [`Halt::Missing`].
pub(super) struct View<'a> {
    shard_count: u16,
    fetched: &'a BTreeMap<ReadKey, (u16, ReadValue)>,
    /// Fetched inodes (`None`: absent) and the ones the plan creates, as changed so far.
    inodes: BTreeMap<InodeId, Option<InodeRecord>>,
    /// Fetched entries (the cookie ranges of fetched names), as read and as changed so far.
    base_entries: BTreeMap<(InodeId, u64), EntryRecord>,
    entries: BTreeMap<(InodeId, u64), EntryRecord>,
    /// Per directory: entries the plan added and removed (emptiness after changes).
    edits: BTreeMap<InodeId, (u32, u32)>,
    /// Each fetched shard's next inode counter, advanced by the plan's allocations.
    next: BTreeMap<u16, u64>,
    created: Vec<InodeId>,
    /// The fetched keys the logic read: the plan's expectations.
    accessed: RefCell<BTreeSet<ReadKey>>,
}

impl<'a> View<'a> {
    /// A view of `fetched`; every value fits its key (the driver checks answers).
    pub(super) fn new(shard_count: u16, fetched: &'a BTreeMap<ReadKey, (u16, ReadValue)>) -> View<'a> {
        let mut inodes = BTreeMap::new();
        let mut entries = BTreeMap::new();
        let mut next = BTreeMap::new();
        for (key, (_, value)) in fetched {
            assert!(value.fits(key), "fetched value {value:?} does not fit {key:?}");
            match (key, value) {
                (ReadKey::Inode(ino), ReadValue::Inode(record)) => {
                    inodes.insert(*ino, record.clone());
                }
                (ReadKey::Entry { parent, .. }, ReadValue::Entries(list)) => {
                    entries.extend(list.iter().map(|(cookie, e)| ((*parent, *cookie), e.clone())));
                }
                (ReadKey::NextInode(shard), ReadValue::NextInode(counter)) => {
                    next.insert(*shard, *counter);
                }
                _ => {}
            }
        }
        View {
            shard_count,
            fetched,
            inodes,
            base_entries: entries.clone(),
            entries,
            edits: BTreeMap::new(),
            next,
            created: Vec::new(),
            accessed: RefCell::new(BTreeSet::new()),
        }
    }

    /// The value of fetched key `key`, noted as read; `Missing` if not fetched.
    fn read(&self, key: ReadKey) -> Step<&'a ReadValue> {
        match self.fetched.get(&key) {
            Some((_, value)) => {
                self.accessed.borrow_mut().insert(key);
                Ok(value)
            }
            None => Err(Halt::Missing(key)),
        }
    }

    /// The shard that answered entry key `(dir, name)` (the logic read it before writing it).
    fn entry_key_shard(&self, dir: InodeId, name: &str) -> u16 {
        let key = ReadKey::Entry { parent: dir, name: name.to_string() };
        self.fetched.get(&key).unwrap_or_else(|| panic!("{key:?} written without being read")).0
    }

    /// Directory `dir`'s partition map, read at its home.
    fn partition_map(&self, dir: InodeId) -> Step<&'a [(PartitionId, u16)]> {
        match self.read(ReadKey::Partitions(dir))? {
            ReadValue::Partitions(map) => Ok(map),
            other => unreachable!("{other:?}"),
        }
    }

    /// The shards other than its home owning partitions of `dir`.
    fn foreign_owners(&self, dir: InodeId) -> Step<BTreeSet<u16>> {
        Ok(self.partition_map(dir)?.iter().map(|&(_, s)| s).filter(|&s| s != dir.shard()).collect())
    }

    fn read_entries(&self, dir: InodeId, name: &str) -> Step<()> {
        self.read(ReadKey::Entry { parent: dir, name: name.to_string() }).map(|_| ())
    }

    fn find(&self, dir: InodeId, name: &str) -> Option<(u64, &EntryRecord)> {
        let (from, to) = cookie_range(name);
        self.entries.range((dir, from)..=(dir, to)).map(|(&(_, c), e)| (c, e)).find(|(_, e)| e.name == name)
    }

    /// The plan's changes per shard: an expectation of every key read, at the shard that answered it
    /// (but the next-inode counters, as new ids are checked by `Allocate`, and keys beyond the
    /// cluster, which never exist), and, when the operation succeeded, the allocations, the removed
    /// entries, the written entries, the written inodes, the new access attributes of a split
    /// directory for every shard keeping a copy, and the partition records of a removed split
    /// directory to drop.
    pub(super) fn into_changes(self, succeeded: bool) -> BTreeMap<u16, Vec<TxnChange>> {
        let mut changes: BTreeMap<u16, Vec<TxnChange>> = BTreeMap::new();
        let mut push = |shard: u16, change: TxnChange| changes.entry(shard).or_default().push(change);
        let accessed = self.accessed.take();
        for key in &accessed {
            let (shard, value) = &self.fetched[key];
            if !matches!(key, ReadKey::NextInode(_)) && *shard < self.shard_count {
                push(*shard, TxnChange::Expect { key: key.clone(), value: value.clone() });
            }
        }
        if !succeeded {
            return changes;
        }
        for &ino in &self.created {
            push(ino.shard(), TxnChange::Allocate { ino });
        }
        for (&(parent, cookie), old) in &self.base_entries {
            if !self.entries.contains_key(&(parent, cookie)) {
                push(self.entry_key_shard(parent, &old.name), TxnChange::RemoveEntry { parent, cookie });
            }
        }
        for (&(parent, cookie), entry) in &self.entries {
            if self.base_entries.get(&(parent, cookie)) != Some(entry) {
                let change = TxnChange::PutEntry { parent, cookie, entry: entry.clone() };
                push(self.entry_key_shard(parent, &entry.name), change);
            }
        }
        let base_inode = |ino: InodeId| match self.fetched.get(&ReadKey::Inode(ino)) {
            Some((_, ReadValue::Inode(base))) => base.as_ref(),
            _ => None,
        };
        for (&ino, record) in &self.inodes {
            let base = base_inode(ino);
            match record {
                Some(record) if base != Some(record) => {
                    push(ino.shard(), TxnChange::PutInode { record: record.clone() })
                }
                None if base.is_some() => push(ino.shard(), TxnChange::RemoveInode { ino }),
                _ => {}
            }
        }
        for key in &accessed {
            match *key {
                ReadKey::Access { dir, shard } => {
                    let (Some(base), Some(Some(now))) = (base_inode(dir), self.inodes.get(&dir)) else { continue };
                    let access = DirAccess::of(&now.attr);
                    if access != DirAccess::of(&base.attr) {
                        push(shard, TxnChange::PutAccess { dir, access });
                    }
                }
                ReadKey::ChildrenAt { dir, shard } if matches!(self.inodes.get(&dir), Some(None)) => {
                    push(shard, TxnChange::DropPartitions { dir });
                }
                _ => {}
            }
        }
        changes
    }
}

impl Store for View<'_> {
    fn shard_count(&self) -> u16 {
        self.shard_count
    }

    fn inode(&self, ino: InodeId) -> Step<&InodeRecord> {
        if !self.created.contains(&ino) {
            self.read(ReadKey::Inode(ino))?;
        }
        self.inodes[&ino].as_ref().ok_or(Halt::Errno(Errno::ESTALE))
    }

    fn entry(&self, dir: InodeId, name: &str) -> Step<Option<(u64, &EntryRecord)>> {
        self.read_entries(dir, name)?;
        Ok(self.find(dir, name))
    }

    fn plan_cookie(&self, dir: InodeId, name: &str, leaving: &[&str]) -> Step<u64> {
        self.read_entries(dir, name)?;
        let taken =
            |cookie: u64| self.entries.get(&(dir, cookie)).is_some_and(|entry| !leaving.contains(&entry.name.as_str()));
        Ok(crate::assign_cookie(name, taken).ok_or(Errno::ENOSPC)?)
    }

    /// Exact unless the plan removed some of the directory's entries and it had entries: then the
    /// logic could not tell (it never asks), and the view answers `Stale`. A split directory's
    /// entries are asked of every shard owning one of its partitions.
    fn dir_is_empty(&self, dir: InodeId) -> Step<bool> {
        let ReadValue::Children(mut has_entries) = *self.read(ReadKey::Children(dir))? else { unreachable!() };
        for shard in self.foreign_owners(dir)? {
            let ReadValue::Children(there) = *self.read(ReadKey::ChildrenAt { dir, shard })? else { unreachable!() };
            has_entries |= there;
        }
        let (added, removed) = self.edits.get(&dir).copied().unwrap_or((0, 0));
        match (has_entries, removed) {
            (false, _) => Ok(added == 0),
            (true, 0) => Ok(false),
            (true, _) => Err(Halt::Stale),
        }
    }

    fn plan_ino(&self, shard: u16) -> Step<InodeId> {
        self.read(ReadKey::NextInode(shard))?;
        let counter = self.next[&shard];
        if counter > InodeId::COUNTER_MAX {
            return Err(Errno::ENOSPC.into());
        }
        Ok(InodeId::new(shard, counter))
    }

    fn lookup_dir(&self, dir: InodeId, _name: &str) -> Step<DirAccess> {
        Ok(DirAccess::of(&self.dir(dir)?.attr))
    }

    fn entry_shard(&self, dir: InodeId, name: &str) -> Step<u16> {
        self.read_entries(dir, name)?;
        Ok(self.entry_key_shard(dir, name))
    }

    fn page(&self, dir: InodeId, after: u64, max_entries: u32) -> Step<DirPage> {
        match self.read(ReadKey::Page { dir, after, max_entries })? {
            ReadValue::Page(page) => Ok(page.clone()),
            other => unreachable!("{other:?}"),
        }
    }

    fn access_copies(&self, dir: InodeId) -> Step<()> {
        for shard in self.foreign_owners(dir)? {
            self.read(ReadKey::Access { dir, shard })?;
        }
        Ok(())
    }

    fn walk_limit(&self) -> usize {
        self.inodes.len()
    }

    fn cycle(&self, _at: InodeId) -> Halt {
        Halt::Stale
    }

    fn inode_mut(&mut self, ino: InodeId) -> &mut InodeRecord {
        self.inodes.get_mut(&ino).and_then(Option::as_mut).expect("inode read before mutation")
    }

    fn insert_inode(&mut self, record: InodeRecord) {
        let ino = record.attr.ino;
        let next = self.next.get_mut(&ino.shard()).expect("id planned before insertion");
        assert_eq!(ino.counter(), *next, "inode id not the planned one");
        *next += 1;
        self.created.push(ino);
        let previous = self.inodes.insert(ino, Some(record));
        assert!(previous.is_none(), "inode id {ino:?} reused");
    }

    fn remove_inode(&mut self, ino: InodeId) {
        let record = self.inodes.get_mut(&ino).expect("freeing a read inode");
        assert!(record.take().is_some(), "freeing a missing inode {ino:?}");
    }

    fn insert_entry(&mut self, dir: InodeId, cookie: u64, entry: EntryRecord) {
        assert!(crate::cookie_matches(&entry.name, cookie), "cookie {cookie:#x} is not {:?}'s", entry.name);
        assert!(self.find(dir, &entry.name).is_none(), "entry {:?} of {dir:?} exists", entry.name);
        let previous = self.entries.insert((dir, cookie), entry);
        assert!(previous.is_none(), "cookie {cookie:#x} of {dir:?} is taken");
        self.edits.entry(dir).or_default().0 += 1;
    }

    fn edit_content(&mut self, ino: InodeId, f: impl FnOnce(&mut FileContent)) {
        f(&mut self.inode_mut(ino).content);
    }

    fn in_garbage(&self, _id: StripeId) -> bool {
        false
    }

    fn remove_entry(&mut self, dir: InodeId, name: &str) -> EntryRecord {
        let (cookie, _) = self.find(dir, name).expect("entry read before removal");
        self.edits.entry(dir).or_default().1 += 1;
        self.entries.remove(&(dir, cookie)).expect("entry found")
    }
}
