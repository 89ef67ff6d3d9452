//! SWBUILD-like workload (model: SPEC SFS 2014 SWBUILD), and the machinery the EDA-like and VDA-like
//! workloads share with it.
//!
//! The load is in builds: each build runs `procs_per_build` processes, each on its own source tree
//! `swbuild/p{i}/` (a tree of `dirs` directories with `files_per_dir` files each, sizes drawn from a
//! table). Phases: `swbuild-dirs` (process 0 makes `swbuild/`), `swbuild-setup` (closed loop: every
//! process makes its tree and writes its files), `swbuild` (measured: the op mix of `swbuild.toml`, mostly
//! `stat`, at `rate_per_proc` per process for the run's duration), `swbuild-check` (reads back every file,
//! stats it, lists every directory). Each process keeps a model of its tree (path -> size, content, mode;
//! the directories), so every read, listing and stat is checked against what it wrote, and any error on
//! its own tree is a failure. Memory per process is its model: the files and directories it owns.
//!
//! Shared with `eda.rs` and `vda.rs` (they live here because this file is theirs to reuse): loading a
//! TOML configuration over embedded defaults ([`load_config`]) and validating its parts ([`Mix`],
//! [`SizeTable`], [`positive`], [`positive_rate`]); what an operation must return ([`Expect`],
//! [`check_result`]); the process that runs a model of its own files through the phases ([`Scripted`],
//! over a [`ScriptModel`]: the tree process [`TreeProc`] here, also the EDA front end, and the sequential
//! process of `vda.rs`); the workload itself, its phases, processes and rate metrics, from its layout and
//! its processes' models ([`Paced`]: a [`PacedLayout`] and [`PacedModels`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::metrics::{Metric, PhaseReport};
use crate::op::{Op, OpError, OpKind, Outcome, WorkRng, first_mismatch, mix};
use crate::suite::SuiteError;
use crate::workload::{Params, Phase, PhaseRole, Process, Score, Workload};

/// The built-in defaults (`workloads/swbuild.toml`).
const DEFAULTS: &str = include_str!("../../swbuild.toml");
/// The workload's name, its run phase's name and the top of its trees.
const NAME: &str = "swbuild";
/// Separates this workload's random streams from the others' at the same seed.
const SEED_TAG: u64 = 0x5357_4255_494c_4400;

/// Phase indices of every workload here: two setup phases (the directories the processes share, made by
/// process 0 alone so no process finds another's `mkdir` done, then each process's own files), one run
/// phase and one check phase.
const DIRS: usize = 0;
const SETUP: usize = 1;
const RUN: usize = 2;
const CHECK: usize = 3;

/// Largest file a tree workload writes whole in one operation (and reads whole back).
const TREE_FILE_MAX_BYTES: u64 = 256 << 20;
/// Most files one tree process may start with (its model is kept in memory).
const TREE_FILES_MAX: u64 = 1_000_000;
/// Permission bits `chmod` chooses from: every one keeps owner read and write, so later reads still work
/// on a real file system.
const MODES: [u32; 5] = [0o644, 0o640, 0o664, 0o600, 0o755];
/// The operations a tree process's mix may name.
pub(crate) const TREE_OPS: [OpKind; 9] = [
    OpKind::Stat,
    OpKind::Access,
    OpKind::ReadFile,
    OpKind::WriteFile,
    OpKind::Chmod,
    OpKind::Readdir,
    OpKind::Unlink,
    OpKind::Create,
    OpKind::Mkdir,
];

// ---------------------------------------------------------------------------------------------------
// Configuration: defaults embedded, a user's file merged over them, then validated.
// ---------------------------------------------------------------------------------------------------

/// A configuration error of workload `workload`.
pub(crate) fn config_error(workload: &str, message: impl Into<String>) -> SuiteError {
    SuiteError::Config { workload: workload.to_string(), message: message.into() }
}

/// Merge `over` into `base`: a key `over` sets replaces the default, tables merge key by key, except an
/// `ops` table (a mix replaces the whole default mix) and arrays (size tables), which replace whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) if key != "ops" => merge(mine, theirs),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The configuration of `workload`: the embedded `defaults`, with the user's TOML text `user` (if any)
/// merged over them, parsed into `T` (whose structs deny unknown fields).
pub(crate) fn load_config<T: DeserializeOwned>(
    workload: &str,
    defaults: &str,
    user: Option<&str>,
) -> Result<T, SuiteError> {
    let mut table: toml::Table =
        defaults.parse().map_err(|e| config_error(workload, format!("built-in defaults: {e}")))?;
    if let Some(text) = user {
        let over: toml::Table = text.parse().map_err(|e| config_error(workload, format!("{e}")))?;
        merge(&mut table, over);
    }
    // These errors carry no source snippet (the merged table has none): one line, "... in `key`".
    table.try_into().map_err(|e: toml::de::Error| config_error(workload, e.to_string().trim_end().replace('\n', " ")))
}

/// `value`, if it is above zero.
pub(crate) fn positive(workload: &str, name: &str, value: u64) -> Result<u64, SuiteError> {
    if value == 0 { Err(config_error(workload, format!("{name} must be > 0"))) } else { Ok(value) }
}

/// `value`, if it is a finite rate above zero.
pub(crate) fn positive_rate(workload: &str, name: &str, value: f64) -> Result<f64, SuiteError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(config_error(workload, format!("{name} must be a number of operations per second > 0, got {value}")))
    }
}

/// An operation mix: kinds and their relative weights (not all zero).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mix {
    kinds: Vec<OpKind>,
    weights: Vec<u64>,
}

impl Mix {
    /// The mix of table `table` (`[ops]`): operation names to weights, each one of `allowed`.
    pub(crate) fn from_table(
        workload: &str,
        table: &str,
        ops: &BTreeMap<String, u64>,
        allowed: &[OpKind],
    ) -> Result<Mix, SuiteError> {
        let mut mix = Mix { kinds: Vec::new(), weights: Vec::new() };
        for (name, weight) in ops {
            let Some(kind) = OpKind::from_name(name).filter(|k| allowed.contains(k)) else {
                let names: Vec<&str> = allowed.iter().map(|k| k.name()).collect();
                return Err(config_error(
                    workload,
                    format!("{table}: unknown operation {name:?}; expected one of {}", names.join(", ")),
                ));
            };
            mix.kinds.push(kind);
            mix.weights.push(*weight);
        }
        if mix.weights.iter().sum::<u64>() == 0 {
            return Err(config_error(workload, format!("{table}: every weight is zero (or the table is empty)")));
        }
        Ok(mix)
    }

    pub(crate) fn pick(&self, rng: &mut WorkRng) -> OpKind {
        self.kinds[rng.weighted(&self.weights)]
    }

    /// The share (0..=1) of `kind` in the mix.
    #[cfg(test)]
    pub(crate) fn share(&self, kind: OpKind) -> f64 {
        let total: u64 = self.weights.iter().sum();
        let mine: u64 = self.kinds.iter().zip(&self.weights).filter(|(k, _)| **k == kind).map(|(_, w)| w).sum();
        mine as f64 / total as f64
    }
}

/// One row of a file-size table in TOML.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SizeWeight {
    pub size_bytes: u64,
    pub weight: u64,
}

/// File sizes and their relative weights.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SizeTable {
    sizes: Vec<u64>,
    weights: Vec<u64>,
}

impl SizeTable {
    /// The table `table`: weights not all zero, sizes at most `max_bytes`, above zero unless `allow_empty`
    /// (and then at least one non-empty size with a weight).
    pub(crate) fn from_rows(
        workload: &str,
        table: &str,
        rows: &[SizeWeight],
        allow_empty: bool,
        max_bytes: u64,
    ) -> Result<SizeTable, SuiteError> {
        for (i, row) in rows.iter().enumerate() {
            if row.size_bytes == 0 && !allow_empty {
                return Err(config_error(workload, format!("{table}[{i}]: size_bytes must be > 0")));
            }
            if row.size_bytes > max_bytes {
                return Err(config_error(
                    workload,
                    format!("{table}[{i}]: size_bytes {} is above the limit of {max_bytes}", row.size_bytes),
                ));
            }
        }
        let table_of = SizeTable {
            sizes: rows.iter().map(|r| r.size_bytes).collect(),
            weights: rows.iter().map(|r| r.weight).collect(),
        };
        if table_of.weights.iter().sum::<u64>() == 0 {
            return Err(config_error(workload, format!("{table}: every weight is zero (or the table is empty)")));
        }
        if table_of.non_empty().weights.iter().sum::<u64>() == 0 {
            return Err(config_error(workload, format!("{table}: needs a size > 0 with a weight > 0")));
        }
        Ok(table_of)
    }

    /// A table of a single size.
    pub(crate) fn single(size_bytes: u64) -> SizeTable {
        SizeTable { sizes: vec![size_bytes], weights: vec![1] }
    }

    /// The rows of sizes above zero.
    fn non_empty(&self) -> SizeTable {
        let (sizes, weights) = self.sizes.iter().zip(&self.weights).filter(|(s, _)| **s > 0).unzip();
        SizeTable { sizes, weights }
    }

    pub(crate) fn pick(&self, rng: &mut WorkRng) -> u64 {
        self.sizes[rng.weighted(&self.weights)]
    }
}

// ---------------------------------------------------------------------------------------------------
// What an operation must return.
// ---------------------------------------------------------------------------------------------------

/// What a process expects an operation to return, decided when it issues the operation (it alone
/// touches its files, so it knows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Any success.
    Any,
    /// `Outcome::Done`.
    Done,
    /// Exactly `len_bytes` bytes of content `content` from `offset`.
    Bytes { content: u64, offset: u64, len_bytes: u64 },
    /// Attributes: a directory or a file, its size and permission bits where known.
    Attr { size_bytes: Option<u64>, mode: Option<u32>, is_dir: bool },
    /// A listing holding every name of `sure`, and no name outside `sure` and `maybe` (entries whose
    /// creation or removal failed, so may or may not be there).
    Names { sure: Vec<String>, maybe: Vec<String> },
}

impl Expect {
    fn describe(&self) -> &'static str {
        match self {
            Expect::Any => "any result",
            Expect::Done => "done",
            Expect::Bytes { .. } => "bytes",
            Expect::Attr { .. } => "attributes",
            Expect::Names { .. } => "names",
        }
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".to_string(),
        Outcome::Bytes(bytes) => format!("{} bytes", bytes.len()),
        Outcome::Attr { .. } => "attributes".to_string(),
        Outcome::Names(names) => format!("{} names", names.len()),
        Outcome::Count(n) => format!("a count ({n})"),
    }
}

/// At most a few names, for a message.
fn some_names(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Whether `result` is what `expect` says. An error is always wrong; bytes, sizes, modes and names are
/// checked only when `verify`.
pub(crate) fn check_result(expect: &Expect, result: &Result<Outcome, OpError>, verify: bool) -> Result<(), String> {
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => return Err(format!("unexpected error: {error}")),
    };
    if !verify {
        return Ok(());
    }
    match (expect, outcome) {
        (Expect::Any, _) | (Expect::Done, Outcome::Done) => Ok(()),
        (Expect::Bytes { content, offset, len_bytes }, Outcome::Bytes(got)) => {
            if got.len() as u64 != *len_bytes {
                return Err(format!("read {} bytes at offset {offset}, expected {len_bytes}", got.len()));
            }
            match first_mismatch(*content, *offset, got) {
                Some(at) => Err(format!("byte at offset {at} differs from what was written")),
                None => Ok(()),
            }
        }
        (
            Expect::Attr { size_bytes, mode, is_dir },
            Outcome::Attr { size_bytes: got_size, mode: got_mode, is_dir: got_dir },
        ) => {
            if got_dir != is_dir {
                let what = |dir: bool| if dir { "a directory" } else { "a file" };
                return Err(format!("is {}, expected {}", what(*got_dir), what(*is_dir)));
            }
            if let Some(size) = size_bytes
                && size != got_size
            {
                return Err(format!("size {got_size} bytes, expected {size}"));
            }
            if let Some(mode) = mode
                && mode & 0o777 != got_mode & 0o777
            {
                return Err(format!("mode {:o}, expected {:o}", got_mode & 0o777, mode & 0o777));
            }
            Ok(())
        }
        (Expect::Names { sure, maybe }, Outcome::Names(got)) => {
            let got: BTreeSet<&str> = got.iter().map(String::as_str).collect();
            let allowed: BTreeSet<&str> = sure.iter().chain(maybe).map(String::as_str).collect();
            let missing: Vec<&str> = sure.iter().map(String::as_str).filter(|n| !got.contains(n)).collect();
            let extra: Vec<&str> = got.iter().copied().filter(|n| !allowed.contains(n)).collect();
            match (missing.is_empty(), extra.is_empty()) {
                (true, true) => Ok(()),
                (false, true) => Err(format!("listing lacks {}", some_names(&missing))),
                (true, false) => Err(format!("listing has unexpected {}", some_names(&extra))),
                (false, false) => {
                    Err(format!("listing lacks {} and has unexpected {}", some_names(&missing), some_names(&extra)))
                }
            }
        }
        (expect, other) => Err(format!("returned {}, expected {}", describe(other), expect.describe())),
    }
}

// ---------------------------------------------------------------------------------------------------
// Seeds, process counts and metrics of the paced workloads.
// ---------------------------------------------------------------------------------------------------

/// The random stream of process `index` of a workload (`tag` tells workloads apart) at seed `seed`.
fn process_rng(seed: u64, tag: u64, index: usize) -> WorkRng {
    WorkRng::new(seed ^ mix(tag.wrapping_add(index as u64)))
}

/// `count` processes per unit of load, as a process count.
fn scaled(load: u64, per_unit: u64) -> usize {
    usize::try_from(load.saturating_mul(per_unit)).unwrap_or(usize::MAX)
}

/// The figures of a paced run phase named `name`: the requested and achieved op rates and their ratio
/// (`achieved_fraction`: the CLI looks for the highest load that still achieves 95%), and the bandwidth.
/// The achieved rate counts over the longer of the requested duration and the phase's length, so a run
/// that keeps up reports 1.0 and one that falls behind (or overruns its deadline) reports less.
fn rate_metrics(name: &str, params: &Params, phases: &[PhaseReport]) -> Vec<Metric> {
    let Some(run) = phases.iter().find(|p| p.role == PhaseRole::Run && p.name == name) else {
        return Vec::new();
    };
    let secs = run.elapsed_sec.max(params.duration_ns as f64 / 1e9).max(1e-9);
    let achieved = run.ops as f64 / secs;
    let mut metrics = Vec::new();
    if let Some(requested) = run.requested_ops_per_sec {
        metrics.push(Metric::new("requested_ops_per_sec", requested, "ops/s"));
        metrics.push(Metric::new("achieved_ops_per_sec", achieved, "ops/s"));
        if requested > 0.0 {
            metrics.push(Metric::new("achieved_fraction", achieved / requested, "ratio"));
        }
    } else {
        metrics.push(Metric::new("achieved_ops_per_sec", achieved, "ops/s"));
    }
    let bytes = (run.bytes_read + run.bytes_written) as f64;
    metrics.push(Metric::new("achieved_mib_per_sec", bytes / (1024.0 * 1024.0) / secs, "MiB/s"));
    metrics
}

// ---------------------------------------------------------------------------------------------------
// The scripted process and the paced workload: what SWBUILD, EDA and VDA have in common.
// ---------------------------------------------------------------------------------------------------

/// A process's model of the files it owns (the tree process, the sequential process): the operations of
/// its setup, run and check phases and what each must return, and what a result changes in the model.
/// [`Scripted`] runs it as a [`Process`].
pub(crate) trait ScriptModel: Send + fmt::Debug {
    /// The [`SETUP`] phase's operations, in order (drawn from the model's random stream).
    fn setup_script(&mut self) -> VecDeque<(Op, Expect)>;

    /// The [`CHECK`] phase's operations, in order: what the model knows for sure, read back.
    fn check_script(&self) -> VecDeque<(Op, Expect)>;

    /// The next operation of the [`RUN`] phase (there is always one: the phase's deadline ends it).
    fn run_op(&mut self) -> (Op, Expect);

    /// Update the model after `op` succeeded (`ok`) or failed.
    fn apply(&mut self, op: &Op, ok: bool);

    /// Its own pace in the [`RUN`] phase, where it differs from the phase's (the EDA back end).
    fn run_rate_per_sec(&self) -> Option<f64> {
        None
    }
}

/// A process of a paced workload: in [`DIRS`] it makes the directories it shares with other processes,
/// in [`SETUP`] and [`CHECK`] it runs its model's script, in [`RUN`] it asks the model for one operation
/// at a time; it checks every result against what the model said it must be, then updates the model.
#[derive(Debug)]
pub(crate) struct Scripted {
    model: Box<dyn ScriptModel>,
    /// Directories shared with other processes, made by this one in the [`DIRS`] phase (process 0 makes
    /// them all; the others have none).
    shared: Vec<String>,
    /// The remaining operations of a setup or check phase.
    script: VecDeque<(Op, Expect)>,
    phase: Option<usize>,
    /// What the operation last issued must return.
    pending: Option<Expect>,
}

impl Scripted {
    pub(crate) fn new(model: Box<dyn ScriptModel>, shared: Vec<String>) -> Scripted {
        Scripted { model, shared, script: VecDeque::new(), phase: None, pending: None }
    }
}

impl Process for Scripted {
    fn next_op(&mut self, phase: usize) -> Option<Op> {
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.script = match phase {
                DIRS => self.shared.iter().map(|dir| (Op::Mkdir { path: dir.clone() }, Expect::Done)).collect(),
                SETUP => self.model.setup_script(),
                CHECK => self.model.check_script(),
                _ => VecDeque::new(),
            };
        }
        let (op, expect) = if phase == RUN { self.model.run_op() } else { self.script.pop_front()? };
        self.pending = Some(expect);
        Some(op)
    }

    fn observe(
        &mut self,
        phase: usize,
        op: &Op,
        result: &Result<Outcome, OpError>,
        verify: bool,
    ) -> Result<(), String> {
        let expect = self.pending.take().unwrap_or(Expect::Any);
        let checked = check_result(&expect, result, verify);
        if phase != DIRS {
            self.model.apply(op, result.is_ok());
        }
        checked
    }

    fn rate_per_sec(&self, phase: usize) -> Option<f64> {
        if phase == RUN { self.model.run_rate_per_sec() } else { None }
    }
}

/// The shape every paced workload (SWBUILD, EDA, VDA) has: [`Paced`] makes it a [`Workload`] with the
/// phases [`DIRS`], [`SETUP`], [`RUN`] (paced at `rate_per_proc` for the run's duration) and [`CHECK`],
/// one [`Scripted`] process per model, and the [`rate_metrics`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PacedLayout {
    /// The workload's name, its run phase's name and the top of its directories.
    pub name: &'static str,
    /// Separates this workload's random streams from the others' at the same seed.
    pub seed_tag: u64,
    /// The directory of unit `u` of the load is `{name}/{unit_dir}{u}` (made by process 0 in [`DIRS`]);
    /// `None`: units have no directory of their own.
    pub unit_dir: Option<&'static str>,
    /// Processes per unit of load (above zero).
    pub procs_per_unit: u64,
    /// Operations per second each process issues in the run phase (unless its model paces itself).
    pub rate_per_proc: f64,
}

/// What sets a paced workload's processes apart: the model each runs.
pub(crate) trait PacedModels: Send + Sync {
    /// The model of process `index`, process `rank` of unit `unit`, drawing from `rng`.
    fn model(&self, index: usize, unit: usize, rank: usize, rng: WorkRng) -> Box<dyn ScriptModel>;
}

/// A paced workload: its layout and its processes' models.
#[derive(Debug)]
pub(crate) struct Paced<M> {
    pub(crate) layout: PacedLayout,
    pub(crate) models: M,
}

impl<M: PacedModels> Workload for Paced<M> {
    fn name(&self) -> &str {
        self.layout.name
    }

    fn process_count(&self, params: &Params) -> usize {
        scaled(params.load, self.layout.procs_per_unit)
    }

    fn setup(&self, _params: &Params) -> Vec<Phase> {
        vec![
            Phase::until_done(&format!("{}-dirs", self.layout.name), PhaseRole::Setup),
            Phase::until_done(&format!("{}-setup", self.layout.name), PhaseRole::Setup),
        ]
    }

    fn run(&self, params: &Params) -> Vec<Phase> {
        vec![Phase {
            name: self.layout.name.to_string(),
            role: PhaseRole::Run,
            rate_per_proc: Some(self.layout.rate_per_proc),
            duration_ns: Some(params.duration_ns),
            score: Score::None,
        }]
    }

    fn check(&self, _params: &Params) -> Vec<Phase> {
        vec![Phase::until_done(&format!("{}-check", self.layout.name), PhaseRole::Check)]
    }

    /// Process `i` is process `i % procs_per_unit` of unit `i / procs_per_unit`. Process 0 also makes
    /// `{name}/` and every unit's directory in the [`DIRS`] phase.
    fn processes(&self, params: &Params) -> Vec<Box<dyn Process>> {
        let PacedLayout { name, seed_tag, unit_dir, procs_per_unit, .. } = self.layout;
        let per_unit = usize::try_from(procs_per_unit).unwrap_or(usize::MAX).max(1);
        let count = self.process_count(params);
        let units =
            unit_dir.into_iter().flat_map(|dir| (0..count.div_ceil(per_unit)).map(move |u| format!("{name}/{dir}{u}")));
        // Process 0 makes every shared directory (parents first); the others make none.
        let mut shared: Vec<String> = std::iter::once(name.to_string()).chain(units).collect();
        (0..count)
            .map(|i| {
                let model = self.models.model(i, i / per_unit, i % per_unit, process_rng(params.seed, seed_tag, i));
                Box::new(Scripted::new(model, std::mem::take(&mut shared))) as Box<dyn Process>
            })
            .collect()
    }

    fn metrics(&self, params: &Params, phases: &[PhaseReport]) -> Vec<Metric> {
        rate_metrics(self.layout.name, params, phases)
    }
}

// ---------------------------------------------------------------------------------------------------
// The tree process: a directory tree of files under a metadata-heavy mix (SWBUILD, EDA front end).
// ---------------------------------------------------------------------------------------------------

/// The shape and mix of a tree process's work.
#[derive(Clone, Debug)]
pub(crate) struct TreeSpec {
    /// Directories made in setup, the root included.
    pub dirs: u64,
    /// Subdirectories per directory in setup's tree.
    pub fanout: u64,
    pub files_per_dir: u64,
    /// Sizes of setup's files (0: an empty file, made with `create`).
    pub sizes: SizeTable,
    /// Sizes `write_file` draws from (the non-empty rows of `sizes`).
    pub write_sizes: SizeTable,
    pub mix: Mix,
}

impl TreeSpec {
    /// A tree spec from validated parts; `workload` and `prefix` (`""`, `"frontend."`) name the errors.
    pub(crate) fn new(
        workload: &str,
        prefix: &str,
        (dirs, fanout, files_per_dir): (u64, u64, u64),
        sizes: &[SizeWeight],
        allow_empty: bool,
        ops: &BTreeMap<String, u64>,
    ) -> Result<TreeSpec, SuiteError> {
        let dirs = positive(workload, &format!("{prefix}dirs"), dirs)?;
        let fanout = positive(workload, &format!("{prefix}fanout"), fanout)?;
        let files_per_dir = positive(workload, &format!("{prefix}files_per_dir"), files_per_dir)?;
        if dirs.saturating_mul(files_per_dir) > TREE_FILES_MAX {
            return Err(config_error(
                workload,
                format!(
                    "{prefix}dirs x {prefix}files_per_dir is above the limit of {TREE_FILES_MAX} files per process"
                ),
            ));
        }
        let sizes =
            SizeTable::from_rows(workload, &format!("{prefix}file_sizes"), sizes, allow_empty, TREE_FILE_MAX_BYTES)?;
        let mix = Mix::from_table(workload, &format!("[{prefix}ops]"), ops, &TREE_OPS)?;
        Ok(TreeSpec { dirs, fanout, files_per_dir, write_sizes: sizes.non_empty(), sizes, mix })
    }

    /// Files setup makes.
    fn initial_files(&self) -> usize {
        usize::try_from(self.dirs * self.files_per_dir).unwrap_or(usize::MAX)
    }
}

/// What a tree process knows of one of its files.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileEntry {
    /// Its size, content and (once chmod'ed) mode; `slot` is its index in `TreeProc::live_files`.
    Known { size_bytes: u64, content: u64, mode: Option<u32>, slot: usize },
    /// An operation that changes it failed: it may hold anything, or not exist.
    Unsure,
}

/// One process on its own directory tree: setup makes the tree and writes every file, the run phase
/// issues the spec's mix (one operation per call, on a random file or directory of its own), the check
/// phase lists every directory and stats and reads every file, each against the process's model.
#[derive(Debug)]
pub(crate) struct TreeProc {
    spec: Arc<TreeSpec>,
    root: String,
    rng: WorkRng,
    /// Its directories: path -> made for sure (false: a `mkdir` failed).
    dirs: BTreeMap<String, bool>,
    /// The directories made for sure, to draw from.
    live_dirs: Vec<String>,
    files: BTreeMap<String, FileEntry>,
    /// The paths of the files known for sure, to draw from.
    live_files: Vec<String>,
    /// Numbers the names of files and directories made in the run.
    next_name: u64,
}

impl TreeProc {
    pub(crate) fn new(spec: Arc<TreeSpec>, root: String, rng: WorkRng) -> TreeProc {
        TreeProc {
            spec,
            root,
            rng,
            dirs: BTreeMap::new(),
            live_dirs: Vec::new(),
            files: BTreeMap::new(),
            live_files: Vec::new(),
            next_name: 0,
        }
    }

    /// What a listing of `dir` must hold.
    fn names_in(&self, dir: &str) -> Expect {
        let prefix = format!("{dir}/");
        let (mut sure, mut maybe) = (Vec::new(), Vec::new());
        let dirs = self.dirs.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix));
        for (path, made) in dirs {
            let name = &path[prefix.len()..];
            if !name.contains('/') {
                (if *made { &mut sure } else { &mut maybe }).push(name.to_string());
            }
        }
        let files = self.files.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix));
        for (path, entry) in files {
            let name = &path[prefix.len()..];
            if !name.contains('/') {
                let list = match entry {
                    FileEntry::Known { .. } => &mut sure,
                    FileEntry::Unsure => &mut maybe,
                };
                list.push(name.to_string());
            }
        }
        sure.sort();
        maybe.sort();
        Expect::Names { sure, maybe }
    }

    fn pick_dir(&mut self) -> String {
        if self.live_dirs.is_empty() {
            return self.root.clone(); // setup failed to make it; the operation will say so
        }
        let i = self.rng.below(self.live_dirs.len() as u64) as usize;
        self.live_dirs[i].clone()
    }

    /// A random known file: its path, size, content and mode (`live_files` is not empty).
    fn pick_file(&mut self) -> (String, u64, u64, Option<u32>) {
        let i = self.rng.below(self.live_files.len() as u64) as usize;
        let path = self.live_files[i].clone();
        match self.files.get(&path) {
            Some(FileEntry::Known { size_bytes, content, mode, .. }) => (path, *size_bytes, *content, *mode),
            _ => (path, 0, 0, None), // not reached: live_files holds known files only
        }
    }

    /// A new name in a random directory.
    fn new_path(&mut self, letter: char) -> String {
        let dir = self.pick_dir();
        self.next_name += 1;
        format!("{dir}/{letter}{}", self.next_name)
    }

    fn drop_live(&mut self, slot: usize) {
        self.live_files.swap_remove(slot);
        if let Some(moved) = self.live_files.get(slot)
            && let Some(FileEntry::Known { slot: moved_slot, .. }) = self.files.get_mut(moved)
        {
            *moved_slot = slot;
        }
    }

    /// `path` now holds `size_bytes` of `content` (a new file: mode unknown; a rewrite keeps the mode).
    fn wrote(&mut self, path: &str, size_bytes: u64, content: u64) {
        match self.files.get_mut(path) {
            Some(FileEntry::Known { size_bytes: size, content: old, .. }) => {
                *size = size_bytes;
                *old = content;
            }
            _ => {
                self.live_files.push(path.to_string());
                let slot = self.live_files.len() - 1;
                self.files.insert(path.to_string(), FileEntry::Known { size_bytes, content, mode: None, slot });
            }
        }
    }

    /// `path` is gone (`unsure`: or may be, or may hold anything).
    fn forget(&mut self, path: &str, unsure: bool) {
        if let Some(FileEntry::Known { slot, .. }) = self.files.get(path) {
            let slot = *slot;
            self.drop_live(slot);
        }
        if unsure {
            self.files.insert(path.to_string(), FileEntry::Unsure);
        } else {
            self.files.remove(path);
        }
    }
}

impl ScriptModel for TreeProc {
    /// Setup: the tree (parents first), then every file.
    fn setup_script(&mut self) -> VecDeque<(Op, Expect)> {
        let mut script = VecDeque::new();
        let mut dir_paths = vec![self.root.clone()];
        for k in 1..self.spec.dirs {
            let parent = &dir_paths[((k - 1) / self.spec.fanout) as usize];
            dir_paths.push(format!("{parent}/d{k}"));
        }
        for path in &dir_paths {
            script.push_back((Op::Mkdir { path: path.clone() }, Expect::Done));
        }
        for dir in &dir_paths {
            for j in 0..self.spec.files_per_dir {
                let path = format!("{dir}/f{j}");
                let size_bytes = self.spec.sizes.pick(&mut self.rng);
                let op = if size_bytes == 0 {
                    Op::Create { path }
                } else {
                    Op::WriteFile { path, size_bytes, content: self.rng.next_u64() }
                };
                script.push_back((op, Expect::Done));
            }
        }
        script
    }

    /// Check: list every directory, stat and read every file known for sure.
    fn check_script(&self) -> VecDeque<(Op, Expect)> {
        let mut script = VecDeque::new();
        for (dir, _) in self.dirs.iter().filter(|(_, sure)| **sure) {
            script.push_back((Op::Readdir { path: dir.clone() }, self.names_in(dir)));
        }
        for (path, entry) in &self.files {
            if let FileEntry::Known { size_bytes, content, mode, .. } = entry {
                let attr = Expect::Attr { size_bytes: Some(*size_bytes), mode: *mode, is_dir: false };
                script.push_back((Op::Stat { path: path.clone() }, attr));
                let bytes = Expect::Bytes { content: *content, offset: 0, len_bytes: *size_bytes };
                script.push_back((Op::ReadFile { path: path.clone() }, bytes));
            }
        }
        script
    }

    /// The next operation of the run phase and what it must return.
    fn run_op(&mut self) -> (Op, Expect) {
        let kind = match self.spec.mix.pick(&mut self.rng) {
            // Nothing to act on: make a file instead.
            OpKind::Stat | OpKind::Access | OpKind::ReadFile | OpKind::Chmod if self.live_files.is_empty() => {
                OpKind::Create
            }
            // Keep a file for the other operations.
            OpKind::Unlink if self.live_files.len() <= 1 => OpKind::Create,
            kind => kind,
        };
        match kind {
            OpKind::Stat => {
                let (path, size_bytes, _, mode) = self.pick_file();
                (Op::Stat { path }, Expect::Attr { size_bytes: Some(size_bytes), mode, is_dir: false })
            }
            OpKind::Access => (Op::Access { path: self.pick_file().0 }, Expect::Done),
            OpKind::ReadFile => {
                let (path, size_bytes, content, _) = self.pick_file();
                (Op::ReadFile { path }, Expect::Bytes { content, offset: 0, len_bytes: size_bytes })
            }
            OpKind::WriteFile => {
                // A new file while the tree is below its initial size (unlink and create keep it there).
                let path = if self.live_files.len() < self.spec.initial_files() {
                    self.new_path('n')
                } else {
                    self.pick_file().0
                };
                let size_bytes = self.spec.write_sizes.pick(&mut self.rng);
                (Op::WriteFile { path, size_bytes, content: self.rng.next_u64() }, Expect::Done)
            }
            OpKind::Chmod => {
                let mode = MODES[self.rng.below(MODES.len() as u64) as usize];
                (Op::Chmod { path: self.pick_file().0, mode }, Expect::Done)
            }
            OpKind::Readdir => {
                let path = self.pick_dir();
                let expect = self.names_in(&path);
                (Op::Readdir { path }, expect)
            }
            OpKind::Unlink => (Op::Unlink { path: self.pick_file().0 }, Expect::Done),
            OpKind::Create => (Op::Create { path: self.new_path('n') }, Expect::Done),
            OpKind::Mkdir => (Op::Mkdir { path: self.new_path('m') }, Expect::Done),
            // Not in TREE_OPS, so not in a validated mix.
            _ => (Op::Stat { path: self.pick_dir() }, Expect::Attr { size_bytes: None, mode: None, is_dir: true }),
        }
    }

    /// Update the model after `op` succeeded (`ok`) or failed.
    fn apply(&mut self, op: &Op, ok: bool) {
        match op {
            Op::Mkdir { path } => {
                self.dirs.insert(path.clone(), ok);
                if ok {
                    self.live_dirs.push(path.clone());
                }
            }
            Op::Create { path } if ok => self.wrote(path, 0, 0),
            Op::WriteFile { path, size_bytes, content } if ok => self.wrote(path, *size_bytes, *content),
            Op::Unlink { path } if ok => self.forget(path, false),
            Op::Create { path } | Op::WriteFile { path, .. } | Op::Unlink { path } => self.forget(path, true),
            Op::Chmod { path, mode } => {
                if let Some(FileEntry::Known { mode: known, .. }) = self.files.get_mut(path) {
                    *known = if ok { Some(*mode) } else { None };
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The SWBUILD-like workload.
// ---------------------------------------------------------------------------------------------------

/// `swbuild.toml`'s shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwbuildConfig {
    procs_per_build: u64,
    rate_per_proc: f64,
    dirs: u64,
    fanout: u64,
    files_per_dir: u64,
    ops: BTreeMap<String, u64>,
    file_sizes: Vec<SizeWeight>,
}

/// The SWBUILD-like workload: load in builds, `procs_per_build` processes per build, each on its own
/// source tree under `swbuild/`.
#[derive(Debug)]
pub struct Swbuild {
    spec: Arc<TreeSpec>,
}

impl Swbuild {
    /// The workload from the TOML text `config` merged over the built-in defaults (`None`: the defaults).
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Swbuild::parse(config)?))
    }

    fn parse(config: Option<&str>) -> Result<Paced<Swbuild>, SuiteError> {
        let c: SwbuildConfig = load_config(NAME, DEFAULTS, config)?;
        let layout = PacedLayout {
            name: NAME,
            seed_tag: SEED_TAG,
            // A build's processes share no directory but `swbuild/`.
            unit_dir: None,
            procs_per_unit: positive(NAME, "procs_per_build", c.procs_per_build)?,
            rate_per_proc: positive_rate(NAME, "rate_per_proc", c.rate_per_proc)?,
        };
        let spec = TreeSpec::new(NAME, "", (c.dirs, c.fanout, c.files_per_dir), &c.file_sizes, false, &c.ops)?;
        Ok(Paced { layout, models: Swbuild { spec: Arc::new(spec) } })
    }
}

impl PacedModels for Swbuild {
    /// Process `i` works on its own tree `swbuild/p{i}`.
    fn model(&self, index: usize, _build: usize, _rank: usize, rng: WorkRng) -> Box<dyn ScriptModel> {
        Box::new(TreeProc::new(self.spec.clone(), format!("{NAME}/p{index}"), rng))
    }
}

// ---------------------------------------------------------------------------------------------------
// Test helpers shared by the three workloads' tests.
// ---------------------------------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::AtomicU64;

    pub(crate) use crate::suite::io500::testing::params;

    use crate::memfs::MemFs;
    use crate::metrics::{PhaseReport, RunReport};
    use crate::op::{Op, OpKind, Outcome};
    use crate::run::{RunOptions, Target};
    use crate::suite::SuiteError;
    use crate::suite::io500::testing::run_on;
    use crate::workload::{Params, PhaseRole, Workload};

    /// A whole run on a fresh MemFs, verifying.
    pub(crate) fn run_on_memfs(workload: &dyn Workload, params: &Params) -> (MemFs, RunReport) {
        let mut fs = MemFs::new();
        let report = run_on(&mut fs, workload, params);
        (fs, report)
    }

    /// A whole run on a fresh MemFs, verifying, that must be [clean](assert_clean).
    pub(crate) fn run_clean(workload: &dyn Workload, params: &Params) -> (MemFs, RunReport) {
        let (fs, report) = run_on_memfs(workload, params);
        assert_clean(&report);
        (fs, report)
    }

    /// One second, in nanoseconds.
    pub(crate) const SECOND_NS: u64 = 1_000_000_000;

    /// [Clean](run_clean) runs at loads 1 and 2 for `duration_ns` that keep up: `procs_per_load` processes
    /// and `ops_per_sec_per_load` requested per unit of load, and the whole requested rate achieved (MemFs
    /// keeps up). Each run is returned with its load and file system, for checks of the workload's own.
    pub(crate) fn runs_keeping_up(
        workload: &dyn Workload,
        duration_ns: u64,
        procs_per_load: usize,
        ops_per_sec_per_load: f64,
    ) -> impl Iterator<Item = (u64, MemFs, RunReport)> {
        [1, 2].into_iter().map(move |load| {
            let (fs, report) = run_clean(workload, &params(load, duration_ns));
            assert_eq!(report.procs, procs_per_load * load as usize);
            let run = report.measured().next().expect("run phase");
            assert_eq!(run.name, workload.name());
            assert_eq!(run.requested_ops_per_sec, Some(ops_per_sec_per_load * load as f64));
            let fraction = metric(&report, "achieved_fraction");
            assert!((0.99..=1.01).contains(&fraction), "achieved fraction {fraction}");
            (load, fs, report)
        })
    }

    /// A run where `corrupt` may change the file system just before the check phase; the check's report.
    pub(crate) fn check_after(
        workload: &dyn Workload,
        params: &Params,
        corrupt: impl FnOnce(&mut MemFs),
    ) -> PhaseReport {
        let mut fs = MemFs::new();
        let options = RunOptions::default();
        let progress = AtomicU64::new(0);
        let mut procs = workload.processes(params);
        let mut corrupt = Some(corrupt);
        let mut check = None;
        for (index, phase) in workload.phases(params).iter().enumerate() {
            if phase.role == PhaseRole::Check
                && let Some(corrupt) = corrupt.take()
            {
                corrupt(&mut fs);
            }
            let (back, report) =
                futures::executor::block_on(fs.run_phase(index, phase, procs, &options, &progress)).expect("memfs");
            procs = back;
            if phase.role == PhaseRole::Check {
                check = Some(report);
            }
        }
        check.expect("a check phase")
    }

    /// The first non-empty file under `dir` (depth first, names in order) and its size.
    pub(crate) fn first_file(fs: &mut MemFs, dir: &str) -> Option<(String, u64)> {
        let Ok(Outcome::Names(names)) = fs.apply(&Op::Readdir { path: dir.to_string() }) else { return None };
        for name in names {
            let path = format!("{dir}/{name}");
            match fs.apply(&Op::Stat { path: path.clone() }) {
                Ok(Outcome::Attr { is_dir: true, .. }) => {
                    if let Some(found) = first_file(fs, &path) {
                        return Some(found);
                    }
                }
                Ok(Outcome::Attr { size_bytes, .. }) if size_bytes > 0 => return Some((path, size_bytes)),
                _ => {}
            }
        }
        None
    }

    /// Overwrite a few bytes in the middle of the first non-empty file under `dir` (same size).
    pub(crate) fn flip_bytes_under(fs: &mut MemFs, dir: &str) -> String {
        let (path, size_bytes) = first_file(fs, dir).expect("a file to corrupt");
        let len_bytes = size_bytes.min(8);
        let offset = (size_bytes / 3).min(size_bytes - len_bytes);
        let op = Op::Write { path: path.clone(), offset, len_bytes, content: 0xBAD };
        fs.apply(&op).expect("overwrite");
        path
    }

    /// With nothing changed the check finds nothing wrong; with a few bytes of the first file under any
    /// of `dirs` overwritten, it finds that file's bytes wrong, and nothing else.
    pub(crate) fn assert_corruption_caught(workload: &dyn Workload, params: &Params, dirs: &[&str]) {
        let clean = check_after(workload, params, |_| {});
        assert_eq!(clean.failures, 0, "{:?}", clean.first_failures);
        for dir in dirs {
            let mut corrupted = String::new();
            let check = check_after(workload, params, |fs| corrupted = flip_bytes_under(fs, dir));
            let failures = &check.first_failures;
            assert_eq!(check.failures, 1, "{dir}: {failures:?}");
            assert!(corrupted.starts_with(&format!("{dir}/")), "{corrupted} is under {dir}");
            assert!(failures[0].contains(&corrupted), "{failures:?}");
            assert!(failures[0].contains("differs from what was written"), "{failures:?}");
        }
    }

    /// `from_config` rejects each text of `cases` with a message that names workload `name` and holds
    /// the case's words.
    pub(crate) fn assert_rejected<W>(
        from_config: impl Fn(Option<&str>) -> Result<W, SuiteError>,
        name: &str,
        cases: &[(&str, &str)],
    ) {
        for (text, want) in cases {
            let message = match from_config(Some(text)) {
                Ok(_) => panic!("{text:?} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(message.starts_with(&format!("{name} configuration: ")), "{message}");
            assert!(message.contains(want), "{text:?}: {message:?} lacks {want:?}");
        }
    }

    /// The measured phase's share of operations of `kinds`.
    pub(crate) fn share(report: &RunReport, kinds: &[OpKind]) -> f64 {
        let run = report.measured().next().expect("a measured phase");
        let mine: u64 = run.kinds.iter().filter(|k| kinds.contains(&k.op)).map(|k| k.ops).sum();
        mine as f64 / run.ops.max(1) as f64
    }

    /// Nothing went wrong in any phase, and every phase did something.
    pub(crate) fn assert_clean(report: &RunReport) {
        for phase in &report.phases {
            assert_eq!(phase.errors, 0, "{}: errors; first failures {:?}", phase.name, phase.first_failures);
            assert_eq!(phase.failures, 0, "{}: failures {:?}", phase.name, phase.first_failures);
            assert!(phase.ops > 0, "{}: no operations", phase.name);
        }
        assert_eq!(report.phases.len(), 4, "dirs, setup, run and check");
    }

    /// The metric called `name`.
    pub(crate) fn metric(report: &RunReport, name: &str) -> f64 {
        report.metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("metric {name}")).value
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn runs_clean_on_memfs_at_load_1_and_2() {
        let workload = Swbuild::from_config(None).expect("defaults");
        // 5 processes per build at 100 op/s each.
        for (_, _, report) in runs_keeping_up(&*workload, 2 * SECOND_NS, 5, 500.0) {
            // The check phase read back every file: 10 dirs x 20 files per process, give or take the run's.
            let check = report.phases.last().expect("check");
            let reads = check.kinds.iter().find(|k| k.op == OpKind::ReadFile).map_or(0, |k| k.ops);
            assert!(reads >= 150 * report.procs as u64, "check read {reads} files");
        }
    }

    #[test]
    fn run_phase_follows_the_op_mix_table() {
        let workload = Swbuild::parse(None).expect("defaults");
        let (_, report) = run_clean(&workload, &params(1, 20 * SECOND_NS));
        let stat = share(&report, &[OpKind::Stat]);
        assert!((0.67..=0.73).contains(&stat), "stat share {stat}");
        for kind in TREE_OPS {
            let want = workload.models.spec.mix.share(kind);
            let got = share(&report, &[kind]);
            // Unlink below one file and the like turn into create, rarely; allow a point and a half.
            assert!((got - want).abs() < 0.015, "{kind}: {got} vs {want}");
        }
    }

    #[test]
    fn same_seed_same_run() {
        let workload = Swbuild::parse(None).expect("defaults");
        let a = run_on_memfs(&workload, &params(1, SECOND_NS)).1;
        let b = run_on_memfs(&workload, &params(1, SECOND_NS)).1;
        assert_eq!(a, b);
    }

    #[test]
    fn a_corrupted_file_is_caught_by_the_check() {
        let workload = Swbuild::parse(None).expect("defaults");
        assert_corruption_caught(&workload, &params(1, SECOND_NS), &["swbuild/p2"]);
    }

    #[test]
    fn a_removed_file_is_caught_by_the_check() {
        let workload = Swbuild::parse(None).expect("defaults");
        let check = check_after(&workload, &params(1, SECOND_NS), |fs| {
            let (path, _) = first_file(fs, "swbuild/p0").expect("a file");
            fs.apply(&Op::Unlink { path }).expect("unlink");
        });
        // Its directory's listing lacks it, its stat and its read fail.
        assert_eq!(check.failures, 3, "{:?}", check.first_failures);
        assert!(check.first_failures.iter().any(|f| f.contains("listing lacks")), "{:?}", check.first_failures);
    }

    #[test]
    fn defaults_parse_and_match_the_table() {
        let workload = Swbuild::parse(None).expect("embedded defaults parse");
        assert_eq!(workload.layout.procs_per_unit, 5);
        assert_eq!(workload.layout.rate_per_proc, 100.0);
        assert!((workload.models.spec.mix.share(OpKind::Stat) - 0.70).abs() < 1e-9);
        assert_eq!(workload.models.spec.initial_files(), 200);
    }

    #[test]
    fn a_users_file_overrides_only_what_it_names() {
        let workload = Swbuild::parse(Some("rate_per_proc = 50.0\n[ops]\nstat = 1\nmkdir = 1\n")).expect("valid");
        assert_eq!(workload.layout.rate_per_proc, 50.0);
        assert_eq!(workload.layout.procs_per_unit, 5, "kept from the defaults");
        assert_eq!(workload.models.spec.mix.share(OpKind::Stat), 0.5, "an [ops] table replaces the whole mix");
        assert_eq!(workload.models.spec.mix.share(OpKind::ReadFile), 0.0);
    }

    #[test]
    fn bad_configurations_are_rejected_with_the_reason() {
        let cases = [
            ("[ops]\nstat = 0\n", "every weight is zero"),
            ("[ops]\nstat = 5\nrename = 3\n", "unknown operation \"rename\""),
            ("[ops]\nwrite = 3\n", "unknown operation \"write\""),
            ("rate_per_proc = 0.0\n", "rate_per_proc must be"),
            ("rate_per_proc = -3.0\n", "rate_per_proc must be"),
            ("rate_per_proc = nan\n", "rate_per_proc must be"),
            ("dirs = 0\n", "dirs must be > 0"),
            ("files_per_dir = 0\n", "files_per_dir must be > 0"),
            ("procs_per_build = 0\n", "procs_per_build must be > 0"),
            ("file_sizes = [{ size_bytes = 0, weight = 1 }]\n", "file_sizes[0]: size_bytes must be > 0"),
            ("file_sizes = [{ size_bytes = 10, weight = 0 }]\n", "every weight is zero"),
            ("file_sizes = []\n", "every weight is zero"),
            ("file_sizes = [{ size_bytes = 10, weigth = 1 }]\n", "weigth"),
            ("procs_per_bild = 3\n", "procs_per_bild"),
            ("dirs = \"ten\"\n", "dirs"),
            ("dirs = [\n", "TOML parse error"),
        ];
        assert_rejected(Swbuild::from_config, "swbuild", &cases);
    }
}
