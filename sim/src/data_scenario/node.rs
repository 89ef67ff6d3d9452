//! A storage node's data services in simulation, started by the metadata hosts' boot hook on every boot:
//! the chunk server over the node's data drive (formatted on the first boot, recovered on later ones),
//! its data endpoint, and the rebuilder (rebuild, scrub repairs, garbage reclaim) on endpoints of its
//! own.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_data::data_endpoint;
use tessera_data::host::{ChunkHost, ChunkHostConfig};
use tessera_data::rebuild::{NodeShared, RebuildConfig, Rebuilder, RepairQueue, SharedDataMap, SharedProgress};
use tessera_data::server::ChunkServer;
use tessera_data::stripe_io::{IoConfig, StripeIo};
use tessera_data::wire::RebuildProgress;
use tessera_env::{NodeId, Spawn};
use tessera_meta::client::{ClientConfig, MetaClient, ShardDirectory};
use tessera_store::StoreConfig;

use super::DataScenario;
use crate::env::SimClock;
use crate::meta_support::{BootHook, HookEnv};

const MIB: u64 = 1024 * 1024;
/// The bit that turns a node id into its rebuilder's metadata endpoint.
pub const REBUILDER_BIT: u64 = 1 << 61;

/// The rebuilder's metadata endpoint on node `id` (its data endpoint is `data_endpoint` of it).
/// The journal of every data drive's store.
pub const DATA_JOURNAL_BYTES: u64 = 4 * MIB;

pub fn rebuilder_endpoint(id: NodeId) -> NodeId {
    NodeId(id.0 | REBUILDER_BIT)
}

pub fn io_config() -> IoConfig {
    IoConfig { request_timeout: Duration::from_millis(300), resend_max: 3 }
}

/// What a node's data services are given.
#[derive(Clone, Debug)]
pub struct ServicesSetup {
    /// Names the cluster on the drives.
    pub cluster_id: u128,
    pub shards: u16,
    pub rebuild: RebuildConfig,
}

impl ServicesSetup {
    pub fn for_scenario(s: &DataScenario) -> ServicesSetup {
        let rebuild = RebuildConfig { pass_interval_ms: 1_000, ..RebuildConfig::default() };
        ServicesSetup { cluster_id: u128::from(s.seed) + 1, shards: s.shards, rebuild }
    }
}

/// The hook that starts a node's data services on every boot.
pub fn services_hook(setup: ServicesSetup, map: SharedDataMap, directory: ShardDirectory) -> BootHook {
    let provisioned: Arc<Mutex<BTreeMap<NodeId, Arc<AtomicBool>>>> = Arc::default();
    let setup = Arc::new(setup);
    Arc::new(move |env: HookEnv| {
        let flag = provisioned.lock().expect("provisioned").entry(env.id).or_default().clone();
        Box::pin(services(env, setup.clone(), map.clone(), directory.clone(), flag))
    })
}

async fn services(
    env: HookEnv,
    s: Arc<ServicesSetup>,
    map: SharedDataMap,
    directory: ShardDirectory,
    provisioned: Arc<AtomicBool>,
) {
    let HookEnv { id, rack, disks, net, wall, spawn, mut rng, trace } = env;
    let source = format!("{id}/data");
    let server = if provisioned.load(Ordering::Relaxed) {
        ChunkServer::open(disks).await
    } else {
        let config = StoreConfig { max_extent_bytes: 2 * MIB as u32, journal_bytes: Some(DATA_JOURNAL_BYTES) };
        let server = ChunkServer::format(disks, s.cluster_id, id, config).await;
        if server.is_ok() {
            provisioned.store(true, Ordering::Relaxed);
        }
        server
    };
    let server = match server {
        Ok(server) => {
            trace.record(&source, format_args!("chunk server open: {:?}", server.open_report()));
            server
        }
        Err(e) => {
            trace.record(&source, format_args!("chunk server cannot start: {e}"));
            return;
        }
    };
    let fabric = net.network().clone();
    let repairs: RepairQueue = Arc::new(Mutex::new(VecDeque::new()));
    let progress: SharedProgress = Arc::new(Mutex::new(RebuildProgress::default()));
    let data_net = fabric.endpoint_on(data_endpoint(id), id, rack);
    let host =
        ChunkHost::new(ChunkHostConfig::default(), SimClock, data_net, server, repairs.clone(), progress.clone())
            .expect("a valid chunk host config");
    spawn.spawn("chunk-host", Box::pin(host.run()));

    let meta_id = rebuilder_endpoint(id);
    let meta_net = fabric.endpoint_on(meta_id, id, rack);
    let io_net = fabric.endpoint_on(data_endpoint(meta_id), id, rack);
    let config = ClientConfig { op_timeout_ms: 10_000, attempts_max: 20, ..ClientConfig::default() };
    let client_rng = tessera_env::Rng::fork(&mut rng, "rebuilder-meta");
    // A fresh client id on every boot: shards remember each client's latest request and ignore older
    // ones, and a restarted client numbers its requests from the start again.
    let client_id = tessera_env::Rng::next_u64(&mut rng) | 1;
    let meta = match MetaClient::new(client_id, directory, config, SimClock, wall, meta_net, client_rng) {
        Ok(meta) => meta,
        Err(e) => {
            trace.record(&source, format_args!("rebuilder cannot start: {e}"));
            return;
        }
    };
    let first_req = tessera_env::Rng::next_u64(&mut rng) >> 1;
    let io = StripeIo::new(SimClock, io_net, io_config(), first_req);
    let shared = NodeShared { map, repairs, progress };
    let rebuilder = Rebuilder::new(id, s.shards, (meta, io), SimClock, shared, s.rebuild.clone());
    rebuilder.run().await;
}
