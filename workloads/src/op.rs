//! The operations a workload issues, what they return, and the byte pattern every written byte follows.
//!
//! Operations name files by path relative to the run's root (`a/b/c`, no leading slash). A target turns
//! them into its own calls: `std::fs` for a directory, metadata and data client calls for a cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One file-system operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Make a directory (its parent exists).
    Mkdir { path: String },
    /// Create an empty file (it must not exist).
    Create { path: String },
    /// Create or truncate a file and write `size_bytes` of content `content` from offset 0.
    WriteFile { path: String, size_bytes: u64, content: u64 },
    /// Write `len_bytes` of content `content` at `offset` into an existing file (the file grows as needed).
    Write { path: String, offset: u64, len_bytes: u64, content: u64 },
    /// Read a whole file.
    ReadFile { path: String },
    /// Read `len_bytes` at `offset` (fewer if the file ends first).
    Read { path: String, offset: u64, len_bytes: u64 },
    /// A file's or directory's attributes.
    Stat { path: String },
    /// Check that the caller may read the path (`access(R_OK)`).
    Access { path: String },
    /// Change permission bits.
    Chmod { path: String, mode: u32 },
    /// List a directory's names (without `.` and `..`).
    Readdir { path: String },
    /// Remove a file.
    Unlink { path: String },
    /// Remove an empty directory.
    Rmdir { path: String },
    /// Walk the tree under a directory and count every entry below it (as `find DIR | wc -l` minus one).
    Find { path: String },
}

/// The kind of an operation: what latencies and counts are kept per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Mkdir,
    Create,
    WriteFile,
    Write,
    ReadFile,
    Read,
    Stat,
    Access,
    Chmod,
    Readdir,
    Unlink,
    Rmdir,
    Find,
}

impl OpKind {
    pub const ALL: [OpKind; 13] = [
        OpKind::Mkdir,
        OpKind::Create,
        OpKind::WriteFile,
        OpKind::Write,
        OpKind::ReadFile,
        OpKind::Read,
        OpKind::Stat,
        OpKind::Access,
        OpKind::Chmod,
        OpKind::Readdir,
        OpKind::Unlink,
        OpKind::Rmdir,
        OpKind::Find,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Mkdir => "mkdir",
            OpKind::Create => "create",
            OpKind::WriteFile => "write_file",
            OpKind::Write => "write",
            OpKind::ReadFile => "read_file",
            OpKind::Read => "read",
            OpKind::Stat => "stat",
            OpKind::Access => "access",
            OpKind::Chmod => "chmod",
            OpKind::Readdir => "readdir",
            OpKind::Unlink => "unlink",
            OpKind::Rmdir => "rmdir",
            OpKind::Find => "find",
        }
    }

    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Mkdir { .. } => OpKind::Mkdir,
            Op::Create { .. } => OpKind::Create,
            Op::WriteFile { .. } => OpKind::WriteFile,
            Op::Write { .. } => OpKind::Write,
            Op::ReadFile { .. } => OpKind::ReadFile,
            Op::Read { .. } => OpKind::Read,
            Op::Stat { .. } => OpKind::Stat,
            Op::Access { .. } => OpKind::Access,
            Op::Chmod { .. } => OpKind::Chmod,
            Op::Readdir { .. } => OpKind::Readdir,
            Op::Unlink { .. } => OpKind::Unlink,
            Op::Rmdir { .. } => OpKind::Rmdir,
            Op::Find { .. } => OpKind::Find,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Op::Mkdir { path }
            | Op::Create { path }
            | Op::WriteFile { path, .. }
            | Op::Write { path, .. }
            | Op::ReadFile { path }
            | Op::Read { path, .. }
            | Op::Stat { path }
            | Op::Access { path }
            | Op::Chmod { path, .. }
            | Op::Readdir { path }
            | Op::Unlink { path }
            | Op::Rmdir { path }
            | Op::Find { path } => path,
        }
    }

    /// Bytes this operation writes.
    pub fn bytes_written(&self) -> u64 {
        match self {
            Op::WriteFile { size_bytes, .. } => *size_bytes,
            Op::Write { len_bytes, .. } => *len_bytes,
            _ => 0,
        }
    }
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing to return.
    Done,
    /// Bytes read.
    Bytes(Vec<u8>),
    /// Attributes (stat).
    Attr { size_bytes: u64, mode: u32, is_dir: bool },
    /// Names in a directory, sorted.
    Names(Vec<String>),
    /// Entries counted (find).
    Count(u64),
}

impl Outcome {
    pub fn bytes_read(&self) -> u64 {
        match self {
            Outcome::Bytes(bytes) => bytes.len() as u64,
            _ => 0,
        }
    }
}

/// An operation that failed: the errors a workload can expect, typed, and the rest with their text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: already exists")]
    Exists { path: String },
    #[error("{path}: directory not empty")]
    NotEmpty { path: String },
    #[error("{path}: permission denied")]
    PermissionDenied { path: String },
    #[error("{path}: {message}")]
    Other { path: String, message: String },
}

/// The content every workload writes: byte `offset` of content `content` is a fixed function of the
/// two, so any range read back can be checked without keeping the bytes, and two writers of one shared
/// file with the same content agree on every byte.
pub fn fill(content: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(content ^ (pos / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes();
        let start = (pos % 8) as usize;
        let take = (8 - start).min(buf.len() - i);
        buf[i..i + take].copy_from_slice(&word[start..start + take]);
        i += take;
        pos += take as u64;
    }
}

/// `len` bytes of content `content` from `offset`.
pub fn content_bytes(content: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill(content, offset, &mut buf);
    buf
}

/// The first offset (from `offset`) where `got` differs from content `content`, if any.
pub fn first_mismatch(content: u64, offset: u64, got: &[u8]) -> Option<u64> {
    let mut want = [0u8; 4096];
    for (chunk_index, chunk) in got.chunks(want.len()).enumerate() {
        let at = offset + (chunk_index * want.len()) as u64;
        fill(content, at, &mut want[..chunk.len()]);
        if let Some(i) = chunk.iter().zip(&want[..chunk.len()]).position(|(a, b)| a != b) {
            return Some(at + i as u64);
        }
    }
    None
}

/// splitmix64's finaliser: a cheap, well-spread 64-bit mix.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A small seeded generator for workload choices (splitmix64): deterministic, so a workload on the
/// simulated cluster replays from its seed.
#[derive(Clone, Debug)]
pub struct WorkRng(u64);

impl WorkRng {
    pub fn new(seed: u64) -> WorkRng {
        WorkRng(mix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "WorkRng::below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Index chosen with probability proportional to `weights` (not all zero).
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        assert!(total > 0, "WorkRng::weighted: all weights are zero");
        let mut pick = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        unreachable!("pick below the total weight")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_a_function_of_offset_not_of_how_it_was_cut() {
        let whole = content_bytes(7, 0, 10_000);
        for (offset, len) in [(0, 1), (3, 17), (4095, 2), (8191, 1809)] {
            assert_eq!(content_bytes(7, offset, len), whole[offset as usize..offset as usize + len]);
        }
        assert_ne!(content_bytes(8, 0, 64), whole[..64], "another content differs");
        assert_eq!(first_mismatch(7, 100, &whole[100..9000]), None);
        let mut bad = whole[100..9000].to_vec();
        bad[5000] ^= 1;
        assert_eq!(first_mismatch(7, 100, &bad), Some(5100));
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let mut rng = WorkRng::new(1);
        let mut counts = [0u64; 3];
        for _ in 0..30_000 {
            counts[rng.weighted(&[1, 0, 2])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((19_000..21_000).contains(&counts[2]), "{counts:?}");
    }
}
