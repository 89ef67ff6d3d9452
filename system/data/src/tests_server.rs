//! ChunkServer tests over the in-memory disk: round trips, idempotence, rebuild of the index on open,
//! corruption on read and by scrub, drive failure, group commit, space exhaustion.

use tessera_env::{DetRng, NodeId, Rng};
use tessera_meta::InodeId;
use tessera_meta::content::{StripeId, StripeLayout};
use tessera_store::{DeviceIdentity, Store, StoreConfig};

use crate::chunk::{self, CHUNK_HEADER_BYTES};
use crate::server::ChunkServer;
use crate::test_disk::{MemDisk, run};
use crate::wire::{CHUNK_PAYLOAD_MAX_BYTES, ChunkKey, ChunkMeta, DataError};

const DISK_BYTES: u64 = 4 * 1024 * 1024;

fn config() -> StoreConfig {
    StoreConfig { max_extent_bytes: 2 * 1024 * 1024, journal_bytes: Some(64 * 1024) }
}

fn disks(n: usize, capacity_bytes: u64) -> Vec<MemDisk> {
    (0..n).map(|_| MemDisk::new(capacity_bytes)).collect()
}

fn server(disks: &[MemDisk]) -> ChunkServer<MemDisk> {
    run(ChunkServer::format(disks.to_vec(), 0xC1, NodeId(3), config())).expect("format")
}

fn meta(stripe: u128, index: u8) -> ChunkMeta {
    ChunkMeta {
        key: ChunkKey { stripe: StripeId(stripe), index },
        owner: InodeId(77),
        layout: StripeLayout::ErasureCoded { data: 4, parity: 2, codec: 1 },
    }
}

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    DetRng::from_seed(seed).fill_bytes(&mut out);
    out
}

/// The disk holding `key`, by the server's index.
fn disk_of<'a>(s: &ChunkServer<MemDisk>, disks: &'a [MemDisk], key: &ChunkKey) -> &'a MemDisk {
    &disks[s.location(key).expect("indexed").drive]
}

#[test]
fn server_put_get_round_trip_and_ranges() {
    let disks = disks(2, DISK_BYTES);
    let mut s = server(&disks);
    let payload = bytes(1, 20_000);
    let m = meta(1, 0);
    run(s.put(&m, &payload)).expect("put");
    assert_eq!(run(s.get(&m.key, 0, 20_000)).expect("whole"), payload);
    // Inside the first block, across blocks, past the first block, empty.
    assert_eq!(run(s.get(&m.key, 10, 100)).expect("head"), &payload[10..110]);
    assert_eq!(run(s.get(&m.key, 4000, 300)).expect("across"), &payload[4000..4300]);
    assert_eq!(run(s.get(&m.key, 9000, 8000)).expect("later"), &payload[9000..17000]);
    assert_eq!(run(s.get(&m.key, 20_000, 0)).expect("empty"), Vec::<u8>::new());
    assert!(matches!(run(s.get(&m.key, 19_999, 2)), Err(DataError::BadRequest(_))));
    let other = meta(1, 1).key;
    assert_eq!(run(s.get(&other, 0, 1)), Err(DataError::NotFound(other)));
    let empty = meta(2, 0);
    run(s.put(&empty, &[])).expect("empty payload");
    assert_eq!(run(s.get(&empty.key, 0, 0)).expect("empty chunk"), Vec::<u8>::new());
    assert_eq!(s.keys(), vec![m.key, empty.key]);
    assert_eq!(s.status().chunks, 2);
    s.assert_invariants();
}

#[test]
fn server_put_is_idempotent_and_rewrites_replace() {
    let disks = disks(1, DISK_BYTES);
    let mut s = server(&disks);
    let m = meta(5, 2);
    run(s.put(&m, b"first")).expect("put");
    let writes = disks[0].writes();
    run(s.put(&m, b"first")).expect("same put");
    assert_eq!(disks[0].writes(), writes, "a repeated put does no I/O");
    run(s.put(&m, b"second!")).expect("rewrite");
    assert_eq!(run(s.get(&m.key, 0, 7)).expect("get"), b"second!");
    assert_eq!(s.store(0).expect("healthy").extents().len(), 1, "the old extent is freed");
    s.assert_invariants();
}

#[test]
fn server_rejects_bad_puts() {
    let disks = disks(1, DISK_BYTES);
    let mut s = server(&disks);
    let too_big = vec![0u8; CHUNK_PAYLOAD_MAX_BYTES + 1];
    assert!(matches!(run(s.put(&meta(1, 0), &too_big)), Err(DataError::BadRequest(_))));
    let bad_index = meta(1, 6);
    assert!(matches!(run(s.put(&bad_index, b"x")), Err(DataError::BadRequest(_))));
    assert!(s.keys().is_empty());
}

#[test]
fn server_open_rebuilds_the_index_and_frees_foreign_extents() {
    let disks = disks(3, DISK_BYTES);
    let mut s = server(&disks);
    let chunks: Vec<(ChunkMeta, Vec<u8>)> = (0..30).map(|i| (meta(100 + i, 1), bytes(i as u64, 3000))).collect();
    for (m, p) in &chunks {
        run(s.put(m, p)).expect("put");
    }
    let before: Vec<_> = s.chunks().copied().collect();
    drop(s);
    // A foreign extent on drive 1: not a chunk.
    let mut store = run(Store::open(disks[1].clone())).expect("open store");
    let foreign = run(store.write_extent(&[0xAB; 500])).expect("foreign");
    // A chunk whose extent is longer than its header says.
    let mut long = chunk::encode(&meta(999, 0), b"abc");
    long.push(0);
    let long_extent = run(store.write_extent(&long)).expect("long");
    drop(store);

    let mut s = run(ChunkServer::open(disks.to_vec())).expect("open");
    let after: Vec<_> = s.chunks().copied().collect();
    assert_eq!(after, before);
    let report = s.open_report();
    assert_eq!(report.chunks, 30);
    let freed: Vec<_> = report.bad_extents.iter().map(|(d, e, _)| (*d, *e)).collect();
    assert_eq!(freed, vec![(1, foreign), (1, long_extent)]);
    assert!(report.failed_drives.is_empty());
    assert!(s.store(1).expect("healthy").extent_len(foreign).is_none());
    for (m, p) in &chunks {
        assert_eq!(&run(s.get(&m.key, 0, p.len() as u32)).expect("get"), p);
    }
    assert!(s.take_dropped().is_empty());
    s.assert_invariants();
}

#[test]
fn server_open_keeps_the_newer_of_duplicate_extents() {
    let disks = disks(1, DISK_BYTES);
    let s = server(&disks);
    drop(s);
    // A rewrite interrupted between writing the new extent and freeing the old one.
    let m = meta(8, 0);
    let mut store = run(Store::open(disks[0].clone())).expect("open store");
    let old = run(store.write_extent(&chunk::encode(&m, b"old"))).expect("old");
    let new = run(store.write_extent(&chunk::encode(&m, b"newer"))).expect("new");
    drop(store);
    let mut s = run(ChunkServer::open(disks.to_vec())).expect("open");
    assert_eq!(s.location(&m.key).expect("indexed").extent, new);
    assert_eq!(s.open_report().duplicate_extents, vec![(0, old, m.key)]);
    assert_eq!(run(s.get(&m.key, 0, 5)).expect("get"), b"newer");
    assert_eq!(s.store(0).expect("healthy").extents().len(), 1);
}

#[test]
fn server_open_fails_an_unformatted_drive_only() {
    let good = disks(1, DISK_BYTES);
    let mut s = server(&good);
    run(s.put(&meta(1, 0), b"kept")).expect("put");
    drop(s);
    let blank = MemDisk::new(DISK_BYTES);
    let mut s = run(ChunkServer::open(vec![blank, good[0].clone()])).expect("open");
    assert_eq!(s.failed_drives(), 1);
    assert_eq!(s.open_report().failed_drives.len(), 1);
    assert_eq!(s.open_report().failed_drives[0].0, 0);
    assert_eq!(run(s.get(&meta(1, 0).key, 0, 4)).expect("get"), b"kept");
    assert!(run(ChunkServer::<MemDisk>::open(Vec::new())).is_err());
}

#[test]
fn server_get_of_a_corrupt_chunk_drops_and_frees_it() {
    let disks = disks(2, DISK_BYTES);
    let mut s = server(&disks);
    let payload = bytes(9, 10_000);
    let m = meta(3, 1);
    run(s.put(&m, &payload)).expect("put");
    let drive = s.location(&m.key).expect("indexed").drive;
    let disk = disk_of(&s, &disks, &m.key);
    let at = disk.find(&payload[..64]).expect("payload on disk");
    disk.corrupt_byte(at + 8000, 0x40);
    // A range missing the bad block still reads.
    assert_eq!(run(s.get(&m.key, 0, 100)).expect("clean range"), &payload[..100]);
    assert_eq!(run(s.get(&m.key, 0, 10_000)), Err(DataError::Corrupt(m.key)));
    assert_eq!(run(s.get(&m.key, 0, 1)), Err(DataError::NotFound(m.key)));
    assert_eq!(s.take_dropped(), vec![m]);
    assert!(s.store(drive).expect("healthy").extents().is_empty(), "the corrupt extent is freed");
    // It can be repaired by a put.
    run(s.put(&m, &payload)).expect("repair");
    assert_eq!(run(s.get(&m.key, 0, 10_000)).expect("repaired"), payload);
    s.assert_invariants();
}

#[test]
fn server_get_of_an_unreadable_header_is_corrupt() {
    let disks = disks(1, DISK_BYTES);
    let mut s = server(&disks);
    let payload = bytes(4, 100);
    let m = meta(4, 0);
    run(s.put(&m, &payload)).expect("put");
    let at = disks[0].find(&payload).expect("on disk") - CHUNK_HEADER_BYTES as u64;
    disks[0].set_unreadable(at);
    assert_eq!(run(s.get(&m.key, 0, 10)), Err(DataError::Corrupt(m.key)));
    assert_eq!(s.status().failed_drives, 0, "a medium error costs the chunk, not the drive");
}

#[test]
fn server_scrub_finds_corrupt_chunks_round_robin() {
    let disks = disks(2, DISK_BYTES);
    let mut s = server(&disks);
    let mut metas = Vec::new();
    for i in 0..10 {
        let m = meta(50 + i, 0);
        run(s.put(&m, &bytes(100 + i as u64, 5000))).expect("put");
        metas.push(m);
    }
    let victim = metas[6];
    let payload = bytes(106, 5000);
    let disk = disk_of(&s, &disks, &victim.key);
    let at = disk.find(&payload[..64]).expect("on disk");
    disk.corrupt_byte(at + 4500, 1);
    let mut found = Vec::new();
    for _ in 0..40 {
        found.extend(run(s.scrub_step(3)));
    }
    assert_eq!(found, vec![victim]);
    let status = s.status();
    assert_eq!(status.scrub_bad_chunks, 1);
    assert!(status.scrub_blocks_checked >= 20, "every block of both drives checked");
    assert_eq!(status.chunks, 9);
    assert!(s.location(&victim.key).is_none());
    assert!(s.take_dropped().is_empty(), "scrub findings are returned, not buffered");
    s.assert_invariants();
}

#[test]
fn server_failed_drive_loses_its_chunks_and_is_never_used_again() {
    let disks = disks(2, DISK_BYTES);
    let mut s = server(&disks);
    let mut metas = Vec::new();
    for i in 0..20 {
        let m = meta(200 + i, 0);
        run(s.put(&m, b"payload")).expect("put");
        metas.push(m);
    }
    let on_drive_0: Vec<ChunkMeta> =
        metas.iter().copied().filter(|m| s.location(&m.key).expect("indexed").drive == 0).collect();
    assert!(!on_drive_0.is_empty() && on_drive_0.len() < 20, "keys spread over both drives");
    // A rewrite of a chunk on drive 0 prefers drive 0, fails there and lands on drive 1.
    let next = on_drive_0[0];
    disks[0].fail_next_write();
    run(s.put(&next, b"moved")).expect("falls back to drive 1");
    assert_eq!(s.location(&next.key).expect("indexed").drive, 1);
    assert_eq!(s.failed_drives(), 1);
    assert_eq!(s.status().failed_drives, 1);
    let mut dropped = s.take_dropped();
    dropped.sort_by_key(|m| m.key);
    assert_eq!(dropped, on_drive_0);
    assert_eq!(run(s.get(&next.key, 0, 5)).expect("rewritten"), b"moved");
    for m in &on_drive_0[1..] {
        assert_eq!(run(s.get(&m.key, 0, 1)), Err(DataError::NotFound(m.key)));
    }
    // Every later put goes to drive 1; frees of lost keys are fine.
    for i in 0..10 {
        let m = meta(400 + i, 0);
        run(s.put(&m, b"later")).expect("put");
        assert_eq!(s.location(&m.key).expect("indexed").drive, 1);
    }
    run(s.free(&on_drive_0.iter().map(|m| m.key).collect::<Vec<_>>())).expect("free lost keys");
    s.assert_invariants();
    // The last drive failing too: puts report the drive failure.
    disks[1].fail_next_write();
    assert!(matches!(run(s.put(&meta(500, 0), b"z")), Err(DataError::DriveFailed(_))));
    assert_eq!(s.keys(), Vec::<ChunkKey>::new());
}

#[test]
fn server_put_batch_group_commits_per_drive() {
    let disks = disks(3, DISK_BYTES);
    let mut s = server(&disks);
    run(s.put(&meta(1, 0), b"existing")).expect("put");
    let items = vec![
        (meta(1, 0), b"existing".to_vec()),           // already stored: Ok without I/O
        (meta(2, 0), bytes(2, 9000)),                 // new
        (meta(3, 7), b"bad index".to_vec()),          // BadRequest
        (meta(4, 0), bytes(4, 100)),                  // new
        (meta(2, 0), b"rewritten in batch".to_vec()), // same key again: applied after the first
        (meta(5, 3), bytes(5, 4096)),                 // new
    ];
    let results = run(s.put_batch(items));
    assert_eq!(results.len(), 6);
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok() && results[4].is_ok());
    assert!(matches!(results[2], Err(DataError::BadRequest(_))));
    assert!(results[5].is_ok());
    assert_eq!(run(s.get(&meta(2, 0).key, 0, 18)).expect("get"), b"rewritten in batch");
    assert_eq!(run(s.get(&meta(4, 0).key, 0, 100)).expect("get"), bytes(4, 100));
    assert_eq!(run(s.get(&meta(5, 3).key, 0, 4096)).expect("get"), bytes(5, 4096));
    let extents: usize = (0..3).map(|d| s.store(d).expect("healthy").extents().len()).sum();
    assert_eq!(extents, 4, "one extent per chunk, the replaced one freed");
    s.assert_invariants();
    assert!(run(s.put_batch(Vec::new())).is_empty());
}

#[test]
fn server_put_batch_survives_a_failing_drive() {
    let disks = disks(2, DISK_BYTES);
    let mut s = server(&disks);
    let items: Vec<(ChunkMeta, Vec<u8>)> = (0..16).map(|i| (meta(600 + i, 0), bytes(i as u64, 700))).collect();
    disks[0].fail_next_write();
    let results = run(s.put_batch(items.clone()));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(s.failed_drives(), 1);
    for (m, p) in &items {
        assert_eq!(s.location(&m.key).expect("indexed").drive, 1);
        assert_eq!(&run(s.get(&m.key, 0, 700)).expect("get"), p);
    }
}

#[test]
fn server_free_is_idempotent() {
    let disks = disks(2, DISK_BYTES);
    let mut s = server(&disks);
    for i in 0..6 {
        run(s.put(&meta(700 + i, 0), b"bytes")).expect("put");
    }
    let keys: Vec<ChunkKey> = (0..4).map(|i| meta(700 + i, 0).key).collect();
    let mut with_unknown = keys.clone();
    with_unknown.push(meta(9999, 0).key);
    with_unknown.push(keys[0]);
    run(s.free(&with_unknown)).expect("free");
    run(s.free(&with_unknown)).expect("free again");
    assert_eq!(s.keys(), vec![meta(704, 0).key, meta(705, 0).key]);
    let extents: usize = (0..2).map(|d| s.store(d).expect("healthy").extents().len()).sum();
    assert_eq!(extents, 2);
    s.assert_invariants();
}

#[test]
fn server_no_space_is_typed_and_spills_to_other_drives() {
    // Small drives: a few 100 KiB chunks fill them.
    let small = 1024 * 1024;
    let disks = disks(2, small);
    let mut s = server(&disks);
    let mut stored = 0;
    let mut last = Ok(());
    for i in 0..40 {
        last = run(s.put(&meta(800 + i, 0), &bytes(i as u64, 100_000)));
        if last.is_err() {
            break;
        }
        stored += 1;
    }
    assert!(matches!(last, Err(DataError::NoSpace { .. })), "{last:?}");
    let status = s.status();
    assert_eq!(status.chunks, stored);
    assert!(status.free_bytes < 2 * 102_400, "both drives nearly full: {status:?}");
    assert_eq!(s.failed_drives(), 0);
}

#[test]
fn server_formats_distinct_device_ids() {
    let disks = disks(2, DISK_BYTES);
    let s = server(&disks);
    let ids: Vec<DeviceIdentity> = (0..2).map(|d| s.store(d).expect("healthy").identity()).collect();
    assert_eq!(ids[0], DeviceIdentity { cluster_id: 0xC1, device_id: 3 << 64 });
    assert_eq!(ids[1], DeviceIdentity { cluster_id: 0xC1, device_id: (3 << 64) | 1 });
}
