//! The data-path scenario (`tessera_sim::data_scenario`): clients write, overwrite, truncate and read
//! files while nodes crash, the network partitions, data blocks rot, drives fail and up to K failure
//! domains are lost; after healing every acknowledged write reads back exactly and every stripe is
//! whole, consistent and in distinct failure domains. CI runs a sample of seeds; `cargo run --release
//! -p tessera-sim -- data --seeds 0..1000 --jobs 2` runs the campaign. Replay a seed: `cargo run -p
//! tessera-sim -- data --seed S --verbose`.

use tessera_sim::data_scenario::{DataOutcome, DataScenario, data_line, run_data_scenario, run_data_seed};

fn assert_seed_passes(seed: u64) -> DataOutcome {
    let (outcome, hash) = run_data_seed(seed, false);
    let line = data_line(seed, &outcome, hash);
    assert!(outcome.passed, "{line}\nscenario: {}", DataScenario::from_seed(seed).summary());
    assert!(outcome.writes > 5 && outcome.reads > 0, "seed {seed} did almost nothing: {line}");
    println!("{line}");
    outcome
}

fn assert_seeds_pass(seeds: std::ops::Range<u64>) -> Vec<DataOutcome> {
    seeds.map(assert_seed_passes).collect()
}

#[test]
fn sampled_seeds_keep_every_acknowledged_write_a() {
    assert_seeds_pass(0..6);
}

#[test]
fn sampled_seeds_keep_every_acknowledged_write_b() {
    let outcomes = assert_seeds_pass(6..12);
    let lost: u64 = outcomes.iter().map(|o| o.racks_lost).sum();
    let rebuilt: u64 = outcomes.iter().map(|o| o.stripes_rebuilt).sum();
    assert!(lost > 0 && rebuilt > 0, "the sample lost no domain or rebuilt nothing: {lost} racks, {rebuilt} stripes");
}

/// With K + 1 failure domains lost at once, every file reads back exactly or fails with an error; some
/// files of the sample must be unreadable (else the mode tested nothing).
#[test]
fn over_budget_reads_are_exact_or_fail_cleanly() {
    let mut unreadable = 0;
    for seed in 0..6 {
        let (outcome, hash) = run_data_scenario(DataScenario::over_budget(seed), true, false);
        let line = data_line(seed, &outcome, hash);
        assert!(outcome.passed, "{line}");
        println!("{line}");
        unreadable += outcome.unreadable;
    }
    assert!(unreadable > 0, "no file became unreadable with K + 1 domains lost");
}

/// Seed 4 once lost acknowledged chunks: the node's data services were spawned from the boot hook on
/// the spawning (supervisor) context instead of the node, so they outlived kills and, reading a drive
/// of the dead node, declared it failed and dropped its chunks.
#[test]
fn regression_seed_4_services_die_with_their_node() {
    assert_seed_passes(4);
}

/// Seed 105 once found a stripe still on a dead node: the checker trusted an "idle" left by a rebuild
/// pass that began before the last write committed. It now waits for a pass (and a clean scrub cycle)
/// that began after healing.
#[test]
fn regression_seed_105_rebuild_is_checked_after_a_later_pass() {
    assert_seed_passes(105);
}

/// Seed 419 once never finished rebuilding: node 9 restarted, and its rebuilder's metadata client came
/// back under the same client id, numbering its requests from the start again; the shards took them
/// for stale duplicates of older requests and ignored them. A rebuilder now takes a fresh id per boot.
#[test]
fn regression_seed_419_a_restarted_rebuilder_is_heard() {
    assert_seed_passes(419);
}

#[test]
fn same_seed_same_trace() {
    let (a, ha) = run_data_seed(3, false);
    let (b, hb) = run_data_seed(3, false);
    assert_eq!((ha, &a), (hb, &b), "seed 3 is not deterministic");
}
