//! Metadata operations per second per core: create, stat and unlink through the in-process metadata
//! cluster (`tessera_meta::local::LocalCluster`: the shard state machines, the operation driver and the
//! two-phase commit, without Raft or network), next to the same operations on the local file system
//! in the same run.
//!
//! Cases (reported per operation; one thread, so operations/s are per core):
//! - `meta/tessera_{create,stat,unlink}`: files in directories of a 16-shard cluster, a new directory
//!   every [`FILES_PER_DIR`] files (below the split threshold: the directory's shard holds its entries
//!   and files, so every create, stat and unlink is single-shard; the mkdir, cross-shard, is amortized).
//! - `meta/tessera_create_split_dir`: creates in one directory that has split over the shards (GIGA+):
//!   each create is a two-phase commit between the partition's shard (entry and inode) and the
//!   directory's home (its size and times).
//! - `meta/localfs_{create,stat,unlink}`: `File::create`, `fs::metadata`, `fs::remove_file` with the
//!   same directory pattern in a temp directory (`$TESSERA_BENCH_DIR` if set, e.g. /dev/shm for tmpfs):
//!   the kernel's dentry and inode caches, no fsync.
//!
//! After the criterion groups a paired pass alternates the two sides on the same batches and prints
//! `paired:` lines with the tessera/localfs throughput ratio from medians.
//! `TESSERA_BENCH_NO_PAIRED=1` skips it.
//!
//! Run: `cargo bench -p tessera-real-io --bench meta`.

use std::fs;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_meta::local::LocalCluster;
use tessera_meta::{Credentials, InodeId, MetaOp, MetaReply};

const SHARDS: u16 = 16;
/// Files a stat pass cycles over.
const STAT_FILES: u64 = 1_000;
/// Files per directory before the next directory is made (below the split threshold, 8192).
const FILES_PER_DIR: u64 = 4_096;
/// Entries in the split directory before measuring creates in it.
const SPLIT_DIR_ENTRIES: u64 = 20_000;
/// Operations per paired round.
const PAIRED_BATCH: u64 = 2_000;
const PAIRED_ROUNDS: usize = 15;

/// A file made by the metadata side: its directory, id and name.
type MetaFile = (InodeId, InodeId, String);

/// The metadata side: a cluster, the current directory, and a name counter (names are never reused).
struct Meta {
    cluster: LocalCluster,
    dir: InodeId,
    dirs: u64,
    next: u64,
    now_ns: u64,
}

impl Meta {
    fn new() -> Meta {
        let mut meta = Meta { cluster: LocalCluster::new(SHARDS), dir: InodeId::ROOT, dirs: 0, next: 0, now_ns: 1 };
        meta.dir = meta.mkdir();
        meta
    }

    fn tick(&mut self) -> u64 {
        self.now_ns += 1;
        self.now_ns
    }

    fn mkdir(&mut self) -> InodeId {
        self.dirs += 1;
        let mkdir =
            MetaOp::Mkdir { parent: InodeId::ROOT, name: format!("d{}", self.dirs), mode: 0o755, creds: root() };
        let now = self.tick();
        let Ok(MetaReply::Entry(attr)) = self.cluster.execute(&mkdir, now) else { panic!("mkdir") };
        attr.ino
    }

    /// Create `n` files, a new directory every [`FILES_PER_DIR`] (or all in `dir` if given).
    fn create_in(&mut self, n: u64, dir: Option<InodeId>) -> Vec<MetaFile> {
        (0..n)
            .map(|_| {
                self.next += 1;
                if dir.is_none() && self.next.is_multiple_of(FILES_PER_DIR) {
                    self.dir = self.mkdir();
                }
                let parent = dir.unwrap_or(self.dir);
                let name = format!("f{}", self.next);
                let op = MetaOp::Create { parent, name: name.clone(), mode: 0o644, creds: root() };
                let now = self.tick();
                match self.cluster.execute(&op, now) {
                    Ok(MetaReply::Entry(attr)) => (parent, attr.ino, name),
                    other => panic!("create: {other:?}"),
                }
            })
            .collect()
    }

    fn create(&mut self, n: u64) -> Vec<MetaFile> {
        self.create_in(n, None)
    }

    fn stat(&mut self, files: &[MetaFile], n: u64) {
        for i in 0..n {
            let ino = files[(i % files.len() as u64) as usize].1;
            let now = self.tick();
            black_box(self.cluster.execute(&MetaOp::GetAttr { ino }, now).expect("stat"));
        }
    }

    fn unlink(&mut self, files: &[MetaFile]) {
        for (parent, _, name) in files {
            let now = self.tick();
            let op = MetaOp::Unlink { parent: *parent, name: name.clone(), creds: root() };
            self.cluster.execute(&op, now).expect("unlink");
        }
    }
}

fn root() -> Credentials {
    Credentials::root()
}

/// The local file system side: a temp directory and a name counter.
struct Local {
    _dir: tempfile::TempDir,
    path: PathBuf,
    next: u64,
}

impl Local {
    fn new() -> Local {
        let dir = common::bench_dir();
        let path = dir.path().to_path_buf();
        Local { _dir: dir, path, next: 0 }
    }

    fn create(&mut self, n: u64) -> Vec<PathBuf> {
        (0..n)
            .map(|_| {
                self.next += 1;
                let dir = self.path.join(format!("d{}", self.next / FILES_PER_DIR));
                if self.next.is_multiple_of(FILES_PER_DIR) || self.next == 1 {
                    fs::create_dir_all(&dir).expect("mkdir");
                }
                let path = dir.join(format!("f{}", self.next));
                fs::File::create(&path).expect("create");
                path
            })
            .collect()
    }

    fn stat(files: &[PathBuf], n: u64) {
        for i in 0..n {
            black_box(fs::metadata(&files[(i % files.len() as u64) as usize]).expect("stat"));
        }
    }

    fn unlink(files: &[PathBuf]) {
        files.iter().for_each(|p| fs::remove_file(p).expect("unlink"));
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut meta = Meta::new();
    let mut local = Local::new();
    let meta_files = meta.create(STAT_FILES);
    let local_files = local.create(STAT_FILES);
    let mut group = c.benchmark_group("meta");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tessera_create", |b| {
        b.iter_custom(|n| {
            let (d, made) = {
                let mut made = Vec::new();
                (timed(|| made = meta.create(n)), made)
            };
            meta.unlink(&made);
            d
        })
    });
    group.bench_function("localfs_create", |b| {
        b.iter_custom(|n| {
            let mut made = Vec::new();
            let d = timed(|| made = local.create(n));
            Local::unlink(&made);
            d
        })
    });
    let split_dir = meta.mkdir();
    meta.create_in(SPLIT_DIR_ENTRIES, Some(split_dir));
    assert!(meta.cluster.partitions(split_dir).len() > 1, "the directory split");
    group.bench_function("tessera_create_split_dir", |b| {
        b.iter_custom(|n| {
            let mut made = Vec::new();
            let d = timed(|| made = meta.create_in(n, Some(split_dir)));
            meta.unlink(&made);
            d
        })
    });
    group.bench_function("tessera_stat", |b| b.iter_custom(|n| timed(|| meta.stat(&meta_files, n))));
    group.bench_function("localfs_stat", |b| b.iter_custom(|n| timed(|| Local::stat(&local_files, n))));
    group.bench_function("tessera_unlink", |b| {
        b.iter_custom(|n| {
            let made = meta.create(n);
            timed(|| meta.unlink(&made))
        })
    });
    group.bench_function("localfs_unlink", |b| {
        b.iter_custom(|n| {
            let made = local.create(n);
            timed(|| Local::unlink(&made))
        })
    });
    group.finish();
    if std::env::var_os("TESSERA_BENCH_NO_PAIRED").is_none() {
        paired(&mut meta, &mut local, &meta_files, &local_files);
    }
}

/// Alternate the two sides on equal batches and print throughput ratios from medians.
fn paired(meta: &mut Meta, local: &mut Local, meta_files: &[MetaFile], local_files: &[PathBuf]) {
    let mut rounds: [[Vec<Duration>; 2]; 3] = Default::default();
    for _ in 0..PAIRED_ROUNDS {
        let mut made = Vec::new();
        rounds[0][0].push(timed(|| made = meta.create(PAIRED_BATCH)));
        rounds[2][0].push(timed(|| meta.unlink(&made)));
        let mut made = Vec::new();
        rounds[0][1].push(timed(|| made = local.create(PAIRED_BATCH)));
        rounds[2][1].push(timed(|| Local::unlink(&made)));
        rounds[1][0].push(timed(|| meta.stat(meta_files, PAIRED_BATCH)));
        rounds[1][1].push(timed(|| Local::stat(local_files, PAIRED_BATCH)));
    }
    for (name, [tessera, localfs]) in ["create", "stat", "unlink"].iter().zip(rounds.iter_mut()) {
        let (t, l) = (common::median(tessera), common::median(localfs));
        let rate = |d: Duration| PAIRED_BATCH as f64 / d.as_secs_f64();
        println!(
            "paired: {name}: tessera {:.0} ops/s, localfs {:.0} ops/s, tessera/localfs {:.2}x",
            rate(t),
            rate(l),
            rate(t) / rate(l)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
