//! Tessera's POSIX metadata API: the operations a metadata shard applies and what they answer.
//!
//! - [`api`]: inode ids, attributes, credentials, [`MetaOp`] and [`MetaReply`], and the limits.
//! - [`errno`]: [`Errno`], the POSIX errors with their Linux numbers.
//! - [`name`]: which entry names are valid, [`name_hash`] and the readdir cookies built from it.
//!
//! The shard state machine, the client library and the reference model in `tessera-specs` all speak
//! these types, so a history recorded from the real system can be checked against the model as is.

pub mod api;
pub mod client;
pub mod content;
pub mod errno;
pub mod exec;
pub mod host;
pub mod local;
pub mod name;
pub mod shard;
pub mod wire;

pub use api::{
    Attr, Credentials, DirEntry, FILE_SIZE_MAX_BYTES, FileType, InodeId, LINK_MAX, MODE_MASK, MODE_SETGID, MODE_SETUID,
    MODE_STICKY, MetaOp, MetaReply, MetaResult, NAME_LEN_MAX_BYTES, SYMLINK_TARGET_LEN_MAX_BYTES, SetAttr, SetTime,
    XATTR_NAME_LEN_MAX_BYTES, XATTR_VALUE_LEN_MAX_BYTES, XattrFlags,
};
pub use errno::Errno;
pub use exec::{Next, OpDriver};
pub use local::LocalCluster;
pub use name::{READDIR_START, assign_cookie, candidate_cookies, cookie_matches, name_hash, validate_name};
