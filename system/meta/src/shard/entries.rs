//! Lookup and readdir (range scans of a directory's keys in cookie order, partition after partition),
//! and the parent check every entry operation starts with.

use crate::{Credentials, DirEntry, Errno, InodeId, MetaReply, validate_name};

use super::perm::{READ, SEARCH, check_access, check_dir_access};
use super::store::Store;
use super::{Halt, Step};

/// Directory `parent` checked for a lookup of `name`: it exists (ESTALE), is a directory (ENOTDIR),
/// the caller may search it (EACCES), and `name` is valid (EINVAL, ENAMETOOLONG).
pub(super) fn search<S: Store>(s: &S, parent: InodeId, name: &str, creds: &Credentials) -> Step<()> {
    let dir = s.dir(parent)?;
    check_access(&dir.attr, creds, SEARCH)?;
    validate_name(name)?;
    Ok(())
}

/// lookup: [`search`]'s checks (on the directory's access attributes, which the shard of the name's
/// partition keeps a copy of), then the entry (ENOENT).
pub(super) fn lookup<S: Store>(s: &S, parent: InodeId, name: &str, creds: &Credentials) -> Step<MetaReply> {
    let access = s.lookup_dir(parent, name)?;
    check_dir_access(&access, creds, SEARCH)?;
    validate_name(name)?;
    let (_, entry) = s.entry(parent, name)?.ok_or(Halt::Errno(Errno::ENOENT))?;
    Ok(MetaReply::Child { ino: entry.ino, kind: entry.kind })
}

/// Up to `max_entries` entries of `dir` after `cookie`: ESTALE, ENOTDIR, EINVAL for
/// `max_entries == 0`, then EACCES without read permission. The page is gathered partition after
/// partition in cookie order (each partition's part from its shard); `eof` when no entry follows the
/// last one returned, which may take looking at the following partitions.
pub(super) fn readdir<S: Store>(
    s: &S,
    dir: InodeId,
    cookie: u64,
    max_entries: u32,
    creds: &Credentials,
) -> Step<MetaReply> {
    let record = s.dir(dir)?;
    if max_entries == 0 {
        return Err(Errno::EINVAL.into());
    }
    check_access(&record.attr, creds, READ)?;
    let max = max_entries as usize;
    let mut entries: Vec<DirEntry> = Vec::new();
    let mut after = cookie;
    let eof = loop {
        if after == u64::MAX {
            break true;
        }
        // Once the page is full, one more entry anywhere after it decides `eof`.
        let want = (max - entries.len()).max(1) as u32;
        let page = s.page(dir, after, want)?;
        if entries.len() == max {
            if !page.entries.is_empty() {
                break false;
            }
        } else {
            let found = page.entries.iter().map(|(cookie, e)| DirEntry {
                name: e.name.clone(),
                ino: e.ino,
                kind: e.kind,
                cookie: *cookie,
            });
            entries.extend(found);
            if page.more {
                assert_eq!(entries.len(), max, "a partition has more only beyond a full page");
                break false;
            }
        }
        after = page.end;
    };
    Ok(MetaReply::DirEntries { entries, eof })
}
