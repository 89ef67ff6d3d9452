//! A test-only in-memory disk with a live and a durable image, power cuts and injected faults.
//!
//! Clones share one device, so a test keeps a handle while a `Store` owns another. A power cut
//! (`set_ops_budget`) makes every call after the budget fail with `Offline`; the write that hits the
//! budget lands in the live image (unflushed), so `crash` may keep or drop each of its sectors.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tessera_env::{DetRng, Disk, DiskError, Rng, SECTOR_SIZE_BYTES, check_io_range};

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;

#[derive(Clone, Debug)]
pub(crate) struct MemDisk {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Sectors written since the last completed flush.
    dirty: BTreeSet<u64>,
    /// Calls left before a power cut; `None` = no cut planned.
    ops_left: Option<u64>,
    offline: bool,
    fail_next_write: bool,
    fail_next_flush: bool,
    fenced: bool,
    unreadable: BTreeSet<u64>,
    flushes: u64,
}

impl MemDisk {
    pub(crate) fn new(capacity_bytes: u64) -> MemDisk {
        MemDisk::with_image(vec![0u8; capacity_bytes as usize])
    }

    pub(crate) fn with_image(image: Vec<u8>) -> MemDisk {
        assert!((image.len() as u64).is_multiple_of(SECTOR));
        let inner = Inner {
            durable: image.clone(),
            live: image,
            dirty: BTreeSet::new(),
            ops_left: None,
            offline: false,
            fail_next_write: false,
            fail_next_flush: false,
            fenced: false,
            unreadable: BTreeSet::new(),
            flushes: 0,
        };
        MemDisk { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("test disk mutex")
    }

    /// Power cut then reboot: each unflushed sector independently keeps its new content or reverts.
    pub(crate) fn crash(&self, rng: &mut DetRng) {
        let mut d = self.lock();
        let dirty = std::mem::take(&mut d.dirty);
        for sector in dirty {
            let range = (sector * SECTOR) as usize..((sector + 1) * SECTOR) as usize;
            if rng.chance(1, 2) {
                let kept = d.live[range.clone()].to_vec();
                d.durable[range].copy_from_slice(&kept);
            }
        }
        d.live = d.durable.clone();
        d.ops_left = None;
        d.offline = false;
        d.fenced = false;
        d.fail_next_write = false;
        d.fail_next_flush = false;
    }

    pub(crate) fn set_ops_budget(&self, ops: Option<u64>) {
        self.lock().ops_left = ops;
    }

    pub(crate) fn fail_next_write(&self) {
        self.lock().fail_next_write = true;
    }

    pub(crate) fn fail_next_flush(&self) {
        self.lock().fail_next_flush = true;
    }

    pub(crate) fn set_unreadable(&self, sector: u64) {
        self.lock().unreadable.insert(sector);
    }

    pub(crate) fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// XORs `mask` into the byte at `offset` in both images (latent corruption).
    pub(crate) fn corrupt_byte(&self, offset: u64, mask: u8) {
        let mut d = self.lock();
        d.live[offset as usize] ^= mask;
        d.durable[offset as usize] ^= mask;
    }

    /// Overwrites bytes in both images (test setup, not a store write).
    pub(crate) fn poke(&self, offset: u64, bytes: &[u8]) {
        let mut d = self.lock();
        let range = offset as usize..offset as usize + bytes.len();
        d.live[range.clone()].copy_from_slice(bytes);
        d.durable[range].copy_from_slice(bytes);
    }

    pub(crate) fn peek(&self, offset: u64, len: usize) -> Vec<u8> {
        self.lock().live[offset as usize..offset as usize + len].to_vec()
    }

    /// Spends one call of the budget.
    fn spend(d: &mut Inner) -> Power {
        if d.offline {
            return Power::Off;
        }
        match d.ops_left {
            Some(0) => {
                d.offline = true;
                Power::CutDuring
            }
            Some(n) => {
                d.ops_left = Some(n - 1);
                Power::On
            }
            None => Power::On,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Power {
    On,
    /// The power fails during this call.
    CutDuring,
    Off,
}

impl Disk for MemDisk {
    fn capacity_bytes(&self) -> u64 {
        self.lock().live.len() as u64
    }

    async fn read(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        let mut d = self.lock();
        check_io_range(offset_bytes, len_bytes as u64, d.live.len() as u64)?;
        if MemDisk::spend(&mut d) != Power::On {
            return Err(DiskError::Offline);
        }
        let first = offset_bytes / SECTOR;
        if let Some(&bad) = d.unreadable.range(first..first + len_bytes as u64 / SECTOR).next() {
            return Err(DiskError::ReadFailed { offset_bytes: bad * SECTOR });
        }
        Ok(d.live[offset_bytes as usize..offset_bytes as usize + len_bytes].to_vec())
    }

    async fn write(&self, offset_bytes: u64, data: &[u8]) -> Result<(), DiskError> {
        let mut d = self.lock();
        check_io_range(offset_bytes, data.len() as u64, d.live.len() as u64)?;
        if d.fenced {
            return Err(DiskError::Fenced);
        }
        let power = MemDisk::spend(&mut d);
        if power == Power::Off {
            return Err(DiskError::Offline);
        }
        if d.fail_next_write {
            d.fail_next_write = false;
            d.fenced = true;
            return Err(DiskError::WriteFailed { offset_bytes });
        }
        // Lands in the live image (the write the power cut interrupts too: a crash decides per sector).
        d.live[offset_bytes as usize..offset_bytes as usize + data.len()].copy_from_slice(data);
        let first = offset_bytes / SECTOR;
        for sector in first..first + data.len() as u64 / SECTOR {
            d.dirty.insert(sector);
        }
        if power == Power::CutDuring {
            return Err(DiskError::Offline);
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), DiskError> {
        let mut d = self.lock();
        if d.fenced {
            return Err(DiskError::Fenced);
        }
        if MemDisk::spend(&mut d) != Power::On {
            return Err(DiskError::Offline);
        }
        if d.fail_next_flush {
            d.fail_next_flush = false;
            d.fenced = true;
            return Err(DiskError::WriteFailed { offset_bytes: 0 });
        }
        let dirty = std::mem::take(&mut d.dirty);
        for sector in dirty {
            let range = (sector * SECTOR) as usize..((sector + 1) * SECTOR) as usize;
            let bytes = d.live[range.clone()].to_vec();
            d.durable[range].copy_from_slice(&bytes);
        }
        d.flushes += 1;
        Ok(())
    }
}
