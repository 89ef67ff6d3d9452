//! What a shard stores: inode records and directory-entry records, the values of its two key spaces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content::FileContent;
use crate::{Attr, FileType, InodeId};

/// One inode held by the shard (key: its [`InodeId`], whose top bits name this shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeRecord {
    pub attr: Attr,
    /// A directory's `..`: the directory holding its entry (the root's is itself). `None` for every
    /// other type. It may name an inode of another shard.
    pub parent: Option<InodeId>,
    /// A symbolic link's target; `None` for every other type.
    pub symlink_target: Option<String>,
    /// Extended attributes by full name (`user.x`), in byte order.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// A regular file's bytes (inline layer and extents); empty for every other type.
    pub content: FileContent,
}

/// One directory entry (key: `(parent directory, cookie)`). The child's type is copied here (it is
/// fixed for the inode's lifetime) so that readdir needs no inode, which may live in another shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub name: String,
    pub ino: InodeId,
    pub kind: FileType,
}

impl InodeRecord {
    pub fn is_dir(&self) -> bool {
        self.attr.kind == FileType::Directory
    }
}
