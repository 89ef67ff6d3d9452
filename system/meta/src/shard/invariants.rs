//! The structural invariants of one shard's keys, checked as a whole (tests, simulation checkers).
//!
//! Only what one shard can know is checked: an entry naming an inode of another shard, and the link
//! count of an inode that entries elsewhere may name, are the cross-shard checker's business.

use std::collections::BTreeMap;

use crate::{FileType, InodeId, MODE_MASK, XATTR_VALUE_LEN_MAX_BYTES, cookie_matches, validate_name};

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
        self.check_txn_invariants()?;
        let mut named: BTreeMap<InodeId, u32> = BTreeMap::new();
        let mut per_dir: BTreeMap<InodeId, (u64, u32)> = BTreeMap::new();
        for (&(dir, cookie), entry) in &self.entries {
            let parent = self.inodes.get(&dir).ok_or_else(|| format!("entries of missing directory {dir:?}"))?;
            if !parent.is_dir() || validate_name(&entry.name).is_err() || !cookie_matches(&entry.name, cookie) {
                return Err(format!("entry {:?} of {dir:?}: bad parent, name or cookie {cookie:#x}", entry.name));
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
                if record.attr.size != size || record.attr.nlink != 2 + subdirs {
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
        Ok(())
    }
}
