//! Mount and crash recovery: pick the superblock, load its checkpoint, replay the journal.
//!
//! Recovery writes nothing. It never presents unacknowledged garbage as data: an extent enters the table
//! only from a checksummed checkpoint or a checksummed commit record, and a commit record is written only
//! after its data was flushed.

use tessera_env::{Disk, DiskError, mark};

use crate::checkpoint::{self, Checkpoint};
use crate::codec::DecodeError;
use crate::journal::Entry;
use crate::layout::{BLOCK_BYTES, BLOCK_BYTES_USIZE, blocks_for_bytes};
use crate::store::{MAX_IO_BYTES, bounds_of};
use crate::superblock::Superblock;
use crate::{FORMAT_VERSION, Store, StoreError};

impl<D: Disk> Store<D> {
    /// Mounts and runs crash recovery.
    ///
    /// Errors: `NotFormatted` (no magic in either superblock sector), `UnsupportedVersion`,
    /// `CorruptSuperblock` (magic but no valid copy), `CorruptMetadata` (the referenced checkpoint is
    /// damaged, a record does not apply, or a valid entry follows an invalid one in the journal), disk
    /// errors (an unreadable superblock, checkpoint or journal sector fails the mount).
    pub async fn open(disk: D) -> Result<Store<D>, StoreError> {
        let sb = choose_superblock(&disk).await?;
        let layout = sb.layout;
        let checkpoint_blocks = blocks_for_bytes(sb.checkpoint_len_bytes);
        let bytes = read_blocks(&disk, layout.checkpoint_start_block(sb.checkpoint_slot), checkpoint_blocks).await?;
        let expected = checkpoint::Expected {
            generation: sb.generation,
            device_id: sb.identity.device_id,
            next_extent_id: sb.next_extent_id,
            len_bytes: sb.checkpoint_len_bytes,
            crc: sb.checkpoint_crc,
            bounds: bounds_of(&sb),
        };
        let checkpoint = Checkpoint::decode(&bytes, &expected).map_err(|e| StoreError::CorruptMetadata {
            what: format!("checkpoint area {} of superblock generation {}: {e}", sb.checkpoint_slot, sb.generation),
        })?;
        let mut store = Store::assemble(disk, sb, checkpoint.next_extent_id);
        for (id, extent) in checkpoint.extents {
            if !store.alloc.reserve(extent.start_block, extent.block_count()) {
                return Err(StoreError::CorruptMetadata { what: format!("checkpoint: {id} overlaps another extent") });
            }
            store.table.insert(id, extent);
        }
        store.replay_journal().await?;
        Ok(store)
    }

    /// Replays entries from journal block 0 while each is valid and has the next seq. The first entry
    /// that is not is the torn tail of an unacknowledged append, unless some valid entry with a seq at
    /// least the expected one lies beyond it: entries are written one at a time, each flushed before
    /// the next, so that means an acknowledged entry was damaged.
    async fn replay_journal(&mut self) -> Result<(), StoreError> {
        let layout = self.sb.layout;
        let (device_id, max_entry_blocks, bounds) =
            (self.sb.identity.device_id, layout.max_entry_blocks(), self.bounds());
        let journal = read_blocks(&self.disk, layout.journal_start_block, layout.journal_blocks).await?;
        let at = |block: u64| &journal[(block * BLOCK_BYTES) as usize..];
        let mut block = 0;
        let mut torn_tail = false;
        while block < layout.journal_blocks {
            let (entry, blocks) = match Entry::decode(at(block), device_id, max_entry_blocks, &bounds) {
                Ok((entry, blocks)) if entry.seq == self.journal_next_seq => (entry, blocks),
                // Zeros or an older entry: the clean end of the journal.
                Ok(_) | Err(DecodeError::BadMagic) => break,
                // An entry's magic but not a valid entry: the torn tail of an unacknowledged append
                // (checked below: no valid entry may follow it).
                Err(_) => {
                    torn_tail = true;
                    break;
                }
            };
            for record in entry.records {
                self.apply_record(record, true).map_err(|what| StoreError::CorruptMetadata {
                    what: format!("journal entry seq {} at journal block {block}: {what}", entry.seq),
                })?;
            }
            block += blocks;
            self.journal_next_seq += 1;
        }
        assert!(block <= layout.journal_blocks);
        self.journal_used_blocks = block;
        for later in block..layout.journal_blocks {
            if let Ok((entry, _)) = Entry::decode(at(later), device_id, max_entry_blocks, &bounds)
                && entry.seq >= self.journal_next_seq
            {
                return Err(StoreError::CorruptMetadata {
                    what: format!(
                        "valid journal entry seq {} at journal block {later}, at or past the end of replay at block {block} \
                         (expected seq {} there): acknowledged journal entries are damaged or were lost",
                        entry.seq, self.journal_next_seq
                    ),
                });
            }
        }
        if torn_tail {
            mark!("store.torn_record_recovered");
        }
        Ok(())
    }
}

/// Reads both superblock copies and picks the valid one with the highest generation.
async fn choose_superblock<D: Disk>(disk: &D) -> Result<Superblock, StoreError> {
    let capacity_bytes = disk.capacity_bytes();
    if capacity_bytes < 2 * BLOCK_BYTES {
        return Err(StoreError::NotFormatted);
    }
    let mut magic_seen = false;
    let mut read_error: Option<DiskError> = None;
    let mut best: Option<Superblock> = None;
    for home_block in 0..2u64 {
        let bytes = match disk.read(home_block * BLOCK_BYTES, BLOCK_BYTES_USIZE).await {
            Ok(bytes) => bytes,
            Err(e @ DiskError::ReadFailed { .. }) => {
                read_error = Some(e);
                continue;
            }
            Err(e) => return Err(StoreError::Disk(e)),
        };
        match Superblock::decode(&bytes) {
            Err(DecodeError::BadMagic) => {}
            Err(DecodeError::UnsupportedVersion { found }) => {
                return Err(StoreError::UnsupportedVersion { found, supported: FORMAT_VERSION });
            }
            Err(_) => magic_seen = true,
            Ok(sb) => {
                magic_seen = true;
                let plausible = sb.home_block() == home_block && sb.layout.capacity_bytes <= capacity_bytes;
                if plausible && best.as_ref().is_none_or(|b| sb.generation > b.generation) {
                    best = Some(sb);
                }
            }
        }
    }
    match (best, read_error) {
        (Some(sb), _) => Ok(sb),
        (None, Some(e)) => Err(StoreError::Disk(e)),
        (None, None) if magic_seen => Err(StoreError::CorruptSuperblock),
        (None, None) => Err(StoreError::NotFormatted),
    }
}

/// Reads `blocks` blocks from `block` in pieces of at most [`MAX_IO_BYTES`].
pub(crate) async fn read_blocks<D: Disk>(disk: &D, block: u64, blocks: u64) -> Result<Vec<u8>, DiskError> {
    let chunk_blocks = MAX_IO_BYTES / BLOCK_BYTES;
    let mut out = Vec::with_capacity((blocks * BLOCK_BYTES) as usize);
    let mut done = 0;
    while done < blocks {
        let n = (blocks - done).min(chunk_blocks);
        let bytes = disk.read((block + done) * BLOCK_BYTES, (n * BLOCK_BYTES) as usize).await?;
        assert_eq!(bytes.len() as u64, n * BLOCK_BYTES, "disk returned a short read");
        out.extend_from_slice(&bytes);
        done += n;
    }
    Ok(out)
}
