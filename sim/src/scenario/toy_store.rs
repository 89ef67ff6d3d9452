//! A deliberately tiny extent log, used to test the simulator itself, not Tessera.
//!
//! Each extent is appended as one header sector (magic, id, length, data checksum, header checksum)
//! followed by its data sectors, then flushed before the write is acknowledged. `open` scans from the
//! start and stops at the first record that does not verify (a torn, unacknowledged tail).
//!
//! With `ack_before_flush` it skips the flush: a known-broken store that loses acknowledged writes on a
//! crash. The scenario tests run it to prove the checker notices (a simulator that cannot fail a broken
//! store proves nothing).

use std::collections::BTreeMap;

use tessera_env::{Disk, DiskError, SECTOR_SIZE_BYTES};

use crate::trace::{Fnv64, fnv64};

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;
const SUPER_MAGIC: u64 = 0x544f_5953_544f_5245; // "TOYSTORE"
const RECORD_MAGIC: u64 = 0x544f_5952_4543_4f52; // "TOYRECOR"

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToyError {
    NotFormatted,
    NoSpace,
    NotFound(u64),
    Corrupt(u64),
    Disk(DiskError),
}

impl From<DiskError> for ToyError {
    fn from(e: DiskError) -> ToyError {
        ToyError::Disk(e)
    }
}

impl std::fmt::Display for ToyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug)]
pub struct ToyStore<D> {
    disk: D,
    ack_before_flush: bool,
    /// Extent id -> (offset of its header, length in bytes).
    index: BTreeMap<u64, (u64, u64)>,
    tail_bytes: u64,
    next_id: u64,
}

fn sectors_for(len_bytes: u64) -> u64 {
    len_bytes.div_ceil(SECTOR)
}

fn header(id: u64, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; SECTOR_SIZE_BYTES];
    h[0..8].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    h[16..24].copy_from_slice(&(data.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&fnv64(data).to_le_bytes());
    let check = fnv64(&h[0..32]);
    h[32..40].copy_from_slice(&check.to_le_bytes());
    h
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<D: Disk> ToyStore<D> {
    pub async fn format(disk: D, ack_before_flush: bool) -> Result<ToyStore<D>, ToyError> {
        let mut sb = vec![0u8; SECTOR_SIZE_BYTES];
        sb[0..8].copy_from_slice(&SUPER_MAGIC.to_le_bytes());
        // Clear the first record slot so a reformat never resurrects old records.
        disk.write(SECTOR, &vec![0u8; SECTOR_SIZE_BYTES]).await?;
        disk.write(0, &sb).await?;
        disk.flush().await?;
        Ok(ToyStore { disk, ack_before_flush, index: BTreeMap::new(), tail_bytes: SECTOR, next_id: 1 })
    }

    pub async fn open(disk: D, ack_before_flush: bool) -> Result<ToyStore<D>, ToyError> {
        let sb = disk.read(0, SECTOR_SIZE_BYTES).await?;
        if u64_at(&sb, 0) != SUPER_MAGIC {
            return Err(ToyError::NotFormatted);
        }
        let mut store = ToyStore { disk, ack_before_flush, index: BTreeMap::new(), tail_bytes: SECTOR, next_id: 1 };
        let capacity = store.disk.capacity_bytes();
        while store.tail_bytes + SECTOR <= capacity {
            let h = store.disk.read(store.tail_bytes, SECTOR_SIZE_BYTES).await?;
            let mut check = Fnv64::default();
            check.bytes(&h[0..32]);
            if u64_at(&h, 0) != RECORD_MAGIC || u64_at(&h, 32) != check.finish() {
                break;
            }
            let (id, len) = (u64_at(&h, 8), u64_at(&h, 16));
            let data_at = store.tail_bytes + SECTOR;
            if len == 0 || data_at + sectors_for(len) * SECTOR > capacity || id < store.next_id {
                break;
            }
            let data = store.disk.read(data_at, (sectors_for(len) * SECTOR) as usize).await?;
            if fnv64(&data[..len as usize]) != u64_at(&h, 24) {
                break;
            }
            store.index.insert(id, (store.tail_bytes, len));
            store.next_id = id + 1;
            store.tail_bytes = data_at + sectors_for(len) * SECTOR;
        }
        Ok(store)
    }

    pub fn extent_count(&self) -> usize {
        self.index.len()
    }

    pub async fn write_extent(&mut self, data: &[u8]) -> Result<u64, ToyError> {
        assert!(!data.is_empty(), "empty extent");
        let total = SECTOR + sectors_for(data.len() as u64) * SECTOR;
        if self.tail_bytes + total > self.disk.capacity_bytes() {
            return Err(ToyError::NoSpace);
        }
        let id = self.next_id;
        let mut record = header(id, data);
        record.extend_from_slice(data);
        record.resize(total as usize, 0);
        let at = self.tail_bytes;
        // Advance first: a failed write leaves a hole, never a reused slot.
        self.tail_bytes += total;
        self.next_id += 1;
        self.disk.write(at, &record).await?;
        if !self.ack_before_flush {
            self.disk.flush().await?;
        }
        self.index.insert(id, (at, data.len() as u64));
        Ok(id)
    }

    pub async fn read_extent(&self, id: u64) -> Result<Vec<u8>, ToyError> {
        let &(at, len) = self.index.get(&id).ok_or(ToyError::NotFound(id))?;
        let data = self.disk.read(at + SECTOR, (sectors_for(len) * SECTOR) as usize).await?;
        let h = self.disk.read(at, SECTOR_SIZE_BYTES).await?;
        if fnv64(&data[..len as usize]) != u64_at(&h, 24) {
            return Err(ToyError::Corrupt(id));
        }
        Ok(data[..len as usize].to_vec())
    }
}
