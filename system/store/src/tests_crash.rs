//! Crash loops: random operations, a power cut at a random disk call, a crash that keeps or drops each
//! unflushed sector, then recovery. Every acknowledged extent must survive with its exact bytes, every
//! acknowledged free must stay freed, and anything else that appears must be an in-flight write's bytes.

use std::collections::BTreeMap;

use tessera_env::hooks::{self, HookConfig};
use tessera_env::{DetRng, Rng};

use crate::testdisk::MemDisk;
use crate::tests::{IDENTITY, bytes, run, small_config};
use crate::{ExtentId, Store, StoreConfig, StoreError};

/// The operation a power cut interrupted: its outcome may go either way.
#[derive(Debug, Default)]
struct InDoubt {
    writes: Vec<Vec<u8>>,
    free: Option<ExtentId>,
}

fn check_recovered(store: &Store<MemDisk>, acked: &mut BTreeMap<ExtentId, Vec<u8>>, doubt: &InDoubt, seed: u64) {
    let live: BTreeMap<ExtentId, u64> = store.extents().into_iter().collect();
    for (id, data) in acked.iter() {
        if !live.contains_key(id) {
            assert_eq!(doubt.free, Some(*id), "seed {seed}: acknowledged {id} lost");
            continue;
        }
        assert_eq!(run(store.read_extent(*id)).as_ref(), Ok(data), "seed {seed}: {id} has wrong bytes");
    }
    if let Some(id) = doubt.free
        && !live.contains_key(&id)
    {
        acked.remove(&id);
    }
    for (&id, &len) in &live {
        if acked.contains_key(&id) {
            continue;
        }
        let data =
            run(store.read_extent(id)).unwrap_or_else(|e| panic!("seed {seed}: unacknowledged {id} unreadable: {e}"));
        assert_eq!(data.len() as u64, len);
        assert!(doubt.writes.contains(&data), "seed {seed}: {id} appeared with bytes nobody wrote");
        acked.insert(id, data);
    }
    let used_blocks: u64 = acked.values().map(|d| (d.len() as u64).div_ceil(4096)).sum();
    assert_eq!(store.stats().used_bytes, used_blocks * 4096, "seed {seed}: allocator disagrees with the table");
}

/// Runs random operations until one fails (the power cut); returns what is in doubt.
fn run_until_cut(
    store: &mut Store<MemDisk>,
    acked: &mut BTreeMap<ExtentId, Vec<u8>>,
    rng: &mut DetRng,
    max_bytes: u64,
) -> InDoubt {
    for _ in 0..60 {
        let choice = rng.below(100);
        let (result, doubt) = if choice < 45 || acked.is_empty() {
            let count = if choice < 30 { 1 } else { rng.range_inclusive(2, 6) };
            let writes: Vec<Vec<u8>> =
                (0..count).map(|_| bytes(rng.next_u64(), rng.range_inclusive(1, max_bytes) as usize)).collect();
            let refs: Vec<&[u8]> = writes.iter().map(|w| w.as_slice()).collect();
            match run(store.write_extents(&refs)) {
                Ok(ids) => {
                    acked.extend(ids.into_iter().zip(writes));
                    continue;
                }
                Err(e) => (e, InDoubt { writes, free: None }),
            }
        } else if choice < 55 {
            let (&id, data) = acked.iter().nth(rng.below(acked.len() as u64) as usize).expect("non-empty");
            match run(store.read_extent(id)) {
                Ok(got) => {
                    assert_eq!(&got, data, "{id} read back wrong bytes before the crash");
                    continue;
                }
                Err(e) => (e, InDoubt::default()),
            }
        } else if choice < 95 {
            let id = *acked.keys().nth(rng.below(acked.len() as u64) as usize).expect("non-empty");
            match run(store.free_extent(id)) {
                Ok(()) => {
                    acked.remove(&id);
                    continue;
                }
                Err(e) => (e, InDoubt { writes: Vec::new(), free: Some(id) }),
            }
        } else {
            match run(store.checkpoint()) {
                Ok(()) => continue,
                Err(e) => (e, InDoubt::default()),
            }
        };
        if matches!(result, StoreError::NoSpace { .. }) {
            continue;
        }
        assert!(matches!(result, StoreError::Disk(_)), "unexpected {result:?}");
        return doubt;
    }
    InDoubt::default()
}

fn crash_loop(seed: u64, iterations: u32, config: StoreConfig) {
    let mut rng = DetRng::from_seed(seed);
    let disk = MemDisk::new(1 << 20);
    let max_bytes = u64::from(config.max_extent_bytes);
    drop(run(Store::format(disk.clone(), IDENTITY, config)).expect("format"));
    let mut acked: BTreeMap<ExtentId, Vec<u8>> = BTreeMap::new();
    let mut doubt = InDoubt::default();
    for _ in 0..iterations {
        let mut store = run(Store::open(disk.clone())).unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
        check_recovered(&store, &mut acked, &doubt, seed);
        disk.set_ops_budget(Some(rng.below(60)));
        doubt = run_until_cut(&mut store, &mut acked, &mut rng, max_bytes);
        drop(store);
        disk.crash(&mut rng);
    }
}

#[test]
fn crash_loop_small_extents() {
    crash_loop(0x7E55_E2A1, 1000, small_config());
}

#[test]
fn crash_loop_one_block_extents_many_checkpoints() {
    crash_loop(0xC0FF_EE01, 1000, StoreConfig { max_extent_bytes: 4096, journal_bytes: Some(64 * 1024) });
}

#[test]
fn crash_loop_many_seeds() {
    for seed in 0..32 {
        crash_loop(seed, 100, small_config());
    }
}

/// The crash loop with the store's fault hooks firing often (when they are compiled in: feature
/// `sim-hooks` of tessera-env): an early checkpoint or a batch committed one entry per record must
/// never lose an acknowledged extent or invent one.
#[test]
fn crash_loop_with_fault_hooks() {
    let config =
        HookConfig { seed: 0x0B06_61F7, buggify: true, site_enabled_per_million: 1_000_000, fire_per_million: 200_000 };
    let installed = hooks::install(config);
    for seed in 0..16 {
        crash_loop(seed, 100, small_config());
    }
    let report = installed.finish();
    if hooks::ENABLED {
        for site in ["store.checkpoint_early", "store.split_commit_entries"] {
            assert!(report.sites.get(site).is_some_and(|s| s.fired > 0), "{site} never fired: {report:?}");
        }
    }
}
