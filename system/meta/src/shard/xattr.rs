//! Extended attributes (`user.`, `trusted.`, `security.`) with Linux's `xattr_permission` rules.
//!
//! Checks in order: the name's length (ERANGE: empty or over the limit), a set's value size (E2BIG),
//! the namespace's permission rule, the namespace (EOPNOTSUPP unknown, EINVAL a bare prefix), then
//! existence (EEXIST for a create, ENODATA for a replace, get or remove of a missing one). A set or
//! remove stamps the inode's ctime.

use crate::{
    Attr, Credentials, Errno, FileType, InodeId, MODE_STICKY, MetaReply, XATTR_NAME_LEN_MAX_BYTES,
    XATTR_VALUE_LEN_MAX_BYTES, XattrFlags,
};

use super::Step;
use super::perm::{READ, WRITE, check_access, is_owner_or_root};
use super::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    User,
    Trusted,
    Security,
}

/// The namespace a name's prefix names, if any.
fn prefix_space(name: &str) -> Option<(Space, usize)> {
    [("user.", Space::User), ("trusted.", Space::Trusted), ("security.", Space::Security)]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(prefix, space)| (space, prefix.len()))
}

fn check_name_len(name: &str) -> Result<(), Errno> {
    if (1..=XATTR_NAME_LEN_MAX_BYTES).contains(&name.len()) { Ok(()) } else { Err(Errno::ERANGE) }
}

/// A stored name's namespace: known prefix and a non-empty rest.
pub(super) fn space_of(name: &str) -> Result<Space, Errno> {
    check_name_len(name)?;
    match prefix_space(name) {
        None => Err(Errno::EOPNOTSUPP),
        Some((_, len)) if len == name.len() => Err(Errno::EINVAL),
        Some((space, _)) => Ok(space),
    }
}

/// May `creds` read (`write == false`) or write the attribute `name` of `attr`'s inode?
fn allowed(attr: &Attr, name: &str, creds: &Credentials, write: bool) -> Result<(), Errno> {
    let refused = if write { Errno::EPERM } else { Errno::ENODATA };
    let want = if write { WRITE } else { READ };
    match prefix_space(name).map(|(space, _)| space) {
        Some(Space::Security) if write && !creds.is_root() => return Err(Errno::EPERM),
        Some(Space::Security) => {}
        Some(Space::Trusted) if !creds.is_root() => return Err(refused),
        Some(Space::Trusted) => {}
        Some(Space::User) => {
            if !matches!(attr.kind, FileType::Regular | FileType::Directory) {
                return Err(refused);
            }
            let sticky_dir = attr.kind == FileType::Directory && attr.mode & MODE_STICKY != 0;
            if write && sticky_dir && !is_owner_or_root(attr, creds) {
                return Err(Errno::EPERM);
            }
            check_access(attr, creds, want)?;
        }
        None => check_access(attr, creds, want)?,
    }
    space_of(name).map(|_| ())
}

pub(super) fn set_xattr<S: Store>(
    s: &mut S,
    ino: InodeId,
    name: &str,
    value: &[u8],
    flags: XattrFlags,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let record = s.inode(ino)?;
    check_name_len(name)?;
    if value.len() > XATTR_VALUE_LEN_MAX_BYTES {
        return Err(Errno::E2BIG.into());
    }
    allowed(&record.attr, name, creds, true)?;
    let exists = record.xattrs.contains_key(name);
    if flags == XattrFlags::Create && exists {
        return Err(Errno::EEXIST.into());
    }
    if flags == XattrFlags::Replace && !exists {
        return Err(Errno::ENODATA.into());
    }
    s.inode_mut(ino).xattrs.insert(name.to_string(), value.to_vec());
    s.stamp(ino, false, now);
    Ok(MetaReply::Done)
}

pub(super) fn get_xattr<S: Store>(s: &S, ino: InodeId, name: &str, creds: &Credentials) -> Step<MetaReply> {
    let record = s.inode(ino)?;
    check_name_len(name)?;
    allowed(&record.attr, name, creds, false)?;
    let value = record.xattrs.get(name).ok_or(Errno::ENODATA)?;
    Ok(MetaReply::Xattr(value.clone()))
}

/// The names in byte order, `trusted.` ones for root only; needs no permission.
pub(super) fn list_xattr<S: Store>(s: &S, ino: InodeId, creds: &Credentials) -> Step<MetaReply> {
    let record = s.inode(ino)?;
    let names = record.xattrs.keys().filter(|n| creds.is_root() || !n.starts_with("trusted.")).cloned().collect();
    Ok(MetaReply::XattrNames(names))
}

pub(super) fn remove_xattr<S: Store>(
    s: &mut S,
    ino: InodeId,
    name: &str,
    creds: &Credentials,
    now: u64,
) -> Step<MetaReply> {
    let record = s.inode(ino)?;
    check_name_len(name)?;
    allowed(&record.attr, name, creds, true)?;
    if !record.xattrs.contains_key(name) {
        return Err(Errno::ENODATA.into());
    }
    s.inode_mut(ino).xattrs.remove(name);
    s.stamp(ino, false, now);
    Ok(MetaReply::Done)
}
