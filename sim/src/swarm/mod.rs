//! The campaign scenario (issue 6): swarm testing of the whole cluster.
//!
//! A seed (and optionally a scenario file, `tessera_faults::scenario`) chooses the cluster shape (3 to
//! 64 nodes, racks, protection, metadata shards and replicas), the fabric's loss and duplication, the
//! timeouts, the workload mix (data files checked byte for byte, POSIX namespace operations checked for
//! linearizability, or both on one namespace), the fault mix and its rates, and which `buggify!` sites
//! are live. Then:
//!
//! 1. **safety phase**: the workloads run while the nemesis (`tessera_faults::Nemesis`) injects faults
//!    within the protection's budget, every checker live (each read is checked against the model as it
//!    returns);
//! 2. **liveness phase**: everything heals; within bounded simulated time every workload operation
//!    completes, every shard elects a leader, every cross-shard transaction resolves, the rebuild
//!    finishes, a fresh write and read succeed, and the replicas of every shard converge;
//! 3. **checks**: every acknowledged write reads back exactly, every stripe is whole and in distinct
//!    failure domains, the namespace is consistent, the history is linearizable.
//!
//! In the over-budget mode one failure domain more than the protection tolerates is lost after the
//! workload: every read must then be exact or fail with a clear error.
//!
//! `cargo run --release -p tessera-sim -- campaign --seeds 0..1000 --jobs 2` runs a campaign;
//! `cargo run -p tessera-sim -- campaign --seed S --verbose` replays one seed with its trace.

mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::model::Protection;
use tessera_config::placement::PlacementNode;
use tessera_data::rebuild::{DataMap, SharedDataMap};
use tessera_env::hooks::{self, HookConfig, HookReport};
use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_faults::scenario::{FaultMode, IntRange, ProtectionSpec, ScenarioSpec, WorkloadKind};
use tessera_faults::{FaultKind, FaultMix, Nemesis, NemesisConfig};
use tessera_meta::InodeId;
use tessera_meta::client::{ClientConfig, MetaClient, ShardDirectory};
use tessera_meta::host::{EpochMap, SharedHostView, SharedShardMap};

use crate::cluster::{Cluster, NodeSpec};
use crate::data_scenario::workload::{self as files, FileSet, Ledger, SimDataClient};
use crate::data_scenario::{DataScenario, node, tolerated};
use crate::env::SimClock;
use crate::meta_scenario::{self as ns, Recorder, SharedHistory, SimMetaClient};
use crate::meta_support::{HostCluster, start_hosts_with, wait_for_all_leaders};
use crate::trace::Trace;
use target::SimTarget;

const SOURCE: &str = "swarm";
/// The data checker, the data workload clients, the namespace checker, the namespace clients.
const CHECKER: NodeId = NodeId(1000);
const FILES_CLIENT_BASE: u64 = 1001;
const NS_CHECKER: NodeId = NodeId(1500);
const NS_CLIENT_BASE: u64 = 1501;
const ROOT_CREATED_NS: u64 = 1_000_000_000;
/// With crash-in-commit faults, hosts free Raft log records in batches this large: one free entry then
/// spans two journal blocks (a free record is 9 bytes, a block holds 4,048 after the entry header).
const RAFT_FREE_BATCH_EXTENTS: usize = 460;
/// The namespace workload's base directory (its model's root).
const NS_BASE: &str = "ns";
/// Each enabled buggify site fires on this share of its evaluations.
const BUGGIFY_FIRE_PER_MILLION: u32 = 50_000;
const BUGGIFY_SITES_ENABLED_PER_MILLION: u32 = 250_000;

/// The namespace workload's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceLoad {
    pub clients: u64,
    pub ops_per_client: u64,
}

/// What a seed (and the scenario file) chose.
#[derive(Clone, Debug)]
pub struct SwarmScenario {
    pub name: String,
    /// The scenario file it came from, if any (for the replay command).
    pub file: Option<String>,
    /// The cluster, the protection, the fabric, the timeouts and the files workload (`clients` 0: off).
    pub data: DataScenario,
    pub namespace: Option<NamespaceLoad>,
    pub nemesis: NemesisConfig,
    pub over_budget: bool,
    pub buggify: bool,
}

fn pick(range: Option<IntRange>, default: (u64, u64), rng: &mut DetRng) -> u64 {
    let r = range.unwrap_or(IntRange { min: default.0, max: default.1 });
    rng.range_inclusive(r.min, r.max)
}

/// The protections a swarm picks from (small stripes more often: they fit small clusters).
const SWARM_PROTECTIONS: [Protection; 9] = [
    Protection::ErasureCoded { data: 4, parity: 2 },
    Protection::ErasureCoded { data: 4, parity: 2 },
    Protection::ErasureCoded { data: 4, parity: 3 },
    Protection::ErasureCoded { data: 6, parity: 2 },
    Protection::ErasureCoded { data: 8, parity: 3 },
    Protection::ErasureCoded { data: 16, parity: 4 },
    Protection::Replicated { copies: 2 },
    Protection::Replicated { copies: 3 },
    Protection::Replicated { copies: 3 },
];

impl SwarmScenario {
    /// The default campaign: everything chosen by the seed.
    pub fn from_seed(seed: u64) -> SwarmScenario {
        SwarmScenario::from_spec(seed, &ScenarioSpec::swarm(), None).expect("the swarm spec fits every seed")
    }

    /// The scenario of `seed` under `spec` (fields the spec leaves open are chosen by the seed).
    pub fn from_spec(seed: u64, spec: &ScenarioSpec, file: Option<String>) -> Result<SwarmScenario, String> {
        let mut rng = DetRng::from_seed(seed).fork("swarm");
        let over_budget = spec.faults.mode == FaultMode::OverBudget;
        let choices: Vec<Protection> = match &spec.cluster.protection {
            Some(list) => list
                .iter()
                .map(|p| match *p {
                    ProtectionSpec::ErasureCoded { data, parity } => Protection::ErasureCoded { data, parity },
                    ProtectionSpec::Replicated { copies } => Protection::Replicated { copies },
                })
                .collect(),
            None => SWARM_PROTECTIONS.to_vec(),
        };
        // A protection needs its failure domains, plus K + 1 more racks in the over-budget mode (the
        // metadata then runs 2(K + 1) + 1 replicas in distinct racks).
        let racks_needed = |p: Protection| {
            let k = tolerated(p);
            let base = u64::from(p.failure_domains_needed()).max(3);
            if over_budget { base.max(2 * (k + 1) + 1) } else { base }
        };
        let racks_min_spec = spec.cluster.racks.map_or(0, |r| r.min);
        // Cluster size: given by the file, or mostly small clusters (fast) and sometimes large ones, and
        // never fewer nodes than the protection picked needs racks.
        let (nodes_wanted, feasible) = match spec.cluster.nodes {
            Some(r) => {
                let nodes = rng.range_inclusive(r.min, r.max);
                let racks_max = spec.cluster.racks.map_or(nodes, |r| r.max.min(nodes));
                let feasible: Vec<Protection> =
                    choices.iter().copied().filter(|p| p.is_valid() && racks_needed(*p) <= racks_max).collect();
                (nodes, feasible)
            }
            None => {
                let valid: Vec<Protection> = choices.iter().copied().filter(|p| p.is_valid()).collect();
                let p =
                    *valid.get(rng.below(valid.len().max(1) as u64) as usize).ok_or("no valid protection listed")?;
                let nodes = match rng.below(10) {
                    0..=5 => rng.range_inclusive(3, 9),
                    6..=8 => rng.range_inclusive(10, 24),
                    _ => rng.range_inclusive(25, 64),
                };
                (nodes.max(racks_needed(p)).max(racks_min_spec), vec![p])
            }
        };
        let racks_max_allowed = spec.cluster.racks.map_or(nodes_wanted, |r| r.max.min(nodes_wanted));
        if feasible.is_empty() {
            return Err(format!(
                "seed {seed}: no protection of {choices:?} fits {nodes_wanted} nodes in at most {racks_max_allowed} racks"
            ));
        }
        let protection = feasible[rng.below(feasible.len() as u64) as usize];
        let k = tolerated(protection);
        let fdn = u64::from(protection.failure_domains_needed());
        let racks_min = racks_needed(protection).max(racks_min_spec);
        let racks = rng.range_inclusive(racks_min.min(racks_max_allowed), racks_max_allowed.min(racks_min + 8));
        let nodes_per_rack = (nodes_wanted / racks).max(1);
        let meta_replicas = if over_budget {
            2 * (k + 1) + 1
        } else {
            let r = pick(spec.cluster.meta_replicas, (3, 5), &mut rng);
            let r = if r.is_multiple_of(2) { r - 1 } else { r };
            r.min(if racks.is_multiple_of(2) { racks - 1 } else { racks }).max(3)
        };
        // Racks lost for good in the safety phase: within K, leaving room to place and rebuild stripes
        // (`fdn` racks standing) and a majority of every metadata shard.
        let losses_max = k.min(racks - fdn).min((meta_replicas - 1) / 2).min(2);
        let rack_losses = if over_budget { 0 } else { pick(spec.faults.rack_losses, (0, losses_max), &mut rng) };
        let rack_losses = rack_losses.min(losses_max);

        let mut data = DataScenario::from_seed(seed);
        data.racks = racks;
        data.nodes_per_rack = nodes_per_rack;
        data.protection = protection;
        data.meta_replicas = meta_replicas as u32;
        data.shards = match spec.cluster.shards {
            Some(r) => rng.range_inclusive(r.min, r.max) as u16,
            None => [4, 8, 16][rng.below(3) as usize],
        };
        data.rack_losses = rack_losses;
        data.net.latency_us_max = pick(spec.net.latency_us_max, (500, 3_000), &mut rng);
        data.net.loss_per_million = pick(spec.net.loss_per_million, (0, 10_000), &mut rng);
        data.net.duplicate_per_million = pick(spec.net.duplicate_per_million, (0, 5_000), &mut rng);

        // Workloads: those the file lists, or (swarm) files and/or namespace.
        let listed = |kind: WorkloadKind| spec.workloads.iter().find(|w| w.kind == kind);
        let (files_on, ns_on) = if spec.workloads.is_empty() {
            match rng.below(10) {
                0..=1 => (true, false),
                2..=3 => (false, true),
                _ => (true, true),
            }
        } else {
            (listed(WorkloadKind::Files).is_some(), listed(WorkloadKind::Namespace).is_some())
        };
        let files_spec = listed(WorkloadKind::Files);
        data.clients = if files_on { pick(files_spec.and_then(|w| w.clients), (1, 3), &mut rng) } else { 0 };
        data.ops_per_client = pick(files_spec.and_then(|w| w.ops_per_client), (8, 20), &mut rng);
        let ns_spec = listed(WorkloadKind::Namespace);
        let namespace = ns_on.then(|| NamespaceLoad {
            clients: pick(ns_spec.and_then(|w| w.clients), (2, 4), &mut rng),
            ops_per_client: pick(ns_spec.and_then(|w| w.ops_per_client), (6, 14), &mut rng),
        });

        let mix = if spec.fault_mix.is_empty() {
            FaultMix::swarm(&mut rng)
        } else {
            let kinds: Vec<_> = spec.fault_mix.iter().map(|f| (f.kind, f.weight)).collect();
            FaultMix::of(&kinds, &mut rng)
        };
        let interval_ms_max = pick(spec.faults.interval_ms_max, (200, 1_500), &mut rng).max(100);
        data.fault_interval_ms_max = interval_ms_max;
        let nemesis = NemesisConfig {
            mix,
            interval_ms_max,
            tolerated_chunks: k,
            rack_losses,
            down_max: rng.range_inclusive(1, 2) as usize,
            detection_delay_ms: 2_000,
            episode_ms_max: rng.range_inclusive(5_000, 120_000),
        };
        Ok(SwarmScenario {
            name: spec.name.clone(),
            file,
            data,
            namespace,
            nemesis,
            over_budget,
            buggify: spec.faults.buggify,
        })
    }

    pub fn nodes(&self) -> u64 {
        self.data.racks * self.data.nodes_per_rack
    }

    pub fn summary(&self) -> String {
        let ns = match self.namespace {
            Some(n) => format!("{} namespace clients x {} ops", n.clients, n.ops_per_client),
            None => "no namespace workload".into(),
        };
        format!(
            "scenario {}: {} nodes in {} racks; {}; faults {} every <= {} ms, down <= {}, episodes <= {} ms, budget K={}, racks lost {}{}; buggify {}",
            self.name,
            self.nodes(),
            self.data.racks,
            if self.data.clients > 0 { self.data.summary() } else { format!("{ns}; {}", self.data.summary()) },
            self.nemesis.mix.describe(),
            self.nemesis.interval_ms_max,
            self.nemesis.down_max,
            self.nemesis.episode_ms_max,
            self.nemesis.tolerated_chunks,
            self.nemesis.rack_losses,
            if self.over_budget { " + K+1 over budget" } else { "" },
            self.buggify,
        ) + &if self.data.clients > 0 { format!("; {ns}") } else { String::new() }
    }

    pub fn replay_command(&self) -> String {
        let file = self.file.as_ref().map(|f| format!(" --scenario {f}")).unwrap_or_default();
        format!("cargo run -p tessera-sim -- campaign --seed {}{file} --verbose", self.data.seed)
    }
}

/// What a run measured and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwarmOutcome {
    pub passed: bool,
    pub reason: Option<String>,
    pub nodes: u64,
    pub writes: u64,
    pub reads: u64,
    pub unknown: u64,
    pub read_errors: u64,
    pub ns_ops: u64,
    pub ns_unknown: u64,
    pub kills: u64,
    pub racks_lost: u64,
    pub stripes_rebuilt: u64,
    pub unreadable: u64,
    /// Faults injected, by kind name.
    pub faults: BTreeMap<String, u64>,
    /// Rare paths reached and buggify sites fired.
    pub marks: BTreeMap<String, u64>,
    pub fired: BTreeMap<String, u64>,
}

fn count_map(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",")
}

/// The one-line result the campaign runner parses.
pub fn swarm_line(s: &SwarmScenario, outcome: &SwarmOutcome, trace_hash: u64) -> String {
    let head = format!("seed={} trace_hash={trace_hash:016x}", s.data.seed);
    let body = format!(
        "nodes={} writes={} reads={} unknown={} read_errors={} ns_ops={} ns_unknown={} kills={} racks_lost={} rebuilt={} unreadable={} faults={} marks={} fired={}",
        outcome.nodes,
        outcome.writes,
        outcome.reads,
        outcome.unknown,
        outcome.read_errors,
        outcome.ns_ops,
        outcome.ns_unknown,
        outcome.kills,
        outcome.racks_lost,
        outcome.stripes_rebuilt,
        outcome.unreadable,
        count_map(&outcome.faults),
        count_map(&outcome.marks),
        count_map(&outcome.fired),
    );
    if outcome.passed {
        format!("{head} result=pass {body}")
    } else {
        let reason = outcome.reason.as_deref().unwrap_or("unknown").replace('\\', "\\\\").replace('"', "\\\"");
        format!("{head} result=fail {body} reason=\"{reason}\" replay=\"{}\"", s.replay_command())
    }
}

/// Run `s` in a fresh runtime with the seed's buggify sites installed; returns the outcome, the trace
/// hash and what the hooks saw.
pub fn run_swarm(s: &SwarmScenario, verbose: bool) -> (SwarmOutcome, u64, HookReport) {
    let trace = Trace::new(verbose);
    let seed = s.data.seed;
    let installed = hooks::install(HookConfig {
        seed,
        buggify: s.buggify,
        site_enabled_per_million: BUGGIFY_SITES_ENABLED_PER_MILLION,
        fire_per_million: BUGGIFY_FIRE_PER_MILLION,
    });
    let mut outcome = crate::run::in_runtime(seed, run(s.clone(), trace.clone()))
        .unwrap_or_else(|panic| SwarmOutcome { reason: Some(panic), ..Default::default() });
    let report = hooks::report();
    drop(installed);
    outcome.nodes = s.nodes();
    outcome.marks = report.marks.iter().map(|(k, v)| ((*k).to_string(), *v)).collect();
    outcome.fired =
        report.sites.iter().filter(|(_, r)| r.fired > 0).map(|(k, r)| ((*k).to_string(), r.fired)).collect();
    (outcome, trace.hash(), report)
}

struct Run {
    s: Arc<SwarmScenario>,
    data: Arc<DataScenario>,
    cluster: Cluster,
    views: BTreeMap<NodeId, SharedHostView>,
    map: SharedDataMap,
    nodes: Vec<PlacementNode>,
    directory: ShardDirectory,
    servers: Vec<NodeId>,
    clients: Vec<NodeId>,
    /// Every host's shard-map source, the map they were last given, and the dead nodes it excludes.
    shard_maps: BTreeMap<NodeId, SharedShardMap>,
    shard_map: EpochMap,
    shard_map_dead: BTreeSet<NodeId>,
    rng: DetRng,
    trace: Trace,
    outcome: SwarmOutcome,
}

async fn run(s: SwarmScenario, trace: Trace) -> SwarmOutcome {
    trace.record(SOURCE, format_args!("seed {}: {}", s.data.seed, s.summary()));
    let mut rng = DetRng::from_seed(s.data.seed).fork("swarm-run");
    let mut meta = s.data.meta();
    if s.nemesis.mix.contains(FaultKind::CrashInCommit) {
        // Large frees are the metadata drives' only journal entries of several blocks: the ones a
        // crash during a commit can tear.
        meta.raft_free_batch_extents = RAFT_FREE_BATCH_EXTENTS;
    }
    let meta = Arc::new(meta);
    let nodes = meta.placement_nodes();
    let map: SharedDataMap = Arc::new(Mutex::new(DataMap::new(nodes.clone())));
    let roots = BTreeMap::from([(0, (InodeId::ROOT, ROOT_CREATED_NS))]);
    let genesis = tessera_config::placement::place(&nodes, u32::from(s.data.shards), s.data.meta_replicas, None)
        .expect("the scenario's nodes can be placed");
    let directory = ShardDirectory::new(&genesis, 1).expect("the genesis map is a valid directory");
    let hook = node::services_hook(node::ServicesSetup::for_scenario(&s.data), map.clone(), directory.clone());
    let HostCluster { cluster, views, maps: shard_maps, map: shard_map } =
        start_hosts_with(&meta, roots, &mut rng, &trace, Some(hook));
    let servers = meta.node_ids();
    let data = Arc::new(s.data.clone());
    let mut run = Run {
        s: Arc::new(s),
        data,
        cluster,
        views,
        map,
        nodes,
        directory,
        servers,
        clients: Vec::new(),
        shard_maps,
        shard_map,
        shard_map_dead: BTreeSet::new(),
        rng,
        trace,
        outcome: SwarmOutcome::default(),
    };
    let verdict = run.phases().await;
    let mut outcome = std::mem::take(&mut run.outcome);
    outcome.kills = run.cluster.kills();
    match verdict {
        Ok(()) => outcome.passed = true,
        Err(reason) => outcome.reason = Some(reason),
    }
    run.trace.record(SOURCE, format_args!("outcome {outcome:?}"));
    outcome
}

/// The namespace workload's state during a run.
struct NamespaceRun {
    checker: SimMetaClient,
    fixture: ns::workload::Fixture,
    history: SharedHistory,
}

impl Run {
    async fn phases(&mut self) -> Result<(), String> {
        self.wait_for_leaders(Duration::from_secs(30)).await?;
        // Setup, before any fault.
        let mut checker = self.data_client(CHECKER);
        let file_set = FileSet::create(&mut checker, self.data.clients, self.data.files_per_client).await?;
        let ledger = Arc::new(Mutex::new(Ledger::new(&file_set)));
        let mut namespace = match self.s.namespace {
            Some(_) => {
                let mut ns_checker = self.meta_client(NS_CHECKER);
                let fixture = ns::setup(&mut ns_checker, Some(NS_BASE)).await?;
                Some(NamespaceRun { checker: ns_checker, fixture, history: Arc::new(Mutex::new(Recorder::default())) })
            }
            None => None,
        };
        // The safety phase: workloads under faults.
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for c in 0..self.data.clients {
            let id = NodeId(FILES_CLIENT_BASE + c);
            let client = self.data_client(id);
            let rng = self.rng.fork(&format!("workload:{id}"));
            let task = files::run_client(
                client,
                file_set.of_client(c),
                rng,
                self.data.clone(),
                self.map.clone(),
                ledger.clone(),
                done.clone(),
            );
            tasks.push(self.cluster.spawn_on(id, task));
        }
        let mut workers = self.data.clients;
        if let (Some(load), Some(nsr)) = (self.s.namespace, namespace.as_ref()) {
            for c in 0..load.clients {
                let id = NodeId(NS_CLIENT_BASE + c);
                let client = self.meta_client(id);
                let rng = self.rng.fork(&format!("ns-workload:{id}"));
                let fixture = nsr.fixture.clone();
                let task =
                    ns::workload(client, id.0, fixture, rng, load.ops_per_client, nsr.history.clone(), done.clone());
                tasks.push(self.cluster.spawn_on(id, task));
            }
            workers += load.clients;
        }
        let mut nemesis = Nemesis::new(self.s.nemesis.clone(), self.rng.fork("nemesis"));
        let until = SimClock.now() + Duration::from_secs(900);
        while SimClock.now() < until && done.load(Ordering::Relaxed) < workers {
            SimClock.sleep(Duration::from_millis(nemesis.pause_ms())).await;
            nemesis.step(&mut self.target(), now_ms());
            self.replace_dead_metadata();
        }
        nemesis.finish_rack_losses(&mut self.target(), now_ms());
        if self.s.over_budget {
            let beyond = tolerated(self.data.protection) + 1;
            nemesis.lose_racks_now(&mut self.target(), beyond, now_ms());
        }
        // The liveness phase: heal, then everything must complete within bounded time.
        nemesis.heal(&mut self.target());
        hooks::quiesce();
        self.replace_dead_metadata();
        self.outcome.racks_lost = nemesis.lost_racks().len() as u64;
        self.outcome.faults = nemesis.counts().iter().map(|(k, v)| (k.name().to_string(), *v)).collect();
        self.trace.record(
            SOURCE,
            format_args!("healed; faults {:?}; lost racks {:?}", nemesis.counts(), nemesis.lost_racks()),
        );
        if self.s.over_budget {
            // Let the failure detector declare them and the survivors try (and fail) to rebuild.
            SimClock.sleep(Duration::from_secs(5)).await;
        }
        let deadline = SimClock.now() + Duration::from_secs(300);
        for task in tasks {
            let left = deadline.saturating_since(SimClock.now());
            match madsim::time::timeout(left, task).await {
                Ok(result) => result.map_err(|e| format!("workload task failed: {e}"))?,
                Err(_) => return Err("liveness: workload operations still running 300 s after healing".into()),
            }
        }
        {
            let l = ledger.lock().expect("ledger");
            if let Some(v) = l.violations.first() {
                return Err(format!("during the workload: {v}"));
            }
            self.outcome.writes = l.writes;
            self.outcome.reads = l.reads;
            self.outcome.unknown = l.unknown;
            self.outcome.read_errors = l.read_errors;
        }
        self.trace.record(SOURCE, format_args!("liveness: every workload operation completed"));
        self.wait_for_leaders(Duration::from_secs(60)).await?;
        if let Some(nsr) = namespace.as_mut() {
            self.check_namespace(nsr).await?;
            self.trace.record(SOURCE, format_args!("namespace: transactions resolved, consistent, linearizable"));
        }
        let live: Vec<PlacementNode> = self.map.lock().expect("map").live();
        checker.set_nodes(live.clone());
        let dead: BTreeSet<NodeId> = self.map.lock().expect("map").dead.clone();
        let l = ledger.lock().expect("ledger").clone();
        if self.s.over_budget {
            self.outcome.unreadable = files::check_over_budget(&mut checker, &l).await?;
            return Ok(());
        }
        let mut io = files::checker_io(&self.cluster, CHECKER, &mut self.rng);
        self.outcome.stripes_rebuilt =
            files::wait_for_rebuild(&mut checker, &mut io, &live, &dead, Duration::from_secs(600)).await?;
        self.trace.record(SOURCE, format_args!("liveness: rebuild and scrub idle"));
        files::check_files(&mut checker, &l).await?;
        files::check_stripes(&mut checker, &mut io, &dead, self.data.shards, &self.nodes).await?;
        self.trace.record(SOURCE, format_args!("files read back exactly; stripes whole"));
        self.probe_write(&mut checker).await?;
        self.trace.record(SOURCE, format_args!("liveness: a new file written and read back"));
        self.check_converged(Duration::from_secs(60)).await
    }

    /// After healing: every transaction resolves, the namespace is consistent, the final listings answer,
    /// and the whole history is linearizable.
    async fn check_namespace(&mut self, nsr: &mut NamespaceRun) -> Result<(), String> {
        ns::final_listings(&mut nsr.checker, &nsr.fixture, &nsr.history).await?;
        ns::check_shards(&self.cluster, &self.views, self.data.shards, Duration::from_secs(120)).await?;
        let history = nsr.history.lock().expect("history").finish();
        self.outcome.ns_ops = history.events.len() as u64;
        self.outcome.ns_unknown = history.events.iter().filter(|e| e.ret.is_none()).count() as u64;
        ns::check_history(&nsr.fixture.model, &history).map_err(|e| format!("namespace {e}"))
    }

    /// Liveness: a new file can be written and read back after healing.
    async fn probe_write(&mut self, checker: &mut SimDataClient) -> Result<(), String> {
        let len = 1 + self.rng.below(3 * self.data.write_len_max_bytes) as usize;
        let mut bytes = vec![0u8; len];
        self.rng.fill_bytes(&mut bytes);
        files::probe(checker, &bytes).await.map_err(|e| format!("liveness: a write after healing: {e}"))
    }

    /// Liveness: every live replica of every shard catches up with the index its leader had applied when
    /// the check began; safety: whenever a replica and its leader are seen at the same applied index,
    /// they hold the same state. (Background duties keep appending to the logs, so the check cannot wait
    /// for the logs to stop.)
    async fn check_converged(&mut self, limit: Duration) -> Result<(), String> {
        for view in self.views.values() {
            view.lock().expect("view").capture_states = true;
        }
        let start = SimClock.now();
        let mut targets: BTreeMap<u16, u64> = BTreeMap::new();
        let mut compared = 0u64;
        loop {
            SimClock.sleep(Duration::from_millis(200)).await;
            let lagging = self.convergence_round(&mut targets, &mut compared)?;
            match lagging {
                None => {
                    self.trace.record(SOURCE, format_args!("replicas converged ({compared} same-index comparisons)"));
                    return Ok(());
                }
                Some(why) if SimClock.now().saturating_since(start) > limit => {
                    return Err(format!("liveness: replicas did not converge within {} s: {why}", limit.as_secs()));
                }
                Some(_) => {}
            }
        }
    }

    /// One look at every shard: compares replicas seen at their leader's applied index (an error if they
    /// differ), and says which replica still lags behind its target, if any.
    fn convergence_round(
        &self,
        targets: &mut BTreeMap<u16, u64>,
        compared: &mut u64,
    ) -> Result<Option<String>, String> {
        let leaders = crate::meta_support::leaders(&self.cluster, &self.views);
        let mut lagging = None;
        for shard in 0..self.data.shards {
            let Some((leader, _)) = leaders.get(&shard) else {
                lagging.get_or_insert(format!("shard {shard} has no leader"));
                continue;
            };
            let lv = self.views[leader].lock().expect("view");
            let (Some(lg), Some(ls)) = (lv.groups.get(&shard), lv.states.get(&shard)) else {
                lagging.get_or_insert(format!("shard {shard}: leader {leader} has no state yet"));
                continue;
            };
            let (applied, state, voters) = (lg.status.applied, ls.clone(), lg.status.voters.clone());
            drop(lv);
            let target = *targets.entry(shard).or_insert(applied);
            for voter in voters {
                if voter == *leader
                    || !self.cluster.is_alive(voter)
                    || self.map.lock().expect("map").dead.contains(&voter)
                {
                    continue;
                }
                let v = self.views[&voter].lock().expect("view");
                let Some(g) = v.groups.get(&shard) else {
                    lagging.get_or_insert(format!("shard {shard}: voter {voter} hosts no replica"));
                    continue;
                };
                if g.status.applied == applied {
                    *compared += 1;
                    if v.states.get(&shard) != Some(&state) {
                        return Err(format!(
                            "replicas diverged: shard {shard}: {voter} holds another state than leader {leader} at index {applied}"
                        ));
                    }
                }
                if g.status.applied < target {
                    lagging.get_or_insert(format!("shard {shard}: {voter} applied {} of {target}", g.status.applied));
                }
            }
        }
        Ok(lagging)
    }

    /// What the config service does when nodes are declared dead: a new shard map places their metadata
    /// replicas on live nodes (the hosts add learners, promote them, remove the dead; clients learn the
    /// new epoch from the hosts' answers).
    fn replace_dead_metadata(&mut self) {
        let dead = self.map.lock().expect("map").dead.clone();
        if dead == self.shard_map_dead {
            return;
        }
        self.shard_map_dead = dead.clone();
        let live: Vec<PlacementNode> = self.nodes.iter().filter(|n| !dead.contains(&n.id)).cloned().collect();
        let shards = u32::from(self.data.shards);
        match tessera_config::placement::place(&live, shards, self.data.meta_replicas, Some(&self.shard_map.map)) {
            Ok(next) => {
                self.shard_map = EpochMap { epoch: self.shard_map.epoch + 1, map: next };
                self.trace.record(SOURCE, format_args!("shard map epoch {} without {dead:?}", self.shard_map.epoch));
                for shared in self.shard_maps.values() {
                    *shared.lock().expect("shard map") = self.shard_map.clone();
                }
            }
            Err(e) => self.trace.record(SOURCE, format_args!("no shard map without {dead:?}: {e}")),
        }
    }

    fn target(&mut self) -> SimTarget<'_> {
        SimTarget {
            cluster: &mut self.cluster,
            views: &self.views,
            map: &self.map,
            servers: &self.servers,
            clients: &self.clients,
        }
    }

    fn data_client(&mut self, id: NodeId) -> SimDataClient {
        self.cluster.add_node(NodeSpec { id, rack: u32::MAX, disks: 0 }, |_env| std::future::pending());
        if id != CHECKER {
            self.clients.push(id);
        }
        let rng = self.rng.fork(&format!("client:{id}"));
        let (meta_config, config) = files::scenario_client_config(&self.data);
        let nodes = self.map.lock().expect("map").live();
        files::make_client(&self.cluster, id, self.directory.clone(), meta_config, config, nodes, rng)
            .expect("a valid client config")
    }

    fn meta_client(&mut self, id: NodeId) -> SimMetaClient {
        self.cluster.add_node(NodeSpec { id, rack: u32::MAX, disks: 0 }, |_env| std::future::pending());
        if id != NS_CHECKER {
            self.clients.push(id);
        }
        let net = self.cluster.network().endpoint(id, u32::MAX);
        let wall = self.cluster.wall_clock(id).clone();
        let config = ClientConfig { op_timeout_ms: 30_000, attempts_max: 60, ..ClientConfig::default() };
        let rng = self.rng.fork(&format!("client:{id}"));
        MetaClient::new(id.0, self.directory.clone(), config, SimClock, wall, net, rng).expect("a valid client config")
    }

    async fn wait_for_leaders(&self, limit: Duration) -> Result<(), String> {
        wait_for_all_leaders(&self.cluster, &self.views, self.data.shards, limit).await
    }
}

fn now_ms() -> u64 {
    SimClock.now().as_nanos() / 1_000_000
}
