//! Permission rules (Linux `generic_permission`, the sticky bit, setgid stripping) as pure functions
//! of an inode's attributes and the caller's credentials.

use crate::{Attr, Credentials, Errno, FileType, MODE_SETGID, MODE_STICKY};

use super::partition::DirAccess;

pub(super) const READ: u32 = 0o4;
pub(super) const WRITE: u32 = 0o2;
pub(super) const SEARCH: u32 = 0o1;

/// EACCES unless `creds` hold every access in `want` (a mask of [`READ`], [`WRITE`], [`SEARCH`]).
/// One class decides: the owner's bits for the owner, the group's for a member, else the others'.
/// Root reads and writes anything, and searches/executes directories and files with any execute bit.
pub(super) fn check_access(attr: &Attr, creds: &Credentials, want: u32) -> Result<(), Errno> {
    check_mode(attr.kind == FileType::Directory, attr.mode, attr.uid, attr.gid, creds, want)
}

/// [`check_access`] on a directory's access attributes (a partition owner's copy).
pub(super) fn check_dir_access(access: &DirAccess, creds: &Credentials, want: u32) -> Result<(), Errno> {
    check_mode(true, access.mode, access.uid, access.gid, creds, want)
}

fn check_mode(is_dir: bool, mode: u32, uid: u32, gid: u32, creds: &Credentials, want: u32) -> Result<(), Errno> {
    let granted = if creds.is_root() {
        let may_exec = is_dir || mode & 0o111 != 0;
        READ | WRITE | if may_exec { SEARCH } else { 0 }
    } else {
        let shift = match () {
            () if creds.uid == uid => 6,
            () if creds.in_group(gid) => 3,
            () => 0,
        };
        (mode >> shift) & 0o7
    };
    if want & !granted == 0 { Ok(()) } else { Err(Errno::EACCES) }
}

pub(super) fn is_owner_or_root(attr: &Attr, creds: &Credentials) -> bool {
    creds.is_root() || attr.uid == creds.uid
}

/// Whether a sticky directory `dir` keeps `creds` from removing or renaming its entry for `child`.
pub(super) fn sticky_forbids(dir: &Attr, child: &Attr, creds: &Credentials) -> bool {
    let sticky = dir.mode & MODE_STICKY != 0;
    sticky && !creds.is_root() && dir.uid != creds.uid && child.uid != creds.uid
}

/// Whether a chown strips a non-directory's setgid bit: always when group-execute is set, otherwise
/// only for a caller who is neither root nor in the file's group.
pub(super) fn chown_strips_setgid(attr: &Attr, creds: &Credentials) -> bool {
    let setgid = attr.mode & MODE_SETGID != 0;
    let group_exec = attr.mode & 0o010 != 0;
    setgid && (group_exec || !(creds.is_root() || creds.in_group(attr.gid)))
}
