//! Crash-recovery seeds against the storage engine on the simulated drive (issue 2: thousands of random
//! crash points; every acknowledged extent reads back exactly; nothing unacknowledged appears as data).

use tessera_sim::{crash_replay_command, run_crash_seed};

/// Seeds run by `cargo test`. Each seed cuts power four times, so this is 4,800 crash points.
const SEEDS: std::ops::Range<u64> = 0..1200;

#[test]
fn acknowledged_extents_survive_random_crashes() {
    let mut failures = Vec::new();
    let (mut crashes, mut writes, mut frees, mut checkpoints, mut checked) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for seed in SEEDS {
        match run_crash_seed(seed) {
            Ok(r) => {
                crashes += u64::from(r.crashes);
                writes += r.writes_acked;
                frees += r.frees_acked;
                checkpoints += r.checkpoints;
                checked += r.extents_checked;
            }
            Err(reason) => failures.push(reason),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} crash seeds failed:\n{}",
        failures.len(),
        SEEDS.end - SEEDS.start,
        failures.join("\n")
    );
    println!(
        "crash seeds: {crashes} crashes, {writes} extents acked, {frees} frees, {checkpoints} checkpoints, {checked} extents checked"
    );
    // The seeds must exercise the paths they claim to: power cuts after real work, frees and checkpoints.
    assert!(crashes >= 4 * (SEEDS.end - SEEDS.start));
    assert!(writes > 10_000 && frees > 1_000 && checkpoints > 1_000 && checked > 10_000);
}

#[test]
fn a_crash_seed_replays_identically() {
    for seed in [3u64, 77, 1001] {
        assert_eq!(run_crash_seed(seed), run_crash_seed(seed), "replay: {}", crash_replay_command(seed));
    }
}
