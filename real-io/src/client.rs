//! The cluster client of the `tessera` command line (and, later, the gateways): connects to a real
//! cluster over the TCP transport and runs file-system operations through the same client library the
//! simulator tests (`tessera-meta`'s `MetaClient`, `tessera-data`'s `DataClient`).
//!
//! The global namespace: `/` lists the file systems, each a directory (`/default`). A path given with
//! `--fs NAME` is resolved inside that file system's directory.
//!
//! A client finds the cluster in one of two ways: a local cluster directory (its `cluster.toml`), or the
//! address of any node, which is asked for the cluster file over the admin endpoint.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tessera_data::client::{DataClient, DataClientConfig, DataPathError};
use tessera_data::data_endpoint;
use tessera_data::stripe_io::StripeIo;
use tessera_data::wire::DataStatus;
use tessera_env::{Clock, DetRng, NodeId, Rng};
use tessera_meta::client::{ClientConfig, ClientError, MetaClient, ShardDirectory};
use tessera_meta::{Attr, Credentials, DirEntry, Errno, FileType, InodeId};

use crate::clock::{RealClock, RealWallClock};
use crate::net::{TcpNet, Transport, TransportConfig};
use crate::node::admin::{ADMIN_ENDPOINT_BIT, AdminReply, AdminRequest, NodeStatus, ask};
use crate::node::run::io_config;
use crate::node::spec::{ClusterSpec, SpecError};
use crate::rng::os_seed;

const MIB: u64 = 1024 * 1024;
/// Bytes one `put` hands the data client at a time (bounds the client's memory; whole stripes).
pub const PUT_PIECE_BYTES: u64 = 16 * MIB;
/// Bytes one `get` reads at a time.
pub const GET_PIECE_BYTES: u64 = 16 * MIB;
/// How long an admin question waits for its answer.
const ADMIN_TIMEOUT_MS: u64 = 2_000;
/// Modes of what the command line creates.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
/// Longest file-system name (the config model's limit).
pub const FS_NAME_LEN_MAX_BYTES: usize = tessera_config::model::FS_NAME_LEN_MAX_BYTES;

/// The data client type over the real environment.
pub type RealDataClient = DataClient<RealClock, RealWallClock, TcpNet, DetRng>;

/// Where the client finds the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// A local cluster directory (`tessera cluster up --dir`): its `cluster.toml`.
    Dir(PathBuf),
    /// Any node's `HOST:PORT`.
    Address(String),
}

/// Errors the command line reports. Each says what failed and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "no cluster in {dir}: {cluster_file} is missing. Start one with `tessera cluster up --dir {dir}`, or name a node with --cluster HOST:PORT"
    )]
    NoLocalCluster { dir: PathBuf, cluster_file: PathBuf },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Transport(#[from] crate::net::TransportError),
    #[error("node {address} did not describe its cluster within {timeout_ms} ms")]
    NoDescribe { address: String, timeout_ms: u64 },
    #[error("{path}: {errno}")]
    Posix { path: String, errno: Errno },
    #[error("{path}: {message}")]
    Failed { path: String, message: String },
    #[error("{what}: {source}")]
    Local { what: String, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    fn from_meta(path: &str, e: ClientError) -> CliError {
        match e {
            ClientError::Posix(errno) => CliError::Posix { path: path.to_string(), errno },
            other => CliError::Failed { path: path.to_string(), message: other.to_string() },
        }
    }

    fn from_data(path: &str, e: DataPathError) -> CliError {
        match e {
            DataPathError::Posix(errno) => CliError::Posix { path: path.to_string(), errno },
            other => CliError::Failed { path: path.to_string(), message: other.to_string() },
        }
    }
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub name: String,
    pub kind: FileType,
    pub size_bytes: u64,
    pub mtime_ns: u64,
}

/// The cluster file named by a source: read from the directory, or asked of the node.
pub async fn load_spec(source: &ClusterSource) -> Result<(ClusterSpec, Transport, NodeId), CliError> {
    let base = client_base_id();
    match source {
        ClusterSource::Dir(dir) => {
            let file = dir.join("cluster.toml");
            if !file.exists() {
                return Err(CliError::NoLocalCluster { dir: dir.clone(), cluster_file: file });
            }
            let spec = ClusterSpec::load(&file)?;
            let config = TransportConfig { cluster_id: Some(spec.cluster_id), ..TransportConfig::default() };
            let transport = Transport::start(base, None, config).await?;
            Ok((spec, transport, base))
        }
        ClusterSource::Address(address) => {
            crate::node::spec::parse_address(address).map_err(CliError::Usage)?;
            let transport = Transport::start(base, None, TransportConfig::default()).await?;
            let (node, _cluster) = transport.probe(address).await?;
            let net = transport.endpoint(NodeId(base.0 | ADMIN_ENDPOINT_BIT))?;
            let reply =
                ask(&net, &RealClock::new(), node, AdminRequest::Describe { seq: 1 }, 500, ADMIN_TIMEOUT_MS).await;
            let Some(AdminReply::Describe { cluster_toml, .. }) = reply else {
                return Err(CliError::NoDescribe { address: address.clone(), timeout_ms: ADMIN_TIMEOUT_MS });
            };
            let spec = ClusterSpec::parse(&cluster_toml, Path::new(&format!("cluster file of {address}")))?;
            Ok((spec, transport, base))
        }
    }
}

/// A fresh client id: above every member id, below the transport's endpoint bits, random per process
/// (a shard remembers each client id's requests, so a restarted client must not reuse one).
pub fn client_base_id() -> NodeId {
    let low = crate::node::spec::NODE_ID_MAX + 1;
    let high = (1u64 << 59) - 1;
    NodeId(low + os_seed() % (high - low))
}

/// A connected client.
pub struct ClusterClient {
    pub spec: ClusterSpec,
    transport: Transport,
    id: NodeId,
    data: RealDataClient,
    admin: TcpNet,
    status_io: StripeIo<RealClock, TcpNet>,
    clock: RealClock,
    creds: Credentials,
    admin_seq: u64,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// Connect to the cluster `source` names. Places new stripes on the members the first node that
    /// answers does not consider dead.
    pub async fn connect(source: &ClusterSource) -> Result<ClusterClient, CliError> {
        let (spec, transport, id) = load_spec(source).await?;
        ClusterClient::with_transport(spec, transport, id).await
    }

    /// A client over a started transport (`id` its base id).
    pub async fn with_transport(
        spec: ClusterSpec,
        transport: Transport,
        id: NodeId,
    ) -> Result<ClusterClient, CliError> {
        let clock = RealClock::new();
        let mut rng = DetRng::from_seed(os_seed());
        let data = data_client(&spec, &transport, id, &clock, &mut rng, 30_000)?;
        let admin = transport.endpoint(NodeId(id.0 | ADMIN_ENDPOINT_BIT))?;
        let status_io = StripeIo::new(
            clock.clone(),
            transport.endpoint(data_endpoint(NodeId(id.0 | ADMIN_ENDPOINT_BIT)))?,
            io_config(),
            rng.next_u64() >> 1,
        );
        let mut client = ClusterClient {
            spec,
            transport,
            id,
            data,
            admin,
            status_io,
            clock,
            creds: Credentials::root(),
            admin_seq: rng.next_u64() >> 1,
        };
        if !client.refresh_live_nodes().await {
            let addresses: Vec<&str> = client.spec.members.iter().map(|m| m.address.as_str()).collect();
            return Err(CliError::Failed {
                path: "cluster".into(),
                message: format!(
                    "no node answers (tried {}); is the cluster running? (`tessera cluster up` starts a local one)",
                    addresses.join(", ")
                ),
            });
        }
        Ok(client)
    }

    /// Another client of the same cluster, with its own transport and client id, resolving paths from
    /// the same root (a mount keeps several: each client runs one operation at a time).
    pub async fn another(&mut self) -> Result<ClusterClient, CliError> {
        let id = client_base_id();
        let config = TransportConfig { cluster_id: Some(self.spec.cluster_id), ..TransportConfig::default() };
        let transport = Transport::start(id, None, config).await?;
        let mut client = ClusterClient::with_transport(self.spec.clone(), transport, id).await?;
        let root = self.meta().root();
        client.meta().set_root(root);
        Ok(client)
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn data_client(&mut self) -> &mut RealDataClient {
        &mut self.data
    }

    /// Places new stripes only on members the first answering node does not consider dead. False if no
    /// node answered.
    pub async fn refresh_live_nodes(&mut self) -> bool {
        let ids: Vec<u64> = self.spec.members.iter().map(|m| m.id).collect();
        for id in ids {
            if let Some(status) = self.node_status(NodeId(id), 1_000).await {
                let dead: Vec<u64> = status.peers.iter().filter(|p| p.dead).map(|p| p.id).collect();
                let live = self.spec.placement_nodes().into_iter().filter(|n| !dead.contains(&n.id.0)).collect();
                self.data.set_nodes(live);
                return true;
            }
        }
        false
    }

    /// One node's status, or `None` if it did not answer within `timeout_ms`.
    pub async fn node_status(&mut self, node: NodeId, timeout_ms: u64) -> Option<NodeStatus> {
        self.admin_seq += 1;
        let request = AdminRequest::Status { seq: self.admin_seq };
        match ask(&self.admin, &self.clock, node, request, 300, timeout_ms).await {
            Some(AdminReply::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// The chunk servers' status of `nodes` (capacity, chunks, rebuild progress), in order.
    pub async fn data_status(&mut self, nodes: &[NodeId]) -> Vec<Option<DataStatus>> {
        let endpoints: Vec<NodeId> = nodes.iter().map(|&n| data_endpoint(n)).collect();
        self.status_io.status(&endpoints).await.into_iter().map(Result::ok).collect()
    }

    fn meta(&mut self) -> &mut MetaClient<RealClock, RealWallClock, TcpNet, DetRng> {
        self.data.meta()
    }

    /// Resolve paths from the global root (`/` lists file systems).
    fn at_global_root(&mut self) {
        self.meta().set_root(InodeId::ROOT);
    }

    /// Resolve paths inside file system `fs` from now on.
    pub async fn enter_fs(&mut self, fs: &str) -> Result<InodeId, CliError> {
        check_fs_name(fs)?;
        self.at_global_root();
        let creds = self.creds.clone();
        let path = format!("/{fs}");
        let root = match self.meta().lookup(InodeId::ROOT, fs, &creds).await {
            Ok((ino, FileType::Directory)) => ino,
            Ok(_) => return Err(CliError::Posix { path, errno: Errno::ENOTDIR }),
            Err(ClientError::Posix(Errno::ENOENT)) => {
                return Err(CliError::Usage(format!(
                    "no file system named {fs:?}; `tessera fs list` shows them, `tessera fs create {fs}` makes it"
                )));
            }
            Err(e) => return Err(CliError::from_meta(&path, e)),
        };
        self.meta().set_root(root);
        Ok(root)
    }

    /// `tessera fs create NAME`.
    pub async fn fs_create(&mut self, name: &str) -> Result<(), CliError> {
        check_fs_name(name)?;
        self.at_global_root();
        let creds = self.creds.clone();
        let path = format!("/{name}");
        match self.meta().mkdir(&path, DIR_MODE, &creds).await {
            Ok(_) => Ok(()),
            Err(ClientError::Posix(Errno::EEXIST)) => {
                Err(CliError::Usage(format!("a file system named {name:?} exists already")))
            }
            Err(e) => Err(CliError::from_meta(&path, e)),
        }
    }

    /// `tessera fs list`: every file system and its entry count.
    pub async fn fs_list(&mut self) -> Result<Vec<ListEntry>, CliError> {
        self.at_global_root();
        self.list("/").await
    }

    /// `tessera fs delete NAME`: removes the file system and everything in it. `progress` is called with
    /// the number of entries removed so far.
    pub async fn fs_delete(&mut self, name: &str, progress: &mut dyn FnMut(u64)) -> Result<u64, CliError> {
        check_fs_name(name)?;
        self.enter_fs(name).await?;
        self.at_global_root();
        self.remove(&format!("/{name}"), true, progress).await
    }

    /// Attributes of `path`.
    pub async fn stat(&mut self, path: &str) -> Result<Attr, CliError> {
        let creds = self.creds.clone();
        self.meta().stat(path, &creds).await.map_err(|e| CliError::from_meta(path, e))
    }

    /// `tessera ls`: a directory's entries with sizes, or the one entry a file path names.
    pub async fn list(&mut self, path: &str) -> Result<Vec<ListEntry>, CliError> {
        let attr = self.stat(path).await?;
        if attr.kind != FileType::Directory {
            let name = path.rsplit('/').next().unwrap_or(path).to_string();
            return Ok(vec![ListEntry { name, kind: attr.kind, size_bytes: attr.size, mtime_ns: attr.mtime_ns }]);
        }
        let creds = self.creds.clone();
        let entries: Vec<DirEntry> =
            self.meta().readdir_all(attr.ino, &creds).await.map_err(|e| CliError::from_meta(path, e))?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let attr = self.meta().getattr(e.ino).await;
            let (size_bytes, mtime_ns) = attr.map(|a| (a.size, a.mtime_ns)).unwrap_or((0, 0));
            out.push(ListEntry { name: e.name, kind: e.kind, size_bytes, mtime_ns });
        }
        Ok(out)
    }

    /// `tessera mkdir` (with `parents`: every missing directory on the way, like `mkdir -p`).
    pub async fn mkdir(&mut self, path: &str, parents: bool) -> Result<(), CliError> {
        let creds = self.creds.clone();
        if !parents {
            return self.meta().mkdir(path, DIR_MODE, &creds).await.map(drop).map_err(|e| CliError::from_meta(path, e));
        }
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            match self.meta().mkdir(&at, DIR_MODE, &creds).await {
                Ok(_) | Err(ClientError::Posix(Errno::EEXIST)) => {}
                Err(e) => return Err(CliError::from_meta(&at, e)),
            }
        }
        Ok(())
    }

    /// `tessera put`: copy the local file `local` to `path`, replacing what is there. The bytes go to a
    /// temporary name next to `path` that is renamed over it at the end, so `path` never shows a partial
    /// copy. `progress` gets the bytes copied so far. Returns the size.
    pub async fn put(&mut self, local: &Path, path: &str, progress: &mut dyn FnMut(u64)) -> Result<u64, CliError> {
        let mut file = std::fs::File::open(local)
            .map_err(|source| CliError::Local { what: format!("cannot open {}", local.display()), source })?;
        let size = file
            .metadata()
            .map_err(|source| CliError::Local { what: format!("cannot stat {}", local.display()), source })?
            .len();
        let (parent, name) = split_path(path)?;
        let tmp = format!("{parent}/.{name}.tessera-put-{:x}", os_seed() & 0xffff_ffff).replacen("//", "/", 1);
        let creds = self.creds.clone();
        let attr = self.meta().create(&tmp, FILE_MODE, &creds).await.map_err(|e| CliError::from_meta(path, e))?;
        let copied = self.put_bytes(&mut file, attr.ino, size, path, progress).await;
        if let Err(e) = copied {
            let _ = self.meta().unlink(&tmp, &creds).await;
            return Err(e);
        }
        if let Err(e) = self.meta().rename(&tmp, path, &creds).await {
            let _ = self.meta().unlink(&tmp, &creds).await;
            return Err(CliError::from_meta(path, e));
        }
        Ok(size)
    }

    async fn put_bytes(
        &mut self,
        file: &mut std::fs::File,
        ino: InodeId,
        size: u64,
        path: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), CliError> {
        let creds = self.creds.clone();
        let mut offset = 0u64;
        let mut buf = vec![0u8; PUT_PIECE_BYTES.min(size.max(1)) as usize];
        while offset < size {
            let len = (size - offset).min(PUT_PIECE_BYTES) as usize;
            file.read_exact(&mut buf[..len])
                .map_err(|source| CliError::Local { what: format!("reading the local file at {offset}"), source })?;
            self.data.write(ino, offset, &buf[..len], &creds).await.map_err(|e| CliError::from_data(path, e))?;
            offset += len as u64;
            progress(offset);
        }
        Ok(())
    }

    /// Write `bytes` as the whole content of a new file at `path` (exclusive create).
    pub async fn create_file(&mut self, path: &str, bytes: &[u8]) -> Result<Attr, CliError> {
        let creds = self.creds.clone();
        let attr = self.meta().create(path, FILE_MODE, &creds).await.map_err(|e| CliError::from_meta(path, e))?;
        if bytes.is_empty() {
            return Ok(attr);
        }
        self.data.write(attr.ino, 0, bytes, &creds).await.map_err(|e| CliError::from_data(path, e))
    }

    /// The whole content of the file at `path` (at most `max_bytes`).
    pub async fn read_file(&mut self, path: &str, max_bytes: u64) -> Result<Vec<u8>, CliError> {
        let attr = self.stat(path).await?;
        if attr.kind != FileType::Regular {
            return Err(CliError::Posix { path: path.to_string(), errno: Errno::EISDIR });
        }
        if attr.size > max_bytes {
            return Err(CliError::Usage(format!("{path} is {} bytes, more than {max_bytes}", attr.size)));
        }
        let mut out = Vec::with_capacity(attr.size as usize);
        while (out.len() as u64) < attr.size {
            let len = (attr.size - out.len() as u64).min(GET_PIECE_BYTES);
            let piece =
                self.data.read(attr.ino, out.len() as u64, len).await.map_err(|e| CliError::from_data(path, e))?;
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    /// `tessera get`: copy `path` to the local file `local` (written to a temporary name beside it and
    /// renamed at the end). Returns the size.
    pub async fn get(&mut self, path: &str, local: &Path, progress: &mut dyn FnMut(u64)) -> Result<u64, CliError> {
        let attr = self.stat(path).await?;
        if attr.kind != FileType::Regular {
            return Err(CliError::Usage(format!("{path} is not a regular file")));
        }
        let tmp = local.with_file_name(format!(
            ".{}.tessera-get",
            local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let mut out = std::fs::File::create(&tmp)
            .map_err(|source| CliError::Local { what: format!("cannot create {}", tmp.display()), source })?;
        let mut offset = 0u64;
        let result: Result<(), CliError> = async {
            while offset < attr.size {
                let len = (attr.size - offset).min(GET_PIECE_BYTES);
                let piece = self.data.read(attr.ino, offset, len).await.map_err(|e| CliError::from_data(path, e))?;
                if piece.is_empty() {
                    break;
                }
                out.write_all(&piece)
                    .map_err(|source| CliError::Local { what: format!("writing {}", tmp.display()), source })?;
                offset += piece.len() as u64;
                progress(offset);
            }
            out.sync_all().map_err(|source| CliError::Local { what: format!("syncing {}", tmp.display()), source })?;
            std::fs::rename(&tmp, local)
                .map_err(|source| CliError::Local { what: format!("renaming onto {}", local.display()), source })
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| offset)
    }

    /// `tessera rm`: remove a file, or with `recursive` a directory and everything below it (depth
    /// first). Returns the entries removed; `progress` gets the running count.
    pub async fn remove(
        &mut self,
        path: &str,
        recursive: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, CliError> {
        let creds = self.creds.clone();
        let attr = self.stat(path).await?;
        if attr.kind != FileType::Directory {
            self.meta().unlink(path, &creds).await.map_err(|e| CliError::from_meta(path, e))?;
            progress(1);
            return Ok(1);
        }
        if !recursive {
            return Err(CliError::Usage(format!("{path} is a directory: use -r to remove it and everything in it")));
        }
        // Iterative depth-first walk: a stack of directories still to empty (bounded by the tree's depth
        // times its widest listing).
        let mut removed = 0u64;
        let mut stack: Vec<(String, bool)> = vec![(path.to_string(), false)];
        while let Some((dir, listed)) = stack.pop() {
            if listed {
                self.meta().rmdir(&dir, &creds).await.map_err(|e| CliError::from_meta(&dir, e))?;
                removed += 1;
                progress(removed);
                continue;
            }
            stack.push((dir.clone(), true));
            let ino = self.meta().resolve(&dir, &creds).await.map_err(|e| CliError::from_meta(&dir, e))?;
            let entries = self.meta().readdir_all(ino, &creds).await.map_err(|e| CliError::from_meta(&dir, e))?;
            for e in entries {
                let child = format!("{}/{}", dir.trim_end_matches('/'), e.name);
                if e.kind == FileType::Directory {
                    stack.push((child, false));
                } else {
                    match self.meta().unlink(&child, &creds).await {
                        Ok(()) | Err(ClientError::Posix(Errno::ENOENT)) => {}
                        Err(e) => return Err(CliError::from_meta(&child, e)),
                    }
                    removed += 1;
                    progress(removed);
                }
            }
        }
        Ok(removed)
    }

    /// Wait up to `timeout` for the metadata service to answer (every shard needs a leader first).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), CliError> {
        let deadline = self.clock.now() + timeout;
        let creds = self.creds.clone();
        loop {
            self.at_global_root();
            match self.meta().stat("/", &creds).await {
                Ok(_) => return Ok(()),
                Err(e) if self.clock.now() >= deadline => return Err(CliError::from_meta("/", e)),
                Err(_) => self.clock.sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// A data client of the cluster `spec` on `transport` (base id `id`, also its metadata client id), on
/// `clock`; a metadata operation gives up after `op_timeout_ms`. Tells the transport where every member is.
pub fn data_client(
    spec: &ClusterSpec,
    transport: &Transport,
    id: NodeId,
    clock: &RealClock,
    rng: &mut DetRng,
    op_timeout_ms: u64,
) -> Result<RealDataClient, CliError> {
    for m in &spec.members {
        transport.set_peer_address(NodeId(m.id), &m.address)?;
    }
    let directory = ShardDirectory::new(&spec.genesis_map(), 1).expect("a validated spec gives a routable map");
    let meta_config = ClientConfig { op_timeout_ms, ..ClientConfig::default() };
    let net = transport.endpoint(id)?;
    let meta = MetaClient::new(id.0, directory, meta_config, clock.clone(), RealWallClock, net, rng.fork("meta"))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let config = DataClientConfig {
        protection: spec.protection.0,
        inline_max_bytes: spec.inline_max_bytes,
        request_timeout_ms: 2_000,
        ..DataClientConfig::default()
    };
    let data_net = transport.endpoint(data_endpoint(id))?;
    DataClient::new(meta, data_net, clock.clone(), rng, config, spec.placement_nodes())
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// `/a/b/c` -> (`/a/b`, `c`); `/c` -> (`/`, `c`).
fn split_path(path: &str) -> Result<(&str, &str), CliError> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, name)) if !name.is_empty() => Ok((if parent.is_empty() { "/" } else { parent }, name)),
        _ => Err(CliError::Usage(format!("{path:?} does not name a file (paths start with /, e.g. /dir/file)"))),
    }
}

/// A file-system name: one path component, no `/`, not `.`/`..`, at most [`FS_NAME_LEN_MAX_BYTES`].
pub fn check_fs_name(name: &str) -> Result<(), CliError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(CliError::Usage(format!("{name:?} is not a file-system name (one path component, no '/')")));
    }
    if name.len() > FS_NAME_LEN_MAX_BYTES {
        return Err(CliError::Usage(format!("file-system names are at most {FS_NAME_LEN_MAX_BYTES} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_fs_names_are_checked() {
        assert_eq!(split_path("/a/b").unwrap(), ("/a", "b"));
        assert_eq!(split_path("/b").unwrap(), ("/", "b"));
        assert!(split_path("/").is_err());
        assert!(check_fs_name("default").is_ok());
        assert!(check_fs_name("a/b").is_err());
        assert!(check_fs_name("..").is_err());
        assert!(check_fs_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn client_ids_sit_between_members_and_endpoint_bits() {
        for _ in 0..100 {
            let id = client_base_id().0;
            assert!(id > crate::node::spec::NODE_ID_MAX && id < 1 << 59, "{id:#x}");
        }
    }
}
