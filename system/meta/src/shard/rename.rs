//! rename(2) without flags.

use crate::{Credentials, Errno, FileType, InodeId, LINK_MAX, MetaReply, validate_name};

use super::perm::{SEARCH, WRITE, check_access};
use super::remove::{check_delete, drop_link, unlink_entry};
use super::store::Store;
use super::{EntryRecord, Halt, Step};

/// The two entries a rename involves, found and checked.
struct Plan {
    source: EntryRecord,
    target: Option<EntryRecord>,
    cookie: u64,
}

/// Move entry `name` of `parent` to `new_name` of `new_parent`, replacing a target.
///
/// Checks in Linux's order: both parents (ESTALE, ENOTDIR), search on both (EACCES), both names
/// (EINVAL, ENAMETOOLONG), the source exists (ENOENT); across directories, the source directory is
/// not the new parent or above it (EINVAL) and a target directory not the old parent or above it
/// (ENOTEMPTY); source and target one inode: done, unchanged; may-delete the source; may-delete the
/// target or write+search on the new parent; a directory changing parent: write on itself (EACCES)
/// and, without a target, room in the new parent (EMLINK); a directory target is empty (ENOTEMPTY); a
/// cookie (ENOSPC).
pub(super) fn rename<S: Store>(
    s: &mut S,
    parent: InodeId,
    name: &str,
    new_parent: InodeId,
    new_name: &str,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let Some(plan) = plan_rename(s, parent, name, new_parent, new_name, creds)? else {
        return Ok(MetaReply::Done);
    };
    if let Some(target) = &plan.target {
        unlink_entry(s, new_parent, new_name, now);
        drop_link(s, target.ino, now);
    }
    unlink_entry(s, parent, name, now);
    let ino = plan.source.ino;
    let is_dir = plan.source.kind == FileType::Directory;
    s.insert_entry(new_parent, plan.cookie, EntryRecord { name: new_name.to_string(), ..plan.source });
    let new_parent_attr = &mut s.inode_mut(new_parent).attr;
    new_parent_attr.size += 1;
    if is_dir {
        new_parent_attr.nlink += 1;
        s.inode_mut(ino).parent = Some(new_parent);
    }
    s.stamp(new_parent, true, now);
    s.stamp(ino, false, now);
    Ok(MetaReply::Done)
}

/// Every check of a rename; `None` when source and target are links of one inode (nothing to do).
fn plan_rename<S: Store>(
    s: &S,
    parent: InodeId,
    name: &str,
    new_parent: InodeId,
    new_name: &str,
    creds: &Credentials,
) -> Step<Option<Plan>> {
    let old_dir = &s.dir(parent)?.attr;
    let new_dir = &s.dir(new_parent)?.attr;
    check_access(old_dir, creds, SEARCH)?;
    check_access(new_dir, creds, SEARCH)?;
    validate_name(name)?;
    validate_name(new_name)?;
    let source = s.entry(parent, name)?.ok_or(Halt::Errno(Errno::ENOENT))?.1.clone();
    let target = s.entry(new_parent, new_name)?.map(|(_, e)| e.clone());
    let is_dir = source.kind == FileType::Directory;

    if parent != new_parent {
        if is_dir && is_at_or_above(s, source.ino, new_parent)? {
            return Err(Errno::EINVAL.into());
        }
        if let Some(t) = &target
            && t.kind == FileType::Directory
            && is_at_or_above(s, t.ino, parent)?
        {
            return Err(Errno::ENOTEMPTY.into());
        }
    }
    if target.as_ref().is_some_and(|t| t.ino == source.ino) {
        return Ok(None);
    }
    check_delete(s, parent, source.ino, creds, is_dir)?;
    match &target {
        Some(t) => check_delete(s, new_parent, t.ino, creds, is_dir)?,
        None => check_access(new_dir, creds, WRITE | SEARCH)?,
    }
    if is_dir && parent != new_parent {
        check_access(&s.inode(source.ino)?.attr, creds, WRITE)?;
        if target.is_none() && new_dir.nlink >= LINK_MAX {
            return Err(Errno::EMLINK.into());
        }
    }
    if let Some(t) = &target
        && is_dir
        && !s.dir_is_empty(t.ino)?
    {
        return Err(Errno::ENOTEMPTY.into());
    }
    let leaving: &[&str] = if parent == new_parent { &[name, new_name] } else { &[new_name] };
    let cookie = s.plan_cookie(new_parent, new_name, leaving)?;
    Ok(Some(Plan { source, target, cookie }))
}

/// Whether directory `dir` is `ino` or one of its ancestors, walking `..` pointers up to the root
/// (each directory on the way is read, wherever it lives).
fn is_at_or_above<S: Store>(s: &S, dir: InodeId, ino: InodeId) -> Step<bool> {
    let mut at = ino;
    for _ in 0..=s.walk_limit() {
        if at == dir {
            return Ok(true);
        }
        let up = s.inode(at)?.parent.expect("ancestors are directories");
        if up == at {
            return Ok(false);
        }
        at = up;
    }
    Err(s.cycle(at))
}
