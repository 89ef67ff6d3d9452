//! Operations on directory entries: create, mkdir, mknod, symlink, link, unlink, rmdir.
//!
//! Each checks in the order Linux does (search permission on the parent during lookup, then existence,
//! then write permission, then the type checks), and mutates only after every check passed.

use std::collections::BTreeMap;

use tessera_meta::{
    Attr, Credentials, Errno, FileType, InodeId, LINK_MAX, MODE_MASK, MODE_SETGID, MetaReply, MetaResult,
    SYMLINK_TARGET_LEN_MAX_BYTES,
};

use super::dir::{Dir, Slot};
use super::namespace::{Body, Inode, Namespace};
use super::perm::{MAY_EXEC, MAY_WRITE, permission, sticky_denies};

impl Namespace {
    /// Create an inode of `kind` named `name` in `parent` (the shared path of create, mkdir, mknod and
    /// symlink). `target` is the symlink target.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn make_node(
        &mut self,
        parent: InodeId,
        name: &str,
        creds: &Credentials,
        kind: FileType,
        mode: u32,
        rdev: u64,
        target: Option<&str>,
        now_ns: u64,
    ) -> MetaResult {
        if mode & !MODE_MASK != 0 {
            return Err(Errno::EINVAL);
        }
        let dir = self.searchable_dir(parent, name, creds)?;
        if dir.child(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let parent_attr = &self.inodes[&parent].attr;
        permission(parent_attr, creds, MAY_WRITE | MAY_EXEC)?;
        if matches!(kind, FileType::CharDevice | FileType::BlockDevice) && !creds.is_root() {
            return Err(Errno::EPERM);
        }
        if kind == FileType::Directory && parent_attr.nlink >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let cookie = dir.plan_cookie(name, &[])?;
        let ino = self.next_ino()?;

        let attr = new_attr(ino, kind, mode, rdev, target.map_or(0, str::len), parent_attr, creds, now_ns);
        let body = match (kind, target) {
            (FileType::Directory, _) => Body::Dir(Dir::new(parent)),
            (FileType::Symlink, Some(target)) => Body::Symlink(target.to_string()),
            _ => Body::Other,
        };
        self.insert_inode(Inode { attr: attr.clone(), body, xattrs: BTreeMap::new(), content: Default::default() });
        self.dir_mut(parent).insert(cookie, Slot { name: name.to_string(), ino, kind });
        let parent_attr = &mut self.inode_mut(parent).attr;
        parent_attr.size += 1;
        if kind == FileType::Directory {
            parent_attr.nlink += 1;
        }
        self.touch(parent, true, now_ns);
        Ok(MetaReply::Entry(attr))
    }

    /// mknod: Linux's `may_mknod` refuses a directory (EPERM) and a symlink (EINVAL) before anything
    /// else; devices need root (EPERM, after the parent checks).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mknod(
        &mut self,
        parent: InodeId,
        name: &str,
        mode: u32,
        kind: FileType,
        rdev: u64,
        creds: &Credentials,
        now_ns: u64,
    ) -> MetaResult {
        match kind {
            FileType::Directory => Err(Errno::EPERM),
            FileType::Symlink => Err(Errno::EINVAL),
            FileType::CharDevice | FileType::BlockDevice => {
                self.make_node(parent, name, creds, kind, mode, rdev, None, now_ns)
            }
            FileType::Regular | FileType::Fifo | FileType::Socket => {
                self.make_node(parent, name, creds, kind, mode, 0, None, now_ns)
            }
        }
    }

    /// symlink: an empty target is ENOENT and a too long one ENAMETOOLONG (both checked first, as
    /// Linux copies the target in before resolving the new name).
    pub(super) fn symlink(
        &mut self,
        parent: InodeId,
        name: &str,
        target: &str,
        creds: &Credentials,
        now_ns: u64,
    ) -> MetaResult {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() > SYMLINK_TARGET_LEN_MAX_BYTES {
            return Err(Errno::ENAMETOOLONG);
        }
        self.make_node(parent, name, creds, FileType::Symlink, 0o777, 0, Some(target), now_ns)
    }

    /// link: a new entry for an existing non-directory (EPERM for a directory, EMLINK at [`LINK_MAX`]).
    pub(super) fn link(
        &mut self,
        ino: InodeId,
        new_parent: InodeId,
        new_name: &str,
        creds: &Credentials,
        now_ns: u64,
    ) -> MetaResult {
        let inode = self.inode(ino)?;
        let dir = self.searchable_dir(new_parent, new_name, creds)?;
        if dir.child(new_name).is_some() {
            return Err(Errno::EEXIST);
        }
        permission(&self.inodes[&new_parent].attr, creds, MAY_WRITE | MAY_EXEC)?;
        if inode.attr.kind == FileType::Directory {
            return Err(Errno::EPERM);
        }
        if inode.attr.nlink >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let cookie = dir.plan_cookie(new_name, &[])?;
        let kind = inode.attr.kind;

        self.dir_mut(new_parent).insert(cookie, Slot { name: new_name.to_string(), ino, kind });
        self.inode_mut(new_parent).attr.size += 1;
        self.touch(new_parent, true, now_ns);
        self.inode_mut(ino).attr.nlink += 1;
        self.touch(ino, false, now_ns);
        Ok(MetaReply::Entry(self.inodes[&ino].attr.clone()))
    }

    /// unlink (`want_dir == false`) and rmdir (`want_dir == true`).
    pub(super) fn remove(
        &mut self,
        parent: InodeId,
        name: &str,
        creds: &Credentials,
        want_dir: bool,
        now_ns: u64,
    ) -> MetaResult {
        let slot = self.searchable_dir(parent, name, creds)?.child(name).ok_or(Errno::ENOENT)?;
        let child = slot.ino;
        self.may_delete(parent, child, creds, want_dir)?;
        if want_dir && !self.dir(child)?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }

        self.dir_mut(parent).remove(name);
        self.inode_mut(parent).attr.size -= 1;
        self.touch(parent, true, now_ns);
        if want_dir {
            self.inode_mut(parent).attr.nlink -= 1;
        }
        self.drop_link(child, now_ns);
        Ok(MetaReply::Done)
    }

    /// Linux `may_delete`: write and search permission on the directory (EACCES), the sticky bit
    /// (EPERM), then the type the caller expects: a directory (ENOTDIR if not) or a non-directory
    /// (EISDIR if it is one).
    pub(super) fn may_delete(
        &self,
        parent: InodeId,
        child: InodeId,
        creds: &Credentials,
        want_dir: bool,
    ) -> Result<(), Errno> {
        let dir_attr = &self.inodes[&parent].attr;
        let child_attr = &self.inodes[&child].attr;
        permission(dir_attr, creds, MAY_WRITE | MAY_EXEC)?;
        if sticky_denies(dir_attr, child_attr, creds) {
            return Err(Errno::EPERM);
        }
        match (want_dir, child_attr.kind == FileType::Directory) {
            (true, false) => Err(Errno::ENOTDIR),
            (false, true) => Err(Errno::EISDIR),
            _ => Ok(()),
        }
    }

    /// One entry naming `ino` is gone: a directory (checked empty) is freed; a non-directory loses a
    /// link, its ctime changes, and it is freed at nlink 0.
    pub(super) fn drop_link(&mut self, ino: InodeId, now_ns: u64) {
        let inode = self.inode_mut(ino);
        if inode.attr.kind == FileType::Directory {
            self.inodes.remove(&ino);
            return;
        }
        inode.attr.nlink -= 1;
        if inode.attr.nlink == 0 {
            self.inodes.remove(&ino);
        } else {
            self.touch(ino, false, now_ns);
        }
    }
}

/// The attributes of a new inode. Its group is the caller's, or the parent's if the parent is setgid
/// (then a new directory inherits the setgid bit, and a new setgid+group-executable file loses it if
/// the caller is neither in that group nor root: Linux `mode_strip_sgid`).
#[allow(clippy::too_many_arguments)]
fn new_attr(
    ino: InodeId,
    kind: FileType,
    mode: u32,
    rdev: u64,
    size: usize,
    parent: &Attr,
    creds: &Credentials,
    now_ns: u64,
) -> Attr {
    let mut mode = mode;
    let mut gid = creds.gid;
    if parent.mode & MODE_SETGID != 0 {
        gid = parent.gid;
        if kind == FileType::Directory {
            mode |= MODE_SETGID;
        } else if mode & (MODE_SETGID | 0o010) == MODE_SETGID | 0o010 && !(creds.is_root() || creds.in_group(gid)) {
            mode &= !MODE_SETGID;
        }
    }
    Attr {
        ino,
        kind,
        mode,
        uid: creds.uid,
        gid,
        size: size as u64,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        atime_ns: now_ns,
        mtime_ns: now_ns,
        ctime_ns: now_ns,
        rdev,
    }
}
