//! Removing names: unlink and rmdir, the `may_delete` checks they share with rename, and what an
//! inode loses with an entry.

use crate::{Credentials, Errno, FileType, InodeId, MetaReply};

use super::entries::search;
use super::perm::{SEARCH, WRITE, check_access, sticky_forbids};
use super::store::Store;
use super::{Halt, Step};

/// unlink (`rmdir == false`) or rmdir: the parent and name (see [`search`]), the entry exists
/// (ENOENT), [`check_delete`], an emptied directory (ENOTEMPTY).
pub(super) fn remove<S: Store>(
    s: &mut S,
    parent: InodeId,
    name: &str,
    creds: &Credentials,
    rmdir: bool,
    now: u64,
) -> Step<MetaReply> {
    search(s, parent, name, creds)?;
    let child = s.entry(parent, name)?.ok_or(Halt::Errno(Errno::ENOENT))?.1.ino;
    check_delete(s, parent, child, creds, rmdir)?;
    if rmdir && !s.dir_is_empty(child)? {
        return Err(Errno::ENOTEMPTY.into());
    }

    unlink_entry(s, parent, name, now);
    drop_link(s, child, now);
    Ok(MetaReply::Done)
}

/// Linux `may_delete` for entry `child` of `parent`: write and search permission on the parent
/// (EACCES), the sticky bit (EPERM), then the type: a directory when `want_dir` (ENOTDIR), else a
/// non-directory (EISDIR). The child may live in another shard.
pub(super) fn check_delete<S: Store>(
    s: &S,
    parent: InodeId,
    child: InodeId,
    creds: &Credentials,
    want_dir: bool,
) -> Step<()> {
    let dir = &s.dir(parent)?.attr;
    let child = s.inode(child)?;
    check_access(dir, creds, WRITE | SEARCH)?;
    if sticky_forbids(dir, &child.attr, creds) {
        return Err(Errno::EPERM.into());
    }
    match (want_dir, child.is_dir()) {
        (true, false) => Err(Errno::ENOTDIR.into()),
        (false, true) => Err(Errno::EISDIR.into()),
        _ => Ok(()),
    }
}

/// Remove the checked entry `name` of `parent` and update the parent: size, a subdirectory's link,
/// mtime and ctime. The child inode is the caller's to update.
pub(super) fn unlink_entry<S: Store>(s: &mut S, parent: InodeId, name: &str, now: u64) {
    let entry = s.remove_entry(parent, name);
    let attr = &mut s.inode_mut(parent).attr;
    assert!(attr.size > 0, "directory {parent:?} size underflow");
    attr.size -= 1;
    if entry.kind == FileType::Directory {
        assert!(attr.nlink > 2, "directory {parent:?} nlink underflow");
        attr.nlink -= 1;
    }
    s.stamp(parent, true, now);
}

/// Inode `ino` lost an entry: a directory (checked empty) is freed; a non-directory loses a link and
/// is freed at zero, otherwise its ctime changes.
pub(super) fn drop_link<S: Store>(s: &mut S, ino: InodeId, now: u64) {
    if s.inode_mut(ino).is_dir() {
        assert!(matches!(s.dir_is_empty(ino), Ok(true)), "freeing non-empty directory {ino:?}");
        s.remove_inode(ino);
        return;
    }
    let attr = &mut s.inode_mut(ino).attr;
    assert!(attr.nlink > 0, "{ino:?} nlink underflow");
    attr.nlink -= 1;
    if attr.nlink == 0 {
        s.remove_inode(ino);
    } else {
        s.stamp(ino, false, now);
    }
}
