//! The structural invariants of one shard's keys, checked as a whole (tests, simulation checkers).
//!
//! Only what one shard can know is checked: an entry naming an inode of another shard, the link
//! count of an inode that entries elsewhere may name, the size and link count of a split directory,
//! and the agreement of partition records between shards are the cross-shard checker's business
//! (`crate::local::check_shards`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::content::StripeId;
use crate::{FileType, InodeId, MODE_MASK, XATTR_VALUE_LEN_MAX_BYTES, cookie_matches, validate_name};

use super::partition::{Owner, PartitionId};
use super::{InodeRecord, ShardState, xattr};

impl ShardState {
    /// Every invariant of this shard's state; the first one broken, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        if let Some(root) = self.root {
            let record = self.inodes.get(&root).ok_or("the root inode is missing")?;
            if !record.is_dir() || record.parent != Some(root) {
                return Err("the root is not a directory that is its own parent".into());
            }
        }
        self.check_name_index()?;
        self.check_partitions()?;
        self.check_txn_invariants()?;
        self.check_garbage()?;
        let mut named: BTreeMap<InodeId, u32> = BTreeMap::new();
        let mut per_dir: BTreeMap<InodeId, (u64, u32)> = BTreeMap::new();
        for (&(dir, cookie), entry) in &self.entries {
            if dir.shard() == self.shard {
                let parent = self.inodes.get(&dir).ok_or_else(|| format!("entries of missing directory {dir:?}"))?;
                if !parent.is_dir() {
                    return Err(format!("entries of non-directory {dir:?}"));
                }
            }
            if validate_name(&entry.name).is_err() || !cookie_matches(&entry.name, cookie) {
                return Err(format!("entry {:?} of {dir:?}: bad name or cookie {cookie:#x}", entry.name));
            }
            if let Owner::There(shard) = self.parts.owner(self.shard, dir, cookie) {
                return Err(format!("entry {:?} of {dir:?} is in a partition of shard {shard}", entry.name));
            }
            let counts = per_dir.entry(dir).or_default();
            counts.0 += 1;
            if entry.kind == FileType::Directory {
                counts.1 += 1;
            }
            *named.entry(entry.ino).or_default() += 1;
            if entry.ino.shard() != self.shard {
                continue;
            }
            let child = self.inodes.get(&entry.ino).ok_or_else(|| format!("dangling entry {:?}", entry.name))?;
            if child.attr.kind != entry.kind || (child.is_dir() && child.parent != Some(dir)) {
                return Err(format!("entry {:?} of {dir:?} disagrees with its inode", entry.name));
            }
        }
        for (&ino, record) in &self.inodes {
            self.check_inode(ino, record)?;
            let refs = named.get(&ino).copied().unwrap_or(0);
            if record.is_dir() {
                let (size, subdirs) = per_dir.get(&ino).copied().unwrap_or((0, 0));
                let split = self.parts.has_records(ino);
                if !split && (record.attr.size != size || record.attr.nlink != 2 + subdirs) {
                    return Err(format!(
                        "directory {ino:?}: size/nlink disagree with {size} entries, {subdirs} subdirs"
                    ));
                }
                if Some(ino) != self.root && refs > 1 {
                    return Err(format!("directory {ino:?} has {refs} entries"));
                }
            } else if refs > record.attr.nlink {
                return Err(format!("{ino:?} has nlink {} but {refs} entries here", record.attr.nlink));
            }
        }
        Ok(())
    }

    /// The partition records agree with the shard: a split directory's map (at its home) tiles the
    /// hash space; another shard keeps records only of directories it owns partitions of, with their
    /// access attributes; every owned partition's count is its entries, and the due set those over
    /// the threshold.
    fn check_partitions(&self) -> Result<(), String> {
        let mut dirs: BTreeMap<InodeId, Vec<(PartitionId, u16)>> = BTreeMap::new();
        for (dir, part, shard) in self.parts.all_records() {
            dirs.entry(dir).or_default().push((part, shard));
        }
        for (&dir, records) in &dirs {
            if dir.shard() == self.shard {
                if self.inodes.get(&dir).is_none_or(|r| !r.is_dir()) {
                    return Err(format!("partition map of missing directory {dir:?}"));
                }
                let mut next = Some(0u64);
                for &(part, _) in records {
                    if next != Some(part.first()) {
                        return Err(format!("partition map of {dir:?} does not tile at {part:?}"));
                    }
                    next = part.last().checked_add(1);
                }
                if next.is_some() {
                    return Err(format!("partition map of {dir:?} ends early"));
                }
            } else if !records.iter().any(|&(_, s)| s == self.shard) || self.parts.access(dir).is_none() {
                return Err(format!("records of {dir:?} without an owned partition or access copy"));
            }
        }
        for (dir, _) in self.parts.all_access() {
            if !dirs.contains_key(&dir) || dir.shard() == self.shard {
                return Err(format!("access copy of {dir:?} without partitions"));
            }
        }
        let mut counted = 0;
        for (&dir, records) in &dirs {
            for &(part, shard) in records {
                if shard != self.shard || self.parts.owner(self.shard, dir, part.first()) != Owner::Here(part) {
                    continue;
                }
                let held = self.entry_range(dir, Bound::Included(part.first()), part.last()).count();
                if held as u32 != self.parts.count(dir, part) {
                    return Err(format!("{dir:?} {part:?}: count {} for {held} entries", self.parts.count(dir, part)));
                }
                counted += usize::from(held > 0);
            }
        }
        for (&ino, _) in self.inodes.iter().filter(|(ino, r)| r.is_dir() && !dirs.contains_key(ino)) {
            let held = self.entry_range(ino, Bound::Unbounded, u64::MAX).count();
            if held as u32 != self.parts.count(ino, PartitionId::WHOLE) {
                return Err(format!("{ino:?}: count {} for {held} entries", self.parts.count(ino, PartitionId::WHOLE)));
            }
            counted += usize::from(held > 0);
        }
        if counted != self.parts.all_counts().count() {
            return Err("counts of partitions not owned here".into());
        }
        let threshold = self.parts.split_threshold();
        let over: Vec<(InodeId, u64)> = self
            .parts
            .all_counts()
            .filter(|&((dir, first), count)| {
                count > threshold
                    && matches!(self.parts.owner(self.shard, dir, first), Owner::Here(p) if p.depth < super::PARTITION_DEPTH_MAX)
            })
            .map(|(key, _)| key)
            .collect();
        if over != self.parts.all_due().collect::<Vec<_>>() {
            return Err("the due set is not the partitions over the threshold".into());
        }
        Ok(())
    }

    fn check_name_index(&self) -> Result<(), String> {
        if self.entry_names.len() != self.entries.len() {
            return Err("the name index and the entries differ in size".into());
        }
        for ((dir, name), cookie) in &self.entry_names {
            if self.entries.get(&(*dir, *cookie)).is_none_or(|e| &e.name != name) {
                return Err(format!("name index {dir:?}/{name:?} -> {cookie:#x} names no such entry"));
            }
        }
        Ok(())
    }

    fn check_inode(&self, ino: InodeId, record: &InodeRecord) -> Result<(), String> {
        let attr = &record.attr;
        if attr.ino != ino || ino.shard() != self.shard || ino.counter() >= self.next_counter {
            return Err(format!("inode {ino:?} has a bad id {:?} (next {})", attr.ino, self.next_counter));
        }
        if attr.mode & !MODE_MASK != 0 || attr.nlink == 0 {
            return Err(format!("inode {ino:?}: mode {:#o}, nlink {}", attr.mode, attr.nlink));
        }
        let shape = match attr.kind {
            FileType::Directory => record.parent.is_some() && record.symlink_target.is_none() && attr.rdev == 0,
            FileType::Symlink => {
                record.symlink_target.as_ref().is_some_and(|t| !t.is_empty() && t.len() as u64 == attr.size)
                    && attr.rdev == 0
            }
            FileType::CharDevice | FileType::BlockDevice => record.symlink_target.is_none(),
            FileType::Regular | FileType::Fifo | FileType::Socket => record.symlink_target.is_none() && attr.rdev == 0,
        };
        if !shape || (!record.is_dir() && record.parent.is_some()) {
            return Err(format!("inode {ino:?} of type {:?} has the wrong shape", attr.kind));
        }
        for (name, value) in &record.xattrs {
            if xattr::space_of(name).is_err() || value.len() > XATTR_VALUE_LEN_MAX_BYTES {
                return Err(format!("inode {ino:?} has a bad xattr {name:?}"));
            }
        }
        if attr.kind != FileType::Regular && !record.content.is_empty() {
            return Err(format!("inode {ino:?} of type {:?} has content", attr.kind));
        }
        record.content.check(attr.size).map_err(|e| format!("inode {ino:?}: {e}"))
    }

    /// Every garbage entry is below the next sequence number, and no inode here references a stripe
    /// in the queue (the reclaimer may free it at any time).
    fn check_garbage(&self) -> Result<(), String> {
        if self.garbage.keys().next_back().is_some_and(|&seq| seq >= self.next_garbage_seq) {
            return Err(format!("garbage sequence numbers reach the next one, {}", self.next_garbage_seq));
        }
        let queued: BTreeSet<StripeId> = self.garbage.values().map(|s| s.id).collect();
        for (ino, record) in &self.inodes {
            if let Some(id) = record.content.stripe_ids().intersection(&queued).next() {
                return Err(format!("inode {ino:?} references stripe {id:?}, which is garbage"));
            }
        }
        Ok(())
    }
}
