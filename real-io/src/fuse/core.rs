//! The mount's operations, asynchronous and independent of the kernel interface (`fs.rs` adapts them).
//!
//! - **Caching.** The kernel caches entries and attributes for `attr_timeout` (a time-bounded lease the
//!   mount grants itself, like NFS's `actimeo`). Every `open` asks the cluster for fresh attributes
//!   and keeps the kernel's page cache of the file only if they are unchanged since this mount last
//!   saw them; every `close` writes back everything buffered and waits for it. Together: close-to-open
//!   consistency across mounts (a reader that opens after a writer closed sees the writer's bytes).
//! - **Write-back.** Writes go into the file's buffer ([`Extents`]) and return. Whole stripes are
//!   written back as soon as a run of buffered bytes holds `flush_bytes`, in parallel pieces on several
//!   pooled clients; the rest at `flush`/`fsync`/`close`, before a read or a truncate of the file, or
//!   when the mount's buffer budget runs out. Write-backs of one file are committed in the order they
//!   were started, so a later write always wins. A failed write-back is reported by the next `write`,
//!   `flush` or `fsync` of the file (like NFS); the bytes it covered are not retried.
//! - **Readahead** ([`super::readahead`]): each handle sees the file as blocks fetched once and shared
//!   by every request that needs them; a sequential reader gets a window of blocks fetched ahead that
//!   doubles up to `readahead_max_bytes`. A random read smaller than a block is read directly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_env::NodeId;
use tessera_meta::content::StripeLayout;
use tessera_meta::{Attr, Credentials, DirEntry, FileType, InodeId, MetaOp, MetaReply, SetAttr, SetTime, XattrFlags};
use tokio::sync::{Semaphore, watch};

use super::convert::{Fail, InoMap};
use super::pool::Pool;
use super::readahead::{Plan, ReadAhead};
use super::writeback::Extents;

/// How the mount caches and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long the kernel may use an entry or attributes without asking again.
    pub attr_timeout: Duration,
    /// A run of buffered bytes this long is written back (its whole stripes) without waiting for close.
    pub flush_bytes: u64,
    /// Bytes written back by one pooled client at a time (whole stripes; pieces run in parallel).
    pub flush_piece_bytes: u64,
    /// One file's buffer is written back whole beyond this.
    pub file_buffer_max_bytes: u64,
    /// All buffered and in-flight bytes of the mount at most (writers wait beyond it).
    pub buffer_max_bytes: u64,
    /// The largest readahead window.
    pub readahead_max_bytes: u64,
}

impl Settings {
    /// The defaults for a cluster whose stripes hold `stripe_bytes`.
    pub fn for_stripe(stripe_bytes: u64, attr_timeout: Duration) -> Settings {
        let piece = stripe_bytes * (4 * 1024 * 1024 / stripe_bytes).max(1);
        Settings {
            attr_timeout,
            flush_bytes: piece.max(stripe_bytes),
            flush_piece_bytes: piece,
            file_buffer_max_bytes: 64 * 1024 * 1024,
            buffer_max_bytes: 512 * 1024 * 1024,
            readahead_max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Most files whose last-seen attributes the mount remembers (for keeping the page cache at open).
const SEEN_MAX: usize = 1 << 16;
/// Entries asked of the cluster per readdir call.
pub const READDIR_PAGE: u32 = 512;
/// How long a writer waits for buffer room before it writes back every file's buffer again.
const BUDGET_WAIT: Duration = Duration::from_secs(1);
/// How long a statfs answer is reused.
const STATFS_REUSE: Duration = Duration::from_secs(2);

/// What `statfs` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    pub blocks: u64,
    pub blocks_free: u64,
    pub block_size: u32,
}

/// The attributes that tell whether a file changed since it was last seen.
type Signature = (u64, u64, u64);

fn signature(attr: &Attr) -> Signature {
    (attr.mtime_ns, attr.ctime_ns, attr.size)
}

/// One file with an open handle or buffered bytes.
#[derive(Debug)]
struct FileState {
    ino: InodeId,
    wb: tokio::sync::Mutex<WriteBack>,
    /// Bumped by every local change of the file's bytes (readahead buffers of older ones are dropped).
    generation: AtomicU64,
    /// Open handles of this mount (changed only under the `files` lock, which drops the state at 0).
    open_handles: AtomicU32,
}

#[derive(Debug)]
struct WriteBack {
    buffer: Extents,
    /// The first write-back failure not yet reported (an errno).
    error: Option<i32>,
    /// Done when the last write-back started has finished (each waits for the one before).
    last: watch::Receiver<bool>,
    /// Whose write-backs these are (commits carry the last writer's credentials).
    creds: Credentials,
    /// The end of the bytes written but maybe not yet committed: the size `getattr` reports at least.
    pending_end: u64,
    /// Set when the file was unlinked while open here: it was renamed to this hidden name instead, and
    /// is removed when the last handle closes.
    hidden: Option<(InodeId, String)>,
}

/// An open file's per-handle state.
#[derive(Debug)]
struct Handle {
    ino: InodeId,
    readahead: Mutex<ReadAhead>,
}

/// What the kernel asked of the mount (logged at unmount).
#[derive(Debug, Default)]
pub struct Counters {
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub read_request_max_bytes: AtomicU64,
    pub writes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub write_request_max_bytes: AtomicU64,
    pub write_backs: AtomicU64,
    /// Cluster reads: whole blocks (readahead) and direct ranges.
    pub cluster_reads: AtomicU64,
}

impl Counters {
    fn read(&self, bytes: u64) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.read_request_max_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    fn write(&self, bytes: u64) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.write_request_max_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "reads={} read_bytes={} largest_read={} writes={} write_bytes={} largest_write={} write_backs={} \
             cluster_reads={}",
            get(&self.reads),
            get(&self.read_bytes),
            get(&self.read_request_max_bytes),
            get(&self.writes),
            get(&self.write_bytes),
            get(&self.write_request_max_bytes),
            get(&self.write_backs),
            get(&self.cluster_reads)
        )
    }
}

/// The last page of a directory listing an open directory handle fetched (the kernel asks for a few
/// kilobytes at a time; the cluster answers [`READDIR_PAGE`] entries).
#[derive(Debug, Default)]
struct DirPage {
    /// The entries follow this cookie.
    after: u64,
    entries: Vec<DirEntry>,
    eof: bool,
}

/// The mount's shared state.
#[derive(Debug)]
pub struct Core {
    pool: Pool,
    pub map: InoMap,
    pub settings: Settings,
    stripe_bytes: u64,
    data_fraction: (u64, u64),
    members: Vec<NodeId>,
    files: Mutex<BTreeMap<InodeId, Arc<FileState>>>,
    handles: Mutex<BTreeMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    seen: Arc<Mutex<BTreeMap<InodeId, Signature>>>,
    dirs: Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<DirPage>>>>,
    budget: Arc<Semaphore>,
    statfs: Mutex<Option<(Instant, Statfs)>>,
    pub counters: Counters,
    /// Tells the kernel to drop what it cached (set once the session exists).
    pub notifier: std::sync::OnceLock<fuser::Notifier>,
}

/// Records `attr` as what the mount last saw of its file (bounded: the lowest id goes first).
fn remember(seen: &Mutex<BTreeMap<InodeId, Signature>>, attr: &Attr) {
    let mut seen = seen.lock().expect("seen lock");
    if seen.len() >= SEEN_MAX && !seen.contains_key(&attr.ino) {
        seen.pop_first();
    }
    seen.insert(attr.ino, signature(attr));
}

fn done_receiver() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    drop(tx);
    rx
}

async fn wait_done(mut rx: watch::Receiver<bool>) {
    // The sender sets true when done, or is dropped (a finished or aborted task): either ends the wait.
    let _ = rx.wait_for(|done| *done).await;
}

impl Core {
    /// The core over `pool`, whose clients sit in the file system whose root is `root`.
    pub async fn new(pool: Pool, root: InodeId, attr_timeout: Duration) -> Core {
        let (layout, members) = {
            let w = pool.get().await;
            let layout = tessera_data::stripe_io::layout_of(w.spec.protection.0).expect("a validated spec");
            (layout, w.spec.members.iter().map(|m| NodeId(m.id)).collect())
        };
        let stripe_bytes = tessera_data::stripe_io::StripeShape::capacity_bytes(layout) as u64;
        let data_fraction = match layout {
            StripeLayout::ErasureCoded { data, parity, .. } => (u64::from(data), u64::from(data) + u64::from(parity)),
            StripeLayout::Replicated { copies } => (1, u64::from(copies)),
        };
        let settings = Settings::for_stripe(stripe_bytes, attr_timeout);
        Core {
            pool,
            map: InoMap { root },
            settings,
            stripe_bytes,
            data_fraction,
            members,
            files: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(BTreeMap::new()),
            next_fh: AtomicU64::new(1),
            seen: Arc::default(),
            dirs: Mutex::new(BTreeMap::new()),
            budget: Arc::new(Semaphore::new(settings.buffer_max_bytes as usize)),
            statfs: Mutex::new(None),
            notifier: std::sync::OnceLock::new(),
            counters: Counters::default(),
        }
    }

    async fn call(&self, op: MetaOp) -> Result<MetaReply, Fail> {
        let mut w = self.pool.get().await;
        match w.data_client().meta().execute(op).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(errno)) => Err(errno.into()),
            Err(e) => Err(e.into()),
        }
    }

    fn file(&self, ino: InodeId) -> Option<Arc<FileState>> {
        self.files.lock().expect("files lock").get(&ino).cloned()
    }

    fn file_or_new(&self, ino: InodeId) -> Arc<FileState> {
        self.file_state(ino, false)
    }

    /// The state of `ino`, made if missing; with `open`, one more open handle counted (under the same
    /// lock a last release takes, so a state is never dropped while a new handle is being opened).
    fn file_state(&self, ino: InodeId, open: bool) -> Arc<FileState> {
        let mut files = self.files.lock().expect("files lock");
        let file = files
            .entry(ino)
            .or_insert_with(|| {
                Arc::new(FileState {
                    ino,
                    wb: tokio::sync::Mutex::new(WriteBack {
                        buffer: Extents::default(),
                        error: None,
                        last: done_receiver(),
                        creds: Credentials::root(),
                        pending_end: 0,
                        hidden: None,
                    }),
                    generation: AtomicU64::new(0),
                    open_handles: AtomicU32::new(0),
                })
            })
            .clone();
        if open {
            file.open_handles.fetch_add(1, Ordering::Relaxed);
        }
        file
    }

    fn remember(&self, attr: &Attr) {
        remember(&self.seen, attr);
    }

    /// The size to report for `attr`: at least the end of bytes written here and not yet committed.
    async fn with_pending(&self, attr: Attr) -> (Attr, u64) {
        let size = match self.file(attr.ino) {
            Some(file) if attr.kind == FileType::Regular => attr.size.max(file.wb.lock().await.pending_end),
            _ => attr.size,
        };
        (attr, size)
    }

    /// The attributes an operation answers with `MetaReply::Attr`.
    async fn attr(&self, op: MetaOp) -> Result<Attr, Fail> {
        match self.call(op).await? {
            MetaReply::Attr(attr) => Ok(attr),
            _ => Err(Fail(libc::EIO)),
        }
    }

    /// Fresh attributes (what the kernel then caches, remembered as seen).
    pub async fn getattr(&self, ino: InodeId) -> Result<(Attr, u64), Fail> {
        let attr = self.attr(MetaOp::GetAttr { ino }).await?;
        if attr.kind == FileType::Regular {
            self.remember(&attr);
        }
        Ok(self.with_pending(attr).await)
    }

    pub async fn lookup(&self, parent: InodeId, name: String, creds: Credentials) -> Result<(Attr, u64), Fail> {
        match self.call(MetaOp::Lookup { parent, name, creds }).await? {
            MetaReply::Child { ino, .. } => self.getattr(ino).await,
            _ => Err(Fail(libc::EIO)),
        }
    }

    async fn entry(&self, op: MetaOp) -> Result<Attr, Fail> {
        match self.call(op).await? {
            MetaReply::Entry(attr) => Ok(attr),
            _ => Err(Fail(libc::EIO)),
        }
    }

    pub async fn mkdir(&self, parent: InodeId, name: String, mode: u32, creds: Credentials) -> Result<Attr, Fail> {
        self.entry(MetaOp::Mkdir { parent, name, mode, creds }).await
    }

    pub async fn mknod(
        &self,
        parent: InodeId,
        name: String,
        mode: u32,
        kind: FileType,
        rdev: u64,
        creds: Credentials,
    ) -> Result<Attr, Fail> {
        self.entry(MetaOp::Mknod { parent, name, mode, kind, rdev, creds }).await
    }

    pub async fn symlink(
        &self,
        parent: InodeId,
        name: String,
        target: String,
        creds: Credentials,
    ) -> Result<Attr, Fail> {
        self.entry(MetaOp::Symlink { parent, name, target, creds }).await
    }

    pub async fn link(
        &self,
        ino: InodeId,
        new_parent: InodeId,
        new_name: String,
        creds: Credentials,
    ) -> Result<Attr, Fail> {
        self.entry(MetaOp::Link { ino, new_parent, new_name, creds }).await
    }

    pub async fn readlink(&self, ino: InodeId) -> Result<String, Fail> {
        match self.call(MetaOp::Readlink { ino }).await? {
            MetaReply::LinkTarget(target) => Ok(target),
            _ => Err(Fail(libc::EIO)),
        }
    }

    /// Whether `(parent, name)` names a file open on this mount: then it is renamed to a hidden name
    /// rather than removed (its bytes stay readable through the open handles; NFS's "silly rename").
    async fn open_here(&self, parent: InodeId, name: &str, creds: &Credentials) -> Option<Arc<FileState>> {
        if self.handles.lock().expect("handles lock").is_empty() {
            return None;
        }
        let reply = self.call(MetaOp::Lookup { parent, name: name.to_string(), creds: creds.clone() }).await;
        let Ok(MetaReply::Child { ino, kind: FileType::Regular }) = reply else { return None };
        let file = self.file(ino)?;
        (file.open_handles.load(Ordering::Relaxed) > 0).then_some(file)
    }

    pub async fn unlink(&self, parent: InodeId, name: String, creds: Credentials) -> Result<(), Fail> {
        if let Some(file) = self.open_here(parent, &name, &creds).await {
            let hidden = format!(".tessera-unlinked-{:x}", file.ino.0);
            let op = MetaOp::Rename {
                parent,
                name: name.clone(),
                new_parent: parent,
                new_name: hidden.clone(),
                creds: creds.clone(),
            };
            if self.call(op).await.is_ok() {
                file.wb.lock().await.hidden = Some((parent, hidden));
                return Ok(());
            }
        }
        self.call(MetaOp::Unlink { parent, name, creds }).await.map(drop)
    }

    pub async fn rmdir(&self, parent: InodeId, name: String, creds: Credentials) -> Result<(), Fail> {
        self.call(MetaOp::Rmdir { parent, name, creds }).await.map(drop)
    }

    pub async fn rename(
        &self,
        parent: InodeId,
        name: String,
        new_parent: InodeId,
        new_name: String,
        creds: Credentials,
    ) -> Result<(), Fail> {
        self.call(MetaOp::Rename { parent, name, new_parent, new_name, creds }).await.map(drop)
    }

    /// chmod, chown, utimens and truncate. A size change first writes back what is buffered.
    pub async fn setattr(&self, ino: InodeId, set: SetAttr, creds: Credentials) -> Result<(Attr, u64), Fail> {
        // Bytes written before this call must be committed first: their commit stamps mtime, which
        // would otherwise overwrite a time set here (`tar -x` and `cp -p` set times before close).
        // A truncate also reports a failed write-back, and drops the readahead of older bytes.
        if let Some(file) = self.file(ino) {
            if set.size.is_some() {
                self.flush_file(&file).await?;
                file.wb.lock().await.pending_end = 0;
                file.generation.fetch_add(1, Ordering::Relaxed);
            } else {
                self.write_back_and_wait(&file).await;
            }
        }
        if let Some(size) = set.size {
            let mut w = self.pool.get().await;
            let attr = w.data_client().truncate(ino, size, &creds).await?;
            drop(w);
            self.remember(&attr);
            let rest = SetAttr { size: None, ..set };
            if rest == SetAttr::default() {
                return Ok(self.with_pending(attr).await);
            }
            return self.setattr_meta(ino, rest, creds).await;
        }
        self.setattr_meta(ino, set, creds).await
    }

    async fn setattr_meta(&self, ino: InodeId, set: SetAttr, creds: Credentials) -> Result<(Attr, u64), Fail> {
        let attr = self.attr(MetaOp::SetAttr { ino, set, creds }).await?;
        self.remember(&attr);
        Ok(self.with_pending(attr).await)
    }

    /// Opens `ino`: fresh attributes from the cluster decide whether the kernel keeps its page cache.
    /// Returns the handle and whether to keep the cache.
    pub async fn open(&self, ino: InodeId) -> Result<(u64, bool), Fail> {
        let attr = self.attr(MetaOp::GetAttr { ino }).await?;
        let unchanged = self.seen.lock().expect("seen lock").get(&ino) == Some(&signature(&attr));
        self.remember(&attr);
        if !unchanged && let Some(notifier) = self.notifier.get() {
            // The kernel may hold older attributes (a size) for up to the attribute timeout: drop them
            // before the open is answered, so reads after this open see the file as it is now.
            let _ = notifier.inval_inode(self.map.to_kernel(ino), -1, 0);
        }
        let (file, fh) = self.new_handle(ino);
        // Bytes of ours still being written back make the cluster's attributes lag: keep the cache then.
        let keep = {
            let wb = file.wb.lock().await;
            unchanged || !wb.buffer.is_empty() || wb.pending_end > 0
        };
        Ok((fh, keep))
    }

    /// A new handle of `ino` (counted in its file state).
    fn new_handle(&self, ino: InodeId) -> (Arc<FileState>, u64) {
        let file = self.file_state(ino, true);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle { ino, readahead: Mutex::new(ReadAhead::default()) });
        self.handles.lock().expect("handles lock").insert(fh, handle);
        (file, fh)
    }

    /// Creates and opens a regular file.
    pub async fn create(
        &self,
        parent: InodeId,
        name: String,
        mode: u32,
        creds: Credentials,
    ) -> Result<(Attr, u64), Fail> {
        let attr = self.entry(MetaOp::Create { parent, name, mode, creds }).await?;
        self.remember(&attr);
        let (_, fh) = self.new_handle(attr.ino);
        Ok((attr, fh))
    }

    /// Buffers a write; whole stripes are written back in the background once enough is buffered.
    pub async fn write(&self, ino: InodeId, offset: u64, data: &[u8], creds: Credentials) -> Result<u32, Fail> {
        let len = u32::try_from(data.len()).map_err(|_| Fail(libc::EINVAL))?;
        self.counters.write(data.len() as u64);
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > tessera_meta::FILE_SIZE_MAX_BYTES) {
            return Err(Fail(libc::EFBIG));
        }
        // Wait for room in the mount's buffer budget; while waiting, write back every file's buffer (what
        // is buffered but not yet in flight only leaves the budget by being written back).
        loop {
            if self.budget.available_permits() < data.len() {
                self.flush_everything_in_background().await;
            }
            let wait = self.budget.clone().acquire_many_owned(len);
            if let Ok(permits) = tokio::time::timeout(BUDGET_WAIT, wait).await {
                permits.expect("never closed").forget();
                break;
            }
        }
        let file = self.file_or_new(ino);
        let mut wb = file.wb.lock().await;
        if let Some(errno) = wb.error.take() {
            self.budget.add_permits(len as usize);
            return Err(Fail(errno));
        }
        let grew = wb.buffer.insert(offset, data);
        // Permits cover buffered bytes: give back what landed on bytes already buffered.
        self.budget.add_permits(len as usize - grew as usize);
        wb.creds = creds;
        wb.pending_end = wb.pending_end.max(offset + data.len() as u64);
        file.generation.fetch_add(1, Ordering::Relaxed);
        let ready = if wb.buffer.bytes() > self.settings.file_buffer_max_bytes {
            wb.buffer.take_all()
        } else {
            wb.buffer.take_full_stripes(self.settings.flush_bytes, self.stripe_bytes)
        };
        if !ready.is_empty() {
            self.start_write_back(&file, &mut wb, ready);
        }
        Ok(len)
    }

    /// Starts writing `runs` back, after the file's previous write-back.
    fn start_write_back(&self, file: &Arc<FileState>, wb: &mut WriteBack, runs: Vec<(u64, Vec<u8>)>) {
        self.counters.write_backs.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        let previous = std::mem::replace(&mut wb.last, rx);
        let pool = self.pool.clone();
        let budget = self.budget.clone();
        let file = file.clone();
        let creds = wb.creds.clone();
        let piece = self.settings.flush_piece_bytes;
        let seen = self.seen.clone();
        tokio::spawn(async move {
            wait_done(previous).await;
            let bytes: u64 = runs.iter().map(|(_, r)| r.len() as u64).sum();
            let mut pieces = Vec::new();
            for (offset, run) in &runs {
                let mut at = 0usize;
                while at < run.len() {
                    let len = (run.len() - at).min(piece as usize);
                    pieces.push((offset + at as u64, &run[at..at + len]));
                    at += len;
                }
            }
            let results = futures::future::join_all(pieces.into_iter().map(|(offset, bytes)| {
                let pool = pool.clone();
                let creds = creds.clone();
                let ino = file.ino;
                async move {
                    let mut w = pool.get().await;
                    w.data_client().write(ino, offset, bytes, &creds).await
                }
            }))
            .await;
            let failure = results.iter().find_map(|r| r.as_ref().err().map(super::convert::data_errno));
            // The last commit's attributes are what this mount has now seen of the file (its page cache
            // holds these bytes): a later open here keeps the cache.
            if let Some(attr) = results.iter().filter_map(|r| r.as_ref().ok()).max_by_key(|a| (a.ctime_ns, a.size)) {
                remember(&seen, attr);
            }
            if let Some(errno) = failure {
                tracing::warn!(ino = file.ino.0, errno, "write-back failed");
                let mut wb = file.wb.lock().await;
                wb.error.get_or_insert(errno);
            }
            budget.add_permits(bytes as usize);
            let _ = tx.send(true);
        });
    }

    /// Writes back everything buffered for `file` and waits for every write-back of it; returns (and
    /// clears) the first failure not yet reported.
    async fn flush_file(&self, file: &Arc<FileState>) -> Result<(), Fail> {
        self.write_back_and_wait(file).await;
        match file.wb.lock().await.error.take() {
            Some(errno) => Err(Fail(errno)),
            None => Ok(()),
        }
    }

    /// Writes back everything buffered for `file` and waits for every write-back of it.
    async fn write_back_and_wait(&self, file: &Arc<FileState>) {
        let last = {
            let mut wb = file.wb.lock().await;
            self.write_back_all(file, &mut wb);
            wb.last.clone()
        };
        wait_done(last).await;
        let mut wb = file.wb.lock().await;
        if wb.buffer.is_empty() && *wb.last.borrow() {
            // Everything is committed: the cluster's size is the size.
            wb.pending_end = 0;
        }
    }

    async fn flush_everything_in_background(&self) {
        let files: Vec<Arc<FileState>> = self.files.lock().expect("files lock").values().cloned().collect();
        for file in files {
            let mut wb = file.wb.lock().await;
            self.write_back_all(&file, &mut wb);
        }
    }

    /// Starts writing back everything buffered for `file`.
    fn write_back_all(&self, file: &Arc<FileState>, wb: &mut WriteBack) {
        if !wb.buffer.is_empty() {
            let runs = wb.buffer.take_all();
            self.start_write_back(file, wb, runs);
        }
    }

    /// `flush` (each close) and `fsync`: write back and wait.
    pub async fn flush(&self, ino: InodeId) -> Result<(), Fail> {
        match self.file(ino) {
            Some(file) => self.flush_file(&file).await,
            None => Ok(()),
        }
    }

    /// Writes back everything of every file (at unmount). Returns the files that failed.
    pub async fn flush_all(&self) -> usize {
        let files: Vec<Arc<FileState>> = self.files.lock().expect("files lock").values().cloned().collect();
        let mut failed = 0;
        for file in files {
            if self.flush_file(&file).await.is_err() {
                failed += 1;
            }
        }
        failed
    }

    /// The last close of a handle: write back, forget the handle (and the file when no handle is left).
    pub async fn release(&self, fh: u64) -> Result<(), Fail> {
        let handle = self.handles.lock().expect("handles lock").remove(&fh);
        let Some(handle) = handle else { return Ok(()) };
        let Some(file) = self.file(handle.ino) else { return Ok(()) };
        let result = self.flush_file(&file).await;
        let last = {
            let mut files = self.files.lock().expect("files lock");
            let last = file.open_handles.fetch_sub(1, Ordering::Relaxed) == 1;
            if last {
                files.remove(&handle.ino);
            }
            last
        };
        if !last {
            return result;
        }
        let hidden = file.wb.lock().await.hidden.take();
        if let Some((parent, name)) = hidden {
            let _ = self.call(MetaOp::Unlink { parent, name, creds: Credentials::root() }).await;
        }
        result
    }

    /// Reads `[offset, offset + size)` through handle `fh`, with readahead when reads are sequential.
    pub async fn read(&self, ino: InodeId, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Fail> {
        self.counters.read(u64::from(size));
        let file = self.file(ino);
        let generation = match &file {
            Some(file) => {
                let dirty = {
                    let wb = file.wb.lock().await;
                    !wb.buffer.is_empty() || !*wb.last.borrow()
                };
                if dirty {
                    // Write back first (the cluster then has every byte); a failure stays for close.
                    self.write_back_and_wait(file).await;
                }
                file.generation.load(Ordering::Relaxed)
            }
            None => 0,
        };
        let handle = self.handles.lock().expect("handles lock").get(&fh).cloned();
        let Some(handle) = handle.filter(|h| h.ino == ino) else {
            return self.read_direct(ino, offset, u64::from(size)).await;
        };
        let size = u64::from(size);
        if size == 0 {
            return Ok(Vec::new());
        }
        let end = offset + size;
        let block_bytes = self.read_piece_bytes();
        let window_max = (self.settings.readahead_max_bytes / block_bytes).max(1);
        let fetch = |b: u64| {
            self.counters.cluster_reads.fetch_add(1, Ordering::Relaxed);
            let pool = self.pool.clone();
            let task = tokio::spawn(async move {
                let mut w = pool.get().await;
                w.data_client().read(ino, b * block_bytes, block_bytes).await.map(Arc::new).map_err(Fail::from)
            });
            let joined: futures::future::BoxFuture<'static, Result<Arc<Vec<u8>>, Fail>> =
                Box::pin(async move { task.await.unwrap_or(Err(Fail(libc::EIO))) });
            futures::FutureExt::shared(joined)
        };
        let plan = {
            let mut ra = handle.readahead.lock().expect("readahead lock");
            ra.check_generation(generation);
            ra.plan(offset, end, block_bytes, window_max, fetch)
        };
        let (first, blocks, sequential) = match plan {
            Plan::Direct => return self.read_direct(ino, offset, size).await,
            Plan::Blocks { first, blocks, sequential } => (first, blocks, sequential),
        };
        let mut out = Vec::with_capacity(size as usize);
        let mut last_full = false;
        for (i, block) in blocks.into_iter().enumerate() {
            let bytes = block.await?;
            let start = (first + i as u64) * block_bytes;
            let from = offset.saturating_sub(start).min(bytes.len() as u64) as usize;
            let to = (end - start).min(bytes.len() as u64) as usize;
            out.extend_from_slice(&bytes[from..to]);
            last_full = bytes.len() as u64 == block_bytes;
            if !last_full {
                break; // the end of the file
            }
        }
        if sequential && last_full {
            let last = (end - 1) / block_bytes;
            handle.readahead.lock().expect("readahead lock").read_ahead(last, fetch);
        }
        Ok(out)
    }

    /// A readahead block: whole stripes, at least 1 MiB.
    fn read_piece_bytes(&self) -> u64 {
        self.stripe_bytes.max(1024 * 1024)
    }

    /// One cluster read of exactly the range (a kernel request is at most 1 MiB: never more than a block).
    async fn read_direct(&self, ino: InodeId, offset: u64, len: u64) -> Result<Vec<u8>, Fail> {
        self.counters.cluster_reads.fetch_add(1, Ordering::Relaxed);
        let mut w = self.pool.get().await;
        Ok(w.data_client().read(ino, offset, len).await?)
    }

    pub fn opendir(&self) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().expect("dirs lock").insert(fh, Arc::default());
        fh
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().expect("dirs lock").remove(&fh);
    }

    /// Entries of directory `dir` after `cookie` (at least one page unless the listing ended), from the
    /// handle's last page when it covers them.
    pub async fn readdir(
        &self,
        fh: u64,
        dir: InodeId,
        cookie: u64,
        creds: Credentials,
    ) -> Result<(Vec<DirEntry>, bool), Fail> {
        let page = self.dirs.lock().expect("dirs lock").get(&fh).cloned();
        let page = page.unwrap_or_default();
        let mut page = page.lock().await;
        // A page never fetched is empty and not at its end: it covers nothing.
        let from = if page.after == cookie {
            Some(0)
        } else {
            page.entries.iter().position(|e| e.cookie == cookie).map(|i| i + 1)
        };
        if let Some(from) = from.filter(|&i| i < page.entries.len() || page.eof) {
            return Ok((page.entries[from..].to_vec(), page.eof));
        }
        let (entries, eof) = match self.call(MetaOp::Readdir { dir, cookie, max_entries: READDIR_PAGE, creds }).await? {
            MetaReply::DirEntries { entries, eof } => (entries, eof),
            _ => return Err(Fail(libc::EIO)),
        };
        *page = DirPage { after: cookie, entries: entries.clone(), eof };
        Ok((entries, eof))
    }

    pub async fn setxattr(
        &self,
        ino: InodeId,
        name: String,
        value: Vec<u8>,
        flags: i32,
        creds: Credentials,
    ) -> Result<(), Fail> {
        let flags = match flags {
            0 => XattrFlags::Upsert,
            libc::XATTR_CREATE => XattrFlags::Create,
            libc::XATTR_REPLACE => XattrFlags::Replace,
            _ => return Err(Fail(libc::EINVAL)),
        };
        self.call(MetaOp::SetXattr { ino, name, value, flags, creds }).await.map(drop)
    }

    pub async fn getxattr(&self, ino: InodeId, name: String, creds: Credentials) -> Result<Vec<u8>, Fail> {
        match self.call(MetaOp::GetXattr { ino, name, creds }).await? {
            MetaReply::Xattr(value) => Ok(value),
            _ => Err(Fail(libc::EIO)),
        }
    }

    pub async fn listxattr(&self, ino: InodeId, creds: Credentials) -> Result<Vec<u8>, Fail> {
        match self.call(MetaOp::ListXattr { ino, creds }).await? {
            MetaReply::XattrNames(names) => {
                let mut out = Vec::new();
                for name in names {
                    out.extend_from_slice(name.as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            _ => Err(Fail(libc::EIO)),
        }
    }

    pub async fn removexattr(&self, ino: InodeId, name: String, creds: Credentials) -> Result<(), Fail> {
        self.call(MetaOp::RemoveXattr { ino, name, creds }).await.map(drop)
    }

    /// `fallocate` mode 0: make the file at least `offset + len` long (the cluster allocates on write,
    /// so there is nothing to reserve); other modes are not supported.
    pub async fn fallocate(
        &self,
        ino: InodeId,
        offset: u64,
        len: u64,
        mode: i32,
        creds: Credentials,
    ) -> Result<(), Fail> {
        if mode != 0 {
            return Err(Fail(libc::EOPNOTSUPP));
        }
        let end = offset.checked_add(len).ok_or(Fail(libc::EFBIG))?;
        let (_, size) = self.getattr(ino).await?;
        if end > size {
            self.setattr(ino, SetAttr { size: Some(end), ..SetAttr::default() }, creds).await?;
        }
        Ok(())
    }

    /// Capacity for `statfs`: the free space of every node that answers, scaled by the protection's
    /// overhead (what files can still take). Reused for a couple of seconds.
    pub async fn statfs(&self) -> Statfs {
        if let Some((at, s)) = *self.statfs.lock().expect("statfs lock")
            && at.elapsed() < STATFS_REUSE
        {
            return s;
        }
        let statuses = {
            let mut w = self.pool.get().await;
            w.data_status(&self.members).await
        };
        let (mut total, mut free) = (0u64, 0u64);
        for s in statuses.into_iter().flatten() {
            total += s.used_bytes + s.free_bytes;
            free += s.free_bytes;
        }
        let (num, den) = self.data_fraction;
        let block = u64::from(super::convert::BLOCK_SIZE_BYTES.min(4096));
        let s = Statfs {
            blocks: total / den * num / block,
            blocks_free: free / den * num / block,
            block_size: block as u32,
        };
        *self.statfs.lock().expect("statfs lock") = Some((Instant::now(), s));
        s
    }

    /// `SetTime` of a kernel time.
    pub fn set_time(t: fuser::TimeOrNow) -> SetTime {
        match t {
            fuser::TimeOrNow::Now => SetTime::Now,
            fuser::TimeOrNow::SpecificTime(t) => SetTime::At(super::convert::ns_of(t)),
        }
    }
}
