//! One extent's table entry, shared by the checkpoint and the journal's commit record.
//!
//! Encoding (20 + 4 * blocks bytes): `id u64, start_block u64, len_bytes u32`, then one CRC32C `u32` per
//! block (`ceil(len_bytes / 4096)` of them; the last block's zero padding is covered by its CRC).

use crate::ExtentId;
use crate::codec::{DecodeError, Reader, Writer};
use crate::layout::{BLOCK_BYTES, blocks_for_bytes};

/// Bytes of an encoded entry before its block CRCs.
pub(crate) const ENTRY_FIXED_BYTES: u64 = 8 + 8 + 4;

/// Where an extent lives and the checksum of each of its blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExtentRecord {
    /// Absolute block number of the first block (inside the data region).
    pub(crate) start_block: u64,
    pub(crate) len_bytes: u32,
    pub(crate) block_crcs: Vec<u32>,
}

/// What a decoded entry must respect: the data region and the configured maximum extent size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) data_start_block: u64,
    pub(crate) data_end_block: u64,
    pub(crate) max_extent_bytes: u32,
}

impl ExtentRecord {
    /// Checksums `data` (padded with zeros to whole blocks) as it is written at `start_block`.
    pub(crate) fn for_data(start_block: u64, data: &[u8]) -> ExtentRecord {
        let len_bytes = u32::try_from(data.len()).expect("extent length fits u32 (checked against max)");
        assert!(len_bytes > 0);
        let block_crcs = data
            .chunks(BLOCK_BYTES as usize)
            .map(|chunk| {
                let crc = crc32c::crc32c(chunk);
                let pad = BLOCK_BYTES as usize - chunk.len();
                crc32c::crc32c_append(crc, &vec![0u8; pad])
            })
            .collect();
        ExtentRecord { start_block, len_bytes, block_crcs }
    }

    pub(crate) fn block_count(&self) -> u64 {
        blocks_for_bytes(u64::from(self.len_bytes))
    }

    pub(crate) fn encoded_bytes(&self) -> u64 {
        ENTRY_FIXED_BYTES + 4 * self.block_count()
    }

    pub(crate) fn encode(&self, id: ExtentId, w: &mut Writer) {
        assert_eq!(self.block_crcs.len() as u64, self.block_count(), "{id}: crc count does not match length");
        w.u64(id.0);
        w.u64(self.start_block);
        w.u32(self.len_bytes);
        for &crc in &self.block_crcs {
            w.u32(crc);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, bounds: &Bounds) -> Result<(ExtentId, ExtentRecord), DecodeError> {
        let id = ExtentId(r.u64()?);
        let start_block = r.u64()?;
        let len_bytes = r.u32()?;
        if len_bytes == 0 || len_bytes > bounds.max_extent_bytes {
            return Err(DecodeError::field(
                "extent len_bytes",
                format!("{id}: {len_bytes} not in 1..={}", bounds.max_extent_bytes),
            ));
        }
        let blocks = blocks_for_bytes(u64::from(len_bytes));
        let inside = start_block >= bounds.data_start_block
            && start_block.checked_add(blocks).is_some_and(|end| end <= bounds.data_end_block);
        if !inside {
            return Err(DecodeError::field(
                "extent start_block",
                format!(
                    "{id}: blocks {start_block}+{blocks} outside data region {}..{}",
                    bounds.data_start_block, bounds.data_end_block
                ),
            ));
        }
        let block_crcs = (0..blocks).map(|_| r.u32()).collect::<Result<Vec<u32>, DecodeError>>()?;
        Ok((id, ExtentRecord { start_block, len_bytes, block_crcs }))
    }
}
