//! The engine: format, write, read, free, checkpoint. Recovery is in recovery.rs, scrub in scrub.rs.
//!
//! Invariants (asserted): the in-memory table and allocator always equal the durable state (a change is
//! published only after its journal entry is flushed); every table extent's blocks are allocated and no
//! two extents overlap; `journal_used_blocks` is where the next entry goes and `journal_next_seq` its seq.

use std::collections::BTreeMap;
use std::fmt;

use tessera_env::{Disk, DiskError, buggify};

use crate::alloc::Allocator;
use crate::checkpoint;
use crate::journal::{self, Entry, Record};
use crate::layout::{
    BLOCK_BYTES, BLOCK_BYTES_USIZE, Layout, MAX_JOURNAL_BYTES, MIN_JOURNAL_BYTES, blocks_for_bytes,
    check_max_extent_bytes, default_journal_blocks,
};
use crate::record::{Bounds, ExtentRecord};
use crate::scrub::BadBlockReason;
use crate::superblock::Superblock;
use crate::{DeviceIdentity, ExtentId, StoreConfig, StoreError};

/// Largest single disk I/O for metadata regions (checkpoint, journal zeroing, recovery reads).
pub(crate) const MAX_IO_BYTES: u64 = 8 * 1024 * 1024;

/// One formatted device. See the crate docs for the call order.
pub struct Store<D: Disk> {
    pub(crate) disk: D,
    /// The newest durable superblock.
    pub(crate) sb: Superblock,
    pub(crate) table: BTreeMap<ExtentId, ExtentRecord>,
    pub(crate) alloc: Allocator,
    pub(crate) next_extent_id: u64,
    pub(crate) journal_next_seq: u64,
    pub(crate) journal_used_blocks: u64,
    /// Blocks scrub found bad (in memory only; checksums find them again after a restart).
    pub(crate) bad_blocks: BTreeMap<(ExtentId, u32), BadBlockReason>,
    pub(crate) fenced: bool,
}

/// A summary of the device for operators and placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreStats {
    pub capacity_bytes: u64,
    pub data_capacity_bytes: u64,
    /// Bytes of allocated data blocks (whole blocks, so at least the sum of extent lengths).
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub extent_count: u64,
    /// The superblock generation (bumped by every checkpoint).
    pub generation: u64,
    pub journal_used_bytes: u64,
    pub journal_capacity_bytes: u64,
}

impl<D: Disk> fmt::Debug for Store<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("identity", &self.sb.identity)
            .field("generation", &self.sb.generation)
            .field("extents", &self.table.len())
            .field("next_extent_id", &self.next_extent_id)
            .field("journal_next_seq", &self.journal_next_seq)
            .field("journal_used_blocks", &self.journal_used_blocks)
            .field("fenced", &self.fenced)
            .finish_non_exhaustive()
    }
}

impl<D: Disk> Store<D> {
    /// Writes a fresh format (destroys contents). Errors: `DiskTooSmall`, `InvalidConfig`, disk errors.
    ///
    /// Order: zero both superblocks, flush (a crash from here on leaves a blank device, never a mix of
    /// old and new formats); zero the journal and write an empty checkpoint, flush; write superblock
    /// generation 1, flush.
    pub async fn format(disk: D, identity: DeviceIdentity, config: StoreConfig) -> Result<Store<D>, StoreError> {
        let capacity_bytes = disk.capacity_bytes();
        let journal_blocks = match config.journal_bytes {
            None => default_journal_blocks(capacity_bytes),
            Some(bytes) if bytes % BLOCK_BYTES == 0 && (MIN_JOURNAL_BYTES..=MAX_JOURNAL_BYTES).contains(&bytes) => {
                bytes / BLOCK_BYTES
            }
            Some(bytes) => {
                return Err(StoreError::InvalidConfig {
                    reason: format!(
                        "journal_bytes {bytes} must be a multiple of {BLOCK_BYTES} in {MIN_JOURNAL_BYTES}..={MAX_JOURNAL_BYTES}"
                    ),
                });
            }
        };
        let layout = Layout::compute(capacity_bytes, journal_blocks)
            .map_err(|minimum_bytes| StoreError::DiskTooSmall { capacity_bytes, minimum_bytes })?;
        check_max_extent_bytes(config.max_extent_bytes, &layout)
            .map_err(|reason| StoreError::InvalidConfig { reason })?;

        let encoded = checkpoint::encode_table(1, identity.device_id, 1, &BTreeMap::new());
        let sb = Superblock {
            identity,
            generation: 1,
            layout,
            max_extent_bytes: config.max_extent_bytes,
            checkpoint_slot: 1,
            checkpoint_len_bytes: encoded.len() as u64,
            checkpoint_crc: checkpoint::trailer_crc(&encoded),
            journal_start_seq: 1,
            next_extent_id: 1,
        };
        let mut store = Store::assemble(disk, sb.clone(), 1);
        store.write_blocks(0, &vec![0u8; 2 * BLOCK_BYTES_USIZE]).await?;
        store.flush().await?;
        store.write_zero_blocks(layout.journal_start_block, layout.journal_blocks).await?;
        store.write_metadata(layout.checkpoint_start_block(sb.checkpoint_slot), pad_to_blocks(encoded)).await?;
        store.flush().await?;
        store.write_blocks(sb.home_block(), &sb.encode()).await?;
        store.flush().await?;
        Ok(store)
    }

    /// A store over `sb` with an empty table and everything free (format and recovery fill it in).
    pub(crate) fn assemble(disk: D, sb: Superblock, next_extent_id: u64) -> Store<D> {
        let layout = sb.layout;
        Store {
            disk,
            alloc: Allocator::new_all_free(layout.data_start_block, layout.data_blocks),
            table: BTreeMap::new(),
            next_extent_id,
            journal_next_seq: sb.journal_start_seq,
            journal_used_blocks: 0,
            bad_blocks: BTreeMap::new(),
            fenced: false,
            sb,
        }
    }

    pub fn identity(&self) -> DeviceIdentity {
        self.sb.identity
    }

    /// Durable when Ok: survives any crash after return. `data.len()` in `1..=max_extent_bytes`.
    pub async fn write_extent(&mut self, data: &[u8]) -> Result<ExtentId, StoreError> {
        let ids = self.write_extents(&[data]).await?;
        assert_eq!(ids.len(), 1);
        Ok(ids[0])
    }

    /// Group commit: all durable when Ok. Validates every element first (atomic reject); an empty batch
    /// is Ok with no I/O. Protocol: write each extent's blocks (one write per extent), FLUSH, append the
    /// commit records (one entry, or several if they exceed the largest entry; each entry flushed).
    pub async fn write_extents(&mut self, batch: &[&[u8]]) -> Result<Vec<ExtentId>, StoreError> {
        self.check_usable()?;
        for data in batch {
            self.check_extent_len(data.len())?;
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let starts = self.allocate_all(batch)?;
        let mut records = Vec::with_capacity(batch.len());
        for (i, (data, &start_block)) in batch.iter().zip(&starts).enumerate() {
            self.write_extent_blocks(start_block, data).await?;
            let id = ExtentId(self.next_extent_id + i as u64);
            records.push(Record::Commit { id, extent: ExtentRecord::for_data(start_block, data) });
        }
        // Data durable before any record that points at it.
        self.flush().await?;
        let ids: Vec<ExtentId> = records
            .iter()
            .map(|r| match r {
                Record::Commit { id, .. } => *id,
                Record::Free { .. } => unreachable!("write_extents builds commits only"),
            })
            .collect();
        if buggify!("store.split_commit_entries", 5_000) {
            // Fault hook: one entry (and flush) per record, as a batch too large for one entry gets.
            for record in records {
                self.append_entry(vec![record]).await?;
            }
            return Ok(ids);
        }
        self.append_records(records).await?;
        Ok(ids)
    }

    fn check_extent_len(&self, len_bytes: usize) -> Result<(), StoreError> {
        let max_bytes = u64::from(self.sb.max_extent_bytes);
        if len_bytes == 0 {
            return Err(StoreError::EmptyWrite);
        }
        if len_bytes as u64 > max_bytes {
            return Err(StoreError::ExtentTooLarge { len_bytes: len_bytes as u64, max_bytes });
        }
        Ok(())
    }

    /// Allocates contiguous blocks for every element or for none.
    fn allocate_all(&mut self, batch: &[&[u8]]) -> Result<Vec<u64>, StoreError> {
        let free_bytes = self.alloc.free_blocks() * BLOCK_BYTES;
        let mut starts: Vec<(u64, u64)> = Vec::with_capacity(batch.len());
        for data in batch {
            let blocks = blocks_for_bytes(data.len() as u64);
            match self.alloc.allocate(blocks) {
                Some(start) => starts.push((start, blocks)),
                None => {
                    for &(start, blocks) in &starts {
                        self.alloc.release(start, blocks);
                    }
                    return Err(StoreError::NoSpace { needed_bytes: blocks * BLOCK_BYTES, free_bytes });
                }
            }
        }
        Ok(starts.into_iter().map(|(start, _)| start).collect())
    }

    /// Durable when Ok. The blocks become reusable only once the free record is durable.
    pub async fn free_extent(&mut self, id: ExtentId) -> Result<(), StoreError> {
        self.check_usable()?;
        if !self.table.contains_key(&id) {
            return Err(StoreError::NotFound(id));
        }
        self.append_records(vec![Record::Free { id }]).await
    }

    /// Frees several extents with one journal entry (or as few as fit) and one flush each: durable when
    /// Ok. All or nothing on bad input: an unknown or repeated id is `NotFound` and frees nothing.
    pub async fn free_extents(&mut self, ids: &[ExtentId]) -> Result<(), StoreError> {
        self.check_usable()?;
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            if !self.table.contains_key(id) || !seen.insert(*id) {
                return Err(StoreError::NotFound(*id));
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.append_records(ids.iter().map(|&id| Record::Free { id }).collect()).await
    }

    pub fn extent_len(&self, id: ExtentId) -> Option<u64> {
        self.table.get(&id).map(|e| u64::from(e.len_bytes))
    }

    /// All live extents with their lengths in bytes, sorted by id.
    pub fn extents(&self) -> Vec<(ExtentId, u64)> {
        self.table.iter().map(|(&id, e)| (id, u64::from(e.len_bytes))).collect()
    }

    pub async fn read_extent(&self, id: ExtentId) -> Result<Vec<u8>, StoreError> {
        self.check_usable()?;
        let len_bytes = self.extent_len(id).ok_or(StoreError::NotFound(id))?;
        self.read_range(id, 0, len_bytes).await
    }

    /// Reads only the blocks covering the range and verifies only those. Never returns unverified bytes.
    pub async fn read_range(&self, id: ExtentId, offset_bytes: u64, len_bytes: u64) -> Result<Vec<u8>, StoreError> {
        self.check_usable()?;
        let extent = self.table.get(&id).ok_or(StoreError::NotFound(id))?;
        let extent_len_bytes = u64::from(extent.len_bytes);
        if offset_bytes.checked_add(len_bytes).is_none_or(|end| end > extent_len_bytes) {
            return Err(StoreError::RangeOutOfBounds { extent: id, offset_bytes, len_bytes, extent_len_bytes });
        }
        if len_bytes == 0 {
            return Ok(Vec::new());
        }
        let first = offset_bytes / BLOCK_BYTES;
        let last = (offset_bytes + len_bytes - 1) / BLOCK_BYTES;
        for index in first..=last {
            let block_index = u32::try_from(index).expect("extent blocks fit u32");
            if self.bad_blocks.contains_key(&(id, block_index)) {
                return Err(StoreError::Corrupt { extent: id, block_index });
            }
        }
        let read_bytes = (last - first + 1) * BLOCK_BYTES;
        let bytes = self.disk.read((extent.start_block + first) * BLOCK_BYTES, read_bytes as usize).await?;
        assert_eq!(bytes.len() as u64, read_bytes, "disk returned a short read");
        for (i, block) in bytes.chunks(BLOCK_BYTES_USIZE).enumerate() {
            let index = first as usize + i;
            if crc32c::crc32c(block) != extent.block_crcs[index] {
                return Err(StoreError::Corrupt { extent: id, block_index: index as u32 });
            }
        }
        let skip = (offset_bytes - first * BLOCK_BYTES) as usize;
        Ok(bytes[skip..skip + len_bytes as usize].to_vec())
    }

    /// Writes a checkpoint and a new superblock generation, resetting the journal.
    pub async fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        self.checkpoint_inner().await
    }

    /// Checkpoint protocol: write the table to the area the current superblock does not use, FLUSH (the
    /// checkpoint must be durable before a superblock points at it), write superblock generation + 1
    /// naming it and restarting the journal at block 0 with the next seq, FLUSH (the superblock must be
    /// durable before journal block 0 is overwritten by newer entries).
    async fn checkpoint_inner(&mut self) -> Result<(), StoreError> {
        let generation = self.sb.generation + 1;
        let slot = (generation % 2) as u8;
        assert_ne!(slot, self.sb.checkpoint_slot, "checkpoint would overwrite the live one");
        let encoded =
            checkpoint::encode_table(generation, self.sb.identity.device_id, self.next_extent_id, &self.table);
        let layout = self.sb.layout;
        assert!(
            encoded.len() as u64 <= layout.checkpoint_blocks * BLOCK_BYTES,
            "checkpoint area sized for the worst case"
        );
        let sb = Superblock {
            generation,
            checkpoint_slot: slot,
            checkpoint_len_bytes: encoded.len() as u64,
            checkpoint_crc: checkpoint::trailer_crc(&encoded),
            journal_start_seq: self.journal_next_seq,
            next_extent_id: self.next_extent_id,
            ..self.sb.clone()
        };
        self.write_metadata(layout.checkpoint_start_block(slot), pad_to_blocks(encoded)).await?;
        self.flush().await?;
        self.write_blocks(sb.home_block(), &sb.encode()).await?;
        self.flush().await?;
        self.sb = sb;
        self.journal_used_blocks = 0;
        Ok(())
    }

    /// Appends `records` in as few entries as fit, each written and flushed before the next is written,
    /// and publishes each entry's records once it is durable.
    async fn append_records(&mut self, records: Vec<Record>) -> Result<(), StoreError> {
        let max_entry_blocks = self.sb.layout.max_entry_blocks();
        for group in journal::split_into_entries(records, max_entry_blocks) {
            self.append_entry(group).await?;
        }
        Ok(())
    }

    async fn append_entry(&mut self, records: Vec<Record>) -> Result<(), StoreError> {
        let layout = self.sb.layout;
        let blocks = journal::entry_blocks(&records);
        assert!(blocks <= layout.max_entry_blocks());
        // Fault hook: checkpointing early is always allowed (the live table is durable).
        if self.journal_used_blocks + blocks > layout.journal_blocks || buggify!("store.checkpoint_early", 1_000) {
            self.checkpoint_inner().await?;
        }
        assert!(self.journal_used_blocks + blocks <= layout.journal_blocks);
        let entry = Entry { seq: self.journal_next_seq, records };
        let encoded = entry.encode(self.sb.identity.device_id);
        assert_eq!(encoded.len() as u64, blocks * BLOCK_BYTES);
        self.write_blocks(layout.journal_start_block + self.journal_used_blocks, &encoded).await?;
        self.flush().await?;
        self.journal_used_blocks += blocks;
        self.journal_next_seq += 1;
        for record in entry.records {
            if let Err(what) = self.apply_record(record, false) {
                panic!("a record the engine just made does not apply: {what}");
            }
        }
        Ok(())
    }

    /// Applies one durable record to the table (and, in recovery, `reserve_blocks` carves the commit's
    /// blocks out of the allocator; the live path allocated them before writing).
    pub(crate) fn apply_record(&mut self, record: Record, reserve_blocks: bool) -> Result<(), String> {
        match record {
            Record::Commit { id, extent } => {
                if id.0 < self.next_extent_id {
                    return Err(format!("commit of {id} below next_extent_id {}", self.next_extent_id));
                }
                let next = id.0.checked_add(1).ok_or_else(|| format!("commit of {id}: id space exhausted"))?;
                if reserve_blocks && !self.alloc.reserve(extent.start_block, extent.block_count()) {
                    return Err(format!(
                        "{id} blocks {}+{} overlap allocated blocks",
                        extent.start_block,
                        extent.block_count()
                    ));
                }
                self.next_extent_id = next;
                assert!(self.table.insert(id, extent).is_none());
            }
            Record::Free { id } => {
                let extent = self.table.remove(&id).ok_or_else(|| format!("free of unknown {id}"))?;
                self.alloc.release(extent.start_block, extent.block_count());
                let bad: Vec<(ExtentId, u32)> =
                    self.bad_blocks.range((id, 0)..=(id, u32::MAX)).map(|(&k, _)| k).collect();
                for key in bad {
                    self.bad_blocks.remove(&key);
                }
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> StoreStats {
        let layout = &self.sb.layout;
        let free_bytes = self.alloc.free_blocks() * BLOCK_BYTES;
        let data_capacity_bytes = layout.data_blocks * BLOCK_BYTES;
        StoreStats {
            capacity_bytes: layout.capacity_bytes,
            data_capacity_bytes,
            used_bytes: data_capacity_bytes - free_bytes,
            free_bytes,
            extent_count: self.table.len() as u64,
            generation: self.sb.generation,
            journal_used_bytes: self.journal_used_blocks * BLOCK_BYTES,
            journal_capacity_bytes: layout.journal_blocks * BLOCK_BYTES,
        }
    }

    pub fn into_disk(self) -> D {
        self.disk
    }

    pub(crate) fn bounds(&self) -> Bounds {
        bounds_of(&self.sb)
    }

    pub(crate) fn check_usable(&self) -> Result<(), StoreError> {
        if self.fenced { Err(StoreError::Fenced) } else { Ok(()) }
    }

    /// One disk write at `block`. Any failure fences the store for good.
    async fn write_blocks(&mut self, block: u64, data: &[u8]) -> Result<(), StoreError> {
        self.check_usable()?;
        assert!(!data.is_empty() && data.len().is_multiple_of(BLOCK_BYTES_USIZE));
        let result = self.disk.write(block * BLOCK_BYTES, data).await;
        self.fence_on_error(result)
    }

    /// Writes an extent's payload at `block`: the whole blocks straight from the caller's buffer (no
    /// copy), then the last partial block, if any, padded with zeros.
    async fn write_extent_blocks(&mut self, block: u64, data: &[u8]) -> Result<(), StoreError> {
        let whole_bytes = data.len() / BLOCK_BYTES_USIZE * BLOCK_BYTES_USIZE;
        if whole_bytes > 0 {
            self.write_blocks(block, &data[..whole_bytes]).await?;
        }
        if whole_bytes < data.len() {
            let tail = pad_to_blocks(data[whole_bytes..].to_vec());
            self.write_blocks(block + (whole_bytes / BLOCK_BYTES_USIZE) as u64, &tail).await?;
        }
        Ok(())
    }

    /// Writes a metadata region in pieces of at most [`MAX_IO_BYTES`].
    async fn write_metadata(&mut self, block: u64, data: Vec<u8>) -> Result<(), StoreError> {
        for (i, chunk) in data.chunks(MAX_IO_BYTES as usize).enumerate() {
            self.write_blocks(block + i as u64 * (MAX_IO_BYTES / BLOCK_BYTES), chunk).await?;
        }
        Ok(())
    }

    async fn write_zero_blocks(&mut self, block: u64, blocks: u64) -> Result<(), StoreError> {
        let chunk_blocks = MAX_IO_BYTES / BLOCK_BYTES;
        let zeros = vec![0u8; (blocks.min(chunk_blocks) * BLOCK_BYTES) as usize];
        let mut done = 0;
        while done < blocks {
            let n = (blocks - done).min(chunk_blocks);
            self.write_blocks(block + done, &zeros[..(n * BLOCK_BYTES) as usize]).await?;
            done += n;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        let result = self.disk.flush().await;
        self.fence_on_error(result)
    }

    fn fence_on_error(&mut self, result: Result<(), DiskError>) -> Result<(), StoreError> {
        result.map_err(|e| {
            self.fenced = true;
            StoreError::Disk(e)
        })
    }

    /// The live state as a checkpoint value (tests compare it across reopen).
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> checkpoint::Checkpoint {
        checkpoint::Checkpoint {
            generation: 0,
            device_id: self.sb.identity.device_id,
            next_extent_id: self.next_extent_id,
            extents: self.table.clone(),
        }
    }
}

pub(crate) fn bounds_of(sb: &Superblock) -> Bounds {
    Bounds {
        data_start_block: sb.layout.data_start_block,
        data_end_block: sb.layout.data_end_block(),
        max_extent_bytes: sb.max_extent_bytes,
    }
}

/// `data` followed by zeros up to a whole number of blocks.
pub(crate) fn pad_to_blocks(mut data: Vec<u8>) -> Vec<u8> {
    let padded = blocks_for_bytes(data.len() as u64) * BLOCK_BYTES;
    data.resize(padded as usize, 0);
    data
}
