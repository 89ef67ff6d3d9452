//! The target for any directory: a local disk, our FUSE mount, a peer file system's mount, through
//! `std::fs`. Each run works in a fresh subdirectory (`tessera-bench-WORKLOAD-PID-N`) that is removed
//! afterwards unless kept. Each process runs on its own thread with blocking calls; time is the OS's
//! monotonic clock.
//!
//! Writes are not fsynced (neither does SPEC SFS's SWBUILD nor IO500's ior without `-e`): figures for a
//! local disk include the page cache, as they would for any application.

// Not simulated: the directory target runs on OS threads and the OS clock (workloads/clippy.toml bans them elsewhere).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::PhaseReport;
use crate::op::{Op, OpError, Outcome, fill};
use crate::run::{Executor, RunOptions, Target, TargetError, phase_report, run_process};
use crate::workload::{Phase, Process};

/// Bytes moved per `write`/`read` call.
const IO_CHUNK_BYTES: usize = 1 << 20;

/// Runs made by this process so far (part of each run directory's name).
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Who this process is, for `access(R_OK)`: the owner of `/proc/self` is the effective user.
#[derive(Clone, Copy, Debug)]
struct Identity {
    uid: u32,
    gid: u32,
}

impl Identity {
    fn current() -> Identity {
        fs::metadata("/proc/self").map_or(Identity { uid: 0, gid: 0 }, |m| Identity { uid: m.uid(), gid: m.gid() })
    }

    fn may_read(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        self.uid == 0
            || if meta.uid() == self.uid {
                mode & 0o400 != 0
            } else if meta.gid() == self.gid {
                mode & 0o040 != 0
            } else {
                mode & 0o004 != 0
            }
    }
}

/// A directory as a workload target.
#[derive(Debug)]
pub struct DirTarget {
    base: PathBuf,
    root: PathBuf,
    epoch: Instant,
    identity: Identity,
}

impl DirTarget {
    /// A fresh run directory for `workload` under `base`, which must be an existing, writable directory.
    pub fn create(base: &Path, workload: &str) -> Result<DirTarget, TargetError> {
        let meta = fs::metadata(base).map_err(|e| TargetError::Unavailable(format!("{}: {e}", base.display())))?;
        if !meta.is_dir() {
            return Err(TargetError::Unavailable(format!("{}: not a directory", base.display())));
        }
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let root = base.join(format!("tessera-bench-{workload}-{}-{n}", std::process::id()));
        fs::create_dir(&root)
            .map_err(|e| TargetError::Unavailable(format!("cannot make the run directory {}: {e}", root.display())))?;
        Ok(DirTarget { base: base.to_path_buf(), root, epoch: Instant::now(), identity: Identity::current() })
    }

    /// The run directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Remove the run directory and everything in it.
    pub fn remove(self) -> io::Result<()> {
        fs::remove_dir_all(&self.root)
    }
}

/// One process's doors: the run directory and the shared clock.
struct DirExec<'a> {
    target: &'a DirTarget,
}

fn op_error(path: &str, e: &io::Error) -> OpError {
    let path = path.to_string();
    match e.kind() {
        ErrorKind::NotFound => OpError::NotFound { path },
        ErrorKind::AlreadyExists => OpError::Exists { path },
        ErrorKind::DirectoryNotEmpty => OpError::NotEmpty { path },
        ErrorKind::PermissionDenied => OpError::PermissionDenied { path },
        _ => OpError::Other { path, message: e.to_string() },
    }
}

impl DirExec<'_> {
    fn full(&self, path: &str) -> PathBuf {
        if path.is_empty() { self.target.root.clone() } else { self.target.root.join(path) }
    }

    fn write_content(file: &mut File, content: u64, offset: u64, len: u64) -> io::Result<()> {
        let mut buf = vec![0u8; IO_CHUNK_BYTES.min(len as usize)];
        let mut done = 0u64;
        while done < len {
            let n = IO_CHUNK_BYTES.min((len - done) as usize);
            fill(content, offset + done, &mut buf[..n]);
            file.write_all_at(&buf[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    fn read_range(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len as usize];
        let mut done = 0usize;
        while done < out.len() {
            let end = (done + IO_CHUNK_BYTES).min(out.len());
            let n = file.read_at(&mut out[done..end], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        out.truncate(done);
        Ok(out)
    }

    fn count_below(dir: &Path) -> io::Result<u64> {
        let mut count = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                count += 1;
                if entry.file_type()?.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        Ok(count)
    }

    fn run(&self, op: &Op) -> io::Result<Outcome> {
        let path = self.full(op.path());
        match op {
            Op::Mkdir { .. } => fs::create_dir(&path).map(|()| Outcome::Done),
            Op::Create { .. } => OpenOptions::new().write(true).create_new(true).open(&path).map(|_| Outcome::Done),
            Op::WriteFile { size_bytes, content, .. } => {
                let mut file = File::create(&path)?;
                Self::write_content(&mut file, *content, 0, *size_bytes)?;
                file.flush()?;
                Ok(Outcome::Done)
            }
            Op::Write { offset, len_bytes, content, .. } => {
                let mut file = OpenOptions::new().write(true).open(&path)?;
                Self::write_content(&mut file, *content, *offset, *len_bytes)?;
                Ok(Outcome::Done)
            }
            Op::ReadFile { .. } => {
                let mut bytes = Vec::new();
                File::open(&path)?.read_to_end(&mut bytes)?;
                Ok(Outcome::Bytes(bytes))
            }
            Op::Read { offset, len_bytes, .. } => {
                Ok(Outcome::Bytes(Self::read_range(&File::open(&path)?, *offset, *len_bytes)?))
            }
            Op::Stat { .. } => {
                let meta = fs::metadata(&path)?;
                Ok(Outcome::Attr { size_bytes: meta.len(), mode: meta.mode() & 0o7777, is_dir: meta.is_dir() })
            }
            Op::Access { .. } => {
                let meta = fs::metadata(&path)?;
                if self.target.identity.may_read(&meta) {
                    Ok(Outcome::Done)
                } else {
                    Err(io::Error::from(ErrorKind::PermissionDenied))
                }
            }
            Op::Chmod { mode, .. } => {
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).map(|()| Outcome::Done)
            }
            Op::Readdir { .. } => {
                let mut names = Vec::new();
                for entry in fs::read_dir(&path)? {
                    names.push(entry?.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                Ok(Outcome::Names(names))
            }
            Op::Unlink { .. } => fs::remove_file(&path).map(|()| Outcome::Done),
            Op::Rmdir { .. } => fs::remove_dir(&path).map(|()| Outcome::Done),
            Op::Find { .. } => Self::count_below(&path).map(Outcome::Count),
        }
    }
}

impl Executor for DirExec<'_> {
    fn now_ns(&self) -> u64 {
        self.target.epoch.elapsed().as_nanos() as u64
    }

    async fn sleep_until_ns(&mut self, at_ns: u64) {
        let now_ns = self.now_ns();
        if at_ns > now_ns {
            std::thread::sleep(Duration::from_nanos(at_ns - now_ns));
        }
    }

    async fn execute(&mut self, op: &Op) -> Result<Outcome, OpError> {
        self.run(op).map_err(|e| op_error(op.path(), &e))
    }
}

impl Target for DirTarget {
    fn describe(&self) -> String {
        format!("dir:{}", self.base.display())
    }

    async fn run_phase(
        &mut self,
        index: usize,
        phase: &Phase,
        procs: Vec<Box<dyn Process>>,
        options: &RunOptions,
        progress: &AtomicU64,
    ) -> Result<(Vec<Box<dyn Process>>, PhaseReport), TargetError> {
        let target: &DirTarget = self;
        let started_ns = DirExec { target }.now_ns();
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = procs
                .into_iter()
                .map(|mut process| {
                    scope.spawn(move || {
                        let mut exec = DirExec { target };
                        let recorder = futures::executor::block_on(run_process(
                            &mut exec,
                            process.as_mut(),
                            index,
                            phase,
                            started_ns,
                            options,
                            progress,
                        ));
                        (process, recorder)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        });
        let elapsed_ns = DirExec { target }.now_ns() - started_ns;
        let mut back = Vec::new();
        let mut recorders = Vec::new();
        for result in results {
            let (process, recorder) =
                result.map_err(|_| TargetError::Failed(format!("a process of phase {} panicked", phase.name)))?;
            back.push(process);
            recorders.push(recorder);
        }
        let report = phase_report(phase, &recorders, options, elapsed_ns);
        Ok((back, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::MemFs;

    /// The same operations give the same outcomes on a real directory as on the in-memory reference.
    #[test]
    fn a_directory_answers_like_the_reference() {
        let base = tempfile::tempdir().expect("tempdir");
        let target = DirTarget::create(base.path(), "t").expect("target");
        let exec = DirExec { target: &target };
        let mut reference = MemFs::new();
        let ops = [
            Op::Mkdir { path: "a".into() },
            Op::Mkdir { path: "a".into() },
            Op::Create { path: "a/e".into() },
            Op::Create { path: "a/e".into() },
            Op::WriteFile { path: "a/f".into(), size_bytes: 3 * IO_CHUNK_BYTES as u64 + 5, content: 9 },
            Op::Write { path: "a/f".into(), offset: 10, len_bytes: 100, content: 10 },
            Op::Read { path: "a/f".into(), offset: 3 * IO_CHUNK_BYTES as u64, len_bytes: 100 },
            Op::ReadFile { path: "a/f".into() },
            Op::Chmod { path: "a/f".into(), mode: 0o600 },
            Op::Access { path: "a/f".into() },
            Op::Readdir { path: "a".into() },
            Op::Find { path: String::new() },
            Op::Rmdir { path: "a".into() },
            Op::Unlink { path: "a/e".into() },
            Op::Unlink { path: "a/e".into() },
            Op::Stat { path: "nope".into() },
        ];
        for op in &ops {
            let got = exec.run(op).map_err(|e| op_error(op.path(), &e));
            let want = reference.apply(op);
            match (&got, &want) {
                (Ok(Outcome::Attr { .. }), Ok(Outcome::Attr { .. })) => {}
                _ => assert_eq!(got, want, "{op:?}"),
            }
        }
        let Ok(Outcome::Attr { size_bytes, mode, is_dir }) = exec.run(&Op::Stat { path: "a/f".into() }) else {
            panic!("stat")
        };
        assert_eq!((size_bytes, mode, is_dir), (3 * IO_CHUNK_BYTES as u64 + 5, 0o600, false));
        target.remove().expect("remove");
        assert_eq!(fs::read_dir(base.path()).expect("base").count(), 0, "the run directory is gone");
    }

    #[test]
    fn a_missing_base_is_a_clear_error() {
        let err = DirTarget::create(Path::new("/nonexistent/tessera"), "t").expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/tessera"), "{err}");
    }
}
