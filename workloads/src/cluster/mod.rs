//! The executor for a Tessera cluster: one workload process's [`Op`]s run through the system's data
//! client ([`DataClient`]) and metadata operations, generic over the environment, so that the simulated
//! cluster (`tessera-sim`'s bench) and a real one (over TCP) run workloads through the same code.
//!
//! Paths map onto the metadata service's (parent, name) operations through a per-process cache of
//! path -> (inode, type), filled by `Lookup`s from the run's root directory, the way a kernel's dentry
//! cache does; attributes are never cached. An entry another process removed is found stale (`ESTALE`)
//! on use and the operation is retried once from a fresh walk.
//!
//! Time comes from the clock `C` handed in (virtual time in the simulator), never from the OS.

mod fail;
mod path_cache;

use core::time::Duration;

use tessera_data::client::DataClient;
use tessera_env::{Clock, Net, Rng, WallClock};
use tessera_meta::client::ClientError;
use tessera_meta::{
    Credentials, DirEntry, Errno, FileType, InodeId, MODE_MASK, MetaOp, MetaReply, READDIR_START, SetAttr,
};

use crate::op::{Op, OpError, Outcome, content_bytes};
use crate::run::Executor;
use fail::{Fail, may_read, split_parent, unexpected};
use path_cache::PathCache;

const MIB: u64 = 1024 * 1024;
/// Largest piece one data-client write is given: bounds the buffer a write fills (one 4+2 stripe holds
/// 4 MiB).
pub const WRITE_PIECE_BYTES: u64 = 4 * MIB;
/// Largest piece one data-client read asks for (the client refuses more than 64 MiB).
pub const READ_PIECE_BYTES: u64 = 8 * MIB;
/// Entries one `Readdir` call asks for.
pub const READDIR_PAGE_ENTRIES: u32 = 1024;
/// Path-cache entries a process keeps at most (past this the cache starts over: memory stays bounded).
pub const PATH_CACHE_ENTRIES_MAX: usize = 1 << 20;
/// Mode of the directories the executor creates (as `MemFs` does).
pub const DIR_MODE: u32 = 0o755;
/// Mode of the regular files the executor creates (as `MemFs` does).
pub const FILE_MODE: u32 = 0o644;

/// One workload process's client of a cluster: its data client, the clock its latencies are measured
/// on, the directory its paths are relative to, its credentials (root unless set) and its path cache.
///
/// Give each process its own `ClusterExec` (the path cache is per process, as a kernel's is per
/// client). After a run, [`ClusterExec::into_client`] gives the data client back.
pub struct ClusterExec<C: Clock, W: WallClock, N: Net, R: Rng> {
    client: DataClient<C, W, N, R>,
    clock: C,
    /// The directory the run's paths are relative to (the empty path names it); never looked up.
    root: InodeId,
    creds: Credentials,
    cache: PathCache,
    /// Whether the current attempt used a cached entry (a failure may then be a stale one).
    used_cache: bool,
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> std::fmt::Debug for ClusterExec<C, W, N, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterExec")
            .field("client", &self.client)
            .field("root", &self.root)
            .field("creds", &self.creds)
            .field("cached_paths", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> ClusterExec<C, W, N, R> {
    /// An executor running as root on `client`, with paths relative to directory `root`
    /// (`InodeId::ROOT` for the whole file system) and time from `clock`.
    pub fn new(client: DataClient<C, W, N, R>, clock: C, root: InodeId) -> ClusterExec<C, W, N, R> {
        ClusterExec {
            client,
            clock,
            root,
            creds: Credentials::root(),
            cache: PathCache::new(PATH_CACHE_ENTRIES_MAX),
            used_cache: false,
        }
    }

    /// The same executor acting as `creds` (permission checks, owner of what it creates).
    pub fn with_credentials(mut self, creds: Credentials) -> ClusterExec<C, W, N, R> {
        self.creds = creds;
        self
    }

    /// The directory the run's paths are relative to.
    pub fn root(&self) -> InodeId {
        self.root
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    pub fn client_mut(&mut self) -> &mut DataClient<C, W, N, R> {
        &mut self.client
    }

    pub fn into_client(self) -> DataClient<C, W, N, R> {
        self.client
    }

    async fn meta(&mut self, op: MetaOp) -> Result<MetaReply, Fail> {
        match self.client.meta().execute(op).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(errno)) | Err(ClientError::Posix(errno)) => Err(Fail::Errno(errno)),
            Err(e) => Err(Fail::Other(e.to_string())),
        }
    }

    /// The inode `path` names: from the cache, or looked up component by component from the deepest
    /// cached directory above it (the root is never looked up).
    async fn resolve(&mut self, path: &str) -> Result<(InodeId, FileType), Fail> {
        if path.is_empty() {
            return Ok((self.root, FileType::Directory));
        }
        if let Some(hit) = self.cache.get(path) {
            self.used_cache = true;
            return Ok(hit);
        }
        let mut current = (self.root, FileType::Directory);
        let mut walked = 0;
        for (slash, _) in path.rmatch_indices('/') {
            if let Some(hit) = self.cache.get(&path[..slash]) {
                self.used_cache = true;
                current = hit;
                walked = slash + 1;
                break;
            }
        }
        let mut end = walked;
        for name in path[walked..].split('/') {
            if current.1 != FileType::Directory {
                return Err(Fail::Errno(Errno::ENOTDIR));
            }
            let op = MetaOp::Lookup { parent: current.0, name: name.to_string(), creds: self.creds.clone() };
            current = match self.meta(op).await? {
                MetaReply::Child { ino, kind } => (ino, kind),
                other => return Err(unexpected("lookup", &other)),
            };
            end += name.len();
            self.cache.remember(&path[..end], current);
            end += 1;
        }
        Ok(current)
    }

    async fn resolve_dir(&mut self, path: &str) -> Result<InodeId, Fail> {
        match self.resolve(path).await? {
            (ino, FileType::Directory) => Ok(ino),
            _ => Err(Fail::Errno(Errno::ENOTDIR)),
        }
    }

    async fn resolve_file(&mut self, path: &str) -> Result<InodeId, Fail> {
        match self.resolve(path).await? {
            (ino, FileType::Regular) => Ok(ino),
            (_, FileType::Directory) => Err(Fail::Errno(Errno::EISDIR)),
            _ => Err(Fail::Errno(Errno::EINVAL)),
        }
    }

    /// Make `path` (a directory or an empty regular file) in its parent.
    async fn make(&mut self, path: &str, kind: FileType) -> Result<InodeId, Fail> {
        let (parent, name) = split_parent(path);
        if name.is_empty() {
            return Err(Fail::Errno(Errno::EEXIST));
        }
        let parent = self.resolve_dir(parent).await?;
        let (name, creds) = (name.to_string(), self.creds.clone());
        let op = match kind {
            FileType::Directory => MetaOp::Mkdir { parent, name, mode: DIR_MODE, creds },
            _ => MetaOp::Create { parent, name, mode: FILE_MODE, creds },
        };
        match self.meta(op).await? {
            MetaReply::Entry(attr) => {
                self.cache.remember(path, (attr.ino, kind));
                Ok(attr.ino)
            }
            other => Err(unexpected("create", &other)),
        }
    }

    /// Remove `path` (a file, or an empty directory if `dir`).
    async fn remove(&mut self, path: &str, dir: bool) -> Result<(), Fail> {
        let (parent, name) = split_parent(path);
        if name.is_empty() {
            return Err(Fail::Errno(Errno::EBUSY));
        }
        let parent = self.resolve_dir(parent).await?;
        let (name, creds) = (name.to_string(), self.creds.clone());
        let op = if dir { MetaOp::Rmdir { parent, name, creds } } else { MetaOp::Unlink { parent, name, creds } };
        let reply = self.meta(op).await;
        // Whatever the answer, the entry may be gone: look it up afresh next time.
        self.cache.forget_tree(path);
        match reply? {
            MetaReply::Done => Ok(()),
            other => Err(unexpected("remove", &other)),
        }
    }

    /// Write `len_bytes` of content `content` at `offset`, in pieces of at most [`WRITE_PIECE_BYTES`].
    async fn write_content(&mut self, ino: InodeId, offset: u64, len_bytes: u64, content: u64) -> Result<(), Fail> {
        let mut done = 0;
        while done < len_bytes {
            let piece = (len_bytes - done).min(WRITE_PIECE_BYTES);
            let bytes = content_bytes(content, offset + done, piece as usize);
            self.client.write(ino, offset + done, &bytes, &self.creds).await?;
            done += piece;
        }
        Ok(())
    }

    /// Up to `len_bytes` from `offset` (fewer where the file ends), in reads of at most
    /// [`READ_PIECE_BYTES`].
    async fn read_range(&mut self, ino: InodeId, offset: u64, len_bytes: u64) -> Result<Vec<u8>, Fail> {
        let mut out = Vec::new();
        let mut at = offset;
        let end = offset.saturating_add(len_bytes);
        while at < end {
            let want = (end - at).min(READ_PIECE_BYTES);
            let got = self.client.read(ino, at, want).await?;
            let short = (got.len() as u64) < want;
            at += got.len() as u64;
            out.extend_from_slice(&got);
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// Every entry of directory `dir`, page by page, in cookie order.
    async fn list(&mut self, dir: InodeId) -> Result<Vec<DirEntry>, Fail> {
        let mut entries = Vec::new();
        let mut cookie = READDIR_START;
        loop {
            let op = MetaOp::Readdir { dir, cookie, max_entries: READDIR_PAGE_ENTRIES, creds: self.creds.clone() };
            let (page, eof) = match self.meta(op).await? {
                MetaReply::DirEntries { entries, eof } => (entries, eof),
                other => return Err(unexpected("readdir", &other)),
            };
            let Some(last) = page.last() else {
                if eof {
                    return Ok(entries);
                }
                return Err(Fail::Other("readdir returned an empty page before the end".into()));
            };
            cookie = last.cookie;
            entries.extend(page);
            if eof {
                return Ok(entries);
            }
        }
    }

    /// Truncate the regular file at `path` to empty, creating it if it does not exist.
    async fn open_truncated(&mut self, path: &str) -> Result<InodeId, Fail> {
        let ino = match self.resolve_file(path).await {
            Ok(ino) => ino,
            Err(Fail::Errno(Errno::ENOENT)) => match self.make(path, FileType::Regular).await {
                Ok(ino) => return Ok(ino),
                // Made by another process meanwhile.
                Err(Fail::Errno(Errno::EEXIST)) => self.resolve_file(path).await?,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        self.client.truncate(ino, 0, &self.creds).await?;
        Ok(ino)
    }

    /// One attempt of `op`.
    async fn attempt(&mut self, op: &Op) -> Result<Outcome, Fail> {
        match op {
            Op::Mkdir { path } => self.make(path, FileType::Directory).await.map(|_| Outcome::Done),
            Op::Create { path } => self.make(path, FileType::Regular).await.map(|_| Outcome::Done),
            Op::WriteFile { path, size_bytes, content } => {
                let ino = self.open_truncated(path).await?;
                self.write_content(ino, 0, *size_bytes, *content).await?;
                Ok(Outcome::Done)
            }
            Op::Write { path, offset, len_bytes, content } => {
                let ino = self.resolve_file(path).await?;
                self.write_content(ino, *offset, *len_bytes, *content).await?;
                Ok(Outcome::Done)
            }
            Op::ReadFile { path } => {
                let ino = self.resolve_file(path).await?;
                // Read until a read comes back short: one call for a file below READ_PIECE_BYTES.
                Ok(Outcome::Bytes(self.read_range(ino, 0, u64::MAX).await?))
            }
            Op::Read { path, offset, len_bytes } => {
                let ino = self.resolve_file(path).await?;
                Ok(Outcome::Bytes(self.read_range(ino, *offset, *len_bytes).await?))
            }
            Op::Stat { path } => {
                let (ino, _) = self.resolve(path).await?;
                let attr = self.client.getattr(ino).await?;
                Ok(Outcome::Attr { size_bytes: attr.size, mode: attr.mode, is_dir: attr.kind == FileType::Directory })
            }
            Op::Access { path } => {
                let (ino, _) = self.resolve(path).await?;
                let attr = self.client.getattr(ino).await?;
                if may_read(&attr, &self.creds) { Ok(Outcome::Done) } else { Err(Fail::Errno(Errno::EACCES)) }
            }
            Op::Chmod { path, mode } => {
                let (ino, _) = self.resolve(path).await?;
                let set = SetAttr { mode: Some(mode & MODE_MASK), ..SetAttr::default() };
                match self.meta(MetaOp::SetAttr { ino, set, creds: self.creds.clone() }).await? {
                    MetaReply::Attr(_) => Ok(Outcome::Done),
                    other => Err(unexpected("chmod", &other)),
                }
            }
            Op::Readdir { path } => {
                let dir = self.resolve_dir(path).await?;
                let mut names: Vec<String> = self.list(dir).await?.into_iter().map(|e| e.name).collect();
                names.sort();
                Ok(Outcome::Names(names))
            }
            Op::Unlink { path } => self.remove(path, false).await.map(|()| Outcome::Done),
            Op::Rmdir { path } => self.remove(path, true).await.map(|()| Outcome::Done),
            Op::Find { path } => {
                let mut dirs = vec![self.resolve_dir(path).await?];
                let mut count = 0u64;
                while let Some(dir) = dirs.pop() {
                    for entry in self.list(dir).await? {
                        count += 1;
                        if entry.kind == FileType::Directory {
                            dirs.push(entry.ino);
                        }
                    }
                }
                Ok(Outcome::Count(count))
            }
        }
    }
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> Executor for ClusterExec<C, W, N, R> {
    /// Nanoseconds on the clock handed in (virtual time in the simulator).
    fn now_ns(&self) -> u64 {
        self.clock.now().as_nanos()
    }

    async fn sleep_until_ns(&mut self, at_ns: u64) {
        let now = self.now_ns();
        if at_ns > now {
            self.clock.sleep(Duration::from_nanos(at_ns - now)).await;
        }
    }

    /// Runs `op`; if it failed after using a cached path with ESTALE (an inode on the path is gone: the
    /// shards answer that for a removed parent or file) or ENOTDIR (a directory became a file), forgets
    /// the path and tries once more from a fresh walk.
    async fn execute(&mut self, op: &Op) -> Result<Outcome, OpError> {
        self.used_cache = false;
        let result = match self.attempt(op).await {
            Err(Fail::Errno(Errno::ESTALE | Errno::ENOTDIR)) if self.used_cache => {
                self.cache.forget_path(op.path());
                self.used_cache = false;
                self.attempt(op).await
            }
            result => result,
        };
        result.map_err(|fail| fail.into_op_error(op.path()))
    }
}
