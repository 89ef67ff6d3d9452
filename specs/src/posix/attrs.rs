//! setattr (chmod, chown, truncate, utimensat) and truncate, with Linux's `setattr_prepare` rules.

use tessera_meta::{
    Attr, Credentials, Errno, FILE_SIZE_MAX_BYTES, FileType, InodeId, MODE_MASK, MODE_SETGID, MODE_SETUID, MetaReply,
    MetaResult, SetAttr, SetTime,
};

use super::namespace::Namespace;
use super::perm::{MAY_WRITE, drops_sgid, owner_or_root, permission};

impl Namespace {
    /// Check every requested change first, in Linux's order (mode argument EINVAL; size: EISDIR,
    /// EINVAL for a non-regular file, EACCES without write permission, EFBIG; owner: EPERM unless root
    /// or the owner keeping the uid; group: EPERM unless root or the owner choosing a group they are in;
    /// mode: EPERM unless owner or root; explicit times: EPERM unless owner or root; current time:
    /// EACCES unless owner, root or writer), then apply them all. Any change sets ctime; an empty
    /// `SetAttr` changes nothing.
    pub(super) fn setattr(&mut self, ino: InodeId, set: &SetAttr, creds: &Credentials, now_ns: u64) -> MetaResult {
        let attr = &self.inode(ino)?.attr;
        check_setattr(attr, set, creds)?;
        let new = apply_setattr(attr, set, creds, now_ns);
        let inode = self.inode_mut(ino);
        // Shrinking cuts the content; growing adds a hole.
        inode.content.truncate(new.size.min(inode.attr.size));
        inode.attr = new.clone();
        Ok(MetaReply::Attr(new))
    }

    /// truncate(2): a [`SetAttr`] with only the size.
    pub(super) fn truncate(&mut self, ino: InodeId, size: u64, creds: &Credentials, now_ns: u64) -> MetaResult {
        self.setattr(ino, &SetAttr { size: Some(size), ..SetAttr::default() }, creds, now_ns)
    }
}

fn check_setattr(attr: &Attr, set: &SetAttr, creds: &Credentials) -> Result<(), Errno> {
    if set.mode.is_some_and(|mode| mode & !MODE_MASK != 0) {
        return Err(Errno::EINVAL);
    }
    if let Some(size) = set.size {
        match attr.kind {
            FileType::Directory => return Err(Errno::EISDIR),
            FileType::Regular => {}
            _ => return Err(Errno::EINVAL),
        }
        permission(attr, creds, MAY_WRITE)?;
        if size > FILE_SIZE_MAX_BYTES {
            return Err(Errno::EFBIG);
        }
    }
    let owner = owner_or_root(attr, creds);
    if let Some(uid) = set.uid
        && !(creds.is_root() || (creds.uid == attr.uid && uid == attr.uid))
    {
        return Err(Errno::EPERM);
    }
    if let Some(gid) = set.gid
        && !(creds.is_root() || (creds.uid == attr.uid && (gid == attr.gid || creds.in_group(gid))))
    {
        return Err(Errno::EPERM);
    }
    if set.mode.is_some() && !owner {
        return Err(Errno::EPERM);
    }
    let times = [set.atime, set.mtime];
    if times.iter().any(|t| matches!(t, Some(SetTime::At(_)))) {
        if !owner {
            return Err(Errno::EPERM);
        }
    } else if times.iter().any(Option::is_some) && !owner {
        permission(attr, creds, MAY_WRITE)?;
    }
    Ok(())
}

/// The attributes after a checked [`SetAttr`].
fn apply_setattr(attr: &Attr, set: &SetAttr, creds: &Credentials, now_ns: u64) -> Attr {
    let mut new = attr.clone();
    if *set == SetAttr::default() {
        return new;
    }
    new.ctime_ns = now_ns;
    if let Some(size) = set.size {
        new.size = size;
        new.mtime_ns = now_ns;
        // A write by someone other than root clears setuid, and setgid with group-execute.
        if !creds.is_root() {
            new.mode &= !MODE_SETUID;
            if new.mode & 0o010 != 0 {
                new.mode &= !MODE_SETGID;
            }
        }
    }
    if (set.uid.is_some() || set.gid.is_some()) && attr.kind != FileType::Directory {
        // chown of a non-directory clears setuid (even by root) and setgid as `drops_sgid` says.
        let drop_sgid = drops_sgid(&new, creds);
        new.mode &= !MODE_SETUID;
        if drop_sgid {
            new.mode &= !MODE_SETGID;
        }
    }
    new.uid = set.uid.unwrap_or(new.uid);
    new.gid = set.gid.unwrap_or(new.gid);
    if let Some(mode) = set.mode {
        // chmod by someone neither root nor in the (new) group cannot set setgid.
        new.mode = if creds.is_root() || creds.in_group(new.gid) { mode } else { mode & !MODE_SETGID };
    }
    let time = |t: SetTime| match t {
        SetTime::Now => now_ns,
        SetTime::At(ns) => ns,
    };
    if let Some(t) = set.atime {
        new.atime_ns = time(t);
    }
    if let Some(t) = set.mtime {
        new.mtime_ns = time(t);
    }
    new
}
