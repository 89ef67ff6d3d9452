//! Storage engine overhead over the raw device: `tessera_store::Store<FileDisk>` against `FileDisk` itself,
//! in one run, on one file in one file system.
//!
//! Cases (each moves 64 MiB per iteration, reported in bytes/s):
//! - `write/raw_1MiB_then_flush`: 64 sequential 1 MiB `FileDisk::write`s from an ordinary `Vec` (so under
//!   `O_DIRECT` each goes through the aligned bounce buffer), then one `flush`. The ceiling.
//! - `write/raw_aligned_1MiB_then_flush`: the same from 4 KiB-aligned memory (no bounce copy).
//! - `write/store_write_extents_batch8`: 64 extents of 1 MiB through `Store::write_extents`, 8 per call
//!   (group commit: one journal commit per 8 extents). Every call returns durable.
//! - `write/store_write_extent_each`: 64 separate `Store::write_extent` calls, each durable on return.
//! - `read/raw_1MiB`: 64 sequential 1 MiB `FileDisk::read`s.
//! - `read/store_read_extent`: 64 `Store::read_extent`s (CRC32C verified per 4 KiB block).
//!
//! The device is a 256 MiB file, written through once before measuring so that no case pays for file
//! system block allocation. Each store write iteration formats the device afresh (untimed), so it never
//! fills. Directory: `$TESSERA_BENCH_DIR` if set, else a temp dir under the system temp dir.
//!
//! After the criterion groups a paired pass alternates raw and store iterations and prints the store/raw
//! ratio from medians (`paired: ...` lines), which holds up better than comparing criterion means when
//! other processes share the machine. `TESSERA_BENCH_NO_PAIRED=1` skips it (a criterion filter does not).
//!
//! Run: `cargo bench -p tessera-real-io --bench store`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use tessera_env::Disk;
use tessera_real_io::FileDisk;
use tessera_store::{DeviceIdentity, ExtentId, Store, StoreConfig};

const MIB: usize = 1 << 20;
const EXTENT_BYTES: usize = MIB;
const TOTAL_BYTES: usize = 64 * MIB;
const EXTENTS: usize = TOTAL_BYTES / EXTENT_BYTES;
const GROUP_COMMIT: usize = 8;
const DEVICE_BYTES: u64 = 256 * MIB as u64;
const IDENTITY: DeviceIdentity = DeviceIdentity { cluster_id: 0x7e55_e7a0, device_id: 1 };

const _: () = assert!(EXTENTS.is_multiple_of(GROUP_COMMIT));
const _: () = assert!(4 * TOTAL_BYTES as u64 <= DEVICE_BYTES);

struct Bench {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = common::bench_dir();
        let path = dir.path().join("bench.disk");
        let disk = FileDisk::create(&path, DEVICE_BYTES).expect("create bench disk");
        eprintln!("bench disk {} ({} MiB), O_DIRECT: {}", path.display(), DEVICE_BYTES >> 20, disk.is_direct());
        // Write the whole device once so later writes overwrite allocated blocks.
        let fill = payload(0xA5, 16 * MIB);
        for offset in (0..DEVICE_BYTES).step_by(fill.len()) {
            block_on(disk.write(offset, &fill)).expect("prefill");
        }
        block_on(disk.flush()).expect("prefill flush");
        Bench { _dir: dir, path }
    }

    /// A fresh handle on the bench device. A `FileDisk` holds an exclusive lock on its file, so the
    /// previous handle (or the store owning it) must be dropped first.
    fn disk(&self) -> FileDisk {
        FileDisk::open(&self.path).expect("open bench disk")
    }
}

/// Incompressible bytes (xorshift), different per seed.
fn payload(seed: u8, len: usize) -> Vec<u8> {
    common::xorshift_bytes(u64::from(seed) | 1, len)
}

/// `len` bytes of `payload` at a 4 KiB-aligned address inside `backing`.
fn aligned_window(backing: &mut Vec<u8>, len: usize) -> &[u8] {
    *backing = payload(3, len + 4096);
    let start = backing.as_ptr().align_offset(4096);
    &backing[start..start + len]
}

fn fresh_store(bench: &Bench) -> Store<FileDisk> {
    block_on(Store::format(bench.disk(), IDENTITY, StoreConfig::default())).expect("format")
}

fn extents() -> Vec<Vec<u8>> {
    (0..EXTENTS).map(|i| payload(i as u8, EXTENT_BYTES)).collect()
}

/// One raw write iteration: 64 x 1 MiB writes, one flush.
fn time_raw_write(disk: &FileDisk, extents: &[Vec<u8>]) -> Duration {
    let start = Instant::now();
    for (i, extent) in extents.iter().enumerate() {
        block_on(disk.write((i * EXTENT_BYTES) as u64, extent)).unwrap();
    }
    block_on(disk.flush()).unwrap();
    start.elapsed()
}

/// One store write iteration on a freshly formatted device (format untimed): `per_call` extents per
/// `write_extents` call (1 is the same protocol as `write_extent`).
fn time_store_write(bench: &Bench, extents: &[Vec<u8>], per_call: usize) -> Duration {
    let mut store = fresh_store(bench);
    let start = Instant::now();
    if per_call == 1 {
        for extent in extents {
            black_box(block_on(store.write_extent(extent)).unwrap());
        }
    } else {
        for batch in extents.chunks(per_call) {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            black_box(block_on(store.write_extents(&refs)).unwrap());
        }
    }
    start.elapsed()
}

fn write_group(c: &mut Criterion, bench: &Bench) {
    let extents = extents();
    let mut aligned_backing = Vec::new();
    let aligned = aligned_window(&mut aligned_backing, EXTENT_BYTES);

    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Bytes(TOTAL_BYTES as u64));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));

    g.bench_function(BenchmarkId::new("raw_1MiB_then_flush", "64MiB"), |b| {
        let disk = bench.disk();
        b.iter_custom(|iters| (0..iters).map(|_| time_raw_write(&disk, &extents)).sum());
    });

    g.bench_function(BenchmarkId::new("raw_aligned_1MiB_then_flush", "64MiB"), |b| {
        let disk = bench.disk();
        b.iter(|| {
            for i in 0..EXTENTS {
                block_on(disk.write((i * EXTENT_BYTES) as u64, aligned)).unwrap();
            }
            block_on(disk.flush()).unwrap();
        });
    });

    g.bench_function(BenchmarkId::new("store_write_extents_batch8", "64MiB"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_store_write(bench, &extents, GROUP_COMMIT)).sum());
    });

    g.bench_function(BenchmarkId::new("store_write_extent_each", "64MiB"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_store_write(bench, &extents, 1)).sum());
    });
    g.finish();
}

fn read_group(c: &mut Criterion, bench: &Bench) {
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(TOTAL_BYTES as u64));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    g.bench_function(BenchmarkId::new("raw_1MiB", "64MiB"), |b| {
        let disk = bench.disk();
        b.iter(|| {
            for i in 0..EXTENTS {
                black_box(block_on(disk.read((i * EXTENT_BYTES) as u64, EXTENT_BYTES)).unwrap());
            }
        });
    });

    // Set up after the raw case has closed its handle (a FileDisk holds an exclusive lock on the file).
    let mut store = fresh_store(bench);
    let ids: Vec<ExtentId> = extents().iter().map(|extent| block_on(store.write_extent(extent)).unwrap()).collect();
    g.bench_function(BenchmarkId::new("store_read_extent", "64MiB"), |b| {
        b.iter(|| {
            for id in &ids {
                let bytes = block_on(store.read_extent(*id)).unwrap();
                assert_eq!(bytes.len(), EXTENT_BYTES);
                black_box(bytes);
            }
        });
    });
    g.finish();
}

/// Median latency of a 4 KiB write + flush on the bench device: the store pays two flushes per commit,
/// so its throughput depends on this far more than the raw case's does. Printed with the paired results.
fn flush_latency(bench: &Bench) -> Duration {
    let disk = bench.disk();
    let block = payload(9, 4096);
    let mut samples: Vec<Duration> = (0..64)
        .map(|i| {
            let start = Instant::now();
            block_on(disk.write(DEVICE_BYTES - 4096 * (i + 1), &block)).unwrap();
            block_on(disk.flush()).unwrap();
            start.elapsed()
        })
        .collect();
    common::median(&mut samples)
}

/// The headline ratio, measured robustly on a shared machine: raw, batch-8 store and per-extent store
/// iterations alternate round after round, so background load hits all three alike; medians are compared.
/// Printed as `paired: ...` lines after criterion's output.
fn paired_ratio(bench: &Bench) {
    const ROUNDS: usize = 21;
    let extents = extents();
    let flush_before = flush_latency(bench);
    let (mut raw, mut batch8, mut each) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let disk = bench.disk();
        raw.push(time_raw_write(&disk, &extents));
        drop(disk);
        batch8.push(time_store_write(bench, &extents, GROUP_COMMIT));
        each.push(time_store_write(bench, &extents, 1));
    }
    let flush_after = flush_latency(bench);
    println!("paired: 4 KiB write + flush median latency {flush_before:?} before, {flush_after:?} after");
    let gib_per_s = |d: Duration| TOTAL_BYTES as f64 / f64::from(1u32 << 30) / d.as_secs_f64();
    let (raw, batch8, each) = (
        gib_per_s(common::median(&mut raw)),
        gib_per_s(common::median(&mut batch8)),
        gib_per_s(common::median(&mut each)),
    );
    println!("paired ({ROUNDS} alternating rounds, medians): raw_1MiB_then_flush {raw:.2} GiB/s");
    println!("paired: store_write_extents_batch8 {batch8:.2} GiB/s = {:.2} x raw", batch8 / raw);
    println!("paired: store_write_extent_each {each:.2} GiB/s = {:.2} x raw", each / raw);
}

fn benches(c: &mut Criterion) {
    let bench = Bench::new();
    write_group(c, &bench);
    read_group(c, &bench);
    if std::env::var_os("TESSERA_BENCH_NO_PAIRED").is_none() {
        paired_ratio(&bench);
    }
}

criterion_group!(store_vs_raw, benches);
criterion_main!(store_vs_raw);
