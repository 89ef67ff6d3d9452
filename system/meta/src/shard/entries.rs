//! Lookup and readdir (a range scan of one directory's keys, in cookie order), and the parent check
//! every entry operation starts with.

use crate::{Credentials, Errno, InodeId, MetaReply, validate_name};

use super::perm::{READ, SEARCH, check_access};
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

pub(super) fn lookup<S: Store>(s: &S, parent: InodeId, name: &str, creds: &Credentials) -> Step<MetaReply> {
    search(s, parent, name, creds)?;
    let (_, entry) = s.entry(parent, name)?.ok_or(Halt::Errno(Errno::ENOENT))?;
    Ok(MetaReply::Child { ino: entry.ino, kind: entry.kind })
}

/// Up to `max_entries` entries of `dir` after `cookie`: ESTALE, ENOTDIR, EINVAL for
/// `max_entries == 0`, then EACCES without read permission.
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
    let (entries, eof) = s.dir_page(dir, cookie, max_entries)?;
    Ok(MetaReply::DirEntries { entries, eof })
}
