//! Data-path throughput and rebuild time against cluster size, in simulated time (issue 5): a cluster
//! of `nodes` storage nodes (4+2 erasure coding, racks of 1, 2 or 4 nodes, one data drive each), two
//! closed-loop clients per node writing files of 1 MiB, then reading them back; then one node is lost
//! for good and the survivors rebuild its chunks. Reports write and read MB per simulated second and
//! the rebuild time from the node's loss being declared to every survivor's rebuilder being idle.
//!
//! What limits the figures: every simulated drive moves 2 GB/s with 25-80 us per I/O and 400 us per
//! flush; the network adds 0.1-0.5 ms per message and models no bandwidth limit; the simulator charges
//! no CPU. Rebuild is throttled per node ([`RebuildConfig::rate_bytes_per_s`]) and processes one stripe
//! at a time per node, so its time shows how the work spreads over the survivors (declustering): the
//! lost node's data grows with nothing, while the nodes sharing its rebuild grow with the cluster.
//!
//! `cargo run --release -p tessera-sim -- data-scale --nodes 8,32,128`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::model::Protection;
use tessera_config::placement::{self, PlacementNode};
use tessera_data::client::DataClientConfig;
use tessera_data::rebuild::{DataMap, RebuildConfig, SharedDataMap};
use tessera_data::stripe_io::StripeIo;
use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::client::{ClientConfig, ShardDirectory};
use tessera_meta::{Credentials, InodeId, MetaOp, MetaReply};

use crate::cluster::NodeSpec;
use crate::data_scenario::node::{ServicesSetup, io_config, services_hook};
use crate::data_scenario::workload::{SimDataClient, make_client};
use crate::disk::DiskModel;
use crate::env::SimClock;
use crate::meta_support::{HostCluster, MetaScenario, start_hosts_with, wait_for_all_leaders};
use crate::trace::Trace;

const CLIENTS_PER_NODE: u64 = 2;
const FILES_PER_CLIENT: u64 = 8;
const FILE_BYTES: usize = 1024 * 1024;
const SHARDS_PER_NODE: u16 = 4;
const ROOT_CREATED_NS: u64 = 1_000_000_000;
const MIB: u64 = 1024 * 1024;

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct DataScaleResult {
    pub nodes: u64,
    pub racks: u64,
    pub shards: u16,
    pub clients: u64,
    /// File bytes written (and read back).
    pub bytes: u64,
    pub write_mb_per_sec: f64,
    pub read_mb_per_sec: f64,
    /// Stripes that had a chunk on the lost node, and the simulated seconds to rebuild them all.
    pub stripes_rebuilt: u64,
    pub rebuild_secs: f64,
    /// Survivors that rebuilt at least one stripe.
    pub rebuilders: u64,
}

/// Racks for a cluster of `nodes`: 1 node per rack up to 8 nodes, then 2, then 4.
fn nodes_per_rack(nodes: u64) -> u64 {
    match nodes {
        0..=8 => 1,
        9..=32 => 2,
        _ => 4,
    }
}

/// Measure a cluster of `nodes` (at least 8: 4+2 needs 6 racks, and one more to rebuild into) on `seed`.
pub fn measure(nodes: u64, seed: u64) -> Result<DataScaleResult, String> {
    if !(8..=1024).contains(&nodes) || !nodes.is_multiple_of(nodes_per_rack(nodes)) {
        return Err(format!("data-scale takes 8 to 1024 nodes (a multiple of the rack size), got {nodes}"));
    }
    let trace = Trace::new(false);
    crate::run::in_runtime(seed, run(nodes, seed, trace))?
}

async fn run(nodes: u64, seed: u64, trace: Trace) -> Result<DataScaleResult, String> {
    let per_rack = nodes_per_rack(nodes);
    let shards = u16::try_from(nodes).map_err(|e| e.to_string())? * SHARDS_PER_NODE;
    let mut m = MetaScenario::new(seed, nodes, shards);
    m.faults = false;
    m.net.loss_per_million = 0;
    m.net.duplicate_per_million = 0;
    m.net.latency_us_min = 100;
    m.net.latency_us_max = 500;
    m.net.queue_limit_messages = 1 << 16;
    m.nodes_per_rack = per_rack;
    m.data_disks = 1;
    m.disk = DiskModel::nvme(512 * MIB);
    let m = Arc::new(m);
    let placement_nodes: Vec<PlacementNode> = m.placement_nodes();
    let genesis =
        placement::place(&placement_nodes, u32::from(shards), m.replication, None).map_err(|e| e.to_string())?;
    let directory = ShardDirectory::new(&genesis, 1).map_err(|e| e.to_string())?;
    let map: SharedDataMap = Arc::new(Mutex::new(DataMap::new(placement_nodes.clone())));
    let rebuild = RebuildConfig { pass_interval_ms: 50, scrub_stripes_per_pass: 0, ..RebuildConfig::default() };
    let setup = ServicesSetup { cluster_id: u128::from(seed) + 1, shards, rebuild };
    let hook = services_hook(setup, map.clone(), directory.clone());
    let mut rng = DetRng::from_seed(seed).fork("data-scale");
    let roots = BTreeMap::from([(0, (InodeId::ROOT, ROOT_CREATED_NS))]);
    let HostCluster { mut cluster, views, .. } = start_hosts_with(&m, roots, &mut rng, &trace, Some(hook));
    wait_for_all_leaders(&cluster, &views, shards, Duration::from_secs(120)).await?;
    SimClock.sleep(Duration::from_secs(2)).await;

    let clients = nodes * CLIENTS_PER_NODE;
    let mut new_client = |cluster: &mut crate::cluster::Cluster, id: NodeId| -> Result<SimDataClient, String> {
        cluster.add_node(NodeSpec { id, rack: u32::MAX, disks: 0 }, |_env| std::future::pending());
        let meta_config = ClientConfig { op_timeout_ms: 60_000, ..ClientConfig::default() };
        let config = DataClientConfig {
            protection: Protection::ErasureCoded { data: 4, parity: 2 },
            inline_max_bytes: 0,
            request_timeout_ms: 2_000,
            ..DataClientConfig::default()
        };
        let rng = rng.fork(&id.to_string());
        make_client(cluster, id, directory.clone(), meta_config, config, placement_nodes.clone(), rng)
    };
    let mut setup_client = new_client(&mut cluster, NodeId(9_999))?;
    let files = cluster
        .spawn_on(NodeId(9_999), async move {
            // A directory per client (directories are placed over the shards by hash; a small
            // directory's files live in its shard), so the files' metadata spreads over the shards.
            let mut files = Vec::new();
            for c in 0..clients {
                let root = Credentials::root();
                let op =
                    MetaOp::Mkdir { parent: InodeId::ROOT, name: format!("c{c}"), mode: 0o755, creds: root.clone() };
                let dir = match setup_client.meta().execute(op).await {
                    Ok(Ok(MetaReply::Entry(attr))) => attr.ino,
                    other => return Err(format!("mkdir c{c}: {other:?}")),
                };
                for f in 0..FILES_PER_CLIENT {
                    let op = MetaOp::Create { parent: dir, name: format!("f{f}"), mode: 0o644, creds: root.clone() };
                    match setup_client.meta().execute(op).await {
                        Ok(Ok(MetaReply::Entry(attr))) => files.push(attr.ino),
                        other => return Err(format!("create c{c}/f{f}: {other:?}")),
                    }
                }
            }
            Ok(files)
        })
        .await
        .map_err(|e| e.to_string())??;
    let mut workers = Vec::new();
    for c in 0..clients {
        let id = NodeId(10_000 + c);
        workers.push((id, new_client(&mut cluster, id)?));
    }
    let payload: Arc<Vec<u8>> = Arc::new((0..FILE_BYTES).map(|i| (i % 251) as u8).collect());

    // Write phase.
    let began = SimClock.now();
    let mut tasks = Vec::new();
    for (c, (id, mut client)) in workers.into_iter().enumerate() {
        let mine: Vec<InodeId> = files[c * FILES_PER_CLIENT as usize..(c + 1) * FILES_PER_CLIENT as usize].to_vec();
        let payload = payload.clone();
        tasks.push(cluster.spawn_on(id, async move {
            for &ino in &mine {
                client
                    .write(ino, 0, &payload, &Credentials::root())
                    .await
                    .map_err(|e| format!("write {ino:?}: {e}"))?;
            }
            Ok::<_, String>((id, client, mine))
        }));
    }
    let mut workers = Vec::new();
    for task in tasks {
        workers.push(task.await.map_err(|e| e.to_string())??);
    }
    let write_secs = SimClock.now().saturating_since(began).as_secs_f64();
    let bytes = clients * FILES_PER_CLIENT * FILE_BYTES as u64;

    // Read phase.
    let began = SimClock.now();
    let mut tasks = Vec::new();
    for (id, mut client, mine) in workers {
        let payload = payload.clone();
        tasks.push(cluster.spawn_on(id, async move {
            for &ino in &mine {
                let got = client.read(ino, 0, FILE_BYTES as u64).await.map_err(|e| format!("read {ino:?}: {e}"))?;
                if got != *payload {
                    return Err(format!("read {ino:?}: wrong bytes"));
                }
            }
            Ok::<_, String>(client)
        }));
    }
    let mut readers = Vec::new();
    for task in tasks {
        readers.push(task.await.map_err(|e| e.to_string())??);
    }
    let read_secs = SimClock.now().saturating_since(began).as_secs_f64();

    // Rebuild: node 1 is lost for good and declared dead at once.
    let lost = NodeId(1);
    cluster.kill(lost);
    map.lock().expect("data map").declare_dead(&[lost]);
    let began = SimClock.now();
    let survivors: Vec<NodeId> = placement_nodes.iter().map(|n| n.id).filter(|&id| id != lost).collect();
    let probe = NodeId(9_998);
    cluster.add_node(NodeSpec { id: probe, rack: u32::MAX, disks: 0 }, |_env| std::future::pending());
    let io_net = cluster.network().endpoint_on(tessera_data::data_endpoint(probe), probe, u32::MAX);
    let mut io = StripeIo::new(SimClock, io_net, io_config(), rng.next_u64() >> 1);
    let (stripes_rebuilt, rebuilders, rebuild_secs) = cluster
        .spawn_on(probe, async move {
            let mut base: BTreeMap<NodeId, u64> = BTreeMap::new();
            loop {
                SimClock.sleep(Duration::from_millis(100)).await;
                let statuses = io.status(&survivors).await;
                let mut done = true;
                let (mut found, mut rebuilt, mut busy) = (0, 0, 0);
                for (id, status) in survivors.iter().zip(statuses) {
                    let Ok(s) = status else {
                        done = false;
                        continue;
                    };
                    let first = *base.entry(*id).or_insert(s.rebuild.passes);
                    done &= s.rebuild.idle && s.rebuild.passes >= first + 2;
                    found += s.rebuild.stripes_found;
                    rebuilt += s.rebuild.stripes_done;
                    busy += u64::from(s.rebuild.stripes_done > 0);
                }
                if done && found == rebuilt {
                    let secs = SimClock.now().saturating_since(began).as_secs_f64();
                    return Ok::<_, String>((rebuilt, busy, secs));
                }
                if SimClock.now().saturating_since(began) > Duration::from_secs(1_800) {
                    return Err(format!("rebuild not done after 30 min: {rebuilt} of {found} stripes"));
                }
            }
        })
        .await
        .map_err(|e| e.to_string())??;
    drop(readers);
    Ok(DataScaleResult {
        nodes,
        racks: nodes / per_rack,
        shards,
        clients,
        bytes,
        write_mb_per_sec: bytes as f64 / 1e6 / write_secs,
        read_mb_per_sec: bytes as f64 / 1e6 / read_secs,
        stripes_rebuilt,
        rebuild_secs,
        rebuilders,
    })
}
