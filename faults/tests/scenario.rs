//! Scenario files: the shipped ones parse and validate, and each validation error names its field.

use std::path::{Path, PathBuf};

use tessera_faults::FaultKind;
use tessera_faults::scenario::{
    FaultMode, FaultSpec, IntRange, ProtectionSpec, ScenarioError, ScenarioSpec, WorkloadKind,
};

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(stem: &str) -> ScenarioSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{stem}.toml"));
    ScenarioSpec::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_file_parses_and_validates() {
    let files = shipped();
    let stems: Vec<String> = files.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["swarm", "rack-loss", "noisy-neighbours", "namespace", "over-budget", "rare-paths"] {
        assert!(stems.iter().any(|s| s == expected), "scenarios/{expected}.toml is missing");
    }
    for (path, stem) in files.iter().zip(&stems) {
        let spec = ScenarioSpec::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&spec.name, stem, "{}", path.display());
        assert!(spec.description.is_some(), "{} has no description", path.display());
    }
}

#[test]
fn shipped_files_say_what_they_mean() {
    let swarm = load("swarm");
    assert_eq!(ScenarioSpec { description: None, ..swarm }, ScenarioSpec::swarm());

    let racks = load("rack-loss");
    assert_eq!(racks.faults.rack_losses, Some(IntRange::new(1, 2)));
    let kinds: Vec<FaultKind> = racks.fault_mix.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FaultKind::RackLoss, FaultKind::Crash]);
    assert_eq!(racks.fault_weights(), vec![(FaultKind::RackLoss, None), (FaultKind::Crash, Some(3))]);

    let noisy = load("noisy-neighbours");
    let kinds: Vec<FaultKind> = noisy.fault_mix.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FaultKind::SlowDisk, FaultKind::SlowNode, FaultKind::Delay]);
    assert!(kinds.iter().all(|k| !k.loses_chunks()));

    let namespace = load("namespace");
    assert_eq!(namespace.workloads.len(), 1);
    let w = namespace.workload(WorkloadKind::Namespace).unwrap();
    assert_eq!(w.clients, Some(IntRange::new(2, 4)));
    assert!(namespace.workload(WorkloadKind::Files).is_none());
    let kinds = [
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Bridge,
        FaultKind::Crash,
        FaultKind::ClockSkew,
        FaultKind::Pause,
    ];
    for kind in kinds {
        assert!(namespace.fault_mix.iter().any(|f| f.kind == kind), "{kind:?}");
    }

    let over = load("over-budget");
    assert_eq!(over.faults.mode, FaultMode::OverBudget);
    assert!(over.cluster.protection.as_ref().is_some_and(|p| !p.is_empty()));
}

#[test]
fn empty_file_is_swarm() {
    let spec = ScenarioSpec::parse("", "swarm").unwrap();
    assert_eq!(spec, ScenarioSpec::swarm());
    assert_eq!(spec.faults.mode, FaultMode::Safety);
    assert!(spec.faults.buggify);
    assert_eq!(ScenarioSpec::parse("", "other").unwrap().name, "other");
    assert_eq!(ScenarioSpec::parse("name = \"given\"", "other").unwrap().name, "given");
}

#[test]
fn full_file() {
    let text = r#"
        name = "full"
        description = "all fields"
        [cluster]
        nodes = [3, 64]
        racks = [3, 16]
        protection = ["4+2", "8+3", "16+4", "3x"]
        shards = 8
        meta_replicas = [3, 5]
        [net]
        latency_us_max = [500, 3000]
        loss_per_million = [0, 10000]
        duplicate_per_million = 0
        [[workload]]
        kind = "files"
        clients = [1, 4]
        ops_per_client = [10, 30]
        [[workload]]
        kind = "namespace"
        [faults]
        mode = "safety"
        buggify = false
        interval_ms_max = [800, 3000]
        rack_losses = [0, 2]
        [[fault]]
        kind = "crash"
        weight = 3
        [[fault]]
        kind = "drive-loss"
    "#;
    let spec = ScenarioSpec::parse(text, "ignored").unwrap();
    assert_eq!(spec.name, "full");
    assert_eq!(spec.cluster.nodes, Some(IntRange::new(3, 64)));
    assert_eq!(spec.cluster.shards, Some(IntRange::exactly(8)));
    assert_eq!(
        spec.cluster.protection.as_deref(),
        Some(
            &[
                ProtectionSpec::ErasureCoded { data: 4, parity: 2 },
                ProtectionSpec::ErasureCoded { data: 8, parity: 3 },
                ProtectionSpec::ErasureCoded { data: 16, parity: 4 },
                ProtectionSpec::Replicated { copies: 3 },
            ][..]
        )
    );
    assert_eq!(spec.net.duplicate_per_million, Some(IntRange::exactly(0)));
    assert_eq!(spec.workloads.len(), 2);
    assert_eq!(spec.workloads[1].clients, None);
    assert!(!spec.faults.buggify);
    assert_eq!(
        spec.fault_mix,
        vec![
            FaultSpec { kind: FaultKind::Crash, weight: Some(3) },
            FaultSpec { kind: FaultKind::DriveLoss, weight: None }
        ]
    );
    // A single protection string is a one-element list.
    let one = ScenarioSpec::parse("[cluster]\nprotection = \"3x\"", "one").unwrap();
    assert_eq!(one.cluster.protection, Some(vec![ProtectionSpec::Replicated { copies: 3 }]));
}

#[test]
fn every_fault_kind_name_parses() {
    for kind in FaultKind::ALL {
        let text = format!("[[fault]]\nkind = \"{}\"\n", kind.name());
        let spec = ScenarioSpec::parse(&text, "k").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.fault_mix[0].kind, kind);
    }
}

/// Parse `text`, expect an error, and check it mentions every one of `words`.
fn rejects(text: &str, words: &[&str]) -> ScenarioError {
    let e = ScenarioSpec::parse(text, "inline").expect_err(text);
    let message = e.to_string();
    assert!(message.starts_with("inline: "), "{message}");
    for word in words {
        assert!(message.contains(word), "the error for {text:?} does not mention {word:?}:\n{message}");
    }
    e
}

/// Like `rejects`, and the error is a validation error on `field`.
fn invalid(text: &str, field: &str, words: &[&str]) {
    match rejects(text, words) {
        ScenarioError::Invalid { field: f, .. } => assert_eq!(f, field, "{text}"),
        other => panic!("{text}: expected a validation error on {field}, got {other}"),
    }
}

#[test]
fn parse_errors_name_the_field() {
    rejects("[cluster]\nnodez = 3", &["nodez", "unknown field"]);
    rejects("colour = 3", &["colour", "unknown field"]);
    rejects("[cluster]\nnodes = \"many\"", &["nodes", "[min, max]"]);
    rejects("[cluster]\nnodes = [3]", &["nodes", "exactly two"]);
    rejects("[cluster]\nnodes = [3, 4, 5]", &["nodes", "exactly two"]);
    rejects("[cluster]\nnodes = -3", &["nodes", "negative"]);
    rejects("[cluster]\nnodes = 3.5", &["nodes"]);
    rejects("[cluster]\nprotection = [\"20+2\"]", &["protection", "20+2", "2..=16"]);
    rejects("[cluster]\nprotection = [\"4+5\"]", &["protection", "1..=4"]);
    rejects("[cluster]\nprotection = [\"7x\"]", &["protection", "2..=5"]);
    rejects("[cluster]\nprotection = [\"raid5\"]", &["protection", "N+K"]);
    rejects("[[workload]]\nclients = 3", &["kind", "missing"]);
    rejects("[[workload]]\nkind = \"blobs\"", &["kind", "blobs"]);
    rejects("[[fault]]\nkind = \"meteor\"", &["kind", "meteor", "crash"]);
    rejects("[[fault]]\nkind = \"crash\"\nweigth = 3", &["weigth"]);
    rejects("[faults]\nmode = \"reckless\"", &["mode", "reckless"]);
    rejects("[faults]\nbuggify = \"yes\"", &["buggify"]);
    rejects("[net]\nlatency = 5", &["latency"]);
    rejects("[cluster\nnodes = 3", &["TOML"]);
}

#[test]
fn validation_errors_name_the_field() {
    invalid("name = \"\"", "name", &["name", "empty"]);
    invalid("[cluster]\nnodes = [10, 5]", "cluster.nodes", &["cluster.nodes", "min 10", "max 5"]);
    invalid("[cluster]\nnodes = 2", "cluster.nodes", &["cluster.nodes", "3..=1024"]);
    invalid("[cluster]\nnodes = [3, 2000]", "cluster.nodes", &["cluster.nodes", "3..=1024"]);
    invalid("[cluster]\nracks = 0", "cluster.racks", &["cluster.racks", "at least 1"]);
    invalid("[cluster]\nracks = [4, 3]", "cluster.racks", &["cluster.racks", "min 4"]);
    invalid("[cluster]\nnodes = [3, 5]\nracks = [6, 8]", "cluster.racks", &["cluster.racks", "nodes"]);
    invalid(
        "[cluster]\nracks = [3, 5]\nprotection = [\"4+2\", \"8+3\"]",
        "cluster.racks",
        &["cluster.racks", "4+2", "6 failure domains"],
    );
    invalid("[cluster]\nnodes = [3, 5]\nprotection = \"4+2\"", "cluster.nodes", &["cluster.nodes", "4+2"]);
    invalid("[cluster]\nprotection = []", "cluster.protection", &["cluster.protection", "no protection"]);
    invalid("[cluster]\nprotection = [\"3x\", \"3x\"]", "cluster.protection", &["cluster.protection", "twice"]);
    invalid("[cluster]\nshards = 0", "cluster.shards", &["cluster.shards"]);
    invalid("[cluster]\nmeta_replicas = [3, 4]", "cluster.meta_replicas", &["cluster.meta_replicas", "odd"]);
    invalid("[cluster]\nmeta_replicas = 2", "cluster.meta_replicas", &["cluster.meta_replicas", "odd"]);
    invalid("[cluster]\nnodes = 3\nmeta_replicas = 5", "cluster.meta_replicas", &["cluster.meta_replicas", "nodes"]);
    invalid("[net]\nlatency_us_max = [3000, 500]", "net.latency_us_max", &["net.latency_us_max", "min 3000"]);
    invalid("[net]\nloss_per_million = [0, 2000000]", "net.loss_per_million", &["net.loss_per_million", "million"]);
    invalid(
        "[net]\nduplicate_per_million = 1000001",
        "net.duplicate_per_million",
        &["net.duplicate_per_million", "million"],
    );
    invalid(
        "[[workload]]\nkind = \"files\"\n[[workload]]\nkind = \"files\"",
        "workload[1].kind",
        &["workload[1].kind", "files", "twice"],
    );
    invalid("[[workload]]\nkind = \"files\"\nclients = 0", "workload[0].clients", &["workload[0].clients"]);
    invalid(
        "[[workload]]\nkind = \"files\"\nclients = [4, 1]",
        "workload[0].clients",
        &["workload[0].clients", "min 4"],
    );
    invalid(
        "[[workload]]\nkind = \"namespace\"\nops_per_client = 0",
        "workload[0].ops_per_client",
        &["workload[0].ops_per_client"],
    );
    invalid("[faults]\ninterval_ms_max = [50, 3000]", "faults.interval_ms_max", &["faults.interval_ms_max", "100"]);
    invalid("[faults]\ninterval_ms_max = [900, 800]", "faults.interval_ms_max", &["faults.interval_ms_max"]);
    invalid("[faults]\nrack_losses = [0, 5]", "faults.rack_losses", &["faults.rack_losses", "at most 4"]);
    invalid("[faults]\nrack_losses = [2, 1]", "faults.rack_losses", &["faults.rack_losses", "min 2"]);
    invalid(
        "[faults]\nrack_losses = 1\n[[fault]]\nkind = \"crash\"",
        "faults.rack_losses",
        &["faults.rack_losses", "rack-loss"],
    );
    invalid(
        "[cluster]\nprotection = [\"4+1\", \"2x\"]\n[faults]\nrack_losses = 2",
        "faults.rack_losses",
        &["faults.rack_losses", "safety", "1"],
    );
    invalid("[faults]\nmode = \"over-budget\"", "faults.mode", &["faults.mode", "over-budget", "protection"]);
    invalid(
        "[[fault]]\nkind = \"crash\"\n[[fault]]\nkind = \"crash\"",
        "fault[1].kind",
        &["fault[1].kind", "crash", "twice"],
    );
    invalid("[[fault]]\nkind = \"delay\"\nweight = 0", "fault[0].weight", &["fault[0].weight", "1..=100"]);
    invalid("[[fault]]\nkind = \"delay\"\nweight = 101", "fault[0].weight", &["fault[0].weight", "1..=100"]);
}

#[test]
fn over_budget_may_lose_more_racks() {
    // In over-budget mode the safety-mode cap on rack losses does not apply.
    let text = "[cluster]\nprotection = \"4+1\"\n[faults]\nmode = \"over-budget\"\nrack_losses = 2";
    assert_eq!(ScenarioSpec::parse(text, "x").unwrap().faults.mode, FaultMode::OverBudget);
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, "[cluster]\nnodes = [9, 3]\n").unwrap();
    let message = ScenarioSpec::load(&path).unwrap_err().to_string();
    assert!(message.contains("mine.toml") && message.contains("cluster.nodes"), "{message}");
    std::fs::write(&path, "[cluster]\nnodes = 4\n").unwrap();
    assert_eq!(ScenarioSpec::load(&path).unwrap().name, "mine");
    let missing = dir.path().join("absent.toml");
    let message = ScenarioSpec::load(&missing).unwrap_err().to_string();
    assert!(message.contains("absent.toml") && message.contains("cannot read"), "{message}");
}
