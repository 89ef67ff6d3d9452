//! Crash-recovery seeds against the storage engine.
//!
//! One seed drives one simulated drive through several power losses at random points: between and inside
//! writes, frees and checkpoints (the drive dies at its n-th write or flush, tearing what was unflushed).
//! After each loss the store is reopened from the durable image and judged by
//! [`tessera_specs::durability::DurabilityModel`]: every acknowledged extent reads back with its exact
//! bytes, nothing freed comes back, nothing unacknowledged appears unless with exactly the bytes of a write
//! in flight. The drive has no latency model, so a seed runs without a madsim runtime and takes
//! milliseconds; the seed alone decides everything.

use std::collections::BTreeMap;

use tessera_env::{DetRng, Rng};
use tessera_specs::durability::{DurabilityModel, Observed};
use tessera_store::{DeviceIdentity, ExtentId, Store, StoreConfig, StoreError};

use crate::{DiskModel, SimDisk, Trace};

/// Drive size for crash seeds: small, so the journal wraps and checkpoints happen often.
const CAPACITY_BYTES: u64 = 4 * 1024 * 1024;
const JOURNAL_BYTES: u64 = 64 * 1024;
const MAX_EXTENT_BYTES: u32 = 128 * 1024;
const CRASHES_PER_SEED: u32 = 4;
const OPS_PER_ROUND_MAX: u64 = 60;

/// What one crash seed did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashSeedReport {
    pub crashes: u32,
    pub writes_acked: u64,
    pub frees_acked: u64,
    pub checkpoints: u64,
    pub extents_checked: u64,
}

/// The one-line command that replays a crash seed.
pub fn crash_replay_command(seed: u64) -> String {
    format!("cargo run -p tessera-sim -- crash --seed {seed}")
}

/// Run one crash seed. `Err` carries the reason and the replay command.
pub fn run_crash_seed(seed: u64) -> Result<CrashSeedReport, String> {
    futures::executor::block_on(crash_seed(seed))
        .map_err(|reason| format!("crash seed {seed} failed: {reason}\nreplay: {}", crash_replay_command(seed)))
}

async fn crash_seed(seed: u64) -> Result<CrashSeedReport, String> {
    let mut rng = DetRng::from_seed(seed);
    let disk =
        SimDisk::new(format!("crash-{seed}"), DiskModel::instant(CAPACITY_BYTES), rng.fork("disk"), Trace::new(false));
    let identity = DeviceIdentity { cluster_id: u128::from(seed), device_id: 1 };
    let config = StoreConfig { max_extent_bytes: MAX_EXTENT_BYTES, journal_bytes: Some(JOURNAL_BYTES) };
    let mut store = Store::format(disk.clone(), identity, config).await.map_err(|e| format!("format: {e}"))?;
    let mut model = DurabilityModel::new();
    let mut report = CrashSeedReport::default();
    for _ in 0..CRASHES_PER_SEED {
        disk.crash_after_io(rng.range_inclusive(1, 3 * OPS_PER_ROUND_MAX));
        run_until_crash(&mut store, &disk, &mut model, &mut rng, &mut report).await?;
        if !disk.is_offline() {
            disk.crash();
        }
        report.crashes += 1;
        drop(store);
        disk.restart();
        store = Store::open(disk.clone()).await.map_err(|e| format!("reopen after crash {}: {e}", report.crashes))?;
        let present = observe(&store).await;
        report.extents_checked += present.len() as u64;
        let violations = model.check(present);
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
            return Err(format!("after crash {}: {}", report.crashes, list.join("; ")));
        }
    }
    Ok(report)
}

async fn observe(store: &Store<SimDisk>) -> BTreeMap<u64, Observed> {
    let mut present = BTreeMap::new();
    for (id, _) in store.extents() {
        let observed = match store.read_extent(id).await {
            Ok(bytes) => Observed::Bytes(bytes),
            Err(e) => Observed::Error(e.to_string()),
        };
        present.insert(id.0, observed);
    }
    present
}

/// Why an operation did not complete: the store failed (expected once the drive has died), or it
/// returned wrong bytes (always a bug).
enum OpFailure {
    Store(StoreError),
    Wrong(String),
}

impl From<StoreError> for OpFailure {
    fn from(e: StoreError) -> OpFailure {
        OpFailure::Store(e)
    }
}

/// Issue random operations until the drive dies or the round's budget is spent.
async fn run_until_crash(
    store: &mut Store<SimDisk>,
    disk: &SimDisk,
    model: &mut DurabilityModel,
    rng: &mut DetRng,
    report: &mut CrashSeedReport,
) -> Result<(), String> {
    for _ in 0..OPS_PER_ROUND_MAX {
        let result = match rng.below(10) {
            0..=5 => write_batch(store, model, rng, report).await,
            6..=7 => free_one(store, model, rng, report).await,
            8 => {
                report.checkpoints += 1;
                store.checkpoint().await.map_err(OpFailure::from)
            }
            _ => read_one(store, model, rng).await,
        };
        match result {
            Ok(()) => {}
            Err(OpFailure::Wrong(reason)) => return Err(reason),
            Err(OpFailure::Store(_)) if disk.is_offline() => return Ok(()),
            Err(OpFailure::Store(e)) => return Err(format!("store error on a healthy drive: {e}")),
        }
    }
    Ok(())
}

async fn write_batch(
    store: &mut Store<SimDisk>,
    model: &mut DurabilityModel,
    rng: &mut DetRng,
    report: &mut CrashSeedReport,
) -> Result<(), OpFailure> {
    let count = rng.range_inclusive(1, 3) as usize;
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let len = rng.range_inclusive(1, u64::from(MAX_EXTENT_BYTES) / 2) as usize;
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            data
        })
        .collect();
    let token = model.begin_write(payloads.clone());
    let batch: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    match store.write_extents(&batch).await {
        Ok(ids) => {
            let ids: Vec<u64> = ids.iter().map(|id| id.0).collect();
            model.ack_write(token, &ids);
            report.writes_acked += ids.len() as u64;
            Ok(())
        }
        Err(StoreError::NoSpace { .. }) => {
            model.fail_write(token);
            free_one(store, model, rng, report).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn free_one(
    store: &mut Store<SimDisk>,
    model: &mut DurabilityModel,
    rng: &mut DetRng,
    report: &mut CrashSeedReport,
) -> Result<(), OpFailure> {
    let live: Vec<u64> = model.certain().map(|(id, _)| id).collect();
    if live.is_empty() {
        return Ok(());
    }
    let id = live[rng.below(live.len() as u64) as usize];
    model.begin_free(id);
    store.free_extent(ExtentId(id)).await?;
    model.ack_free(id);
    report.frees_acked += 1;
    Ok(())
}

async fn read_one(store: &mut Store<SimDisk>, model: &DurabilityModel, rng: &mut DetRng) -> Result<(), OpFailure> {
    let live: Vec<(u64, Vec<u8>)> = model.certain().map(|(id, d)| (id, d.to_vec())).collect();
    if live.is_empty() {
        return Ok(());
    }
    let (id, expected) = &live[rng.below(live.len() as u64) as usize];
    let got = store.read_extent(ExtentId(*id)).await?;
    if &got != expected {
        return Err(OpFailure::Wrong(format!("extent {id} read back wrong bytes before any crash")));
    }
    Ok(())
}
