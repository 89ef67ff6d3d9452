//! Extended attributes in the `user.`, `trusted.` and `security.` namespaces, with Linux's
//! `xattr_permission` rules.
//!
//! Checks, in Linux's order: the name's length (ERANGE if empty or over `XATTR_NAME_LEN_MAX_BYTES`)
//! and, for a set, the value's (E2BIG over `XATTR_VALUE_LEN_MAX_BYTES`); the namespace's permission
//! rule; the namespace itself (EOPNOTSUPP if unknown, EINVAL for a bare prefix such as `user.`); then
//! existence (EEXIST for [`XattrFlags::Create`], ENODATA for a replace, get or remove of a missing one).
//! `system.` (POSIX ACLs) is not supported. A set or remove changes the inode's ctime.

use tessera_meta::{
    Attr, Credentials, Errno, FileType, InodeId, MetaReply, MetaResult, XATTR_NAME_LEN_MAX_BYTES,
    XATTR_VALUE_LEN_MAX_BYTES, XattrFlags,
};

use super::namespace::Namespace;
use super::perm::{MAY_READ, MAY_WRITE, owner_or_root, permission};

/// The namespaces the model supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum XattrNamespace {
    /// `user.`: read and write permission of the inode; regular files and directories only.
    User,
    /// `trusted.`: root only, invisible to everyone else.
    Trusted,
    /// `security.`: anyone may read, root may write (no security module).
    Security,
}

const PREFIXES: [(&str, XattrNamespace); 3] =
    [("user.", XattrNamespace::User), ("trusted.", XattrNamespace::Trusted), ("security.", XattrNamespace::Security)];

/// The namespace of a well-formed name (length within limits, known prefix, non-empty suffix).
pub(super) fn namespace_of(name: &str) -> Result<XattrNamespace, Errno> {
    check_name_len(name)?;
    let (prefix, ns) = PREFIXES.iter().find(|(p, _)| name.starts_with(p)).ok_or(Errno::EOPNOTSUPP)?;
    if name.len() == prefix.len() {
        return Err(Errno::EINVAL);
    }
    Ok(*ns)
}

fn check_name_len(name: &str) -> Result<(), Errno> {
    if name.is_empty() || name.len() > XATTR_NAME_LEN_MAX_BYTES { Err(Errno::ERANGE) } else { Ok(()) }
}

/// Linux `xattr_permission` for `mask` (MAY_READ or MAY_WRITE), then the namespace.
fn xattr_permission(attr: &Attr, name: &str, creds: &Credentials, mask: u32) -> Result<XattrNamespace, Errno> {
    let write = mask & MAY_WRITE != 0;
    let denied = if write { Errno::EPERM } else { Errno::ENODATA };
    let prefix = PREFIXES.iter().find(|(p, _)| name.starts_with(p)).map(|(_, ns)| *ns);
    match prefix {
        Some(XattrNamespace::Security) => {
            if write && !creds.is_root() {
                return Err(Errno::EPERM);
            }
        }
        Some(XattrNamespace::Trusted) => {
            if !creds.is_root() {
                return Err(denied);
            }
        }
        Some(XattrNamespace::User) => {
            if !matches!(attr.kind, FileType::Regular | FileType::Directory) {
                return Err(denied);
            }
            let sticky_dir = attr.kind == FileType::Directory && attr.mode & tessera_meta::MODE_STICKY != 0;
            if sticky_dir && write && !owner_or_root(attr, creds) {
                return Err(Errno::EPERM);
            }
            permission(attr, creds, mask)?;
        }
        None => permission(attr, creds, mask)?,
    }
    namespace_of(name)
}

impl Namespace {
    pub(super) fn set_xattr(
        &mut self,
        ino: InodeId,
        name: &str,
        value: &[u8],
        flags: XattrFlags,
        creds: &Credentials,
        now_ns: u64,
    ) -> MetaResult {
        let inode = self.inode(ino)?;
        check_name_len(name)?;
        if value.len() > XATTR_VALUE_LEN_MAX_BYTES {
            return Err(Errno::E2BIG);
        }
        xattr_permission(&inode.attr, name, creds, MAY_WRITE)?;
        match (flags, inode.xattrs.contains_key(name)) {
            (XattrFlags::Create, true) => return Err(Errno::EEXIST),
            (XattrFlags::Replace, false) => return Err(Errno::ENODATA),
            _ => {}
        }
        self.inode_mut(ino).xattrs.insert(name.to_string(), value.to_vec());
        self.touch(ino, false, now_ns);
        Ok(MetaReply::Done)
    }

    pub(super) fn get_xattr(&self, ino: InodeId, name: &str, creds: &Credentials) -> MetaResult {
        let inode = self.inode(ino)?;
        check_name_len(name)?;
        xattr_permission(&inode.attr, name, creds, MAY_READ)?;
        inode.xattrs.get(name).map(|v| MetaReply::Xattr(v.clone())).ok_or(Errno::ENODATA)
    }

    /// Names in byte order; `trusted.` names only for root. Needs no permission, like Linux.
    pub(super) fn list_xattr(&self, ino: InodeId, creds: &Credentials) -> MetaResult {
        let inode = self.inode(ino)?;
        let visible = |name: &&String| creds.is_root() || !name.starts_with("trusted.");
        Ok(MetaReply::XattrNames(inode.xattrs.keys().filter(visible).cloned().collect()))
    }

    pub(super) fn remove_xattr(&mut self, ino: InodeId, name: &str, creds: &Credentials, now_ns: u64) -> MetaResult {
        let inode = self.inode(ino)?;
        check_name_len(name)?;
        xattr_permission(&inode.attr, name, creds, MAY_WRITE)?;
        if !inode.xattrs.contains_key(name) {
            return Err(Errno::ENODATA);
        }
        self.inode_mut(ino).xattrs.remove(name);
        self.touch(ino, false, now_ns);
        Ok(MetaReply::Done)
    }
}
