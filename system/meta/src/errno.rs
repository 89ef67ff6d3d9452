//! The POSIX errors the metadata service returns, with their Linux numbers.
//!
//! Every metadata operation answers `Result<MetaReply, Errno>`; the client library hands the number to
//! the kernel (FUSE) or to the caller unchanged, so the numbers are Linux's (asm-generic/errno*.h).

use serde::{Deserialize, Serialize};

/// A POSIX error as returned by a metadata operation. The variant names are the C names; [`Errno::code`]
/// gives the Linux number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum Errno {
    /// The caller lacks the privilege (ownership, root) the operation needs; also `link` to a directory
    /// and a sticky-directory removal by someone who owns neither the entry nor the directory.
    #[error("operation not permitted (EPERM)")]
    EPERM,
    /// A name does not exist in its directory.
    #[error("no such file or directory (ENOENT)")]
    ENOENT,
    /// An I/O error inside the service (a replica's disk failed beyond what replication hides).
    #[error("input/output error (EIO)")]
    EIO,
    /// An extended attribute value is larger than [`crate::XATTR_VALUE_LEN_MAX_BYTES`].
    #[error("argument list too long (E2BIG)")]
    E2BIG,
    /// A handle the client holds is not valid for the operation (client library only).
    #[error("bad file descriptor (EBADF)")]
    EBADF,
    /// A key the operation needs is locked by a cross-shard transaction in progress; retry.
    #[error("resource temporarily unavailable (EAGAIN)")]
    EAGAIN,
    /// A permission bit (read, write, search) denies the caller.
    #[error("permission denied (EACCES)")]
    EACCES,
    /// The object is in use (a mount point, a file system being removed).
    #[error("device or resource busy (EBUSY)")]
    EBUSY,
    /// The name already exists, or an extended attribute exists and the caller asked to create it.
    #[error("file exists (EEXIST)")]
    EEXIST,
    /// A rename or link across file systems.
    #[error("invalid cross-device link (EXDEV)")]
    EXDEV,
    /// A component used as a directory is not one.
    #[error("not a directory (ENOTDIR)")]
    ENOTDIR,
    /// A directory where a non-directory is required.
    #[error("is a directory (EISDIR)")]
    EISDIR,
    /// An invalid argument: a bad name, a rename into the source's own subtree, readlink of a non-link.
    #[error("invalid argument (EINVAL)")]
    EINVAL,
    /// A size beyond [`crate::FILE_SIZE_MAX_BYTES`].
    #[error("file too large (EFBIG)")]
    EFBIG,
    /// No space (or no inode ids) left; also a directory whose readdir cookies for one hash are exhausted.
    #[error("no space left on device (ENOSPC)")]
    ENOSPC,
    /// The file system is read-only (snapshots).
    #[error("read-only file system (EROFS)")]
    EROFS,
    /// An inode would exceed [`crate::LINK_MAX`] links.
    #[error("too many links (EMLINK)")]
    EMLINK,
    /// An extended attribute name is empty or longer than [`crate::XATTR_NAME_LEN_MAX_BYTES`].
    #[error("numerical result out of range (ERANGE)")]
    ERANGE,
    /// A name longer than [`crate::NAME_LEN_MAX_BYTES`] or a symlink target longer than
    /// [`crate::SYMLINK_TARGET_LEN_MAX_BYTES`].
    #[error("file name too long (ENAMETOOLONG)")]
    ENAMETOOLONG,
    /// A directory is not empty (rmdir, or rename over it).
    #[error("directory not empty (ENOTEMPTY)")]
    ENOTEMPTY,
    /// Too many symbolic links while resolving a path (client library only).
    #[error("too many levels of symbolic links (ELOOP)")]
    ELOOP,
    /// The extended attribute does not exist (Linux's ENOATTR).
    #[error("no data available (ENODATA)")]
    ENODATA,
    /// The extended attribute namespace is not supported (neither `user.`, `trusted.` nor `security.`).
    #[error("operation not supported (EOPNOTSUPP)")]
    EOPNOTSUPP,
    /// The operation's outcome is unknown: it did not complete in time (it may still take effect).
    #[error("connection timed out (ETIMEDOUT)")]
    ETIMEDOUT,
    /// An inode id that names no inode (it was never allocated, or it was freed).
    #[error("stale file handle (ESTALE)")]
    ESTALE,
}

impl Errno {
    /// Every variant, in declaration order.
    pub const ALL: [Errno; 25] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::EIO,
        Errno::E2BIG,
        Errno::EBADF,
        Errno::EAGAIN,
        Errno::EACCES,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EXDEV,
        Errno::ENOTDIR,
        Errno::EISDIR,
        Errno::EINVAL,
        Errno::EFBIG,
        Errno::ENOSPC,
        Errno::EROFS,
        Errno::EMLINK,
        Errno::ERANGE,
        Errno::ENAMETOOLONG,
        Errno::ENOTEMPTY,
        Errno::ELOOP,
        Errno::ENODATA,
        Errno::EOPNOTSUPP,
        Errno::ETIMEDOUT,
        Errno::ESTALE,
    ];

    /// The Linux error number (x86-64 and arm64 share them).
    pub const fn code(self) -> i32 {
        match self {
            Errno::EPERM => 1,
            Errno::ENOENT => 2,
            Errno::EIO => 5,
            Errno::E2BIG => 7,
            Errno::EBADF => 9,
            Errno::EAGAIN => 11,
            Errno::EACCES => 13,
            Errno::EBUSY => 16,
            Errno::EEXIST => 17,
            Errno::EXDEV => 18,
            Errno::ENOTDIR => 20,
            Errno::EISDIR => 21,
            Errno::EINVAL => 22,
            Errno::EFBIG => 27,
            Errno::ENOSPC => 28,
            Errno::EROFS => 30,
            Errno::EMLINK => 31,
            Errno::ERANGE => 34,
            Errno::ENAMETOOLONG => 36,
            Errno::ENOTEMPTY => 39,
            Errno::ELOOP => 40,
            Errno::ENODATA => 61,
            Errno::EOPNOTSUPP => 95,
            Errno::ETIMEDOUT => 110,
            Errno::ESTALE => 116,
        }
    }

    /// The variant with this Linux number, if the metadata service uses it.
    pub fn from_code(code: i32) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let codes: BTreeSet<i32> = Errno::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), Errno::ALL.len());
        for e in Errno::ALL {
            assert_eq!(Errno::from_code(e.code()), Some(e));
        }
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::ENOENT.code(), 2);
        assert_eq!(Errno::ENOTEMPTY.code(), 39);
        assert_eq!(Errno::ENODATA.code(), 61);
        assert_eq!(Errno::ESTALE.code(), 116);
    }

    #[test]
    fn display_names_the_errno() {
        for e in Errno::ALL {
            assert!(e.to_string().contains(&format!("{e:?}")), "{e:?}: {e}");
        }
    }
}
