//! Permission checks from mode, owner and group, as Linux's `generic_permission` makes them.

use tessera_meta::{Attr, Credentials, Errno, FileType, MODE_SETGID, MODE_STICKY};

pub(super) const MAY_READ: u32 = 0o4;
pub(super) const MAY_WRITE: u32 = 0o2;
pub(super) const MAY_EXEC: u32 = 0o1;

/// Whether `creds` may access `attr` for every bit of `mask` (EACCES if not).
///
/// The owner is judged by the owner bits only, a member of the file's group by the group bits only,
/// everyone else by the other bits. Root may read and write anything, and search/execute a directory
/// or a file with at least one execute bit.
pub(super) fn permission(attr: &Attr, creds: &Credentials, mask: u32) -> Result<(), Errno> {
    if creds.is_root() {
        let exec_denied = mask & MAY_EXEC != 0 && attr.kind != FileType::Directory && attr.mode & 0o111 == 0;
        return if exec_denied { Err(Errno::EACCES) } else { Ok(()) };
    }
    let bits = if creds.uid == attr.uid {
        attr.mode >> 6
    } else if creds.in_group(attr.gid) {
        attr.mode >> 3
    } else {
        attr.mode
    } & 0o7;
    if bits & mask == mask { Ok(()) } else { Err(Errno::EACCES) }
}

/// Owner or root: who may chmod, set explicit times, and so on.
pub(super) fn owner_or_root(attr: &Attr, creds: &Credentials) -> bool {
    creds.is_root() || creds.uid == attr.uid
}

/// Whether the sticky bit of `dir` forbids `creds` to remove or rename its entry for `child`: only the
/// child's owner, the directory's owner or root may.
pub(super) fn sticky_denies(dir: &Attr, child: &Attr, creds: &Credentials) -> bool {
    dir.mode & MODE_STICKY != 0 && !creds.is_root() && creds.uid != dir.uid && creds.uid != child.uid
}

/// The setgid bit a non-directory loses when its owner or group changes (Linux
/// `setattr_should_drop_sgid`): always with group-execute set; without it (a mandatory-locking marker)
/// only if the caller is neither in the file's group nor root.
pub(super) fn drops_sgid(attr: &Attr, creds: &Credentials) -> bool {
    if attr.mode & MODE_SETGID == 0 {
        return false;
    }
    attr.mode & 0o010 != 0 || !(creds.is_root() || creds.in_group(attr.gid))
}
