//! rename(2) without flags, with Linux's checks in Linux's order (`do_renameat2`, `vfs_rename`).

use tessera_meta::{Credentials, Errno, FileType, InodeId, LINK_MAX, MetaReply, MetaResult, validate_name};

use super::dir::Slot;
use super::namespace::Namespace;
use super::perm::{MAY_EXEC, MAY_WRITE, permission};

impl Namespace {
    /// Move entry `name` of `parent` to `new_name` in `new_parent`, replacing what is there.
    ///
    /// Order of checks: both parents (ESTALE, ENOTDIR) and search permission on both (EACCES); the
    /// names (EINVAL, ENAMETOOLONG); the source exists (ENOENT); the source is not an ancestor of the
    /// new parent (EINVAL) and the target not an ancestor of the source (ENOTEMPTY); the source and
    /// target are one inode: success with no change; delete permission on the source (EACCES, sticky
    /// EPERM); the target: delete permission and type (EACCES, EPERM, ENOTDIR for a directory over a
    /// non-directory, EISDIR for the reverse), or create permission on the new parent (EACCES); a
    /// directory changing parent needs write permission on itself (its `..` changes, EACCES) and room
    /// in the new parent (EMLINK); a directory target must be empty (ENOTEMPTY).
    pub(super) fn rename(
        &mut self,
        parent: InodeId,
        name: &str,
        new_parent: InodeId,
        new_name: &str,
        creds: &Credentials,
        now_ns: u64,
    ) -> MetaResult {
        let old_dir = self.dir(parent)?;
        let new_dir = self.dir(new_parent)?;
        permission(&self.inodes[&parent].attr, creds, MAY_EXEC)?;
        permission(&self.inodes[&new_parent].attr, creds, MAY_EXEC)?;
        validate_name(name)?;
        validate_name(new_name)?;
        let source = old_dir.child(name).ok_or(Errno::ENOENT)?.clone();
        let target = new_dir.child(new_name).cloned();
        let is_dir = source.kind == FileType::Directory;

        if is_dir && self.is_ancestor_or_self(source.ino, new_parent) {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = &target
            && target.kind == FileType::Directory
            && self.is_ancestor_or_self(target.ino, parent)
        {
            return Err(Errno::ENOTEMPTY);
        }
        if target.as_ref().is_some_and(|t| t.ino == source.ino) {
            return Ok(MetaReply::Done);
        }
        self.may_delete(parent, source.ino, creds, is_dir)?;
        match &target {
            Some(target) => self.may_delete(new_parent, target.ino, creds, is_dir)?,
            None => permission(&self.inodes[&new_parent].attr, creds, MAY_WRITE | MAY_EXEC)?,
        }
        let moves_dir = is_dir && parent != new_parent;
        if moves_dir {
            permission(&self.inodes[&source.ino].attr, creds, MAY_WRITE)?;
            if target.is_none() && self.inodes[&new_parent].attr.nlink >= LINK_MAX {
                return Err(Errno::EMLINK);
            }
        }
        if let Some(target) = &target
            && is_dir
            && !self.dir(target.ino)?.is_empty()
        {
            return Err(Errno::ENOTEMPTY);
        }
        let leaving: Vec<&str> = if parent == new_parent { vec![name, new_name] } else { vec![new_name] };
        let cookie = new_dir.plan_cookie(new_name, &leaving)?;

        self.commit_rename(parent, name, new_parent, new_name, source, target, cookie, now_ns);
        Ok(MetaReply::Done)
    }

    /// The state change of a rename whose checks all passed.
    #[allow(clippy::too_many_arguments)]
    fn commit_rename(
        &mut self,
        parent: InodeId,
        name: &str,
        new_parent: InodeId,
        new_name: &str,
        source: Slot,
        target: Option<Slot>,
        cookie: u64,
        now_ns: u64,
    ) {
        let is_dir = source.kind == FileType::Directory;
        if let Some(target) = &target {
            self.dir_mut(new_parent).remove(new_name);
            self.inode_mut(new_parent).attr.size -= 1;
            if is_dir {
                self.inode_mut(new_parent).attr.nlink -= 1;
            }
            self.drop_link(target.ino, now_ns);
        }
        self.dir_mut(parent).remove(name);
        self.inode_mut(parent).attr.size -= 1;
        if is_dir {
            self.inode_mut(parent).attr.nlink -= 1;
            self.inode_mut(new_parent).attr.nlink += 1;
            self.dir_mut(source.ino).parent = new_parent;
        }
        let ino = source.ino;
        self.dir_mut(new_parent).insert(cookie, Slot { name: new_name.to_string(), ..source });
        self.inode_mut(new_parent).attr.size += 1;
        self.touch(parent, true, now_ns);
        self.touch(new_parent, true, now_ns);
        self.touch(ino, false, now_ns);
    }

    /// Whether directory `ancestor` is `ino` or one of its ancestors.
    fn is_ancestor_or_self(&self, ancestor: InodeId, ino: InodeId) -> bool {
        let mut at = ino;
        loop {
            if at == ancestor {
                return true;
            }
            let parent = self.dir(at).expect("ancestors are directories").parent;
            if parent == at {
                return false;
            }
            at = parent;
        }
    }
}
