//! Background scrubbing: verify data blocks against their checksums, a budget at a time.
//!
//! Scrub walks extents in id order and blocks in order within each. Bad blocks are remembered in memory
//! (`Store::bad_blocks`) so reads of them fail with `Corrupt` without touching disk content; the data
//! path repairs by writing a new extent and freeing this one (freeing forgets the marks). Marks are not
//! persisted: after a restart the checksums (or the medium) report the same blocks again.

use tessera_env::{Disk, DiskError};

use crate::layout::{BLOCK_BYTES, BLOCK_BYTES_USIZE};
use crate::{ExtentId, Store, StoreError};

/// Where the next scrub call resumes: the next block to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubCursor {
    extent: ExtentId,
    block_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubReport {
    pub blocks_checked: u64,
    /// Blocks found bad in this call (including blocks already known bad, reported again).
    pub bad: Vec<BadBlock>,
    /// `None` when the pass over all extents completed.
    pub next: Option<ScrubCursor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadBlock {
    pub extent: ExtentId,
    pub block_index: u32,
    pub reason: BadBlockReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadBlockReason {
    ChecksumMismatch,
    ReadFailed,
}

/// Blocks read per disk read while scrubbing.
const SCRUB_IO_BLOCKS: u64 = 64;

impl<D: Disk> Store<D> {
    /// Verifies up to `budget_blocks` data blocks starting at `cursor` (`None` = start); returns findings
    /// and the next cursor (`None` when a full pass completed).
    pub async fn scrub(&mut self, cursor: Option<ScrubCursor>, budget_blocks: u64) -> Result<ScrubReport, StoreError> {
        self.check_usable()?;
        let start = cursor.unwrap_or(ScrubCursor { extent: ExtentId(0), block_index: 0 });
        let mut report = ScrubReport { blocks_checked: 0, bad: Vec::new(), next: None };
        let extents: Vec<(ExtentId, u64)> =
            self.table.range(start.extent..).map(|(&id, e)| (id, e.block_count())).collect();
        for (id, block_count) in extents {
            let mut index = if id == start.extent { start.block_index } else { 0 };
            while index < block_count {
                if report.blocks_checked == budget_blocks {
                    report.next = Some(ScrubCursor { extent: id, block_index: index });
                    return Ok(report);
                }
                let n = (block_count - index).min(budget_blocks - report.blocks_checked).min(SCRUB_IO_BLOCKS);
                self.scrub_blocks(id, index, n, &mut report.bad).await?;
                report.blocks_checked += n;
                index += n;
            }
        }
        Ok(report)
    }

    /// Checks blocks `first..first + n` of extent `id`, marking and reporting bad ones.
    async fn scrub_blocks(
        &mut self,
        id: ExtentId,
        first: u64,
        n: u64,
        bad: &mut Vec<BadBlock>,
    ) -> Result<(), StoreError> {
        let extent = self.table.get(&id).expect("scrub walks live extents");
        let offset_bytes = (extent.start_block + first) * BLOCK_BYTES;
        let known_bad = |index: u64| self.bad_blocks.get(&(id, index as u32)).copied();
        let all_unknown = (first..first + n).all(|i| known_bad(i).is_none());
        let bytes = if all_unknown { read_or_failed(&self.disk, offset_bytes, n).await? } else { None };
        let mut found = Vec::new();
        for i in 0..n {
            let index = first + i;
            let reason = if let Some(reason) = known_bad(index) {
                Some(reason)
            } else {
                let block = match &bytes {
                    Some(bytes) => Some(bytes[(i * BLOCK_BYTES) as usize..((i + 1) * BLOCK_BYTES) as usize].to_vec()),
                    // A multi-block read failed, or some block is already known bad: check one by one.
                    None => read_or_failed(&self.disk, offset_bytes + i * BLOCK_BYTES, 1).await?,
                };
                match block {
                    None => Some(BadBlockReason::ReadFailed),
                    Some(block) if crc32c::crc32c(&block) != extent.block_crcs[index as usize] => {
                        Some(BadBlockReason::ChecksumMismatch)
                    }
                    Some(_) => None,
                }
            };
            if let Some(reason) = reason {
                found.push(BadBlock {
                    extent: id,
                    block_index: u32::try_from(index).expect("extent blocks fit u32"),
                    reason,
                });
            }
        }
        for b in found {
            self.bad_blocks.insert((b.extent, b.block_index), b.reason);
            bad.push(b);
        }
        Ok(())
    }
}

/// Reads `blocks` at `offset_bytes`; `Ok(None)` if the medium reports the sectors unreadable.
async fn read_or_failed<D: Disk>(disk: &D, offset_bytes: u64, blocks: u64) -> Result<Option<Vec<u8>>, StoreError> {
    match disk.read(offset_bytes, (blocks * BLOCK_BYTES) as usize).await {
        Ok(bytes) => {
            assert_eq!(bytes.len(), blocks as usize * BLOCK_BYTES_USIZE, "disk returned a short read");
            Ok(Some(bytes))
        }
        Err(DiskError::ReadFailed { .. }) => Ok(None),
        Err(e) => Err(StoreError::Disk(e)),
    }
}
