//! Booting and running one storage node on the real environment: the same cluster logic the simulator
//! runs (`tessera-meta`'s shard host, `tessera-data`'s chunk host and rebuilder), over [`NodeDisk`]s,
//! the TCP [`Transport`], the OS clocks and an OS-seeded [`DetRng`].
//!
//! Endpoints of node `n` (one transport, one TCP port): `n` the metadata shard host,
//! `n | 1<<62` its chunk host, `n | 1<<61` the rebuilder's metadata client and `n | 1<<61 | 1<<62` its
//! stripe IO, `n | 1<<60` the admin endpoint (describe, status, failure detector) and
//! `n | 1<<60 | 1<<62` the metrics sampler's status requests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_data::data_endpoint;
use tessera_data::host::{ChunkHost, ChunkHostConfig};
use tessera_data::rebuild::{
    DataMap, NodeShared, RebuildConfig, Rebuilder, RepairQueue, SharedDataMap, SharedProgress,
};
use tessera_data::server::ChunkServer;
use tessera_data::stripe_io::{IoConfig, StripeIo};
use tessera_data::wire::RebuildProgress;
use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::InodeId;
use tessera_meta::client::{ClientConfig, MetaClient, ShardDirectory};
use tessera_meta::host::{
    EpochMap, HostConfig, HostEnv, HostSetup, HostView, MetaHost, SharedHostView, SharedShardMap,
};
use tessera_raft::RaftLogStore;

use crate::clock::{RealClock, RealWallClock};
use crate::net::{Transport, TransportConfig};
use crate::node::admin::{ADMIN_ENDPOINT_BIT, AdminShared, admin_endpoint, run_admin};
use crate::node::drives::{DriveError, NodeDisk, OpenedStore, open_store};
use crate::node::metered_net::{MeteredNet, Service};
use crate::node::spec::{DriveRole, LoadedNode};
use crate::observe::{MeteredDisk, Metrics, NodeSample, serve_metrics};
use crate::rng::os_seed;

/// The bit that turns a node id into its rebuilder's metadata endpoint (as in the simulator).
pub const REBUILDER_BIT: u64 = 1 << 61;
/// How often the metrics sampler refreshes the node's gauges.
const SAMPLE_INTERVAL_MS: u64 = 1_000;

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Drive(#[from] DriveError),
    #[error("{0}")]
    Transport(#[from] crate::net::TransportError),
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] crate::observe::ObserveError),
    #[error("the metadata host cannot start: {0}")]
    HostOpen(String),
    #[error("the chunk server cannot start: {0}")]
    Chunks(String),
    #[error(
        "the metadata host stopped: {0} (a failed drive write or fsync stops the node rather than acknowledge what it could not make durable)"
    )]
    HostStopped(String),
}

/// The disks the node's services run on: the file disk, its syscalls off the async threads, metered.
pub type ServiceDisk = MeteredDisk<NodeDisk>;

/// A node that has started: its services run on the current tokio runtime until [`RunningNode::wait`]
/// sees one of them stop or the caller stops the node.
#[derive(Debug)]
pub struct RunningNode {
    pub id: NodeId,
    pub transport: Transport,
    pub metrics: Metrics,
    /// Where the metrics endpoint listens, if configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
    host_done: tokio::sync::oneshot::Receiver<String>,
    _metrics_server: Option<crate::observe::MetricsServer>,
}

impl RunningNode {
    /// Waits until the metadata host stops (a fatal drive error) and returns why.
    pub async fn wait(&mut self) -> NodeError {
        match (&mut self.host_done).await {
            Ok(reason) => NodeError::HostStopped(reason),
            Err(_) => NodeError::HostStopped("its task ended".into()),
        }
    }

    /// Closes every connection; the services stop at their next network call.
    pub fn stop(&self) {
        self.transport.shutdown();
    }
}

/// Open the drives, start every service of the node described by `loaded`, and return once it serves.
pub async fn start_node(loaded: &LoadedNode) -> Result<RunningNode, NodeError> {
    let spec = &loaded.spec;
    let id = NodeId(loaded.member.id);
    let metrics = Metrics::new(&id.to_string());
    let clock = RealClock::new();
    let seed = os_seed();
    tracing::info!(node = %id, rack = loaded.member.rack, listen = %loaded.config.listen, cluster = %format!("{:032x}", spec.cluster_id), rng_seed = seed, "node starting");
    let mut rng = DetRng::from_seed(seed);

    // Drives: the metadata drive first, then every data drive, each checked against the cluster id.
    let mut meta_store = None;
    let mut data_stores = Vec::new();
    let mut capacity_bytes = 0;
    let mut data_index = 0;
    for (index, drive) in loaded.config.drives.iter().enumerate() {
        let name = match drive.role {
            DriveRole::Meta => "meta".to_string(),
            DriveRole::Data => {
                data_index += 1;
                format!("data{}", data_index - 1)
            }
        };
        let disk_metrics = metrics.disk(&name);
        let OpenedStore { store, path, capacity_bytes: drive_bytes, formatted } =
            open_store(drive, spec.cluster_id, id, index, |file| {
                MeteredDisk::new(NodeDisk::new(file), disk_metrics.clone())
            })
            .await?;
        tracing::info!(drive = %path.display(), role = %name, formatted, capacity_bytes = drive_bytes, "drive open");
        match drive.role {
            DriveRole::Meta => meta_store = Some(store),
            DriveRole::Data => {
                capacity_bytes += drive_bytes;
                data_stores.push(store);
            }
        }
    }
    let meta_store = meta_store.expect("validated: exactly one metadata drive");

    let config = TransportConfig { cluster_id: Some(spec.cluster_id), ..TransportConfig::default() };
    let transport = Transport::start(id, Some(&loaded.config.listen), config).await?;
    for m in &spec.members {
        if m.id != id.0 {
            transport.set_peer_address(NodeId(m.id), &m.address)?;
        }
    }

    // The metadata shard host.
    let genesis = spec.genesis_map();
    let directory = ShardDirectory::new(&genesis, 1).expect("a validated spec gives a routable shard map");
    let maps: SharedShardMap = Arc::new(Mutex::new(EpochMap { epoch: 1, map: genesis.clone() }));
    let host_view: SharedHostView = Arc::new(Mutex::new(HostView::default()));
    let roots = BTreeMap::from([(0u16, (InodeId::ROOT, spec.created_unix_ns))]);
    let setup = HostSetup { genesis, roots, split_threshold_entries: tessera_meta::shard::SPLIT_THRESHOLD_DEFAULT };
    let log = RaftLogStore::open(meta_store).await.map_err(|e| NodeError::HostOpen(format!("raft log: {e}")))?;
    let host_net = MeteredNet::new(transport.endpoint(id)?, Service::Meta, metrics.clone());
    let env = HostEnv { id, clock: clock.clone(), wall: RealWallClock, net: host_net, rng: rng.fork("host") };
    let host = MetaHost::open(env, HostConfig::default(), setup, log, maps, host_view.clone())
        .await
        .map_err(|e| NodeError::HostOpen(e.to_string()))?;
    let (host_tx, host_done) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let reason = match host.run().await {
            Ok(()) => "stopped".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = host_tx.send(reason);
    });

    // The chunk host and the rebuilder.
    let server = ChunkServer::from_stores(data_stores).await.map_err(|e| NodeError::Chunks(e.to_string()))?;
    let report = server.open_report().clone();
    tracing::info!(
        chunks = report.chunks,
        failed_drives = report.failed_drives.len(),
        bad_extents = report.bad_extents.len(),
        "chunk server open"
    );
    for (drive, why) in &report.failed_drives {
        tracing::error!(drive, reason = %why, "data drive failed at open: its chunks will be rebuilt from the other nodes");
    }
    let repairs: RepairQueue = Arc::new(Mutex::new(VecDeque::new()));
    let progress: SharedProgress = Arc::new(Mutex::new(RebuildProgress::default()));
    let chunk_host = ChunkHost::new(
        ChunkHostConfig::default(),
        clock.clone(),
        MeteredNet::new(transport.endpoint(data_endpoint(id))?, Service::Data, metrics.clone()),
        server,
        repairs.clone(),
        progress.clone(),
    )
    .map_err(|e| NodeError::Chunks(e.to_string()))?;
    tokio::spawn(chunk_host.run());

    let data_map: SharedDataMap = Arc::new(Mutex::new(DataMap::new(spec.placement_nodes())));
    let rebuilder_id = NodeId(id.0 | REBUILDER_BIT);
    let meta_config = ClientConfig { op_timeout_ms: 30_000, ..ClientConfig::default() };
    let client_id = rng.next_u64() | 1;
    let meta = MetaClient::new(
        client_id,
        directory,
        meta_config,
        clock.clone(),
        RealWallClock,
        transport.endpoint(rebuilder_id)?,
        rng.fork("rebuilder-meta"),
    )
    .map_err(|e| NodeError::Chunks(e.to_string()))?;
    let io = StripeIo::new(
        clock.clone(),
        transport.endpoint(data_endpoint(rebuilder_id))?,
        io_config(),
        rng.next_u64() >> 1,
    );
    let shared = NodeShared { map: data_map.clone(), repairs: repairs.clone(), progress: progress.clone() };
    // One stripe-scrub cycle a minute at most: the scrub reads every chunk of every stripe it checks.
    let rebuild = RebuildConfig { scrub_cycle_interval_ms: 60_000, ..RebuildConfig::default() };
    let rebuilder = Rebuilder::new(id, spec.shards, (meta, io), clock.clone(), shared, rebuild);
    tokio::spawn(rebuilder.run());

    // Admin endpoint and failure detector.
    let peers =
        spec.members.iter().filter(|m| m.id != id.0).map(|m| (NodeId(m.id), (m.rack, m.address.clone()))).collect();
    let admin = AdminShared {
        node: id,
        rack: loaded.member.rack,
        address: loaded.member.address.clone(),
        cluster_toml: Arc::new(spec.to_toml()),
        peers,
        dead_after_ms: spec.dead_after_ms,
        host_view: host_view.clone(),
        data_map: data_map.clone(),
        progress: progress.clone(),
        last_heard: Arc::default(),
    };
    tokio::spawn(run_admin(transport.endpoint(admin_endpoint(id))?, clock.clone(), admin.clone()));

    // Metrics: a sampler and the HTTP endpoint.
    let sampler_io = StripeIo::new(
        clock.clone(),
        transport.endpoint(data_endpoint(NodeId(id.0 | ADMIN_ENDPOINT_BIT)))?,
        io_config(),
        rng.next_u64() >> 1,
    );
    let sampled = Sampled { admin, io: sampler_io, repairs, capacity_bytes };
    tokio::spawn(sample_metrics(id, clock.clone(), transport.clone(), metrics.clone(), sampled));
    let metrics_server = match &loaded.config.metrics_listen {
        Some(listen) => Some(serve_metrics(listen, metrics.clone()).await?),
        None => None,
    };
    let metrics_addr = metrics_server.as_ref().map(|s| s.local_addr());
    tracing::info!(node = %id, metrics = ?metrics_addr, "node serving");
    Ok(RunningNode { id, transport, metrics, metrics_addr, host_done, _metrics_server: metrics_server })
}

/// Data requests of the node's own services: a few resends, then the node is taken as slow or gone.
pub fn io_config() -> IoConfig {
    IoConfig { request_timeout: Duration::from_millis(1_000), resend_max: 3 }
}

/// What the metrics sampler reads.
struct Sampled {
    admin: AdminShared,
    io: StripeIo<RealClock, crate::net::TcpNet>,
    repairs: RepairQueue,
    capacity_bytes: u64,
}

/// Copies the node's state into its metrics every second.
async fn sample_metrics(id: NodeId, clock: RealClock, transport: Transport, metrics: Metrics, sampled: Sampled) {
    let Sampled { admin, mut io, repairs, capacity_bytes } = sampled;
    loop {
        metrics.update_net(&transport.stats());
        let status = admin.status(clock.now());
        let data = io.status(&[data_endpoint(id)]).await.into_iter().next().and_then(Result::ok).unwrap_or_default();
        let down = status.peers.iter().filter(|p| p.dead).count() as u64;
        metrics.update_node(&NodeSample {
            shards_hosted: status.shards_hosted,
            shards_led: status.shards_led,
            chunks_stored: data.chunks,
            data_bytes_used: data.used_bytes,
            data_bytes_capacity: capacity_bytes,
            drives_failed: u64::from(data.failed_drives),
            repair_queue_depth: repairs.lock().expect("repair queue lock").len() as u64,
            rebuild_stripes_done: status.rebuild.stripes_done,
            rebuild_bytes_done: status.rebuild.bytes_rebuilt,
            rebuild_idle: status.rebuild.idle,
            rebuild_passes: status.rebuild.passes,
            peers_up: status.peers.len() as u64 - down,
            peers_down: down,
        });
        clock.sleep(Duration::from_millis(SAMPLE_INTERVAL_MS)).await;
    }
}
