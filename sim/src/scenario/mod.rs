//! The default scenario: a small replicated extent service under faults.
//!
//! 1. The seed picks the configuration ([`ScenarioConfig::from_seed`]).
//! 2. Safety phase: storage nodes run an extent server on their disks ([`server`]); a client node, never
//!    crashed, writes extents to two replicas in distinct racks and remembers every acknowledgement
//!    ([`client`]); meanwhile the [`nemesis`] kills and restarts nodes (disks lose unflushed writes),
//!    partitions the network, slows and fails disks, skews clocks; the network drops, duplicates and
//!    reorders messages throughout.
//! 3. Heal: undo every fault, then crash and restart every storage node once more.
//! 4. Liveness phase: the client reads back every acknowledged extent from the node that acknowledged
//!    it. Any missing or different byte is a failure: the store promised durability on acknowledgement.

pub mod client;
pub mod config;
pub mod nemesis;
pub mod server;
pub mod store;
pub mod toy_store;
pub mod wire;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use futures::future::{Either, select};
use tessera_env::{DetRng, Rng};

pub use config::ScenarioConfig;
pub use store::StoreKind;

use crate::cluster::{Cluster, NodeSpec};
use crate::trace::Trace;
use client::Client;
use config::CLIENT;
use nemesis::Nemesis;

/// The verdict of one scenario run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioResult {
    pub passed: bool,
    pub reason: Option<String>,
    pub acked: usize,
    pub kills: u64,
    pub restarts: u64,
}

/// Run the scenario with `config` inside the current madsim runtime, recording into `trace`.
pub async fn run(config: ScenarioConfig, trace: Trace) -> ScenarioResult {
    trace.record("scenario", format_args!("seed {} config: {}", config.seed, config.summary()));
    let mut rng = DetRng::from_seed(config.seed).fork("scenario");
    let mut cluster = Cluster::new(rng.fork("cluster"), trace.clone(), config.net.clone(), config.disk.clone());

    let servers = config.server_ids();
    let cluster_id = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    for &id in &servers {
        let provisioned: server::Provisioned =
            Arc::new((0..config.disks_per_server).map(|_| AtomicBool::new(false)).collect());
        let kind = config.store;
        let spec = NodeSpec { id, rack: config.rack_of(id), disks: config.disks_per_server };
        cluster.add_node(spec, move |env| server::serve(env, kind, cluster_id, provisioned.clone()));
    }
    cluster.add_node(NodeSpec { id: CLIENT, rack: config.rack_of(CLIENT), disks: 0 }, |_env| std::future::pending());
    let client_net = cluster.network().endpoint(CLIENT, config.rack_of(CLIENT));

    // Safety phase: the workload on the client node, the nemesis here on the supervisor.
    let placement: Vec<_> = servers.iter().map(|&n| (n, config.rack_of(n))).collect();
    let workload = config.workload.clone();
    let mut client = Client::new(client_net, rng.fork("client"), trace.clone());
    let safety = cluster.spawn_on(CLIENT, async move {
        let report = client.put_workload(&placement, &workload).await;
        (client, report)
    });
    let mut nemesis = Nemesis::new(rng.fork("nemesis"), config.faults.clone(), servers.clone(), config.racks);
    let joined = {
        let faults = pin!(nemesis.run(&mut cluster));
        match select(safety, faults).await {
            Either::Left((joined, _)) => joined,
            Either::Right(((), _)) => unreachable!("the nemesis never stops by itself"),
        }
    };
    let (client, report) = match joined {
        Ok(done) => done,
        Err(e) => return fail(&cluster, 0, format!("client task failed: {e}")),
    };
    trace.record(
        "scenario",
        format_args!("safety phase over: {} acks, {} replica writes unacked", report.acks.len(), report.unacked),
    );

    // Heal, then power-cycle every storage node: recovery must find every acknowledged extent.
    nemesis.heal(&mut cluster);
    for &id in &servers {
        cluster.restart(id);
    }

    // Liveness phase.
    let acks = report.acks;
    let workload = config.workload.clone();
    let check = cluster.spawn_on(CLIENT, async move {
        let mut client = client;
        let verdict = client.check_acks(&acks, &workload).await;
        (verdict, acks.len())
    });
    let (verdict, acked) = match check.await {
        Ok(done) => done,
        Err(e) => return fail(&cluster, 0, format!("liveness task failed: {e}")),
    };
    let stats = cluster.network().stats();
    trace.record("scenario", format_args!("kills={} restarts={} net={stats:?}", cluster.kills(), cluster.restarts()));
    match verdict {
        Ok(0) => fail(&cluster, 0, "no write was acknowledged: the run proved nothing".into()),
        Ok(verified) => {
            trace.record("scenario", format_args!("PASS: {verified} acknowledged extents verified"));
            ScenarioResult { passed: true, reason: None, acked, kills: cluster.kills(), restarts: cluster.restarts() }
        }
        Err(reason) => fail(&cluster, acked, reason),
    }
}

fn fail(cluster: &Cluster, acked: usize, reason: String) -> ScenarioResult {
    cluster.trace().record("scenario", format_args!("FAIL: {reason}"));
    ScenarioResult { passed: false, reason: Some(reason), acked, kills: cluster.kills(), restarts: cluster.restarts() }
}
