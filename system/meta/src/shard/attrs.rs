//! setattr and truncate: chmod, chown, size and utimensat with Linux's `setattr_prepare` rules.

use crate::{
    Attr, Credentials, Errno, FILE_SIZE_MAX_BYTES, FileType, InodeId, MODE_MASK, MODE_SETGID, MODE_SETUID, MetaReply,
    SetAttr, SetTime,
};

use super::Step;
use super::partition::DirAccess;
use super::perm::{WRITE, check_access, chown_strips_setgid, is_owner_or_root};
use super::store::Store;

/// Check every change (see [`permit`]), then apply all (see [`changed`]); reply with the result. A
/// directory's new mode or owner is copied to the shards of its partitions; a file's shrinking cuts
/// its content (the stripes it no longer references become garbage).
pub(super) fn setattr<S: Store>(
    s: &mut S,
    ino: InodeId,
    set: &SetAttr,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let attr = &s.inode(ino)?.attr;
    permit(attr, set, creds)?;
    let new = changed(attr, set, creds, now);
    if new.kind == FileType::Directory && DirAccess::of(&new) != DirAccess::of(attr) {
        s.access_copies(ino)?;
    }
    if let Some(size) = set.size
        && size < attr.size
    {
        s.edit_content(ino, |content| content.truncate(size));
    }
    s.inode_mut(ino).attr = new.clone();
    Ok(MetaReply::Attr(new))
}

/// Whether `creds` may make the changes in `set`, in Linux's order: mode bits (EINVAL); size (EISDIR
/// on a directory, EINVAL on a non-regular file, EACCES without write permission, EFBIG); uid (EPERM
/// unless root or the owner keeping it); gid (EPERM unless root or the owner picking one of their
/// groups or keeping it); mode (EPERM unless owner or root); explicit times (EPERM unless owner or
/// root); current times (owner, root, or write permission: EACCES).
fn permit(attr: &Attr, set: &SetAttr, creds: &Credentials) -> Result<(), Errno> {
    if let Some(mode) = set.mode
        && mode & !MODE_MASK != 0
    {
        return Err(Errno::EINVAL);
    }
    if let Some(size) = set.size {
        if attr.kind == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        if attr.kind != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        check_access(attr, creds, WRITE)?;
        if size > FILE_SIZE_MAX_BYTES {
            return Err(Errno::EFBIG);
        }
    }
    let owner = is_owner_or_root(attr, creds);
    let owns = creds.uid == attr.uid;
    let may_chown = |uid: u32| creds.is_root() || (owns && uid == attr.uid);
    let may_chgrp = |gid: u32| creds.is_root() || (owns && (gid == attr.gid || creds.in_group(gid)));
    if set.uid.is_some_and(|uid| !may_chown(uid)) || set.gid.is_some_and(|gid| !may_chgrp(gid)) {
        return Err(Errno::EPERM);
    }
    if set.mode.is_some() && !owner {
        return Err(Errno::EPERM);
    }
    let explicit = [set.atime, set.mtime].into_iter().flatten().any(|t| matches!(t, SetTime::At(_)));
    let current = [set.atime, set.mtime].into_iter().flatten().any(|t| t == SetTime::Now);
    if explicit && !owner {
        return Err(Errno::EPERM);
    }
    if current && !explicit && !owner {
        check_access(attr, creds, WRITE)?;
    }
    Ok(())
}

/// The attributes after a permitted `set`, applied in the order size, owner and group, mode, times.
/// Any change stamps ctime; an empty `set` changes nothing.
fn changed(attr: &Attr, set: &SetAttr, creds: &Credentials, now: u64) -> Attr {
    if *set == SetAttr::default() {
        return attr.clone();
    }
    let mut new = Attr { ctime_ns: now, ..attr.clone() };
    if let Some(size) = set.size {
        new.size = size;
        new.mtime_ns = now;
        // A write by anyone but root drops setuid, and setgid when group-execute is set.
        if !creds.is_root() {
            let sgid_exec = new.mode & 0o010 != 0;
            new.mode &= !(MODE_SETUID | if sgid_exec { MODE_SETGID } else { 0 });
        }
    }
    if (set.uid.is_some() || set.gid.is_some()) && new.kind != FileType::Directory {
        let strip_sgid = chown_strips_setgid(&new, creds);
        new.mode &= !(MODE_SETUID | if strip_sgid { MODE_SETGID } else { 0 });
    }
    if let Some(uid) = set.uid {
        new.uid = uid;
    }
    if let Some(gid) = set.gid {
        new.gid = gid;
    }
    if let Some(mode) = set.mode {
        let keep_sgid = creds.is_root() || creds.in_group(new.gid);
        new.mode = if keep_sgid { mode } else { mode & !MODE_SETGID };
    }
    let at = |t: SetTime| match t {
        SetTime::Now => now,
        SetTime::At(ns) => ns,
    };
    if let Some(t) = set.atime {
        new.atime_ns = at(t);
    }
    if let Some(t) = set.mtime {
        new.mtime_ns = at(t);
    }
    new
}
