//! Multi-process tests of the `tessera` binary: a local cluster of real node processes on loopback.
//!
//! - `sigkill_a_node_then_a_rack_under_writes`: a 6-node, 3-rack cluster (2 copies) under a write load;
//!   one node is SIGKILLed, declared dead and its data rebuilt, then restarted on the same drives (it
//!   rejoins and serves); then both nodes of another rack are SIGKILLed. Every acknowledged file must
//!   read back byte for byte, and rebuild must complete (no damaged stripe left, none unrecoverable).
//! - bad input: a drive of another cluster, an invalid config, a port in use, an unreachable cluster.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tessera_env::NodeId;
use tessera_real_io::client::{CliError, ClusterClient, ClusterSource};

mod common;
use common::{free_base_port, kill, tessera, text, up};

/// Deterministic content of file `i` (the workloads' content pattern).
fn content(i: u64, size: usize) -> Vec<u8> {
    tessera_workloads::op::content_bytes(i, 0, size)
}

fn size_of(i: u64) -> usize {
    [3_000, 200_000, 1_500_000][(i % 3) as usize]
}

struct Load {
    client: ClusterClient,
    next: u64,
    acked: Vec<u64>,
    failed: u64,
}

impl Load {
    /// Write files until `until`; remember every acknowledged one.
    async fn run(&mut self, until: Instant) {
        while Instant::now() < until {
            let i = self.next;
            self.next += 1;
            match self.client.create_file(&format!("/load/f{i}"), &content(i, size_of(i))).await {
                Ok(_) => self.acked.push(i),
                Err(_) => self.failed += 1,
            }
        }
    }

    async fn verify(&mut self) {
        for &i in &self.acked {
            let path = format!("/load/f{i}");
            let back =
                self.client.read_file(&path, 1 << 30).await.unwrap_or_else(|e| panic!("acknowledged {path}: {e}"));
            assert!(back == content(i, size_of(i)), "acknowledged {path} read back different bytes");
        }
    }
}

/// Wait until the live nodes agree `dead` are dead and their rebuild is done.
async fn wait_rebuilt(client: &mut ClusterClient, dead: &[u64], limit: Duration) {
    let start = Instant::now();
    let live: Vec<u64> = client.spec.members.iter().map(|m| m.id).filter(|id| !dead.contains(id)).collect();
    loop {
        let mut done = true;
        let mut found = 0;
        let mut why = String::new();
        for &id in &live {
            match client.node_status(NodeId(id), 2_000).await {
                Some(s) => {
                    let declared: Vec<u64> = s.peers.iter().filter(|p| p.dead).map(|p| p.id).collect();
                    if dead.iter().any(|d| !declared.contains(d)) {
                        done = false;
                        why = format!("node {id} declares {declared:?} dead");
                    }
                    assert_eq!(s.rebuild.stripes_unrecoverable, 0, "node {id}: unrecoverable stripes");
                    found += s.rebuild.stripes_found;
                    if !s.rebuild.idle || s.rebuild.stripes_done < s.rebuild.stripes_found {
                        done = false;
                        why = format!("node {id} rebuild {:?}", s.rebuild);
                    }
                }
                None => {
                    done = false;
                    why = format!("node {id} does not answer");
                }
            }
        }
        if done && found > 0 {
            return;
        }
        assert!(start.elapsed() < limit, "rebuild not done after {limit:?}: {why}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn sigkill_a_node_then_a_rack_under_writes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let _down = up(&dir, &["--nodes", "6", "--racks", "3", "--dead-after-ms", "3000"]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = ClusterClient::connect(&ClusterSource::Dir(dir.clone())).await.expect("connect");
        client.enter_fs("default").await.expect("fs default");
        client.mkdir("/load", true).await.expect("mkdir");
        let mut load = Load { client, next: 0, acked: Vec::new(), failed: 0 };
        load.run(Instant::now() + Duration::from_secs(3)).await;
        assert!(!load.acked.is_empty(), "nothing written before the first kill");

        // One node: node 1 (rack 0).
        kill(&dir, 1);
        load.run(Instant::now() + Duration::from_secs(6)).await;
        let mut watcher = ClusterClient::connect(&ClusterSource::Dir(dir.clone())).await.expect("connect");
        wait_rebuilt(&mut watcher, &[1], Duration::from_secs(90)).await;
        load.verify().await;

        // Restart it on the same drives: it rejoins and serves.
        let out = tessera(&["cluster", "up", "--dir", dir.to_str().unwrap(), "--no-demo"]);
        assert!(out.status.success(), "restart: {}", text(&out));
        let start = Instant::now();
        while watcher.node_status(NodeId(1), 1_000).await.is_none_or(|s| s.shards_hosted == 0) {
            assert!(start.elapsed() < Duration::from_secs(30), "node 1 did not rejoin");
        }
        load.run(Instant::now() + Duration::from_secs(3)).await;

        // A whole rack: nodes 2 and 5 (rack 1).
        kill(&dir, 2);
        kill(&dir, 5);
        load.run(Instant::now() + Duration::from_secs(6)).await;
        load.client.refresh_live_nodes().await;
        wait_rebuilt(&mut watcher, &[2, 5], Duration::from_secs(120)).await;
        load.run(Instant::now() + Duration::from_secs(2)).await;
        load.verify().await;
        eprintln!("acknowledged {} files, {} writes failed (not acknowledged)", load.acked.len(), load.failed);
    });
}

#[test]
fn a_drive_of_another_cluster_is_refused_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let down_a = up(&a, &["--nodes", "3", "--racks", "3"]);
    drop(down_a);
    let down_b = up(&b, &["--nodes", "3", "--racks", "3"]);
    drop(down_b);
    // Point node 1 of cluster b at cluster a's metadata drive.
    let a_drive = a.join("node1/meta.img");
    let before = std::fs::read(&a_drive).expect("read drive");
    let config = b.join("node1/node.toml");
    let text_b = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text_b.replace("path = \"meta.img\"", &format!("path = {:?}", a_drive.display().to_string())),
    )
    .expect("write config");
    let out = tessera(&["node", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to cluster") && err.contains("refusing to start"), "{}", text(&out));
    assert!(std::fs::read(&a_drive).expect("read drive") == before, "the other cluster's drive was changed");
}

#[test]
fn bad_configs_ports_and_addresses_get_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let base = free_base_port(3);
    // A port in use.
    let _hold = TcpListener::bind(("127.0.0.1", base + 2)).expect("hold a port");
    let out = tessera(&[
        "cluster",
        "up",
        "--dir",
        dir.to_str().unwrap(),
        "--nodes",
        "3",
        "--racks",
        "3",
        "--base-port",
        &base.to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("port 127.0.0.1:{} is not free", base + 2)),
        "{}",
        text(&out)
    );
    assert!(!dir.join("cluster.toml").exists(), "a failed up left a cluster file");
    // Invalid protection for the racks.
    let out = tessera(&["cluster", "up", "--dir", dir.to_str().unwrap(), "--racks", "3", "--protection", "4+2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("distinct racks"), "{}", text(&out));
    // Drives larger than the host file system can back.
    let out = tessera(&[
        "cluster",
        "up",
        "--dir",
        dir.to_str().unwrap(),
        "--drive-size",
        "100000GiB",
        "--base-port",
        &base.to_string(),
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("MiB free"), "{}", text(&out));
    assert!(!dir.join("cluster.toml").exists(), "a refused up left a cluster file");
    // An invalid node config: a typo'd key.
    let bad = tmp.path().join("node.toml");
    std::fs::write(&bad, "node_idd = 1\n").expect("write");
    let out = tessera(&["node", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("node_idd"), "{}", text(&out));
    // No cluster in the directory; an unreachable cluster address.
    let out = tessera(&["status", "--dir", dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("tessera cluster up"), "{}", text(&out));
    let closed = free_base_port(1) + 1;
    let out = tessera(&["status", "--cluster", &format!("127.0.0.1:{closed}")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{closed}")), "{}", text(&out));
}

#[test]
fn a_full_cluster_answers_enospc_and_keeps_what_it_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let _down = up(&dir, &["--nodes", "3", "--racks", "3", "--drive-size", "64MiB"]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = ClusterClient::connect(&ClusterSource::Dir(dir.clone())).await.expect("connect");
        client.enter_fs("default").await.expect("fs");
        let mut stored = Vec::new();
        let mut refusal = None;
        for i in 0..200u64 {
            match client.create_file(&format!("/f{i}"), &content(i, 4 << 20)).await {
                Ok(_) => stored.push(i),
                Err(e) => {
                    refusal = Some(e);
                    break;
                }
            }
        }
        let refusal = refusal.expect("64 MiB drives filled up");
        assert!(matches!(refusal, CliError::Posix { errno: tessera_meta::Errno::ENOSPC, .. }), "not ENOSPC: {refusal}");
        eprintln!("full after {} files: {refusal}", stored.len());
        for i in stored {
            let back = client.read_file(&format!("/f{i}"), 1 << 30).await.expect("stored file");
            assert!(back == content(i, 4 << 20), "file {i} changed");
        }
    });
}

#[test]
fn a_cluster_stopped_and_started_again_serves_its_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("c");
    let dir_s = dir.to_str().expect("utf-8");
    let down = up(&dir, &["--nodes", "3", "--racks", "3"]);
    let file = tmp.path().join("in.bin");
    std::fs::write(&file, content(7, 3_000_000)).expect("write local file");
    let out = tessera(&["mkdir", "-p", "/keep", "--dir", dir_s]);
    assert!(out.status.success(), "{}", text(&out));
    let out = tessera(&["put", file.to_str().unwrap(), "/keep/in.bin", "--dir", dir_s]);
    assert!(out.status.success(), "{}", text(&out));
    // The nodes' metrics count the requests they served: chunk puts and metadata creates.
    let mut served = String::new();
    for id in 1..=3 {
        let config = std::fs::read_to_string(dir.join(format!("node{id}/node.toml"))).expect("node config");
        let metrics = config.lines().find_map(|l| l.strip_prefix("metrics_listen = ")).expect("metrics address");
        served.push_str(&http_get(metrics.trim_matches('"'), "/metrics"));
    }
    for (service, op) in [("data", "put"), ("meta", "create"), ("meta", "write")] {
        let pattern = format!("service=\"{service}\",op=\"{op}\",result=\"ok\"");
        assert!(
            served.lines().any(|l| l.starts_with("tessera_ops_total") && l.contains(&pattern) && !l.ends_with(" 0")),
            "no {service} {op} counted:\n{served}"
        );
    }
    // Graceful stop: SIGTERM to every node.
    let out = tessera(&["cluster", "down", "--dir", dir_s]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("stopped 3 nodes"), "{}", text(&out));
    // A stopped cluster is reported as such, quickly and clearly.
    let out = tessera(&["ls", "/", "--dir", dir_s]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("is the cluster running?"),
        "{}",
        text(&out)
    );
    // Started again on the same drives: the file is there, byte for byte.
    let out = tessera(&["cluster", "up", "--dir", dir_s, "--no-demo"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("using the existing cluster"),
        "{}",
        text(&out)
    );
    let back = tmp.path().join("out.bin");
    let out = tessera(&["get", "/keep/in.bin", back.to_str().unwrap(), "--dir", dir_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::read(&back).expect("read back") == content(7, 3_000_000), "the file changed across a restart");
    drop(down);
}

/// The body of `GET path` from `address` (HTTP/1.1, connection closed by the server).
fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics endpoint");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}
