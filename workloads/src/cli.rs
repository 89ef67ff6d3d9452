//! The `bench` command line: `tessera-bench WORKLOAD --target dir:PATH|sim|cluster:HOST:PORT [--load N]
//! [--duration 30s] [--verify]`, shared by every binary that offers it (the simulated cluster is plugged
//! in by the binary that has it, through [`SimRunner`]).

// Not simulated: the command line times runs, stamps files and draws progress on the OS clock (workloads/clippy.toml bans them elsewhere).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::dir::DirTarget;
use crate::metrics::{PhaseReport, RunReport};
use crate::report;
use crate::run::{ProgressSink, RunOptions, run_workload};
use crate::suite;
use crate::workload::{Params, Phase, Workload};

/// Longest run a user can ask for.
const DURATION_MAX_NS: u64 = 24 * 3600 * 1_000_000_000;
/// Most loads in one sweep.
const LOADS_MAX: usize = 64;
/// Highest load of one run.
const LOAD_MAX: u64 = 4096;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tessera-bench",
    about = "Run a file-system workload against a directory, the simulated cluster or a real cluster",
    long_about = "Run a file-system workload against a directory, the simulated cluster or a real cluster, \
and report op rates, latency percentiles per operation and (with --verify) whether every byte and name read \
back was right.\n\nWorkloads: swbuild (SPEC SFS 2014 SWBUILD-like: load in BUILDS of 5 processes at 100 ops/s \
each), eda (EDA-like front and back end: load in JOB_SETS), vda (video streams: load in STREAMS), ior-easy, \
ior-hard, mdtest-easy, mdtest-hard, io500 (IO500-like: load in processes).\n\nResults: a table on the \
terminal, and in --out a JSON file (every figure), a CSV file (op rate and latency over time) and an SVG \
plot (op rate and latency against load). Give several loads (--load 1,2,4,8) to find the highest load that \
still achieves 95% of the requested rate.\n\nThe exit status is 0 when every operation succeeded (and, with \
--verify, read back right), 1 when some failed, 2 for bad arguments.",
    after_help = "Examples:\n  tessera-bench swbuild --target dir:/tmp --load 1,2,4 --duration 20s --verify\n  \
tessera-bench mdtest-easy --target sim --load 4 --duration 5s --verify\n  tessera-bench io500 --target sim:12 \
--load 4 --duration 2s --verify"
)]
pub struct BenchArgs {
    /// The workload: swbuild, eda, vda, ior-easy, ior-hard, mdtest-easy, mdtest-hard or io500.
    pub workload: String,
    /// Where to run: dir:PATH (any existing directory: a local disk, a FUSE mount), sim or sim:NODES
    /// (the simulated cluster in virtual time, default 8 nodes), cluster:HOST:PORT (a running cluster).
    #[arg(long)]
    pub target: String,
    /// The load (swbuild: builds; eda: job sets; vda: streams; the rest: processes). A comma-separated
    /// list (1,2,4,8) runs one after another, each on a fresh directory or cluster.
    #[arg(long, default_value = "1")]
    pub load: String,
    /// How long each measured phase runs (30s, 500ms, 2m); IO500's write phases stop after it.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Check every byte, name and size read back against what was written.
    #[arg(long)]
    pub verify: bool,
    /// Seed of the workload's choices (and of the simulated cluster).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A TOML file overriding the workload's built-in settings (op mix, file sizes, rates): the keys it
    /// names replace the defaults (workloads/*.toml show every key and its source).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory the JSON, CSV and SVG files go to (made if missing).
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Width of one interval of the latency-over-time series (1s, 100ms).
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Progress on stderr: auto (a line redrawn on a terminal, else plain lines), lines, off.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Keep the run directory of a dir: or cluster: target (it is removed otherwise, unless a result was
    /// wrong).
    #[arg(long)]
    pub keep: bool,
    /// The file system a cluster: target runs in (its run directory is made there).
    #[arg(long, default_value = "default")]
    pub fs: String,
}

/// Where a run goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Dir(PathBuf),
    Sim { nodes: Option<u64> },
    Cluster { address: String },
}

impl TargetSpec {
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        if let Some(path) = text.strip_prefix("dir:") {
            if path.is_empty() {
                return Err("--target dir:PATH needs a path".into());
            }
            return Ok(TargetSpec::Dir(PathBuf::from(path)));
        }
        if text == "sim" {
            return Ok(TargetSpec::Sim { nodes: None });
        }
        if let Some(nodes) = text.strip_prefix("sim:") {
            let nodes = nodes.parse::<u64>().map_err(|_| format!("--target sim:NODES: {nodes:?} is not a number"))?;
            return Ok(TargetSpec::Sim { nodes: Some(nodes) });
        }
        if let Some(address) = text.strip_prefix("cluster:") {
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| format!("--target cluster:HOST:PORT: no port in {address:?}"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("--target cluster:HOST:PORT: {address:?} is not HOST:PORT"));
            }
            return Ok(TargetSpec::Cluster { address: address.to_string() });
        }
        Err(format!("unknown target {text:?}: expected dir:PATH, sim, sim:NODES or cluster:HOST:PORT"))
    }

    fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Dir(_) => "dir",
            TargetSpec::Sim { .. } => "sim",
            TargetSpec::Cluster { .. } => "cluster",
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h`, `250us`, or a bare number of seconds, in nanoseconds.
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("duration {text:?}: expected a number and a unit, like 30s"))?;
    let scale = match unit {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        other => return Err(format!("duration {text:?}: unknown unit {other:?} (use ms, s, m or h)")),
    };
    let ns = value * scale;
    if !(1.0..=DURATION_MAX_NS as f64).contains(&ns) {
        return Err(format!("duration {text:?}: must be between 1 ns and 24 h"));
    }
    Ok(ns as u64)
}

/// `4` or `1,2,4,8`.
pub fn parse_loads(text: &str) -> Result<Vec<u64>, String> {
    let mut loads = Vec::new();
    for part in text.split(',') {
        let load: u64 = part.trim().parse().map_err(|_| format!("--load: {part:?} is not a whole number"))?;
        if !(1..=LOAD_MAX).contains(&load) {
            return Err(format!("--load: {load} is outside 1..={LOAD_MAX}"));
        }
        loads.push(load);
    }
    if loads.len() > LOADS_MAX {
        return Err(format!("--load: at most {LOADS_MAX} loads in one sweep"));
    }
    Ok(loads)
}

/// The simulated cluster, supplied by a binary that links the simulator.
pub trait SimRunner {
    /// One run of `workload` on a fresh simulated cluster of `nodes` (`None`: the default size).
    fn run(
        &self,
        workload: &dyn Workload,
        params: &Params,
        options: &RunOptions,
        nodes: Option<u64>,
        sink: &dyn ProgressSink,
        progress: &Arc<AtomicU64>,
    ) -> Result<RunReport, String>;
}

/// A real cluster, supplied by a binary that links the client (`tessera bench`).
pub trait ClusterRunner {
    /// One run of `workload` on the cluster one of whose nodes listens at `address`, in a fresh
    /// directory of file system `fs` (removed afterwards unless `keep` or a result was wrong).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        workload: &dyn Workload,
        params: &Params,
        options: &RunOptions,
        address: &str,
        fs: &str,
        keep: bool,
        sink: &dyn ProgressSink,
        progress: &Arc<AtomicU64>,
    ) -> Result<RunReport, String>;
}

/// The targets a binary links besides directories.
#[derive(Clone, Copy, Default)]
pub struct Runners<'a> {
    pub sim: Option<&'a dyn SimRunner>,
    pub cluster: Option<&'a dyn ClusterRunner>,
}

impl std::fmt::Debug for Runners<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runners").field("sim", &self.sim.is_some()).field("cluster", &self.cluster.is_some()).finish()
    }
}

/// Progress on stderr: phase lines, and while a phase runs its operation count.
struct Progress {
    style: Style,
    load: u64,
    ops: Arc<AtomicU64>,
    phase: Mutex<Option<(String, Instant)>>,
    stop: AtomicBool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Off,
    Lines,
    Redraw,
}

impl Progress {
    fn ticker(&self) {
        let mut last_line = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let Some((phase, began)) = self.phase.lock().map(|p| p.clone()).unwrap_or(None) else { continue };
            let line = format!(
                "  load {} {phase}: {} ops, {:.0} s",
                self.load,
                self.ops.load(Ordering::Relaxed),
                began.elapsed().as_secs_f64()
            );
            match self.style {
                Style::Off => {}
                Style::Redraw => eprint!("\r{line}\x1b[K"),
                Style::Lines if last_line.elapsed() >= Duration::from_secs(10) => {
                    eprintln!("{line}");
                    last_line = Instant::now();
                }
                Style::Lines => {}
            }
        }
    }
}

impl ProgressSink for Progress {
    fn phase_started(&self, workload: &str, phase: &Phase, procs: usize) {
        if let Ok(mut current) = self.phase.lock() {
            *current = Some((phase.name.clone(), Instant::now()));
        }
        if self.style != Style::Off {
            let rate = phase.rate_per_proc.map_or(String::new(), |r| format!(" at {r} ops/s each"));
            eprintln!("{}{workload} load {}: phase {} ({procs} processes{rate})", self.clear(), self.load, phase.name);
        }
    }

    fn phase_done(&self, report: &PhaseReport) {
        if let Ok(mut current) = self.phase.lock() {
            *current = None;
        }
        if self.style != Style::Off {
            eprintln!(
                "{}  done: {} ops in {:.2} s, {:.0} ops/s, {:.1} MiB/s, {} errors, {} wrong",
                self.clear(),
                report.ops,
                report.elapsed_sec,
                report.ops_per_sec,
                report.mib_per_sec,
                report.errors,
                report.failures
            );
        }
    }
}

impl Progress {
    fn clear(&self) -> &'static str {
        if self.style == Style::Redraw { "\r\x1b[K" } else { "" }
    }
}

/// What a finished command wrote and decided.
#[derive(Debug)]
pub struct BenchOutcome {
    pub runs: Vec<RunReport>,
    pub files: Vec<PathBuf>,
    /// Operations that failed or read back wrong, over every run.
    pub bad: u64,
}

/// Run the command; the process exit status follows from the result (`Err`: bad arguments or a target
/// that cannot run, exit 2; `bad > 0`: exit 1).
pub fn run_bench(args: &BenchArgs, runners: Runners<'_>) -> Result<BenchOutcome, String> {
    let target = TargetSpec::parse(&args.target)?;
    let loads = parse_loads(&args.load)?;
    let duration_ns = parse_duration_ns(&args.duration)?;
    let interval_ns = parse_duration_ns(&args.interval)?;
    let style = match args.progress.as_str() {
        "off" => Style::Off,
        "lines" => Style::Lines,
        "auto" if std::io::stderr().is_terminal() => Style::Redraw,
        "auto" => Style::Lines,
        other => return Err(format!("--progress {other:?}: expected auto, lines or off")),
    };
    let config = match &args.config {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?),
        None => None,
    };
    let workload = suite::by_name(&args.workload, config.as_deref()).map_err(|e| e.to_string())?;
    if let (TargetSpec::Cluster { address }, None) = (&target, runners.cluster) {
        return Err(format!("cluster:{address}: this binary has no cluster client; use `tessera bench`"));
    }
    if let (TargetSpec::Sim { .. }, None) = (&target, runners.sim) {
        return Err("this binary has no simulated cluster; use tessera-bench from tessera-sim".into());
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("--out {}: {e}", args.out.display()))?;
    let options = RunOptions { verify: args.verify, interval_ns };
    let mut runs = Vec::new();
    for &load in &loads {
        let params = Params { load, seed: args.seed, duration_ns };
        let ops = Arc::new(AtomicU64::new(0));
        let progress =
            Progress { style, load, ops: ops.clone(), phase: Mutex::new(None), stop: AtomicBool::new(false) };
        let report = std::thread::scope(|scope| {
            scope.spawn(|| progress.ticker());
            let report = run_one(&target, &*workload, &params, &options, &progress, &ops, runners, args);
            progress.stop.store(true, Ordering::Relaxed);
            report
        })?;
        println!("{}", report::table(&report));
        runs.push(report);
    }
    if runs.len() > 1 {
        println!("{}", report::sweep_table(&runs));
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stem = args.out.join(format!("{}-{}-{stamp}", workload.name(), target.kind()));
    let files = write_files(&stem, &runs)?;
    for file in &files {
        println!("wrote {}", file.display());
    }
    let bad: u64 = runs.iter().map(|r| r.errors() + r.failures()).sum();
    if bad > 0 {
        println!("FAILED: {bad} operations failed or read back wrong (see the tables above and the JSON file)");
    }
    Ok(BenchOutcome { runs, files, bad })
}

fn write_files(stem: &Path, runs: &[RunReport]) -> Result<Vec<PathBuf>, String> {
    let with = |ext: &str| stem.with_extension(ext);
    let (json, csv, svg) = (with("json"), with("csv"), with("svg"));
    report::write_json(&json, runs).map_err(|e| format!("{}: {e}", json.display()))?;
    report::write_csv(&csv, runs).map_err(|e| format!("{}: {e}", csv.display()))?;
    report::write_svg(&svg, runs).map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(vec![json, csv, svg])
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    target: &TargetSpec,
    workload: &dyn Workload,
    params: &Params,
    options: &RunOptions,
    progress: &Progress,
    ops: &Arc<AtomicU64>,
    runners: Runners<'_>,
    args: &BenchArgs,
) -> Result<RunReport, String> {
    let keep = args.keep;
    match target {
        TargetSpec::Dir(base) => {
            let mut dir = DirTarget::create(base, workload.name()).map_err(|e| e.to_string())?;
            let report = futures::executor::block_on(run_workload(&mut dir, workload, params, options, progress, ops))
                .map_err(|e| e.to_string())?;
            let wrong = report.failures() > 0;
            if keep || wrong {
                let why = if wrong { "kept: some results were wrong" } else { "kept (--keep)" };
                let _ = writeln!(std::io::stderr(), "run directory {} {why}", dir.root().display());
            } else {
                let root = dir.root().to_path_buf();
                dir.remove().map_err(|e| format!("removing the run directory {}: {e}", root.display()))?;
            }
            Ok(report)
        }
        TargetSpec::Sim { nodes } => {
            let sim = runners.sim.ok_or("no simulated cluster in this binary")?;
            sim.run(workload, params, options, *nodes, progress, ops)
        }
        TargetSpec::Cluster { address } => {
            let cluster = runners.cluster.ok_or("no cluster client in this binary")?;
            cluster.run(workload, params, options, address, &args.fs, keep, progress, ops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_with_clear_messages() {
        assert_eq!(TargetSpec::parse("dir:/tmp"), Ok(TargetSpec::Dir("/tmp".into())));
        assert_eq!(TargetSpec::parse("sim:12"), Ok(TargetSpec::Sim { nodes: Some(12) }));
        assert!(TargetSpec::parse("cluster:host").unwrap_err().contains("no port"));
        assert!(TargetSpec::parse("nfs:x").unwrap_err().contains("expected dir:PATH"));
        assert_eq!(parse_duration_ns("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration_ns("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration_ns("2m"), Ok(120_000_000_000));
        assert!(parse_duration_ns("3 weeks").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_loads("1,2, 4"), Ok(vec![1, 2, 4]));
        assert!(parse_loads("0").unwrap_err().contains("outside"));
        assert!(parse_loads("x").unwrap_err().contains("not a whole number"));
    }
}
