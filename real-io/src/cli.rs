//! The `tessera` command line: the node (`tessera node`), a local cluster (`tessera cluster up|down`),
//! and the admin and file commands that work against any cluster (`status`, `fs`, `put`, `get`, `ls`,
//! `rm`, `mkdir`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use tessera_env::NodeId;
use tessera_meta::FileType;

use crate::client::{CliError, ClusterClient, ClusterSource, ListEntry};
use crate::local::{self, UpOptions};
use crate::node::spec::{NodeConfig, ProtectionSpec};

/// Default local cluster directory.
pub const DEFAULT_DIR: &str = "./tessera-data";

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: a scale-out distributed file system.",
    long_about = "Tessera: a scale-out distributed file system.\n\n\
        Start a local cluster with `tessera cluster up`; every other command finds it through the same\n\
        --dir (default ./tessera-data), or reaches any cluster with --cluster HOST:PORT. File commands work\n\
        in file system `default` unless --fs NAME is given.",
    after_help = "Examples:\n  tessera cluster up                      # 6 nodes in 3 racks under ./tessera-data, with a demo\n  \
tessera status\n  tessera mkdir -p /data && tessera put ./file /data/file && tessera ls /data\n  \
tessera get /data/file ./copy\n  tessera bench mdtest-easy --target cluster:127.0.0.1:7101 --load 4 --verify\n  \
tessera cluster down\n\nMore: docs/OPERATIONS.md"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one storage node (the production server process) from its config file.
    Node {
        /// The node's config (node.toml): its member id, listen address, drives, logs, metrics.
        #[arg(long)]
        config: PathBuf,
    },
    /// Start or stop a local multi-process cluster on loopback.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Show the nodes, racks, shards, capacity and rebuild progress.
    Status(Target),
    /// Create, list or delete file systems.
    #[command(subcommand)]
    Fs(FsCommand),
    /// Copy a local file into the cluster (replacing what is at PATH).
    #[command(after_help = "Example: tessera mkdir -p /isos && tessera put ./big.iso /isos/big.iso")]
    Put {
        /// The local file to copy.
        local: PathBuf,
        /// Where it goes in the file system (absolute; the parent directory must exist). It appears there
        /// only when the whole copy is in: the bytes go to a temporary name that is then renamed.
        path: String,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Copy a file out of the cluster into a local file.
    #[command(after_help = "Example: tessera get /isos/big.iso ./copy.iso")]
    Get {
        /// The file in the file system (absolute path).
        path: String,
        /// The local file to write (replaced only once the whole copy is in).
        local: PathBuf,
        #[command(flatten)]
        at: FsTarget,
    },
    /// List a directory (or show one file).
    Ls {
        /// The directory or file (absolute path in the file system).
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Remove a file, or a directory tree with -r.
    Rm {
        /// The file or directory (absolute path in the file system).
        path: String,
        /// Remove a directory and everything below it.
        #[arg(short, long)]
        recursive: bool,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Run a workload (SWBUILD-, EDA-, VDA-, IO500-like) against a cluster (--target cluster:HOST:PORT)
    /// or any directory (--target dir:PATH); `tessera bench --help` for the options.
    Bench(tessera_workloads::cli::BenchArgs),
    /// Mount a file system at a local directory (FUSE): every program can then use it.
    #[command(after_help = "Examples:\n  mkdir -p /mnt/tessera && tessera mount --background /mnt/tessera\n  \
tessera mount --cluster 10.0.0.5:7101 --fs projects /mnt/projects   # in the foreground; Ctrl-C unmounts\n  \
tessera unmount /mnt/tessera\n\n\
Consistency: close-to-open. Once a program closes a file (every byte written back), a program on any mount\n\
that opens it afterwards reads those bytes. Names and attributes may be cached up to --attr-timeout-ms.")]
    Mount(MountArgs),
    /// Unmount a `tessera mount` (refused, naming the processes, while files there are in use).
    Unmount {
        /// The mount point.
        mountpoint: PathBuf,
        /// Detach now even if busy: the mount goes away when the last user is done.
        #[arg(long)]
        lazy: bool,
    },
    /// Make a directory.
    Mkdir {
        /// The new directory (absolute path in the file system).
        path: String,
        /// Make missing parents too; an existing directory is not an error.
        #[arg(short, long)]
        parents: bool,
        #[command(flatten)]
        at: FsTarget,
    },
}

#[derive(Debug, Args)]
pub struct MountArgs {
    #[command(flatten)]
    pub at: FsTarget,
    /// Return once the mount is live and keep serving in a background process (its log: --log-file).
    #[arg(long)]
    pub background: bool,
    /// How long the kernel may reuse names and attributes without asking the cluster (milliseconds; 0:
    /// ask every time). File contents are always revalidated at open.
    #[arg(long, default_value_t = 1_000)]
    pub attr_timeout_ms: u64,
    /// Cluster clients serving requests in parallel (each with its own connections), 1..=64.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Where a background mount logs (default: a file under the temporary directory, printed at start).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// The directory to mount on (must exist).
    pub mountpoint: PathBuf,
}

impl MountArgs {
    /// The request `tessera mount` serves; `argv` is this command line (re-run by --background).
    pub fn request(&self, argv: Vec<String>) -> crate::fuse::MountRequest {
        crate::fuse::MountRequest {
            source: self.at.target.source(),
            fs: self.at.fs.clone(),
            mountpoint: self.mountpoint.clone(),
            background: self.background,
            attr_timeout_ms: self.attr_timeout_ms,
            workers: self.workers,
            log_file: self.log_file.clone(),
            args: argv.into_iter().filter(|a| a != "--background").collect(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a local cluster in the background (creating it on first use), make the file system
    /// `default` and run a short demo. Re-running it starts the nodes of an existing cluster that are
    /// not running.
    Up(UpArgs),
    /// Stop the local cluster's nodes (SIGTERM, then SIGKILL after 10 s). The data stays.
    Down {
        /// The local cluster's directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory holding the cluster file, the node configs, drives and logs.
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Storage nodes (processes), 3..=64 (a new cluster only).
    #[arg(long, default_value_t = 6)]
    pub nodes: u32,
    /// Failure domains the nodes are spread over, at least 3 (a new cluster only).
    #[arg(long, default_value_t = 3)]
    pub racks: u32,
    /// File data protection: N+K erasure coding (e.g. 4+2, needs N+K racks) or C copies (e.g. "2 copies").
    /// Default: 4+2 with 7 or more racks, else one copy fewer than the racks (at most 3).
    #[arg(long, value_parser = ProtectionSpec::parse)]
    pub protection: Option<ProtectionSpec>,
    /// Metadata shards per node.
    #[arg(long, default_value_t = 4)]
    pub shards_per_node: u32,
    /// Node i listens on BASE+i and serves metrics on BASE+100+i.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Size of each node's data drive (a sparse file; the file system must have room for all of them),
    /// e.g. 1GiB, 512MiB.
    #[arg(long, default_value = "512MiB", value_parser = parse_bytes)]
    pub drive_size: u64,
    /// A node silent this long is declared dead and its data rebuilt elsewhere (milliseconds).
    #[arg(long, default_value_t = 5_000)]
    pub dead_after_ms: u64,
    /// Skip the demo.
    #[arg(long)]
    pub no_demo: bool,
}

/// Which cluster a command talks to.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// A local cluster's directory.
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Any node of a cluster (HOST:PORT); overrides --dir.
    #[arg(long)]
    pub cluster: Option<String>,
}

impl Target {
    pub fn source(&self) -> ClusterSource {
        match &self.cluster {
            Some(address) => ClusterSource::Address(address.clone()),
            None => ClusterSource::Dir(self.dir.clone()),
        }
    }
}

/// A cluster and a file system in it.
#[derive(Debug, Args, Clone)]
pub struct FsTarget {
    #[command(flatten)]
    pub target: Target,
    /// The file system the path is in.
    #[arg(long, default_value = "default")]
    pub fs: String,
}

#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// Make a new, empty file system.
    Create {
        /// Its name: one path component (it becomes the directory /NAME of the global namespace).
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the file systems.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a file system and everything in it.
    Delete {
        /// The file system's name.
        name: String,
        /// Required: deleting a file system cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// `1GiB`, `512MiB`, `4096` (bytes).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) =
        [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
            .iter()
            .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
            .unwrap_or((t, 1));
    let n: u64 = num.trim().parse().map_err(|_| format!("{text:?} is not a size (e.g. 1GiB, 512MiB, 65536)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too large"))
}

/// `1.5 GiB`, `12.0 MiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    let units = [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in units {
        if bytes >= size {
            return format!("{:.1} {name}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

/// The multi-thread runtime a client-side command runs on.
pub fn client_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Local { what: "cannot start the async runtime".into(), source })
}

/// Run a client-side command on a fresh multi-thread runtime. Returns the process exit code.
pub fn run_client(command: Command) -> Result<(), CliError> {
    let runtime = client_runtime()?;
    runtime.block_on(client_command(command))
}

async fn connect_fs(at: &FsTarget) -> Result<ClusterClient, CliError> {
    let mut client = ClusterClient::connect(&at.target.source()).await?;
    client.enter_fs(&at.fs).await?;
    Ok(client)
}

fn progress_bytes(label: &str, total: u64) -> impl FnMut(u64) {
    let label = label.to_string();
    let start = Instant::now();
    let mut last = Instant::now();
    move |done| {
        if last.elapsed() >= Duration::from_secs(1) || done == total {
            last = Instant::now();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
            eprint!("\r{label}: {} of {} ({}/s)   ", human_bytes(done), human_bytes(total), human_bytes(rate as u64));
            if done == total {
                eprintln!();
            }
        }
    }
}

async fn client_command(command: Command) -> Result<(), CliError> {
    match command {
        Command::Status(target) => status(&target).await,
        Command::Fs(FsCommand::Create { name, target }) => {
            let mut c = ClusterClient::connect(&target.source()).await?;
            c.fs_create(&name).await?;
            println!("created file system {name}");
            Ok(())
        }
        Command::Fs(FsCommand::List { target }) => {
            let mut c = ClusterClient::connect(&target.source()).await?;
            let list = c.fs_list().await?;
            println!("{:<24} {:>10}", "NAME", "ENTRIES");
            for e in list.iter().filter(|e| e.kind == FileType::Directory) {
                println!("{:<24} {:>10}", e.name, e.size_bytes);
            }
            Ok(())
        }
        Command::Fs(FsCommand::Delete { name, yes, target }) => {
            if !yes {
                return Err(CliError::Usage(format!(
                    "deleting file system {name:?} removes everything in it and cannot be undone: add --yes"
                )));
            }
            let mut c = ClusterClient::connect(&target.source()).await?;
            let mut last = Instant::now();
            let removed = c
                .fs_delete(&name, &mut |n| {
                    if last.elapsed() >= Duration::from_secs(1) {
                        last = Instant::now();
                        eprint!("\rremoved {n} entries");
                    }
                })
                .await?;
            eprintln!();
            println!("deleted file system {name} ({removed} entries)");
            Ok(())
        }
        Command::Put { local, path, at } => {
            let size = std::fs::metadata(&local)
                .map_err(|source| CliError::Local { what: format!("cannot read {}", local.display()), source })?
                .len();
            let mut c = connect_fs(&at).await?;
            let start = Instant::now();
            let mut progress = progress_bytes("put", size);
            let n = c.put(&local, &path, &mut progress).await?;
            println!(
                "{} -> {}:{path} ({}, {:.2} s)",
                local.display(),
                at.fs,
                human_bytes(n),
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Get { path, local, at } => {
            let mut c = connect_fs(&at).await?;
            let size = c.stat(&path).await?.size;
            let start = Instant::now();
            let mut progress = progress_bytes("get", size);
            let n = c.get(&path, &local, &mut progress).await?;
            println!(
                "{}:{path} -> {} ({}, {:.2} s)",
                at.fs,
                local.display(),
                human_bytes(n),
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Ls { path, at } => {
            let mut c = connect_fs(&at).await?;
            print_listing(&c.list(&path).await?);
            Ok(())
        }
        Command::Rm { path, recursive, at } => {
            let mut c = connect_fs(&at).await?;
            let n = c.remove(&path, recursive, &mut |_| {}).await?;
            println!("removed {n} entries");
            Ok(())
        }
        Command::Mkdir { path, parents, at } => {
            let mut c = connect_fs(&at).await?;
            c.mkdir(&path, parents).await
        }
        Command::Node { .. }
        | Command::Cluster(_)
        | Command::Bench(_)
        | Command::Mount(_)
        | Command::Unmount { .. } => {
            unreachable!("handled by the binary")
        }
    }
}

fn print_listing(entries: &[ListEntry]) {
    for e in entries {
        let kind = match e.kind {
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::Regular => '-',
            _ => '?',
        };
        let suffix = if e.kind == FileType::Directory { "/" } else { "" };
        println!("{kind} {:>12}  {}{suffix}", e.size_bytes, e.name);
    }
}

/// `tessera status`.
pub async fn status(target: &Target) -> Result<(), CliError> {
    let mut c = ClusterClient::connect(&target.source()).await?;
    let spec = c.spec.clone();
    let ids: Vec<NodeId> = spec.members.iter().map(|m| NodeId(m.id)).collect();
    let data = c.data_status(&ids).await;
    println!(
        "cluster {:032x}: {} nodes in {} racks, {} metadata shards x{}, data protection {}",
        spec.cluster_id,
        spec.members.len(),
        spec.racks().len(),
        spec.shards,
        spec.shard_replication,
        spec.protection
    );
    println!(
        "{:<5} {:<5} {:<22} {:<12} {:>7} {:>5} {:>9} {:>21}",
        "NODE", "RACK", "ADDRESS", "STATE", "SHARDS", "LEADS", "CHUNKS", "USED / CAPACITY"
    );
    let (mut up, mut used, mut cap, mut leads) = (0, 0u64, 0u64, 0u64);
    let mut rebuild = tessera_data::wire::RebuildProgress { idle: true, ..Default::default() };
    let mut declared_dead = std::collections::BTreeSet::new();
    for (m, d) in spec.members.iter().zip(&data) {
        let st = c.node_status(NodeId(m.id), 1_500).await;
        let state = match (&st, d) {
            (Some(_), Some(d)) if d.failed_drives > 0 => format!("up, {} drive(s) failed", d.failed_drives),
            (Some(_), _) => "up".to_string(),
            (None, _) => "unreachable".to_string(),
        };
        if let Some(s) = &st {
            up += 1;
            leads += s.shards_led;
            declared_dead.extend(s.peers.iter().filter(|p| p.dead).map(|p| p.id));
        }
        if let Some(d) = d {
            used += d.used_bytes;
            cap += d.used_bytes + d.free_bytes;
            rebuild.add_rebuild(&d.rebuild);
        }
        println!(
            "{:<5} {:<5} {:<22} {:<12} {:>7} {:>5} {:>9} {:>21}",
            m.id,
            m.rack,
            m.address,
            state,
            st.as_ref().map_or("-".into(), |s| s.shards_hosted.to_string()),
            st.as_ref().map_or("-".into(), |s| s.shards_led.to_string()),
            d.as_ref().map_or("-".into(), |d| d.chunks.to_string()),
            d.as_ref().map_or("-".into(), |d| format!(
                "{} / {}",
                human_bytes(d.used_bytes),
                human_bytes(d.used_bytes + d.free_bytes)
            )),
        );
    }
    println!("nodes up: {up} of {}; shard leaders known: {leads} of {}", spec.members.len(), spec.shards);
    if !declared_dead.is_empty() {
        println!("declared dead by some node: {declared_dead:?}");
    }
    println!("capacity: {} used of {}", human_bytes(used), human_bytes(cap));
    println!(
        "rebuild: {} of {} damaged stripes rebuilt, {} rebuilt, {} unrecoverable, {}",
        rebuild.stripes_done,
        rebuild.stripes_found,
        human_bytes(rebuild.bytes_rebuilt),
        rebuild.stripes_unrecoverable,
        if rebuild.idle { "idle" } else { "in progress" }
    );
    Ok(())
}

/// `tessera node --config FILE`: validate, start, serve until SIGTERM/SIGINT or a fatal drive error.
pub fn run_node(config: &Path) -> Result<(), String> {
    let loaded = NodeConfig::load(config).map_err(|e| e.to_string())?;
    crate::observe::init_logging(&loaded.config.log_level, loaded.config.log_file.as_deref())
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tessera-node")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let mut node = crate::node::run::start_node(&loaded).await.map_err(|e| e.to_string())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        tokio::select! {
            _ = term.recv() => {
                tracing::info!(node = %node.id, "SIGTERM: stopping");
                node.stop();
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!(node = %node.id, "SIGINT: stopping");
                node.stop();
                Ok(())
            }
            e = node.wait() => {
                tracing::error!(node = %node.id, error = %e, "node stopped");
                Err(e.to_string())
            }
        }
    })?;
    // Tasks still blocked in drive IO are abandoned: every acknowledged write is durable already.
    Ok(())
}

/// `tessera cluster up`.
pub fn cluster_up(args: &UpArgs) -> Result<(), CliError> {
    let binary = std::env::current_exe()
        .map_err(|source| CliError::Local { what: "cannot find the tessera binary".into(), source })?;
    let options = UpOptions {
        dir: args.dir.clone(),
        nodes: args.nodes,
        racks: args.racks,
        protection: args.protection,
        shards_per_node: args.shards_per_node,
        base_port: args.base_port,
        drive_bytes: args.drive_size,
        dead_after_ms: args.dead_after_ms,
        binary: binary.clone(),
    };
    if !args.dir.join("cluster.toml").exists() {
        let created_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let cluster_id = (u128::from(crate::rng::os_seed()) << 64) | u128::from(crate::rng::os_seed()) | 1;
        let spec = local::create(&options, cluster_id, created_ns)?;
        println!(
            "created cluster {:032x} in {}: {} nodes, {} racks, {} shards, protection {}",
            spec.cluster_id,
            args.dir.display(),
            spec.members.len(),
            spec.racks().len(),
            spec.shards,
            spec.protection
        );
    } else {
        println!("using the existing cluster in {} (sizing options apply only to a new cluster)", args.dir.display());
    }
    let (spec, nodes) = local::local_nodes(&args.dir)?;
    let mut children = Vec::new();
    for node in &nodes {
        if let Some(pid) = local::running_pid(node) {
            println!("node {} already running (pid {pid})", node.id);
            continue;
        }
        let child = local::spawn_node(&binary, node)?;
        println!("started node {} (pid {}), log {}", node.id, child.id(), node.log.display());
        children.push((node.clone(), child));
    }
    let runtime = client_runtime()?;
    runtime.block_on(async {
        let mut client = ClusterClient::connect(&ClusterSource::Dir(args.dir.clone())).await?;
        eprint!("waiting for every metadata shard to elect a leader ...");
        let start = Instant::now();
        loop {
            for (node, child) in &mut children {
                if let Ok(Some(exit)) = child.try_wait() {
                    eprintln!();
                    return Err(CliError::Failed {
                        path: format!("node {}", node.id),
                        message: format!(
                            "exited ({exit}) while starting; last lines of {}:\n{}",
                            node.log.display(),
                            local::log_tail(&node.log, 15)
                        ),
                    });
                }
            }
            match client.wait_ready(Duration::from_secs(2)).await {
                Ok(()) => break,
                Err(e) if start.elapsed() > Duration::from_secs(120) => {
                    eprintln!();
                    return Err(CliError::Failed { path: "cluster".into(), message: format!("not ready after 120 s: {e}") });
                }
                Err(_) => eprint!("."),
            }
        }
        eprintln!(" ready in {:.1} s", start.elapsed().as_secs_f64());
        match client.fs_create("default").await {
            Ok(()) => println!("created file system default"),
            Err(CliError::Usage(m)) if m.contains("exists already") => {}
            Err(e) => return Err(e),
        }
        if !args.no_demo {
            demo(&mut client).await?;
        }
        println!(
            "cluster up: {} nodes; try `tessera status --dir {dir}`, `tessera ls / --dir {dir}`; stop with `tessera cluster down --dir {dir}`",
            spec.members.len(),
            dir = args.dir.display()
        );
        Ok(())
    })
}

/// Writes, lists and reads back a few files in `default:/demo`, checking every byte.
async fn demo(client: &mut ClusterClient) -> Result<(), CliError> {
    client.enter_fs("default").await?;
    client.mkdir("/demo", true).await?;
    println!("demo: writing files into default:/demo");
    let files: [(&str, usize); 3] = [("hello.txt", 0), ("one-mib.bin", 1 << 20), ("eight-mib.bin", 8 << 20)];
    for (content, (name, size)) in (1u64..).zip(files) {
        let path = format!("/demo/{name}");
        let bytes = if size == 0 {
            b"hello from tessera\n".to_vec()
        } else {
            // The workloads' content pattern: byte i is a fixed function of (content, i).
            tessera_workloads::op::content_bytes(content, 0, size)
        };
        match client.remove(&path, false, &mut |_| {}).await {
            Ok(_) | Err(CliError::Posix { errno: tessera_meta::Errno::ENOENT, .. }) => {}
            Err(e) => return Err(e),
        }
        let start = Instant::now();
        client.create_file(&path, &bytes).await?;
        println!("  wrote {path} ({}) in {:.3} s", human_bytes(bytes.len() as u64), start.elapsed().as_secs_f64());
        let back = client.read_file(&path, 1 << 30).await?;
        if back != bytes {
            return Err(CliError::Failed { path, message: "read back different bytes".into() });
        }
    }
    println!("demo: ls default:/demo");
    print_listing(&client.list("/demo").await?);
    println!("demo: every file read back byte for byte");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }
}
