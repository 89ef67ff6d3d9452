//! [`Store`]: the records an operation's logic reads and writes, so that one copy of the logic (the
//! POSIX checks in their errno order, then the changes) runs over two stores:
//!
//! - [`ShardState`] itself, for [`ShardState::apply`]: a key of another shard halts the operation with
//!   [`Halt::Missing`] (answered `NotLocal`), a key a cross-shard transaction locked with `EAGAIN`;
//! - a planner's [`super::view::View`] of records fetched from several shards: a key not fetched yet
//!   halts with [`Halt::Missing`] (the driver fetches it and runs the logic again).
//!
//! The logic reads every key before it writes it, and writes only after every check passed; the write
//! methods therefore take keys already read and panic otherwise.

use std::ops::Bound;

use tessera_env::mark;

use crate::content::{FileContent, StripeId};
use crate::{Errno, InodeId, name::COOKIE_COLLISION_BITS, name_hash};

use super::partition::{DirAccess, Owner};
use super::plan::{DirPage, ReadKey};
use super::txn_changes::{LockKey, TxnChange};
use super::{EntryRecord, Halt, InodeRecord, ShardState, Step};

/// Where an operation's logic reads and writes records (see the module documentation).
pub(crate) trait Store {
    /// The cluster's number of shards (placement of new directories).
    fn shard_count(&self) -> u16;
    /// The inode `ino`: ESTALE if it does not exist.
    fn inode(&self, ino: InodeId) -> Step<&InodeRecord>;
    /// The entry `name` of directory `dir` with its cookie, if it exists.
    fn entry(&self, dir: InodeId, name: &str) -> Step<Option<(u64, &EntryRecord)>>;
    /// The cookie a new entry `name` of `dir` would take once the entries named in `leaving` are gone;
    /// ENOSPC if all cookies of its hash prefix are held.
    fn plan_cookie(&self, dir: InodeId, name: &str, leaving: &[&str]) -> Step<u64>;
    /// Whether directory `dir` has no entries (in any partition).
    fn dir_is_empty(&self, dir: InodeId) -> Step<bool>;
    /// The id a new inode of `shard` would get: ENOSPC once its 48-bit counter is exhausted.
    fn plan_ino(&self, shard: u16) -> Step<InodeId>;
    /// The access attributes of directory `dir` for a lookup of `name` (ESTALE, ENOTDIR): from its
    /// inode, or from the copy the shard of `name`'s partition keeps.
    fn lookup_dir(&self, dir: InodeId, name: &str) -> Step<DirAccess>;
    /// The shard holding the entry `name` of `dir` (already read): where a new file beside it goes.
    fn entry_shard(&self, dir: InodeId, name: &str) -> Step<u16>;
    /// The page of directory `dir` (already read) in the partition holding position `after + 1`: up
    /// to `max_entries` entries after `after` (see [`DirPage`]).
    fn page(&self, dir: InodeId, after: u64, max_entries: u32) -> Step<DirPage>;
    /// Directory `dir` (already read) is about to change its access attributes: every copy of them
    /// (kept by the shards owning its partitions) is read, to be written too.
    fn access_copies(&self, dir: InodeId) -> Step<()>;
    /// How many steps an ancestor walk may take before it must have ended.
    fn walk_limit(&self) -> usize;
    /// An ancestor walk went around a cycle at `at`: corruption in a shard (panics), stale reads in a
    /// view (the plan is made again).
    fn cycle(&self, at: InodeId) -> Halt;

    /// A read inode, for mutation.
    fn inode_mut(&mut self, ino: InodeId) -> &mut InodeRecord;
    /// Store a new inode under the id [`Store::plan_ino`] gave, consuming it.
    fn insert_inode(&mut self, record: InodeRecord);
    /// Free the read inode `ino`.
    fn remove_inode(&mut self, ino: InodeId);
    /// Add an entry under a cookie [`Store::plan_cookie`] gave (the directory's inode is the caller's).
    fn insert_entry(&mut self, dir: InodeId, cookie: u64, entry: EntryRecord);
    /// Remove the read entry `name` of `dir`.
    fn remove_entry(&mut self, dir: InodeId, name: &str) -> EntryRecord;
    /// Change the read inode `ino`'s content with `f`; a shard queues the stripes it no longer
    /// references as garbage (the one path content changes by, besides removal and `PutInode`).
    fn edit_content(&mut self, ino: InodeId, f: impl FnOnce(&mut FileContent));
    /// Whether stripe `id` waits in this shard's garbage queue (never, in a planner's view: a planner
    /// never gets as far as writing content).
    fn in_garbage(&self, id: StripeId) -> bool;

    /// The directory `ino`: as [`Store::inode`], and ENOTDIR if it is not a directory.
    fn dir(&self, ino: InodeId) -> Step<&InodeRecord> {
        let record = self.inode(ino)?;
        if record.is_dir() { Ok(record) } else { Err(Halt::Errno(Errno::ENOTDIR)) }
    }

    /// Stamp the read inode `ino`'s ctime, and its mtime too when `modified`.
    fn stamp(&mut self, ino: InodeId, modified: bool, now: u64) {
        let attr = &mut self.inode_mut(ino).attr;
        attr.ctime_ns = now;
        if modified {
            attr.mtime_ns = now;
        }
    }
}

/// The cookie range `name` may take in a directory: its hash prefix with every collision counter.
pub(crate) fn cookie_range(name: &str) -> (u64, u64) {
    let prefix = crate::name_hash(name) >> COOKIE_COLLISION_BITS << COOKIE_COLLISION_BITS;
    (prefix, prefix | ((1 << COOKIE_COLLISION_BITS) - 1))
}

impl ShardState {
    pub(super) fn locked(&self, key: impl FnOnce() -> LockKey) -> bool {
        !self.txn.locks.is_empty() && self.txn.locks.contains_key(&key())
    }

    /// Whether `ino`'s inode key is locked (an operation on it, or on its entries if a directory, gets
    /// EAGAIN). A directory locked by a GIGA+ split in progress is a coverage mark.
    fn inode_locked(&self, ino: InodeId) -> bool {
        let key = LockKey::Inode(ino);
        if !self.locked(|| key.clone()) {
            return false;
        }
        if self.locked_by_split(&key) {
            mark!("meta.split_under_way");
        }
        true
    }

    /// Whether `key` is locked by a split (a transaction with a [`TxnChange::Split`]).
    pub(super) fn locked_by_split(&self, key: &LockKey) -> bool {
        let holder = self.txn.locks.get(key).and_then(|id| self.txn.intents.get(id));
        holder.is_some_and(|i| i.changes.iter().any(|c| matches!(c, TxnChange::Split { .. })))
    }

    fn check_inode_key(&self, ino: InodeId) -> Step<()> {
        if ino.shard() != self.shard {
            return Err(Halt::Missing(ReadKey::Inode(ino)));
        }
        if self.inode_locked(ino) {
            return Err(Errno::EAGAIN.into());
        }
        Ok(())
    }

    fn check_entry_key(&self, dir: InodeId, name: &str) -> Step<()> {
        if let Owner::There(_) = self.parts.owner(self.shard, dir, name_hash(name)) {
            return Err(Halt::Missing(ReadKey::Entry { parent: dir, name: name.to_string() }));
        }
        if self.inode_locked(dir) || self.locked(|| LockKey::Entry(dir, name.to_string())) {
            return Err(Errno::EAGAIN.into());
        }
        Ok(())
    }

    /// The entry `name` of `dir` held here, without locality or lock checks.
    pub(super) fn find_entry(&self, dir: InodeId, name: &str) -> Option<(u64, &EntryRecord)> {
        let cookie = *self.entry_names.get(&(dir, name.to_string()))?;
        let record = self.entries.get(&(dir, cookie)).expect("name index names an entry");
        assert_eq!(record.name, name, "name index and entries disagree");
        Some((cookie, record))
    }

    /// The entries of `dir` held here with cookies in `from..=to`, in cookie order.
    pub(super) fn entry_range(
        &self,
        dir: InodeId,
        from: Bound<u64>,
        to: u64,
    ) -> impl Iterator<Item = (u64, &EntryRecord)> {
        let from = match from {
            Bound::Included(c) => Bound::Included((dir, c)),
            Bound::Excluded(c) => Bound::Excluded((dir, c)),
            Bound::Unbounded => Bound::Included((dir, 0)),
        };
        self.entries.range((from, Bound::Included((dir, to)))).map(|(&(_, cookie), entry)| (cookie, entry))
    }

    /// The cookie a new entry `name` of `dir` takes here once `leaving` are gone, without checks.
    pub(super) fn free_cookie(&self, dir: InodeId, name: &str, leaving: &[&str]) -> Result<u64, Errno> {
        let taken =
            |cookie: u64| self.entries.get(&(dir, cookie)).is_some_and(|entry| !leaving.contains(&entry.name.as_str()));
        crate::assign_cookie(name, taken).ok_or(Errno::ENOSPC)
    }

    /// Free inode `ino`; a directory's partition records (its map, at its home) go with it, a file's
    /// stripes to the garbage queue. Every removal of an inode record comes here.
    pub(super) fn free_inode(&mut self, ino: InodeId) {
        let record = self.inodes.remove(&ino).expect("freeing an existing inode");
        if record.is_dir() {
            assert!(self.holds_no_entries(ino), "freeing non-empty directory {ino:?}");
            self.parts.drop_dir(ino);
        }
        self.push_garbage(record.content.stripes_dropped(&FileContent::default()));
    }

    /// Store `record` (a transaction's `PutInode`), queueing the stripes the record it replaces
    /// referenced and it does not. Every replacement of a whole inode record comes here.
    pub(super) fn put_inode(&mut self, record: InodeRecord) {
        let ino = record.attr.ino;
        assert_eq!(ino.shard(), self.shard, "{ino:?} is not shard {}'s", self.shard);
        let dropped = match self.inodes.get(&ino) {
            Some(old) if old.content != record.content => old.content.stripes_dropped(&record.content),
            _ => Vec::new(),
        };
        self.inodes.insert(ino, record);
        self.push_garbage(dropped);
    }

    /// Whether `dir` has no entries here, without checks.
    pub(super) fn holds_no_entries(&self, dir: InodeId) -> bool {
        self.entry_range(dir, Bound::Unbounded, u64::MAX).next().is_none()
    }

    /// The partition of `dir` holding `cookie`, which this shard must own.
    fn owned_partition(&self, dir: InodeId, cookie: u64) -> super::PartitionId {
        match self.parts.owner(self.shard, dir, cookie) {
            Owner::Here(part) => part,
            Owner::There(shard) => panic!("entry {cookie:#x} of {dir:?} belongs to shard {shard}, not {}", self.shard),
        }
    }

    /// Add an entry, keeping the name index and the partition's count (used by the store and at
    /// commit). The entry's partition must be this shard's.
    pub(super) fn put_entry(&mut self, dir: InodeId, cookie: u64, entry: EntryRecord) {
        assert!(crate::cookie_matches(&entry.name, cookie), "cookie {cookie:#x} is not {:?}'s", entry.name);
        let part = self.owned_partition(dir, cookie);
        self.parts.entry_added(dir, part);
        let previous_name = self.entry_names.insert((dir, entry.name.clone()), cookie);
        assert!(previous_name.is_none(), "entry {:?} of {dir:?} exists", entry.name);
        let previous = self.entries.insert((dir, cookie), entry);
        assert!(previous.is_none(), "cookie {cookie:#x} of {dir:?} is taken");
    }

    /// Remove the entry at `cookie` of `dir`, keeping the name index and the partition's count.
    pub(super) fn take_entry(&mut self, dir: InodeId, cookie: u64) -> EntryRecord {
        let entry = self.entries.remove(&(dir, cookie)).expect("removing an existing entry");
        let part = self.owned_partition(dir, cookie);
        self.parts.entry_removed(dir, part);
        let indexed = self.entry_names.remove(&(dir, entry.name.clone()));
        assert_eq!(indexed, Some(cookie), "name index and entries disagree");
        entry
    }
}

impl Store for ShardState {
    fn shard_count(&self) -> u16 {
        self.shard_count
    }

    fn inode(&self, ino: InodeId) -> Step<&InodeRecord> {
        self.check_inode_key(ino)?;
        self.inodes.get(&ino).ok_or(Halt::Errno(Errno::ESTALE))
    }

    fn entry(&self, dir: InodeId, name: &str) -> Step<Option<(u64, &EntryRecord)>> {
        self.check_entry_key(dir, name)?;
        Ok(self.find_entry(dir, name))
    }

    fn plan_cookie(&self, dir: InodeId, name: &str, leaving: &[&str]) -> Step<u64> {
        self.check_entry_key(dir, name)?;
        Ok(self.free_cookie(dir, name, leaving)?)
    }

    fn dir_is_empty(&self, dir: InodeId) -> Step<bool> {
        if dir.shard() != self.shard {
            return Err(Halt::Missing(ReadKey::Children(dir)));
        }
        if self.inode_locked(dir) {
            return Err(Errno::EAGAIN.into());
        }
        if let Some(&shard) = self.parts.foreign_owners(self.shard, dir).first() {
            return Err(Halt::Missing(ReadKey::ChildrenAt { dir, shard }));
        }
        Ok(self.holds_no_entries(dir))
    }

    fn plan_ino(&self, shard: u16) -> Step<InodeId> {
        if shard != self.shard {
            return Err(Halt::Missing(ReadKey::NextInode(shard)));
        }
        if self.next_counter > InodeId::COUNTER_MAX {
            return Err(Errno::ENOSPC.into());
        }
        Ok(InodeId::new(self.shard, self.next_counter))
    }

    fn lookup_dir(&self, dir: InodeId, name: &str) -> Step<DirAccess> {
        if dir.shard() == self.shard {
            return Ok(DirAccess::of(&self.dir(dir)?.attr));
        }
        match self.parts.owner(self.shard, dir, name_hash(name)) {
            Owner::Here(_) => {
                if self.inode_locked(dir) {
                    return Err(Errno::EAGAIN.into());
                }
                Ok(self.parts.access(dir).expect("a partition owner keeps the directory's access attributes"))
            }
            Owner::There(_) => Err(Halt::Missing(ReadKey::Inode(dir))),
        }
    }

    fn entry_shard(&self, dir: InodeId, name: &str) -> Step<u16> {
        self.check_entry_key(dir, name)?;
        Ok(self.shard)
    }

    fn page(&self, dir: InodeId, after: u64, max_entries: u32) -> Step<DirPage> {
        if self.inode_locked(dir) {
            return Err(Errno::EAGAIN.into());
        }
        self.page_here(dir, after, max_entries).map_err(|_| Halt::Missing(ReadKey::Page { dir, after, max_entries }))
    }

    fn access_copies(&self, dir: InodeId) -> Step<()> {
        match self.parts.foreign_owners(self.shard, dir).first() {
            Some(&shard) => Err(Halt::Missing(ReadKey::Access { dir, shard })),
            None => Ok(()),
        }
    }

    fn walk_limit(&self) -> usize {
        self.inodes.len()
    }

    fn cycle(&self, at: InodeId) -> Halt {
        panic!("cycle in the directory tree at {at:?} in shard {}", self.shard);
    }

    fn inode_mut(&mut self, ino: InodeId) -> &mut InodeRecord {
        self.inodes.get_mut(&ino).expect("inode checked before mutation")
    }

    fn insert_inode(&mut self, record: InodeRecord) {
        let ino = record.attr.ino;
        assert_eq!(ino, InodeId::new(self.shard, self.next_counter), "inode id not the planned one");
        self.next_counter += 1;
        let previous = self.inodes.insert(ino, record);
        assert!(previous.is_none(), "inode id {ino:?} reused");
    }

    fn remove_inode(&mut self, ino: InodeId) {
        self.free_inode(ino);
    }

    fn insert_entry(&mut self, dir: InodeId, cookie: u64, entry: EntryRecord) {
        self.put_entry(dir, cookie, entry);
    }

    fn remove_entry(&mut self, dir: InodeId, name: &str) -> EntryRecord {
        let (cookie, _) = self.find_entry(dir, name).expect("entry checked before removal");
        self.take_entry(dir, cookie)
    }

    fn edit_content(&mut self, ino: InodeId, f: impl FnOnce(&mut FileContent)) {
        let content = &mut self.inodes.get_mut(&ino).expect("inode checked before mutation").content;
        let before = content.clone();
        f(content);
        let dropped = before.stripes_dropped(content);
        self.push_garbage(dropped);
    }

    fn in_garbage(&self, id: StripeId) -> bool {
        self.garbage_holds(id)
    }
}
