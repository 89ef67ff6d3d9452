//! The POSIX mount (FUSE): `tessera mount` serves one file system of a cluster at a local directory, and
//! `tessera unmount` takes it away. See docs/design/mount.md for the caching and consistency contract.
//!
//! - [`core`]: the operations over a pool of cluster clients, with write-back and readahead.
//! - [`fs`]: the kernel protocol (`fuser`), one tokio task per request.
//! - [`writeback`]: a file's buffered bytes; [`readahead`]: a handle's blocks read ahead.
//! - this module: mounting (foreground or in the background), unmounting, finding who keeps a mount busy.

pub mod convert;
pub mod core;
pub mod fs;
pub mod pool;
pub mod readahead;
pub mod writeback;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::MountOption;

use crate::client::{CliError, ClusterSource};

/// Set in the environment of the process `--background` starts (it then reports readiness on stdout).
const BACKGROUND_CHILD_ENV: &str = "TESSERA_MOUNT_BACKGROUND_CHILD";
/// What the background child prints once the mount is live.
const READY_LINE: &str = "tessera-mount-ready";
/// How long `--background` waits for the mount to come up.
const BACKGROUND_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `tessera unmount` waits for the serving process to exit.
const SERVER_EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the pool's clients learn which nodes are dead.
const LIVE_NODES_REFRESH: Duration = Duration::from_secs(5);
/// Most busy processes an unmount error names.
const BUSY_LIST_MAX: usize = 10;
/// How our mounts' source starts in /proc/mounts (`tessera:FS`; the type is `fuse`).
pub const FS_NAME_PREFIX: &str = "tessera:";

/// What `tessera mount` was asked.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub source: ClusterSource,
    pub fs: String,
    pub mountpoint: PathBuf,
    pub background: bool,
    pub attr_timeout_ms: u64,
    pub workers: usize,
    pub log_file: Option<PathBuf>,
    /// The command line to re-run for `--background` (without `--background`).
    pub args: Vec<String>,
}

fn local(what: impl Into<String>, source: std::io::Error) -> CliError {
    CliError::Local { what: what.into(), source }
}

/// Where a mount's pid file and (by default) log go.
fn run_dir() -> PathBuf {
    std::env::temp_dir().join("tessera-mounts")
}

fn key_of(mountpoint: &Path) -> String {
    mountpoint.to_string_lossy().trim_start_matches('/').replace('/', "%")
}

fn pid_file(mountpoint: &Path) -> PathBuf {
    run_dir().join(format!("{}.pid", key_of(mountpoint)))
}

fn default_log(mountpoint: &Path) -> PathBuf {
    run_dir().join(format!("{}.log", key_of(mountpoint)))
}

/// One line of `/proc/self/mountinfo`.
struct MountLine {
    /// `major:minor` of the mount's device (its `/sys/class/bdi` name).
    device: String,
    point: PathBuf,
    fs_type: String,
    source: String,
}

fn mountinfo() -> Vec<MountLine> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountLine {
                device: fields.get(2)?.to_string(),
                point: PathBuf::from(unescape(fields.get(4)?)),
                fs_type: fields.get(sep + 1)?.to_string(),
                source: fields.get(sep + 2)?.to_string(),
            })
        })
        .collect()
}

/// The mount points of every FUSE mount of ours.
pub fn tessera_mounts() -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .filter(|m| m.fs_type.starts_with("fuse") && m.source.starts_with(FS_NAME_PREFIX))
        .map(|m| m.point)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An absolute, symlink-free mount point (a dead mount answers ENOTCONN to stat: kept as given).
fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) if path.is_absolute() => Ok(path.to_path_buf()),
        Err(_) => {
            std::env::current_dir().map(|d| d.join(path)).map_err(|e| local("cannot read the working directory", e))
        }
    }
}

/// `tessera mount`.
pub fn mount(req: MountRequest) -> Result<(), CliError> {
    let mountpoint = absolute(&req.mountpoint)?;
    let meta = std::fs::metadata(&mountpoint)
        .map_err(|e| local(format!("mount point {} (create it first with mkdir)", mountpoint.display()), e))?;
    if !meta.is_dir() {
        return Err(CliError::Usage(format!("mount point {} is not a directory", mountpoint.display())));
    }
    if tessera_mounts().contains(&mountpoint) {
        return Err(CliError::Usage(format!(
            "{} is already a tessera mount; `tessera unmount {}` first",
            mountpoint.display(),
            mountpoint.display()
        )));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(CliError::Usage(
            "/dev/fuse is missing: load the fuse module (`modprobe fuse`) or install fuse3".into(),
        ));
    }
    std::fs::create_dir_all(run_dir()).map_err(|e| local(format!("cannot create {}", run_dir().display()), e))?;
    let log = req.log_file.clone().unwrap_or_else(|| default_log(&mountpoint));
    let child = std::env::var_os(BACKGROUND_CHILD_ENV).is_some();
    if req.background && !child {
        return start_in_background(&req, &mountpoint, &log);
    }
    // In the foreground the log goes to the terminal (or --log-file); a background child's stderr is
    // its log file already.
    let _ =
        crate::observe::init_logging("warn,tessera_real_io=info", if child { None } else { req.log_file.as_deref() });
    serve(&req, &mountpoint, child)
}

/// Starts this command again without `--background`, its log in `log`, and waits until it reports the
/// mount live (or fails, then shows the end of its log).
fn start_in_background(req: &MountRequest, mountpoint: &Path, log: &Path) -> Result<(), CliError> {
    let exe = std::env::current_exe().map_err(|e| local("cannot find the tessera executable", e))?;
    let log_out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| local(format!("cannot open the log {}", log.display()), e))?;
    let start = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut command = Command::new(exe);
    command.args(&req.args).env(BACKGROUND_CHILD_ENV, "1").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_out);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|e| local("cannot start the mount process", e))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == READY_LINE {
                let _ = tx.send(true);
                return;
            }
        }
        let _ = tx.send(false);
    });
    let ready = rx.recv_timeout(BACKGROUND_READY_TIMEOUT).unwrap_or(false);
    if ready {
        println!(
            "mounted file system {} at {} (server pid {}, log {}); `tessera unmount {}` to unmount",
            req.fs,
            mountpoint.display(),
            child.id(),
            log.display(),
            mountpoint.display()
        );
        return Ok(());
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read(log).unwrap_or_default();
    let tail = String::from_utf8_lossy(&text[(start as usize).min(text.len())..]).into_owned();
    let tail: Vec<&str> = tail.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    Err(CliError::Failed {
        path: mountpoint.display().to_string(),
        message: format!("the mount did not come up (log {}):\n{}", log.display(), tail.join("\n")),
    })
}

/// Connects, mounts and serves until unmounted.
fn serve(req: &MountRequest, mountpoint: &Path, background_child: bool) -> Result<(), CliError> {
    let runtime = crate::cli::client_runtime()?;
    let attr_timeout = Duration::from_millis(req.attr_timeout_ms);
    let core = runtime.block_on(async {
        let pool = pool::Pool::connect(&req.source, &req.fs, req.workers).await?;
        pool.refresh_live_nodes_every(LIVE_NODES_REFRESH);
        let root = pool.get().await.data_client().meta().root();
        Ok::<_, CliError>(Arc::new(core::Core::new(pool, root, attr_timeout).await))
    })?;
    let options = [
        MountOption::FSName(format!("{FS_NAME_PREFIX}{}", req.fs)),
        MountOption::Subtype("tessera".into()),
        MountOption::DefaultPermissions,
        MountOption::AllowOther,
        MountOption::NoAtime,
        MountOption::RW,
    ];
    let filesystem = fs::TesseraFs::new(core.clone(), runtime.handle().clone());
    let mut session = fuser::Session::new(filesystem, mountpoint, &options).map_err(|e| CliError::Failed {
        path: mountpoint.display().to_string(),
        message: format!("mount failed: {e} (mounting needs root or fusermount3 from fuse3)"),
    })?;
    let _ = core.notifier.set(session.notifier());
    let pid_path = pid_file(mountpoint);
    let _ = std::fs::write(&pid_path, format!("{}\n", std::process::id()));
    // The kernel sets the mount's readahead at the init handshake (only ever lowering it): raise it
    // once the mount answers.
    let probe = mountpoint.to_path_buf();
    runtime.spawn_blocking(move || {
        let _ = std::fs::metadata(&probe);
        raise_kernel_readahead(&probe);
    });
    tracing::info!(fs = %req.fs, mountpoint = %mountpoint.display(), "mounted");
    if background_child {
        println!("{READY_LINE}");
    } else {
        println!(
            "mounted file system {} at {}; serving until `tessera unmount {}` (or Ctrl-C)",
            req.fs,
            mountpoint.display(),
            mountpoint.display()
        );
    }
    // Ctrl-C or SIGTERM: unmount if nothing uses the mount, else say so and keep serving.
    let target = mountpoint.to_path_buf();
    runtime.spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let target = target.clone();
            let result = tokio::task::spawn_blocking(move || kernel_unmount(&target, false)).await;
            match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) => tracing::error!("{e}; still serving"),
                Err(_) => return,
            }
        }
    });
    let served = session.run();
    let failed = runtime.block_on(core.flush_all());
    let _ = std::fs::remove_file(&pid_path);
    // The kernel has unmounted (that ended the session): dropping the session would unmount again and
    // log a spurious EINVAL. The process exits next; the kernel reclaims the device descriptor.
    std::mem::forget(session);
    runtime.shutdown_timeout(Duration::from_secs(5));
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted: {}", core.counters.summary());
    served.map_err(|e| local("serving the mount", e))?;
    if failed > 0 {
        return Err(CliError::Failed {
            path: mountpoint.display().to_string(),
            message: format!("{failed} files could not be written back before unmount"),
        });
    }
    Ok(())
}

/// Asks the kernel for a larger readahead on this mount (its backing device's `read_ahead_kb`), so
/// sequential reads arrive as 1 MiB requests; best effort.
fn raise_kernel_readahead(mountpoint: &Path) {
    for m in mountinfo().into_iter().filter(|m| m.point == mountpoint) {
        let bdi = Path::new("/sys/class/bdi").join(&m.device).join("read_ahead_kb");
        let kb = fs::KERNEL_READAHEAD_BYTES / 1024;
        match std::fs::write(&bdi, kb.to_string()) {
            Ok(()) => tracing::info!(read_ahead_kb = kb, "kernel readahead raised"),
            Err(e) => tracing::warn!(path = %bdi.display(), "cannot raise the kernel readahead: {e}"),
        }
    }
}

/// `umount` (or `umount -l`); a busy mount answers with who keeps it busy.
fn kernel_unmount(mountpoint: &Path, lazy: bool) -> Result<(), CliError> {
    let mut command = Command::new("umount");
    if lazy {
        command.arg("-l");
    }
    let out = command.arg(mountpoint).output().map_err(|e| local("cannot run umount", e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.contains("busy") {
        let users = busy_users(mountpoint);
        let named = if users.is_empty() {
            "no process found holding it (a mount below it, or a process that just exited)".to_string()
        } else {
            users.join(", ")
        };
        return Err(CliError::Usage(format!(
            "cannot unmount {}: it is busy, used by {named}. Close those files or leave that directory and retry, \
             or `tessera unmount --lazy {}` to detach it now (it goes away when they finish)",
            mountpoint.display(),
            mountpoint.display()
        )));
    }
    Err(CliError::Failed { path: mountpoint.display().to_string(), message: format!("umount failed: {stderr}") })
}

/// Processes with a working directory, root, executable or open file under `mountpoint`:
/// "pid 123 (sleep: working directory)".
pub fn busy_users(mountpoint: &Path) -> Vec<String> {
    let inside = |p: &Path| p == mountpoint || p.starts_with(mountpoint);
    let me = std::process::id().to_string();
    let mut users = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return users };
    let mut pids: Vec<u32> = procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| pid.to_string() != me)
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let base = PathBuf::from(format!("/proc/{pid}"));
        let mut why = None;
        for (link, what) in [("cwd", "working directory"), ("root", "root directory"), ("exe", "executable")] {
            if std::fs::read_link(base.join(link)).is_ok_and(|p| inside(&p)) {
                why = Some(what.to_string());
                break;
            }
        }
        if why.is_none()
            && let Ok(fds) = std::fs::read_dir(base.join("fd"))
        {
            why = fds
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .find(|p| inside(p))
                .map(|p| format!("open file {}", p.display()));
        }
        if let Some(why) = why {
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            users.push(format!("pid {pid} ({}: {why})", comm.trim()));
            if users.len() >= BUSY_LIST_MAX {
                break;
            }
        }
    }
    users
}

/// `tessera unmount`: unmount (everything closed has been written back: each close waits for it) and
/// wait for the serving process to exit.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), CliError> {
    let mountpoint = absolute(mountpoint)?;
    if !tessera_mounts().contains(&mountpoint) {
        return Err(CliError::Usage(format!(
            "{} is not a tessera mount (none in /proc/self/mountinfo)",
            mountpoint.display()
        )));
    }
    let server: Option<u32> = std::fs::read_to_string(pid_file(&mountpoint)).ok().and_then(|s| s.trim().parse().ok());
    kernel_unmount(&mountpoint, lazy)?;
    if let Some(pid) = server {
        let deadline = Instant::now() + SERVER_EXIT_TIMEOUT;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
                break; // a zombie: exited, not yet reaped by its parent
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("unmounted {}", mountpoint.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn pid_files_are_per_mount_point() {
        assert_ne!(pid_file(Path::new("/a/b")), pid_file(Path::new("/a_b")));
        assert!(pid_file(Path::new("/mnt/x")).starts_with(run_dir()));
    }
}
