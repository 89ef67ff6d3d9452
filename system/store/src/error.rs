//! The errors a [`crate::Store`] reports. Each is something a caller must expect; broken invariants panic.

use tessera_env::DiskError;

use crate::ExtentId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Neither superblock sector carries the Tessera store magic: a blank or foreign device.
    #[error(
        "no Tessera store on this device (no store magic in sectors 0 and 1): blank or foreign disk; format it first"
    )]
    NotFormatted,
    /// A valid superblock of another format version.
    #[error(
        "store format version {found} is not supported by this software (supports {supported}); use matching software"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    /// The magic is present but no superblock copy passes its checksum and validation.
    #[error(
        "both superblock copies are damaged (magic present, no copy passes checksum and validation); the device needs repair"
    )]
    CorruptSuperblock,
    /// Checkpoint or journal damage that is not a crash-torn journal tail.
    #[error("store metadata is corrupt: {what}; the device needs repair")]
    CorruptMetadata { what: String },
    /// The device cannot hold the metadata regions plus the minimum data region.
    #[error("device too small: {capacity_bytes} bytes, a store needs at least {minimum_bytes} bytes")]
    DiskTooSmall { capacity_bytes: u64, minimum_bytes: u64 },
    /// The [`crate::StoreConfig`] is out of range.
    #[error("invalid store configuration: {reason}")]
    InvalidConfig { reason: String },
    /// An extent holds at least one byte.
    #[error("empty extent write: an extent holds at least one byte")]
    EmptyWrite,
    /// The extent is longer than the configured maximum.
    #[error("extent of {len_bytes} bytes exceeds the configured maximum of {max_bytes} bytes")]
    ExtentTooLarge { len_bytes: u64, max_bytes: u64 },
    /// No contiguous free run of `needed_bytes` (whole blocks) exists; `free_bytes` is the total free space.
    #[error("no space: need a contiguous run of {needed_bytes} bytes, {free_bytes} bytes free in total")]
    NoSpace { needed_bytes: u64, free_bytes: u64 },
    /// No live extent has this id.
    #[error("{0} not found")]
    NotFound(ExtentId),
    /// The requested byte range is not inside the extent.
    #[error("range {offset_bytes}+{len_bytes} is outside {extent} of {extent_len_bytes} bytes")]
    RangeOutOfBounds { extent: ExtentId, offset_bytes: u64, len_bytes: u64, extent_len_bytes: u64 },
    /// A block failed its checksum on read (or scrub found it bad). No bytes are returned.
    #[error("{extent} block {block_index} is corrupt (checksum mismatch or unreadable); repair from redundancy")]
    Corrupt { extent: ExtentId, block_index: u32 },
    /// The device reported an error (for example an unreadable sector).
    #[error("disk error: {0}")]
    Disk(#[from] DiskError),
    /// A write or flush failed earlier; the store refuses everything until the device is repaired.
    #[error("store fenced after an earlier write or flush failure; reformat the device to repair it")]
    Fenced,
}
