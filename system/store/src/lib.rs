//! The per-drive storage engine: immutable, checksummed extents on one [`tessera_env::Disk`].
//!
//! A [`Store`] owns one device. It hands out [`ExtentId`]s for written extents, reads them back verified
//! block by block (CRC32C per 4 KiB block), frees them, and survives any crash: an acknowledged write or
//! free is durable, and recovery never presents torn, corrupt or unacknowledged bytes as data.
//!
//! On-disk layout (byte by byte in `docs/formats/store.md`): two superblock copies, two checkpoint areas
//! (the full extent table), a journal of commit/free records, then the data region.
//!
//! Call order: [`Store::format`] once per device (destroys contents), then [`Store::open`] after every
//! boot (runs crash recovery). All operations take `&mut self` or `&self`: one caller at a time, so
//! journal entries are strictly serialized. A failed disk write or flush fences the store: every later
//! operation returns [`StoreError::Fenced`] until the device is repaired (reformatted).

mod alloc;
mod checkpoint;
mod codec;
mod error;
mod journal;
mod layout;
mod record;
mod recovery;
mod scrub;
mod store;
mod superblock;

#[cfg(test)]
mod testdisk;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_format;

pub use error::StoreError;
pub use scrub::{BadBlock, BadBlockReason, ScrubCursor, ScrubReport};
pub use store::{Store, StoreStats};

use core::fmt;

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Identifies one extent on one device. Ids are never reused within a format of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtentId(pub u64);

impl fmt::Display for ExtentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "extent#{}", self.0)
    }
}

/// Who this device is: written at format time into every superblock; the device id is also stamped into
/// every checkpoint and journal entry so metadata from another device or format is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub cluster_id: u128,
    pub device_id: u128,
}

/// Format-time configuration (persisted in the superblock; `open` takes nothing).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Largest extent accepted by `write_extent`, in bytes. Default 4 MiB; at most 64 MiB.
    pub max_extent_bytes: u32,
    /// Journal region size in bytes (a multiple of 4096 in 64 KiB..=256 MiB). `None`: derived from the
    /// capacity, `clamp(capacity / 32, 256 KiB, 64 MiB)` rounded down to whole blocks.
    pub journal_bytes: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig { max_extent_bytes: 4 * 1024 * 1024, journal_bytes: None }
    }
}

/// The blocks of the journal of a device of `capacity_bytes` formatted with a journal of `journal_bytes`
/// (`None` if no such layout exists). For fault injectors that crash a drive during a journal commit.
pub fn journal_region_blocks(capacity_bytes: u64, journal_bytes: u64) -> Option<std::ops::Range<u64>> {
    let layout = layout::Layout::compute(capacity_bytes, journal_bytes / layout::BLOCK_BYTES).ok()?;
    Some(layout.journal_start_block..layout.data_start_block)
}

/// The blocks of the data region of a device of `capacity_bytes` formatted with a journal of
/// `journal_bytes` (`None` if no such layout exists). For fault injectors that damage data blocks but
/// not the store's own metadata.
pub fn data_region_blocks(capacity_bytes: u64, journal_bytes: u64) -> Option<std::ops::Range<u64>> {
    let layout = layout::Layout::compute(capacity_bytes, journal_bytes / layout::BLOCK_BYTES).ok()?;
    Some(layout.data_start_block..layout.data_end_block())
}
