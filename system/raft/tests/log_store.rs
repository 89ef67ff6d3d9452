//! `RaftLogStore` on a simulated disk: round trips, compaction frees space, crash recovery returns
//! every saved entry, and a replica restarted from the store rejoins its group.

mod common;

use common::Harness;
use futures::executor::block_on;
use tessera_env::{DetRng, NodeId, Rng};
use tessera_raft::{
    EntryKind, HardState, LogEntry, PersistBatch, PersistedState, RaftConfig, RaftLogError, RaftLogStore, SnapshotData,
};
use tessera_sim::{DiskModel, SimDisk, Trace};
use tessera_store::{DeviceIdentity, Store, StoreConfig};

const CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

fn new_disk(seed: u64) -> SimDisk {
    SimDisk::new(format!("raft-{seed}"), DiskModel::instant(CAPACITY_BYTES), DetRng::from_seed(seed), Trace::new(false))
}

fn format(disk: &SimDisk) -> RaftLogStore<SimDisk> {
    block_on(async {
        let identity = DeviceIdentity { cluster_id: 1, device_id: 2 };
        let store = Store::format(disk.clone(), identity, StoreConfig::default()).await.unwrap();
        RaftLogStore::open(store).await.unwrap()
    })
}

/// Power loss and reboot: the device keeps only flushed writes; the store recovers, the log store
/// rebuilds its index.
fn crash_and_reopen(disk: &SimDisk, log: RaftLogStore<SimDisk>) -> RaftLogStore<SimDisk> {
    drop(log);
    disk.crash();
    disk.restart();
    block_on(async {
        let store = Store::open(disk.clone()).await.unwrap();
        RaftLogStore::open(store).await.unwrap()
    })
}

fn entry(index: u64, term: u64, data: &[u8]) -> LogEntry {
    LogEntry { index, term, kind: EntryKind::Normal, data: data.to_vec(), context: Vec::new() }
}

fn entries(from: u64, to: u64, term: u64) -> Vec<LogEntry> {
    (from..=to).map(|i| entry(i, term, &i.to_le_bytes())).collect()
}

fn checked(mut s: PersistedState) -> PersistedState {
    s.check().unwrap();
    s
}

#[test]
fn round_trip_two_groups_truncation_compaction_snapshot() {
    let disk = new_disk(1);
    let mut log = format(&disk);
    let mut model = [PersistedState::default(), PersistedState::default()];
    let hs = |term, commit| Some(HardState { term, vote: 1, commit });
    let script: Vec<(u64, PersistBatch)> = vec![
        (1, PersistBatch { hard_state: hs(1, 0), entries: entries(1, 10, 1), ..Default::default() }),
        (2, PersistBatch { hard_state: hs(3, 0), entries: entries(1, 4, 3), ..Default::default() }),
        (1, PersistBatch { hard_state: hs(1, 8), ..Default::default() }),
        // A new leader overwrites 9..10 with 9..12 of term 2.
        (1, PersistBatch { hard_state: hs(2, 8), entries: entries(9, 12, 2), ..Default::default() }),
        (
            1,
            PersistBatch {
                compaction: Some(SnapshotData {
                    index: 8,
                    term: 1,
                    voters: vec![1, 2, 3],
                    data: b"app@8".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (1, PersistBatch { hard_state: hs(2, 12), entries: entries(13, 14, 2), ..Default::default() }),
        // Group 2 receives a snapshot that replaces its whole log.
        (
            2,
            PersistBatch {
                hard_state: hs(4, 20),
                snapshot: Some(SnapshotData {
                    index: 20,
                    term: 4,
                    voters: vec![1, 2],
                    data: b"app@20".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (2, PersistBatch { entries: entries(21, 22, 4), ..Default::default() }),
    ];
    for (group, batch) in &script {
        block_on(log.save(*group, batch)).unwrap();
        model[*group as usize - 1].apply(batch);
        for g in [1u64, 2] {
            let loaded = block_on(log.load(g)).unwrap().unwrap_or_default();
            assert_eq!(loaded, checked(model[g as usize - 1].clone()), "group {g}");
        }
    }
    let g1 = block_on(log.load(1)).unwrap().unwrap();
    assert_eq!(g1.snapshot.as_ref().unwrap().index, 8);
    assert_eq!(g1.entries.first().unwrap().index, 9);
    assert_eq!(g1.entries.last().unwrap().index, 14);
    assert_eq!(g1.entries[0].term, 2);
    let g2 = block_on(log.load(2)).unwrap().unwrap();
    assert_eq!((g2.snapshot.as_ref().unwrap().index, g2.entries.len()), (20, 2));
    // Superseded records were freed: group 1 keeps the compaction record, the one with 9..12 and
    // the last one (13..14 + hard state); group 2 its snapshot record and 21..22.
    assert_eq!(log.record_count(1), 3);
    assert_eq!(log.record_count(2), 2);
    assert_eq!(block_on(log.load(3)).unwrap(), None);
    // Everything survives power loss.
    let log = crash_and_reopen(&disk, log);
    assert_eq!(block_on(log.load(1)).unwrap().unwrap(), g1);
    assert_eq!(block_on(log.load(2)).unwrap().unwrap(), g2);
    assert_eq!(log.groups(), vec![1, 2]);
}

#[test]
fn large_batches_split_and_oversized_entries_are_refused() {
    let disk = new_disk(2);
    let store =
        block_on(Store::format(disk.clone(), DeviceIdentity { cluster_id: 1, device_id: 3 }, StoreConfig::default()))
            .unwrap();
    let mut log = block_on(RaftLogStore::open_with(store, 64 * 1024)).unwrap();
    let big: Vec<LogEntry> = (1..=40).map(|i| entry(i, 1, &[i as u8; 5000])).collect();
    let batch = PersistBatch {
        hard_state: Some(HardState { term: 1, vote: 1, commit: 40 }),
        entries: big,
        ..Default::default()
    };
    block_on(log.save(7, &batch)).unwrap();
    assert!(log.record_count(7) >= 3, "{}", log.record_count(7));
    let mut model = PersistedState::default();
    model.apply(&batch);
    assert_eq!(block_on(log.load(7)).unwrap().unwrap(), checked(model));
    let huge = PersistBatch { entries: vec![entry(41, 1, &[0; 70_000])], ..Default::default() };
    assert!(matches!(block_on(log.save(7, &huge)), Err(RaftLogError::RecordTooLarge { .. })));
}

/// A free batch: records no group needs stay allocated until enough are pending, the group loads the
/// same meanwhile and after power loss, and then they go together.
#[test]
fn held_frees_load_the_same_survive_power_loss_and_go_together() {
    let disk = new_disk(7);
    let mut log = format(&disk);
    log.set_free_batch_extents(30);
    let mut model = PersistedState::default();
    let mut save = |log: &mut RaftLogStore<SimDisk>, batch: PersistBatch| {
        block_on(log.save(1, &batch)).unwrap();
        model.apply(&batch);
        checked(model.clone())
    };
    let append = |i: u64| PersistBatch {
        hard_state: Some(HardState { term: 1, vote: 1, commit: i }),
        entries: entries(i, i, 1),
        ..Default::default()
    };
    let compact = |index: u64| PersistBatch {
        compaction: Some(SnapshotData {
            index,
            term: 1,
            voters: vec![1, 2, 3],
            data: format!("app@{index}").into_bytes(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for i in 1..=20 {
        save(&mut log, append(i));
    }
    let expected = save(&mut log, compact(20));
    assert!(log.total_record_count() >= 20, "held for the batch: {} records", log.total_record_count());
    assert_eq!(block_on(log.load(1)).unwrap().unwrap(), expected);
    let mut log = crash_and_reopen(&disk, log);
    assert_eq!(block_on(log.load(1)).unwrap().unwrap(), expected);
    log.set_free_batch_extents(30);
    for i in 21..=40 {
        save(&mut log, append(i));
    }
    let expected = save(&mut log, compact(40));
    assert!(log.total_record_count() <= 3, "the batch was freed: {} records left", log.total_record_count());
    assert_eq!(block_on(log.load(1)).unwrap().unwrap(), expected);
    let log = crash_and_reopen(&disk, log);
    assert_eq!(block_on(log.load(1)).unwrap().unwrap(), expected);
}

/// Crash in the middle of a save: the group loads as before the save or as after it, never anything
/// else; saves that returned Ok are never lost.
#[test]
fn crash_during_save_loads_before_or_after() {
    let mut rng = DetRng::from_seed(9);
    let mut outcomes = [0u32; 2];
    for round in 0..150u64 {
        let disk = new_disk(100 + round);
        let mut log = format(&disk);
        let mut model = PersistedState::default();
        let mut term = 1u64;
        for _ in 0..(5 + rng.below(30)) {
            let batch = random_batch(&mut rng, &model, &mut term);
            block_on(log.save(1, &batch)).unwrap();
            model.apply(&batch);
            assert_eq!(block_on(log.load(1)).unwrap().unwrap(), checked(model.clone()));
        }
        let before = checked(model.clone());
        let batch = random_batch(&mut rng, &model, &mut term);
        let mut after = model.clone();
        after.apply(&batch);
        let after = checked(after);
        disk.crash_after_io(1 + rng.below(6));
        let result = block_on(log.save(1, &batch));
        disk.clear_faults();
        let log = crash_and_reopen(&disk, log);
        let loaded = block_on(log.load(1)).unwrap().unwrap();
        if result.is_ok() {
            assert_eq!(loaded, after, "round {round}: saved batch lost");
        } else {
            assert!(loaded == before || loaded == after, "round {round}: {loaded:?}");
            outcomes[usize::from(loaded == after)] += 1;
        }
        // The recovered store keeps working: one more save replays on top of what was recovered.
        let mut log = log;
        let mut model = loaded;
        let batch = random_batch(&mut rng, &model, &mut term);
        block_on(log.save(1, &batch)).unwrap();
        model.apply(&batch);
        assert_eq!(block_on(log.load(1)).unwrap().unwrap(), checked(model));
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "crash points reached both outcomes: {outcomes:?}");
}

fn random_batch(rng: &mut DetRng, model: &PersistedState, term: &mut u64) -> PersistBatch {
    let mut batch = PersistBatch::default();
    let snap = model.snapshot_index();
    let last = model.last_index();
    if rng.chance(1, 4) {
        *term += 1;
    }
    let mut new_last = last;
    match rng.below(10) {
        0 if last > snap + 1 => {
            let index = snap + 1 + rng.below(last - snap - 1);
            let t = model.entries.iter().find(|e| e.index == index).unwrap().term;
            batch.compaction =
                Some(SnapshotData { index, term: t, voters: vec![1], data: vec![9; 100], ..Default::default() });
        }
        1 => {
            let index = last + 1 + rng.below(3);
            batch.snapshot = Some(SnapshotData {
                index,
                term: *term,
                voters: vec![1, 2, 3],
                data: vec![7; 50],
                ..Default::default()
            });
            new_last = index;
        }
        _ => {
            // Overwrite a short suffix sometimes (a new leader's conflicting entries).
            let first = if last > snap + 2 && rng.chance(1, 4) { last - rng.below(2) } else { last + 1 };
            let n = rng.below(4);
            if n > 0 {
                batch.entries = entries(first, first + n - 1, *term);
                new_last = first + n - 1;
            }
        }
    }
    if rng.chance(2, 3) || batch.is_empty() {
        let floor = batch.snapshot.as_ref().map_or(snap, |s| s.index);
        batch.hard_state = Some(HardState { term: *term, vote: 1, commit: new_last.saturating_sub(2).max(floor) });
    }
    batch
}

/// A 3-node group whose node 1 persists through a real `RaftLogStore` on a `SimDisk`; node 1's disk
/// loses power at random moments and the node restarts from what `load` returns. Everything saved must
/// come back, and the restarted node must rejoin and catch up.
#[test]
fn restarted_node_recovers_from_the_log_store_and_catches_up() {
    let n1 = NodeId(1);
    let mut h = Harness::new(5, 3, RaftConfig::default());
    h.record_batches.insert(n1);
    let disk = new_disk(5);
    let mut log = format(&disk);
    let mut proposed = 0u64;
    let mut crashes = 0;
    for round in 0..16 {
        for _ in 0..20 {
            if h.rng.chance(2, 3) {
                proposed += 1;
                h.propose(proposed.to_le_bytes().to_vec());
            }
            h.step();
            for (_, batch) in std::mem::take(&mut h.recorded) {
                block_on(log.save(1, &batch)).unwrap();
            }
            if h.rng.chance(1, 30) {
                let id = NodeId(1 + h.rng.below(3));
                h.compact(id);
                for (_, batch) in std::mem::take(&mut h.recorded) {
                    block_on(log.save(1, &batch)).unwrap();
                }
            }
        }
        // The store holds exactly what node 1 persisted.
        let loaded = block_on(log.load(1)).unwrap().unwrap();
        assert_eq!(loaded, checked(h.slots[&n1].disk.clone()), "round {round}");
        if round % 3 == 1 {
            h.crash(n1);
            log = crash_and_reopen(&disk, log);
            crashes += 1;
            let loaded = block_on(log.load(1)).unwrap().unwrap();
            assert_eq!(loaded, checked(h.slots[&n1].disk.clone()), "round {round}: lost persisted state");
            h.slots.get_mut(&n1).unwrap().disk = loaded;
            let down = h.rng.below(30);
            h.run(down);
            h.restart(n1);
        }
    }
    h.run(60);
    let leader = h.leader().unwrap();
    let commit = h.status(leader).unwrap().commit;
    let s1 = h.status(n1).unwrap();
    assert_eq!((s1.commit, s1.applied), (commit, commit));
    assert!(crashes >= 5);
    assert!(commit > 100, "commit {commit}");
    // Bounded: compaction keeps the record count small relative to the log.
    assert!(log.record_count(1) < 200, "{}", log.record_count(1));
    h.check_log_matching();
}
