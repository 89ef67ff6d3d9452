//! The simulated disk: a durable image, the unflushed writes above it, and the faults a real device shows.
//!
//! Model (STYLE.md rule 7, after TigerBeetle `testing/storage.zig` and FoundationDB
//! `AsyncFileNonDurable`): the device keeps the **durable image** (what survives power loss) and, above
//! it, the **dirty sectors** written since the last flush. Reads see dirty-over-durable (the live
//! image). `flush` folds the dirty sectors into the durable image. A crash decides, per dirty sector and
//! from the disk's own seeded generator, which of its unflushed writes reached the medium (the last, an
//! earlier one if it was written several times since the flush, or none); sometimes all do, sometimes
//! none. Both maps are sparse, so a cluster of many mostly empty disks costs little memory.
//!
//! Every operation sleeps its latency in virtual time (madsim rounds sleeps up to 1 ms) unless the model
//! is [`DiskModel::instant`], which never sleeps and so also works outside a madsim runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tessera_env::{DetRng, Disk, DiskError, Rng, SECTOR_SIZE_BYTES, check_io_range};

use crate::trace::{Trace, fnv64, virtual_now_ns};

/// Record a disk event in the trace under the disk's name.
macro_rules! ev {
    ($disk:expr, $($arg:tt)+) => {
        $disk.trace.record(&$disk.name, format_args!($($arg)+))
    };
}

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;
type Sector = [u8; SECTOR_SIZE_BYTES];
static ZERO_SECTOR: Sector = [0; SECTOR_SIZE_BYTES];

/// The shared sector of zeros (stored once per process, whatever the number of drives writing zeros).
fn zero_sector() -> Arc<Sector> {
    static ZERO: std::sync::OnceLock<Arc<Sector>> = std::sync::OnceLock::new();
    ZERO.get_or_init(|| Arc::new(ZERO_SECTOR)).clone()
}

/// Performance of a simulated device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskModel {
    pub capacity_bytes: u64,
    pub read_latency_us: u64,
    pub write_latency_us: u64,
    pub flush_latency_us: u64,
    /// Transfer rate; 0 means unlimited.
    pub bandwidth_bytes_per_sec: u64,
}

impl DiskModel {
    /// A datacentre NVMe drive: tens of microseconds per I/O, a slower flush, 2 GB/s.
    pub fn nvme(capacity_bytes: u64) -> DiskModel {
        DiskModel {
            capacity_bytes,
            read_latency_us: 80,
            write_latency_us: 25,
            flush_latency_us: 400,
            bandwidth_bytes_per_sec: 2_000_000_000,
        }
    }

    /// No latency at all: operations complete without sleeping (usable outside a madsim runtime).
    pub fn instant(capacity_bytes: u64) -> DiskModel {
        DiskModel {
            capacity_bytes,
            read_latency_us: 0,
            write_latency_us: 0,
            flush_latency_us: 0,
            bandwidth_bytes_per_sec: 0,
        }
    }

    fn latency_us(&self, base_us: u64, len_bytes: u64) -> u64 {
        let transfer_us = match self.bandwidth_bytes_per_sec {
            0 => 0,
            bw => u64::try_from(u128::from(len_bytes) * 1_000_000 / u128::from(bw)).unwrap_or(u64::MAX),
        };
        base_us.saturating_add(transfer_us)
    }
}

/// Counters of one disk, cumulative over its life (across crashes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub crashes: u64,
}

/// Earlier unflushed versions remembered per sector (bounds the memory of a sector rewritten often).
const OVERWRITTEN_KEPT: usize = 4;

struct DiskState {
    rng: DetRng,
    durable: BTreeMap<u64, Arc<Sector>>,
    /// Live content of sectors written since the last flush; their durable content is in `durable`.
    dirty: BTreeMap<u64, Arc<Sector>>,
    /// Earlier unflushed versions of dirty sectors (oldest first, at most [`OVERWRITTEN_KEPT`] each): a
    /// sector written twice since the last flush may come back from a crash holding the first write.
    overwritten: BTreeMap<u64, Vec<Arc<Sector>>>,
    failing_reads: BTreeSet<u64>,
    offline: bool,
    fenced: bool,
    /// Bumped by every crash: an operation that started in an earlier epoch never applies.
    epoch: u64,
    /// Write/flush calls left before the armed crash fires (1 = the next one).
    crash_after_io: Option<u64>,
    /// An armed crash during the next write of at least `.1` sectors inside sectors `.0`.
    crash_at_write: Option<(std::ops::Range<u64>, u64)>,
    fail_next_write: bool,
    fail_next_flush: bool,
    slow_factor: u32,
    slow_until_ns: u64,
    stats: DiskStats,
}

impl DiskState {
    fn live(&self, sector: u64) -> &Sector {
        self.dirty.get(&sector).or_else(|| self.durable.get(&sector)).map_or(&ZERO_SECTOR, |b| &**b)
    }

    /// Write `data` into the dirty layer, each sector independently with probability 1/2 when `torn`.
    fn apply_write(&mut self, offset_bytes: u64, data: &[u8], torn: bool) -> usize {
        let mut applied = 0;
        for (i, chunk) in data.chunks_exact(SECTOR_SIZE_BYTES).enumerate() {
            if torn && self.rng.chance(1, 2) {
                continue;
            }
            // Sectors of zeros (a formatted journal, padding) share one allocation: a simulation holds
            // thousands of drives.
            let sector = if chunk.iter().all(|&b| b == 0) {
                zero_sector()
            } else {
                let mut sector = Box::new(ZERO_SECTOR);
                sector.copy_from_slice(chunk);
                Arc::from(sector)
            };
            let index = offset_bytes / SECTOR + i as u64;
            if let Some(previous) = self.dirty.insert(index, sector) {
                let versions = self.overwritten.entry(index).or_default();
                versions.push(previous);
                if versions.len() > OVERWRITTEN_KEPT {
                    versions.remove(0);
                }
            }
            applied += 1;
        }
        applied
    }

    fn flush_all(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        self.durable.extend(dirty);
        self.overwritten.clear();
    }

    /// Power loss: go offline, decide for each dirty sector whether it reached the medium. Returns
    /// (kept, unflushed).
    fn crash(&mut self) -> (usize, usize) {
        self.offline = true;
        self.crash_at_write = None;
        self.epoch += 1;
        self.stats.crashes += 1;
        // 1 in 8: nothing unflushed survives; 1 in 8: everything does; otherwise each sector on its own:
        // the last write, or (if the sector was written more than once since the flush) an earlier one,
        // or none of them.
        let mode = self.rng.below(8);
        let dirty = std::mem::take(&mut self.dirty);
        let mut overwritten = std::mem::take(&mut self.overwritten);
        let unflushed = dirty.len();
        let mut kept = 0;
        for (sector, data) in dirty {
            let earlier = overwritten.remove(&sector).unwrap_or_default();
            let survivor = match mode {
                0 => None,
                1 => Some(data),
                _ if self.rng.chance(1, 2) => Some(data),
                _ if !earlier.is_empty() && self.rng.chance(1, 2) => {
                    let pick = self.rng.below(earlier.len() as u64) as usize;
                    earlier.into_iter().nth(pick)
                }
                _ => None,
            };
            if let Some(content) = survivor {
                self.durable.insert(sector, content);
                kept += 1;
            }
        }
        (kept, unflushed)
    }

    fn delay(&self, base_us: u64) -> Duration {
        let factor = if virtual_now_ns() < self.slow_until_ns { u64::from(self.slow_factor.max(1)) } else { 1 };
        Duration::from_micros(base_us.saturating_mul(factor))
    }

    /// True if a write of `len_bytes` at `offset_bytes` is the one an armed `crash_at_write` waits for.
    fn crash_at_write_due(&mut self, offset_bytes: u64, len_bytes: u64) -> bool {
        let Some((sectors, min_sectors)) = &self.crash_at_write else { return false };
        let (first, count) = (offset_bytes / SECTOR, len_bytes.div_ceil(SECTOR));
        let due = count >= *min_sectors && sectors.contains(&first) && first + count <= sectors.end;
        if due {
            self.crash_at_write = None;
        }
        due
    }

    /// Counts down an armed `crash_after_io`; true if this call is the one that crashes.
    fn crash_due(&mut self) -> bool {
        match self.crash_after_io {
            Some(n) if n <= 1 => {
                self.crash_after_io = None;
                true
            }
            Some(n) => {
                self.crash_after_io = Some(n - 1);
                false
            }
            None => false,
        }
    }
}

/// A simulated block device. Cloning shares the same device.
#[derive(Clone)]
pub struct SimDisk {
    name: Arc<str>,
    model: Arc<DiskModel>,
    trace: Trace,
    state: Arc<Mutex<DiskState>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDisk").field("name", &self.name).field("model", &self.model).finish_non_exhaustive()
    }
}

impl SimDisk {
    /// A fresh, zeroed, online device. All its fault decisions draw from `rng`.
    pub fn new(name: String, model: DiskModel, rng: DetRng, trace: Trace) -> SimDisk {
        assert!(
            model.capacity_bytes > 0 && model.capacity_bytes.is_multiple_of(SECTOR),
            "disk capacity must be a non-zero multiple of the sector size"
        );
        let state = DiskState {
            rng,
            durable: BTreeMap::new(),
            dirty: BTreeMap::new(),
            overwritten: BTreeMap::new(),
            failing_reads: BTreeSet::new(),
            offline: false,
            fenced: false,
            epoch: 0,
            crash_after_io: None,
            crash_at_write: None,
            fail_next_write: false,
            fail_next_flush: false,
            slow_factor: 1,
            slow_until_ns: 0,
            stats: DiskStats::default(),
        };
        SimDisk { name: name.into(), model: Arc::new(model), trace, state: Arc::new(Mutex::new(state)) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn model(&self) -> &DiskModel {
        &self.model
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power loss. The device goes offline (every call fails with [`DiskError::Offline`], operations in
    /// flight never apply); each unflushed sector independently survives or reverts to its durable content.
    pub fn crash(&self) {
        let (kept, unflushed) = self.lock().crash();
        ev!(self, "crash: kept {kept} of {unflushed} unflushed sectors");
    }

    /// Power back on: the device serves calls again, showing its durable image.
    pub fn restart(&self) {
        self.lock().offline = false;
        ev!(self, "restart");
    }

    /// The `n`-th write or flush call from now (counting from 1) crashes the device instead of completing;
    /// a write crashing this way is torn first (each of its sectors applied or not).
    pub fn crash_after_io(&self, n: u64) {
        assert!(n >= 1, "crash_after_io counts from 1");
        self.lock().crash_after_io = Some(n);
        ev!(self, "armed crash after {n} write/flush calls");
    }

    /// The next write of at least `min_sectors` sectors that lies inside `sectors` crashes the device
    /// instead of completing, torn first (as [`crash_after_io`](Self::crash_after_io)): power failing
    /// during, say, a multi-block journal commit. Disarmed by any crash.
    pub fn crash_at_write(&self, sectors: std::ops::Range<u64>, min_sectors: u64) {
        assert!(min_sectors >= 1 && !sectors.is_empty(), "crash_at_write({sectors:?}, {min_sectors})");
        ev!(self, "armed crash at the next write of {min_sectors}+ sectors in {sectors:?}");
        self.lock().crash_at_write = Some((sectors, min_sectors));
    }

    /// Latent corruption: flip bytes of `sector` in both the durable and the live image.
    pub fn corrupt_sector(&self, sector: u64) {
        assert!(sector < self.model.capacity_bytes / SECTOR, "corrupt_sector({sector}) past the end");
        let mut s = self.lock();
        let flips = s.rng.range_inclusive(1, 8);
        let mut positions = Vec::new();
        for _ in 0..flips {
            let pos = s.rng.below(SECTOR) as usize;
            let mask = (s.rng.below(255) + 1) as u8;
            positions.push((pos, mask));
        }
        let durable = Arc::make_mut(s.durable.entry(sector).or_insert_with(zero_sector));
        for &(pos, mask) in &positions {
            durable[pos] ^= mask;
        }
        if let Some(dirty) = s.dirty.get_mut(&sector).map(Arc::make_mut) {
            for &(pos, mask) in &positions {
                dirty[pos] ^= mask;
            }
        }
        drop(s);
        ev!(self, "corrupt sector {sector}: {flips} bytes flipped");
    }

    /// Forget every sector (the run is over). Tasks that madsim does not drop with its runtime keep
    /// clones of a disk (madsim issue 242); this returns the disk's memory anyway.
    pub fn release_memory(&self) {
        let mut s = self.lock();
        s.durable = BTreeMap::new();
        s.dirty = BTreeMap::new();
        s.overwritten = BTreeMap::new();
        s.offline = true;
    }

    /// Sectors from `first` on that hold durable data (for a nemesis that corrupts written data).
    pub fn durable_sectors_from(&self, first: u64) -> Vec<u64> {
        self.lock().durable.range(first..).map(|(&sector, _)| sector).collect()
    }

    /// Reads touching `sector` fail with [`DiskError::ReadFailed`] while `failing`.
    pub fn fail_reads(&self, sector: u64, failing: bool) {
        let mut s = self.lock();
        if failing {
            s.failing_reads.insert(sector);
        } else {
            s.failing_reads.remove(&sector);
        }
        drop(s);
        ev!(self, "fail reads of sector {sector}: {failing}");
    }

    /// The next write fails ([`DiskError::WriteFailed`], part of it may have reached the medium) and
    /// fences the device.
    pub fn fail_next_write(&self) {
        self.lock().fail_next_write = true;
        ev!(self, "armed write failure");
    }

    /// The next flush fails ([`DiskError::WriteFailed`], part of it may have reached the medium) and
    /// fences the device.
    pub fn fail_next_flush(&self) {
        self.lock().fail_next_flush = true;
        ev!(self, "armed flush failure");
    }

    /// Clear fencing (an operator or the repair path re-opened the device).
    pub fn repair(&self) {
        self.lock().fenced = false;
        ev!(self, "repair");
    }

    /// A noisy neighbour: every latency is multiplied by `factor` until virtual now + `duration`.
    pub fn slow_episode(&self, factor: u32, duration: Duration) {
        let until_ns = virtual_now_ns().saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        let mut s = self.lock();
        s.slow_factor = factor.max(1);
        s.slow_until_ns = until_ns;
        drop(s);
        ev!(self, "slow episode x{factor} for {}ms", duration.as_millis());
    }

    /// Clear every armed or ongoing injected fault: armed crash, armed write/flush failure, failing
    /// reads, slow episode. Corruption already on the medium and fencing stay.
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.crash_after_io = None;
        s.crash_at_write = None;
        s.fail_next_write = false;
        s.fail_next_flush = false;
        s.failing_reads.clear();
        s.slow_until_ns = 0;
        drop(s);
        ev!(self, "faults cleared");
    }

    pub fn is_offline(&self) -> bool {
        self.lock().offline
    }

    pub fn is_fenced(&self) -> bool {
        self.lock().fenced
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Sectors written since the last flush (what a crash now could lose).
    pub fn unflushed_sectors(&self) -> usize {
        self.lock().dirty.len()
    }

    async fn pause(delay: Duration) {
        if !delay.is_zero() {
            madsim::time::sleep(delay).await;
        }
    }

    async fn do_read(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        let (epoch, delay) = {
            let s = self.lock();
            let checked = check_io_range(offset_bytes, len_bytes as u64, self.model.capacity_bytes)
                .and_then(|()| if s.offline { Err(DiskError::Offline) } else { Ok(()) })
                .and_then(|()| if s.fenced { Err(DiskError::Fenced) } else { Ok(()) });
            if let Err(e) = checked {
                drop(s);
                ev!(self, "read off={offset_bytes} len={len_bytes}: {e:?}");
                return Err(e);
            }
            (s.epoch, s.delay(self.model.latency_us(self.model.read_latency_us, len_bytes as u64)))
        };
        Self::pause(delay).await;
        let mut s = self.lock();
        if s.offline || s.epoch != epoch {
            drop(s);
            ev!(self, "read off={offset_bytes} len={len_bytes}: offline in flight");
            return Err(DiskError::Offline);
        }
        let first = offset_bytes / SECTOR;
        let count = len_bytes as u64 / SECTOR;
        if let Some(&bad) = s.failing_reads.range(first..first + count).next() {
            drop(s);
            ev!(self, "read off={offset_bytes} len={len_bytes}: medium error at sector {bad}");
            return Err(DiskError::ReadFailed { offset_bytes: bad * SECTOR });
        }
        let mut out = Vec::with_capacity(len_bytes);
        for sector in first..first + count {
            out.extend_from_slice(s.live(sector));
        }
        s.stats.reads += 1;
        s.stats.bytes_read += len_bytes as u64;
        drop(s);
        ev!(self, "read off={offset_bytes} len={len_bytes}: ok fp={:016x}", fnv64(&out));
        Ok(out)
    }

    async fn do_write(&self, offset_bytes: u64, data: Vec<u8>) -> Result<(), DiskError> {
        let len_bytes = data.len();
        let (epoch, delay) = {
            let mut s = self.lock();
            let checked = check_io_range(offset_bytes, len_bytes as u64, self.model.capacity_bytes)
                .and_then(|()| if s.offline { Err(DiskError::Offline) } else { Ok(()) })
                .and_then(|()| if s.fenced { Err(DiskError::Fenced) } else { Ok(()) });
            if let Err(e) = checked {
                drop(s);
                ev!(self, "write off={offset_bytes} len={len_bytes}: {e:?}");
                return Err(e);
            }
            if s.crash_due() || s.crash_at_write_due(offset_bytes, len_bytes as u64) {
                let applied = s.apply_write(offset_bytes, &data, true);
                let (kept, unflushed) = s.crash();
                drop(s);
                ev!(
                    self,
                    "write off={offset_bytes} len={len_bytes}: crash during write ({applied} sectors applied), \
                     kept {kept} of {unflushed} unflushed sectors"
                );
                return Err(DiskError::Offline);
            }
            if s.fail_next_write {
                s.fail_next_write = false;
                s.fenced = true;
                let applied = s.apply_write(offset_bytes, &data, true);
                drop(s);
                ev!(self, "write off={offset_bytes} len={len_bytes}: failed ({applied} sectors applied), fenced");
                return Err(DiskError::WriteFailed { offset_bytes });
            }
            (s.epoch, s.delay(self.model.latency_us(self.model.write_latency_us, len_bytes as u64)))
        };
        Self::pause(delay).await;
        let mut s = self.lock();
        if s.offline || s.epoch != epoch {
            drop(s);
            ev!(self, "write off={offset_bytes} len={len_bytes}: offline in flight, not applied");
            return Err(DiskError::Offline);
        }
        if s.fenced {
            drop(s);
            ev!(self, "write off={offset_bytes} len={len_bytes}: fenced in flight, not applied");
            return Err(DiskError::Fenced);
        }
        s.apply_write(offset_bytes, &data, false);
        s.stats.writes += 1;
        s.stats.bytes_written += len_bytes as u64;
        drop(s);
        ev!(self, "write off={offset_bytes} len={len_bytes}: ok fp={:016x}", fnv64(&data));
        Ok(())
    }

    async fn do_flush(&self) -> Result<(), DiskError> {
        let (epoch, delay) = {
            let mut s = self.lock();
            let checked = if s.offline {
                Err(DiskError::Offline)
            } else if s.fenced {
                Err(DiskError::Fenced)
            } else {
                Ok(())
            };
            if let Err(e) = checked {
                drop(s);
                ev!(self, "flush: {e:?}");
                return Err(e);
            }
            if s.crash_due() {
                let (kept, unflushed) = s.crash();
                drop(s);
                ev!(self, "flush: crash during flush, kept {kept} of {unflushed} unflushed sectors");
                return Err(DiskError::Offline);
            }
            if s.fail_next_flush {
                s.fail_next_flush = false;
                s.fenced = true;
                // Some of the dirty sectors may have reached the medium before the failure.
                let dirty = std::mem::take(&mut s.dirty);
                let mut reached = 0;
                for (sector, data) in dirty {
                    if s.rng.chance(1, 2) {
                        s.durable.insert(sector, data.clone());
                        reached += 1;
                    }
                    s.dirty.insert(sector, data);
                }
                drop(s);
                ev!(self, "flush: failed ({reached} sectors reached the medium), fenced");
                return Err(DiskError::WriteFailed { offset_bytes: 0 });
            }
            (s.epoch, s.delay(self.model.flush_latency_us))
        };
        Self::pause(delay).await;
        let mut s = self.lock();
        if s.offline || s.epoch != epoch {
            drop(s);
            ev!(self, "flush: offline in flight");
            return Err(DiskError::Offline);
        }
        if s.fenced {
            drop(s);
            ev!(self, "flush: fenced in flight");
            return Err(DiskError::Fenced);
        }
        let sectors = s.dirty.len();
        s.flush_all();
        s.stats.flushes += 1;
        drop(s);
        ev!(self, "flush: ok ({sectors} sectors made durable)");
        Ok(())
    }
}

impl Disk for SimDisk {
    fn capacity_bytes(&self) -> u64 {
        self.model.capacity_bytes
    }

    fn read(&self, offset_bytes: u64, len_bytes: usize) -> impl Future<Output = Result<Vec<u8>, DiskError>> + Send {
        let this = self.clone();
        async move { this.do_read(offset_bytes, len_bytes).await }
    }

    fn write(&self, offset_bytes: u64, data: &[u8]) -> impl Future<Output = Result<(), DiskError>> + Send {
        let this = self.clone();
        let data = data.to_vec();
        async move { this.do_write(offset_bytes, data).await }
    }

    fn flush(&self) -> impl Future<Output = Result<(), DiskError>> + Send {
        let this = self.clone();
        async move { this.do_flush().await }
    }
}
