//! Test-only helpers: an in-memory [`Disk`] with fault switches, and a runtime-free `block_on`.
//!
//! Clones share one device, so a test keeps a handle while a `Store` owns another. No durability model
//! (the store's own tests cover crashes); faults: fail the next write (fences the device, as the `Disk`
//! contract says), flip bytes, make sectors unreadable.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tessera_env::{Disk, DiskError, SECTOR_SIZE_BYTES, check_io_range};

/// Runs a future that never waits (everything in these tests completes on its first poll or two).
pub(crate) fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("test future did not complete: it waits on something the test never provides");
}

#[derive(Clone, Debug)]
pub(crate) struct MemDisk {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    bytes: Vec<u8>,
    fail_next_write: bool,
    fenced: bool,
    unreadable: BTreeSet<u64>,
    writes: u64,
}

impl MemDisk {
    pub(crate) fn new(capacity_bytes: u64) -> MemDisk {
        assert!(capacity_bytes.is_multiple_of(SECTOR_SIZE_BYTES as u64));
        let inner = Inner {
            bytes: vec![0u8; capacity_bytes as usize],
            fail_next_write: false,
            fenced: false,
            unreadable: BTreeSet::new(),
            writes: 0,
        };
        MemDisk { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("test disk mutex")
    }

    /// The next write fails and fences the device.
    pub(crate) fn fail_next_write(&self) {
        self.lock().fail_next_write = true;
    }

    /// XORs `mask` into the byte at `offset` (latent corruption).
    pub(crate) fn corrupt_byte(&self, offset: u64, mask: u8) {
        self.lock().bytes[offset as usize] ^= mask;
    }

    /// Reads of the sector holding `offset` fail with `ReadFailed`.
    pub(crate) fn set_unreadable(&self, offset: u64) {
        self.lock().unreadable.insert(offset / SECTOR_SIZE_BYTES as u64);
    }

    /// Where `pattern` first occurs on the device (tests find a chunk's bytes this way).
    pub(crate) fn find(&self, pattern: &[u8]) -> Option<u64> {
        self.lock().bytes.windows(pattern.len()).position(|w| w == pattern).map(|p| p as u64)
    }

    /// Completed writes so far (tests check that idempotent puts do no I/O).
    pub(crate) fn writes(&self) -> u64 {
        self.lock().writes
    }
}

impl Disk for MemDisk {
    fn capacity_bytes(&self) -> u64 {
        self.lock().bytes.len() as u64
    }

    async fn read(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        let d = self.lock();
        check_io_range(offset_bytes, len_bytes as u64, d.bytes.len() as u64)?;
        let sector = SECTOR_SIZE_BYTES as u64;
        let first = offset_bytes / sector;
        if let Some(&bad) = d.unreadable.range(first..first + len_bytes as u64 / sector).next() {
            return Err(DiskError::ReadFailed { offset_bytes: bad * sector });
        }
        Ok(d.bytes[offset_bytes as usize..offset_bytes as usize + len_bytes].to_vec())
    }

    async fn write(&self, offset_bytes: u64, data: &[u8]) -> Result<(), DiskError> {
        let mut d = self.lock();
        check_io_range(offset_bytes, data.len() as u64, d.bytes.len() as u64)?;
        if d.fenced {
            return Err(DiskError::Fenced);
        }
        if d.fail_next_write {
            d.fail_next_write = false;
            d.fenced = true;
            return Err(DiskError::WriteFailed { offset_bytes });
        }
        d.bytes[offset_bytes as usize..offset_bytes as usize + data.len()].copy_from_slice(data);
        d.writes += 1;
        Ok(())
    }

    async fn flush(&self) -> Result<(), DiskError> {
        if self.lock().fenced { Err(DiskError::Fenced) } else { Ok(()) }
    }
}

/// A clock for tests: time moves only by sleeping, when the sleep is first polled (not when it is made:
/// `recv_or_sleep` makes one and polls it only if no message is waiting).
#[derive(Clone, Debug, Default)]
pub(crate) struct TestClock {
    pub(crate) now_ns: std::sync::Arc<std::sync::Mutex<u64>>,
}

impl tessera_env::Clock for TestClock {
    fn now(&self) -> tessera_env::MonoTime {
        tessera_env::MonoTime::from_nanos(*self.now_ns.lock().expect("clock"))
    }

    fn sleep(&self, duration: std::time::Duration) -> impl std::future::Future<Output = ()> + Send {
        let now_ns = std::sync::Arc::clone(&self.now_ns);
        async move {
            *now_ns.lock().expect("clock") += duration.as_nanos() as u64;
        }
    }
}
