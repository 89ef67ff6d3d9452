//! The sequential POSIX namespace reference model: what one file system's metadata must answer when
//! operations ([`tessera_meta::MetaOp`]) are applied one at a time.
//!
//! The shard state machines and the client library are judged against it: a concurrent history of the
//! real system must be explainable as some order of these sequential steps (see
//! [`crate::linearizability`]).
//!
//! Semantics are Linux's where POSIX leaves room, each documented where it is implemented:
//! - names: `""`, `.`, `..`, and names with `/` or NUL are EINVAL for every operation (the client
//!   resolves dots, as the Linux VFS does), over 255 bytes ENAMETOOLONG (`tessera_meta::validate_name`);
//! - an inode id that names no inode is ESTALE; a parent that is not a directory ENOTDIR;
//! - unlink of a directory is EISDIR (POSIX allows EPERM); rename of a directory over a non-directory
//!   ENOTDIR, of a non-directory over a directory EISDIR; rename into the source's own subtree EINVAL,
//!   over an ancestor of the source ENOTEMPTY; rename between two links of one inode does nothing;
//! - permissions follow `generic_permission` (owner, group or other bits; root passes except execute
//!   of a file with no execute bit); the sticky bit restricts removal and renaming to the owner of the
//!   entry or the directory, or root (EPERM);
//! - directories: nlink is 2 + subdirectories, size is the number of entries (as CephFS reports),
//!   readdir omits `.` and `..` (the client adds them) and lists in cookie order;
//! - times: the caller passes `now_ns`; reads never change atime (as with `noatime`);
//! - there are no open files: an inode is freed when its last entry goes;
//! - file contents: see `content` (the shard-addressed data-path operations get fixed replies).

mod attrs;
mod content;
mod dir;
mod entries;
mod namespace;
mod perm;
mod rename;
mod xattr;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_attrs;
#[cfg(test)]
mod tests_entries;
#[cfg(test)]
mod tests_random;
#[cfg(test)]
mod tests_readdir;
#[cfg(test)]
mod tests_rename;

pub use namespace::Namespace;
