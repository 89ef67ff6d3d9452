//! Between the service's types and the kernel's: inode numbers, attributes, file types, errors, times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_data::client::DataPathError;
use tessera_meta::client::ClientError;
use tessera_meta::{Attr, Errno, FileType, InodeId, MODE_MASK};

/// The kernel's number of the mount's root directory.
pub const FUSE_ROOT_ID: u64 = 1;
/// The block size `stat` reports: `cp` and friends size their buffers by it, and a stripe is 1 MiB or more.
pub const BLOCK_SIZE_BYTES: u32 = 1024 * 1024;

/// Inode numbers: the file system's root is the kernel's 1; every other inode keeps its id. Id 1 of the
/// service is the global root, which is never inside a file system, so the two never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InoMap {
    pub root: InodeId,
}

impl InoMap {
    pub fn to_kernel(self, ino: InodeId) -> u64 {
        if ino == self.root { FUSE_ROOT_ID } else { ino.0 }
    }

    pub fn from_kernel(self, ino: u64) -> InodeId {
        if ino == FUSE_ROOT_ID { self.root } else { InodeId(ino) }
    }
}

pub fn kind(kind: FileType) -> fuser::FileType {
    match kind {
        FileType::Regular => fuser::FileType::RegularFile,
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::Socket => fuser::FileType::Socket,
    }
}

/// The service's type of a `mknod` mode's file-type bits; `None` for a type mknod cannot make.
pub fn kind_of_mode(mode: u32) -> Option<FileType> {
    match mode & libc::S_IFMT {
        libc::S_IFREG | 0 => Some(FileType::Regular),
        libc::S_IFCHR => Some(FileType::CharDevice),
        libc::S_IFBLK => Some(FileType::BlockDevice),
        libc::S_IFIFO => Some(FileType::Fifo),
        libc::S_IFSOCK => Some(FileType::Socket),
        _ => None,
    }
}

pub fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Nanoseconds since the epoch of a time the kernel sent (times before 1970 clamp to 0).
pub fn ns_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The kernel's attributes of `attr`, with `size` (which may include bytes still being written back).
pub fn file_attr(map: InoMap, attr: &Attr, size: u64) -> fuser::FileAttr {
    fuser::FileAttr {
        ino: map.to_kernel(attr.ino),
        size,
        blocks: size.div_ceil(512),
        atime: time(attr.atime_ns),
        mtime: time(attr.mtime_ns),
        ctime: time(attr.ctime_ns),
        crtime: time(attr.ctime_ns),
        kind: kind(attr.kind),
        perm: (attr.mode & MODE_MASK) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev as u32,
        blksize: BLOCK_SIZE_BYTES,
        flags: 0,
    }
}

/// The errno the kernel gets for a metadata failure: the service's own answer, else EIO (no answer in
/// time: the operation's retries could not hide a failure).
pub fn meta_errno(e: &ClientError) -> i32 {
    match e {
        ClientError::Posix(errno) => errno.code(),
        ClientError::InvalidPath { .. } => libc::EINVAL,
        ClientError::NoSuchShard { .. } => libc::ESTALE,
        _ => libc::EIO,
    }
}

/// The errno the kernel gets for a data-path failure.
pub fn data_errno(e: &DataPathError) -> i32 {
    match e {
        DataPathError::Posix(errno) => errno.code(),
        DataPathError::Meta(e) | DataPathError::OutcomeUnknown(e) => meta_errno(e),
        _ => libc::EIO,
    }
}

/// An error the kernel can take: a positive errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail(pub i32);

impl From<Errno> for Fail {
    fn from(e: Errno) -> Fail {
        Fail(e.code())
    }
}

impl From<&ClientError> for Fail {
    fn from(e: &ClientError) -> Fail {
        Fail(meta_errno(e))
    }
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        Fail(meta_errno(&e))
    }
}

impl From<DataPathError> for Fail {
    fn from(e: DataPathError) -> Fail {
        Fail(data_errno(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_to_one_and_back() {
        let map = InoMap { root: InodeId::new(7, 3) };
        assert_eq!(map.to_kernel(map.root), FUSE_ROOT_ID);
        assert_eq!(map.from_kernel(FUSE_ROOT_ID), map.root);
        let other = InodeId::new(2, 9);
        assert_eq!(map.from_kernel(map.to_kernel(other)), other);
    }

    #[test]
    fn errors_keep_the_service_errno_and_hide_nothing_else() {
        assert_eq!(meta_errno(&ClientError::Posix(Errno::ENOTEMPTY)), libc::ENOTEMPTY);
        assert_eq!(meta_errno(&ClientError::Timeout { shard: Some(1), attempts: 3, elapsed_ms: 9 }), libc::EIO);
        assert_eq!(data_errno(&DataPathError::Posix(Errno::ENOSPC)), libc::ENOSPC);
        assert_eq!(data_errno(&DataPathError::Closed), libc::EIO);
    }

    #[test]
    fn mknod_types() {
        assert_eq!(kind_of_mode(libc::S_IFIFO | 0o644), Some(FileType::Fifo));
        assert_eq!(kind_of_mode(libc::S_IFDIR | 0o755), None);
        assert_eq!(kind_of_mode(0o644), Some(FileType::Regular));
    }
}
