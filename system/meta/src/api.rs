//! The POSIX metadata operations and their replies: the contract between the client library, the shard
//! state machine and the reference model (`tessera-specs`' `posix::Namespace`).
//!
//! **Names, not paths.** Every operation names an inode by id or a directory entry by (parent inode,
//! one name component), like the FUSE low-level interface and NFS. The client library walks paths, and
//! resolves `.` and `..` itself, as the Linux VFS does before a file system sees a name; see
//! [`crate::validate_name`] for what the service answers when handed such a name.
//!
//! **Time is an input.** No operation reads a clock. Whoever applies an operation passes the wall-clock
//! reading beside it (`apply(op, now_ns)`): the shard leader stamps each log entry with one reading of
//! its `WallClock` when it proposes it, so every replica applies the same times; the reference model
//! takes it from the test. Explicit times a caller sets (utimensat) travel inside [`SetAttr`].
//!
//! **Credentials** ride on every operation that checks permissions; `uid == 0` is root, which passes
//! the read and write checks always and the search/execute check when any execute bit is set (or the
//! object is a directory), and may change ownership.

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;

use crate::content::{FileMap, StripeId, StripeRef, WriteData};

/// Longest name of one directory entry, in bytes (Linux `NAME_MAX`).
pub const NAME_LEN_MAX_BYTES: usize = 255;
/// Longest symbolic-link target, in bytes (Linux `PATH_MAX` less its terminating NUL).
pub const SYMLINK_TARGET_LEN_MAX_BYTES: usize = 4095;
/// Longest extended-attribute name including its namespace prefix, in bytes (Linux `XATTR_NAME_MAX`).
pub const XATTR_NAME_LEN_MAX_BYTES: usize = 255;
/// Largest extended-attribute value, in bytes (Linux `XATTR_SIZE_MAX`).
pub const XATTR_VALUE_LEN_MAX_BYTES: usize = 64 * 1024;
/// Most links an inode may have: hard links of a file, or 2 + subdirectories of a directory.
pub const LINK_MAX: u32 = 65_000;
/// Largest file size (Linux `MAX_LFS_FILESIZE` on 64-bit).
pub const FILE_SIZE_MAX_BYTES: u64 = i64::MAX as u64;

/// Set-user-id bit of [`Attr::mode`].
pub const MODE_SETUID: u32 = 0o4000;
/// Set-group-id bit of [`Attr::mode`]: on a directory, new entries inherit its group (and new
/// subdirectories the bit).
pub const MODE_SETGID: u32 = 0o2000;
/// Sticky bit of [`Attr::mode`]: in a directory, only the owner of an entry, the owner of the
/// directory or root may remove or rename the entry.
pub const MODE_STICKY: u32 = 0o1000;
/// The bits [`Attr::mode`] may hold: permissions plus setuid, setgid and sticky. The file type is
/// [`Attr::kind`], never mode bits.
pub const MODE_MASK: u32 = 0o7777;

/// An inode id: the top 16 bits are the shard that allocated the inode and holds it, the low 48 bits a
/// per-shard counter starting at 1. Ids are never reused; id 0 is never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InodeId(pub u64);

impl InodeId {
    /// How far the shard is shifted up.
    pub const SHARD_SHIFT: u32 = 48;
    /// The largest per-shard counter.
    pub const COUNTER_MAX: u64 = (1 << InodeId::SHARD_SHIFT) - 1;
    /// The root directory of a file system whose root shard is 0: what the reference model and tests
    /// use. A real file system's root is `InodeId::new(root_shard, 1)`.
    pub const ROOT: InodeId = InodeId::new(0, 1);

    /// The id with this shard and per-shard counter. Panics if the counter is 0 or needs more than 48
    /// bits.
    pub const fn new(shard: u16, counter: u64) -> InodeId {
        assert!(counter != 0 && counter <= InodeId::COUNTER_MAX, "inode counter out of range");
        InodeId(((shard as u64) << InodeId::SHARD_SHIFT) | counter)
    }

    /// The shard that holds this inode.
    pub const fn shard(self) -> u16 {
        (self.0 >> InodeId::SHARD_SHIFT) as u16
    }

    /// The per-shard counter.
    pub const fn counter(self) -> u64 {
        self.0 & InodeId::COUNTER_MAX
    }
}

/// What kind of object an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// An inode's attributes, as `stat` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attr {
    pub ino: InodeId,
    pub kind: FileType,
    /// Permission bits with setuid, setgid and sticky ([`MODE_MASK`]); no file-type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes for a regular file, the target's length for a symlink, the number of entries (without `.`
    /// and `..`) for a directory, 0 otherwise.
    pub size: u64,
    /// Directory entries naming a non-directory; 2 + subdirectories for a directory.
    pub nlink: u32,
    pub atime_ns: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
    /// Device number of a character or block device, 0 otherwise.
    pub rdev: u64,
}

/// A time to set with [`SetAttr`], as `utimensat` distinguishes them: setting explicit times needs
/// ownership, setting the current time also write permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SetTime {
    /// The `now_ns` the operation is applied with (`UTIME_NOW`).
    Now,
    /// This time, in nanoseconds since the Unix epoch.
    At(u64),
}

/// The attributes a [`MetaOp::SetAttr`] changes; `None` leaves one unchanged. Applied in the order
/// size, owner and group, mode, times, so a mode given together with an owner change is the final mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetAttr {
    /// New permission bits within [`MODE_MASK`] (chmod).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// New size of a regular file (truncate or extend).
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// Who is asking: the file-system user and groups of the calling process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Credentials {
    /// 0 is root.
    pub uid: u32,
    /// The primary group, given to inodes this caller creates (unless the directory is setgid).
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// uid 0, gid 0, no supplementary groups.
    pub fn root() -> Credentials {
        Credentials { uid: 0, gid: 0, groups: Vec::new() }
    }

    /// A user with a primary group and no supplementary groups.
    pub fn user(uid: u32, gid: u32) -> Credentials {
        Credentials { uid, gid, groups: Vec::new() }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the primary group or one of the supplementary groups.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// How [`MetaOp::SetXattr`] treats an existing attribute (`setxattr` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum XattrFlags {
    /// Create or replace (flags 0).
    Upsert,
    /// Fail with EEXIST if it exists (`XATTR_CREATE`).
    Create,
    /// Fail with ENODATA if it does not exist (`XATTR_REPLACE`).
    Replace,
}

/// One metadata operation. Each is applied atomically and is linearizable; the reply is a
/// `Result<MetaReply, Errno>` ([`MetaResult`]). Modes are permission bits within [`MODE_MASK`] with
/// the caller's umask already applied (bits outside it: EINVAL). Creation is exclusive (EEXIST if the
/// name exists): `open(O_CREAT)` without `O_EXCL` is a lookup or a create, retried by the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetaOp {
    /// The inode `name` in directory `parent` names, and its type. Reply: `Child`. (The attributes
    /// are a `GetAttr` of the inode: an entry and the inode it names may live in different shards, and
    /// a lookup answered from one shard stays a single-shard, linearizable read.)
    Lookup { parent: InodeId, name: String, creds: Credentials },
    /// An inode's attributes; needs no permission. Reply: `Attr`.
    GetAttr { ino: InodeId },
    /// chmod, chown, truncate and utimensat in one. Reply: `Attr` (after the change).
    SetAttr { ino: InodeId, set: SetAttr, creds: Credentials },
    /// A new regular file. Reply: `Entry`.
    Create { parent: InodeId, name: String, mode: u32, creds: Credentials },
    /// A new directory. Reply: `Entry`.
    Mkdir { parent: InodeId, name: String, mode: u32, creds: Credentials },
    /// A new regular file, device, fifo or socket (`kind`); a directory is EPERM, a symlink EINVAL.
    /// Reply: `Entry`.
    Mknod { parent: InodeId, name: String, mode: u32, kind: FileType, rdev: u64, creds: Credentials },
    /// A new symbolic link to `target` (mode 0o777). Reply: `Entry`.
    Symlink { parent: InodeId, name: String, target: String, creds: Credentials },
    /// A symbolic link's target. Reply: `LinkTarget`.
    Readlink { ino: InodeId },
    /// A new name for an existing non-directory. Reply: `Entry` (the inode with its new link count).
    Link { ino: InodeId, new_parent: InodeId, new_name: String, creds: Credentials },
    /// Remove a non-directory's entry; the inode goes when its last link does. Reply: `Done`.
    Unlink { parent: InodeId, name: String, creds: Credentials },
    /// Remove an empty directory. Reply: `Done`.
    Rmdir { parent: InodeId, name: String, creds: Credentials },
    /// Move an entry, atomically replacing the target if it exists (`rename(2)` without flags). Reply:
    /// `Done`.
    Rename { parent: InodeId, name: String, new_parent: InodeId, new_name: String, creds: Credentials },
    /// Up to `max_entries` entries of a directory (`.` and `..` excluded: the client adds them) after
    /// position `cookie` ([`crate::READDIR_START`] for the beginning), in cookie order; resume with the
    /// last returned entry's cookie. Reply: `DirEntries`.
    Readdir { dir: InodeId, cookie: u64, max_entries: u32, creds: Credentials },
    /// Set an extended attribute. Reply: `Done`.
    SetXattr { ino: InodeId, name: String, value: Vec<u8>, flags: XattrFlags, creds: Credentials },
    /// An extended attribute's value. Reply: `Xattr`.
    GetXattr { ino: InodeId, name: String, creds: Credentials },
    /// The names of the extended attributes the caller may see, sorted. Reply: `XattrNames`.
    ListXattr { ino: InodeId, creds: Credentials },
    /// Remove an extended attribute. Reply: `Done`.
    RemoveXattr { ino: InodeId, name: String, creds: Credentials },
    /// Set a regular file's size (`truncate(2)`): the same checks as `SetAttr` with only a size.
    /// Reply: `Attr`.
    Truncate { ino: InodeId, size: u64, creds: Credentials },
    /// Write a regular file's content (docs/design/data-path.md, "File contents in metadata"): the
    /// type (EISDIR, EINVAL), write permission as truncate needs (EACCES), the data
    /// ([`crate::content::check_write`]: EINVAL, EFBIG; an extent naming a stripe in the shard's
    /// garbage queue is EINVAL). Size becomes `max(size, end)`; mtime and ctime are stamped (an empty
    /// inline write changes nothing). For `Extents`, `offset` is the first extent's `file_offset`.
    /// Reply: `Attr`.
    Write { ino: InodeId, offset: u64, data: WriteData, creds: Credentials },
    /// Where a regular file's bytes `[offset, offset + len)` are (EISDIR for a directory, EINVAL for
    /// another type). Reply: `FileMap`.
    ReadMap { ino: InodeId, offset: u64, len: u64 },
    /// The stripe `stripe` as inode `ino` references it (ENOENT if it does not). Reply: `Stripe`.
    GetStripe { ino: InodeId, stripe: StripeId },
    /// Chunk `index` of `stripe` moved from node `from` to `to` (rebuild): ESTALE if the inode is
    /// gone, ENOENT if it no longer references the stripe, EINVAL if the stripe has no chunk `index`,
    /// EAGAIN if the chunk is not on `from`. Reply: `Done`.
    MoveChunk { ino: InodeId, stripe: StripeId, index: u8, from: NodeId, to: NodeId },
    /// Up to `max` (at most [`crate::content::STRIPES_PAGE_MAX`]) stripes referenced by shard
    /// `shard`'s inodes, in `(ino, stripe id)` order, after `after`; EINVAL if `max` is 0. Reply:
    /// `Stripes`.
    ScanStripes { shard: u16, after: Option<(InodeId, StripeId)>, max: u32 },
    /// Up to `max` (at most [`crate::content::STRIPES_PAGE_MAX`]) entries of shard `shard`'s garbage
    /// queue, oldest first, not removed; EINVAL if `max` is 0. Reply: `Garbage`.
    TakeGarbage { shard: u16, max: u32 },
    /// Remove entries of shard `shard`'s garbage queue (unknown sequence numbers are ignored). Reply:
    /// `Done`.
    ReleaseGarbage { shard: u16, seqs: Vec<u64> },
}

impl MetaOp {
    /// Whether the operation never changes the namespace (a shard may serve it from a leader lease).
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            MetaOp::Lookup { .. }
                | MetaOp::GetAttr { .. }
                | MetaOp::Readlink { .. }
                | MetaOp::Readdir { .. }
                | MetaOp::GetXattr { .. }
                | MetaOp::ListXattr { .. }
                | MetaOp::ReadMap { .. }
                | MetaOp::GetStripe { .. }
                | MetaOp::ScanStripes { .. }
                | MetaOp::TakeGarbage { .. }
        )
    }

    /// The shard a shard-addressed operation (`ScanStripes`, `TakeGarbage`, `ReleaseGarbage`) goes
    /// to; `None` for the others, which name inodes.
    pub fn target_shard(&self) -> Option<u16> {
        match self {
            MetaOp::ScanStripes { shard, .. }
            | MetaOp::TakeGarbage { shard, .. }
            | MetaOp::ReleaseGarbage { shard, .. } => Some(*shard),
            _ => None,
        }
    }

    /// The inode ids the operation names, in order (the one whose shard is the operation's home
    /// first). Shard-addressed operations name none (except `after` of a `ScanStripes`, which is a
    /// position, not a key: not listed).
    pub fn inodes(&self) -> Vec<InodeId> {
        let mut op = self.clone();
        op.inode_fields().into_iter().map(|ino| *ino).collect()
    }

    /// The operation with every inode id it names passed through `f` (e.g. into a model's ids).
    pub fn map_inodes(&self, mut f: impl FnMut(InodeId) -> InodeId) -> MetaOp {
        let mut op = self.clone();
        for ino in op.inode_fields() {
            *ino = f(*ino);
        }
        op
    }

    fn inode_fields(&mut self) -> Vec<&mut InodeId> {
        match self {
            MetaOp::Lookup { parent, .. }
            | MetaOp::Create { parent, .. }
            | MetaOp::Mkdir { parent, .. }
            | MetaOp::Mknod { parent, .. }
            | MetaOp::Symlink { parent, .. }
            | MetaOp::Unlink { parent, .. }
            | MetaOp::Rmdir { parent, .. } => vec![parent],
            MetaOp::GetAttr { ino }
            | MetaOp::SetAttr { ino, .. }
            | MetaOp::Readlink { ino }
            | MetaOp::SetXattr { ino, .. }
            | MetaOp::GetXattr { ino, .. }
            | MetaOp::ListXattr { ino, .. }
            | MetaOp::RemoveXattr { ino, .. }
            | MetaOp::Truncate { ino, .. }
            | MetaOp::Write { ino, .. }
            | MetaOp::ReadMap { ino, .. }
            | MetaOp::GetStripe { ino, .. }
            | MetaOp::MoveChunk { ino, .. } => vec![ino],
            MetaOp::Readdir { dir, .. } => vec![dir],
            MetaOp::Link { ino, new_parent, .. } => vec![ino, new_parent],
            MetaOp::Rename { parent, new_parent, .. } => vec![parent, new_parent],
            MetaOp::ScanStripes { .. } | MetaOp::TakeGarbage { .. } | MetaOp::ReleaseGarbage { .. } => vec![],
        }
    }
}

/// One directory entry returned by [`MetaOp::Readdir`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub ino: InodeId,
    pub kind: FileType,
    /// This entry's position: a `Readdir` from this cookie continues after it.
    pub cookie: u64,
}

/// A successful operation's answer (which operation gives which is documented on [`MetaOp`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetaReply {
    /// The inode a name now refers to, with its attributes (the creating operations and link).
    Entry(Attr),
    /// The inode an entry names and its type (lookup).
    Child { ino: InodeId, kind: FileType },
    /// An inode's attributes.
    Attr(Attr),
    /// A symbolic link's target.
    LinkTarget(String),
    /// A page of a directory; `eof` when no entry follows the last one returned.
    DirEntries { entries: Vec<DirEntry>, eof: bool },
    /// An extended attribute's value.
    Xattr(Vec<u8>),
    /// Extended attribute names.
    XattrNames(Vec<String>),
    /// Success with nothing to return.
    Done,
    /// Where a range of a file's bytes are.
    FileMap(FileMap),
    /// One stripe as an inode references it.
    Stripe(StripeRef),
    /// A page of the stripes a shard's inodes reference; `next` is the position to resume after
    /// (`None`: the scan is complete).
    Stripes { stripes: Vec<(InodeId, StripeRef)>, next: Option<(InodeId, StripeId)> },
    /// Entries of a shard's garbage queue: (sequence number, stripe), oldest first.
    Garbage(Vec<(u64, StripeRef)>),
}

/// The outcome of one metadata operation.
pub type MetaResult = Result<MetaReply, crate::Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_id_packs_shard_and_counter() {
        let ino = InodeId::new(0xBEEF, 42);
        assert_eq!(ino.shard(), 0xBEEF);
        assert_eq!(ino.counter(), 42);
        assert_eq!(ino.0, 0xBEEF_0000_0000_002A);
        assert_eq!(InodeId::ROOT, InodeId(1));
        assert_eq!(InodeId::new(u16::MAX, InodeId::COUNTER_MAX).0, u64::MAX);
    }

    #[test]
    #[should_panic(expected = "inode counter out of range")]
    fn inode_counter_zero_is_rejected() {
        let _ = InodeId::new(3, 0);
    }

    #[test]
    fn credentials_groups() {
        let c = Credentials { uid: 5, gid: 10, groups: vec![20, 30] };
        assert!(c.in_group(10) && c.in_group(30) && !c.in_group(40));
        assert!(!c.is_root() && Credentials::root().is_root());
    }

    #[test]
    fn read_only_ops() {
        assert!(MetaOp::GetAttr { ino: InodeId::ROOT }.is_read_only());
        let unlink = MetaOp::Unlink { parent: InodeId::ROOT, name: "a".into(), creds: Credentials::root() };
        assert!(!unlink.is_read_only());
        assert!(MetaOp::ReadMap { ino: InodeId::ROOT, offset: 0, len: 1 }.is_read_only());
        assert!(MetaOp::TakeGarbage { shard: 3, max: 1 }.is_read_only());
        assert!(!MetaOp::ReleaseGarbage { shard: 3, seqs: vec![] }.is_read_only());
        let write = MetaOp::Write {
            ino: InodeId::ROOT,
            offset: 0,
            data: WriteData::Inline(vec![]),
            creds: Credentials::root(),
        };
        assert!(!write.is_read_only());
        assert_eq!(MetaOp::ScanStripes { shard: 3, after: None, max: 1 }.target_shard(), Some(3));
        assert_eq!(write.target_shard(), None);
    }
}
