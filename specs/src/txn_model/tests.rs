use stateright::{Checker, Model};

use super::properties::{LIVENESS, SOMETIMES_CRASH_IN_DOUBT};
use super::*;

fn config(shards: u8, txns: u8, crashes_max: u8, losses_max: u8, duplicates_max: u8) -> TxnModelConfig {
    TxnModelConfig { shards, txns, crashes_max, losses_max, duplicates_max, bug: None }
}

fn run(config: TxnModelConfig) -> CheckReport {
    let report = check(config);
    println!(
        "{config:?}: {} states, {} unique, max depth {}, {:.1?}",
        report.states, report.unique, report.max_depth, report.elapsed
    );
    if let Some((name, path)) = &report.counterexample {
        println!("counterexample to \"{name}\" in {} steps:", path.len());
        for step in path {
            println!("  {step}");
        }
    }
    report
}

/// The protocol as designed: no counterexample, and every interesting state reachable.
fn assert_correct(config: TxnModelConfig) {
    let report = run(config);
    assert!(report.counterexample.is_none(), "{:?}", report.counterexample);
    let expected_unreached: &[&str] = if config.crashes_max == 0 { &[SOMETIMES_CRASH_IN_DOUBT] } else { &[] };
    assert_eq!(report.unreached, expected_unreached);
}

/// A planted bug: the checker finds a counterexample; returns its length.
fn assert_caught(config: TxnModelConfig, bug: Bug) -> usize {
    let report = run(TxnModelConfig { bug: Some(bug), ..config });
    let (name, path) = report.counterexample.unwrap_or_else(|| panic!("{bug:?} not caught in {config:?}"));
    println!("{bug:?}: \"{name}\" violated after {} steps", path.len());
    path.len()
}

#[test]
fn correct_two_shards_one_txn() {
    assert_correct(config(2, 1, 2, 2, 2));
}

#[test]
fn correct_three_shards_one_txn() {
    assert_correct(config(3, 1, 1, 1, 1));
}

#[test]
fn correct_two_shards_two_txns() {
    assert_correct(config(2, 2, 1, 1, 0));
}

#[test]
fn correct_two_shards_two_txns_duplicates() {
    assert_correct(config(2, 2, 0, 0, 1));
}

/// About 4.7 million states and 1.5 minutes: run with `--ignored`.
#[test]
#[ignore]
fn correct_three_shards_two_txns() {
    assert_correct(config(3, 2, 0, 0, 0));
}

#[test]
fn bug_skip_in_doubt_recovery_is_caught() {
    assert_caught(config(2, 1, 1, 1, 1), Bug::SkipInDoubtRecovery);
    assert_caught(config(3, 1, 1, 1, 1), Bug::SkipInDoubtRecovery);
    // It is a recovery bug: without a leader crash the protocol is unaffected.
    let report = run(TxnModelConfig { bug: Some(Bug::SkipInDoubtRecovery), ..config(2, 1, 0, 1, 1) });
    assert!(report.counterexample.is_none());
}

#[test]
fn bug_done_before_acks_is_caught() {
    assert_caught(config(2, 1, 1, 1, 1), Bug::DoneBeforeAcks);
    assert_caught(config(3, 1, 0, 0, 0), Bug::DoneBeforeAcks);
}

#[test]
fn bug_apply_on_prepare_is_caught() {
    assert_caught(config(2, 1, 1, 1, 1), Bug::ApplyOnPrepare);
    assert_caught(config(3, 1, 0, 0, 0), Bug::ApplyOnPrepare);
}

#[test]
fn bug_no_tombstones_is_caught() {
    // The rename's own checks reject a stale prepare; the link's reference count does not.
    assert_caught(config(2, 2, 1, 1, 1), Bug::NoTombstones);
}

/// The `eventually` property is not vacuous: a new leader that forgets a committed transaction also
/// leaves its record undone forever.
#[test]
fn liveness_violation_is_found() {
    let model = TxnModel::new(TxnModelConfig { bug: Some(Bug::SkipInDoubtRecovery), ..config(2, 1, 1, 0, 0) });
    let checker = model.checker().spawn_bfs().join();
    let path = checker.discovery(LIVENESS).expect("liveness violation found");
    println!("liveness violated after {} steps", path.into_actions().len());
}
