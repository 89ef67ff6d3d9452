//! One directory's entries, kept in cookie order (see `tessera_meta::name`), and readdir.

use std::collections::BTreeMap;
use std::ops::Bound;

use tessera_meta::{Credentials, DirEntry, Errno, FileType, InodeId, MetaReply, MetaResult, assign_cookie};

use super::namespace::Namespace;
use super::perm::{MAY_READ, permission};

/// A directory's entries: by cookie (the listing order) and by name (lookups).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Dir {
    /// The directory holding this one's entry; the root's is itself.
    pub(super) parent: InodeId,
    by_cookie: BTreeMap<u64, Slot>,
    by_name: BTreeMap<String, u64>,
}

/// One entry: a name for an inode, and the inode's type (fixed for its lifetime).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) ino: InodeId,
    pub(super) kind: FileType,
}

impl Dir {
    pub(super) fn new(parent: InodeId) -> Dir {
        Dir { parent, by_cookie: BTreeMap::new(), by_name: BTreeMap::new() }
    }

    pub(super) fn child(&self, name: &str) -> Option<&Slot> {
        self.by_name.get(name).map(|cookie| &self.by_cookie[cookie])
    }

    pub(super) fn len(&self) -> usize {
        self.by_cookie.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_cookie.is_empty()
    }

    pub(super) fn slots(&self) -> impl Iterator<Item = (&u64, &Slot)> {
        self.by_cookie.iter()
    }

    /// The cookie a new entry `name` would take once the entries named in `leaving` are removed;
    /// ENOSPC if every cookie of its hash prefix is held.
    pub(super) fn plan_cookie(&self, name: &str, leaving: &[&str]) -> Result<u64, Errno> {
        let taken = |c: u64| self.by_cookie.get(&c).is_some_and(|slot| !leaving.contains(&slot.name.as_str()));
        assign_cookie(name, taken).ok_or(Errno::ENOSPC)
    }

    /// Add an entry under a cookie from [`Dir::plan_cookie`].
    pub(super) fn insert(&mut self, cookie: u64, slot: Slot) {
        assert!(!self.by_name.contains_key(&slot.name), "entry {:?} exists", slot.name);
        self.by_name.insert(slot.name.clone(), cookie);
        let previous = self.by_cookie.insert(cookie, slot);
        assert!(previous.is_none(), "cookie {cookie:#x} taken");
    }

    pub(super) fn remove(&mut self, name: &str) -> Slot {
        let cookie = self.by_name.remove(name).expect("entry checked before removal");
        self.by_cookie.remove(&cookie).expect("indexes agree")
    }

    /// The two indexes describe the same entries.
    pub(super) fn check_indexes(&self) -> Result<(), String> {
        if self.by_name.len() != self.by_cookie.len() {
            return Err("name and cookie indexes differ in size".into());
        }
        for (name, cookie) in &self.by_name {
            if self.by_cookie.get(cookie).is_none_or(|slot| &slot.name != name) {
                return Err(format!("name index entry {name:?} -> {cookie:#x} has no matching slot"));
            }
        }
        Ok(())
    }
}

impl Namespace {
    /// Up to `max_entries` entries after `cookie`, in cookie order. Needs read permission on the
    /// directory; `max_entries == 0` is EINVAL (getdents with a buffer too small for one entry).
    pub(super) fn readdir(&self, dir: InodeId, cookie: u64, max_entries: u32, creds: &Credentials) -> MetaResult {
        let entries = self.dir(dir)?;
        if max_entries == 0 {
            return Err(Errno::EINVAL);
        }
        permission(&self.inodes[&dir].attr, creds, MAY_READ)?;
        let mut after = entries.by_cookie.range((Bound::Excluded(cookie), Bound::Unbounded)).peekable();
        let mut page = Vec::new();
        while page.len() < max_entries as usize {
            let Some((&cookie, slot)) = after.next() else { break };
            page.push(DirEntry { name: slot.name.clone(), ino: slot.ino, kind: slot.kind, cookie });
        }
        Ok(MetaReply::DirEntries { entries: page, eof: after.peek().is_none() })
    }
}
