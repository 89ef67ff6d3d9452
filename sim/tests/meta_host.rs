//! The metadata shard host (`tessera_meta::host`) in simulation: 3- and 5-node clusters with 8-16
//! shards serve single-shard creates, mkdirs, getattrs, lookups and readdirs while leaders are
//! killed and restarted, nodes are partitioned and messages are lost and duplicated; no acknowledged
//! create is lost; a shard-map change moves replicas while the shards keep serving; the same seed
//! gives the same trace.
//!
//! Replay one seed with its trace: `META_SEED=<seed> cargo test -p tessera-sim --test meta_host --
//! --nocapture replay` (add `META_NODES=5 META_SHARDS=16 META_MOVE=1` for the other shapes).

use tessera_sim::meta_support::{MetaOutcome, MetaScenario, meta_replay_command, run_meta_seed};

fn assert_passes(scenario: MetaScenario) -> (MetaOutcome, u64) {
    let seed = scenario.seed;
    let summary = scenario.summary();
    let (outcome, hash) = run_meta_seed(scenario, false);
    assert!(
        outcome.passed,
        "seed {seed} ({summary}) failed: {:?}\n{outcome:?}\nreplay: {}",
        outcome.reason,
        meta_replay_command(seed)
    );
    assert!(outcome.acked > 0, "seed {seed}: no create was acknowledged: {outcome:?}");
    assert!(outcome.preferred_leaders > 0, "seed {seed}: no shard is led by its preferred replica: {outcome:?}");
    println!("seed={seed} trace_hash={hash:016x} {summary}: {outcome:?}");
    (outcome, hash)
}

#[test]
fn three_nodes_with_faults_lose_no_acknowledged_create() {
    for seed in 0..4 {
        let (outcome, _) = assert_passes(MetaScenario::new(seed, 3, 8));
        assert!(outcome.kills > 0 || seed % 2 == 1, "seed {seed} killed nothing: {outcome:?}");
    }
}

#[test]
fn five_nodes_sixteen_shards_with_faults_lose_no_acknowledged_create() {
    for seed in 100..103 {
        assert_passes(MetaScenario::new(seed, 5, 16));
    }
}

#[test]
fn a_shard_map_change_moves_replicas_and_shards_keep_serving() {
    for seed in [200, 201] {
        let scenario = MetaScenario { map_change: true, faults: false, ..MetaScenario::new(seed, 5, 8) };
        let election_ms = scenario.host.tick_interval_ms * 2 * scenario.host.multi.raft.election_ticks as u64;
        let (outcome, _) = assert_passes(scenario);
        // One operation spans at most a leader change plus client retry timeouts while replicas move.
        assert!(
            outcome.move_latency_ms_max <= 3 * election_ms + 2_000,
            "seed {seed}: an operation took {} ms during the move (election {} ms)",
            outcome.move_latency_ms_max,
            election_ms
        );
    }
}

#[test]
fn same_seed_same_trace() {
    for (seed, nodes, shards) in [(7u64, 3u64, 8u16), (8, 5, 12)] {
        let (first, h1) = run_meta_seed(MetaScenario::new(seed, nodes, shards), false);
        let (second, h2) = run_meta_seed(MetaScenario::new(seed, nodes, shards), false);
        assert!(first.passed, "seed {seed}: {first:?}; replay: {}", meta_replay_command(seed));
        assert_eq!(h1, h2, "seed {seed} is not deterministic; replay: {}", meta_replay_command(seed));
        assert_eq!(first, second);
    }
}

/// `META_SEED=<seed>` replays one seed with its full trace (skipped without it).
#[test]
fn replay() {
    let Some(seed) = std::env::var("META_SEED").ok().and_then(|s| s.parse().ok()) else { return };
    let var = |name: &str, default: u64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let mut scenario = MetaScenario::new(seed, var("META_NODES", 3), var("META_SHARDS", 8) as u16);
    scenario.map_change = var("META_MOVE", 0) == 1;
    let (outcome, hash) = run_meta_seed(scenario, true);
    println!("seed={seed} trace_hash={hash:016x} {outcome:?}");
    assert!(outcome.passed);
}
