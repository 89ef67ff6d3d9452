//! The simulated cluster as a workload target (`tessera_sim::bench`): a workload's operations go through
//! real metadata and data clients on a fresh simulated cluster, read back what they wrote, and the
//! report is a function of the seed alone (virtual time), so one seed run twice reports the same bits.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use tessera_config::model::Protection;
use tessera_sim::bench::{SimBenchConfig, SimBenchConfigError, run_bench};
use tessera_workloads::metrics::{Metric, PhaseReport, RunReport};
use tessera_workloads::op::{Op, OpError, Outcome, first_mismatch};
use tessera_workloads::run::{ProgressSink, Quiet, RunOptions};
use tessera_workloads::workload::{Params, Phase, PhaseRole, Process, Score, Workload};

const MIB: u64 = 1024 * 1024;
/// Sizes of the files each process writes: empty, inline (below 16 KiB), one partial stripe, and more
/// than one 4+2 stripe (4 MiB).
const FILE_SIZES: [u64; 4] = [0, 3_000, 200_000, 4 * MIB + 12_345];

/// A small workload that touches every kind of operation and checks every answer: each process makes
/// its own directory, writes files of [`FILE_SIZES`], reads them back whole and in part, lists, stats,
/// chmods, finds, unlinks one file and removes an empty subdirectory. A paced phase then stats the
/// files at a fixed rate for a fixed time.
#[derive(Debug)]
struct Tour {
    procs: usize,
    /// Stats per second per process in the paced phase.
    paced_rate: f64,
}

const BUILD: usize = 0;
/// Stats per second per process in the paced phase: well below what a closed loop does (a metadata
/// operation takes some 20 ms of simulated time: madsim makes every disk and network delay at least
/// 1 ms), so the rate is the pacing's, not the cluster's limit.
const PACED_RATE_PER_PROC: f64 = 20.0;
const PACED: usize = 1;
/// Each process reads its neighbour's file (its client caches the path), then every process replaces
/// its own directory and file with new ones, then reads its neighbour's again: the cached path names
/// removed inodes, and the target must find it stale and walk the path afresh.
const PEEK: usize = 2;
const SWAP: usize = 3;
const CROSS: usize = 4;
/// Size of the file each process shares with its neighbour.
const SHARED_BYTES: u64 = 5_000;

/// Content of process `p`'s shared file, generation `generation` (0 before the swap, 1 after).
fn shared_content(seed: u64, p: usize, generation: u64) -> u64 {
    seed ^ ((p as u64) << 32) ^ (1000 + generation)
}

impl Workload for Tour {
    fn name(&self) -> &str {
        "tour"
    }

    fn process_count(&self, _: &Params) -> usize {
        self.procs
    }

    fn setup(&self, _: &Params) -> Vec<Phase> {
        Vec::new()
    }

    fn run(&self, params: &Params) -> Vec<Phase> {
        vec![
            Phase::until_done("build", PhaseRole::Run),
            Phase {
                name: "paced-stat".into(),
                role: PhaseRole::Run,
                rate_per_proc: Some(self.paced_rate),
                duration_ns: Some(params.duration_ns),
                score: Score::Metadata,
            },
            Phase::until_done("peek", PhaseRole::Run),
            Phase::until_done("swap", PhaseRole::Run),
            Phase::until_done("cross", PhaseRole::Run),
        ]
    }

    fn check(&self, _: &Params) -> Vec<Phase> {
        Vec::new()
    }

    fn processes(&self, params: &Params) -> Vec<Box<dyn Process>> {
        (0..self.procs).map(|p| Box::new(TourProcess::new(p, self.procs, params.seed)) as Box<dyn Process>).collect()
    }

    fn metrics(&self, _: &Params, _: &[PhaseReport]) -> Vec<Metric> {
        Vec::new()
    }
}

/// One process's script and what it knows is in its directory.
struct TourProcess {
    p: usize,
    procs: usize,
    seed: u64,
    /// The build phase's operations.
    script: Vec<Op>,
    /// Position in the current phase's operations.
    next: usize,
    /// The phase `next` counts in.
    phase: usize,
    dir: String,
    /// path -> (size, content, mode) of every file it made.
    files: BTreeMap<String, (u64, u64, u32)>,
    /// `None`: no `sub` directory; `Some(true)`: `sub` holds a file.
    sub: Option<bool>,
    stats: u64,
}

impl TourProcess {
    fn new(p: usize, procs: usize, seed: u64) -> TourProcess {
        let dir = format!("p{p}");
        let content = |i: u64| seed ^ ((p as u64) << 32) ^ i;
        let mut script = vec![
            Op::Mkdir { path: format!("q{p}") },
            Op::WriteFile { path: format!("q{p}/x"), size_bytes: SHARED_BYTES, content: shared_content(seed, p, 0) },
            Op::Mkdir { path: dir.clone() },
            Op::Mkdir { path: format!("{dir}/sub") },
            Op::Create { path: format!("{dir}/sub/empty") },
        ];
        for (i, size) in FILE_SIZES.iter().enumerate() {
            script.push(Op::WriteFile { path: format!("{dir}/f{i}"), size_bytes: *size, content: content(i as u64) });
        }
        // Overwrite one file (truncate, then another content) and extend another with its own content.
        script.push(Op::WriteFile { path: format!("{dir}/f2"), size_bytes: 50_000, content: content(20) });
        script.push(Op::Write { path: format!("{dir}/f1"), offset: 3_000, len_bytes: 30_000, content: content(1) });
        for i in 0..FILE_SIZES.len() {
            script.push(Op::ReadFile { path: format!("{dir}/f{i}") });
        }
        script.extend([
            Op::Read { path: format!("{dir}/f3"), offset: 4 * MIB - 100, len_bytes: 1_000 },
            Op::Read { path: format!("{dir}/f3"), offset: 4 * MIB + 12_000, len_bytes: 10_000 },
            Op::Read { path: format!("{dir}/f3"), offset: 10 * MIB, len_bytes: 10 },
            Op::Stat { path: format!("{dir}/f3") },
            Op::Stat { path: format!("{dir}/sub") },
            Op::Stat { path: format!("{dir}/missing") },
            Op::Access { path: format!("{dir}/f0") },
            Op::Chmod { path: format!("{dir}/f0"), mode: 0o600 },
            Op::Stat { path: format!("{dir}/f0") },
            Op::Readdir { path: dir.clone() },
            Op::Find { path: dir.clone() },
            Op::Rmdir { path: format!("{dir}/sub") },
            Op::Create { path: format!("{dir}/f0") },
            Op::Unlink { path: format!("{dir}/sub/empty") },
            Op::Rmdir { path: format!("{dir}/sub") },
            Op::Unlink { path: format!("{dir}/f2") },
            Op::ReadFile { path: format!("{dir}/f2") },
            Op::Readdir { path: dir.clone() },
            Op::Find { path: dir.clone() },
        ]);
        TourProcess { p, procs, seed, script, next: 0, phase: BUILD, dir, files: BTreeMap::new(), sub: None, stats: 0 }
    }

    /// The operations of phase `phase` (the paced phase makes its own).
    fn phase_ops(&self, phase: usize) -> Vec<Op> {
        let (p, other) = (self.p, (self.p + 1) % self.procs);
        match phase {
            BUILD => self.script.clone(),
            PEEK => vec![Op::ReadFile { path: format!("q{other}/x") }],
            SWAP => vec![
                Op::Unlink { path: format!("q{p}/x") },
                Op::Rmdir { path: format!("q{p}") },
                Op::Mkdir { path: format!("q{p}") },
                Op::WriteFile {
                    path: format!("q{p}/x"),
                    size_bytes: SHARED_BYTES,
                    content: shared_content(self.seed, p, 1),
                },
            ],
            CROSS => vec![Op::ReadFile { path: format!("q{other}/x") }, Op::Stat { path: format!("q{other}") }],
            _ => Vec::new(),
        }
    }

    /// What an operation on the shared files must have answered in phase `phase`.
    fn expect_shared(&self, phase: usize, op: &Op, result: &Result<Outcome, OpError>) -> Result<(), String> {
        let other = (self.p + 1) % self.procs;
        match (op, result) {
            (_, Err(e)) => Err(format!("unexpected error: {e}")),
            (Op::ReadFile { .. }, Ok(Outcome::Bytes(bytes))) => {
                let content = shared_content(self.seed, other, u64::from(phase >= CROSS));
                if bytes.len() as u64 != SHARED_BYTES {
                    return Err(format!("{} bytes, want {SHARED_BYTES}", bytes.len()));
                }
                first_mismatch(content, 0, bytes).map_or(Ok(()), |at| Err(format!("wrong byte at {at}")))
            }
            (Op::Stat { .. }, Ok(Outcome::Attr { is_dir: true, .. })) | (_, Ok(Outcome::Done)) => Ok(()),
            (_, Ok(other)) => Err(format!("unexpected outcome {other:?}")),
        }
    }

    fn sub_path(&self) -> String {
        format!("{}/sub", self.dir)
    }

    /// The names now in the process's directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.files.keys().map(|p| p.rsplit_once('/').map_or(p.as_str(), |(_, n)| n).to_string()).collect();
        if self.sub.is_some() {
            names.push("sub".into());
        }
        names.sort();
        names
    }

    /// What `op` must have answered, given what the process did before it.
    fn expect(&self, op: &Op, result: &Result<Outcome, OpError>) -> Result<(), String> {
        match (op, result) {
            (Op::Stat { path }, Err(OpError::NotFound { .. })) if !self.files.contains_key(path) => Ok(()),
            (Op::Rmdir { .. }, Err(OpError::NotEmpty { .. })) if self.sub == Some(true) => Ok(()),
            (Op::Create { path }, Err(OpError::Exists { .. })) if self.files.contains_key(path) => Ok(()),
            (Op::ReadFile { path }, Err(OpError::NotFound { .. })) if !self.files.contains_key(path) => Ok(()),
            (_, Err(e)) => Err(format!("unexpected error: {e}")),
            (Op::ReadFile { path }, Ok(Outcome::Bytes(bytes))) => self.check_bytes(path, 0, u64::MAX, bytes),
            (Op::Read { path, offset, len_bytes }, Ok(Outcome::Bytes(bytes))) => {
                self.check_bytes(path, *offset, *len_bytes, bytes)
            }
            (Op::Stat { path }, Ok(Outcome::Attr { is_dir: true, .. })) if *path == self.sub_path() => Ok(()),
            (Op::Stat { path }, Ok(Outcome::Attr { size_bytes, mode, is_dir })) => {
                let &(size, _, want_mode) = self.files.get(path).ok_or("stat found a file never made")?;
                if (*size_bytes, *mode, *is_dir) != (size, want_mode, false) {
                    return Err(format!("{size_bytes} bytes mode {mode:o} dir {is_dir}, want {size} {want_mode:o}"));
                }
                Ok(())
            }
            (Op::Readdir { .. }, Ok(Outcome::Names(names))) => {
                let want = self.names();
                if *names == want { Ok(()) } else { Err(format!("{names:?}, want {want:?}")) }
            }
            (Op::Find { .. }, Ok(Outcome::Count(count))) => {
                let want = self.names().len() as u64 + u64::from(self.sub == Some(true));
                if *count == want { Ok(()) } else { Err(format!("{count} entries, want {want}")) }
            }
            (Op::Rmdir { .. }, Ok(Outcome::Done)) if self.sub == Some(true) => {
                Err("removed a non-empty directory".into())
            }
            (Op::Create { path }, Ok(Outcome::Done)) if self.files.contains_key(path) => {
                Err("created over an existing file".into())
            }
            (_, Ok(Outcome::Done)) => Ok(()),
            (_, Ok(other)) => Err(format!("unexpected outcome {other:?}")),
        }
    }

    fn check_bytes(&self, path: &str, offset: u64, len: u64, bytes: &[u8]) -> Result<(), String> {
        let &(size, content, _) = self.files.get(path).ok_or("read a file never written")?;
        let want_len = size.saturating_sub(offset).min(len);
        if bytes.len() as u64 != want_len {
            return Err(format!("{} bytes at {offset}, want {want_len}", bytes.len()));
        }
        match first_mismatch(content, offset, bytes) {
            Some(at) => Err(format!("wrong byte at {at}")),
            None => Ok(()),
        }
    }

    /// What a successful `op` changed.
    fn apply(&mut self, op: &Op) {
        let sub = self.sub_path();
        match op {
            Op::Mkdir { path } if *path == sub => self.sub = Some(false),
            Op::Create { path } if path.starts_with(&format!("{sub}/")) => self.sub = Some(true),
            Op::Unlink { path } if path.starts_with(&format!("{sub}/")) => self.sub = Some(false),
            Op::Rmdir { .. } => self.sub = None,
            Op::Create { path } => {
                self.files.insert(path.clone(), (0, 0, 0o644));
            }
            Op::WriteFile { path, size_bytes, content } => {
                let mode = self.files.get(path).map_or(0o644, |f| f.2);
                self.files.insert(path.clone(), (*size_bytes, *content, mode));
            }
            Op::Write { path, offset, len_bytes, content } => {
                if let Some((size, c, _)) = self.files.get_mut(path) {
                    assert_eq!(*c, *content, "the tour extends files with their own content only");
                    *size = (*size).max(offset + len_bytes);
                }
            }
            Op::Chmod { path, mode } => {
                if let Some(file) = self.files.get_mut(path) {
                    file.2 = *mode;
                }
            }
            Op::Unlink { path } => {
                self.files.remove(path);
            }
            _ => {}
        }
    }
}

impl Process for TourProcess {
    fn next_op(&mut self, phase: usize) -> Option<Op> {
        match phase {
            BUILD | PEEK | SWAP | CROSS => {
                if phase != self.phase {
                    (self.phase, self.next) = (phase, 0);
                }
                let op = self.phase_ops(phase).get(self.next).cloned();
                self.next += usize::from(op.is_some());
                op
            }
            PACED => {
                let path = self.files.keys().nth(self.stats as usize % self.files.len().max(1))?.clone();
                self.stats += 1;
                Some(Op::Stat { path })
            }
            _ => None,
        }
    }

    fn observe(
        &mut self,
        phase: usize,
        op: &Op,
        result: &Result<Outcome, OpError>,
        verify: bool,
    ) -> Result<(), String> {
        if op.path().starts_with('q') {
            return if verify { self.expect_shared(phase, op, result) } else { Ok(()) };
        }
        let checked = if verify { self.expect(op, result) } else { Ok(()) };
        if result.is_ok() {
            self.apply(op);
        }
        checked
    }
}

fn params(seed: u64) -> Params {
    Params { load: 2, seed, duration_ns: 1_000_000_000 }
}

fn tour() -> Tour {
    Tour { procs: 2, paced_rate: PACED_RATE_PER_PROC }
}

fn run(workload: &dyn Workload, params: &Params) -> RunReport {
    run_with(workload, params, &Quiet, &AtomicU64::new(0))
}

fn run_with(workload: &dyn Workload, params: &Params, sink: &dyn ProgressSink, progress: &AtomicU64) -> RunReport {
    let report = run_bench(workload, params, &RunOptions::default(), &SimBenchConfig::default(), sink, progress);
    report.unwrap_or_else(|e| panic!("{} on the simulated cluster: {e}", workload.name()))
}

/// Remembers the phases it is told of.
#[derive(Default)]
struct Phases(RefCell<Vec<String>>);

impl ProgressSink for Phases {
    fn phase_started(&self, workload: &str, phase: &Phase, procs: usize) {
        self.0.borrow_mut().push(format!("{workload} {} x{procs}", phase.name));
    }

    fn phase_done(&self, report: &PhaseReport) {
        self.0.borrow_mut().push(format!("done {} {}", report.name, report.ops));
    }
}

fn assert_clean(report: &RunReport) {
    for phase in &report.phases {
        assert_eq!(phase.failures, 0, "phase {}: {:?}", phase.name, phase.first_failures);
        assert_eq!(phase.errors, 0, "phase {} had errors: {:?}", phase.name, phase.kinds);
    }
}

/// Every kind of operation does what a file system does, bytes read back are the bytes written (inline,
/// striped, across a stripe boundary, past the end), and the expected errors are the typed ones.
#[test]
fn tour_reads_back_what_it_wrote_on_the_simulated_cluster() {
    let (sink, progress) = (Phases::default(), AtomicU64::new(0));
    let report = run_with(&tour(), &params(1), &sink, &progress);
    let build = &report.phases[BUILD];
    assert_eq!(build.failures, 0, "{:?}", build.first_failures);
    let per_proc = TourProcess::new(0, 2, 1).script.len() as u64;
    assert_eq!(build.ops, per_proc * 2, "every scripted operation ran");
    // The expected failures: stat of a missing file, rmdir of a non-empty directory, create over an
    // existing file, read of an unlinked file; per process.
    assert_eq!(build.errors, 4 * 2, "{:?}", build.kinds);
    for phase in &report.phases[PACED..] {
        assert_eq!((phase.errors, phase.failures), (0, 0), "phase {}: {:?}", phase.name, phase.first_failures);
    }
    // A stale path is walked afresh: the neighbour's replaced file reads back with its new content.
    assert_eq!(report.phases[CROSS].ops, 2 * 2);
    assert!(build.bytes_written > 2 * (4 * MIB), "{} bytes written", build.bytes_written);
    assert!(report.target.starts_with("sim:8 nodes"), "{}", report.target);
    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["build", "paced-stat", "peek", "swap", "cross"]);
    let told: Vec<String> = report
        .phases
        .iter()
        .flat_map(|p| [format!("tour {} x2", p.name), format!("done {} {}", p.name, p.ops)])
        .collect();
    assert_eq!(sink.0.into_inner(), told);
    assert_eq!(progress.into_inner(), report.phases[CROSS].ops, "the counter ends at the last phase's operations");
}

/// Virtual time: one seed, one report, to the bit; another seed differs.
#[test]
fn same_seed_same_report() {
    let first = run(&tour(), &params(7));
    let second = run(&tour(), &params(7));
    assert_eq!(first, second);
    let other = run(&tour(), &params(8));
    assert_ne!(first.phases[BUILD].kinds, other.phases[BUILD].kinds, "the seed changes the timings");
}

/// A paced phase issues its operations at the requested rate, not as fast as it can, and stops at its
/// duration: 2 processes x 20 stats per second for 1 s are 40 stats (a closed loop does about twice as
/// many).
#[test]
fn paced_phase_achieves_its_rate() {
    let report = run(&tour(), &params(3));
    let paced = &report.phases[PACED];
    let requested = paced.requested_ops_per_sec.expect("paced");
    assert_eq!(requested, 2.0 * PACED_RATE_PER_PROC);
    assert_eq!(paced.ops, 40, "op i is due at i / rate, the last before the 1 s deadline");
    assert!(
        (paced.ops_per_sec - requested).abs() / requested < 0.05,
        "achieved {} ops/s of {requested}",
        paced.ops_per_sec
    );
    assert!((0.95..1.1).contains(&paced.elapsed_sec), "elapsed {} s", paced.elapsed_sec);
    let (achieved, wanted) = report.rates();
    assert!(wanted.is_none(), "the build phase is closed-loop: {achieved} {wanted:?}");
}

#[test]
fn config_errors_say_what_is_wrong() {
    let ok = SimBenchConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let few_racks = SimBenchConfig { nodes: 8, nodes_per_rack: 2, ..ok.clone() };
    let err = few_racks.validate().unwrap_err();
    assert!(matches!(err, SimBenchConfigError::TooFewRacks { racks: 4, needed: 6, .. }), "{err:?}");
    assert!(err.to_string().contains("4+2 needs at least 6 racks"), "{err}");
    let replicated = SimBenchConfig { protection: Protection::Replicated { copies: 3 }, ..few_racks };
    assert_eq!(replicated.validate(), Ok(()));
    let two_racks = SimBenchConfig { nodes: 4, protection: Protection::Replicated { copies: 2 }, ..replicated };
    let err = two_racks.validate().unwrap_err();
    assert!(err.to_string().contains("3 metadata replicas need as many racks, the cluster has 2"), "{err}");
    for bad in [
        SimBenchConfig { nodes: 2, ..ok.clone() },
        SimBenchConfig { nodes_per_rack: 3, ..ok.clone() },
        SimBenchConfig { shards_per_node: 0, ..ok.clone() },
        SimBenchConfig { drive_bytes: 1000, ..ok.clone() },
        SimBenchConfig { net_latency_us_min: 10, net_latency_us_max: 5, ..ok.clone() },
        SimBenchConfig { protection: Protection::ErasureCoded { data: 3, parity: 2 }, ..ok.clone() },
    ] {
        assert!(bad.validate().is_err(), "{bad:?} accepted");
    }
    let progress = AtomicU64::new(0);
    let refused =
        run_bench(&tour(), &params(1), &RunOptions::default(), &SimBenchConfig { nodes: 2, ..ok }, &Quiet, &progress);
    assert!(refused.is_err_and(|e| e.contains("3 to 1024 nodes")));
}

/// The IO500 metadata-easy workload at load 2 runs clean (skipped while the suite is being written).
#[test]
fn mdtest_easy_runs_clean_on_the_simulated_cluster() {
    let workload = match tessera_workloads::suite::by_name("mdtest-easy", None) {
        Ok(workload) => workload,
        Err(e) if e.to_string().contains("not built yet") => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("mdtest-easy: {e}"),
    };
    let params = Params { load: 2, seed: 5, duration_ns: 1_000_000_000 };
    let report = run(&*workload, &params);
    for phase in &report.phases {
        println!("{} {:?}: {} ops in {:.3} s", phase.name, phase.role, phase.ops, phase.elapsed_sec);
    }
    assert_clean(&report);
    assert!(
        report.measured().all(|p| p.ops > 0),
        "{:?}",
        report.phases.iter().map(|p| (&p.name, p.ops)).collect::<Vec<_>>()
    );
}
