//! A local multi-process cluster on loopback (`tessera cluster up` / `down`): one `tessera node` process
//! per member, file-backed drives under one directory, started in the background.
//!
//! Layout of the directory (default `./tessera-data`):
//! ```text
//! cluster.toml            the cluster file every node and client reads
//! node1/node.toml         node 1's config
//! node1/meta.img          its metadata drive, node1/data0.img its data drive
//! node1/node.log          its logs (stdout and stderr of the process)
//! node1/node.pid          its process id while it runs
//! ```

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_config::model::Protection;

use crate::client::CliError;
use crate::node::spec::{ClusterSpec, DriveRole, DriveSpec, MemberSpec, NodeConfig, ProtectionSpec, write_atomically};

const MIB: u64 = 1024 * 1024;
/// Size of each local node's metadata drive (the shards' Raft logs; a sparse file).
pub const META_DRIVE_BYTES: u64 = 128 * MIB;
/// Most nodes `cluster up` starts on one machine.
pub const LOCAL_NODES_MAX: u32 = 64;
/// How long `cluster down` waits for a node to exit after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What `tessera cluster up` builds when the directory holds no cluster yet.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub nodes: u32,
    pub racks: u32,
    /// `None`: the widest protection that still leaves a spare rack for rebuild (see
    /// [`default_protection`]).
    pub protection: Option<ProtectionSpec>,
    pub shards_per_node: u32,
    /// Node `i` listens on `base_port + i`, its metrics on `base_port + 100 + i`.
    pub base_port: u16,
    pub drive_bytes: u64,
    pub dead_after_ms: u64,
    /// The `tessera` binary to run as each node.
    pub binary: PathBuf,
}

/// The protection a local cluster of `racks` racks gets by default: erasure coding 4+2 needs 6 racks for
/// its chunks and a 7th to rebuild into after a rack is lost; with fewer racks, as many copies as leave
/// one rack spare (at least 2).
pub fn default_protection(racks: u32) -> Protection {
    if racks >= 7 {
        Protection::ErasureCoded { data: 4, parity: 2 }
    } else {
        Protection::Replicated { copies: racks.saturating_sub(1).clamp(2, 3) as u8 }
    }
}

/// The cluster file and node configs for `options` (nothing written).
pub fn plan(
    options: &UpOptions,
    cluster_id: u128,
    created_unix_ns: u64,
) -> Result<(ClusterSpec, Vec<NodeConfig>), CliError> {
    if options.nodes < 3 || options.nodes > LOCAL_NODES_MAX {
        return Err(CliError::Usage(format!("--nodes must be 3..={LOCAL_NODES_MAX}, got {}", options.nodes)));
    }
    if options.racks < 3 || options.racks > options.nodes {
        return Err(CliError::Usage(format!(
            "--racks must be at least 3 (one per metadata replica) and at most --nodes ({}), got {}",
            options.nodes, options.racks
        )));
    }
    if u32::from(options.base_port) + 100 + options.nodes > u32::from(u16::MAX) {
        return Err(CliError::Usage(format!(
            "--base-port {} leaves no room for {} nodes",
            options.base_port, options.nodes
        )));
    }
    let protection = options.protection.unwrap_or(ProtectionSpec(default_protection(options.racks)));
    let members: Vec<MemberSpec> = (1..=options.nodes)
        .map(|i| MemberSpec {
            id: u64::from(i),
            rack: (i - 1) % options.racks,
            address: format!("127.0.0.1:{}", u32::from(options.base_port) + i),
        })
        .collect();
    let shards = (options.nodes * options.shards_per_node).clamp(1, u32::from(u16::MAX));
    let spec = ClusterSpec {
        cluster_id,
        created_unix_ns,
        shards: shards as u16,
        shard_replication: 3,
        protection,
        inline_max_bytes: 16 * 1024,
        dead_after_ms: options.dead_after_ms,
        members,
    };
    spec.validate(&options.dir.join("cluster.toml"))?;
    let configs = spec
        .members
        .iter()
        .map(|m| NodeConfig {
            node_id: m.id,
            cluster: PathBuf::from("../cluster.toml"),
            listen: m.address.clone(),
            metrics_listen: Some(format!("127.0.0.1:{}", u64::from(options.base_port) + 100 + m.id)),
            log_level: "info".to_string(),
            log_file: None,
            drives: vec![
                DriveSpec { path: "meta.img".into(), role: DriveRole::Meta, size_bytes: Some(META_DRIVE_BYTES) },
                DriveSpec { path: "data0.img".into(), role: DriveRole::Data, size_bytes: Some(options.drive_bytes) },
            ],
        })
        .collect();
    Ok((spec, configs))
}

/// One node of a local cluster directory.
#[derive(Clone, Debug)]
pub struct LocalNode {
    pub id: u64,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub pid_file: PathBuf,
    pub log: PathBuf,
}

/// The nodes of the local cluster in `dir` (from its cluster file).
pub fn local_nodes(dir: &Path) -> Result<(ClusterSpec, Vec<LocalNode>), CliError> {
    let file = dir.join("cluster.toml");
    if !file.exists() {
        return Err(CliError::NoLocalCluster { dir: dir.to_path_buf(), cluster_file: file });
    }
    let spec = ClusterSpec::load(&file)?;
    let nodes = spec
        .members
        .iter()
        .map(|m| {
            let d = dir.join(format!("node{}", m.id));
            LocalNode {
                id: m.id,
                config: d.join("node.toml"),
                pid_file: d.join("node.pid"),
                log: d.join("node.log"),
                dir: d,
            }
        })
        .collect();
    Ok((spec, nodes))
}

/// Write a new cluster directory for `options`. Refuses a directory that already holds a cluster.
pub fn create(options: &UpOptions, cluster_id: u128, created_unix_ns: u64) -> Result<ClusterSpec, CliError> {
    let file = options.dir.join("cluster.toml");
    if file.exists() {
        return Err(CliError::Usage(format!("{} already holds a cluster", options.dir.display())));
    }
    let (spec, configs) = plan(options, cluster_id, created_unix_ns)?;
    // File drives are sparse: a host file system that cannot back them fails writes later, and a drive
    // that failed a write is fenced for good. Refuse up front instead.
    let needed: u64 = configs.iter().flat_map(|c| &c.drives).filter_map(|d| d.size_bytes).sum();
    let existing = options.dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("."));
    if let Some(free) = free_bytes(existing)
        && free < needed
    {
        return Err(CliError::Usage(format!(
            "the drives need {} MiB but the file system of {} has {} MiB free; use a smaller --drive-size or fewer --nodes",
            needed >> 20,
            options.dir.display(),
            free >> 20
        )));
    }
    for c in &configs {
        for port in [Some(&c.listen), c.metrics_listen.as_ref()].into_iter().flatten() {
            if let Err(e) = TcpListener::bind(port.as_str()) {
                return Err(CliError::Usage(format!(
                    "port {port} is not free ({e}); pick other ports with --base-port, or stop what uses it"
                )));
            }
        }
    }
    let local = |what: String| move |source| CliError::Local { what, source };
    std::fs::create_dir_all(&options.dir).map_err(local(format!("cannot create {}", options.dir.display())))?;
    for c in &configs {
        let d = options.dir.join(format!("node{}", c.node_id));
        std::fs::create_dir_all(&d).map_err(local(format!("cannot create {}", d.display())))?;
        write_atomically(&d.join("node.toml"), &c.to_toml())?;
    }
    // The cluster file last: its presence marks a complete directory.
    write_atomically(&file, &spec.to_toml())?;
    Ok(spec)
}

/// Whether process `pid` is alive and is a `tessera node` of `config`.
pub fn node_process_alive(pid: i32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let wanted = config.to_string_lossy();
    args.iter().any(|a| a == "node")
        && args.iter().any(|a| a.ends_with(wanted.as_ref()) || wanted.ends_with(a.as_str()))
        && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// The pid recorded for `node`, if that process still runs as that node.
pub fn running_pid(node: &LocalNode) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(&node.pid_file).ok()?.trim().parse().ok()?;
    node_process_alive(pid, &node.config).then_some(pid)
}

/// Start `node` as a background process of `binary` (its own process group, so a terminal's Ctrl-C
/// does not reach it), output appended to its log. Records its pid.
pub fn spawn_node(binary: &Path, node: &LocalNode) -> Result<Child, CliError> {
    use std::os::unix::process::CommandExt;
    let local = |what: String| move |source| CliError::Local { what, source };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .map_err(local(format!("cannot open {}", node.log.display())))?;
    let err = log.try_clone().map_err(local(format!("cannot open {}", node.log.display())))?;
    let child = Command::new(binary)
        .arg("node")
        .arg("--config")
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(local(format!("cannot start {}", binary.display())))?;
    write_atomically(&node.pid_file, &format!("{}\n", child.id()))?;
    Ok(child)
}

/// Stop every running node of the cluster in `dir`: SIGTERM, then SIGKILL after [`STOP_GRACE`].
/// Returns how many were running.
pub fn stop_all(dir: &Path, report: &mut dyn FnMut(&str)) -> Result<usize, CliError> {
    let (_, nodes) = local_nodes(dir)?;
    let running: Vec<(LocalNode, i32)> = nodes.into_iter().filter_map(|n| running_pid(&n).map(|p| (n, p))).collect();
    for (node, pid) in &running {
        report(&format!("stopping node {} (pid {pid})", node.id));
        signal(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    for (node, pid) in &running {
        while node_process_alive(*pid, &node.config) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if node_process_alive(*pid, &node.config) {
            report(&format!("node {} did not stop within {} s: SIGKILL", node.id, STOP_GRACE.as_secs()));
            signal(*pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_file(&node.pid_file);
    }
    Ok(running.len())
}

/// Bytes available to an unprivileged user on the file system holding `path` (`None` if unknown).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: statvfs(3) writes only into the zeroed struct we own; the path is a valid C string.
    let (rc, stat) = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        let rc = libc::statvfs(c_path.as_ptr(), &mut stat);
        (rc, stat)
    };
    (rc == 0).then(|| stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Send `sig` to `pid` (no effect if it is gone).
pub fn signal(pid: i32, sig: i32) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(nodes: u32, racks: u32) -> UpOptions {
        UpOptions {
            dir: PathBuf::from("/tmp/x"),
            nodes,
            racks,
            protection: None,
            shards_per_node: 4,
            base_port: 7100,
            drive_bytes: 256 * MIB,
            dead_after_ms: 5_000,
            binary: PathBuf::from("tessera"),
        }
    }

    #[test]
    fn a_local_plan_spreads_members_over_racks_and_keeps_a_spare_rack() {
        let (spec, configs) = plan(&options(6, 3), 7, 1).expect("plan");
        assert_eq!(spec.racks().len(), 3);
        assert_eq!(spec.protection.0, Protection::Replicated { copies: 2 });
        assert_eq!(configs.len(), 6);
        assert_eq!(configs[5].listen, "127.0.0.1:7106");
        assert_eq!(default_protection(8), Protection::ErasureCoded { data: 4, parity: 2 });
        assert!(plan(&options(6, 2), 7, 1).unwrap_err().to_string().contains("--racks"));
        let mut o = options(6, 6);
        o.protection = Some(ProtectionSpec::parse("4+2").unwrap());
        assert!(plan(&o, 7, 1).is_ok());
        o.racks = 5;
        assert!(plan(&o, 7, 1).unwrap_err().to_string().contains("distinct racks"));
    }
}
