//! The kernel side: `fuser::Filesystem` over [`Core`]. fuser reads one request at a time on its session
//! thread; each method turns the request into a task on the tokio runtime and returns at once, and the
//! task replies when done, so requests run concurrently (bounded by the pool of cluster clients).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuser::{
    KernelConfig, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use tessera_meta::{Credentials, FileType, NAME_LEN_MAX_BYTES, SetAttr};
use tokio::runtime::Handle;

use super::convert::{self, Fail};
use super::core::Core;

/// Bytes one kernel read or write request carries at most.
pub const REQUEST_MAX_BYTES: u32 = 1024 * 1024;
/// The kernel's readahead we ask for (it may grant less).
pub const KERNEL_READAHEAD_BYTES: u32 = 8 * 1024 * 1024;
/// Kernel requests in flight in the background (readahead, write-behind) at most.
pub const BACKGROUND_MAX: u16 = 64;
/// How long a process's supplementary groups are reused.
const GROUPS_REUSE: Duration = Duration::from_secs(5);
/// Processes whose groups are remembered at most.
const GROUPS_CACHE_MAX: usize = 4096;

/// The mount's file system.
pub struct TesseraFs {
    core: Arc<Core>,
    rt: Handle,
    groups: Mutex<BTreeMap<u32, (Instant, Vec<u32>)>>,
}

impl std::fmt::Debug for TesseraFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TesseraFs").field("core", &self.core).finish_non_exhaustive()
    }
}

impl TesseraFs {
    pub fn new(core: Arc<Core>, rt: Handle) -> TesseraFs {
        TesseraFs { core, rt, groups: Mutex::new(BTreeMap::new()) }
    }

    /// The caller's credentials. Root passes every permission check, so only other users' supplementary
    /// groups are read (from /proc, remembered a few seconds per process).
    fn creds(&self, req: &Request<'_>) -> Credentials {
        let (uid, gid) = (req.uid(), req.gid());
        if uid == 0 {
            return Credentials { uid, gid, groups: Vec::new() };
        }
        let pid = req.pid();
        let mut cache = self.groups.lock().expect("groups lock");
        if let Some((at, groups)) = cache.get(&pid)
            && at.elapsed() < GROUPS_REUSE
        {
            return Credentials { uid, gid, groups: groups.clone() };
        }
        let groups = supplementary_groups(pid);
        if cache.len() >= GROUPS_CACHE_MAX {
            cache.clear();
        }
        cache.insert(pid, (Instant::now(), groups.clone()));
        Credentials { uid, gid, groups }
    }

    fn ttl(&self) -> Duration {
        self.core.settings.attr_timeout
    }
}

/// The `Groups:` line of /proc/PID/status (empty if the process is gone).
fn supplementary_groups(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// A name the service takes: UTF-8 and at most NAME_MAX bytes.
fn name_of(name: &OsStr) -> Result<String, Fail> {
    if name.len() > NAME_LEN_MAX_BYTES {
        return Err(Fail(libc::ENAMETOOLONG));
    }
    name.to_str().map(str::to_string).ok_or(Fail(libc::EINVAL))
}

macro_rules! with_name {
    ($name:expr, $reply:ident) => {
        match name_of($name) {
            Ok(n) => n,
            Err(Fail(e)) => return $reply.error(e),
        }
    };
}

/// A reply that can carry an errno.
trait Fails: Send + 'static {
    fn fail(self, errno: i32);
}

macro_rules! fails {
    ($($reply:ty),*) => {
        $(impl Fails for $reply {
            fn fail(self, errno: i32) {
                self.error(errno)
            }
        })*
    };
}

fails!(ReplyAttr, ReplyCreate, ReplyData, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr);

impl TesseraFs {
    /// Runs `op` as a task and answers the kernel with `ok` of its value, or with its errno.
    fn run<R: Fails, T: Send + 'static>(
        &self,
        reply: R,
        op: impl std::future::Future<Output = Result<T, Fail>> + Send + 'static,
        ok: impl FnOnce(R, T) + Send + 'static,
    ) {
        self.rt.spawn(async move {
            match op.await {
                Ok(value) => ok(reply, value),
                Err(Fail(errno)) => reply.fail(errno),
            }
        });
    }
}

impl fuser::Filesystem for TesseraFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        let _ = config.set_max_write(REQUEST_MAX_BYTES);
        if let Err(nearest) = config.set_max_readahead(KERNEL_READAHEAD_BYTES) {
            let _ = config.set_max_readahead(nearest);
        }
        let _ = config.set_max_background(BACKGROUND_MAX);
        let _ = config.set_congestion_threshold(BACKGROUND_MAX * 3 / 4);
        let _ = config.add_capabilities(fuser::consts::FUSE_PARALLEL_DIROPS);
        Ok(())
    }

    fn destroy(&mut self) {
        let core = self.core.clone();
        let failed = self.rt.block_on(async move { core.flush_all().await });
        if failed > 0 {
            tracing::error!(files = failed, "unmount: write-back failed for some files");
        }
    }

    fn lookup(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let name = with_name!(name, reply);
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let parent = core.map.from_kernel(parent);
        let map = core.map;
        self.run(reply, async move { core.lookup(parent, name, creds).await }, move |reply, (attr, size)| {
            reply.entry(&ttl, &convert::file_attr(map, &attr, size), 0)
        });
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let (core, ttl) = (self.core.clone(), self.ttl());
        let ino = core.map.from_kernel(ino);
        let map = core.map;
        self.run(reply, async move { core.getattr(ino).await }, move |reply, (attr, size)| {
            reply.attr(&ttl, &convert::file_attr(map, &attr, size))
        });
    }

    fn setattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let ino = core.map.from_kernel(ino);
        let set = SetAttr {
            mode: mode.map(|m| m & tessera_meta::MODE_MASK),
            uid,
            gid,
            size,
            atime: atime.map(Core::set_time),
            mtime: mtime.map(Core::set_time),
        };
        let map = core.map;
        self.run(reply, async move { core.setattr(ino, set, creds).await }, move |reply, (attr, size)| {
            reply.attr(&ttl, &convert::file_attr(map, &attr, size))
        });
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let core = self.core.clone();
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.readlink(ino).await }, move |reply, target| reply.data(target.as_bytes()));
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = with_name!(name, reply);
        let Some(kind) = convert::kind_of_mode(mode) else { return reply.error(libc::EINVAL) };
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let parent = core.map.from_kernel(parent);
        let perm = mode & !umask & tessera_meta::MODE_MASK;
        let map = core.map;
        self.run(
            reply,
            async move { core.mknod(parent, name, perm, kind, u64::from(rdev), creds).await },
            move |reply, attr| reply.entry(&ttl, &convert::file_attr(map, &attr, attr.size), 0),
        );
    }

    fn mkdir(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let name = with_name!(name, reply);
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let parent = core.map.from_kernel(parent);
        let perm = mode & !umask & tessera_meta::MODE_MASK;
        let map = core.map;
        self.run(reply, async move { core.mkdir(parent, name, perm, creds).await }, move |reply, attr| {
            reply.entry(&ttl, &convert::file_attr(map, &attr, attr.size), 0)
        });
    }

    fn unlink(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let name = with_name!(name, reply);
        let (core, creds) = (self.core.clone(), self.creds(req));
        let parent = core.map.from_kernel(parent);
        self.run(reply, async move { core.unlink(parent, name, creds).await }, move |reply, ()| reply.ok());
    }

    fn rmdir(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let name = with_name!(name, reply);
        let (core, creds) = (self.core.clone(), self.creds(req));
        let parent = core.map.from_kernel(parent);
        self.run(reply, async move { core.rmdir(parent, name, creds).await }, move |reply, ()| reply.ok());
    }

    fn symlink(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let name = with_name!(link_name, reply);
        let Some(target) = target.to_str().map(str::to_string) else { return reply.error(libc::EINVAL) };
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let parent = core.map.from_kernel(parent);
        let map = core.map;
        self.run(reply, async move { core.symlink(parent, name, target, creds).await }, move |reply, attr| {
            reply.entry(&ttl, &convert::file_attr(map, &attr, attr.size), 0)
        });
    }

    fn rename(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags != 0 {
            // RENAME_NOREPLACE and RENAME_EXCHANGE are not atomic operations of the service; callers
            // (coreutils' mv) fall back to a plain rename on EINVAL.
            return reply.error(libc::EINVAL);
        }
        let name = with_name!(name, reply);
        let newname = with_name!(newname, reply);
        let (core, creds) = (self.core.clone(), self.creds(req));
        let (parent, newparent) = (core.map.from_kernel(parent), core.map.from_kernel(newparent));
        self.run(reply, async move { core.rename(parent, name, newparent, newname, creds).await }, move |reply, ()| {
            reply.ok()
        });
    }

    fn link(&mut self, req: &Request<'_>, ino: u64, newparent: u64, newname: &OsStr, reply: ReplyEntry) {
        let name = with_name!(newname, reply);
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let (ino, newparent) = (core.map.from_kernel(ino), core.map.from_kernel(newparent));
        let map = core.map;
        self.run(reply, async move { core.link(ino, newparent, name, creds).await }, move |reply, attr| {
            reply.entry(&ttl, &convert::file_attr(map, &attr, attr.size), 0)
        });
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let core = self.core.clone();
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.open(ino).await }, move |reply, (fh, keep)| {
            reply.opened(fh, if keep { fuser::consts::FOPEN_KEEP_CACHE } else { 0 })
        });
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else { return reply.error(libc::EINVAL) };
        let core = self.core.clone();
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.read(ino, fh, offset, size).await }, move |reply, bytes| reply.data(&bytes));
    }

    fn write(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Ok(offset) = u64::try_from(offset) else { return reply.error(libc::EINVAL) };
        let (core, creds) = (self.core.clone(), self.creds(req));
        let ino = core.map.from_kernel(ino);
        let data = data.to_vec();
        self.run(reply, async move { core.write(ino, offset, &data, creds).await }, move |reply, n| reply.written(n));
    }

    fn flush(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        let core = self.core.clone();
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.flush(ino).await }, move |reply, ()| reply.ok());
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let core = self.core.clone();
        self.run(reply, async move { core.release(fh).await }, move |reply, ()| reply.ok());
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        // Committed bytes are durable (every chunk fsynced, the commit in a Raft log): write back and wait.
        self.flush(_req, ino, _fh, 0, reply);
    }

    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(self.core.opendir(), 0);
    }

    fn readdir(&mut self, req: &Request<'_>, ino: u64, fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let (core, creds) = (self.core.clone(), self.creds(req));
        let dir = core.map.from_kernel(ino);
        // Offsets: 1 after `.`, 2 after `..`, then each entry's cookie (its position in the listing).
        self.rt.spawn(async move {
            let mut offset = offset as u64;
            if offset == 0 {
                if reply.add(ino, 1, fuser::FileType::Directory, ".") {
                    return reply.ok();
                }
                offset = 1;
            }
            if offset == 1 {
                if reply.add(ino, 2, fuser::FileType::Directory, "..") {
                    return reply.ok();
                }
                offset = 2;
            }
            let mut cookie = if offset == 2 { tessera_meta::READDIR_START } else { offset };
            loop {
                let (entries, eof) = match core.readdir(fh, dir, cookie, creds.clone()).await {
                    Ok(page) => page,
                    Err(Fail(e)) => return reply.error(e),
                };
                for e in &entries {
                    let kind = convert::kind(e.kind);
                    if reply.add(core.map.to_kernel(e.ino), e.cookie as i64, kind, &e.name) {
                        return reply.ok();
                    }
                    cookie = e.cookie;
                }
                if eof || entries.is_empty() {
                    return reply.ok();
                }
            }
        });
    }

    fn releasedir(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _flags: i32, reply: ReplyEmpty) {
        self.core.releasedir(fh);
        reply.ok();
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        // Namespace changes are durable when they are answered (committed to a Raft log).
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let core = self.core.clone();
        self.rt.spawn(async move {
            let s = core.statfs().await;
            // Inodes are allocated per shard with 48-bit counters: report a large, fixed count.
            let files = 1u64 << 40;
            reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_free,
                files,
                files,
                s.block_size,
                NAME_LEN_MAX_BYTES as u32,
                s.block_size,
            );
        });
    }

    fn setxattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if position != 0 {
            return reply.error(libc::EINVAL);
        }
        let name = with_name!(name, reply);
        if kernel_namespace(&name) {
            return reply.error(libc::EOPNOTSUPP);
        }
        let (core, creds) = (self.core.clone(), self.creds(req));
        let ino = core.map.from_kernel(ino);
        let value = value.to_vec();
        self.run(reply, async move { core.setxattr(ino, name, value, flags, creds).await }, move |reply, ()| {
            reply.ok()
        });
    }

    fn getxattr(&mut self, req: &Request<'_>, ino: u64, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = with_name!(name, reply);
        if kernel_namespace(&name) {
            return reply.error(libc::ENODATA);
        }
        let (core, creds) = (self.core.clone(), self.creds(req));
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.getxattr(ino, name, creds).await }, move |reply, value| {
            reply_xattr(reply, size, &value)
        });
    }

    fn listxattr(&mut self, req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let (core, creds) = (self.core.clone(), self.creds(req));
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.listxattr(ino, creds).await }, move |reply, names| {
            reply_xattr(reply, size, &names)
        });
    }

    fn removexattr(&mut self, req: &Request<'_>, ino: u64, name: &OsStr, reply: ReplyEmpty) {
        let name = with_name!(name, reply);
        if kernel_namespace(&name) {
            return reply.error(libc::ENODATA);
        }
        let (core, creds) = (self.core.clone(), self.creds(req));
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.removexattr(ino, name, creds).await }, move |reply, ()| reply.ok());
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let name = with_name!(name, reply);
        if convert::kind_of_mode(mode) != Some(FileType::Regular) {
            return reply.error(libc::EINVAL);
        }
        let (core, creds, ttl) = (self.core.clone(), self.creds(req), self.ttl());
        let parent = core.map.from_kernel(parent);
        let perm = mode & !umask & tessera_meta::MODE_MASK;
        let map = core.map;
        self.run(reply, async move { core.create(parent, name, perm, creds).await }, move |reply, (attr, fh)| {
            reply.created(&ttl, &convert::file_attr(map, &attr, attr.size), 0, fh, 0)
        });
    }

    fn fallocate(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (Ok(offset), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
            return reply.error(libc::EINVAL);
        };
        let (core, creds) = (self.core.clone(), self.creds(req));
        let ino = core.map.from_kernel(ino);
        self.run(reply, async move { core.fallocate(ino, offset, length, mode, creds).await }, move |reply, ()| {
            reply.ok()
        });
    }
}

/// `security.*` and `system.*` attributes (file capabilities, security labels, POSIX ACLs) are not
/// stored: the kernel asks for `security.capability` before every write to a file, and answering that
/// locally saves a cluster round trip per write. `user.*` and `trusted.*` are stored.
fn kernel_namespace(name: &str) -> bool {
    name.starts_with("security.") || name.starts_with("system.")
}

/// getxattr/listxattr's two-step protocol: size 0 asks for the length, else the value if it fits.
fn reply_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(libc::ERANGE);
    } else {
        reply.data(value);
    }
}
