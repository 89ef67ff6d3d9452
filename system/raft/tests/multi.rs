//! `MultiRaft`: many groups per node in the in-memory harness: batching, safety under faults, restart
//! from a `RaftLogStore` on a `SimDisk`, leadership balance, shard moves, determinism.

mod multi_harness;

use std::collections::BTreeMap;

use multi_harness::{Harness, n};
use tessera_env::{NodeId, Rng};
use tessera_raft::{MultiConfig, RaftRole, ReconcileStep};

const GROUPS: u64 = 64;

fn propose_everywhere(h: &mut Harness, tag: u64) -> u64 {
    let mut accepted = 0;
    for g in 0..GROUPS {
        if h.propose(g, format!("{tag}/{g}").into_bytes()) {
            accepted += 1;
        }
    }
    accepted
}

#[test]
fn groups_elect_commit_and_share_one_envelope_per_node_pair() {
    let mut h = Harness::new(1, 3, GROUPS, 3, MultiConfig::default());
    h.run(60);
    for g in 0..GROUPS {
        assert!(h.leader(g).is_some(), "group {g} has no leader after 60 ticks");
    }
    for round in 0..10 {
        assert_eq!(propose_everywhere(&mut h, round), GROUPS);
        h.run(2);
    }
    h.run(20);
    h.check_converged();
    for g in 0..GROUPS {
        // 10 proposals plus at least one leader no-op.
        assert!(h.applied.range((g, 0)..=(g, u64::MAX)).count() >= 11, "group {g}");
    }
    // One envelope per node pair per tick, whatever the number of groups.
    assert_eq!(h.max_envelopes_per_pair_tick, 1);
    assert!(h.max_envelopes_per_node_tick <= 2, "{}", h.max_envelopes_per_node_tick);
    let per_envelope = h.messages as f64 / h.envelopes as f64;
    println!(
        "envelopes {} messages {} ({per_envelope:.1} per envelope), max per pair per tick {}",
        h.envelopes, h.messages, h.max_envelopes_per_pair_tick
    );
    assert!(per_envelope > 10.0, "messages per envelope {per_envelope}");
}

/// Partitions, drops, crashes and restarts, compactions, proposals in random groups; then heal: every
/// group converges and nothing any replica applied is lost. Node 1 persists through a real log store.
fn chaos(seed: u64, with_disk: bool) -> Harness {
    let mut h = Harness::new(seed, 5, GROUPS, 3, MultiConfig::default());
    if with_disk {
        h.use_disk_log(n(1), seed);
    }
    h.drop_per_mille = 50;
    let mut proposed = 0u64;
    for round in 0..8u64 {
        match h.rng.below(4) {
            0 => {
                let k = 1 + h.rng.below(2);
                let side: Vec<NodeId> = (1..=k).map(|i| n(1 + (i + round) % 5)).collect();
                h.partition(&side);
            }
            1 => {
                let victim = if with_disk && h.rng.chance(1, 2) { n(1) } else { n(1 + h.rng.below(5)) };
                if h.slots[&victim].host.is_some() && h.live().len() > 3 {
                    h.crash(victim);
                }
            }
            2 => {
                let lone = n(1 + h.rng.below(5));
                h.partition(&[lone]);
            }
            _ => h.heal(),
        }
        for id in h.ids() {
            if h.slots[&id].host.is_none() && h.rng.chance(1, 2) {
                h.restart(id);
            }
        }
        for _ in 0..25 {
            for _ in 0..8 {
                let g = h.rng.below(GROUPS);
                proposed += 1;
                h.propose(g, proposed.to_le_bytes().to_vec());
            }
            if h.rng.chance(1, 10) {
                let id = n(1 + h.rng.below(5));
                h.compact_all(id);
            }
            h.step();
        }
    }
    h.heal();
    h.drop_per_mille = 0;
    for id in h.ids() {
        if h.slots[&id].host.is_none() {
            h.restart(id);
        }
    }
    h.run(60);
    for g in 0..GROUPS {
        assert!(h.propose(g, b"final".to_vec()), "group {g}: a leader after healing");
    }
    h.run(30);
    h.check_converged();
    assert_eq!(h.max_envelopes_per_pair_tick, 1);
    h
}

#[test]
fn chaos_is_safe_and_converges() {
    let (mut restarts, mut snapshots, mut terms) = (0, 0, 0);
    for seed in 0..3 {
        let h = chaos(seed, false);
        restarts += h.restarts;
        snapshots += h.snapshots_applied;
        terms += h.leaders.len();
    }
    assert!(restarts > 0 && snapshots > 0, "restarts {restarts} snapshots {snapshots}");
    assert!(terms > 3 * GROUPS as usize, "leader changes happened: {terms} (group, term) leaders");
}

/// Node 1 keeps its 38 groups' logs in one `RaftLogStore` on a `SimDisk` (one `save_many` per ready)
/// and loses power several times: everything it persisted comes back (checked at every crash) and it
/// catches up.
#[test]
fn node_restarts_from_its_log_store() {
    let mut crashes = 0;
    for seed in [7, 8] {
        let mut h = Harness::new(seed, 5, GROUPS, 3, MultiConfig::default());
        h.use_disk_log(n(1), seed);
        h.run(40);
        for round in 0..6u64 {
            for t in 0..20 {
                propose_everywhere(&mut h, round * 100 + t);
                h.step();
            }
            if round % 2 == 1 {
                h.compact_all(n(1));
            }
            h.crash(n(1));
            crashes += 1;
            let down = h.rng.below(15);
            h.run(down);
            h.restart(n(1));
        }
        h.run(60);
        propose_everywhere(&mut h, 9999);
        h.run(20);
        h.check_converged();
        let dl = h.slots[&n(1)].disk_log.as_ref().unwrap();
        let groups = h.slots[&n(1)].hosted.len();
        // One extent per save, freed as the groups move on: far fewer live records than saves.
        assert!(dl.log.total_record_count() < 4 * groups, "{} records", dl.log.total_record_count());
        assert!(dl.saves > 100);
    }
    assert!(crashes >= 12);
}

fn preferred(h: &Harness) -> BTreeMap<u64, NodeId> {
    h.placement.iter().map(|(&g, r)| (g, r[0])).collect()
}

fn balance_everywhere(h: &mut Harness, preferred: &BTreeMap<u64, NodeId>) -> usize {
    let mut started = 0;
    for id in h.live() {
        started += h.host(id).balance_leaders(preferred).len();
    }
    started
}

#[test]
fn leadership_balances_to_preferred_leaders() {
    for nodes in [3u64, 4, 5] {
        let mut h = Harness::new(20 + nodes, nodes, GROUPS, 3, MultiConfig::default());
        h.run(60);
        let counts =
            |h: &Harness| -> Vec<usize> { h.ids().iter().map(|&id| h.host_ref(id).unwrap().leaders().len()).collect() };
        let before = counts(&h);
        let pref = preferred(&h);
        let mut started = 0;
        for t in 0..80 {
            if t % 5 == 0 {
                started += balance_everywhere(&mut h, &pref);
            }
            // Proposals keep flowing while leadership moves.
            if t % 2 == 0 {
                propose_everywhere(&mut h, t);
            }
            h.step();
        }
        let after = counts(&h);
        let (lo, hi) = ((GROUPS / nodes) as usize, GROUPS.div_ceil(nodes) as usize);
        println!("{nodes} nodes: leaders per node before {before:?} after {after:?}, {started} transfers");
        assert!(after.iter().all(|&c| c >= lo && c <= hi), "{nodes} nodes: {after:?}");
        for g in 0..GROUPS {
            assert_eq!(h.leader(g), Some(pref[&g]), "group {g}");
        }
        h.run(20);
        h.check_converged();
    }
}

/// Eight groups move from node 1 to node 4 (add learner, catch up, promote, [transfer], remove) while
/// every one of them commits a proposal every tick: the longest commit gap stays below one election
/// timeout.
#[test]
fn shard_move_keeps_committing() {
    let election = MultiConfig::default().raft.election_ticks as u64;
    let mut worst = 0;
    for seed in 31..37 {
        let (gap, ticks) = shard_move(seed);
        println!("seed {seed}: longest commit gap {gap} ticks, move done in {ticks} ticks");
        assert!(gap < 2 * election, "seed {seed}: commit gap {gap} ticks");
        worst = worst.max(gap);
    }
    println!(
        "shard move: longest commit gap over all seeds {worst} ticks (election timeout {election}..{})",
        2 * election
    );
}

/// Returns (the longest gap between two commits of a moving group, the ticks the move took).
fn shard_move(seed: u64) -> (u64, u64) {
    // Groups on nodes 1..=3 only (preferred leaders rotating); node 4 hosts nothing yet.
    let placement: BTreeMap<u64, Vec<NodeId>> =
        (0..GROUPS).map(|g| (g, (0..3).map(|k| n(1 + (g + k) % 3)).collect())).collect();
    let mut h = Harness::with_placement(seed, 4, placement, MultiConfig::default());
    h.run(60);
    let pref = preferred(&h);
    for _ in 0..8 {
        balance_everywhere(&mut h, &pref);
        h.run(5);
    }
    let moving: Vec<u64> = (0..8).collect();
    let led_by_1 = moving.iter().filter(|&&g| h.leader(g) == Some(n(1))).count();
    assert!(led_by_1 >= 2, "some moving groups are led by the leaving node ({led_by_1})");
    let mut targets: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
    for &g in &moving {
        let t: Vec<NodeId> = h.placement[&g].iter().map(|&r| if r == n(1) { n(4) } else { r }).collect();
        targets.insert(g, t);
    }
    let start = h.now;
    let mut steps: Vec<(u64, ReconcileStep)> = Vec::new();
    let mut done_at = None;
    let mut tick = 0u64;
    while done_at.is_none() {
        tick += 1;
        assert!(tick < 600, "move did not finish");
        for &g in &moving {
            h.propose(g, format!("move {tick}").into_bytes());
            // The driver's part: a target node creates the group empty.
            for &t in &targets[&g] {
                if !h.slots[&t].hosted.contains_key(&g) {
                    h.add_group(t, g, &[]);
                }
            }
        }
        let mut all_done = true;
        for &g in &moving {
            let mut done = false;
            for id in h.live() {
                if !h.slots[&id].hosted.contains_key(&g) {
                    continue;
                }
                match h.host(id).reconcile(g, &targets[&g]) {
                    Ok(ReconcileStep::Done) => done = true,
                    Ok(ReconcileStep::NotLeader { .. } | ReconcileStep::Waiting) => {}
                    Ok(step) => steps.push((g, step)),
                    Err(e) => panic!("group {g}: reconcile on {id}: {e}"),
                }
            }
            if done && h.slots[&n(1)].hosted.contains_key(&g) {
                h.remove_group(n(1), g);
            }
            all_done &= done && !h.slots[&n(1)].hosted.contains_key(&g);
        }
        h.step();
        // One replica at a time: no replica ever sees fewer voters than the target (a joiner that
        // learned its configuration from the log instead of a snapshot would see only itself).
        for &g in &moving {
            for id in h.live() {
                if let Some(s) = h.host_ref(id).unwrap().status(g)
                    && !s.voters.is_empty()
                {
                    assert!(s.voters.len() >= 3, "tick {}: {id} sees group {g} voters {:?}", h.now, s.voters);
                }
            }
        }
        if all_done {
            done_at = Some(h.now);
        }
    }
    let end = done_at.unwrap();
    h.run(30);
    let mut gap = 0;
    for &g in &moving {
        let ticks: Vec<u64> = h.commit_ticks[&g].iter().copied().filter(|&t| t >= start && t <= end).collect();
        assert!(ticks.len() as u64 > (end - start) / 2, "group {g} kept committing: {} commits", ticks.len());
        for w in ticks.windows(2) {
            gap = gap.max(w[1] - w[0]);
        }
        let leader = h.leader(g).unwrap();
        let s = h.host_ref(leader).unwrap().status(g).unwrap();
        let mut expect = targets[&g].clone();
        expect.sort();
        assert_eq!((s.voters, s.learners), (expect, vec![]), "group {g}");
        assert!(!h.slots[&n(1)].hosted.contains_key(&g));
    }
    // Every group went learner -> voter -> old removed; the groups node 1 led were handed over first.
    for &g in &moving {
        let mine: Vec<ReconcileStep> = steps
            .iter()
            .filter(|(sg, s)| *sg == g && !matches!(s, ReconcileStep::CatchingUp(_)))
            .map(|(_, s)| *s)
            .collect();
        let moved = [ReconcileStep::AddLearner(n(4)), ReconcileStep::Promote(n(4))];
        assert_eq!(mine[..2], moved, "group {g}: {mine:?}");
        assert_eq!(mine.last(), Some(&ReconcileStep::RemoveVoter(n(1))), "group {g}: {mine:?}");
    }
    let transfers = steps.iter().filter(|(_, s)| matches!(s, ReconcileStep::TransferLeader(_))).count();
    assert!(transfers >= led_by_1, "{transfers} transfers, {led_by_1} groups led by the leaving node");
    // Untouched groups still have node 1.
    assert!(h.host_ref(n(1)).unwrap().status(GROUPS - 1).unwrap().voters.contains(&n(1)));
    h.check_converged();
    for &g in &moving {
        assert_eq!(h.host_ref(n(4)).unwrap().status(g).unwrap().role == RaftRole::Leader, h.leader(g) == Some(n(4)));
    }
    (gap, end - start)
}

#[test]
fn same_seed_same_history() {
    let a = chaos(42, true);
    let b = chaos(42, true);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.leaders, b.leaders);
    assert_eq!(a.applied, b.applied);
    assert_eq!((a.envelopes, a.messages), (b.envelopes, b.messages));
    assert!(a.restarts > 0 && a.leaders.len() > GROUPS as usize);
    let c = chaos(43, true);
    assert_ne!(a.trace, c.trace);
}

#[test]
fn outbox_splits_only_what_exceeds_the_batch_limit() {
    use tessera_raft::{EntryKind, LogEntry, MessageType, Outbox, RaftMessage, message_size_bytes};
    let message = |to: u64, bytes: usize| RaftMessage {
        msg_type: MessageType::Append,
        to,
        from: 1,
        term: 1,
        log_term: 1,
        index: 1,
        entries: vec![LogEntry { index: 2, term: 1, kind: EntryKind::Normal, data: vec![0; bytes], context: vec![] }],
        commit: 1,
        commit_term: 1,
        snapshot: None,
        request_snapshot: 0,
        reject: false,
        reject_hint: 0,
        context: vec![],
        deprecated_priority: 0,
        priority: 0,
    };
    let size = message_size_bytes(&message(2, 400));
    let mut outbox = Outbox::new(2 * size + size / 2);
    for g in 0..5 {
        outbox.push(n(2), g, message(2, 400));
        outbox.push(n(3), g, message(3, 10));
    }
    let out = outbox.take();
    let to2: Vec<usize> = out.iter().filter(|(to, _)| *to == n(2)).map(|(_, b)| b.messages.len()).collect();
    let to3: Vec<usize> = out.iter().filter(|(to, _)| *to == n(3)).map(|(_, b)| b.messages.len()).collect();
    assert_eq!((to2, to3), (vec![2, 2, 1], vec![5]));
    assert!(outbox.is_empty());
    // Groups and messages keep their order across the split.
    let groups: Vec<u64> =
        out.iter().filter(|(to, _)| *to == n(2)).flat_map(|(_, b)| b.messages.iter().map(|(g, _)| *g)).collect();
    assert_eq!(groups, vec![0, 1, 2, 3, 4]);
}
