//! Engine tests: round trips, every bad input, corruption, fencing. Crash loops are in tests_crash.rs.

use std::future::Future;

use tessera_env::hooks::{self, HookConfig};
use tessera_env::{DetRng, DiskError, Rng};

use crate::layout::BLOCK_BYTES;
use crate::superblock::Superblock;
use crate::testdisk::MemDisk;
use crate::{BadBlockReason, DeviceIdentity, ExtentId, Store, StoreConfig, StoreError};

pub(crate) fn run<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

pub(crate) const IDENTITY: DeviceIdentity = DeviceIdentity { cluster_id: 0xC1, device_id: 0xD1 };

pub(crate) fn small_config() -> StoreConfig {
    StoreConfig { max_extent_bytes: 4 * 4096, journal_bytes: Some(64 * 1024) }
}

pub(crate) fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    DetRng::from_seed(seed).fill_bytes(&mut out);
    out
}

fn fresh(capacity_bytes: u64) -> (MemDisk, Store<MemDisk>) {
    let disk = MemDisk::new(capacity_bytes);
    let store = run(Store::format(disk.clone(), IDENTITY, small_config())).expect("format");
    (disk, store)
}

fn reopen(store: Store<MemDisk>) -> Store<MemDisk> {
    run(Store::open(store.into_disk())).expect("open")
}

fn open_err(disk: &MemDisk) -> StoreError {
    run(Store::open(disk.clone())).expect_err("open must fail")
}

#[test]
fn format_open_round_trip() {
    let (_, store) = fresh(1 << 20);
    let stats = store.stats();
    assert_eq!(stats.generation, 1);
    assert_eq!(stats.extent_count, 0);
    assert_eq!(stats.capacity_bytes, 1 << 20);
    assert_eq!(stats.free_bytes, stats.data_capacity_bytes);
    let store = reopen(store);
    assert_eq!(store.identity(), IDENTITY);
    assert_eq!(store.stats(), stats);
}

#[test]
fn default_config_formats_a_large_sparse_layout() {
    let disk = MemDisk::new(64 << 20);
    let store = run(Store::format(disk, IDENTITY, StoreConfig::default())).expect("format");
    let stats = store.stats();
    assert_eq!(stats.journal_capacity_bytes, 2 << 20); // 64 MiB / 32
    assert!(stats.data_capacity_bytes > 60 << 20);
    let id = run(store_write(store, &bytes(1, 4 << 20)));
    assert_eq!(id.0, 1);
}

async fn store_write(mut store: Store<MemDisk>, data: &[u8]) -> ExtentId {
    let id = store.write_extent(data).await.expect("write");
    assert_eq!(store.read_extent(id).await.expect("read"), data);
    id
}

#[test]
fn write_read_free_reopen() {
    let (_, mut store) = fresh(1 << 20);
    let sizes = [1usize, 4095, 4096, 4097, 3 * 4096 + 5, 4 * 4096];
    let datas: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| bytes(i as u64, n)).collect();
    let mut ids = Vec::new();
    for d in &datas {
        ids.push(run(store.write_extent(d)).expect("write"));
    }
    for (id, d) in ids.iter().zip(&datas) {
        assert_eq!(run(store.read_extent(*id)).unwrap(), *d);
        assert_eq!(store.extent_len(*id), Some(d.len() as u64));
    }
    let big = ids[4];
    let d = &datas[4];
    for (off, len) in [(0u64, 1u64), (4090, 10), (4096, 4096), (5000, 7000), (d.len() as u64 - 1, 1), (3, 0)] {
        let got = run(store.read_range(big, off, len)).unwrap();
        assert_eq!(got, d[off as usize..(off + len) as usize]);
    }
    let oob = run(store.read_range(big, d.len() as u64 - 2, 3)).unwrap_err();
    assert!(matches!(oob, StoreError::RangeOutOfBounds { extent, .. } if extent == big));
    assert!(matches!(run(store.read_range(big, u64::MAX, 2)), Err(StoreError::RangeOutOfBounds { .. })));

    run(store.free_extent(ids[1])).unwrap();
    assert_eq!(run(store.read_extent(ids[1])), Err(StoreError::NotFound(ids[1])));
    let before = store.snapshot();
    let stats = store.stats();
    let store = reopen(store);
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.stats(), stats);
    assert_eq!(store.extents().len(), 5);
    for (id, d) in ids.iter().zip(&datas) {
        if *id != ids[1] {
            assert_eq!(run(store.read_extent(*id)).unwrap(), *d);
        }
    }
    // Ids are never reused, even after a free and a reopen.
    let mut store = store;
    let next = run(store.write_extent(b"x")).unwrap();
    assert_eq!(next, ExtentId(ids.last().unwrap().0 + 1));
}

#[test]
fn group_commit_flushes_twice() {
    let (disk, mut store) = fresh(1 << 20);
    let datas: Vec<Vec<u8>> = (0..8).map(|i| bytes(i, 100 + 2000 * i as usize)).collect();
    let refs: Vec<&[u8]> = datas.iter().map(|d| d.as_slice()).collect();
    let flushes = disk.flushes();
    let ids = run(store.write_extents(&refs)).unwrap();
    assert_eq!(disk.flushes() - flushes, 2);
    assert_eq!(ids, (1..=8).map(ExtentId).collect::<Vec<_>>());
    assert_eq!(run(store.write_extents(&[])).unwrap(), vec![]);
    let store = reopen(store);
    for (id, d) in ids.iter().zip(&datas) {
        assert_eq!(run(store.read_extent(*id)).unwrap(), *d);
    }
}

#[test]
fn checkpoint_then_reopen() {
    let (_, mut store) = fresh(1 << 20);
    let a = run(store.write_extent(&bytes(1, 5000))).unwrap();
    let b = run(store.write_extent(&bytes(2, 9000))).unwrap();
    run(store.checkpoint()).unwrap();
    assert_eq!(store.stats().generation, 2);
    assert_eq!(store.stats().journal_used_bytes, 0);
    run(store.free_extent(a)).unwrap();
    let c = run(store.write_extent(&bytes(3, 1))).unwrap();
    run(store.checkpoint()).unwrap();
    run(store.checkpoint()).unwrap();
    let d = run(store.write_extent(&bytes(4, 4096))).unwrap();
    let before = store.snapshot();
    let store = reopen(store);
    assert_eq!(store.stats().generation, 4);
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.extents().iter().map(|e| e.0).collect::<Vec<_>>(), vec![b, c, d]);
    assert_eq!(run(store.read_extent(b)).unwrap(), bytes(2, 9000));
}

#[test]
fn journal_full_triggers_checkpoint() {
    let (_, mut store) = fresh(1 << 20);
    let journal_blocks = store.stats().journal_capacity_bytes / BLOCK_BYTES;
    let mut live = Vec::new();
    for i in 0..(3 * journal_blocks) {
        live.push((run(store.write_extent(&bytes(i, 10))).unwrap(), i));
        if live.len() > 20 {
            let (id, _) = live.remove(0);
            run(store.free_extent(id)).unwrap();
        }
    }
    assert!(store.stats().generation >= 4, "generation {}", store.stats().generation);
    let store = reopen(store);
    for (id, seed) in live {
        assert_eq!(run(store.read_extent(id)).unwrap(), bytes(seed, 10));
    }
}

#[test]
fn large_batches_split_into_several_entries() {
    // Max entry = 8 blocks (half of a 16-block journal); 600 one-block commits need ~5 entries.
    let disk = MemDisk::new(4 << 20);
    let mut store = run(Store::format(disk, IDENTITY, small_config())).unwrap();
    let datas: Vec<Vec<u8>> = (0..600).map(|i| bytes(i, 7)).collect();
    let refs: Vec<&[u8]> = datas.iter().map(|d| d.as_slice()).collect();
    let ids = run(store.write_extents(&refs)).unwrap();
    let store = reopen(store);
    for (id, d) in ids.iter().zip(&datas) {
        assert_eq!(run(store.read_extent(*id)).unwrap(), *d);
    }
}

#[test]
fn foreign_and_blank_images_are_not_formatted() {
    let disk = MemDisk::new(1 << 20);
    assert_eq!(open_err(&disk), StoreError::NotFormatted);
    let disk = MemDisk::with_image(bytes(99, 1 << 20));
    assert_eq!(open_err(&disk), StoreError::NotFormatted);
    let disk = MemDisk::new(4096);
    assert_eq!(open_err(&disk), StoreError::NotFormatted);
}

#[test]
fn newer_version_is_unsupported() {
    let (disk, store) = fresh(1 << 20);
    drop(store);
    let mut sector = disk.peek(BLOCK_BYTES, 4096);
    sector[16..20].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&sector[..4092]);
    sector[4092..].copy_from_slice(&crc.to_le_bytes());
    disk.poke(BLOCK_BYTES, &sector);
    assert_eq!(open_err(&disk), StoreError::UnsupportedVersion { found: 2, supported: 1 });
}

#[test]
fn damaged_superblocks() {
    let (disk, mut store) = fresh(1 << 20);
    run(store.checkpoint()).unwrap(); // generation 2 in block 0, generation 1 in block 1
    drop(store);
    disk.corrupt_byte(100, 0x01);
    // Falls back to generation 1: its checkpoint and (empty) journal epoch are intact.
    let store = run(Store::open(disk.clone())).expect("fallback to the older copy");
    assert_eq!(store.stats().generation, 1);
    drop(store);
    disk.corrupt_byte(BLOCK_BYTES + 4000, 0x80);
    assert_eq!(open_err(&disk), StoreError::CorruptSuperblock);
}

#[test]
fn superblock_fallback_never_hides_newer_journal_entries() {
    let (disk, mut store) = fresh(1 << 20);
    run(store.write_extent(b"before the checkpoint")).unwrap();
    run(store.checkpoint()).unwrap();
    run(store.write_extent(b"after the checkpoint")).unwrap();
    drop(store);
    disk.corrupt_byte(60, 0x10); // generation 2's copy
    // Generation 1 expects seq 1 at journal block 0 but finds seq 2 there: the newer epoch overwrote it.
    assert!(matches!(open_err(&disk), StoreError::CorruptMetadata { .. }));
}

#[test]
fn superblock_fallback_with_an_unchanged_journal_epoch_is_exact() {
    // No entry between generations 1 and 2: both start the journal at seq 1 with equal tables, so
    // falling back to generation 1 replays the newer entries onto the same state.
    let (disk, mut store) = fresh(1 << 20);
    run(store.checkpoint()).unwrap();
    let id = run(store.write_extent(b"after the checkpoint")).unwrap();
    drop(store);
    disk.corrupt_byte(60, 0x10);
    let store = run(Store::open(disk)).unwrap();
    assert_eq!(store.stats().generation, 1);
    assert_eq!(run(store.read_extent(id)).unwrap(), b"after the checkpoint");
}

#[test]
fn too_small_and_invalid_configs() {
    let disk = MemDisk::new(32 * 4096);
    let err = run(Store::format(disk, IDENTITY, small_config())).unwrap_err();
    let StoreError::DiskTooSmall { capacity_bytes, minimum_bytes } = err else { panic!("{err:?}") };
    assert_eq!(capacity_bytes, 32 * 4096);
    // The reported minimum really is enough, and one block less is not.
    run(Store::format(MemDisk::new(minimum_bytes), IDENTITY, small_config())).expect("minimum fits");
    let err = run(Store::format(MemDisk::new(minimum_bytes - 4096), IDENTITY, small_config())).unwrap_err();
    assert!(matches!(err, StoreError::DiskTooSmall { .. }));

    for config in [
        StoreConfig { max_extent_bytes: 0, journal_bytes: None },
        StoreConfig { max_extent_bytes: 65 << 20, journal_bytes: None },
        StoreConfig { max_extent_bytes: 64 << 20, journal_bytes: Some(64 * 1024) },
        StoreConfig { max_extent_bytes: 4096, journal_bytes: Some(64 * 1024 + 1) },
        StoreConfig { max_extent_bytes: 4096, journal_bytes: Some(60 * 1024) },
    ] {
        let err = run(Store::format(MemDisk::new(4 << 20), IDENTITY, config.clone())).unwrap_err();
        assert!(matches!(err, StoreError::InvalidConfig { .. }), "{config:?}: {err:?}");
    }
}

#[test]
fn bad_writes_and_unknown_ids() {
    let (_, mut store) = fresh(1 << 20);
    assert_eq!(run(store.write_extent(&[])), Err(StoreError::EmptyWrite));
    let too_big = vec![1u8; 4 * 4096 + 1];
    assert_eq!(
        run(store.write_extent(&too_big)),
        Err(StoreError::ExtentTooLarge { len_bytes: 4 * 4096 + 1, max_bytes: 4 * 4096 })
    );
    // One bad element rejects the whole batch.
    assert_eq!(run(store.write_extents(&[b"ok", &[]])), Err(StoreError::EmptyWrite));
    assert!(store.extents().is_empty());
    let ghost = ExtentId(77);
    assert_eq!(run(store.read_extent(ghost)), Err(StoreError::NotFound(ghost)));
    assert_eq!(run(store.read_range(ghost, 0, 1)), Err(StoreError::NotFound(ghost)));
    assert_eq!(run(store.free_extent(ghost)), Err(StoreError::NotFound(ghost)));
    assert_eq!(store.extent_len(ghost), None);
}

#[test]
fn no_space_leaks_nothing() {
    let (_, mut store) = fresh(1 << 20);
    let full = vec![7u8; 4 * 4096];
    let mut ids = Vec::new();
    while store.stats().free_bytes >= 4 * 4096 {
        ids.push(run(store.write_extent(&full)).unwrap());
    }
    let free_bytes = store.stats().free_bytes;
    let batch: Vec<&[u8]> = vec![b"a"; (free_bytes / 4096) as usize + 1];
    assert_eq!(run(store.write_extents(&batch)), Err(StoreError::NoSpace { needed_bytes: 4096, free_bytes }));
    assert_eq!(store.stats().free_bytes, free_bytes);
    let err = run(store.write_extent(&full)).unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { needed_bytes: 16384, .. }));
    run(store.free_extent(ids[3])).unwrap();
    run(store.write_extent(&full)).unwrap();
}

#[test]
fn flipped_data_byte_is_corrupt_and_scrub_finds_it() {
    let (disk, mut store) = fresh(1 << 20);
    let data = bytes(5, 3 * 4096 + 10);
    let id = run(store.write_extent(&data)).unwrap();
    let other = run(store.write_extent(&bytes(6, 100))).unwrap();
    let start = store.table[&id].start_block;
    disk.corrupt_byte((start + 1) * BLOCK_BYTES + 17, 0x04);
    assert_eq!(run(store.read_extent(id)), Err(StoreError::Corrupt { extent: id, block_index: 1 }));
    // Ranges that avoid block 1 still read.
    assert_eq!(run(store.read_range(id, 8192, 100)).unwrap(), data[8192..8292]);
    // A flipped pad byte (after len in the last block) is caught too.
    disk.corrupt_byte((start + 3) * BLOCK_BYTES + 4000, 0x01);
    assert_eq!(run(store.read_range(id, 3 * 4096, 10)), Err(StoreError::Corrupt { extent: id, block_index: 3 }));

    let report = run(store.scrub(None, 1000)).unwrap();
    assert_eq!(report.blocks_checked, 5);
    assert_eq!(report.next, None);
    let found: Vec<(ExtentId, u32, BadBlockReason)> =
        report.bad.iter().map(|b| (b.extent, b.block_index, b.reason)).collect();
    assert_eq!(found, vec![(id, 1, BadBlockReason::ChecksumMismatch), (id, 3, BadBlockReason::ChecksumMismatch)]);
    // Once marked, reads fail without looking at the disk, even if the bytes came back.
    disk.corrupt_byte((start + 1) * BLOCK_BYTES + 17, 0x04);
    assert_eq!(run(store.read_range(id, 4096, 1)), Err(StoreError::Corrupt { extent: id, block_index: 1 }));
    assert_eq!(run(store.read_extent(other)).unwrap(), bytes(6, 100));
    // Freeing forgets the marks.
    run(store.free_extent(id)).unwrap();
    assert!(store.bad_blocks.is_empty());
}

#[test]
fn scrub_budget_and_unreadable_sectors() {
    let (disk, mut store) = fresh(1 << 20);
    let ids: Vec<ExtentId> = (0..5).map(|i| run(store.write_extent(&bytes(i, 4 * 4096))).unwrap()).collect();
    let bad_sector = store.table[&ids[2]].start_block + 2;
    disk.set_unreadable(bad_sector);
    assert!(matches!(run(store.read_extent(ids[2])), Err(StoreError::Disk(DiskError::ReadFailed { .. }))));
    // The store stays usable after a failed read.
    run(store.write_extent(b"still fine")).unwrap();
    let mut cursor = None;
    let (mut checked, mut bad, mut calls) = (0, Vec::new(), 0);
    loop {
        let report = run(store.scrub(cursor, 3)).unwrap();
        assert!(report.blocks_checked <= 3);
        checked += report.blocks_checked;
        bad.extend(report.bad);
        calls += 1;
        cursor = report.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(checked, 21);
    assert!(calls >= 7);
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].extent, bad[0].block_index, bad[0].reason), (ids[2], 2, BadBlockReason::ReadFailed));
    assert_eq!(run(store.read_extent(ids[2])), Err(StoreError::Corrupt { extent: ids[2], block_index: 2 }));
    assert_eq!(run(store.read_range(ids[2], 0, 8192)).unwrap(), bytes(2, 4 * 4096)[..8192]);
}

#[test]
fn failed_write_fences_forever() {
    let (disk, mut store) = fresh(1 << 20);
    let id = run(store.write_extent(b"before")).unwrap();
    disk.fail_next_write();
    assert!(matches!(run(store.write_extent(b"doomed")), Err(StoreError::Disk(DiskError::WriteFailed { .. }))));
    assert_eq!(run(store.read_extent(id)), Err(StoreError::Fenced));
    assert_eq!(run(store.write_extent(b"again")), Err(StoreError::Fenced));
    assert_eq!(run(store.free_extent(id)), Err(StoreError::Fenced));
    assert_eq!(run(store.checkpoint()), Err(StoreError::Fenced));
    assert!(matches!(run(store.scrub(None, 1)), Err(StoreError::Fenced)));

    let (disk, mut store) = fresh(1 << 20);
    disk.fail_next_flush();
    assert!(matches!(run(store.checkpoint()), Err(StoreError::Disk(DiskError::WriteFailed { .. }))));
    assert_eq!(run(store.write_extent(b"x")), Err(StoreError::Fenced));
}

#[test]
fn mid_journal_damage_is_corrupt_metadata_but_a_torn_tail_is_not() {
    let (disk, mut store) = fresh(1 << 20);
    let ids: Vec<ExtentId> = (0..3).map(|i| run(store.write_extent(&bytes(i, 50))).unwrap()).collect();
    let journal_start = store.sb.layout.journal_start_block;
    drop(store);
    let hooks =
        hooks::install(HookConfig { seed: 0, buggify: false, site_enabled_per_million: 0, fire_per_million: 0 });
    let torn_marks = || hooks.report().mark_count("store.torn_record_recovered");
    run(Store::open(disk.clone())).expect("intact");
    assert_eq!(torn_marks(), 0, "a clean journal end is no torn record");
    // Damage the last entry: indistinguishable from a torn append, so it is dropped.
    disk.corrupt_byte((journal_start + 2) * BLOCK_BYTES + 60, 0x01);
    let store = run(Store::open(disk.clone())).expect("torn tail");
    assert_eq!(store.extents().iter().map(|e| e.0).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(torn_marks(), u64::from(hooks::ENABLED));
    drop(store);
    disk.corrupt_byte((journal_start + 2) * BLOCK_BYTES + 60, 0x01);
    // Damage a middle entry: a valid entry follows, so acknowledged data would be lost.
    disk.corrupt_byte((journal_start + 1) * BLOCK_BYTES + 60, 0x01);
    let err = open_err(&disk);
    assert!(matches!(&err, StoreError::CorruptMetadata { what } if what.contains("seq 3")), "{err}");
    assert_eq!(torn_marks(), u64::from(hooks::ENABLED), "a failed recovery recovered nothing");
}

#[test]
fn damaged_checkpoint_is_corrupt_metadata() {
    let (disk, mut store) = fresh(1 << 20);
    run(store.write_extent(b"in the checkpoint")).unwrap();
    run(store.checkpoint()).unwrap();
    let area = store.sb.layout.checkpoint_start_block(store.sb.checkpoint_slot);
    drop(store);
    disk.corrupt_byte(area * BLOCK_BYTES + 70, 0x02);
    assert!(matches!(open_err(&disk), StoreError::CorruptMetadata { .. }));
}

#[test]
fn reformat_with_same_identity_forgets_everything() {
    let (disk, mut store) = fresh(1 << 20);
    for i in 0..5 {
        run(store.write_extent(&bytes(i, 300))).unwrap();
    }
    drop(store);
    let mut store = run(Store::format(disk.clone(), IDENTITY, small_config())).unwrap();
    run(store.write_extent(b"new life")).unwrap();
    let store = run(Store::open(disk)).unwrap();
    assert_eq!(store.extents(), vec![(ExtentId(1), 8)]);
    assert_eq!(run(store.read_extent(ExtentId(1))).unwrap(), b"new life");
}

#[test]
fn superblock_copy_in_the_wrong_slot_is_rejected() {
    let (disk, store) = fresh(1 << 20);
    let sb: Superblock = store.sb.clone();
    drop(store);
    // Generation 1 belongs in block 1; a copy of it in block 0 alone must not mount.
    disk.poke(0, &sb.encode());
    disk.poke(BLOCK_BYTES, &[0u8; 4096]);
    assert_eq!(open_err(&disk), StoreError::CorruptSuperblock);
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let (disk, mut store) = fresh(1 << 20);
    send(&store.write_extent(b"x"));
    send(&store.write_extents(&[b"x"]));
    send(&store.free_extent(ExtentId(1)));
    send(&store.checkpoint());
    send(&store.scrub(None, 1));
    send(&store.read_extent(ExtentId(1)));
    send(&store.read_range(ExtentId(1), 0, 1));
    send(&Store::open(disk.clone()));
    send(&Store::format(disk, IDENTITY, small_config()));
}

#[test]
fn batch_free_is_one_flush_all_or_nothing_and_durable() {
    let (disk, mut store) = fresh(1 << 20);
    let datas: Vec<Vec<u8>> = (0..4).map(|i| bytes(i, 5000)).collect();
    let refs: Vec<&[u8]> = datas.iter().map(|d| d.as_slice()).collect();
    let ids = run(store.write_extents(&refs)).expect("write");
    let free_before = store.stats().free_bytes;
    // An unknown or repeated id frees nothing.
    let err = run(store.free_extents(&[ids[0], ExtentId(999)])).expect_err("unknown id");
    assert_eq!(err, StoreError::NotFound(ExtentId(999)));
    let err = run(store.free_extents(&[ids[1], ids[1]])).expect_err("repeated id");
    assert_eq!(err, StoreError::NotFound(ids[1]));
    assert_eq!(store.extents().len(), 4);
    let flushes = disk.flushes();
    run(store.free_extents(&ids[..3])).expect("free three");
    assert_eq!(disk.flushes() - flushes, 1, "one journal entry, one flush");
    assert!(store.stats().free_bytes > free_before);
    let store = reopen(store);
    assert_eq!(store.extents(), vec![(ids[3], 5000)]);
    assert_eq!(run(store.read_extent(ids[3])).expect("read"), datas[3]);
}
