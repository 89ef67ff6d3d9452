//! The metadata scenario (issue 4): concurrent clients of the real client library run random POSIX
//! operations against a cluster of metadata hosts (each shard a Raft group of three) while a nemesis
//! kills and restarts nodes and partitions the network over a lossy, duplicating fabric. Then:
//!
//! 1. the history (every operation with its invocation and response times; an operation whose outcome
//!    is unknown has no response) is checked for linearizability against the sequential POSIX model
//!    (`tessera_specs::posix_history`); a history too large to check fails the seed, never passes;
//! 2. after healing, every transaction resolves, and the shards' leaders together hold a consistent
//!    namespace: no dangling entry, no orphaned inode, link counts right
//!    (`tessera_meta::local::check_shards`);
//! 3. final listings of every fixture directory are part of the history, so the end state is checked
//!    against the model too.
//!
//! A seed picks the cluster shape (3-6 nodes, 4-16 shards), the number of clients and operations and
//! the fault rates. `cargo run --release -p tessera-sim -- meta --seeds 0..1000` runs many seeds;
//! `cargo run -p tessera-sim -- meta --seed S --verbose` replays one with its trace.

mod nemesis;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::client::{ClientConfig, ClientError, MetaClient, ShardDirectory};
use tessera_meta::host::SharedHostView;
use tessera_meta::shard::ShardState;
use tessera_meta::{InodeId, MetaOp, MetaResult};
use tessera_specs::linearizability::{History, Outcome};
use tessera_specs::posix::Namespace;
use tessera_specs::posix_history::{check_posix, shape};

use crate::cluster::{Cluster, NodeSpec};
use crate::env::{SimClock, SimWallClock};
use crate::meta_support::{HostCluster, MetaScenario, leaders, start_hosts, wait_for_all_leaders};
use crate::net::SimNet;
use crate::trace::Trace;
use nemesis::Nemesis;
use workload::{Fixture, setup_made, setup_ops};

const SOURCE: &str = "meta-scenario";
/// Client node ids: the setup and final-check client, then the workload clients.
const CHECKER: NodeId = NodeId(1000);
const CLIENT_BASE: u64 = 1001;
/// When the root was made (the hosts' genesis).
const ROOT_CREATED_NS: u64 = 1_000_000_000;
/// Model steps the linearizability checker may explore per history.
pub(crate) const CHECK_BUDGET_STATES: u64 = 4_000_000;
/// Changes with an unknown outcome a workload client may leave in the history before it only reads.
pub(crate) const UNKNOWN_CHANGES_PER_CLIENT_MAX: u32 = 2;

/// What a seed chose.
#[derive(Clone, Debug)]
pub struct HistoryScenario {
    pub base: MetaScenario,
    pub clients: u64,
    pub ops_per_client: u64,
    pub fault_interval_ms_max: u64,
}

impl HistoryScenario {
    pub fn from_seed(seed: u64) -> HistoryScenario {
        let mut rng = DetRng::from_seed(seed).fork("meta-history-scenario");
        let nodes = rng.range_inclusive(3, 6);
        let shards = [4, 8, 16][rng.below(3) as usize];
        let mut base = MetaScenario::new(seed, nodes, shards);
        base.net.loss_per_million = rng.range_inclusive(0, 20_000);
        base.net.duplicate_per_million = rng.range_inclusive(0, 10_000);
        // Tiny partitions, so the fixture's directories split (GIGA+) while the clients work in them.
        base.split_threshold_entries = rng.range_inclusive(2, 6) as u32;
        HistoryScenario {
            base,
            clients: rng.range_inclusive(3, 5),
            ops_per_client: rng.range_inclusive(8, 16),
            fault_interval_ms_max: rng.range_inclusive(500, 3_000),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} clients x {} ops, faults every <= {} ms, split above {} entries; {}",
            self.clients,
            self.ops_per_client,
            self.fault_interval_ms_max,
            self.base.split_threshold_entries,
            self.base.summary()
        )
    }
}

/// What a run measured and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryOutcome {
    pub passed: bool,
    pub reason: Option<String>,
    /// Operations in the history, and how many of them have an unknown outcome.
    pub ops: u64,
    pub unknown: u64,
    pub kills: u64,
    /// Network partitions and cuts the nemesis made.
    pub cuts: u64,
    /// Directory partitions the shards held at the end (more than the directories means splits).
    pub partitions: u64,
}

/// The command replaying a seed of this scenario with its trace.
pub fn meta_history_replay_command(seed: u64) -> String {
    format!("cargo run -p tessera-sim -- meta --seed {seed} --verbose")
}

/// The one-line summary of a run.
pub fn meta_history_line(seed: u64, outcome: &HistoryOutcome, trace_hash: u64) -> String {
    let head = format!("seed={seed} trace_hash={trace_hash:016x}");
    if outcome.passed {
        format!(
            "{head} result=pass ops={} unknown={} kills={} cuts={} dir_partitions={}",
            outcome.ops, outcome.unknown, outcome.kills, outcome.cuts, outcome.partitions
        )
    } else {
        let reason = outcome.reason.as_deref().unwrap_or("unknown").replace('"', "'");
        format!("{head} result=fail reason=\"{reason}\" replay=\"{}\"", meta_history_replay_command(seed))
    }
}

/// Run the scenario of `seed` in a fresh madsim runtime; a panic is a failed run.
pub fn run_meta_history_seed(seed: u64, verbose: bool) -> (HistoryOutcome, u64) {
    let trace = Trace::new(verbose);
    let s = HistoryScenario::from_seed(seed);
    let outcome = crate::run::in_runtime(seed, run(s, trace.clone()))
        .unwrap_or_else(|panic| HistoryOutcome { reason: Some(panic), ..Default::default() });
    (outcome, trace.hash())
}

/// The history being recorded, and the invocations to leave out of it (operations known not to have
/// taken effect: indices stay stable while clients record).
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    history: History<MetaOp, MetaResult>,
    discarded: std::collections::BTreeSet<usize>,
}

impl Recorder {
    pub(crate) fn finish(&self) -> History<MetaOp, MetaResult> {
        let events = self.history.events.iter().enumerate().filter(|(i, _)| !self.discarded.contains(i));
        History { events: events.map(|(_, e)| e.clone()).collect() }
    }
}

pub(crate) type SharedHistory = Arc<Mutex<Recorder>>;
pub(crate) type SimMetaClient = MetaClient<SimClock, SimWallClock, SimNet, DetRng>;

struct Run {
    s: Arc<HistoryScenario>,
    cluster: Cluster,
    views: BTreeMap<NodeId, SharedHostView>,
    directory: ShardDirectory,
    rng: DetRng,
    trace: Trace,
    outcome: HistoryOutcome,
}

async fn run(s: HistoryScenario, trace: Trace) -> HistoryOutcome {
    trace.record(SOURCE, format_args!("seed {}: {}", s.base.seed, s.summary()));
    let mut rng = DetRng::from_seed(s.base.seed).fork("meta-history-run");
    let base = Arc::new(s.base.clone());
    let roots = BTreeMap::from([(0, (InodeId::ROOT, ROOT_CREATED_NS))]);
    let HostCluster { cluster, views, map, .. } = start_hosts(&base, roots, &mut rng, &trace);
    let directory = ShardDirectory::new(&map.map, map.epoch).expect("the genesis map is a valid directory");
    let mut run = Run { s: Arc::new(s), cluster, views, directory, rng, trace, outcome: HistoryOutcome::default() };
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

impl Run {
    async fn phases(&mut self) -> Result<(), String> {
        self.wait_for_leaders(Duration::from_secs(30)).await?;
        let mut checker = self.client(CHECKER);
        let fixture = setup(&mut checker, None).await?;
        self.trace.record(SOURCE, format_args!("fixture made: {:?}", fixture.to_model));
        let history: SharedHistory = Arc::new(Mutex::new(Recorder::default()));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for c in 0..self.s.clients {
            let id = NodeId(CLIENT_BASE + c);
            let client = self.client(id);
            let rng = self.rng.fork(&format!("workload:{id}"));
            let task =
                workload(client, id.0, fixture.clone(), rng, self.s.ops_per_client, history.clone(), done.clone());
            tasks.push(self.cluster.spawn_on(id, task));
        }
        let servers = self.s.base.node_ids();
        let clients = (0..self.s.clients).map(|c| NodeId(CLIENT_BASE + c)).collect();
        let mut nemesis = Nemesis::new(self.rng.fork("nemesis"), servers, clients, self.s.fault_interval_ms_max);
        let until = SimClock.now() + Duration::from_secs(600);
        let (n, finished) = (self.s.clients, done.clone());
        nemesis.run(&mut self.cluster, until, move || finished.load(Ordering::Relaxed) >= n).await;
        nemesis.heal(&mut self.cluster);
        self.outcome.cuts = nemesis.partitions;
        self.trace.record(SOURCE, format_args!("healed"));
        for task in tasks {
            task.await.map_err(|e| format!("workload task failed: {e}"))?;
        }
        self.wait_for_leaders(Duration::from_secs(60)).await?;
        final_listings(&mut checker, &fixture, &history).await?;
        self.check_shards(Duration::from_secs(120)).await?;
        let history = history.lock().expect("history").finish();
        self.outcome.ops = history.events.len() as u64;
        self.outcome.unknown = history.events.iter().filter(|e| e.ret.is_none()).count() as u64;
        check_history(&fixture.model, &history)
    }

    fn client(&mut self, id: NodeId) -> SimMetaClient {
        self.cluster.add_node(NodeSpec { id, rack: 0, disks: 0 }, |_env| std::future::pending());
        let net = self.cluster.network().endpoint(id, 0);
        let wall = self.cluster.wall_clock(id).clone();
        let config = ClientConfig { op_timeout_ms: 30_000, attempts_max: 60, ..ClientConfig::default() };
        let rng = self.rng.fork(&format!("client:{id}"));
        MetaClient::new(id.0, self.directory.clone(), config, SimClock, wall, net, rng).expect("a valid client config")
    }

    async fn wait_for_leaders(&self, limit: Duration) -> Result<(), String> {
        wait_for_all_leaders(&self.cluster, &self.views, self.s.base.shards, limit).await
    }

    async fn check_shards(&mut self, limit: Duration) -> Result<(), String> {
        self.outcome.partitions = check_shards(&self.cluster, &self.views, self.s.base.shards, limit).await?;
        Ok(())
    }
}

/// Once every transaction resolved, the leaders' states together are one consistent namespace. Returns
/// the directory partitions the shards hold.
pub(crate) async fn check_shards(
    cluster: &Cluster,
    views: &BTreeMap<NodeId, SharedHostView>,
    shards: u16,
    limit: Duration,
) -> Result<u64, String> {
    for view in views.values() {
        view.lock().expect("view").capture_states = true;
    }
    let start = SimClock.now();
    loop {
        SimClock.sleep(Duration::from_millis(500)).await;
        let states = leader_states(cluster, views);
        if states.len() == usize::from(shards) && states.iter().all(ShardState::is_settled) {
            tessera_meta::local::check_shards(&states).map_err(|e| format!("after healing: {e}"))?;
            return Ok(states.iter().map(|s| s.owned_partitions().len() as u64).sum());
        }
        if SimClock.now().saturating_since(start) > limit {
            let open: Vec<u16> = states.iter().filter(|s| !s.is_settled()).map(|s| s.shard()).collect();
            return Err(format!("transactions still open {} s after healing in shards {open:?}", limit.as_secs()));
        }
    }
}

/// Each shard's state as its current leader applied it.
fn leader_states(cluster: &Cluster, views: &BTreeMap<NodeId, SharedHostView>) -> Vec<ShardState> {
    leaders(cluster, views)
        .into_iter()
        .filter_map(|(shard, (node, _))| views[&node].lock().expect("view").states.get(&shard).cloned())
        .collect()
}

/// Make the fixture (no faults yet): every step must succeed.
pub(crate) async fn setup(client: &mut SimMetaClient, base: Option<&str>) -> Result<Fixture, String> {
    let mut made = Vec::new();
    while let Some(op) = setup_ops(&made, base) {
        let result = client.execute(op.clone()).await.map_err(|e| format!("setup {op:?}: {e}"))?;
        made.push(setup_made(&result)?);
    }
    Fixture::new(&made)
}

/// The linearizability verdict on a finished history against the POSIX model: a history too large to
/// decide within [`CHECK_BUDGET_STATES`] fails, never passes.
pub(crate) fn check_history(model: &Namespace, history: &History<MetaOp, MetaResult>) -> Result<(), String> {
    match check_posix(model, history, CHECK_BUDGET_STATES) {
        Outcome::Linearizable { .. } => Ok(()),
        Outcome::NotLinearizable { stuck, reason, .. } => {
            Err(format!("not linearizable at event {stuck} ({:?}): {reason}", history.events[stuck]))
        }
        Outcome::TooLarge { explored } => {
            Err(format!("history too large to check ({explored} states explored): not a pass"))
        }
    }
}

/// One client's operations, one at a time, each recorded (in model ids, reply shaped) in `history`.
pub(crate) async fn workload(
    mut client: SimMetaClient,
    me: u64,
    fixture: Fixture,
    mut rng: DetRng,
    ops: u64,
    history: SharedHistory,
    done: Arc<AtomicU64>,
) {
    let mut unknown = 0;
    for _ in 0..ops {
        let op = fixture.random_op(&mut rng);
        // Each change with an unknown outcome may have happened at any later point, or never: past a few
        // of them the history grows past what the checker can decide, so this client only reads from then on.
        if unknown < UNKNOWN_CHANGES_PER_CLIENT_MAX || op.is_read_only() {
            unknown += u32::from(record(&mut client, me, &fixture, op, &history).await);
        }
        SimClock.sleep(Duration::from_millis(rng.range_inclusive(0, 200))).await;
    }
    done.fetch_add(1, Ordering::Relaxed);
}

/// Records `op` and its outcome; true when it is a change whose outcome is unknown.
async fn record(client: &mut SimMetaClient, me: u64, fixture: &Fixture, op: MetaOp, history: &SharedHistory) -> bool {
    let model_op = fixture.to_model_op(&op);
    let read_only = op.is_read_only();
    let invoked_ns = SimClock.now().as_nanos();
    // A read is recorded once answered: an unanswered read changed nothing, and leaving it out keeps
    // the history small.
    let index = (!read_only).then(|| history.lock().expect("history").history.invoke(me, model_op.clone(), invoked_ns));
    let result = client.execute(op).await;
    let mut recorder = history.lock().expect("history");
    let Recorder { history, discarded } = &mut *recorder;
    match (result, index) {
        (Ok(result), Some(index)) => history.complete(index, shape(result), SimClock.now().as_nanos()),
        (Ok(result), None) => {
            let index = history.invoke(me, model_op, invoked_ns);
            history.complete(index, shape(result), SimClock.now().as_nanos());
        }
        // The driver gave up on conflicts: every attempt was refused, so it did not take effect.
        (Err(ClientError::GaveUp), Some(index)) => {
            discarded.insert(index);
        }
        // Unknown outcome: it may have taken effect at any point after its invocation, or never.
        (Err(_), index) => return index.is_some(),
    }
    false
}

/// After healing: list every fixture directory (part of the history: the end state is checked).
pub(crate) async fn final_listings(
    client: &mut SimMetaClient,
    fixture: &Fixture,
    history: &SharedHistory,
) -> Result<(), String> {
    for op in fixture.listings() {
        let model_op = fixture.to_model_op(&op);
        let index = history.lock().expect("history").history.invoke(u64::MAX, model_op, SimClock.now().as_nanos());
        let result = client.execute(op.clone()).await.map_err(|e| format!("final listing {op:?}: {e}"))?;
        history.lock().expect("history").history.complete(index, shape(result), SimClock.now().as_nanos());
    }
    Ok(())
}
