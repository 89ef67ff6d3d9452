//! The shared disk conformance suite and the crash/fault semantics of `SimDisk`.

use std::time::Duration;

use madsim::runtime::Runtime;
use tessera_env::{DetRng, Disk, DiskError, Rng, SECTOR_SIZE_BYTES, conformance};
use tessera_sim::{DiskModel, SimDisk, Trace};

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;
const CAPACITY_BYTES: u64 = 64 * SECTOR;

fn disk(seed: u64, model: DiskModel) -> SimDisk {
    SimDisk::new(format!("d{seed}"), model, DetRng::from_seed(seed).fork("disk:test"), Trace::new(false))
}

fn run<F: std::future::Future>(seed: u64, f: F) -> F::Output {
    Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(f)
}

fn block(byte: u8, sectors: usize) -> Vec<u8> {
    vec![byte; sectors * SECTOR_SIZE_BYTES]
}

#[test]
fn conformance_suite_passes_with_latency() {
    run(1, async {
        let d = disk(1, DiskModel::nvme(CAPACITY_BYTES));
        conformance::check_all(&d).await.unwrap();
        let reopened = conformance::check_flushed_survives_reopen(d, |d| {
            d.crash();
            d.restart();
            d
        })
        .await
        .unwrap();
        assert_eq!(reopened.stats().crashes, 1);
    });
}

#[test]
fn conformance_suite_passes_instant_outside_runtime() {
    let d = disk(2, DiskModel::instant(CAPACITY_BYTES));
    futures::executor::block_on(async {
        conformance::check_all(&d).await.unwrap();
        conformance::check_flushed_survives_reopen(d, |d| {
            d.crash();
            d.restart();
            d
        })
        .await
        .unwrap();
    });
}

#[test]
fn flushed_survives_every_crash_and_offline_until_restart() {
    for seed in 0..20 {
        run(seed, async move {
            let d = disk(seed, DiskModel::nvme(CAPACITY_BYTES));
            d.write(0, &block(1, 4)).await.unwrap();
            d.flush().await.unwrap();
            d.write(0, &block(2, 4)).await.unwrap();
            d.crash();
            assert!(d.is_offline());
            assert_eq!(d.read(0, SECTOR_SIZE_BYTES).await, Err(DiskError::Offline));
            assert_eq!(d.write(0, &block(3, 1)).await, Err(DiskError::Offline));
            assert_eq!(d.flush().await, Err(DiskError::Offline));
            d.restart();
            let back = d.read(0, 4 * SECTOR_SIZE_BYTES).await.unwrap();
            for sector in back.chunks(SECTOR_SIZE_BYTES) {
                assert!(sector.iter().all(|&b| b == 1) || sector.iter().all(|&b| b == 2), "seed {seed}: mixed sector");
            }
        });
    }
}

#[test]
fn unflushed_writes_tear_differently_across_seeds() {
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let d = disk(seed, DiskModel::instant(CAPACITY_BYTES));
        let kept: Vec<bool> = futures::executor::block_on(async {
            d.write(0, &block(9, 8)).await.unwrap();
            d.crash();
            d.restart();
            let back = d.read(0, 8 * SECTOR_SIZE_BYTES).await.unwrap();
            back.chunks(SECTOR_SIZE_BYTES).map(|s| s[0] == 9).collect()
        });
        outcomes.insert(kept);
    }
    assert!(outcomes.contains(&vec![true; 8]), "never kept everything");
    assert!(outcomes.contains(&vec![false; 8]), "never lost everything");
    assert!(outcomes.len() >= 4, "too few distinct tears: {}", outcomes.len());
}

/// The Disk contract lets every unflushed write of a sector survive or not on its own, so a sector
/// written twice since the last flush may come back holding the first write, the second, or neither.
#[test]
fn a_sector_written_twice_unflushed_may_come_back_with_either_write_or_none() {
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..60 {
        let d = disk(seed, DiskModel::instant(CAPACITY_BYTES));
        let first = futures::executor::block_on(async {
            d.write(0, &block(1, 1)).await.unwrap();
            d.flush().await.unwrap();
            d.write(0, &block(2, 1)).await.unwrap();
            d.write(0, &block(3, 1)).await.unwrap();
            d.crash();
            d.restart();
            d.read(0, SECTOR_SIZE_BYTES).await.unwrap()[0]
        });
        outcomes.insert(first);
    }
    assert_eq!(outcomes, [1u8, 2, 3].into_iter().collect(), "durable, first and second write all reachable");
}

#[test]
fn op_in_flight_at_crash_does_not_apply() {
    run(3, async {
        let d = disk(3, DiskModel::nvme(CAPACITY_BYTES));
        d.write(0, &block(1, 1)).await.unwrap();
        d.flush().await.unwrap();
        let writer = d.clone();
        let task = madsim::task::spawn(async move { writer.write(0, &block(2, 1)).await });
        madsim::time::sleep(Duration::from_micros(1)).await;
        d.crash();
        d.restart();
        assert_eq!(task.await.unwrap(), Err(DiskError::Offline));
        assert_eq!(d.read(0, SECTOR_SIZE_BYTES).await.unwrap(), block(1, 1));
    });
}

/// A crash armed for a large write in a region: smaller writes and writes elsewhere complete; the first
/// matching write tears and takes the device down; a crash disarms it.
#[test]
fn crash_at_write_fires_on_the_first_large_write_in_its_region() {
    let mut torn_shapes = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let d = disk(seed, DiskModel::instant(CAPACITY_BYTES));
        futures::executor::block_on(async {
            d.crash_at_write(10..20, 2);
            d.write(10 * SECTOR, &block(1, 1)).await.unwrap();
            d.write(2 * SECTOR, &block(1, 4)).await.unwrap();
            d.write(18 * SECTOR, &block(1, 4)).await.unwrap();
            d.flush().await.unwrap();
            assert_eq!(d.write(12 * SECTOR, &block(2, 2)).await, Err(DiskError::Offline));
            assert!(d.is_offline());
            d.restart();
            let torn = d.read(12 * SECTOR, 2 * SECTOR_SIZE_BYTES).await.unwrap();
            let shape: Vec<bool> = torn.chunks(SECTOR_SIZE_BYTES).map(|s| s.iter().all(|&b| b == 2)).collect();
            for s in torn.chunks(SECTOR_SIZE_BYTES) {
                assert!(s.iter().all(|&b| b == 0) || s.iter().all(|&b| b == 2));
            }
            torn_shapes.insert(shape);
            d.write(12 * SECTOR, &block(3, 2)).await.unwrap();
            // Disarmed by a plain crash too.
            d.crash_at_write(0..100, 1);
            d.crash();
            d.restart();
            d.write(0, &block(4, 1)).await.unwrap();
        });
    }
    assert!(torn_shapes.contains(&vec![true, false]), "a torn write kept its first sector only: {torn_shapes:?}");
}

#[test]
fn crash_after_io_fires_on_the_nth_call() {
    for seed in 0..10 {
        let d = disk(seed, DiskModel::instant(CAPACITY_BYTES));
        futures::executor::block_on(async {
            d.crash_after_io(3);
            d.write(0, &block(1, 2)).await.unwrap();
            d.flush().await.unwrap();
            assert_eq!(d.write(2 * SECTOR, &block(2, 4)).await, Err(DiskError::Offline));
            assert!(d.is_offline());
            d.restart();
            assert_eq!(d.read(0, 2 * SECTOR_SIZE_BYTES).await.unwrap(), block(1, 2), "flushed data lost");
            // Sectors of the torn write are each either old (zero) or new.
            let torn = d.read(2 * SECTOR, 4 * SECTOR_SIZE_BYTES).await.unwrap();
            for s in torn.chunks(SECTOR_SIZE_BYTES) {
                assert!(s.iter().all(|&b| b == 0) || s.iter().all(|&b| b == 2));
            }
            assert_eq!(d.stats().crashes, 1);
            // The crash is spent: later calls complete.
            d.write(0, &block(3, 1)).await.unwrap();
            d.flush().await.unwrap();
        });
    }
}

#[test]
fn corrupt_sector_changes_both_images() {
    let d = disk(4, DiskModel::instant(CAPACITY_BYTES));
    futures::executor::block_on(async {
        d.write(SECTOR, &block(5, 1)).await.unwrap();
        d.flush().await.unwrap();
        d.corrupt_sector(1);
        assert_ne!(d.read(SECTOR, SECTOR_SIZE_BYTES).await.unwrap(), block(5, 1));
        d.crash();
        d.restart();
        assert_ne!(d.read(SECTOR, SECTOR_SIZE_BYTES).await.unwrap(), block(5, 1), "corruption not durable");
        assert_eq!(d.read(0, SECTOR_SIZE_BYTES).await.unwrap(), block(0, 1), "neighbour changed");
    });
}

#[test]
fn failing_reads_fail_only_where_they_touch() {
    let d = disk(5, DiskModel::instant(CAPACITY_BYTES));
    futures::executor::block_on(async {
        d.fail_reads(3, true);
        assert_eq!(
            d.read(2 * SECTOR, 2 * SECTOR_SIZE_BYTES).await,
            Err(DiskError::ReadFailed { offset_bytes: 3 * SECTOR })
        );
        assert!(d.read(0, 3 * SECTOR_SIZE_BYTES).await.is_ok());
        d.write(3 * SECTOR, &block(1, 1)).await.unwrap();
        d.fail_reads(3, false);
        assert_eq!(d.read(3 * SECTOR, SECTOR_SIZE_BYTES).await.unwrap(), block(1, 1));
    });
}

#[test]
fn failed_write_and_flush_fence_until_repair() {
    let d = disk(6, DiskModel::instant(CAPACITY_BYTES));
    futures::executor::block_on(async {
        d.fail_next_write();
        assert_eq!(d.write(0, &block(1, 1)).await, Err(DiskError::WriteFailed { offset_bytes: 0 }));
        assert!(d.is_fenced());
        assert_eq!(d.write(0, &block(1, 1)).await, Err(DiskError::Fenced));
        assert_eq!(d.read(0, SECTOR_SIZE_BYTES).await, Err(DiskError::Fenced));
        assert_eq!(d.flush().await, Err(DiskError::Fenced));
        d.repair();
        d.write(0, &block(2, 1)).await.unwrap();
        d.fail_next_flush();
        assert_eq!(d.flush().await, Err(DiskError::WriteFailed { offset_bytes: 0 }));
        assert_eq!(d.flush().await, Err(DiskError::Fenced));
        d.repair();
        d.flush().await.unwrap();
    });
}

#[test]
fn slow_episode_multiplies_latency_then_ends() {
    run(7, async {
        let d = disk(7, DiskModel { flush_latency_us: 2_000, ..DiskModel::nvme(CAPACITY_BYTES) });
        let t0 = madsim::time::Instant::now();
        d.flush().await.unwrap();
        let normal = t0.elapsed();
        d.slow_episode(10, Duration::from_secs(1));
        let t1 = madsim::time::Instant::now();
        d.flush().await.unwrap();
        let slow = t1.elapsed();
        assert!(slow >= normal * 5, "slow {slow:?} vs normal {normal:?}");
        madsim::time::sleep(Duration::from_secs(2)).await;
        let t2 = madsim::time::Instant::now();
        d.flush().await.unwrap();
        assert!(t2.elapsed() < normal * 2, "episode did not end");
    });
}

#[test]
fn same_seed_same_trace() {
    let hash = |seed: u64| {
        let trace = Trace::new(false);
        let mut rng = DetRng::from_seed(seed);
        let d = SimDisk::new("d".into(), DiskModel::instant(CAPACITY_BYTES), rng.fork("disk"), trace.clone());
        futures::executor::block_on(async {
            for i in 0..8u64 {
                d.write(i * SECTOR, &block(i as u8 + 1, 1)).await.unwrap();
            }
            d.crash();
            d.restart();
            let _ = d.read(0, 8 * SECTOR_SIZE_BYTES).await.unwrap();
        });
        trace.hash()
    };
    assert_eq!(hash(11), hash(11));
    let distinct: std::collections::BTreeSet<u64> = (0..8).map(hash).collect();
    assert!(distinct.len() > 1);
}
