//! The directory-entry key space: `(parent, cookie) -> entry` with its `(parent, name)` index, lookup
//! and readdir (a range scan of one directory's keys, in cookie order).

use std::ops::Bound;

use crate::{Credentials, DirEntry, Errno, InodeId, MetaReply, assign_cookie, validate_name};

use super::perm::{READ, SEARCH, check_access};
use super::{EntryRecord, Halt, ShardState, Step};

impl ShardState {
    /// The entry `name` of directory `dir` with its cookie, if it exists (`dir` is held here).
    pub(super) fn entry(&self, dir: InodeId, name: &str) -> Option<(u64, &EntryRecord)> {
        let cookie = *self.entry_names.get(&(dir, name.to_string()))?;
        let record = self.entries.get(&(dir, cookie)).expect("name index names an entry");
        assert_eq!(record.name, name, "name index and entries disagree");
        Some((cookie, record))
    }

    /// Whether directory `dir` has no entries here.
    pub(super) fn dir_is_empty(&self, dir: InodeId) -> bool {
        self.dir_range(dir, 0).next().is_none()
    }

    /// Directory `parent` checked for a lookup of `name`: it exists here (ESTALE, NotLocal), is a
    /// directory (ENOTDIR), the caller may search it (EACCES), and `name` is valid (EINVAL,
    /// ENAMETOOLONG).
    pub(super) fn search(&self, parent: InodeId, name: &str, creds: &Credentials) -> Step<()> {
        let dir = self.dir(parent)?;
        check_access(&dir.attr, creds, SEARCH)?;
        validate_name(name)?;
        Ok(())
    }

    pub(super) fn lookup(&self, parent: InodeId, name: &str, creds: &Credentials) -> Step<MetaReply> {
        self.search(parent, name, creds)?;
        let (_, entry) = self.entry(parent, name).ok_or(Halt::Errno(Errno::ENOENT))?;
        Ok(MetaReply::Child { ino: entry.ino, kind: entry.kind })
    }

    /// The cookie a new entry `name` of `dir` would take once the entries named in `leaving` are gone;
    /// ENOSPC if all cookies of its hash prefix are held.
    pub(super) fn plan_cookie(&self, dir: InodeId, name: &str, leaving: &[&str]) -> Result<u64, Errno> {
        let taken =
            |cookie: u64| self.entries.get(&(dir, cookie)).is_some_and(|entry| !leaving.contains(&entry.name.as_str()));
        assign_cookie(name, taken).ok_or(Errno::ENOSPC)
    }

    /// Add an entry under a cookie [`ShardState::plan_cookie`] gave (the directory's size is the
    /// caller's to update).
    pub(super) fn insert_entry(&mut self, dir: InodeId, cookie: u64, entry: EntryRecord) {
        assert!(crate::cookie_matches(&entry.name, cookie), "cookie {cookie:#x} is not {:?}'s", entry.name);
        let previous_name = self.entry_names.insert((dir, entry.name.clone()), cookie);
        assert!(previous_name.is_none(), "entry {:?} of {dir:?} exists", entry.name);
        let previous = self.entries.insert((dir, cookie), entry);
        assert!(previous.is_none(), "cookie {cookie:#x} of {dir:?} is taken");
    }

    /// Remove the existing entry `name` of `dir`.
    pub(super) fn remove_entry(&mut self, dir: InodeId, name: &str) -> EntryRecord {
        let cookie = self.entry_names.remove(&(dir, name.to_string())).expect("entry checked before removal");
        let entry = self.entries.remove(&(dir, cookie)).expect("name index names an entry");
        assert_eq!(entry.name, name, "name index and entries disagree");
        entry
    }

    /// The entries of `dir` with cookies above `after`, in cookie order.
    fn dir_range(&self, dir: InodeId, after: u64) -> impl Iterator<Item = (u64, &EntryRecord)> {
        self.entries
            .range((Bound::Excluded((dir, after)), Bound::Included((dir, u64::MAX))))
            .map(|(&(_, cookie), entry)| (cookie, entry))
    }

    /// Up to `max_entries` entries of `dir` after `cookie`: ESTALE, ENOTDIR, EINVAL for
    /// `max_entries == 0`, then EACCES without read permission.
    pub(super) fn readdir(&self, dir: InodeId, cookie: u64, max_entries: u32, creds: &Credentials) -> Step<MetaReply> {
        let record = self.dir(dir)?;
        if max_entries == 0 {
            return Err(Errno::EINVAL.into());
        }
        check_access(&record.attr, creds, READ)?;
        let mut range = self.dir_range(dir, cookie).peekable();
        let mut entries = Vec::new();
        while entries.len() < max_entries as usize
            && let Some((cookie, entry)) = range.next()
        {
            entries.push(DirEntry { name: entry.name.clone(), ino: entry.ino, kind: entry.kind, cookie });
        }
        let eof = range.peek().is_none();
        Ok(MetaReply::DirEntries { entries, eof })
    }
}
