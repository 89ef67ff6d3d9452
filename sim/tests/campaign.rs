//! The campaign scenario (`tessera_sim::swarm`, issue 6): each seed picks the cluster, the protection,
//! the workloads, the fault mix and the live buggify sites; a safety phase under faults, then a liveness
//! phase after healing, then the checks. CI runs a sample of seeds here, and a bounded campaign through
//! the binary (`ci/test.sh`); `cargo run --release -p tessera-sim -- campaign --seeds 0..10000 --jobs 2`
//! runs a full one. Replay a seed: `cargo run -p tessera-sim -- campaign --seed S --verbose`.

use std::collections::BTreeSet;
use std::path::Path;

use tessera_config::model::Protection;
use tessera_env::hooks::RARE_MARKS;
use tessera_faults::campaign::CampaignSummary;
use tessera_faults::scenario::ScenarioSpec;
use tessera_sim::swarm::{SwarmOutcome, SwarmScenario, run_swarm, swarm_line};

fn assert_seed_passes(seed: u64) -> SwarmOutcome {
    let s = SwarmScenario::from_seed(seed);
    let (outcome, hash, _) = run_swarm(&s, false);
    let line = swarm_line(&s, &outcome, hash);
    assert!(outcome.passed, "{line}\nscenario: {}", s.summary());
    println!("{line}");
    outcome
}

#[test]
fn sampled_swarm_seeds_pass_safety_and_liveness() {
    let outcomes: Vec<SwarmOutcome> = (0..6).map(assert_seed_passes).collect();
    let faults: u64 = outcomes.iter().flat_map(|o| o.faults.values()).sum();
    let checked: u64 = outcomes.iter().map(|o| o.reads + o.ns_ops).sum();
    assert!(faults > 20 && checked > 50, "the sample injected {faults} faults and checked {checked} results");
}

/// Regression (10,000-seed campaign): 5 nodes, 2 of their racks lost, faults every 237 ms at most; the
/// namespace clients left 20 of 32 changes with unknown outcomes, too many for the linearizability checker
/// to decide ("history too large to check"). Clients now only read after 2 unknown outcomes.
#[test]
fn regression_seed_659_dense_faults_keep_the_namespace_history_checkable() {
    let outcome = assert_seed_passes(659);
    assert!(outcome.ns_ops > 0 && outcome.racks_lost == 2, "{outcome:?}");
}

/// Regression (10,000-seed campaign): the same failure as seed 659 on 6 nodes with 48 crashes.
#[test]
fn regression_seed_1566_many_crashes_keep_the_namespace_history_checkable() {
    let outcome = assert_seed_passes(1566);
    assert!(outcome.ns_ops > 0 && outcome.kills > 20, "{outcome:?}");
}

/// Regression (10,000-seed campaign): node 3's rebuild pass began before node 5's rack was declared
/// dead, ran 13 s of scrub cycles, and ended "idle" without ever scanning for stripes on the dead node;
/// the checker trusted that and found a chunk still on node 5. A pass that sees nodes declared dead
/// since it began now stops scrubbing and is not idle, and the checker waits for two whole passes.
#[test]
fn regression_seed_2840_a_pass_older_than_a_rack_loss_is_not_idle() {
    let outcome = assert_seed_passes(2840);
    assert!(outcome.racks_lost == 1 && outcome.stripes_rebuilt >= 1, "{outcome:?}");
}

/// Regression (10,000-seed campaign): shard 1's voters were {1, 2, 4, 5} with node 2 dead when the group
/// lost its leader; node 5, no longer in the map, dropped its replica after the removal grace, and the
/// group never had a quorum again ("only 7 of 8 shards have a leader"). A voter now stays unless the
/// members the map keeps are a quorum without it. (The rebuild fix of seed 2840 changes this run's
/// timing, so the seed alone no longer reaches that state; `host::groups` tests pin the rule.)
#[test]
fn regression_seed_4427_a_needed_voter_keeps_its_replica() {
    let outcome = assert_seed_passes(4427);
    assert!(outcome.ns_ops > 0 && outcome.racks_lost == 1, "{outcome:?}");
}

/// The same seed gives the same trace, the same outcome and the same hooks report.
#[test]
fn a_swarm_seed_replays_bit_for_bit() {
    let s = SwarmScenario::from_seed(11);
    let (a, hash_a, report_a) = run_swarm(&s, false);
    let (b, hash_b, report_b) = run_swarm(&s, false);
    assert!(a.passed, "{a:?}");
    assert_eq!(hash_a, hash_b, "seed 11 did not replay bit for bit");
    assert_eq!(a, b);
    assert_eq!(report_a, report_b);
}

/// Swarm testing covers the ranges the campaign promises: 3 to 64 nodes, every protection family,
/// both workloads alone and together, rack losses, every fault kind.
#[test]
fn the_swarm_spans_cluster_sizes_protections_workloads_and_faults() {
    let scenarios: Vec<SwarmScenario> = (0..3000).map(SwarmScenario::from_seed).collect();
    let nodes: BTreeSet<u64> = scenarios.iter().map(SwarmScenario::nodes).collect();
    assert_eq!(nodes.first(), Some(&3), "smallest cluster");
    assert!(*nodes.last().unwrap() >= 60 && *nodes.last().unwrap() <= 64, "largest cluster {nodes:?}");
    let protections: BTreeSet<String> = scenarios.iter().map(|s| format!("{:?}", s.data.protection)).collect();
    assert!(protections.len() >= 6, "{protections:?}");
    assert!(scenarios.iter().any(|s| s.data.protection == Protection::ErasureCoded { data: 16, parity: 4 }));
    let mix =
        |files: bool, ns: bool| scenarios.iter().any(|s| (s.data.clients > 0) == files && s.namespace.is_some() == ns);
    assert!(mix(true, false) && mix(false, true) && mix(true, true), "workload mixes");
    assert!(scenarios.iter().any(|s| s.nemesis.rack_losses == 2));
    let kinds: BTreeSet<_> = scenarios.iter().flat_map(|s| s.nemesis.mix.weights.iter().map(|(k, _)| *k)).collect();
    let swarm_kinds: BTreeSet<_> = tessera_faults::FaultKind::ALL.into_iter().filter(|k| k.in_swarm_mix()).collect();
    assert_eq!(kinds, swarm_kinds, "every kind of the swarm mix is mixed");
    for s in &scenarios {
        assert!(s.nodes() >= u64::from(s.data.protection.failure_domains_needed()), "{}", s.summary());
        assert!(s.data.racks >= u64::from(s.data.protection.failure_domains_needed()) + s.nemesis.rack_losses);
    }
}

/// Every scenario file shipped in faults/scenarios/ fits the seeds (a file that fits no cluster would be
/// refused by `tessera-sim campaign` before it starts).
#[test]
fn shipped_scenario_files_fit_their_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../faults/scenarios");
    for entry in std::fs::read_dir(&dir).expect("faults/scenarios") {
        let path = entry.expect("entry").path();
        let spec = ScenarioSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for seed in 0..200 {
            let s = SwarmScenario::from_spec(seed, &spec, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(s.over_budget, spec.faults.mode == tessera_faults::scenario::FaultMode::OverBudget);
        }
    }
}

/// A short campaign (through the binary and the campaign runner, as CI and users run it) reaches every
/// rare path of `RARE_MARKS`, the torn journal record included (`crash-in-commit` in rare-paths.toml;
/// see docs/SIMULATION.md, "Coverage of rare paths").
#[test]
fn a_short_campaign_reaches_the_rare_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("summary.json");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../faults/scenarios/rare-paths.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera-sim"))
        .args(["campaign", "--seeds", "0..16", "--jobs", "2", "--progress", "off"])
        .arg("--scenario")
        .arg(&scenario)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run tessera-sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.trim_end().ends_with("campaign seeds=16 passed=16 failed=0"), "{stdout}");
    let summary: CampaignSummary = serde_json::from_slice(&std::fs::read(&json).expect("summary")).expect("json");
    let marks = summary.count_maps.get("marks").cloned().unwrap_or_default();
    let missed: Vec<&str> =
        RARE_MARKS.iter().map(|(m, _)| *m).filter(|m| marks.get(*m).copied().unwrap_or(0) == 0).collect();
    assert!(missed.is_empty(), "rare paths not reached by the short campaign: {missed:?}; reached {marks:?}");
}
