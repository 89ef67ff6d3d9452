//! New names: create, mkdir, mknod and symlink (a new inode in this shard and its entry), and link (a
//! new entry for an existing inode).

use std::collections::BTreeMap;

use crate::{
    Attr, Credentials, Errno, FileType, InodeId, LINK_MAX, MODE_MASK, MODE_SETGID, MetaReply,
    SYMLINK_TARGET_LEN_MAX_BYTES,
};

use super::entries::search;
use super::perm::{SEARCH, WRITE, check_access};
use super::plan::dir_shard;
use super::store::Store;
use super::{EntryRecord, Halt, InodeRecord, Step};

/// The inode a creating operation asks for.
#[derive(Debug, Clone)]
pub(super) struct NewNode<'a> {
    kind: FileType,
    mode: u32,
    rdev: u64,
    target: Option<&'a str>,
}

impl NewNode<'_> {
    /// A node with no device number and no symlink target.
    pub(super) fn plain(kind: FileType, mode: u32) -> NewNode<'static> {
        NewNode { kind, mode, rdev: 0, target: None }
    }
}

/// Create `node` as entry `name` of `parent`. Checks in order: the mode (EINVAL), the parent and the
/// name (see [`search`]), the name is free (EEXIST), write and search permission on the parent
/// (EACCES), devices need root (EPERM), room for a subdirectory (EMLINK), a cookie (ENOSPC), an inode
/// id (ENOSPC). A directory is allocated in [`dir_shard`], anything else beside its entry (in the
/// shard of the name's partition).
pub(super) fn make_node<S: Store>(
    s: &mut S,
    parent: InodeId,
    name: &str,
    creds: &Credentials,
    node: NewNode<'_>,
    now: u64,
) -> Step<MetaReply> {
    if node.mode & !MODE_MASK != 0 {
        return Err(Errno::EINVAL.into());
    }
    search(s, parent, name, creds)?;
    if s.entry(parent, name)?.is_some() {
        return Err(Errno::EEXIST.into());
    }
    let parent_attr = &s.dir(parent)?.attr;
    check_access(parent_attr, creds, WRITE | SEARCH)?;
    if matches!(node.kind, FileType::CharDevice | FileType::BlockDevice) && !creds.is_root() {
        return Err(Errno::EPERM.into());
    }
    let is_dir = node.kind == FileType::Directory;
    if is_dir && parent_attr.nlink >= LINK_MAX {
        return Err(Errno::EMLINK.into());
    }
    let cookie = s.plan_cookie(parent, name, &[])?;
    let home = if is_dir { dir_shard(parent, name, s.shard_count()) } else { s.entry_shard(parent, name)? };
    let ino = s.plan_ino(home)?;
    let attr = initial_attr(ino, &node, parent_attr, creds, now);

    let record = InodeRecord {
        attr: attr.clone(),
        parent: is_dir.then_some(parent),
        symlink_target: node.target.map(str::to_string),
        xattrs: BTreeMap::new(),
        content: crate::content::FileContent::default(),
    };
    s.insert_inode(record);
    s.insert_entry(parent, cookie, EntryRecord { name: name.to_string(), ino, kind: node.kind });
    let parent_attr = &mut s.inode_mut(parent).attr;
    parent_attr.size += 1;
    if is_dir {
        parent_attr.nlink += 1;
    }
    s.stamp(parent, true, now);
    Ok(MetaReply::Entry(attr))
}

/// mknod: a directory is EPERM and a symlink EINVAL before anything else; rdev is kept only for
/// devices.
#[allow(clippy::too_many_arguments)]
pub(super) fn mknod<S: Store>(
    s: &mut S,
    parent: InodeId,
    name: &str,
    mode: u32,
    kind: FileType,
    rdev: u64,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let rdev = match kind {
        FileType::Directory => return Err(Errno::EPERM.into()),
        FileType::Symlink => return Err(Errno::EINVAL.into()),
        FileType::CharDevice | FileType::BlockDevice => rdev,
        FileType::Regular | FileType::Fifo | FileType::Socket => 0,
    };
    make_node(s, parent, name, creds, NewNode { kind, mode, rdev, target: None }, now)
}

/// symlink: the target is checked first (empty: ENOENT; too long: ENAMETOOLONG); mode 0o777.
pub(super) fn symlink<S: Store>(
    s: &mut S,
    parent: InodeId,
    name: &str,
    target: &str,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    if target.is_empty() {
        return Err(Errno::ENOENT.into());
    }
    if target.len() > SYMLINK_TARGET_LEN_MAX_BYTES {
        return Err(Errno::ENAMETOOLONG.into());
    }
    let node = NewNode { kind: FileType::Symlink, mode: 0o777, rdev: 0, target: Some(target) };
    make_node(s, parent, name, creds, node, now)
}

/// link: `ino` exists (ESTALE), the new parent and name (see [`search`]), the name is free (EEXIST),
/// write and search permission on the new parent (EACCES), not a directory (EPERM), below
/// [`LINK_MAX`] (EMLINK), a cookie (ENOSPC).
pub(super) fn link<S: Store>(
    s: &mut S,
    ino: InodeId,
    new_parent: InodeId,
    new_name: &str,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let target = s.inode(ino)?;
    let (kind, nlink) = (target.attr.kind, target.attr.nlink);
    search(s, new_parent, new_name, creds)?;
    if s.entry(new_parent, new_name)?.is_some() {
        return Err(Errno::EEXIST.into());
    }
    check_access(&s.dir(new_parent)?.attr, creds, WRITE | SEARCH)?;
    if kind == FileType::Directory {
        return Err(Halt::Errno(Errno::EPERM));
    }
    if nlink >= LINK_MAX {
        return Err(Errno::EMLINK.into());
    }
    let cookie = s.plan_cookie(new_parent, new_name, &[])?;

    s.insert_entry(new_parent, cookie, EntryRecord { name: new_name.to_string(), ino, kind });
    s.inode_mut(new_parent).attr.size += 1;
    s.stamp(new_parent, true, now);
    s.inode_mut(ino).attr.nlink += 1;
    s.stamp(ino, false, now);
    Ok(MetaReply::Entry(s.inode_mut(ino).attr.clone()))
}

/// A new inode's attributes. The group is the caller's, unless the parent is setgid: then it is the
/// parent's, a new directory inherits setgid, and a new group-executable setgid file loses setgid if
/// the caller is neither root nor in that group.
fn initial_attr(ino: InodeId, node: &NewNode<'_>, parent: &Attr, creds: &Credentials, now: u64) -> Attr {
    let is_dir = node.kind == FileType::Directory;
    let (gid, mode) = if parent.mode & MODE_SETGID == 0 {
        (creds.gid, node.mode)
    } else if is_dir {
        (parent.gid, node.mode | MODE_SETGID)
    } else {
        let sgid_exec = MODE_SETGID | 0o010;
        let strip = node.mode & sgid_exec == sgid_exec && !creds.is_root() && !creds.in_group(parent.gid);
        (parent.gid, if strip { node.mode & !MODE_SETGID } else { node.mode })
    };
    Attr {
        ino,
        kind: node.kind,
        mode,
        uid: creds.uid,
        gid,
        size: node.target.map_or(0, |t| t.len() as u64),
        nlink: if is_dir { 2 } else { 1 },
        atime_ns: now,
        mtime_ns: now,
        ctime_ns: now,
        rdev: node.rdev,
    }
}
