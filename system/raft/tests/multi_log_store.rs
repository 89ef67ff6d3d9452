//! `RaftLogStore::save_many`: the batches of many groups in one record (one data flush, one journal
//! flush), crash safety, and freeing of records shared by groups.

use std::collections::BTreeMap;

use futures::executor::block_on;
use tessera_env::{DetRng, Rng};
use tessera_raft::{EntryKind, HardState, LogEntry, PersistBatch, PersistedState, RaftLogStore, SnapshotData};
use tessera_sim::{DiskModel, SimDisk, Trace};
use tessera_store::{DeviceIdentity, Store, StoreConfig};

fn new_disk(seed: u64) -> SimDisk {
    SimDisk::new(format!("multi-{seed}"), DiskModel::instant(64 << 20), DetRng::from_seed(seed), Trace::new(false))
}

fn format(disk: &SimDisk) -> RaftLogStore<SimDisk> {
    block_on(async {
        let identity = DeviceIdentity { cluster_id: 1, device_id: 2 };
        let store = Store::format(disk.clone(), identity, StoreConfig::default()).await.unwrap();
        RaftLogStore::open(store).await.unwrap()
    })
}

fn crash_and_reopen(disk: &SimDisk, log: RaftLogStore<SimDisk>) -> RaftLogStore<SimDisk> {
    drop(log);
    disk.crash();
    disk.restart();
    block_on(async { RaftLogStore::open(Store::open(disk.clone()).await.unwrap()).await.unwrap() })
}

fn entries(from: u64, to: u64, term: u64, size: usize) -> Vec<LogEntry> {
    (from..=to)
        .map(|i| LogEntry { index: i, term, kind: EntryKind::Normal, data: vec![i as u8; size], context: Vec::new() })
        .collect()
}

fn checked(mut s: PersistedState) -> PersistedState {
    s.check().unwrap();
    s
}

fn checked_all(model: &BTreeMap<u64, PersistedState>) -> BTreeMap<u64, PersistedState> {
    model.iter().map(|(&g, s)| (g, checked(s.clone()))).collect()
}

fn hs(term: u64, commit: u64) -> Option<HardState> {
    Some(HardState { term, vote: 1, commit })
}

#[test]
fn one_record_and_two_flushes_for_all_groups() {
    let disk = new_disk(1);
    let mut log = format(&disk);
    let mut model: BTreeMap<u64, PersistedState> = BTreeMap::new();
    let batches: Vec<(u64, PersistBatch)> = (0..64)
        .map(|g| (g, PersistBatch { hard_state: hs(1, 0), entries: entries(1, 3, 1, 100), ..Default::default() }))
        .collect();
    let flushes = disk.stats().flushes;
    block_on(log.save_many(&batches)).unwrap();
    assert_eq!(disk.stats().flushes - flushes, 2, "one data flush and one journal flush");
    assert_eq!(log.total_record_count(), 1);
    for (g, b) in &batches {
        model.entry(*g).or_default().apply(b);
    }
    // Commit advances in every group: a second shared record; the first still holds live entries.
    let batches: Vec<(u64, PersistBatch)> =
        (0..64).map(|g| (g, PersistBatch { hard_state: hs(1, 3), ..Default::default() })).collect();
    block_on(log.save_many(&batches)).unwrap();
    for (g, b) in &batches {
        model.entry(*g).or_default().apply(b);
    }
    assert_eq!(log.total_record_count(), 2);
    assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
    // Half the groups compact: the first record is still needed by the other half.
    let compaction = |g: u64| PersistBatch {
        compaction: Some(SnapshotData {
            index: 3,
            term: 1,
            voters: vec![1],
            data: vec![g as u8],
            ..Default::default()
        }),
        ..Default::default()
    };
    let half: Vec<(u64, PersistBatch)> = (0..32).map(|g| (g, compaction(g))).collect();
    block_on(log.save_many(&half)).unwrap();
    let rest: Vec<(u64, PersistBatch)> = (32..64).map(|g| (g, compaction(g))).collect();
    for (g, b) in half.iter().chain(&rest) {
        model.entry(*g).or_default().apply(b);
    }
    assert_eq!(log.total_record_count(), 3);
    // The other half too: the first record goes, the others hold latest hard states and snapshots.
    block_on(log.save_many(&rest)).unwrap();
    assert_eq!(log.total_record_count(), 3);
    assert_eq!(log.record_count(5), 2);
    assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
    let log = crash_and_reopen(&disk, log);
    assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
    for g in [0, 31, 32, 63] {
        assert_eq!(block_on(log.load(g)).unwrap(), Some(checked(model[&g].clone())));
    }
    // save() still works (one group), and an oversized batch is split over several records.
    let mut log = log;
    let big = PersistBatch { hard_state: hs(2, 3), entries: entries(4, 6, 2, 3 << 20), ..Default::default() };
    block_on(log.save(7, &big)).unwrap();
    model.get_mut(&7).unwrap().apply(&big);
    assert!(log.record_count(7) >= 4, "{}", log.record_count(7));
    assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
}

/// Group 1's log is truncated by a new leader (record B) and then compacted at its new end, so B is
/// dead; but record A, holding the truncated entries, is kept by group 2. Freeing B would bring the
/// truncated entries back: B must stay until A goes.
#[test]
fn a_truncating_record_outlives_the_shared_record_it_truncated() {
    let disk = new_disk(4);
    let mut log = format(&disk);
    let mut model: BTreeMap<u64, PersistedState> = BTreeMap::new();
    let compaction = |index, term| SnapshotData { index, term, voters: vec![1], ..Default::default() };
    let script: Vec<Vec<(u64, PersistBatch)>> = vec![
        // A: group 1 has 1..10 of term 1 (commit 4); group 2 has live entries too.
        vec![
            (1, PersistBatch { hard_state: hs(1, 4), entries: entries(1, 10, 1, 10), ..Default::default() }),
            (2, PersistBatch { hard_state: hs(1, 0), entries: entries(1, 3, 1, 10), ..Default::default() }),
        ],
        // B: a new leader truncates group 1 at 5 and writes 5..7 of term 2.
        vec![(1, PersistBatch { hard_state: hs(2, 4), entries: entries(5, 7, 2, 10), ..Default::default() })],
        vec![(1, PersistBatch { hard_state: hs(2, 7), ..Default::default() })],
        // Compaction at 7: B holds nothing live, A's 8..10 are hidden only by B.
        vec![(1, PersistBatch { compaction: Some(compaction(7, 2)), ..Default::default() })],
    ];
    for batches in &script {
        block_on(log.save_many(batches)).unwrap();
        for (g, b) in batches {
            model.entry(*g).or_default().apply(b);
        }
        assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
    }
    assert_eq!(block_on(log.load(1)).unwrap().unwrap().last_index(), 7);
    assert_eq!(log.record_count(1), 4, "A (pinned by group 2) and B (hiding A's 8..10) stay");
    let log = crash_and_reopen(&disk, log);
    assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
    // Group 2 compacts: A goes, and with it B.
    let mut log = log;
    let batches =
        vec![(2, PersistBatch { hard_state: hs(1, 3), compaction: Some(compaction(3, 1)), ..Default::default() })];
    block_on(log.save_many(&batches)).unwrap();
    model.get_mut(&2).unwrap().apply(&batches[0].1);
    assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model));
    assert_eq!(log.record_count(1), 2);
    assert_eq!(log.total_record_count(), 3);
}

/// A hard state that alone keeps a large record alive is rewritten into the next save, so the record
/// is freed.
#[test]
fn idle_groups_hard_states_are_rewritten_to_free_space() {
    let disk = new_disk(2);
    let mut log = format(&disk);
    let first = vec![
        (1, PersistBatch { hard_state: hs(1, 4), entries: entries(1, 4, 1, 100_000), ..Default::default() }),
        (2, PersistBatch { hard_state: hs(5, 0), ..Default::default() }),
    ];
    block_on(log.save_many(&first)).unwrap();
    let compact = PersistBatch {
        compaction: Some(SnapshotData { index: 4, term: 1, voters: vec![1], ..Default::default() }),
        ..Default::default()
    };
    // Group 1 compacts: the first record now matters only for group 2's hard state, which is rewritten
    // into this save; the 400 KB record is freed.
    block_on(log.save_many(&[(1, compact)])).unwrap();
    assert_eq!(log.total_record_count(), 2);
    let next = PersistBatch { hard_state: hs(1, 4), ..Default::default() };
    block_on(log.save_many(&[(1, next)])).unwrap();
    assert_eq!(log.total_record_count(), 2, "the first record was freed");
    assert!(log.store().extents().iter().all(|(_, len)| *len < 4096), "{:?}", log.store().extents());
    let log = crash_and_reopen(&disk, log);
    assert_eq!(block_on(log.load(2)).unwrap().unwrap().hard_state, hs(5, 0).unwrap());
}

/// Random batches for random subsets of groups, with occasional power loss between saves: the loaded
/// state always equals the model, and shared records are freed (space stays bounded). Few groups per
/// record make it likely that a newer record of a group is freed while an older one stays, pinned by
/// another group (the hazard `log_store/free.rs` guards against).
#[test]
fn random_multi_group_history_survives_crashes() {
    for (seed, groups, per_save) in [(3, 12, 2), (4, 3, 3), (5, 4, 4)] {
        random_history(seed, groups, per_save);
    }
}

fn random_history(seed: u64, groups: u64, one_in: u64) {
    let mut rng = DetRng::from_seed(seed);
    let disk = new_disk(seed);
    let mut log = format(&disk);
    let mut model: BTreeMap<u64, PersistedState> = BTreeMap::new();
    let mut terms: BTreeMap<u64, u64> = (0..groups).map(|g| (g, 1)).collect();
    let mut max_records = 0;
    for step in 0..800 {
        let mut batches = Vec::new();
        for g in 0..groups {
            if rng.chance(1, one_in) {
                let state = model.get(&g).cloned().unwrap_or_default();
                let batch = random_batch(&mut rng, &state, terms.get_mut(&g).unwrap());
                batches.push((g, batch));
            }
        }
        block_on(log.save_many(&batches)).unwrap();
        for (g, b) in &batches {
            model.entry(*g).or_default().apply(b);
        }
        if rng.chance(1, 40) {
            log = crash_and_reopen(&disk, log);
        }
        assert_eq!(block_on(log.load_all()).unwrap(), checked_all(&model), "seed {seed} step {step}");
        max_records = max_records.max(log.total_record_count());
    }
    // Groups compact every few saves; records stay far below the 800 saved.
    assert!(max_records < 150, "seed {seed}: {max_records} records");
}

/// Power loss in the middle of a multi-group save: every group loads as before or as after it (the
/// same for all, one record), and a save that returned Ok is never lost.
#[test]
fn crash_during_save_many_loads_before_or_after() {
    let mut rng = DetRng::from_seed(9);
    let mut outcomes = [0u32; 2];
    for round in 0..100u64 {
        let disk = new_disk(100 + round);
        let mut log = format(&disk);
        let groups = 6u64;
        let mut model: BTreeMap<u64, PersistedState> = BTreeMap::new();
        let mut terms: BTreeMap<u64, u64> = (0..groups).map(|g| (g, 1)).collect();
        let mut next = |rng: &mut DetRng, model: &BTreeMap<u64, PersistedState>| -> Vec<(u64, PersistBatch)> {
            let mut out = Vec::new();
            for g in 0..groups {
                if rng.chance(2, 3) {
                    let state = model.get(&g).cloned().unwrap_or_default();
                    out.push((g, random_batch(rng, &state, terms.get_mut(&g).unwrap())));
                }
            }
            out
        };
        for _ in 0..(5 + rng.below(30)) {
            let batches = next(&mut rng, &model);
            block_on(log.save_many(&batches)).unwrap();
            for (g, b) in &batches {
                model.entry(*g).or_default().apply(b);
            }
        }
        let before = checked_all(&model);
        let batches = next(&mut rng, &model);
        let mut after_model = model.clone();
        for (g, b) in &batches {
            after_model.entry(*g).or_default().apply(b);
        }
        let after = checked_all(&after_model);
        disk.crash_after_io(1 + rng.below(6));
        let result = block_on(log.save_many(&batches));
        disk.clear_faults();
        let log = crash_and_reopen(&disk, log);
        let loaded = block_on(log.load_all()).unwrap();
        if result.is_ok() {
            assert_eq!(loaded, after, "round {round}: saved batches lost");
        } else {
            assert!(loaded == before || loaded == after, "round {round}");
            outcomes[usize::from(loaded == after && before != after)] += 1;
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "crash points reached both outcomes: {outcomes:?}");
}

fn random_batch(rng: &mut DetRng, model: &PersistedState, term: &mut u64) -> PersistBatch {
    let mut batch = PersistBatch::default();
    let snap = model.snapshot_index();
    let last = model.last_index();
    // Raft never truncates or compacts past the commit index, and the commit index never falls.
    let commit = model.hard_state.commit.max(snap);
    if rng.chance(1, 4) {
        *term += 1;
    }
    let mut new_last = last;
    match rng.below(20) {
        0..=2 if commit > snap => {
            let index = snap + 1 + rng.below(commit - snap);
            let t = model.entries.iter().find(|e| e.index == index).unwrap().term;
            batch.compaction =
                Some(SnapshotData { index, term: t, voters: vec![1], data: vec![9; 100], ..Default::default() });
        }
        3 => {
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
            // Overwrite a suffix sometimes, leaving the log shorter or longer (a new leader's
            // conflicting entries).
            let first = if last > commit + 5 && rng.chance(1, 3) { last - rng.below(5) } else { last + 1 };
            let count = if first <= last { 1 + rng.below(3) } else { rng.below(4) };
            if count > 0 {
                batch.entries = entries(first, first + count - 1, *term, 1 + rng.below(300) as usize);
                new_last = first + count - 1;
            }
        }
    }
    if rng.chance(2, 3) || batch.is_empty() {
        let floor = batch.snapshot.as_ref().map_or(snap, |s| s.index);
        let lag = rng.below(10);
        let commit = new_last.saturating_sub(lag).max(floor).max(commit).min(new_last.max(floor));
        batch.hard_state = Some(HardState { term: *term, vote: 1, commit });
    }
    batch
}
