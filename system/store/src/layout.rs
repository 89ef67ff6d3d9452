//! Where each region lives on the device, as a pure function of the capacity and the journal size.
//!
//! ```text
//! block 0                superblock copy A (generation even)
//! block 1                superblock copy B (generation odd)
//! block 2                checkpoint area A (checkpoint_blocks)
//! 2 + checkpoint_blocks  checkpoint area B (checkpoint_blocks)
//! journal_start_block    journal (journal_blocks)
//! data_start_block       data (data_blocks), then at most a few unused slack blocks
//! ```
//! A checkpoint area holds the worst case table: every data block its own one-block extent.

use tessera_env::SECTOR_SIZE_BYTES;

use crate::{checkpoint, journal};

/// The engine's unit of allocation and checksumming: one disk sector.
pub(crate) const BLOCK_BYTES: u64 = 4096;
pub(crate) const BLOCK_BYTES_USIZE: usize = BLOCK_BYTES as usize;
const _: () = assert!(BLOCK_BYTES_USIZE == SECTOR_SIZE_BYTES);

/// Blocks 0 and 1 hold the two superblock copies.
pub(crate) const SUPERBLOCK_COPIES: u64 = 2;
/// A store with fewer data blocks than this is refused as [`crate::StoreError::DiskTooSmall`].
pub(crate) const MIN_DATA_BLOCKS: u64 = 16;
/// Smallest journal `StoreConfig::journal_bytes` may ask for.
pub(crate) const MIN_JOURNAL_BYTES: u64 = 64 * 1024;
/// Largest journal `StoreConfig::journal_bytes` may ask for (recovery reads the whole journal).
pub(crate) const MAX_JOURNAL_BYTES: u64 = 256 * 1024 * 1024;
/// Bounds of the derived journal size `capacity / 32`.
pub(crate) const DEFAULT_JOURNAL_MIN_BYTES: u64 = 256 * 1024;
pub(crate) const DEFAULT_JOURNAL_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// A journal entry is at most this many blocks (and at most half the journal).
pub(crate) const MAX_ENTRY_BLOCKS: u64 = 256;
/// Largest `StoreConfig::max_extent_bytes`.
pub(crate) const MAX_EXTENT_BYTES_LIMIT: u32 = 64 * 1024 * 1024;

const _: () = assert!(MIN_JOURNAL_BYTES.is_multiple_of(BLOCK_BYTES) && MAX_JOURNAL_BYTES.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(DEFAULT_JOURNAL_MIN_BYTES >= MIN_JOURNAL_BYTES);
const _: () = assert!(DEFAULT_JOURNAL_MAX_BYTES <= MAX_JOURNAL_BYTES);
const _: () = assert!(MAX_ENTRY_BLOCKS * 2 <= DEFAULT_JOURNAL_MAX_BYTES / BLOCK_BYTES);

/// Number of blocks needed to hold `len_bytes`.
pub(crate) fn blocks_for_bytes(len_bytes: u64) -> u64 {
    len_bytes.div_ceil(BLOCK_BYTES)
}

/// The journal size used when `StoreConfig::journal_bytes` is `None`.
pub(crate) fn default_journal_blocks(capacity_bytes: u64) -> u64 {
    let bytes = (capacity_bytes / 32).clamp(DEFAULT_JOURNAL_MIN_BYTES, DEFAULT_JOURNAL_MAX_BYTES);
    bytes / BLOCK_BYTES
}

/// Blocks of one checkpoint area for a data region of `data_blocks` (worst case table).
pub(crate) fn checkpoint_area_blocks(data_blocks: u64) -> u64 {
    blocks_for_bytes(checkpoint::max_encoded_bytes(data_blocks))
}

/// The region layout of one formatted device. All positions are absolute block numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) capacity_bytes: u64,
    pub(crate) checkpoint_blocks: u64,
    pub(crate) journal_start_block: u64,
    pub(crate) journal_blocks: u64,
    pub(crate) data_start_block: u64,
    pub(crate) data_blocks: u64,
}

impl Layout {
    /// The layout for a device of `capacity_bytes` with a journal of `journal_blocks`, maximizing the data
    /// region. `Err(minimum_bytes)` if the data region would be smaller than [`MIN_DATA_BLOCKS`].
    pub(crate) fn compute(capacity_bytes: u64, journal_blocks: u64) -> Result<Layout, u64> {
        assert!(capacity_bytes.is_multiple_of(BLOCK_BYTES), "capacity {capacity_bytes} not in whole blocks");
        assert!(journal_blocks > 0);
        let minimum_blocks =
            SUPERBLOCK_COPIES + journal_blocks + MIN_DATA_BLOCKS + 2 * checkpoint_area_blocks(MIN_DATA_BLOCKS);
        let minimum_bytes = minimum_blocks * BLOCK_BYTES;
        let total_blocks = capacity_bytes / BLOCK_BYTES;
        let Some(remaining) = total_blocks.checked_sub(SUPERBLOCK_COPIES + journal_blocks) else {
            return Err(minimum_bytes);
        };
        // Largest data_blocks with data_blocks + 2 * checkpoint_area_blocks(data_blocks) <= remaining; the
        // left side grows with data_blocks, so binary search.
        let fits = |d: u64| d + 2 * checkpoint_area_blocks(d) <= remaining;
        let (mut lo, mut hi) = (0u64, remaining);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        let data_blocks = lo;
        if data_blocks < MIN_DATA_BLOCKS {
            return Err(minimum_bytes);
        }
        let checkpoint_blocks = checkpoint_area_blocks(data_blocks);
        let journal_start_block = SUPERBLOCK_COPIES + 2 * checkpoint_blocks;
        let layout = Layout {
            capacity_bytes,
            checkpoint_blocks,
            journal_start_block,
            journal_blocks,
            data_start_block: journal_start_block + journal_blocks,
            data_blocks,
        };
        layout.assert_valid();
        Ok(layout)
    }

    pub(crate) fn assert_valid(&self) {
        assert!(self.checkpoint_blocks >= checkpoint_area_blocks(self.data_blocks));
        assert_eq!(self.journal_start_block, SUPERBLOCK_COPIES + 2 * self.checkpoint_blocks);
        assert_eq!(self.data_start_block, self.journal_start_block + self.journal_blocks);
        assert!(self.data_blocks >= MIN_DATA_BLOCKS);
        assert!((self.data_start_block + self.data_blocks) * BLOCK_BYTES <= self.capacity_bytes);
    }

    /// First block of checkpoint area `slot` (0 = A, 1 = B).
    pub(crate) fn checkpoint_start_block(&self, slot: u8) -> u64 {
        assert!(slot < 2);
        SUPERBLOCK_COPIES + u64::from(slot) * self.checkpoint_blocks
    }

    /// Largest journal entry in blocks: small enough that an entry always fits an emptied journal twice.
    pub(crate) fn max_entry_blocks(&self) -> u64 {
        MAX_ENTRY_BLOCKS.min(self.journal_blocks / 2)
    }

    /// One past the last data block.
    pub(crate) fn data_end_block(&self) -> u64 {
        self.data_start_block + self.data_blocks
    }
}

/// Why `max_extent_bytes` is unusable with `layout`, if it is: it must be in 1..=64 MiB and a journal
/// entry holding one commit record for a maximal extent must fit the largest entry.
pub(crate) fn check_max_extent_bytes(max_extent_bytes: u32, layout: &Layout) -> Result<(), String> {
    if max_extent_bytes == 0 || max_extent_bytes > MAX_EXTENT_BYTES_LIMIT {
        return Err(format!("max_extent_bytes {max_extent_bytes} not in 1..={MAX_EXTENT_BYTES_LIMIT}"));
    }
    let entry_bytes = journal::entry_bytes_for_commits(&[u64::from(max_extent_bytes)]);
    let limit_bytes = layout.max_entry_blocks() * BLOCK_BYTES;
    if entry_bytes > limit_bytes {
        return Err(format!(
            "a journal entry for one {max_extent_bytes}-byte extent takes {entry_bytes} bytes, more than the largest entry \
             ({limit_bytes} bytes: the smaller of {MAX_ENTRY_BLOCKS} blocks and half the journal); use a larger journal or smaller extents"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn layout_is_tight_and_valid(total_blocks in 0u64..2_000_000, journal_blocks in 16u64..20_000) {
            match Layout::compute(total_blocks * BLOCK_BYTES, journal_blocks) {
                Ok(l) => {
                    l.assert_valid();
                    // One more data block would not fit.
                    let d = l.data_blocks + 1;
                    let end = SUPERBLOCK_COPIES + journal_blocks + d + 2 * checkpoint_area_blocks(d);
                    prop_assert!(end > total_blocks);
                }
                Err(minimum_bytes) => prop_assert!(total_blocks * BLOCK_BYTES < minimum_bytes),
            }
        }
    }

    #[test]
    fn worst_case_checkpoint_fits_its_area() {
        for data_blocks in [16u64, 17, 100, 4095, 1 << 20] {
            let bytes = checkpoint::max_encoded_bytes(data_blocks);
            assert!(bytes <= checkpoint_area_blocks(data_blocks) * BLOCK_BYTES);
        }
    }
}
