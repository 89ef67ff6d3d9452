//! How one attempt of an operation fails, how that failure becomes the workload's [`OpError`], and the
//! pure helpers the executor decides with (path splitting, read permission).

use tessera_data::client::DataPathError;
use tessera_meta::{Attr, Credentials, Errno, MetaReply};

use crate::op::OpError;

/// Why one attempt of an operation failed, before it is named by its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Fail {
    Errno(Errno),
    /// Not a POSIX answer: a timeout, a data-path failure, a reply of the wrong kind.
    Other(String),
}

impl From<DataPathError> for Fail {
    fn from(e: DataPathError) -> Fail {
        match e {
            DataPathError::Posix(errno) => Fail::Errno(errno),
            other => Fail::Other(other.to_string()),
        }
    }
}

impl Fail {
    /// The operation's error, named by the operation's path: the errnos a workload tells apart get
    /// their own [`OpError`] kind, every other answer is [`OpError::Other`] with its text.
    pub(super) fn into_op_error(self, path: &str) -> OpError {
        let path = path.to_string();
        match self {
            Fail::Errno(Errno::ENOENT) => OpError::NotFound { path },
            Fail::Errno(Errno::EEXIST) => OpError::Exists { path },
            Fail::Errno(Errno::ENOTEMPTY) => OpError::NotEmpty { path },
            Fail::Errno(Errno::EACCES | Errno::EPERM) => OpError::PermissionDenied { path },
            Fail::Errno(errno) => OpError::Other { path, message: errno.to_string() },
            Fail::Other(message) => OpError::Other { path, message },
        }
    }
}

/// A metadata reply of the wrong kind for `op` (a service bug, reported rather than trusted).
pub(super) fn unexpected(op: &str, reply: &MetaReply) -> Fail {
    Fail::Other(format!("unexpected reply to {op}: {reply:?}"))
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`).
pub(super) fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Whether `creds` may read an object with these attributes (`access(R_OK)`): root always may.
pub(super) fn may_read(attr: &Attr, creds: &Credentials) -> bool {
    if creds.is_root() {
        return true;
    }
    let bits = if attr.uid == creds.uid {
        attr.mode >> 6
    } else if creds.in_group(attr.gid) {
        attr.mode >> 3
    } else {
        attr.mode
    };
    bits & 0o4 != 0
}

#[cfg(test)]
mod tests {
    use tessera_meta::{FileType, InodeId};

    use super::*;

    fn attr(mode: u32, uid: u32, gid: u32) -> Attr {
        Attr {
            ino: InodeId::ROOT,
            kind: FileType::Regular,
            mode,
            uid,
            gid,
            size: 0,
            nlink: 1,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            rdev: 0,
        }
    }

    #[test]
    fn split_parent_splits_at_the_last_slash() {
        assert_eq!(split_parent("a/b/c"), ("a/b", "c"));
        assert_eq!(split_parent("c"), ("", "c"));
        assert_eq!(split_parent(""), ("", ""));
        // A trailing slash leaves an empty name: the executor refuses it (EEXIST for make, EBUSY for remove).
        assert_eq!(split_parent("a/"), ("a", ""));
    }

    #[test]
    fn may_read_uses_the_owner_then_the_group_then_the_other_bits() {
        let user = Credentials::user(1000, 100);
        // Owner: only the owner bits count, even when group and other may read.
        assert!(may_read(&attr(0o400, 1000, 5), &user));
        assert!(!may_read(&attr(0o044, 1000, 100), &user));
        // Group (primary or supplementary): the group bits.
        assert!(may_read(&attr(0o040, 1, 100), &user));
        assert!(!may_read(&attr(0o404, 1, 100), &user));
        let mut member = Credentials::user(1000, 100);
        member.groups.push(7);
        assert!(may_read(&attr(0o040, 1, 7), &member));
        // Other: the other bits.
        assert!(may_read(&attr(0o004, 1, 2), &user));
        assert!(!may_read(&attr(0o440, 1, 2), &user));
        // Root reads anything.
        assert!(may_read(&attr(0o000, 1, 2), &Credentials::root()));
    }

    #[test]
    fn errnos_map_to_the_kinds_workloads_tell_apart() {
        let of = |errno| Fail::Errno(errno).into_op_error("d/f");
        assert_eq!(of(Errno::ENOENT), OpError::NotFound { path: "d/f".into() });
        assert_eq!(of(Errno::EEXIST), OpError::Exists { path: "d/f".into() });
        assert_eq!(of(Errno::ENOTEMPTY), OpError::NotEmpty { path: "d/f".into() });
        assert_eq!(of(Errno::EACCES), OpError::PermissionDenied { path: "d/f".into() });
        assert_eq!(of(Errno::EPERM), OpError::PermissionDenied { path: "d/f".into() });
        assert_eq!(of(Errno::EISDIR), OpError::Other { path: "d/f".into(), message: Errno::EISDIR.to_string() });
        let other = Fail::Other("timed out".into()).into_op_error("d/f");
        assert_eq!(other, OpError::Other { path: "d/f".into(), message: "timed out".into() });
    }

    #[test]
    fn data_path_errors_keep_their_errno() {
        assert_eq!(Fail::from(DataPathError::Posix(Errno::ESTALE)), Fail::Errno(Errno::ESTALE));
        assert_eq!(Fail::from(DataPathError::Closed), Fail::Other(DataPathError::Closed.to_string()));
    }
}
