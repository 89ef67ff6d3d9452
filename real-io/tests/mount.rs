//! The FUSE mount (`tessera mount`, `tessera unmount`) driven the way a user drives it: real processes,
//! real tools, a local cluster of real node processes on loopback.
//!
//! - `posix_checks_pass_on_the_local_file_system` and `tool_checks_pass_on_the_local_file_system` run the
//!   checks below on a temporary directory of the local file system (ext4): they prove the checks
//!   themselves are right, so a failure on the mount is the mount's.
//! - `posix_semantics_on_the_mount`: file contents of many sizes, overwrite, O_APPEND, holes, truncate,
//!   rename, unlink of an open file, directory errors, hard and symbolic links, mode/owner/times, xattrs,
//!   fsync, statfs, fallocate, fifos, a 2,000-entry directory; then a fresh mount and the cluster's own
//!   `tessera get` see the same bytes.
//! - `real_tools_on_the_mount`: tar in and out, git (commit, repack, fsck, clone), fio with verification,
//!   rsync whose second run has nothing to do.
//! - `two_mounts_see_each_others_changes_after_close`: close-to-open consistency and the attribute
//!   timeout between two mounts of one file system.
//! - `a_node_killed_during_a_copy_completes_or_fails_with_eio`: SIGKILL a node mid-copy; every write
//!   succeeds or fails with EIO, and every file that was written reads back, also from a fresh mount.
//! - `a_busy_unmount_and_a_bad_mount_are_refused_clearly`.
//!
//! The tools come from `bash ci/install-test-tools.sh` (CI runs it first); a missing one fails the test.
//! Each cluster test has a watchdog: a file operation blocked on the mount for minutes would otherwise
//! hang CI, so after [`TEST_LIMIT`] it kills the test's mount processes and the blocked calls fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use tessera_real_io::local;

mod common;
use common::*;

/// A cluster test still running after this is blocked on the mount: the watchdog unblocks it.
const TEST_LIMIT: Duration = Duration::from_secs(300);

/// Commands the checks run (besides the `tessera` binary).
const TOOLS: &[&str] =
    &["getfattr", "setfattr", "python3", "df", "fallocate", "mkfifo", "tar", "git", "fio", "rsync", "bash"];
/// And what mounting needs.
const MOUNT_TOOLS: &[&str] = &["fusermount3", "umount", "sleep"];

// ---------------------------------------------------------------------------------------------------
// Processes: the tessera binary, the cluster, tools.

/// Fails (never skips) when a tool the test needs is missing.
fn require_tools(tools: &[&str]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        assert!(
            std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()),
            "`{tool}` is missing: run `bash ci/install-test-tools.sh` (CI runs it before the tests)"
        );
    }
}

fn require_fuse() {
    require_tools(TOOLS);
    require_tools(MOUNT_TOOLS);
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the mount tests need FUSE (run `bash ci/install-test-tools.sh`, and on a \
         container give it /dev/fuse)"
    );
}

/// Runs `cmd` to the end with its output in files, not pipes (a daemon it leaves behind then holds no
/// pipe of ours open), killing it after `limit`.
fn run_limited(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let files = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let (out_path, err_path) = (files.path().join("out"), files.path().join("err"));
    let create = |p: &Path| File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
    cmd.stdin(Stdio::null()).stdout(create(&out_path)?).stderr(create(&err_path)?);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait for {cmd:?}: {e}"))? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    })
}

fn run(cmd: &mut Command) -> Output {
    run_limited(cmd, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a tool that must succeed; its stdout.
fn run_ok(mut cmd: impl std::borrow::BorrowMut<Command>, what: &str) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(out.status.success(), "{what}: {cmd:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = Command::new(program);
    for a in args {
        cmd.arg(a);
    }
    cmd
}

/// `tar -C from -cf - . | tar -C to -xf -`
fn tar_copy(from: &Path, to: &Path, what: &str) {
    let script = r#"tar -C "$1" -cf - . | tar -C "$2" -xf -"#;
    run_ok(tool("bash", &[&"-o", &"pipefail", &"-c", &script, &"tar", &from, &to]).env("LC_ALL", "C"), what);
}

// ---------------------------------------------------------------------------------------------------
// Mounts.

/// A mount of the cluster's file system; dropping it unmounts (`tessera unmount --lazy`, then
/// `umount -l`), so no test leaves a mount behind.
struct Mount {
    point: PathBuf,
    log: PathBuf,
}

/// `tessera mount --background` of the cluster in `cluster` at `point` (created); asserts the mount is
/// live when the command returns.
fn mount(cluster: &Path, point: &Path, extra: &[&str]) -> Mount {
    fs::create_dir_all(point).expect("create the mount point");
    let point = fs::canonicalize(point).expect("canonical mount point");
    let log = point.with_extension("mount.log");
    let mut cmd = Command::new(BIN);
    cmd.arg("mount").arg("--dir").arg(cluster).arg("--background").arg("--log-file").arg(&log).args(extra);
    let out = run(cmd.arg(&point));
    let mount = Mount { point, log };
    assert!(
        out.status.success(),
        "tessera mount {extra:?} {} failed: {}\nmount log:\n{}",
        mount.point.display(),
        text(&out),
        mount.log_tail()
    );
    let fs_type = mount_type(&mount.point);
    assert!(
        fs_type.as_deref().is_some_and(|t| t.starts_with("fuse")),
        "`tessera mount --background` exited 0 but /proc/mounts shows {fs_type:?} at {} (expected a fuse \
         mount): {}",
        mount.point.display(),
        text(&out)
    );
    mount
}

impl Mount {
    fn log_tail(&self) -> String {
        local::log_tail(&self.log, 40)
    }

    /// `tessera unmount`, which must succeed and leave nothing mounted.
    fn unmount(self) {
        let out = run(Command::new(BIN).arg("unmount").arg(&self.point));
        assert!(out.status.success(), "tessera unmount failed: {}\nmount log:\n{}", text(&out), self.log_tail());
        assert!(mount_type(&self.point).is_none(), "{} is still mounted after `tessera unmount`", self.point.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if mount_type(&self.point).is_none() {
            return;
        }
        let lazy =
            run_limited(Command::new(BIN).arg("unmount").arg("--lazy").arg(&self.point), Duration::from_secs(30));
        if mount_type(&self.point).is_some() {
            eprintln!("`tessera unmount --lazy` left {} mounted ({lazy:?}): umount -l", self.point.display());
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}

/// The file system type mounted at `point` (from /proc/mounts), if any.
fn mount_type(point: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    let point = point.to_str().expect("utf-8 path");
    mounts.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.len() > 2 && fields[1] == point).then(|| fields[2].to_string())
    })
}

/// Processes of a `tessera mount`/`unmount` whose arguments name a path under `under` (the serving
/// process included): (pid, command line).
fn mount_processes(under: &Path) -> Vec<(i32, String)> {
    let own = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = raw.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let is_mount = args.iter().skip(1).any(|a| a.contains("mount") && !a.starts_with('/'));
            let names_ours = args.iter().any(|a| Path::new(a).starts_with(under));
            (is_mount && names_ours).then(|| (pid, args.join(" ")))
        })
        .collect()
}

/// Kills the test's mount processes if the test runs longer than `limit`: a file operation blocked on
/// the mount then fails (ENOTCONN) instead of hanging the test run.
struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(test: &'static str, under: &Path, limit: Duration) -> Watchdog {
        let (stop, stopped) = mpsc::channel::<()>();
        let under = under.to_path_buf();
        let fired = Arc::new(AtomicBool::new(false));
        let fired_here = fired.clone();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                fired_here.store(true, Ordering::SeqCst);
                let processes = mount_processes(&under);
                eprintln!(
                    "WATCHDOG: {test} still runs after {limit:?}, probably blocked on the mount: killing its \
                     mount processes {processes:?} so the blocked calls fail"
                );
                for (pid, _) in processes {
                    local::signal(pid, libc::SIGKILL);
                }
            }
        });
        Watchdog { stop: Some(stop), thread: Some(thread), fired }
    }

    /// Whether the limit passed and the mount processes were killed.
    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Small checks.

/// Deterministic pseudo-random bytes (xorshift64).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Where `actual` departs from `expected`, or `None` if they are equal.
fn difference(actual: &[u8], expected: &[u8]) -> Option<String> {
    if actual == expected {
        return None;
    }
    let place = match actual.iter().zip(expected).position(|(a, e)| a != e) {
        Some(at) => {
            let zeros = actual[at..].iter().take(4096).all(|&b| b == 0);
            format!(
                "first difference at byte {at}: expected {:#04x}, read {:#04x}{}",
                expected[at],
                actual[at],
                if zeros { " (zeros from there)" } else { "" }
            )
        }
        None => "the shorter is a prefix of the longer".to_string(),
    };
    Some(format!("expected {} bytes, read {} bytes; {place}", expected.len(), actual.len()))
}

fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if let Some(d) = difference(actual, expected) {
        panic!("{what}: {d}");
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {} bytes to {}: {e}", data.len(), path.display()));
}

fn mkdir(path: &Path) {
    fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

fn meta(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EPERM => "EPERM",
        libc::EIO => "EIO",
        libc::EXDEV => "EXDEV",
        _ => "errno",
    };
    format!("{name} ({errno})")
}

/// `result` must be the error `errno`.
fn expect_errno<T: std::fmt::Debug>(result: io::Result<T>, errno: i32, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected {} but it succeeded ({v:?})", errno_name(errno)),
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(errno), "{what}: expected {} but got {e}", errno_name(errno))
        }
    }
}

/// The names in `dir`, sorted (duplicates kept).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.expect("readdir entry").file_name().into_string().expect("utf-8 name"))
        .collect();
    names.sort();
    names
}

/// `dir` lists exactly `expected`, each name once.
fn assert_listing(dir: &Path, expected: &BTreeSet<String>, what: &str) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for name in names(dir) {
        *seen.entry(name).or_default() += 1;
    }
    let twice: Vec<&String> = seen.iter().filter(|&(_, &n)| n > 1).map(|(k, _)| k).collect();
    let missing: Vec<&String> = expected.iter().filter(|n| !seen.contains_key(*n)).collect();
    let extra: Vec<&String> = seen.keys().filter(|n| !expected.contains(*n)).collect();
    assert!(
        twice.is_empty() && missing.is_empty() && extra.is_empty(),
        "{what}: readdir of {} listed {} names for {} expected; {} listed more than once (first: {:?}), {} \
         missing (first: {:?}), {} unexpected (first: {:?})",
        dir.display(),
        seen.values().sum::<usize>(),
        expected.len(),
        twice.len(),
        &twice[..twice.len().min(5)],
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
    );
}

// ---------------------------------------------------------------------------------------------------
// POSIX semantics: `check_posix(root)` runs on any directory.

/// File sizes written and read back whole and in pieces.
const SIZES: [usize; 5] = [0, 1, 4096, (1 << 20) + 3, 9 << 20];

fn sized_content(i: usize) -> Vec<u8> {
    pattern(100 + i as u64, SIZES[i])
}

fn check_posix(root: &Path) {
    check_sizes(&root.join("sizes"));
    check_overwrite_append_holes(&root.join("overwrite"));
    check_truncate(&root.join("truncate"));
    check_rename(&root.join("rename"));
    check_directory_errors(&root.join("dirs"));
    check_links(&root.join("links"));
    check_attributes(&root.join("attrs"));
    check_xattrs(&root.join("xattrs"));
    check_fsync_statfs_fallocate_fifo(root, &root.join("misc"));
    check_large_directory(&root.join("large"));
}

fn check_sizes(dir: &Path) {
    mkdir(dir);
    for (i, &size) in SIZES.iter().enumerate() {
        let path = dir.join(format!("size-{size}"));
        let data = sized_content(i);
        write(&path, &data);
        assert_eq!(meta(&path).len(), size as u64, "size of {} after writing {size} bytes", path.display());
        assert_same(&read(&path), &data, &format!("{} read back whole", path.display()));
        let file = File::open(&path).expect("open");
        for (offset, len) in [(0, 7), (size / 2, 4099), (4093, 10), (size.saturating_sub(5), 5)] {
            if offset >= size {
                continue;
            }
            let len = len.min(size - offset);
            let mut piece = vec![0; len];
            file.read_exact_at(&mut piece, offset as u64).unwrap_or_else(|e| panic!("pread {len} at {offset}: {e}"));
            assert_same(&piece, &data[offset..offset + len], &format!("{len} bytes at {offset} of {}", path.display()));
        }
        let mut past = [0u8; 16];
        let n = file.read_at(&mut past, size as u64).expect("pread at the end");
        assert_eq!(n, 0, "a read at the end of the {size}-byte file {} returned {n} bytes", path.display());
    }
    let existing = dir.join("size-1");
    expect_errno(
        OpenOptions::new().write(true).create_new(true).open(&existing),
        libc::EEXIST,
        "O_CREAT|O_EXCL of an existing file",
    );
    expect_errno(File::open(dir.join("missing")), libc::ENOENT, "open of a missing file");
}

fn check_overwrite_append_holes(dir: &Path) {
    mkdir(dir);
    // Overwrite in the middle and across the end.
    let path = dir.join("middle");
    let mut expected = pattern(1, (1 << 20) + 3);
    write(&path, &expected);
    let patch = pattern(2, 10_000);
    let file = OpenOptions::new().write(true).open(&path).expect("open for writing");
    file.write_all_at(&patch, 500_000).expect("overwrite in the middle");
    expected[500_000..510_000].copy_from_slice(&patch);
    let tail_at = expected.len() - 100;
    file.write_all_at(&patch, tail_at as u64).expect("overwrite across the end");
    expected.truncate(tail_at);
    expected.extend_from_slice(&patch);
    drop(file);
    assert_same(
        &read(&path),
        &expected,
        "a 1 MiB + 3 file after overwriting 10,000 bytes at 500,000 and across its end",
    );

    // O_APPEND writes land at the end, also after another descriptor extended the file.
    let path = dir.join("append");
    write(&path, b"abc");
    let mut appender = OpenOptions::new().append(true).open(&path).expect("open O_APPEND");
    appender.write_all(b"def").expect("append");
    let other = OpenOptions::new().write(true).open(&path).expect("open for writing");
    other.write_all_at(b"0123456789", 0).expect("write at 0");
    appender.write_all(b"ghi").expect("append after the file grew");
    drop((appender, other));
    assert_same(
        &read(&path),
        b"0123456789ghi",
        "O_APPEND writes (\"abc\", append \"def\", another fd writes 10 bytes at 0, append \"ghi\")",
    );

    // Holes read as zeros: after a write past the end, and in the middle of a file.
    let path = dir.join("sparse");
    let file = File::create(&path).expect("create");
    file.write_all_at(b"head", 0).expect("write head");
    let tail_at = (5 << 20) + 17;
    file.write_all_at(b"tail", tail_at as u64).expect("write past a hole");
    drop(file);
    let mut expected = vec![0; tail_at + 4];
    expected[..4].copy_from_slice(b"head");
    expected[tail_at..].copy_from_slice(b"tail");
    assert_same(&read(&path), &expected, "a file written at 0 and after a 5 MiB hole (the hole must read as zeros)");
    let path = dir.join("sparse-from-start");
    File::create(&path).expect("create").write_all_at(b"x", 3 << 20).expect("write after a hole");
    let mut expected = vec![0; (3 << 20) + 1];
    expected[3 << 20] = b'x';
    assert_same(&read(&path), &expected, "a file whose first write is at 3 MiB");
}

fn check_truncate(dir: &Path) {
    mkdir(dir);
    let path = dir.join("shrink-extend");
    let data = pattern(3, 1 << 20);
    write(&path, &data);
    let file = OpenOptions::new().write(true).open(&path).expect("open for writing");
    file.set_len(1000).expect("truncate to 1,000 bytes");
    assert_eq!(meta(&path).len(), 1000, "size after truncating 1 MiB to 1,000 bytes");
    assert_same(&read(&path), &data[..1000], "a 1 MiB file truncated to 1,000 bytes");
    file.set_len((3 << 20) + 5).expect("extend to 3 MiB + 5");
    let mut expected = data[..1000].to_vec();
    expected.resize((3 << 20) + 5, 0);
    assert_same(
        &read(&path),
        &expected,
        "a 1 MiB file shrunk to 1,000 bytes then extended (the old bytes past 1,000 must not come back)",
    );
    file.write_all_at(b"end", (3 << 20) + 2).expect("write at the new end");
    drop(file);
    expected[(3 << 20) + 2..].copy_from_slice(b"end");
    assert_same(&read(&path), &expected, "the extended file after writing its last 3 bytes");
    File::create(&path).expect("open O_TRUNC");
    assert_eq!(meta(&path).len(), 0, "size after open(O_TRUNC)");
    assert_same(&read(&path), b"", "a file after open(O_TRUNC)");
}

fn check_rename(dir: &Path) {
    mkdir(dir);
    // Same directory.
    let (a, b) = (dir.join("a"), dir.join("b"));
    write(&a, b"first");
    fs::rename(&a, &b).expect("rename a -> b");
    expect_errno(fs::metadata(&a), libc::ENOENT, "stat of the old name after rename");
    assert_same(&read(&b), b"first", "the renamed file");
    // Across directories.
    let (d1, d2) = (dir.join("d1"), dir.join("d2"));
    mkdir(&d1);
    mkdir(&d2);
    write(&d1.join("x"), b"moved");
    fs::rename(d1.join("x"), d2.join("y")).expect("rename d1/x -> d2/y");
    assert_eq!(names(&d1), Vec::<String>::new(), "d1 after moving its only file out");
    assert_eq!(names(&d2), vec!["y".to_string()], "d2 after moving a file in as y");
    assert_same(&read(&d2.join("y")), b"moved", "the file moved across directories");
    // Replacing a file: the target name now has the source's inode and bytes.
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    write(&src, b"new");
    write(&dst, b"old content");
    let src_ino = meta(&src).ino();
    fs::rename(&src, &dst).expect("rename onto an existing file");
    expect_errno(fs::metadata(&src), libc::ENOENT, "stat of the source after rename onto a file");
    assert_same(&read(&dst), b"new", "a file renamed onto an existing file");
    assert_eq!(meta(&dst).ino(), src_ino, "the inode at the target name after rename onto a file");
    // Replacing an empty directory.
    let (full, empty) = (dir.join("full"), dir.join("empty"));
    mkdir(&full);
    mkdir(&empty);
    write(&full.join("inner"), b"inside");
    fs::rename(&full, &empty).expect("rename a directory onto an empty directory");
    assert_same(&read(&empty.join("inner")), b"inside", "a file of a directory renamed onto an empty directory");
    expect_errno(fs::metadata(&full), libc::ENOENT, "stat of a directory renamed away");
    // Onto a non-empty directory, a file onto a directory, a directory onto a file, into itself.
    let (n1, n2) = (dir.join("n1"), dir.join("n2"));
    mkdir(&n1);
    mkdir(&n2);
    write(&n2.join("keep"), b"keep");
    expect_errno(fs::rename(&n1, &n2), libc::ENOTEMPTY, "rename of a directory onto a non-empty directory");
    assert!(meta(&n1).is_dir(), "the source directory of a refused rename is gone");
    assert_same(&read(&n2.join("keep")), b"keep", "a file in the target of a refused rename");
    expect_errno(fs::rename(&b, &n1), libc::EISDIR, "rename of a file onto a directory");
    expect_errno(fs::rename(&n1, &b), libc::ENOTDIR, "rename of a directory onto a file");
    fs::create_dir_all(dir.join("t/sub")).expect("mkdir -p t/sub");
    expect_errno(fs::rename(dir.join("t"), dir.join("t/sub/t2")), libc::EINVAL, "rename of a directory into itself");
    expect_errno(fs::rename(dir.join("missing"), dir.join("other")), libc::ENOENT, "rename of a missing name");
    // A directory tree moved to another directory keeps its contents.
    fs::create_dir_all(dir.join("tree/deep")).expect("mkdir -p tree/deep");
    write(&dir.join("tree/deep/f"), b"deep");
    fs::rename(dir.join("tree"), d2.join("tree")).expect("rename a tree across directories");
    assert_same(&read(&d2.join("tree/deep/f")), b"deep", "a file two levels down in a moved directory");
}

fn check_unlink_of_an_open_file(dir: &Path) {
    mkdir(dir);
    let path = dir.join("open");
    let data = pattern(4, 200_000);
    write(&path, &data);
    let mut file = open_rw(&path);
    fs::remove_file(&path).expect("unlink an open file");
    expect_errno(fs::metadata(&path), libc::ENOENT, "stat of an unlinked file that is still open");
    // The mount keeps a file unlinked while open here under a hidden name until its last close (NFS's
    // "silly rename", docs/design/mount.md); ext4 lists nothing.
    let visible: Vec<String> = names(dir).into_iter().filter(|n| !n.starts_with(".tessera-unlinked-")).collect();
    assert_eq!(visible, Vec::<String>::new(), "the listing of a directory whose only file was unlinked while open");
    let mut back = Vec::new();
    file.read_to_end(&mut back).expect("read an unlinked open file");
    assert_same(&back, &data, "an unlinked file read through a descriptor opened before the unlink");
    file.write_all_at(b"more", data.len() as u64).expect("write to an unlinked open file");
    let mut more = [0u8; 4];
    file.read_exact_at(&mut more, data.len() as u64).expect("read back from an unlinked open file");
    assert_eq!(&more, b"more", "bytes written to an unlinked open file read back through it");
    assert_eq!(file.metadata().expect("fstat").len(), data.len() as u64 + 4, "fstat size of the unlinked file");
    drop(file);
    // The kernel sends the release (which removes the hidden name) after close returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(names(dir), Vec::<String>::new(), "the listing once the unlinked file's last descriptor closed");
    fs::remove_dir(dir).expect("rmdir of the directory that held an unlinked file, once it is closed");
}

fn check_directory_errors(dir: &Path) {
    mkdir(dir);
    let d = dir.join("d");
    mkdir(&d);
    expect_errno(fs::create_dir(&d), libc::EEXIST, "mkdir of an existing directory");
    let f = d.join("f");
    write(&f, b"f");
    expect_errno(fs::create_dir(&f), libc::EEXIST, "mkdir over an existing file");
    expect_errno(fs::remove_dir(&d), libc::ENOTEMPTY, "rmdir of a non-empty directory");
    expect_errno(fs::remove_dir(&f), libc::ENOTDIR, "rmdir of a file");
    expect_errno(fs::remove_dir(dir.join("missing")), libc::ENOENT, "rmdir of a missing directory");
    expect_errno(fs::create_dir(f.join("sub")), libc::ENOTDIR, "mkdir under a file");
    expect_errno(File::create(f.join("x")), libc::ENOTDIR, "create under a file");
    expect_errno(fs::metadata(f.join("x")), libc::ENOTDIR, "stat of a path through a file");
    expect_errno(fs::create_dir(dir.join("missing/x")), libc::ENOENT, "mkdir under a missing directory");
    expect_errno(OpenOptions::new().write(true).open(&d), libc::EISDIR, "open of a directory for writing");
    expect_errno(fs::remove_file(&d), libc::EISDIR, "unlink of a directory");
    expect_errno(fs::remove_file(dir.join("missing")), libc::ENOENT, "unlink of a missing file");
    fs::remove_file(&f).expect("unlink");
    fs::remove_dir(&d).expect("rmdir of an emptied directory");
    expect_errno(fs::metadata(&d), libc::ENOENT, "stat of a removed directory");
    fs::create_dir_all(dir.join("a/b/c")).expect("mkdir -p a/b/c");
    write(&dir.join("a/b/c/file"), b"x");
    fs::remove_dir_all(dir.join("a")).expect("rm -r a");
    assert_eq!(names(dir), Vec::<String>::new(), "the directory after removing everything in it");
}

fn check_links(dir: &Path) {
    mkdir(dir);
    let sub = dir.join("sub");
    mkdir(&sub);
    // Hard links: one inode, two names, shared bytes.
    let (a, b) = (dir.join("a"), sub.join("b"));
    write(&a, b"shared");
    fs::hard_link(&a, &b).expect("link a -> sub/b");
    let (ma, mb) = (meta(&a), meta(&b));
    assert_eq!((ma.nlink(), mb.nlink()), (2, 2), "link counts of two hard-linked names");
    assert_eq!(ma.ino(), mb.ino(), "inode numbers of two hard-linked names");
    open_rw(&b).write_all_at(b"SHARED", 0).expect("write through the second name");
    assert_same(&read(&a), b"SHARED", "a file read through its first name after writing through its hard link");
    expect_errno(fs::hard_link(&a, &b), libc::EEXIST, "link onto an existing name");
    expect_errno(fs::hard_link(&sub, dir.join("sublink")), libc::EPERM, "link of a directory");
    fs::remove_file(&a).expect("unlink the first name");
    assert_eq!(meta(&b).nlink(), 1, "link count after unlinking one of two names");
    assert_same(&read(&b), b"SHARED", "the remaining name after unlinking the other");
    // Symbolic links: relative, absolute, to a directory, dangling, long.
    let target = dir.join("target.txt");
    write(&target, b"target content");
    let rel = dir.join("rel");
    std::os::unix::fs::symlink("target.txt", &rel).expect("symlink");
    assert_eq!(fs::read_link(&rel).expect("readlink"), Path::new("target.txt"), "readlink of a relative symlink");
    assert!(meta(&rel).file_type().is_symlink(), "lstat of a symlink: {:?}", meta(&rel).file_type());
    assert_eq!(meta(&rel).len(), "target.txt".len() as u64, "lstat size of a symlink (its target's length)");
    assert_same(&read(&rel), b"target content", "a file read through a relative symlink");
    let abs = dir.join("abs");
    std::os::unix::fs::symlink(&target, &abs).expect("symlink");
    assert_same(&read(&abs), b"target content", "a file read through an absolute symlink");
    std::os::unix::fs::symlink("sub", dir.join("dirlink")).expect("symlink to a directory");
    assert_same(&read(&dir.join("dirlink/b")), b"SHARED", "a file read through a symlink to its directory");
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink("nowhere", &dangling).expect("dangling symlink");
    assert_eq!(fs::read_link(&dangling).expect("readlink"), Path::new("nowhere"), "readlink of a dangling symlink");
    expect_errno(fs::metadata(&dangling), libc::ENOENT, "stat through a dangling symlink");
    expect_errno(std::os::unix::fs::symlink("x", &rel), libc::EEXIST, "symlink onto an existing name");
    let long = format!("{}end", "dir/".repeat(250));
    std::os::unix::fs::symlink(&long, dir.join("long")).expect("symlink with a 1,003-byte target");
    assert_eq!(fs::read_link(dir.join("long")).expect("readlink"), Path::new(&long), "readlink of a long target");
    // Listing: the entry types.
    let kinds: BTreeMap<String, &str> = fs::read_dir(dir)
        .expect("readdir")
        .map(|e| {
            let e = e.expect("entry");
            let t = e.file_type().expect("entry type");
            let kind = if t.is_symlink() {
                "symlink"
            } else if t.is_dir() {
                "dir"
            } else {
                "file"
            };
            (e.file_name().into_string().expect("utf-8"), kind)
        })
        .collect();
    let expected: BTreeMap<String, &str> = [
        ("abs", "symlink"),
        ("dangling", "symlink"),
        ("dirlink", "symlink"),
        ("long", "symlink"),
        ("rel", "symlink"),
        ("sub", "dir"),
        ("target.txt", "file"),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k))
    .collect();
    assert_eq!(kinds, expected, "names and entry types listed in a directory of links");
}

fn check_attributes(dir: &Path) {
    mkdir(dir);
    let f = dir.join("f");
    write(&f, b"attrs");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).expect("chmod 640");
    assert_eq!(meta(&f).mode() & 0o7777, 0o640, "file mode after chmod 640");
    let d = dir.join("d");
    mkdir(&d);
    fs::set_permissions(&d, fs::Permissions::from_mode(0o750)).expect("chmod 750");
    assert_eq!(meta(&d).mode() & 0o7777, 0o750, "directory mode after chmod 750");
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).expect("chown 1234:5678");
    assert_eq!((meta(&f).uid(), meta(&f).gid()), (1234, 5678), "owner and group after chown 1234:5678");
    let l = dir.join("l");
    std::os::unix::fs::symlink("f", &l).expect("symlink");
    std::os::unix::fs::lchown(&l, Some(4321), Some(8765)).expect("lchown");
    assert_eq!((meta(&l).uid(), meta(&l).gid()), (4321, 8765), "owner and group of a symlink after lchown");
    assert_eq!(meta(&f).uid(), 1234, "owner of the target after lchown of its symlink");
    // Times, to the nanosecond.
    let accessed = SystemTime::UNIX_EPOCH + Duration::new(1_000_000_000, 250_000_000);
    let modified = SystemTime::UNIX_EPOCH + Duration::new(1_234_567_890, 123_456_789);
    let file = OpenOptions::new().write(true).open(&f).expect("open");
    file.set_times(FileTimes::new().set_accessed(accessed).set_modified(modified)).expect("futimens");
    drop(file);
    let m = meta(&f);
    assert_eq!(m.modified().expect("mtime"), modified, "mtime after setting it");
    assert_eq!(m.accessed().expect("atime"), accessed, "atime after setting it");
    open_rw(&f).write_all_at(b"!", 0).expect("write");
    let after = meta(&f).modified().expect("mtime");
    assert!(after > modified, "a write must move mtime past the {modified:?} set before; it is {after:?}");
    // Times set through the descriptor that wrote the bytes, before it is closed (tar and `cp -p` do
    // this): the close must not replace them.
    let buffered = dir.join("buffered");
    let mut file = File::create(&buffered).expect("create");
    file.write_all(&pattern(8, 5000)).expect("write");
    file.set_times(FileTimes::new().set_modified(buffered_mtime())).expect("futimens before close");
    file.set_permissions(fs::Permissions::from_mode(0o644)).expect("fchmod before close");
    drop(file);
    assert_eq!(meta(&buffered).modified().expect("mtime"), buffered_mtime(), "mtime set before the close");
}

/// The mtime `check_attributes` sets on `attrs/buffered` before closing it.
fn buffered_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_100_000_000)
}

/// What `check_posix(root)` left is still there: run after unmounting and mounting again, where nothing
/// can come from a cache of the mount or of the kernel.
fn check_posix_after_remount(root: &Path) {
    for (i, size) in SIZES.iter().enumerate() {
        let path = root.join(format!("sizes/size-{size}"));
        assert_same(&read(&path), &sized_content(i), &format!("{} read after mounting again", path.display()));
    }
    let mut sparse = vec![0; (5 << 20) + 21];
    sparse[..4].copy_from_slice(b"head");
    sparse[(5 << 20) + 17..].copy_from_slice(b"tail");
    assert_same(&read(&root.join("overwrite/sparse")), &sparse, "the sparse file after mounting again");
    let f = meta(&root.join("attrs/f"));
    assert_eq!(
        (f.mode() & 0o7777, f.uid(), f.gid()),
        (0o640, 1234, 5678),
        "attrs/f mode, owner, group after mounting again"
    );
    let buffered = meta(&root.join("attrs/buffered")).modified().expect("mtime");
    assert_eq!(buffered, buffered_mtime(), "attrs/buffered: the mtime set before its close, after mounting again");
    let l = meta(&root.join("attrs/l"));
    assert_eq!((l.uid(), l.gid()), (4321, 8765), "a symlink's owner and group after mounting again");
    let b = root.join("links/sub/b");
    assert_same(&read(&b), b"SHARED", "links/sub/b after mounting again");
    assert_eq!(meta(&b).nlink(), 1, "links/sub/b link count after mounting again");
    let long = fs::read_link(root.join("links/long")).expect("readlink");
    assert_eq!(long, Path::new(&format!("{}end", "dir/".repeat(250))), "a long symlink target after mounting again");
    assert_eq!(xattr_names(&root.join("xattrs/f")), ["user.bin", "user.fresh"], "xattr names after mounting again");
    assert_eq!(xattr_value(&root.join("xattrs/f"), "user.fresh"), "v", "an xattr value after mounting again");
}

fn xattr_names(path: &Path) -> Vec<String> {
    let out = run_ok(tool("getfattr", &[&"--absolute-names", &"-m", &"^user\\.", &path]), "getfattr list");
    let mut names: Vec<String> =
        out.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
    names.sort();
    names
}

fn xattr_value(path: &Path, name: &str) -> String {
    run_ok(tool("getfattr", &[&"--absolute-names", &"--only-values", &"-n", &name, &path]), "getfattr value")
}

fn check_xattrs(dir: &Path) {
    mkdir(dir);
    let f = dir.join("f");
    write(&f, b"x");
    run_ok(tool("setfattr", &[&"-n", &"user.color", &"-v", &"blue", &f]), "setfattr user.color");
    assert_eq!(xattr_value(&f, "user.color"), "blue", "value of user.color");
    run_ok(tool("setfattr", &[&"-n", &"user.bin", &"-v", &"0x00ff10", &f]), "setfattr binary user.bin");
    let hex =
        run_ok(tool("getfattr", &[&"--absolute-names", &"-e", &"hex", &"-n", &"user.bin", &f]), "getfattr -e hex");
    assert!(hex.contains("user.bin=0x00ff10"), "binary value of user.bin: expected 0x00ff10, getfattr printed:\n{hex}");
    run_ok(tool("setfattr", &[&"-n", &"user.color", &"-v", &"green", &f]), "setfattr replace");
    assert_eq!(xattr_value(&f, "user.color"), "green", "value of user.color after setting it again");
    // XATTR_CREATE and XATTR_REPLACE (setfattr has no flags: Python's os.setxattr does).
    let script = "import errno, os, sys\n\
                  def attempt(name, flags):\n    \
                      try:\n        os.setxattr(sys.argv[1], name, b'v', flags)\n        return 'ok'\n    \
                      except OSError as e:\n        return errno.errorcode.get(e.errno, str(e.errno))\n\
                  print(attempt('user.bin', os.XATTR_CREATE), attempt('user.fresh', os.XATTR_REPLACE),\n      \
                        attempt('user.fresh', os.XATTR_CREATE), attempt('user.fresh', os.XATTR_REPLACE))\n";
    let flags = run_ok(tool("python3", &[&"-c", &script, &f]), "setxattr with flags");
    assert_eq!(
        flags.trim(),
        "EEXIST ENODATA ok ok",
        "setxattr results: XATTR_CREATE of an existing name, XATTR_REPLACE of a missing one, then CREATE, REPLACE"
    );
    let hex =
        run_ok(tool("getfattr", &[&"--absolute-names", &"-e", &"hex", &"-n", &"user.bin", &f]), "getfattr -e hex");
    assert!(hex.contains("user.bin=0x00ff10"), "user.bin changed by a refused XATTR_CREATE:\n{hex}");
    assert_eq!(xattr_names(&f), ["user.bin", "user.color", "user.fresh"], "listed xattr names");
    run_ok(tool("setfattr", &[&"-x", &"user.color", &f]), "setfattr -x");
    assert_eq!(xattr_names(&f), ["user.bin", "user.fresh"], "listed xattr names after removing user.color");
    let gone = tool("getfattr", &[&"--absolute-names", &"-n", &"user.color", &f]).output().expect("getfattr");
    assert!(
        !gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("No such attribute"),
        "getfattr of a removed xattr must fail with \"No such attribute\": {}",
        text(&gone)
    );
    let again = tool("setfattr", &[&"-x", &"user.color", &f]).output().expect("setfattr");
    assert!(!again.status.success(), "removing a missing xattr succeeded: {}", text(&again));
    run_ok(tool("setfattr", &[&"-n", &"user.d", &"-v", &"on a dir", &dir]), "setfattr on a directory");
    assert_eq!(xattr_value(dir, "user.d"), "on a dir", "an xattr of a directory");
}

fn check_fsync_statfs_fallocate_fifo(root: &Path, dir: &Path) {
    mkdir(dir);
    let data = pattern(5, 100_000);
    let path = dir.join("synced");
    let mut file = File::create(&path).expect("create");
    file.write_all(&data).expect("write");
    file.sync_data().expect("fdatasync");
    file.sync_all().expect("fsync");
    drop(file);
    File::open(dir).expect("open a directory").sync_all().expect("fsync of a directory");
    assert_same(&read(&path), &data, "a file after fsync");
    // statfs: `df` shows a size and free space.
    let df = run_ok(tool("df", &[&"-B1", &"--output=size,avail", &root]), "df");
    let numbers: Vec<u64> = df.lines().nth(1).unwrap_or("").split_whitespace().filter_map(|n| n.parse().ok()).collect();
    assert!(
        numbers.len() == 2 && numbers[0] > 0 && numbers[1] > 0 && numbers[1] <= numbers[0],
        "df must show a non-zero size and free space no larger than it; it printed:\n{df}"
    );
    // fallocate mode 0: extends with zeros, keeps the bytes there.
    let path = dir.join("allocated");
    let data = pattern(6, 1000);
    write(&path, &data);
    run_ok(tool("fallocate", &[&"-l", &"3MiB", &path]), "fallocate -l 3MiB");
    let mut expected = data.clone();
    expected.resize(3 << 20, 0);
    assert_same(&read(&path), &expected, "a 1,000-byte file after fallocate -l 3MiB");
    run_ok(tool("fallocate", &[&"-o", &"0", &"-l", &"100", &path]), "fallocate inside the file");
    assert_eq!(meta(&path).len(), 3 << 20, "size after fallocate of a range inside the file");
    let fresh = dir.join("fresh");
    run_ok(tool("fallocate", &[&"-l", &"1MiB", &fresh]), "fallocate of a new file");
    assert_same(&read(&fresh), &vec![0; 1 << 20], "a new file made by fallocate -l 1MiB");
    // mkfifo.
    let fifo = dir.join("fifo");
    run_ok(tool("mkfifo", &[&fifo]), "mkfifo");
    assert!(meta(&fifo).file_type().is_fifo(), "lstat of a fifo: {:?}", meta(&fifo).file_type());
    let listed = fs::read_dir(dir).expect("readdir").map(|e| e.expect("entry")).find(|e| e.file_name() == "fifo");
    let listed_type = listed.map(|e| e.file_type().expect("entry type"));
    assert!(listed_type.is_some_and(|t| t.is_fifo()), "the fifo's entry type in readdir: {listed_type:?}");
}

fn check_large_directory(dir: &Path) {
    mkdir(dir);
    let all: Vec<String> = (0..2000).map(|i| format!("entry-{i:04}-{}", "x".repeat(i % 40))).collect();
    for name in &all {
        File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    assert_listing(dir, &all.iter().cloned().collect(), "a directory of 2,000 files");
    for name in all.iter().step_by(2) {
        fs::remove_file(dir.join(name)).unwrap_or_else(|e| panic!("unlink {name}: {e}"));
    }
    assert_listing(
        dir,
        &all.iter().skip(1).step_by(2).cloned().collect(),
        "after unlinking every other one of 2,000 files",
    );
    // Unlinking while listing, as `rm -r` does: no entry skipped, none listed twice.
    for entry in fs::read_dir(dir).expect("readdir") {
        let path = entry.expect("entry").path();
        fs::remove_file(&path)
            .unwrap_or_else(|e| panic!("unlink {} while listing (listed twice?): {e}", path.display()));
    }
    assert_listing(dir, &BTreeSet::new(), "after unlinking each entry while listing the directory");
    fs::remove_dir(dir).expect("rmdir of the emptied large directory");
}

// ---------------------------------------------------------------------------------------------------
// Real tools: `check_tools(root, scratch)` runs on any directory; `scratch` is local disk.

/// One entry of a tree: kind, permission bits, mtime in seconds, bytes (a file's, a link's target).
#[derive(Debug, PartialEq)]
struct Item {
    kind: &'static str,
    mode: u32,
    mtime_s: i64,
    bytes: Vec<u8>,
}

fn walk(root: &Path) -> BTreeMap<PathBuf, Item> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Item>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            let m = meta(&path);
            let (kind, bytes) = if m.is_dir() {
                ("dir", Vec::new())
            } else if m.file_type().is_symlink() {
                ("symlink", fs::read_link(&path).expect("readlink").into_os_string().into_encoded_bytes())
            } else {
                ("file", read(&path))
            };
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            out.insert(rel, Item { kind, mode: m.mode() & 0o7777, mtime_s: m.mtime(), bytes });
            if kind == "dir" {
                visit(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// `actual` holds the same tree as `expected`: names, kinds, bytes, and with `metadata` also permission
/// bits and mtimes (seconds; not of symlinks). `files_only` ignores directories (git does not keep
/// them) and `.git`.
fn assert_same_tree(expected: &Path, actual: &Path, metadata: bool, files_only: bool, what: &str) {
    let keep = |(p, item): &(PathBuf, Item)| !files_only || (item.kind != "dir" && !p.starts_with(".git"));
    let want: BTreeMap<PathBuf, Item> = walk(expected).into_iter().filter(keep).collect();
    let got: BTreeMap<PathBuf, Item> = walk(actual).into_iter().filter(keep).collect();
    let mut problems = Vec::new();
    for (path, w) in &want {
        let Some(g) = got.get(path) else {
            problems.push(format!("{}: missing", path.display()));
            continue;
        };
        if w.kind != g.kind {
            problems.push(format!("{}: a {} where a {} was expected", path.display(), g.kind, w.kind));
        } else if let Some(d) = difference(&g.bytes, &w.bytes) {
            problems.push(format!("{}: content differs: {d}", path.display()));
        } else if metadata && w.mode != g.mode && w.kind != "symlink" {
            problems.push(format!("{}: mode {:o}, expected {:o}", path.display(), g.mode, w.mode));
        } else if metadata && w.mtime_s != g.mtime_s && w.kind != "symlink" {
            problems.push(format!("{}: mtime {} s, expected {} s", path.display(), g.mtime_s, w.mtime_s));
        }
    }
    problems.extend(got.keys().filter(|p| !want.contains_key(*p)).map(|p| format!("{}: unexpected", p.display())));
    assert!(
        problems.is_empty(),
        "{what}: {} differs from {} in {} of {} entries:\n{}",
        actual.display(),
        expected.display(),
        problems.len(),
        want.len(),
        problems[..problems.len().min(20)].join("\n")
    );
}

/// A source tree: three crates of this repository's `system/` (about 50 entries: the mount creates a few
/// dozen files a second) plus files with modes, links, odd names and old times.
fn make_source_tree(src: &Path) {
    mkdir(src);
    let system = Path::new(env!("CARGO_MANIFEST_DIR")).join("../system");
    for krate in ["config", "ec", "proto"] {
        mkdir(&src.join(krate));
        tar_copy(&system.join(krate), &src.join(krate), "copy a crate of system/ into the source tree");
    }
    let extras = src.join("extras");
    mkdir(&extras);
    for (name, mode, data) in [
        ("run.sh", 0o755, b"#!/bin/sh\necho hi\n".to_vec()),
        ("private", 0o600, b"secret\n".to_vec()),
        ("empty", 0o644, Vec::new()),
        ("blob.bin", 0o644, pattern(7, (3 << 20) + 7)),
        ("name with spaces.txt", 0o644, b"spaces\n".to_vec()),
        ("na\u{ef}ve-\u{fc}.txt", 0o644, b"unicode\n".to_vec()),
        ("linked-a", 0o644, b"hard linked\n".to_vec()),
    ] {
        let path = extras.join(name);
        write(&path, &data);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    fs::hard_link(extras.join("linked-a"), extras.join("linked-b")).expect("hard link");
    std::os::unix::fs::symlink("run.sh", extras.join("link-to-run")).expect("symlink");
    mkdir(&extras.join("empty-dir"));
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::options().write(true).open(extras.join("private")).expect("open").set_modified(old).expect("set mtime");
}

fn git(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = tool("git", args);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Tessera Test")
        .env("GIT_AUTHOR_EMAIL", "test@tessera.invalid")
        .env("GIT_COMMITTER_NAME", "Tessera Test")
        .env("GIT_COMMITTER_EMAIL", "test@tessera.invalid");
    cmd
}

fn check_tools(root: &Path, scratch: &Path) {
    let src = scratch.join("src");
    make_source_tree(&src);

    // tar into the mount and back out.
    let tarred = root.join("tar");
    mkdir(&tarred);
    tar_copy(&src, &tarred, "tar the source tree into the mount");
    assert_same_tree(&src, &tarred, true, false, "the tree tar extracted onto the mount");
    let (a, b) = (meta(&tarred.join("extras/linked-a")), meta(&tarred.join("extras/linked-b")));
    assert!(
        a.ino() == b.ino() && a.nlink() == 2,
        "tar's hard link pair: inodes {} and {}, link count {}",
        a.ino(),
        b.ino(),
        a.nlink()
    );
    let back = scratch.join("tar-back");
    mkdir(&back);
    tar_copy(&tarred, &back, "tar the tree out of the mount");
    assert_same_tree(&src, &back, true, false, "the tree tarred out of the mount");

    // git: commit on the mount, gc, fsck, clone to local disk.
    let repo = root.join("repo");
    run_ok(git(&[&"-c", &"init.defaultBranch=main", &"init", &"-q", &repo]), "git init");
    for part in ["ec", "extras"] {
        mkdir(&repo.join(part));
        tar_copy(&src.join(part), &repo.join(part), "copy part of the source tree into the repository");
    }
    run_ok(git(&[&"-C", &repo, &"add", &"-A"]), "git add");
    run_ok(git(&[&"-C", &repo, &"commit", &"-q", &"-m", &"import"]), "git commit");
    fs::OpenOptions::new()
        .append(true)
        .open(repo.join("extras/run.sh"))
        .expect("open")
        .write_all(b"echo more\n")
        .expect("append");
    fs::remove_file(repo.join("extras/blob.bin")).expect("rm");
    run_ok(git(&[&"-C", &repo, &"add", &"-A"]), "git add");
    run_ok(git(&[&"-C", &repo, &"commit", &"-q", &"-m", &"second"]), "git commit");
    let status = run_ok(git(&[&"-C", &repo, &"status", &"--porcelain"]), "git status");
    assert!(status.is_empty(), "git status of a freshly committed repository on the mount is not clean:\n{status}");
    run_ok(git(&[&"-C", &repo, &"repack", &"-a", &"-d", &"-q"]), "git repack -a -d");
    run_ok(git(&[&"-C", &repo, &"fsck", &"--full", &"--no-progress"]), "git fsck on the mount");
    let clone = scratch.join("clone");
    run_ok(git(&[&"clone", &"-q", &repo, &clone]), "git clone from the mount");
    run_ok(git(&[&"-C", &clone, &"fsck", &"--full", &"--no-progress"]), "git fsck of the clone");
    let log = run_ok(git(&[&"-C", &clone, &"log", &"--format=%s"]), "git log");
    assert_eq!(log.lines().collect::<Vec<_>>(), ["second", "import"], "commits in the clone");
    assert_same_tree(&repo, &clone, false, true, "the clone of the repository on the mount");

    // fio with verification: random 4 KiB and sequential 1 MiB writes, every block read back and checked.
    // The random job covers 8 MiB: fio reads its blocks back in the random order it wrote them, and
    // random 4 KiB reads of a 32 MiB file on the mount take ~45 ms each (6 minutes for the file).
    let fio_dir = root.join("fio");
    mkdir(&fio_dir);
    for (name, rw, bs, size) in [("randwrite-4k", "randwrite", "4k", "8m"), ("write-1m", "write", "1m", "32m")] {
        let out = tool(
            "fio",
            &[
                &format!("--name={name}"),
                &format!("--directory={}", fio_dir.display()),
                &format!("--rw={rw}"),
                &format!("--bs={bs}"),
                &format!("--size={size}"),
                &"--verify=crc32c",
                &"--do_verify=1",
                &"--verify_state_save=0",
            ],
        )
        .output()
        .expect("run fio");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && report.contains("err= 0"), "fio {name} with --verify=crc32c: {}", text(&out));
    }
    fs::remove_dir_all(&fio_dir).expect("remove fio's files");

    // rsync: a second run finds nothing to transfer or fix, by checksum.
    let synced = root.join("rsync");
    let (from, to) = (format!("{}/", src.display()), format!("{}/", synced.display()));
    run_ok(tool("rsync", &[&"-aH", &from, &to]), "rsync -aH into the mount");
    let changes =
        run_ok(tool("rsync", &[&"-aH", &"--checksum", &"--dry-run", &"--itemize-changes", &from, &to]), "rsync again");
    assert!(changes.trim().is_empty(), "a second `rsync -aH --checksum` onto the mount would still change:\n{changes}");
}

// ---------------------------------------------------------------------------------------------------
// The tests.

#[test]
fn posix_checks_pass_on_the_local_file_system() {
    require_tools(TOOLS);
    let tmp = tempfile::tempdir().expect("tempdir");
    check_posix(tmp.path());
    check_posix_after_remount(tmp.path());
    check_unlink_of_an_open_file(&tmp.path().join("unlinked"));
}

#[test]
fn tool_checks_pass_on_the_local_file_system() {
    require_tools(TOOLS);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (root, scratch) = (tmp.path().join("root"), tmp.path().join("scratch"));
    mkdir(&root);
    mkdir(&scratch);
    check_tools(&root, &scratch);
}

#[test]
fn posix_semantics_on_the_mount() {
    require_fuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let _watchdog = Watchdog::start("posix_semantics_on_the_mount", tmp.path(), TEST_LIMIT);
    let dir = tmp.path().join("c");
    let _down = up(&dir, &[]);
    let point = tmp.path().join("m");
    let mnt = mount(&dir, &point, &[]);
    let root = point.join("posix");
    mkdir(&root);
    check_posix(&root);
    // What was written is in the cluster: a fresh mount reads it (no page cache), and so does the CLI.
    mnt.unmount();
    let mnt = mount(&dir, &point, &[]);
    check_posix_after_remount(&root);
    let got = tmp.path().join("got");
    let name = format!("/posix/sizes/size-{}", SIZES[4]);
    let out = tessera(&["get", &name, got.to_str().expect("utf-8"), "--dir", dir.to_str().expect("utf-8")]);
    assert!(out.status.success(), "tessera get {name}: {}", text(&out));
    assert_same(&read(&got), &sized_content(4), &format!("{name} written through the mount, read by `tessera get`"));
    check_unlink_of_an_open_file(&root.join("unlinked"));
    mnt.unmount();
}

#[test]
fn real_tools_on_the_mount() {
    require_fuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let _watchdog = Watchdog::start("real_tools_on_the_mount", tmp.path(), TEST_LIMIT);
    let dir = tmp.path().join("c");
    let _down = up(&dir, &[]);
    let mnt = mount(&dir, &tmp.path().join("m"), &[]);
    let scratch = tmp.path().join("scratch");
    mkdir(&scratch);
    check_tools(&mnt.point, &scratch);
    mnt.unmount();
}

#[test]
fn two_mounts_see_each_others_changes_after_close() {
    require_fuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let _watchdog = Watchdog::start("two_mounts_see_each_others_changes_after_close", tmp.path(), TEST_LIMIT);
    let dir = tmp.path().join("c");
    let _down = up(&dir, &[]);
    let a = mount(&dir, &tmp.path().join("a"), &[]);
    let b = mount(&dir, &tmp.path().join("b"), &["--attr-timeout-ms", "0"]);
    let (sa, sb) = (a.point.join("shared"), b.point.join("shared"));
    mkdir(&sa);

    // Written and closed on A: B's open reads it.
    let v1 = pattern(1, 100_000);
    write(&sa.join("f"), &v1);
    assert_same(&read(&sb.join("f")), &v1, "a file written and closed on mount A, read on mount B");
    // Overwritten on B (longer, then shorter, then in place at the same size): A reopens and sees it.
    assert_same(&read(&sa.join("f")), &v1, "the file read back on A (now in A's cache)");
    for (step, v) in [("longer", pattern(2, 300_000)), ("shorter", pattern(3, 50_000))] {
        write(&sb.join("f"), &v);
        assert_same(&read(&sa.join("f")), &v, &format!("the file on A after B replaced its content with a {step} one"));
    }
    let mut v4 = pattern(3, 50_000);
    v4[20_000..20_010].copy_from_slice(b"0123456789");
    open_rw(&sb.join("f")).write_all_at(b"0123456789", 20_000).expect("overwrite in place on B");
    assert_same(&read(&sa.join("f")), &v4, "the file on A after B overwrote 10 bytes in place (same size)");
    // chmod on A: B (no attribute cache) sees it at once.
    fs::set_permissions(sa.join("f"), fs::Permissions::from_mode(0o600)).expect("chmod on A");
    assert_eq!(meta(&sb.join("f")).mode() & 0o7777, 0o600, "mode on B after chmod 600 on A");
    // Rename and unlink on A: B sees them at once.
    fs::rename(sa.join("f"), sa.join("g")).expect("rename on A");
    expect_errno(fs::metadata(sb.join("f")), libc::ENOENT, "the old name on B after a rename on A");
    assert_same(&read(&sb.join("g")), &v4, "the new name on B after a rename on A");
    assert_eq!(names(&sb), ["g"], "the listing on B after a rename on A");
    fs::remove_file(sa.join("g")).expect("unlink on A");
    expect_errno(File::open(sb.join("g")), libc::ENOENT, "open on B of a file unlinked on A");
    assert_eq!(names(&sb), Vec::<String>::new(), "the listing on B after an unlink on A");
    // mkdir on B: A (1 s attribute timeout) sees it once its cache expired, even after it looked the
    // name up and cached its absence.
    expect_errno(fs::metadata(sa.join("newdir")), libc::ENOENT, "the new directory on A before it exists");
    mkdir(&sb.join("newdir"));
    write(&sb.join("newdir/inner"), b"from B");
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(names(&sa), ["newdir"], "the listing on A 2 s after a mkdir on B (attribute timeout 1 s)");
    assert_same(&read(&sa.join("newdir/inner")), b"from B", "a file made on B read on A");
    a.unmount();
    b.unmount();
}

/// How a write of one file ended.
#[derive(Debug)]
enum Outcome {
    Stored,
    Eio(String),
    Other(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Stored => "stored".to_string(),
            Outcome::Eio(e) => format!("EIO ({})", e.trim()),
            Outcome::Other(e) => format!("FAILED, not with EIO: {}", e.trim()),
        }
    }
}

/// Writes `/copy/f{i}` of `content(i)`: even files with write+fsync+close here, odd files with `cp`
/// (which reports a failed close).
fn copy_one(mnt: &Path, local_src: &Path, i: usize, content: &[u8]) -> Outcome {
    let target = mnt.join(format!("copy/f{i}"));
    if i.is_multiple_of(2) {
        let written = File::create(&target).and_then(|mut f| {
            f.write_all(content)?;
            f.sync_all()
        });
        return match written {
            Ok(()) => Outcome::Stored,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Outcome::Eio(e.to_string()),
            Err(e) => Outcome::Other(format!("write+fsync of f{i}: {e}")),
        };
    }
    let source = local_src.join(format!("f{i}"));
    write(&source, content);
    let out = Command::new("cp").arg(&source).arg(&target).env("LC_ALL", "C").output().expect("run cp");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Outcome::Stored
    } else if err.contains("Input/output error") {
        Outcome::Eio(err)
    } else {
        Outcome::Other(format!("cp f{i}: {} ({})", err.trim(), out.status))
    }
}

#[test]
fn a_node_killed_during_a_copy_completes_or_fails_with_eio() {
    const FILES: usize = 48;
    const SIZE: usize = 2 << 20; // 96 MiB in all
    require_fuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let watchdog = Watchdog::start("a_node_killed_during_a_copy_completes_or_fails_with_eio", tmp.path(), TEST_LIMIT);
    let dir = tmp.path().join("c");
    let _down = up(&dir, &["--dead-after-ms", "3000"]);
    let point = tmp.path().join("m");
    let mnt = mount(&dir, &point, &[]);
    let point = mnt.point.clone();
    mkdir(&point.join("copy"));
    let local_src = tmp.path().join("src");
    mkdir(&local_src);
    let content = |i: usize| pattern(1_000 + i as u64, SIZE);
    let attempt = |i: usize| {
        let start = Instant::now();
        let outcome = copy_one(&point, &local_src, i, &content(i));
        (outcome, start.elapsed())
    };

    let done = AtomicUsize::new(0);
    let (killed_after, mut attempts) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            (0..FILES)
                .map(|i| {
                    let result = attempt(i);
                    done.fetch_add(1, Ordering::SeqCst);
                    result
                })
                .collect::<Vec<(Outcome, Duration)>>()
        });
        while done.load(Ordering::SeqCst) < FILES / 4 && !writer.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed_after = done.load(Ordering::SeqCst);
        kill(&dir, 3);
        (killed_after, writer.join().expect("the writer thread panicked"))
    });
    assert!(killed_after < FILES, "the copy ended before the node was killed: make it longer");
    // The cluster keeps two copies: once the node is declared dead, copying goes on.
    let stored_after_kill = |attempts: &[(Outcome, Duration)]| {
        attempts.iter().skip(killed_after + 1).any(|(o, _)| matches!(o, Outcome::Stored))
    };
    while !stored_after_kill(&attempts) && attempts.len() < FILES + 16 && !watchdog.fired() {
        attempts.push(attempt(attempts.len()));
    }
    let log: Vec<String> =
        attempts.iter().enumerate().map(|(i, (o, took))| format!("f{i}: {} in {took:.1?}", o.describe())).collect();
    let log = format!("node 3 killed after {killed_after} files; each file:\n{}", log.join("\n"));
    assert!(!watchdog.fired(), "the copy was still running after {TEST_LIMIT:?}: {log}");
    assert!(
        attempts.iter().all(|(o, _)| !matches!(o, Outcome::Other(_))),
        "every write must succeed or fail with EIO: {log}"
    );
    assert!(
        stored_after_kill(&attempts),
        "no file started after node 3 was killed could be written (5 of 6 nodes live, 2 copies): {log}"
    );
    let stored: Vec<usize> = (0..attempts.len()).filter(|&i| matches!(attempts[i].0, Outcome::Stored)).collect();
    eprintln!("{} of {} files stored, the rest failed with EIO; {log}", stored.len(), attempts.len());
    for &i in &stored {
        assert_same(
            &read(&point.join(format!("copy/f{i}"))),
            &content(i),
            &format!("stored file f{i} read back on the same mount"),
        );
    }
    mnt.unmount();
    let mnt = mount(&dir, &point, &[]);
    for &i in &stored {
        assert_same(
            &read(&point.join(format!("copy/f{i}"))),
            &content(i),
            &format!("stored file f{i} read back on a fresh mount"),
        );
    }
    mnt.unmount();
}

#[test]
fn a_busy_unmount_and_a_bad_mount_are_refused_clearly() {
    require_fuse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let _watchdog = Watchdog::start("a_busy_unmount_and_a_bad_mount_are_refused_clearly", tmp.path(), TEST_LIMIT);
    let dir = tmp.path().join("c");
    let dir_s = dir.to_str().expect("utf-8");
    let _down = up(&dir, &[]);
    let mnt = mount(&dir, &tmp.path().join("m"), &[]);
    let point = mnt.point.clone();
    let data = pattern(9, 700_000);
    write(&point.join("kept"), &data); // no fsync: unmount must write it back
    mkdir(&point.join("cwd"));

    // A process whose working directory is in the mount: unmount refuses and names it.
    let mut child = Command::new("sleep").arg("120").current_dir(point.join("cwd")).spawn().expect("start sleep");
    let out = run(Command::new(BIN).arg("unmount").arg(&point));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let refused = !out.status.success()
        && stderr.contains("busy")
        && stderr.contains(&child.id().to_string())
        && stderr.contains("sleep");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        refused,
        "`tessera unmount` of a mount used by `sleep` (pid {}) must fail saying busy and naming it: {}",
        child.id(),
        text(&out)
    );
    assert!(mount_type(&point).is_some(), "a refused unmount unmounted {}", point.display());
    assert_same(&read(&point.join("kept")), &data, "a file on the mount after a refused unmount");

    // Once nothing uses it, unmount succeeds, waits for the serving process, and wrote the file back.
    mnt.unmount();
    let left = mount_processes(&point);
    assert!(left.is_empty(), "`tessera unmount` returned but mount processes still run: {left:?}");
    let got = tmp.path().join("got");
    let out = tessera(&["get", "/kept", got.to_str().expect("utf-8"), "--dir", dir_s]);
    assert!(out.status.success(), "tessera get /kept after unmount: {}", text(&out));
    assert_same(
        &read(&got),
        &data,
        "a file written through the mount without fsync, read by `tessera get` after unmount",
    );

    // Mounts that cannot work fail with a message, and leave nothing mounted.
    let other = tmp.path().join("other");
    mkdir(&other);
    let out = run(Command::new(BIN).args(["mount", "--dir", dir_s, "--fs", "nosuchfs", "--background"]).arg(&other));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nosuchfs"),
        "mount of a missing file system must fail naming it: {}",
        text(&out)
    );
    assert!(mount_type(&other).is_none(), "a failed mount left {} mounted", other.display());
    let missing = tmp.path().join("missing-point");
    let out = run(Command::new(BIN).args(["mount", "--dir", dir_s, "--background"]).arg(&missing));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("missing-point"),
        "mount on a missing mount point must fail naming it: {}",
        text(&out)
    );
    let out = run(Command::new(BIN).arg("unmount").arg(&other));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("other"),
        "unmount of a directory that is not mounted must fail naming it: {}",
        text(&out)
    );
}
