//! Determinism (STYLE.md rule 10): the same seed run twice in one process gives the same trace hash,
//! different seeds give different hashes, and every run crashes and restarts at least one node.

use tessera_sim::scenario::{self, ScenarioConfig, StoreKind};
use tessera_sim::{Trace, replay_command, run_seed, run_seed_with_store};

const SAMPLE_SEEDS: [u64; 4] = [1, 2, 3, 0xdead_beef];

#[test]
fn same_seed_same_trace_hash_and_seeds_differ() {
    let mut hashes = std::collections::BTreeMap::new();
    for seed in SAMPLE_SEEDS {
        let first = run_seed(seed, false);
        let second = run_seed(seed, false);
        let replay = replay_command(seed);
        assert!(first.passed, "seed {seed} failed: {:?}; replay: {replay}", first.reason);
        assert_eq!(
            first.trace_hash, second.trace_hash,
            "seed {seed} is not deterministic: {:016x} then {:016x}; replay: {replay}",
            first.trace_hash, second.trace_hash
        );
        if let Some(other) = hashes.insert(first.trace_hash, seed) {
            panic!("seeds {other} and {seed} gave the same trace hash; replay: {replay}");
        }
    }
}

#[test]
fn every_run_kills_and_restarts_a_node() {
    for seed in SAMPLE_SEEDS {
        let result = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default())
            .block_on(scenario::run(ScenarioConfig::from_seed(seed), Trace::new(false)));
        let replay = replay_command(seed);
        assert!(result.passed, "seed {seed}: {:?}; replay: {replay}", result.reason);
        assert!(result.kills >= 1 && result.restarts >= 1, "seed {seed}: no kill/restart; replay: {replay}");
        assert!(result.acked > 0, "seed {seed}: nothing acknowledged; replay: {replay}");
    }
}

/// A simulator that cannot fail a broken store proves nothing: the toy store that acknowledges before
/// flushing must be caught losing acknowledged writes on some seeds.
#[test]
fn checker_catches_a_store_that_acks_before_flush() {
    let broken = StoreKind::Toy { ack_before_flush: true };
    let failures: Vec<_> =
        (0..8u64).map(|seed| run_seed_with_store(seed, broken, false)).filter(|o| !o.passed).collect();
    assert!(!failures.is_empty(), "no seed in 0..8 caught the broken store");
    for f in &failures {
        let line = f.line();
        assert!(line.contains("result=fail") && line.contains(&replay_command(f.seed)), "bad failure line: {line}");
    }
}
