//! Removing names: unlink and rmdir, the `may_delete` checks they share with rename, and what an
//! inode loses with an entry.

use crate::{Credentials, Errno, InodeId, MetaReply};

use super::perm::{SEARCH, WRITE, check_access, sticky_forbids};
use super::{Halt, ShardState, Step};

impl ShardState {
    /// unlink (`rmdir == false`) or rmdir: the parent and name (see [`ShardState::search`]), the entry
    /// exists (ENOENT), [`ShardState::check_delete`], an emptied directory (ENOTEMPTY).
    pub(super) fn remove(
        &mut self,
        parent: InodeId,
        name: &str,
        creds: &Credentials,
        rmdir: bool,
        now: u64,
    ) -> Step<MetaReply> {
        self.search(parent, name, creds)?;
        let child = self.entry(parent, name).ok_or(Halt::Errno(Errno::ENOENT))?.1.ino;
        self.check_delete(parent, child, creds, rmdir)?;
        if rmdir && !self.dir_is_empty(child) {
            return Err(Errno::ENOTEMPTY.into());
        }

        self.unlink_entry(parent, name, now);
        self.drop_link(child, now);
        Ok(MetaReply::Done)
    }

    /// Linux `may_delete` for entry `child` of `parent`: write and search permission on the parent
    /// (EACCES), the sticky bit (EPERM), then the type: a directory when `want_dir` (ENOTDIR), else a
    /// non-directory (EISDIR). The child may live in another shard (NotLocal).
    pub(super) fn check_delete(
        &self,
        parent: InodeId,
        child: InodeId,
        creds: &Credentials,
        want_dir: bool,
    ) -> Step<()> {
        let dir = &self.dir(parent)?.attr;
        let child = self.inode(child)?;
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

    /// Remove the checked entry `name` of `parent` and update the parent: size, a subdirectory's
    /// link, mtime and ctime. The child inode is the caller's to update.
    pub(super) fn unlink_entry(&mut self, parent: InodeId, name: &str, now: u64) {
        let entry = self.remove_entry(parent, name);
        let attr = &mut self.inode_mut(parent).attr;
        assert!(attr.size > 0, "directory {parent:?} size underflow");
        attr.size -= 1;
        if entry.kind == crate::FileType::Directory {
            assert!(attr.nlink > 2, "directory {parent:?} nlink underflow");
            attr.nlink -= 1;
        }
        self.stamp(parent, true, now);
    }

    /// Inode `ino` lost an entry: a directory (checked empty) is freed; a non-directory loses a link
    /// and is freed at zero, otherwise its ctime changes.
    pub(super) fn drop_link(&mut self, ino: InodeId, now: u64) {
        let record = self.inode_mut(ino);
        if record.is_dir() {
            assert!(self.dir_is_empty(ino), "freeing non-empty directory {ino:?}");
            self.inodes.remove(&ino);
            return;
        }
        assert!(record.attr.nlink > 0, "{ino:?} nlink underflow");
        record.attr.nlink -= 1;
        if record.attr.nlink == 0 {
            self.inodes.remove(&ino);
        } else {
            self.stamp(ino, false, now);
        }
    }
}
