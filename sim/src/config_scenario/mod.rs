//! The config-service scenario (issue 3): config members replicate the cluster config with Raft on
//! their simulated drives; every node heartbeats; two clients change the config while the nemesis
//! crashes nodes and partitions the network. Then targeted phases measure and check:
//!
//! 1. chaos: random changes from two clients under kills, restarts, partitions (symmetric, asymmetric,
//!    rack isolation), message loss and duplication;
//! 2. minority: the leader and one client are cut off from the rest; nothing the client submits there
//!    may be acknowledged, and the isolated leader may not apply anything new;
//! 3. failover: the leader is killed; the time to a new leader and to the next committed change is
//!    measured;
//! 4. rack failure: every node of one rack is killed; the config must declare them down and (with enough
//!    racks left) move every shard replica off the rack within the configured timeout;
//! 5. liveness: everything healed and restarted, the members must converge on one config that every
//!    node caches, and the whole history of changes must check out (`specs::config_history`).

mod nemesis;
pub mod setup;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::placement::{self, PlacementNode};
use tessera_config::{ClusterConfig, ConfigCommand, NodeState, PlacementMode, Protection, SharedView};
use tessera_env::{Clock, DetRng, MonoTime, NodeId, Rng};
use tessera_raft::RaftRole;
use tessera_specs::config_history::{self, Outcome};

pub use setup::ConfigScenario;

use crate::cluster::{Cluster, NodeSpec};
use crate::disk::DiskModel;
use crate::env::SimClock;
use crate::trace::Trace;
use setup::{CLIENTS, MIB, boot, new_view};
use workload::{History, ScenarioClient, join_request};

const SOURCE: &str = "config-scenario";

/// What a config-scenario run measured and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigRunResult {
    pub passed: bool,
    pub reason: Option<String>,
    pub ops: usize,
    pub applied: usize,
    pub final_epoch: u64,
    /// Leader killed -> a new leader elected (simulated ms).
    pub failover_ms: Option<u64>,
    /// Leader killed -> the next change committed and acknowledged (simulated ms).
    pub failover_commit_ms: Option<u64>,
    /// Rack killed -> all its nodes down and (if enough racks remain) no replica left on it.
    pub rack_detect_ms: Option<u64>,
    /// The bound `rack_detect_ms` was checked against.
    pub rack_detect_bound_ms: u64,
    pub kills: u64,
    pub leader_changes: u64,
}

struct Run {
    s: Arc<ConfigScenario>,
    cluster: Cluster,
    views: BTreeMap<NodeId, SharedView>,
    history: History,
    rng: DetRng,
    trace: Trace,
    result: ConfigRunResult,
    /// The config the leader isolated in the minority phase had applied when the phase ended.
    isolated: Option<Arc<ClusterConfig>>,
}

type Verdict = Result<(), String>;

/// The one-line command that replays a config-scenario seed with its full trace.
pub fn config_replay_command(seed: u64) -> String {
    format!("cargo run -p tessera-sim -- config --seed {seed} --verbose")
}

/// Run the config scenario on `seed` in a fresh madsim runtime; a panic is a failed run.
pub fn run_config_seed(seed: u64, verbose: bool) -> (ConfigRunResult, u64) {
    let trace = Trace::new(verbose);
    let result = crate::run::in_runtime(seed, run(ConfigScenario::from_seed(seed), trace.clone()))
        .unwrap_or_else(|panic| ConfigRunResult { reason: Some(panic), ..Default::default() });
    (result, trace.hash())
}

/// The one-line summary of a config-scenario run.
pub fn config_line(seed: u64, result: &ConfigRunResult, trace_hash: u64) -> String {
    let head = format!("seed={seed} trace_hash={trace_hash:016x}");
    if result.passed {
        format!(
            "{head} result=pass ops={} applied={} epoch={} failover_ms={} rack_detect_ms={}/{}",
            result.ops,
            result.applied,
            result.final_epoch,
            result.failover_ms.unwrap_or(0),
            result.rack_detect_ms.unwrap_or(0),
            result.rack_detect_bound_ms
        )
    } else {
        let reason = result.reason.as_deref().unwrap_or("unknown").replace('"', "'");
        format!("{head} result=fail reason=\"{reason}\" replay=\"{}\"", config_replay_command(seed))
    }
}

/// Run the scenario inside the current madsim runtime.
pub async fn run(s: ConfigScenario, trace: Trace) -> ConfigRunResult {
    trace.record(SOURCE, format_args!("seed {}: {}", s.seed, s.summary()));
    let mut rng = DetRng::from_seed(s.seed).fork("config-run");
    let s = Arc::new(s);
    let mut cluster = Cluster::new(rng.fork("cluster"), trace.clone(), s.net.clone(), DiskModel::nvme(64 * MIB));
    let mut views = BTreeMap::new();
    for id in s.node_ids() {
        let view = new_view();
        let provisioned = Arc::new(AtomicBool::new(false));
        let (s2, v2) = (s.clone(), view.clone());
        cluster.add_node(NodeSpec { id, rack: s.rack_of(id), disks: 1 }, move |env| {
            boot(env, s2.clone(), v2.clone(), provisioned.clone())
        });
        views.insert(id, view);
    }
    for c in CLIENTS {
        cluster.add_node(NodeSpec { id: c, rack: s.rack_of(c), disks: 0 }, |_env| std::future::pending());
    }
    let mut run = Run {
        s,
        cluster,
        views,
        history: Arc::new(Mutex::new(Vec::new())),
        rng,
        trace,
        result: Default::default(),
        isolated: None,
    };
    let verdict = run.phases().await;
    run.result.kills = run.cluster.kills();
    run.result.ops = run.history.lock().expect("history").len();
    match verdict {
        Ok(()) => {
            run.trace.record(SOURCE, format_args!("PASS {:?}", run.result));
            run.result.passed = true;
        }
        Err(reason) => {
            run.trace.record(SOURCE, format_args!("FAIL: {reason}"));
            run.result.reason = Some(reason);
        }
    }
    run.result
}

impl Run {
    fn client(&mut self, i: usize) -> ScenarioClient {
        let id = CLIENTS[i];
        let net = self.cluster.network().endpoint(id, self.s.rack_of(id));
        let rng = self.rng.fork(&format!("client{i}"));
        ScenarioClient::new(id, self.s.members.clone(), net, self.history.clone(), rng, self.s.racks)
    }

    async fn phases(&mut self) -> Verdict {
        let mut c0 = self.client(0);
        let c1 = self.client(1);
        c0 = self.bootstrap(c0).await?;
        let (c0, c1) = self.chaos(c0, c1).await?;
        let c1 = self.minority(c1).await?;
        let c0 = self.failover(c0).await?;
        self.rack_failure().await?;
        drop((c0, c1));
        self.liveness().await
    }

    async fn bootstrap(&mut self, mut c0: ScenarioClient) -> Result<ScenarioClient, String> {
        let joins: Vec<_> = self.s.node_ids().into_iter().map(|id| join_request(id, self.s.rack_of(id))).collect();
        let task = self.cluster.spawn_on(CLIENTS[0], async move {
            for j in joins {
                let node = j.node;
                c0.op_until_answered(ConfigCommand::Join(j), 20).await.map_err(|e| format!("join {node}: {e}"))?;
            }
            let default = ConfigCommand::CreateFs {
                name: "default".into(),
                protection: Protection::Replicated { copies: 3 },
                placement: PlacementMode::Hash,
            };
            c0.op_until_answered(default, 20).await.map_err(|e| format!("create fs default: {e}"))?;
            Ok::<_, String>(c0)
        });
        let c0 = task.await.map_err(|e| format!("bootstrap task: {e}"))??;
        self.trace.record(SOURCE, format_args!("bootstrap done"));
        Ok(c0)
    }

    async fn chaos(
        &mut self,
        mut c0: ScenarioClient,
        mut c1: ScenarioClient,
    ) -> Result<(ScenarioClient, ScenarioClient), String> {
        let until = SimClock.now() + self.s.chaos;
        let t0 = self.cluster.spawn_on(CLIENTS[0], async move {
            c0.random_ops(until).await;
            c0
        });
        let t1 = self.cluster.spawn_on(CLIENTS[1], async move {
            c1.random_ops(until).await;
            c1
        });
        let mut nemesis = nemesis::Nemesis::new(self.rng.fork("nemesis"), self.s.clone());
        nemesis.run(&mut self.cluster, &self.views, until).await;
        nemesis.heal(&mut self.cluster);
        let c0 = t0.await.map_err(|e| format!("client 0: {e}"))?;
        let c1 = t1.await.map_err(|e| format!("client 1: {e}"))?;
        self.result.leader_changes = nemesis.leader_kills;
        self.trace.record(SOURCE, format_args!("chaos over"));
        Ok((c0, c1))
    }

    /// The current leader: an alive member that says it leads, with the highest term.
    fn leader(&self) -> Option<(NodeId, u64)> {
        leader_of(&self.cluster, &self.views, &self.s.members)
    }

    async fn wait_leader(&self, limit: Duration) -> Result<(NodeId, u64), String> {
        let until = SimClock.now() + limit;
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if SimClock.now() >= until {
                return Err(format!("no config leader within {} ms", limit.as_millis()));
            }
            SimClock.sleep(Duration::from_millis(10)).await;
        }
    }

    fn member_epoch(&self, id: NodeId) -> u64 {
        let view = self.views[&id].lock().expect("view");
        view.member_config.as_ref().map_or(0, |c| c.epoch)
    }

    /// The leader and one client are cut off from everything else for a while.
    async fn minority(&mut self, mut c1: ScenarioClient) -> Result<ScenarioClient, String> {
        let (leader, _) = self.wait_leader(Duration::from_secs(30)).await?;
        let epoch_at_start = self.s.members.iter().map(|m| self.member_epoch(*m)).max().unwrap_or(0);
        let minority = vec![leader, CLIENTS[1]];
        let majority: Vec<NodeId> = self.cluster.nodes().into_iter().filter(|n| !minority.contains(n)).collect();
        self.cluster.network().partition(&[minority, majority]);
        self.trace.record(SOURCE, format_args!("minority phase: {leader} and {} isolated", CLIENTS[1]));
        let start_ns = SimClock.now().as_nanos();
        let ops_before = self.history.lock().expect("history").len();
        let task = self.cluster.spawn_on(CLIENTS[1], async move {
            c1.ops_for(Duration::from_secs(8)).await;
            c1
        });
        let c1 = task.await.map_err(|e| format!("client 1: {e}"))?;
        let end_ns = SimClock.now().as_nanos();
        let leader_epoch = self.member_epoch(leader);
        self.cluster.network().heal();
        let history = self.history.lock().expect("history");
        for op in &history[ops_before..] {
            if op.request.client == CLIENTS[1].0
                && op.invoke_ns >= start_ns
                && op.complete_ns <= end_ns
                && matches!(op.outcome, Outcome::Applied(_))
            {
                return Err(format!("a partitioned minority acknowledged a change: {op:?}"));
            }
        }
        // What the isolated leader applied must turn out to be a prefix of the one history (checked in
        // the liveness phase): it may finish applying what a majority committed before the cut, never more.
        self.isolated = self.views[&leader].lock().expect("view").member_config.clone();
        self.trace.record(
            SOURCE,
            format_args!(
                "minority phase over: isolated leader at epoch {leader_epoch}, cluster at {epoch_at_start} when cut"
            ),
        );
        Ok(c1)
    }

    /// Kill the leader; measure the time to a new leader and to the next acknowledged change.
    async fn failover(&mut self, mut c0: ScenarioClient) -> Result<ScenarioClient, String> {
        self.settle().await?;
        let (old, term) = self.wait_leader(Duration::from_secs(30)).await?;
        let t0 = SimClock.now();
        self.cluster.kill(old);
        let name = format!("failover{}", self.rng.below(1000));
        let task = self.cluster.spawn_on(CLIENTS[0], async move {
            let command = ConfigCommand::CreateFs {
                name,
                protection: Protection::Replicated { copies: 3 },
                placement: PlacementMode::Hash,
            };
            // Applied or refused, an answer means the new leader committed the request.
            let mut answered = Err("no answer after 10 submissions".to_string());
            for _ in 0..10 {
                if c0.op(command.clone()).await != Outcome::Unknown {
                    answered = Ok(());
                    break;
                }
            }
            (c0, answered, SimClock.now())
        });
        let limit = t0 + Duration::from_secs(30);
        loop {
            if let Some((l, t)) = self.leader()
                && l != old
                && t > term
            {
                self.result.failover_ms = Some(ms_since(t0));
                break;
            }
            if SimClock.now() >= limit {
                return Err("no new leader within 30 s of killing the leader".into());
            }
            SimClock.sleep(Duration::from_millis(5)).await;
        }
        let (c0, r, done) = task.await.map_err(|e| format!("client 0: {e}"))?;
        r.map_err(|e| format!("change after failover: {e}"))?;
        self.result.failover_commit_ms = Some(done.saturating_since(t0).as_millis() as u64);
        self.cluster.restart(old);
        Ok(c0)
    }

    /// Kill every node of one rack; the config must mark them down and move replicas off the rack.
    /// Wait until a leader exists, every real node is up in its config and every live member applied its
    /// epoch (a quiet start for a measurement).
    async fn settle(&self) -> Verdict {
        let until = SimClock.now() + Duration::from_secs(30);
        loop {
            if let Some((l, _)) = self.leader() {
                let epoch = self.member_epoch(l);
                let alive = self.s.members.iter().filter(|m| self.cluster.is_alive(**m));
                let all_up = self.views[&l].lock().expect("view").member_config.as_ref().is_some_and(|c| {
                    self.s.node_ids().iter().all(|id| c.nodes.get(id).is_some_and(|n| n.state == NodeState::Up))
                });
                if all_up && alive.clone().all(|m| self.member_epoch(*m) == epoch) {
                    return Ok(());
                }
            }
            if SimClock.now() >= until {
                return Err(format!("the config service did not settle within 30 s: {}", self.describe()));
            }
            SimClock.sleep(Duration::from_millis(20)).await;
        }
    }

    async fn rack_failure(&mut self) -> Verdict {
        self.settle().await?;
        let rack = self.rng.below(u64::from(self.s.racks)) as u32;
        let victims: Vec<NodeId> = self.s.node_ids().into_iter().filter(|n| self.s.rack_of(*n) == rack).collect();
        let t0 = SimClock.now();
        for &v in &victims {
            self.cluster.kill(v);
        }
        let timing = self.s.timing;
        let election_ms = 2 * self.s.raft.election_ticks as u64 * self.s.tick.as_millis() as u64;
        // The rack may hold the leader: allow two election rounds (a pre-vote round can fail while a
        // just-restarted member catches up), then the detector's timeout, two heartbeats and one second
        // for proposing and committing the verdicts.
        let bound_ms = timing.down_after_ms + 2 * election_ms + 2 * timing.heartbeat_interval_ms + 1_000;
        self.result.rack_detect_bound_ms = bound_ms;
        let moves = self.s.racks > self.s.params.shard_replication;
        self.trace.record(SOURCE, format_args!("rack {rack} fails: {victims:?}; bound {bound_ms} ms"));
        loop {
            if let Some((l, _)) = self.leader() {
                let view = self.views[&l].lock().expect("view");
                if let Some(c) = &view.member_config
                    && rack_handled(c, &victims, moves)
                {
                    break;
                }
            }
            if ms_since(t0) > 3 * bound_ms {
                let leader = self.leader();
                let states = leader.and_then(|(l, _)| {
                    let view = self.views[&l].lock().expect("view");
                    view.member_config.as_ref().map(|c| {
                        victims
                            .iter()
                            .map(|v| (*v, c.nodes.get(v).map(|n| n.state), c.shards_on(*v).len()))
                            .collect::<Vec<_>>()
                    })
                });
                return Err(format!(
                    "rack {rack} failure not handled within {} ms: leader {leader:?}, victims (state, shards) {states:?}; {}",
                    3 * bound_ms,
                    self.describe()
                ));
            }
            SimClock.sleep(Duration::from_millis(10)).await;
        }
        let took = ms_since(t0);
        self.result.rack_detect_ms = Some(took);
        if took > bound_ms {
            return Err(format!("rack {rack} failure handled after {took} ms, beyond the bound of {bound_ms} ms"));
        }
        for &v in &victims {
            self.cluster.restart(v);
        }
        Ok(())
    }

    /// Heal everything; the members converge on one config that every node caches; the history checks.
    async fn liveness(&mut self) -> Verdict {
        self.cluster.network().heal();
        for id in self.s.node_ids() {
            if !self.cluster.is_alive(id) {
                self.cluster.restart(id);
            }
        }
        let until = SimClock.now() + Duration::from_secs(60);
        let config = loop {
            if let Some(c) = self.converged() {
                break c;
            }
            if SimClock.now() >= until {
                return Err(format!("no convergence within 60 s after healing: {}", self.describe()));
            }
            SimClock.sleep(Duration::from_millis(50)).await;
        };
        self.result.final_epoch = config.epoch;
        let history = self.history.lock().expect("history").clone();
        self.result.applied = history.iter().filter(|o| matches!(o.outcome, Outcome::Applied(_))).count();
        let changes: Vec<_> = config.recent_changes.iter().cloned().collect();
        if changes.first().map_or(1, |c| c.epoch) != 1 {
            return Err("the run made more changes than the config remembers; shorten it".into());
        }
        if let Some(isolated) = &self.isolated
            && !config.recent_changes.iter().take(isolated.recent_changes.len()).eq(isolated.recent_changes.iter())
        {
            return Err(format!(
                "the leader isolated in a minority applied changes (up to epoch {}) that are not in the cluster's history",
                isolated.epoch
            ));
        }
        let violations = config_history::check(&changes, config.epoch, &history);
        if !violations.is_empty() {
            return Err(format!("config history: {}", violations.join("; ")));
        }
        let holders: Vec<PlacementNode> = config
            .nodes
            .values()
            .filter(|n| n.state.holds_replicas())
            .map(|n| PlacementNode { id: n.id, rack: n.rack, weight: n.weight })
            .collect();
        if !config.shard_map.shards.is_empty() {
            placement::validate(&config.shard_map, &holders, config.params.shard_replication)
                .map_err(|e| format!("final shard map invalid: {e}"))?;
        }
        Ok(())
    }

    /// All members applied the same config, every real node is up in it, and every node caches it.
    fn converged(&self) -> Option<Arc<ClusterConfig>> {
        let (leader, _) = self.leader()?;
        let config = self.views[&leader].lock().expect("view").member_config.clone()?;
        for m in &self.s.members {
            let view = self.views[m].lock().expect("view");
            if view.member_config.as_deref() != Some(&*config) {
                return None;
            }
        }
        for id in self.s.node_ids() {
            if config.nodes.get(&id).map(|n| n.state) != Some(NodeState::Up) {
                return None;
            }
            let view = self.views[&id].lock().expect("view");
            if view.cached.as_ref().map(|c| c.epoch) != Some(config.epoch) {
                return None;
            }
        }
        Some(config)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for id in self.s.node_ids() {
            let view = self.views[&id].lock().expect("view");
            let role = view.member_status.as_ref().map(|s| {
                format!("{:?}/t{} commit {} applied {} last {}", s.role, s.term, s.commit, s.applied, s.last_index)
            });
            let epoch = view.member_config.as_ref().map(|c| c.epoch);
            let cached = view.cached.as_ref().map(|c| c.epoch);
            parts.push(format!("{id}: role {role:?} applied {epoch:?} cached {cached:?}"));
        }
        parts.join(", ")
    }
}

fn leader_of(cluster: &Cluster, views: &BTreeMap<NodeId, SharedView>, members: &[NodeId]) -> Option<(NodeId, u64)> {
    members
        .iter()
        .filter(|m| cluster.is_alive(**m))
        .filter_map(|m| {
            let view = views[m].lock().expect("view");
            let st = view.member_status.as_ref()?;
            (st.role == RaftRole::Leader).then_some((*m, st.term))
        })
        .max_by_key(|(_, t)| *t)
}

/// Every victim is down and, if `moves`, holds no replica.
fn rack_handled(c: &ClusterConfig, victims: &[NodeId], moves: bool) -> bool {
    victims.iter().all(|v| c.nodes.get(v).is_some_and(|n| n.state == NodeState::Down))
        && (!moves || victims.iter().all(|v| c.shards_on(*v).is_empty()))
}

fn ms_since(t0: MonoTime) -> u64 {
    SimClock.now().saturating_since(t0).as_millis() as u64
}
