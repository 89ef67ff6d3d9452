//! The metadata scenario (`tessera_sim::meta_scenario`): concurrent clients under kills, partitions,
//! loss and duplication; every history linearizable against the POSIX model, the shards consistent
//! after healing. CI runs a sample of seeds; `cargo run --release -p tessera-sim -- meta --seeds
//! 0..1000 --jobs 2` runs the campaign. Replay a seed: `cargo run -p tessera-sim -- meta --seed S
//! --verbose`.

use tessera_sim::meta_scenario::{HistoryScenario, meta_history_line, run_meta_history_seed};

fn assert_seed_passes(seed: u64) -> u64 {
    let (outcome, hash) = run_meta_history_seed(seed, false);
    let line = meta_history_line(seed, &outcome, hash);
    assert!(outcome.passed, "{line}\nscenario: {}", HistoryScenario::from_seed(seed).summary());
    assert!(outcome.ops > 20, "seed {seed} recorded almost nothing: {line}");
    println!("{line}");
    hash
}

#[test]
fn sampled_seeds_are_linearizable_and_consistent() {
    for seed in 0..64 {
        assert_seed_passes(seed);
    }
}

/// Seed 144 once ended "too large to check": 20 of its 85 operations had unknown outcomes (clients
/// timed out under faults every <= 755 ms), unanswered reads included. Reads without an answer are
/// now left out of the history (they changed nothing) and clients wait longer; the history must be
/// checkable and pass.
#[test]
fn regression_seed_144_history_is_checkable() {
    assert_seed_passes(144);
}

#[test]
fn same_seed_same_trace() {
    for seed in [3, 11] {
        let (a, ha) = run_meta_history_seed(seed, false);
        let (b, hb) = run_meta_history_seed(seed, false);
        assert_eq!((ha, &a), (hb, &b), "seed {seed} is not deterministic");
    }
}

#[test]
fn scaling_measurement_completes_without_failures() {
    for nodes in [1, 4] {
        let r = tessera_sim::meta_scale::measure(nodes, 1).expect("measurement runs");
        assert_eq!(r.failures, 0, "{r:?}");
        assert!(r.ops > 0, "{r:?}");
    }
}
