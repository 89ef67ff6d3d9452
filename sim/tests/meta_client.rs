//! The metadata client against fake shard replicas in simulation: four shards, three replicas each on
//! three nodes, all answering from one `tessera_meta::local::LocalCluster` (so cross-shard operations
//! run their reads and transactions through the client too) and a table of answers by request id (the
//! dedup a real shard keeps). The replicas misbehave on purpose: only a shard's current leader serves,
//! others answer `NotLeader` with or without a hint, leaders move, requests are dropped before or
//! after they are applied, answers are duplicated, shards are `Busy`; the network loses, duplicates
//! and reorders on top. Every operation must complete exactly once: a create whose answer was lost is
//! retried with the same request id and gets the original entry, never EEXIST.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::Runtime;
use tessera_env::{DetRng, Net, NodeId, Rng};
use tessera_meta::client::{ClientConfig, ClientError, MetaClient, ShardDirectory};
use tessera_meta::exec::{ReqId, ShardAnswer, ShardCall};
use tessera_meta::local::LocalCluster;
use tessera_meta::wire::MetaMessage;
use tessera_meta::{Credentials, Errno, FileType, InodeId};
use tessera_sim::{NetConfig, SimClock, SimNet, SimNetwork, SimWallClock, Trace};

const NODES: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
const SHARDS: u16 = 4;
const CLIENT: NodeId = NodeId(100);
/// Shard-map epoch the replicas report; the client starts one behind, so it is asked to refresh.
const SERVER_EPOCH: u64 = 2;

/// The replicas of `shard`, its preferred leader first.
fn replicas(shard: u16) -> Vec<NodeId> {
    (0..3).map(|i| NODES[(usize::from(shard) + i) % 3]).collect()
}

fn directory(epoch: u64) -> ShardDirectory {
    ShardDirectory::from_replicas((0..SHARDS).map(replicas).collect(), epoch).unwrap()
}

/// How often (per million requests) the fake replicas misbehave in each way.
#[derive(Clone, Copy)]
struct Faults {
    drop_request: u64,
    drop_answer_after_apply: u64,
    duplicate_answer: u64,
    busy: u64,
    move_leader: u64,
    hint: u64,
}

const FAULTY: Faults = Faults {
    drop_request: 80_000,
    drop_answer_after_apply: 150_000,
    duplicate_answer: 150_000,
    busy: 50_000,
    move_leader: 60_000,
    hint: 700_000,
};

#[derive(Default, Debug)]
struct Stats {
    requests: u64,
    applied: u64,
    dedup_hits: u64,
    answers_dropped_after_apply: u64,
    not_leader: u64,
    leader_moves: u64,
    transactions: u64,
}

struct FakeCluster {
    cluster: LocalCluster,
    answers: BTreeMap<ReqId, ShardAnswer>,
    applied_per_req: BTreeMap<ReqId, u32>,
    /// Each shard's current leader; at first not the preferred one, so the client is redirected.
    leaders: Vec<NodeId>,
    rng: DetRng,
    faults: Faults,
    now_ns: u64,
    stats: Stats,
}

impl FakeCluster {
    fn new(seed: u64, faults: Faults) -> FakeCluster {
        FakeCluster {
            cluster: LocalCluster::with_root_time(SHARDS, 1_000),
            answers: BTreeMap::new(),
            applied_per_req: BTreeMap::new(),
            leaders: (0..SHARDS).map(|s| replicas(s)[1]).collect(),
            rng: DetRng::from_seed(seed ^ 0x5eed),
            faults,
            now_ns: 1_000,
            stats: Stats::default(),
        }
    }

    fn chance(&mut self, per_million: u64) -> bool {
        self.rng.chance(per_million, 1_000_000)
    }

    /// What node `me` answers to one request.
    fn handle(&mut self, me: NodeId, req: ReqId, shard: u16, call: ShardCall) -> Vec<MetaMessage> {
        self.stats.requests += 1;
        if shard >= SHARDS || self.chance(self.faults.drop_request) {
            return Vec::new();
        }
        let s = usize::from(shard);
        if me != self.leaders[s] {
            self.stats.not_leader += 1;
            let leader = self.chance(self.faults.hint).then_some(self.leaders[s]);
            return vec![MetaMessage::NotLeader { req, shard, leader, epoch: SERVER_EPOCH }];
        }
        if self.chance(self.faults.move_leader) {
            self.stats.leader_moves += 1;
            self.leaders[s] = replicas(shard)[self.rng.below(3) as usize];
            if self.leaders[s] != me {
                return vec![MetaMessage::NotLeader { req, shard, leader: None, epoch: SERVER_EPOCH }];
            }
        }
        if self.chance(self.faults.busy) {
            return vec![MetaMessage::Busy { req }];
        }
        let answer = match self.answers.get(&req) {
            Some(answer) => {
                self.stats.dedup_hits += 1;
                answer.clone()
            }
            None => {
                self.now_ns += 1_000;
                self.stats.transactions += u64::from(matches!(call, ShardCall::Begin { .. }));
                let answer = self.cluster.call(shard, call, self.now_ns);
                self.stats.applied += 1;
                *self.applied_per_req.entry(req).or_default() += 1;
                self.answers.insert(req, answer.clone());
                answer
            }
        };
        if self.chance(self.faults.drop_answer_after_apply) {
            self.stats.answers_dropped_after_apply += 1;
            return Vec::new();
        }
        let response = MetaMessage::Response { req, answer };
        if self.chance(self.faults.duplicate_answer) { vec![response.clone(), response] } else { vec![response] }
    }
}

async fn serve(net: SimNet, cluster: Arc<Mutex<FakeCluster>>) {
    let me = net.local_id();
    while let Ok((from, bytes)) = net.recv().await {
        let Ok(MetaMessage::Request { req, shard, call, .. }) = MetaMessage::decode(&bytes) else { continue };
        let replies = cluster.lock().unwrap().handle(me, req, shard, call);
        for reply in replies {
            let _ = net.send(from, reply.encode()).await;
        }
    }
}

type SimClient = MetaClient<SimClock, SimWallClock, SimNet, DetRng>;

/// A fabric with the three nodes serving `cluster`, and a client on its own endpoint.
fn setup(seed: u64, net_config: NetConfig, cluster: &Arc<Mutex<FakeCluster>>, config: ClientConfig) -> SimClient {
    let mut rng = DetRng::from_seed(seed);
    let fabric = SimNetwork::new(rng.fork("net"), Trace::new(false), net_config);
    for (rack, node) in NODES.into_iter().enumerate() {
        drop(madsim::task::spawn(serve(fabric.endpoint(node, rack as u32), cluster.clone())));
    }
    let wall = SimWallClock::new(&mut rng);
    let endpoint = fabric.endpoint(CLIENT, 9);
    let mut client =
        MetaClient::new(7, directory(SERVER_EPOCH - 1), config, SimClock, wall, endpoint, rng.fork("client")).unwrap();
    client.set_refresh_hook(Box::new(|epoch| {
        assert_eq!(epoch, SERVER_EPOCH);
        Some(directory(epoch))
    }));
    client
}

fn run<F: std::future::Future>(seed: u64, f: F) -> F::Output {
    Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(f)
}

fn lossy() -> NetConfig {
    NetConfig {
        latency_us_min: 500,
        latency_us_max: 20_000,
        loss_per_million: 50_000,
        duplicate_per_million: 50_000,
        ..NetConfig::default()
    }
}

fn patient() -> ClientConfig {
    ClientConfig { request_timeout_ms: 60, attempts_max: 200, op_timeout_ms: 60_000, ..ClientConfig::default() }
}

/// A workload whose every answer is known if each operation takes effect exactly once. Directories
/// are spread over the shards, so mkdir, rmdir and renames across directories are transactions.
async fn workload(client: &mut SimClient) -> Result<(), ClientError> {
    let root = Credentials::root();
    let d = client.mkdir("/d", 0o755, &root).await?;
    assert_eq!(d.kind, FileType::Directory);
    let mut files = BTreeMap::new();
    for i in 0..30 {
        let attr = client.create(&format!("/d/f{i}"), 0o644, &root).await?;
        assert_eq!((attr.kind, attr.nlink), (FileType::Regular, 1));
        files.insert(format!("f{i}"), attr.ino);
    }
    let mut subdirs = BTreeMap::new();
    for i in 0..8 {
        let attr = client.mkdir(&format!("/d/s{i}"), 0o755, &root).await?;
        subdirs.insert(format!("s{i}"), attr.ino);
    }
    assert!(subdirs.values().any(|ino| ino.shard() != d.ino.shard()), "no directory landed in another shard");
    assert_eq!(client.resolve("/d/./f3/..", &root).await, Err(ClientError::Posix(Errno::ENOTDIR)));
    assert_eq!(client.resolve("/d/../d/s2/..", &root).await?, d.ino);
    assert_eq!(client.resolve("/d/../d/f3", &root).await?, files["f3"]);
    assert_eq!(client.create("/d/f0", 0o644, &root).await, Err(ClientError::Posix(Errno::EEXIST)));
    assert_eq!(client.mkdir("/d/s0", 0o755, &root).await, Err(ClientError::Posix(Errno::EEXIST)));
    for i in (0..30).step_by(3) {
        client.unlink(&format!("/d/f{i}"), &root).await?;
        files.remove(&format!("f{i}"));
    }
    // Renames within a directory and across directories (of other shards), and back.
    client.rename("/d/f1", "/d/g1", &root).await?;
    let moved = files.remove("f1").unwrap();
    files.insert("g1".to_owned(), moved);
    for i in 0..8 {
        client.rename("/d/f2", &format!("/d/s{i}/f2"), &root).await?;
        assert_eq!(client.stat(&format!("/d/s{i}/f2"), &root).await?.ino, files["f2"]);
        client.rename(&format!("/d/s{i}/f2"), "/d/f2", &root).await?;
    }
    assert_eq!(client.stat("/d/g1", &root).await?.ino, moved);
    assert_eq!(client.stat("/d/f1", &root).await, Err(ClientError::Posix(Errno::ENOENT)));
    for i in 0..4 {
        client.rmdir(&format!("/d/s{i}"), &root).await?;
        subdirs.remove(&format!("s{i}"));
    }
    assert_eq!(client.rmdir("/d/s0", &root).await, Err(ClientError::Posix(Errno::ENOENT)));
    assert_eq!(client.rmdir("/d", &root).await, Err(ClientError::Posix(Errno::ENOTEMPTY)));
    assert_eq!(client.rmdir("/d/..", &root).await, Err(ClientError::Posix(Errno::ENOTEMPTY)));
    let listed: BTreeMap<String, InodeId> =
        client.readdir_all(d.ino, &root).await?.into_iter().map(|e| (e.name, e.ino)).collect();
    let mut expected = files.clone();
    expected.extend(subdirs.clone());
    assert_eq!(listed, expected, "the directory holds exactly what exactly-once execution leaves");
    let attr = client.stat("/d", &root).await?;
    assert_eq!((attr.size, attr.nlink), (expected.len() as u64, 2 + subdirs.len() as u32));
    Ok(())
}

#[test]
fn ops_complete_exactly_once_through_misbehaving_replicas() {
    let mut totals = Stats::default();
    for seed in 0..6u64 {
        let cluster = Arc::new(Mutex::new(FakeCluster::new(seed, FAULTY)));
        let mut config = patient();
        config.readdir_page_entries = 7;
        run(seed, async {
            let mut client = setup(seed, lossy(), &cluster, config);
            workload(&mut client).await.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(client.directory().epoch(), SERVER_EPOCH, "seed {seed}: the refresh hook was not used");
        });
        let cluster = cluster.lock().unwrap();
        assert!(cluster.applied_per_req.values().all(|&n| n == 1));
        cluster.cluster.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let s = &cluster.stats;
        totals.dedup_hits += s.dedup_hits;
        totals.answers_dropped_after_apply += s.answers_dropped_after_apply;
        totals.not_leader += s.not_leader;
        totals.leader_moves += s.leader_moves;
        totals.requests += s.requests;
        totals.applied += s.applied;
        totals.transactions += s.transactions;
    }
    // The rare paths were taken: lost answers to applied requests were answered from the dedup table,
    // and cross-shard operations ran their transactions through the client.
    assert!(totals.answers_dropped_after_apply > 20 && totals.dedup_hits > 20, "{totals:?}");
    assert!(totals.not_leader > 20 && totals.leader_moves > 5, "{totals:?}");
    assert!(totals.transactions > 20, "{totals:?}");
    assert!(totals.requests > totals.applied, "{totals:?}");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let once = |seed: u64| {
        let cluster = Arc::new(Mutex::new(FakeCluster::new(seed, FAULTY)));
        run(seed, async {
            let mut client = setup(seed, lossy(), &cluster, patient());
            workload(&mut client).await.unwrap();
        });
        let s = &cluster.lock().unwrap().stats;
        (s.requests, s.applied, s.dedup_hits, s.not_leader, s.leader_moves, s.transactions)
    };
    assert_eq!(once(11), once(11));
}

#[test]
fn a_silent_shard_gives_a_timeout_with_unknown_outcome_not_an_errno() {
    let silent = Faults { drop_request: 1_000_000, ..FAULTY };
    let cluster = Arc::new(Mutex::new(FakeCluster::new(1, silent)));
    let config = ClientConfig {
        request_timeout_ms: 50,
        attempts_max: 5,
        backoff_base_ms: 5,
        backoff_max_ms: 20,
        op_timeout_ms: 10_000,
        ..ClientConfig::default()
    };
    run(1, async {
        let mut client = setup(1, NetConfig::default(), &cluster, config.clone());
        let started = madsim::time::Instant::now();
        let err = client.mkdir("/d", 0o755, &Credentials::root()).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { shard: Some(0), attempts: 5, .. }), "got {err:?}");
        assert!(err.outcome_unknown());
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2), "{elapsed:?}");
        // The op deadline bounds a call even with attempts to spare.
        let mut short = config;
        short.attempts_max = 1000;
        short.op_timeout_ms = 300;
        let cluster2 = Arc::new(Mutex::new(FakeCluster::new(2, silent)));
        let mut client = setup(2, NetConfig::default(), &cluster2, short);
        let started = madsim::time::Instant::now();
        let err = client.resolve("/x", &Credentials::root()).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "got {err:?}");
        assert!(started.elapsed() <= Duration::from_millis(310), "{:?}", started.elapsed());
    });
    assert_eq!(cluster.lock().unwrap().stats.applied, 0);
}
