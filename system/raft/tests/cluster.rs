//! Safety and determinism of `RaftNode` in the in-memory harness.

mod common;

use common::Harness;
use tessera_env::{NodeId, Rng};
use tessera_raft::{RaftConfig, RaftRole};

fn n(i: u64) -> NodeId {
    NodeId(i)
}

#[test]
fn three_nodes_elect_a_leader_and_commit() {
    let mut h = Harness::new(1, 3, RaftConfig::default());
    h.run(60);
    let leader = h.leader().expect("a leader within 60 ticks");
    for i in 0..20u64 {
        assert!(h.propose(i.to_le_bytes().to_vec()));
        h.run(2);
    }
    h.run(20);
    let commit = h.status(leader).unwrap().commit;
    for id in h.ids() {
        let s = h.status(id).unwrap();
        assert_eq!(s.commit, commit);
        assert_eq!(s.applied, commit);
        assert_eq!(h.slots[&id].app.len() as u64, commit);
    }
    // 20 proposals plus at least one leader no-op.
    assert!(commit >= 21, "commit {commit}");
    h.check_log_matching();
}

/// A chaotic run: partitions, drops, crashes and restarts, compactions, proposals; then heal and check
/// that every replica converges on the same log and nothing applied anywhere was lost.
pub fn chaos(seed: u64) -> Harness {
    let mut h = Harness::new(seed, 5, RaftConfig::default());
    h.drop_per_mille = 50;
    let mut proposed = 0u64;
    for round in 0..12 {
        // A fault per round.
        match h.rng.below(4) {
            0 => {
                let k = 1 + h.rng.below(3);
                let side: Vec<NodeId> = (1..=k).map(|i| n(1 + (i + round) % 5)).collect();
                h.partition(&side);
            }
            1 => {
                let victim = n(1 + h.rng.below(5));
                if h.slots[&victim].node.is_some() && h.live().len() > 3 {
                    h.crash(victim);
                }
            }
            2 => {
                if let Some(l) = h.leader() {
                    h.partition(&[l]);
                }
            }
            _ => h.heal(),
        }
        for id in h.ids() {
            if h.slots[&id].node.is_none() && h.rng.chance(1, 2) {
                h.restart(id);
            }
        }
        for _ in 0..25 {
            if h.rng.chance(1, 2) {
                proposed += 1;
                h.propose(proposed.to_le_bytes().to_vec());
            }
            if h.rng.chance(1, 40) {
                let id = n(1 + h.rng.below(5));
                h.compact(id);
            }
            h.step();
        }
        h.check_log_matching();
    }
    h.heal();
    h.drop_per_mille = 0;
    for id in h.ids() {
        if h.slots[&id].node.is_none() {
            h.restart(id);
        }
    }
    h.run(80);
    assert!(h.propose(b"final".to_vec()), "a leader after healing");
    h.run(40);
    let leader = h.leader().unwrap();
    let commit = h.status(leader).unwrap().commit;
    for id in h.ids() {
        let s = h.status(id).unwrap();
        assert_eq!((s.commit, s.applied), (commit, commit), "{id} did not catch up");
        // Every entry any replica ever applied is in this replica's state machine or its snapshot.
        for (&idx, (term, data)) in &h.applied {
            if let Some((t, _, d)) = h.slots[&id].app.get(&idx) {
                assert_eq!((t, d), (term, data));
            } else {
                panic!("{id} lost applied entry {idx}");
            }
        }
    }
    assert_eq!(h.applied.len() as u64, commit);
    h.check_log_matching();
    h
}

#[test]
fn chaos_is_safe_and_converges() {
    let (mut snapshots, mut restarts) = (0, 0);
    for seed in 0..10 {
        let h = chaos(seed);
        let terms = h.leaders.len();
        assert!(terms >= 2, "seed {seed}: expected leader changes, saw {terms} terms");
        snapshots += h.snapshots_received;
        restarts += h.restarts;
    }
    // The rare paths were reached: snapshots sent to lagging replicas, restarts from persisted state.
    assert!(snapshots > 0 && restarts > 0, "snapshots {snapshots} restarts {restarts}");
}

#[test]
fn same_seed_same_history_different_seed_different_timeouts() {
    let a = chaos(42);
    let b = chaos(42);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.leaders, b.leaders);
    assert_eq!(a.applied, b.applied);
    assert_eq!(a.timeouts, b.timeouts);
    assert_eq!(a.messages_sent, b.messages_sent);
    let c = chaos(43);
    assert_ne!(a.timeouts, c.timeouts);
    // Timeouts stay in [election, 2 * election).
    let e = RaftConfig::default().election_ticks;
    for seq in a.timeouts.values() {
        assert!(seq.iter().all(|&t| (e..2 * e).contains(&t)), "{seq:?}");
    }
    // At least one leader change happened, so elections (and their timeouts) were exercised.
    assert!(a.leaders.len() >= 2);
}

#[test]
fn leader_only_proposals_and_typed_not_leader() {
    let mut h = Harness::new(7, 3, RaftConfig::default());
    h.run(60);
    let leader = h.leader().unwrap();
    let follower = h.ids().into_iter().find(|&id| id != leader).unwrap();
    match h.node(follower).propose(b"x".to_vec()) {
        Err(tessera_raft::RaftError::NotLeader { leader_hint }) => assert_eq!(leader_hint, Some(leader)),
        other => panic!("{other:?}"),
    }
    assert!(h.status(follower).unwrap().role == RaftRole::Follower);
}

/// Shards move by learner -> voter: add a learner (it catches up from a snapshot, the log having been
/// compacted), promote it, remove an old voter; one change at a time.
#[test]
fn membership_learner_promotion_and_removal() {
    use tessera_raft::{ConfChangeRequest, RaftError};
    let mut h = Harness::new(11, 3, RaftConfig::default());
    h.run(60);
    for i in 0..30u64 {
        h.propose(i.to_le_bytes().to_vec());
        h.run(1);
    }
    h.run(10);
    for id in h.ids() {
        h.compact(id);
    }
    h.add_joiner(n(4));
    h.conf_change(ConfChangeRequest::AddLearner(n(4))).unwrap();
    assert_eq!(h.conf_change(ConfChangeRequest::AddVoter(n(4))), Err(RaftError::ConfChangePending));
    h.run(40);
    let leader = h.leader().unwrap();
    let s = h.status(leader).unwrap();
    assert_eq!((s.voters.clone(), s.learners.clone()), (vec![n(1), n(2), n(3)], vec![n(4)]));
    let s4 = h.status(n(4)).unwrap();
    assert_eq!((s4.commit, s4.applied), (s.commit, s.commit), "learner caught up");
    assert_eq!(s4.learners, vec![n(4)]);
    assert!(h.snapshots_received >= 1 && h.snapshots_requested >= 1, "the learner was sent a fresh snapshot");

    h.conf_change(ConfChangeRequest::AddVoter(n(4))).unwrap();
    h.run(30);
    let victim = h.ids().into_iter().find(|&id| id != h.leader().unwrap() && id != n(4)).unwrap();
    h.conf_change(ConfChangeRequest::RemoveVoter(victim)).unwrap();
    h.run(30);
    let leader = h.leader().unwrap();
    let s = h.status(leader).unwrap();
    let mut expect: Vec<NodeId> = vec![n(1), n(2), n(3), n(4)].into_iter().filter(|&id| id != victim).collect();
    expect.sort();
    assert_eq!(s.voters, expect);
    assert!(s.learners.is_empty());
    // The committed conf-change entries decode to what was proposed (as seen by the new voter).
    let seen: Vec<ConfChangeRequest> = h.conf_changes.iter().filter(|(id, _)| *id == n(4)).map(|(_, c)| *c).collect();
    assert_eq!(seen, vec![ConfChangeRequest::AddVoter(n(4)), ConfChangeRequest::RemoveVoter(victim)]);
    // Progress continues with the new membership, the removed node stopped counting.
    h.crash(victim);
    assert!(h.propose(b"after".to_vec()));
    h.run(20);
    let commit = h.status(h.leader().unwrap()).unwrap().commit;
    assert_eq!(h.status(n(4)).unwrap().applied, commit);
    h.check_log_matching();
}

/// The election timeout comes from our DetRng, not from raft-rs's thread_rng: a fresh node's timeout
/// is exactly the first draw of its generator.
#[test]
fn election_timeout_is_drawn_from_our_rng() {
    use tessera_env::DetRng;
    use tessera_raft::RaftNode;
    let config = RaftConfig::default();
    let e = config.election_ticks as u64;
    for seed in 0..20 {
        let node = RaftNode::new(n(1), &[n(1), n(2), n(3)], config.clone(), None, DetRng::from_seed(seed)).unwrap();
        let mut r = DetRng::from_seed(seed);
        assert_eq!(node.election_timeout_ticks() as u64, e + r.below(e), "seed {seed}");
    }
}

#[test]
fn leadership_transfer() {
    let mut h = Harness::new(3, 3, RaftConfig::default());
    h.run(60);
    let leader = h.leader().unwrap();
    let target = h.ids().into_iter().find(|&id| id != leader).unwrap();
    h.node(leader).transfer_leader(target);
    h.run(20);
    assert_eq!(h.leader(), Some(target));
    assert!(h.propose(b"on the new leader".to_vec()));
    h.run(10);
    h.check_log_matching();
}
