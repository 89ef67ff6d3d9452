//! IO500-like workloads (<https://io500.org>): the machinery ior and mdtest share, and `io500`, the whole
//! IO500 sequence run by one set of processes.
//!
//! Each of ior-easy, ior-hard, mdtest-easy and mdtest-hard is a *component*: one [`Part`] per process that
//! knows how to do each of the component's [`Step`]s (setup, write, read, stat, delete, find, check), over
//! the state every part keeps ([`Rank`]). A workload is a [`Plan`]: phases, each running some components'
//! steps one after the other. The single workloads plan one component; `io500` plans all four in IO500's
//! order, so the logic is written once; each says its plan and parts ([`PlannedWorkload`]) and the
//! [`Workload`] follows.
//!
//! The processes of a component share a [`Ledger`]: which of its items (transfers, files) each process has
//! written and not yet deleted. A write phase fills it (the stonewall stops it anywhere) and later phases
//! read it: as IO500 shifts ranks so that no client reads back from its own cache, process `i` reads what
//! process `i + 1` wrote, and must know how much that was. A ledger entry is only read in phases after the
//! one that wrote it, so the result does not depend on how a phase's processes interleave: runs replay.
//!
//! Scores follow IO500: each ior phase is a bandwidth (GiB/s), each mdtest phase and find a rate (kIOPS);
//! the bandwidth score is the geometric mean of the ior phases, the metadata score that of the others, and
//! the total the geometric mean of the two.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::metrics::{Metric, PhaseReport};
use crate::op::{Op, OpError, OpKind, Outcome, first_mismatch, mix};
use crate::suite::SuiteError;
use crate::suite::ior::{Ior, IorConfig, IorFlavour, IorToml};
use crate::suite::mdtest::{Mdtest, MdtestConfig, MdtestFlavour, MdtestToml};
use crate::workload::{Params, Phase, PhaseRole, Process, Score, Workload};

/// Bytes in a GiB (IO500 reports bandwidth in GiB/s).
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What a component does in one phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Make the directories (and ior's files): process 0 only, so no process races another's mkdir.
    Setup,
    /// Write (ior transfers, mdtest files) until the bound or the stonewall.
    Write,
    /// Read back what the neighbour process wrote and check it.
    Read,
    /// Stat every file the neighbour process wrote and check its size.
    Stat,
    /// Remove every file this process wrote.
    Delete,
    /// Count the entries of the component's tree and compare with what should be there.
    Find,
    /// Check what the run left (verify mode): ior reads everything again, mdtest lists its directories.
    Check,
}

impl Step {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Setup => "setup",
            Step::Write => "write",
            Step::Read => "read",
            Step::Stat => "stat",
            Step::Delete => "delete",
            Step::Find => "find",
            Step::Check => "check",
        }
    }
}

/// One process's share of one component: it issues the operations of a step and checks their results.
/// [`Part::begin`] is called once before a step's first operation in each phase.
pub(crate) trait Part: Send + fmt::Debug {
    fn begin(&mut self, step: Step);
    fn next_op(&mut self, step: Step) -> Option<Op>;
    fn observe(&mut self, step: Step, op: &Op, result: &Result<Outcome, OpError>, verify: bool) -> Result<(), String>;
}

/// Which items (ior transfers, mdtest files) each process of a component has: process `p` has items
/// `first..end`, written in order from 0 and deleted in order from `first`. Items are numbered per process.
#[derive(Debug)]
pub(crate) struct Ledger {
    slots: Vec<(AtomicU64, AtomicU64)>,
}

impl Ledger {
    pub(crate) fn new(procs: u64) -> Arc<Ledger> {
        Arc::new(Ledger { slots: (0..procs).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect() })
    }

    fn slot(&self, proc: u64) -> &(AtomicU64, AtomicU64) {
        &self.slots[proc as usize]
    }

    /// Process `proc` has no items (its write step starts over).
    pub(crate) fn reset(&self, proc: u64) {
        let (first, end) = self.slot(proc);
        first.store(0, Ordering::Release);
        end.store(0, Ordering::Release);
    }

    /// Process `proc` has written items `0..end`.
    pub(crate) fn set_end(&self, proc: u64, end: u64) {
        self.slot(proc).1.store(end, Ordering::Release);
    }

    /// Process `proc` has deleted its items up to and including `item`.
    pub(crate) fn deleted_through(&self, proc: u64, item: u64) {
        self.slot(proc).0.store(item + 1, Ordering::Release);
    }

    /// The items process `proc` has.
    pub(crate) fn live(&self, proc: u64) -> Range<u64> {
        let (first, end) = self.slot(proc);
        let end = end.load(Ordering::Acquire);
        first.load(Ordering::Acquire).min(end)..end
    }
}

/// The content id of item `index` of the component `tag` in a run seeded `seed`: distinct per component
/// and index, so bytes read from the wrong file or place are caught.
pub(crate) fn content_id(seed: u64, tag: u64, index: u64) -> u64 {
    mix(seed ^ mix(tag.wrapping_add(index)))
}

/// The process whose data process `index` reads back: the next one, as IO500 shifts ranks.
pub(crate) fn neighbour(index: u64, procs: u64) -> u64 {
    (index + 1) % procs
}

/// Processes a load means for every IO500-like workload: the load itself (at least one).
pub(crate) fn procs_of(params: &Params) -> u64 {
    params.load.max(1)
}

/// What each process's part of a component keeps, whatever the component: its rank among the component's
/// processes, the component's [`Ledger`], how far it is in the current step and whether its writes stopped.
#[derive(Debug)]
pub(crate) struct Rank {
    pub(crate) index: u64,
    pub(crate) procs: u64,
    pub(crate) seed: u64,
    /// The items each process of the component has.
    pub(crate) ledger: Arc<Ledger>,
    /// Operations issued in the current step.
    pub(crate) cursor: u64,
    /// A write failed: this process writes no more (what it wrote stays a prefix).
    pub(crate) stopped: bool,
}

impl Rank {
    /// One per process of a component at `params`, sharing a new ledger.
    pub(crate) fn all(params: &Params) -> Vec<Rank> {
        let procs = procs_of(params);
        let ledger = Ledger::new(procs);
        (0..procs)
            .map(|index| Rank {
                index,
                procs,
                seed: params.seed,
                ledger: Arc::clone(&ledger),
                cursor: 0,
                stopped: false,
            })
            .collect()
    }

    /// The process whose items this one reads back ([`neighbour`]).
    pub(crate) fn source(&self) -> u64 {
        neighbour(self.index, self.procs)
    }

    /// A step begins: nothing issued yet; a write step starts this process's items over.
    pub(crate) fn begin(&mut self, step: Step) {
        self.cursor = 0;
        if step == Step::Write {
            self.stopped = false;
            self.ledger.reset(self.index);
        }
    }

    /// `op`, counted as issued in the current step.
    pub(crate) fn issue(&mut self, op: Op) -> Option<Op> {
        self.cursor += 1;
        Some(op)
    }

    /// What an operation returned, or its error as a failure (no IO500-like operation is expected to
    /// fail); a failed write stops this process's writes.
    pub(crate) fn outcome<'r>(
        &mut self,
        step: Step,
        result: &'r Result<Outcome, OpError>,
    ) -> Result<&'r Outcome, String> {
        result.as_ref().map_err(|error| {
            if step == Step::Write {
                self.stopped = true;
            }
            unexpected_error(error)
        })
    }

    /// The write just issued succeeded: this process has its items up to it.
    pub(crate) fn wrote(&self) -> Result<(), String> {
        self.ledger.set_end(self.index, self.cursor);
        Ok(())
    }
}

/// A short description of an outcome for a message (never the bytes themselves).
pub(crate) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".to_string(),
        Outcome::Bytes(bytes) => format!("{} bytes", bytes.len()),
        Outcome::Attr { size_bytes, is_dir, .. } => {
            format!("attributes of a {} of {size_bytes} bytes", if *is_dir { "directory" } else { "file" })
        }
        Outcome::Names(names) => format!("{} names", names.len()),
        Outcome::Count(n) => format!("a count of {n}"),
    }
}

/// The error of an operation no IO500-like workload expects to fail.
pub(crate) fn unexpected_error(error: &OpError) -> String {
    format!("unexpected error: {error}")
}

/// `got`, read at `offset` where `want_len` bytes of content `content` were written, is exactly those.
pub(crate) fn check_bytes(content: u64, offset: u64, want_len: u64, got: &[u8]) -> Result<(), String> {
    if got.len() as u64 != want_len {
        return Err(format!("read {} bytes at offset {offset}, {want_len} were written", got.len()));
    }
    match first_mismatch(content, offset, got) {
        Some(at) => Err(format!("byte at offset {at} differs from what was written")),
        None => Ok(()),
    }
}

/// `got` (a directory listing) holds exactly the names `want` (both in any order).
pub(crate) fn check_names(mut want: Vec<String>, got: &[String]) -> Result<(), String> {
    let mut got = got.to_vec();
    want.sort_unstable();
    got.sort_unstable();
    if want == got {
        return Ok(());
    }
    let missing: Vec<&String> = want.iter().filter(|n| got.binary_search(n).is_err()).collect();
    let extra: Vec<&String> = got.iter().filter(|n| want.binary_search(n).is_err()).collect();
    Err(format!(
        "listed {} names, expected {}: {} missing (first {:?}), {} unexpected (first {:?})",
        got.len(),
        want.len(),
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    ))
}

/// The phase in which a component does `step`, named `{component}-{step}` as IO500 names its phases. Write
/// phases stop at the stonewall (`params.duration_ns`); the others run until every process is done.
pub(crate) fn step_phase(component: &str, step: Step, score: Score, params: &Params) -> Phase {
    let name = format!("{component}-{}", step.name());
    match step {
        Step::Setup => Phase::until_done(&name, PhaseRole::Setup),
        Step::Check => Phase::until_done(&name, PhaseRole::Check),
        Step::Write => {
            Phase { duration_ns: Some(params.duration_ns), score, ..Phase::until_done(&name, PhaseRole::Run) }
        }
        Step::Read | Step::Stat | Step::Delete | Step::Find => {
            Phase { score, ..Phase::until_done(&name, PhaseRole::Run) }
        }
    }
}

/// A phase and what it runs: steps of components (by index into a process's parts), in order.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub(crate) phase: Phase,
    pub(crate) steps: Vec<(usize, Step)>,
}

/// A workload's phases and the steps each runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub(crate) setup: Vec<Planned>,
    pub(crate) run: Vec<Planned>,
    pub(crate) check: Vec<Planned>,
}

impl Plan {
    /// The plan of a single component: set up, the measured `run` steps, check.
    pub(crate) fn single(component: &str, score: Score, run: &[Step], params: &Params) -> Plan {
        let planned =
            |step: Step| Planned { phase: step_phase(component, step, score, params), steps: vec![(0, step)] };
        Plan {
            setup: vec![planned(Step::Setup)],
            run: run.iter().map(|step| planned(*step)).collect(),
            check: vec![planned(Step::Check)],
        }
    }

    pub(crate) fn phases(list: &[Planned]) -> Vec<Phase> {
        list.iter().map(|p| p.phase.clone()).collect()
    }

    /// One process per entry of `parts` (each the process's parts, in component order).
    pub(crate) fn processes(&self, parts: Vec<Vec<Box<dyn Part>>>) -> Vec<Box<dyn Process>> {
        let steps: Arc<Vec<Vec<(usize, Step)>>> =
            Arc::new(self.setup.iter().chain(&self.run).chain(&self.check).map(|p| p.steps.clone()).collect());
        parts
            .into_iter()
            .map(|parts| {
                Box::new(PlanProcess { parts, steps: Arc::clone(&steps), phase: None, pos: 0, begun: false })
                    as Box<dyn Process>
            })
            .collect()
    }
}

/// A process that runs a plan: in each phase, the phase's steps in order, each until its part has no more
/// operations for it.
#[derive(Debug)]
struct PlanProcess {
    parts: Vec<Box<dyn Part>>,
    /// Per phase (setup, run, check in order), the steps it runs.
    steps: Arc<Vec<Vec<(usize, Step)>>>,
    /// The phase being run, the step within it, and whether that step's part has begun it.
    phase: Option<usize>,
    pos: usize,
    begun: bool,
}

impl Process for PlanProcess {
    fn next_op(&mut self, phase: usize) -> Option<Op> {
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.pos = 0;
            self.begun = false;
        }
        let steps = self.steps.get(phase)?;
        while let Some(&(part, step)) = steps.get(self.pos) {
            let part = self.parts.get_mut(part)?;
            if !self.begun {
                part.begin(step);
                self.begun = true;
            }
            if let Some(op) = part.next_op(step) {
                return Some(op);
            }
            self.pos += 1;
            self.begun = false;
        }
        None
    }

    fn observe(
        &mut self,
        phase: usize,
        op: &Op,
        result: &Result<Outcome, OpError>,
        verify: bool,
    ) -> Result<(), String> {
        let Some(&(part, step)) = self.steps.get(phase).and_then(|steps| steps.get(self.pos)) else {
            return Err("the result of an operation this process did not issue".to_string());
        };
        match self.parts.get_mut(part) {
            Some(part) => part.observe(step, op, result, verify),
            None => Err(format!("no part {part} in this process")),
        }
    }
}

/// An IO500-like workload: its [`Plan`] and each process's parts; the [`Workload`] follows from them (as
/// many processes as the load, phases as planned, [`phase_metrics`] unless it has figures of its own).
pub(crate) trait PlannedWorkload: Send + Sync {
    /// The name on the command line.
    fn workload_name(&self) -> &'static str;

    /// The phases and the steps each runs.
    fn plan(&self, params: &Params) -> Plan;

    /// One entry per component, in the plan's component order: its parts, one per process.
    fn components(&self, params: &Params) -> Vec<Vec<Box<dyn Part>>>;

    /// The workload's figures from the phase reports.
    fn figures(&self, phases: &[PhaseReport]) -> Vec<Metric> {
        phase_metrics(phases)
    }
}

impl<W: PlannedWorkload> Workload for W {
    fn name(&self) -> &str {
        self.workload_name()
    }

    fn process_count(&self, params: &Params) -> usize {
        procs_of(params) as usize
    }

    fn setup(&self, params: &Params) -> Vec<Phase> {
        Plan::phases(&self.plan(params).setup)
    }

    fn run(&self, params: &Params) -> Vec<Phase> {
        Plan::phases(&self.plan(params).run)
    }

    fn check(&self, params: &Params) -> Vec<Phase> {
        Plan::phases(&self.plan(params).check)
    }

    /// Process `i` runs part `i` of every component.
    fn processes(&self, params: &Params) -> Vec<Box<dyn Process>> {
        let mut per_proc: Vec<Vec<Box<dyn Part>>> = (0..procs_of(params)).map(|_| Vec::new()).collect();
        for parts in self.components(params) {
            for (mine, part) in per_proc.iter_mut().zip(parts) {
                mine.push(part);
            }
        }
        self.plan(params).processes(per_proc)
    }

    fn metrics(&self, _params: &Params, phases: &[PhaseReport]) -> Vec<Metric> {
        self.figures(phases)
    }
}

/// Parse a workload's TOML configuration (`None`: every default) into `T`.
pub(crate) fn parse_config<T: DeserializeOwned + Default>(
    workload: &str,
    config: Option<&str>,
) -> Result<T, SuiteError> {
    match config {
        None => Ok(T::default()),
        Some(text) => toml::from_str(text)
            .map_err(|e| SuiteError::Config { workload: workload.to_string(), message: e.to_string() }),
    }
}

/// IO500's three scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Io500Score {
    /// Geometric mean of the ior phases' bandwidths, GiB/s.
    pub bandwidth_gib_per_sec: f64,
    /// Geometric mean of the mdtest and find phases' rates, thousands of operations per second.
    pub metadata_kiops: f64,
    /// `sqrt(bandwidth * metadata)`.
    pub total: f64,
}

/// The geometric mean; 0 if there are no values or any is not positive (as IO500 scores a failed phase).
pub fn geometric_mean(values: &[f64]) -> f64 {
    if values.is_empty() || values.iter().any(|v| v.is_nan() || *v <= 0.0) {
        return 0.0;
    }
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// IO500's scores from the bandwidth phases' GiB/s and the metadata phases' kIOPS.
pub fn io500_score(bandwidth_gib_per_sec: &[f64], metadata_kiops: &[f64]) -> Io500Score {
    let bandwidth = geometric_mean(bandwidth_gib_per_sec);
    let metadata = geometric_mean(metadata_kiops);
    Io500Score { bandwidth_gib_per_sec: bandwidth, metadata_kiops: metadata, total: (bandwidth * metadata).sqrt() }
}

/// A scored phase's figure: GiB/s moved for a bandwidth phase, thousands of operations per second for a
/// metadata phase (0 for an unscored phase).
pub fn phase_figure(report: &PhaseReport) -> f64 {
    match report.score {
        Score::Bandwidth => (report.bytes_read + report.bytes_written) as f64 / GIB / report.elapsed_sec,
        Score::Metadata => report.ops as f64 / 1_000.0 / report.elapsed_sec,
        Score::None => 0.0,
    }
}

fn unit_of(score: Score) -> &'static str {
    match score {
        Score::Bandwidth => "GiB/s",
        Score::Metadata => "kIOPS",
        Score::None => "",
    }
}

/// One metric per measured, scored phase: its [`phase_figure`] (the single workloads' figures).
pub(crate) fn phase_metrics(phases: &[PhaseReport]) -> Vec<Metric> {
    phases
        .iter()
        .filter(|p| p.role == PhaseRole::Run && p.score != Score::None)
        .map(|p| Metric::new(&p.name, phase_figure(p), unit_of(p.score)))
        .collect()
}

/// The index of each component among a process's parts in `io500`.
const IOR_EASY: usize = 0;
const IOR_HARD: usize = 1;
const MDTEST_EASY: usize = 2;
const MDTEST_HARD: usize = 3;
const COMPONENTS: usize = 4;

/// The find phase's name (IO500's).
pub const FIND_PHASE: &str = "find";

/// The TOML configuration of `io500`: one optional table per component, each taking that workload's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Io500Toml {
    #[serde(rename = "ior-easy", default)]
    ior_easy: IorToml,
    #[serde(rename = "ior-hard", default)]
    ior_hard: IorToml,
    #[serde(rename = "mdtest-easy", default)]
    mdtest_easy: MdtestToml,
    #[serde(rename = "mdtest-hard", default)]
    mdtest_hard: MdtestToml,
}

/// The IO500 sequence with one set of processes (load = processes): ior-easy write, mdtest-easy write,
/// ior-hard write, mdtest-hard write, find, ior-easy read, mdtest-easy stat, ior-hard read, mdtest-hard
/// stat, mdtest-easy delete, mdtest-hard read, mdtest-hard delete; every write phase stonewalled at
/// `Params::duration_ns`. Metrics: each phase's figure and IO500's three scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Io500 {
    ior_easy: Ior,
    ior_hard: Ior,
    mdtest_easy: Mdtest,
    mdtest_hard: Mdtest,
}

impl Io500 {
    /// `io500` with its components configured by the TOML text `config` (tables `[ior-easy]`, `[ior-hard]`,
    /// `[mdtest-easy]`, `[mdtest-hard]`, each taking that workload's keys; `None`: every default).
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Io500::parse(config)?))
    }

    fn parse(config: Option<&str>) -> Result<Io500, SuiteError> {
        let toml: Io500Toml = parse_config("io500", config)?;
        let invalid = |section: &'static str| {
            move |message: String| SuiteError::Config {
                workload: "io500".to_string(),
                message: format!("[{section}] {message}"),
            }
        };
        let ior_easy = IorConfig::from_toml(IorFlavour::Easy, toml.ior_easy).map_err(invalid("ior-easy"))?;
        let ior_hard = IorConfig::from_toml(IorFlavour::Hard, toml.ior_hard).map_err(invalid("ior-hard"))?;
        let mdtest_easy =
            MdtestConfig::from_toml(MdtestFlavour::Easy, toml.mdtest_easy).map_err(invalid("mdtest-easy"))?;
        let mdtest_hard =
            MdtestConfig::from_toml(MdtestFlavour::Hard, toml.mdtest_hard).map_err(invalid("mdtest-hard"))?;
        Io500::new(ior_easy, ior_hard, mdtest_easy, mdtest_hard)
    }

    /// `io500` with these component configurations (validated).
    pub fn new(
        ior_easy: IorConfig,
        ior_hard: IorConfig,
        mdtest_easy: MdtestConfig,
        mdtest_hard: MdtestConfig,
    ) -> Result<Io500, SuiteError> {
        Ok(Io500 {
            ior_easy: Ior::new(IorFlavour::Easy, ior_easy)?,
            ior_hard: Ior::new(IorFlavour::Hard, ior_hard)?,
            mdtest_easy: Mdtest::new(MdtestFlavour::Easy, mdtest_easy)?,
            mdtest_hard: Mdtest::new(MdtestFlavour::Hard, mdtest_hard)?,
        })
    }

    fn component(index: usize) -> (&'static str, Score) {
        match index {
            IOR_EASY => (IorFlavour::Easy.name(), Score::Bandwidth),
            IOR_HARD => (IorFlavour::Hard.name(), Score::Bandwidth),
            MDTEST_EASY => (MdtestFlavour::Easy.name(), Score::Metadata),
            _ => (MdtestFlavour::Hard.name(), Score::Metadata),
        }
    }
}

/// Entries the find phase counts: what the components' find steps expect (ior-easy's file per process,
/// ior-hard's one file, the files the mdtest write phases created), from the write phases' reports.
fn find_entries(phases: &[PhaseReport]) -> u64 {
    let created = |phase: &str, kind: OpKind| {
        phases
            .iter()
            .find(|p| p.name == phase)
            .and_then(|p| p.kinds.iter().find(|k| k.op == kind))
            .map_or(0, |k| k.ops - k.errors)
    };
    let procs = phases.first().map_or(0, |p| p.procs as u64);
    procs
        + 1
        + created(&format!("{}-write", MdtestFlavour::Easy.name()), OpKind::Create)
        + created(&format!("{}-write", MdtestFlavour::Hard.name()), OpKind::WriteFile)
}

/// IO500's metrics from the measured phases: each phase's figure (find's is entries counted per second),
/// then the bandwidth, metadata and total scores.
pub fn io500_metrics(phases: &[PhaseReport]) -> Vec<Metric> {
    let entries = find_entries(phases);
    let (mut metrics, mut bandwidth, mut metadata) = (Vec::new(), Vec::new(), Vec::new());
    for report in phases.iter().filter(|p| p.role == PhaseRole::Run) {
        let figure = if report.name == FIND_PHASE {
            entries as f64 / 1_000.0 / report.elapsed_sec
        } else {
            phase_figure(report)
        };
        match report.score {
            Score::Bandwidth => bandwidth.push(figure),
            Score::Metadata => metadata.push(figure),
            Score::None => continue,
        }
        metrics.push(Metric::new(&report.name, figure, unit_of(report.score)));
    }
    let score = io500_score(&bandwidth, &metadata);
    metrics.push(Metric::new("bandwidth", score.bandwidth_gib_per_sec, "GiB/s"));
    metrics.push(Metric::new("metadata", score.metadata_kiops, "kIOPS"));
    metrics.push(Metric::new("total", score.total, "score"));
    metrics
}

impl PlannedWorkload for Io500 {
    fn workload_name(&self) -> &'static str {
        "io500"
    }

    fn plan(&self, params: &Params) -> Plan {
        let one = |component: usize, step: Step| {
            let (name, score) = Io500::component(component);
            Planned { phase: step_phase(name, step, score, params), steps: vec![(component, step)] }
        };
        let every = |step: Step| (0..COMPONENTS).map(|c| (c, step)).collect::<Vec<_>>();
        let find = Planned {
            phase: Phase { score: Score::Metadata, ..Phase::until_done(FIND_PHASE, PhaseRole::Run) },
            steps: every(Step::Find),
        };
        Plan {
            setup: vec![Planned { phase: Phase::until_done("setup", PhaseRole::Setup), steps: every(Step::Setup) }],
            run: vec![
                one(IOR_EASY, Step::Write),
                one(MDTEST_EASY, Step::Write),
                one(IOR_HARD, Step::Write),
                one(MDTEST_HARD, Step::Write),
                find,
                one(IOR_EASY, Step::Read),
                one(MDTEST_EASY, Step::Stat),
                one(IOR_HARD, Step::Read),
                one(MDTEST_HARD, Step::Stat),
                one(MDTEST_EASY, Step::Delete),
                one(MDTEST_HARD, Step::Read),
                one(MDTEST_HARD, Step::Delete),
            ],
            check: (0..COMPONENTS).map(|c| one(c, Step::Check)).collect(),
        }
    }

    /// In the order of [`IOR_EASY`], [`IOR_HARD`], [`MDTEST_EASY`], [`MDTEST_HARD`].
    fn components(&self, params: &Params) -> Vec<Vec<Box<dyn Part>>> {
        vec![
            self.ior_easy.parts(params),
            self.ior_hard.parts(params),
            self.mdtest_easy.parts(params),
            self.mdtest_hard.parts(params),
        ]
    }

    /// Each phase's figure and IO500's scores ([`io500_metrics`]).
    fn figures(&self, phases: &[PhaseReport]) -> Vec<Metric> {
        io500_metrics(phases)
    }
}

/// Helpers for the IO500-like workloads' tests: runs on [`crate::memfs::MemFs`] and a target that lies.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::AtomicU64;

    use crate::memfs::MemFs;
    use crate::metrics::{PhaseReport, RunReport};
    use crate::run::{Quiet, RunOptions, Target, run_workload};
    use crate::workload::{Params, Workload};

    pub(crate) fn params(load: u64, duration_ns: u64) -> Params {
        Params { load, seed: 42, duration_ns }
    }

    /// Run `workload` with verify on against `target`.
    pub(crate) fn run_on<T: Target>(target: &mut T, workload: &dyn Workload, params: &Params) -> RunReport {
        futures::executor::block_on(run_workload(
            target,
            workload,
            params,
            &RunOptions::default(),
            &Quiet,
            &AtomicU64::new(0),
        ))
        .expect("the target runs every phase")
    }

    /// Run `workload` with verify on against a fresh [`MemFs`].
    pub(crate) fn run(workload: &dyn Workload, params: &Params) -> RunReport {
        run_on(&mut MemFs::new(), workload, params)
    }

    pub(crate) fn phase<'a>(report: &'a RunReport, name: &str) -> &'a PhaseReport {
        report.phases.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no phase {name}"))
    }

    /// A run with no errors and no failures, or a panic that shows the first ones.
    pub(crate) fn assert_clean(report: &RunReport) {
        for phase in &report.phases {
            assert_eq!(phase.errors, 0, "{}: errors {:?}", phase.name, phase.first_failures);
            assert_eq!(phase.failures, 0, "{}: failures {:?}", phase.name, phase.first_failures);
        }
    }

    /// A target that returns wrong results: [`MemFs::corrupting`].
    pub(crate) fn corrupt() -> MemFs {
        MemFs::corrupting()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{assert_clean, corrupt, params, phase, run, run_on};
    use super::*;

    /// A small io500 for MemFs: 8 MiB of ior-easy, 1 MiB of ior-hard, 50 files of each mdtest per process.
    const SMALL: &str = "
        [ior-easy]
        max_bytes_per_proc = 8388608
        [ior-hard]
        max_bytes_per_proc = 1048576
        [mdtest-easy]
        max_files_per_proc = 50
        [mdtest-hard]
        max_files_per_proc = 50
    ";

    const EXPECTED_PHASES: [&str; 12] = [
        "ior-easy-write",
        "mdtest-easy-write",
        "ior-hard-write",
        "mdtest-hard-write",
        "find",
        "ior-easy-read",
        "mdtest-easy-stat",
        "ior-hard-read",
        "mdtest-hard-stat",
        "mdtest-easy-delete",
        "mdtest-hard-read",
        "mdtest-hard-delete",
    ];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn score_is_the_geometric_mean_of_each_kind() {
        let score = io500_score(&[1.0, 4.0], &[1.0, 9.0]);
        assert!(close(score.bandwidth_gib_per_sec, 2.0), "{score:?}");
        assert!(close(score.metadata_kiops, 3.0), "{score:?}");
        assert!(close(score.total, 6f64.sqrt()), "{score:?}");
        assert_eq!(geometric_mean(&[2.0, 0.0]), 0.0, "a phase that did nothing zeroes the score");
        assert_eq!(geometric_mean(&[]), 0.0);
    }

    #[test]
    fn io500_runs_the_sequence_and_reads_back_what_it_wrote() {
        let workload = Io500::from_config(Some(SMALL)).expect("valid config");
        for load in [1, 3] {
            let report = run(&*workload, &params(load, 60_000_000_000));
            assert_clean(&report);
            let measured: Vec<&str> = report.measured().map(|p| p.name.as_str()).collect();
            assert_eq!(measured, EXPECTED_PHASES, "IO500's order");
            let checks = report.phases.iter().filter(|p| p.role == PhaseRole::Check).count();
            assert_eq!(checks, 4, "each component checks what it left");
            for (write, read) in [("ior-easy-write", "ior-easy-read"), ("ior-hard-write", "ior-hard-read")] {
                let written = phase(&report, write).bytes_written;
                assert!(written > 0, "{write}");
                assert_eq!(phase(&report, read).bytes_read, written, "{read} reads back exactly what was written");
            }
            assert_eq!(
                phase(&report, "ior-easy-write").bytes_written,
                load * 8 * 1024 * 1024,
                "no stonewall: the bound"
            );
            let created = phase(&report, "mdtest-hard-write").ops;
            assert_eq!(created, load * 50);
            assert_eq!(phase(&report, "mdtest-hard-stat").ops, created);
            assert_eq!(phase(&report, "mdtest-hard-read").bytes_read, created * 3901);
            assert_eq!(phase(&report, "mdtest-hard-delete").ops, created);
            assert_eq!(phase(&report, "mdtest-easy-delete").ops, load * 50);
            assert_eq!(
                phase(&report, FIND_PHASE).ops,
                load + 3,
                "one find per mdtest-easy directory and 3 shared trees"
            );
        }
    }

    #[test]
    fn io500_metrics_are_the_phase_figures_and_their_scores() {
        let workload = Io500::from_config(Some(SMALL)).expect("valid config");
        let report = run(&*workload, &params(2, 60_000_000_000));
        let value = |name: &str| report.metrics.iter().find(|m| m.name == name).map(|m| m.value).expect(name);
        let mut bandwidth = Vec::new();
        let mut metadata = Vec::new();
        for name in EXPECTED_PHASES {
            let figure = value(name);
            assert!(figure > 0.0, "{name}: {figure}");
            if name.starts_with("ior") { bandwidth.push(figure) } else { metadata.push(figure) }
        }
        assert_eq!((bandwidth.len(), metadata.len()), (4, 8));
        let find = phase(&report, FIND_PHASE);
        let entries = 2 + 1 + 2 * 50 + 2 * 50;
        assert!(close(value(FIND_PHASE), entries as f64 / 1000.0 / find.elapsed_sec), "find counts entries per second");
        let easy_write = phase(&report, "ior-easy-write");
        assert!(close(value("ior-easy-write"), easy_write.bytes_written as f64 / GIB / easy_write.elapsed_sec));
        let score = io500_score(&bandwidth, &metadata);
        assert!(close(value("bandwidth"), score.bandwidth_gib_per_sec));
        assert!(close(value("metadata"), score.metadata_kiops));
        assert!(close(value("total"), (value("bandwidth") * value("metadata")).sqrt()));
    }

    #[test]
    fn io500_stonewall_stops_every_write_phase() {
        // On MemFs an operation takes 10 µs plus 1 ns per KB moved (a 2 MiB transfer about 12 µs): in 50 µs
        // every write phase stops after about 5 operations per process, well before its bound.
        let config = SMALL.replace("max_bytes_per_proc = 8388608", "max_bytes_per_proc = 33554432");
        let workload = Io500::from_config(Some(&config)).expect("valid config");
        let load = 3;
        let report = run(&*workload, &params(load, 50_000));
        assert_clean(&report);
        let easy = phase(&report, "ior-easy-write").bytes_written;
        assert!(0 < easy && easy < load * 32 * 1024 * 1024, "{easy}");
        assert_eq!(phase(&report, "ior-easy-read").bytes_read, easy);
        let hard = phase(&report, "ior-hard-write").bytes_written;
        assert!(0 < hard && hard < load * 1024 * 1024, "{hard}");
        assert_eq!(phase(&report, "ior-hard-read").bytes_read, hard);
        for (write, after) in [("mdtest-easy-write", "mdtest-easy-stat"), ("mdtest-hard-write", "mdtest-hard-read")] {
            let created = phase(&report, write).ops;
            assert!(0 < created && created < load * 50, "{write}: {created}");
            assert_eq!(phase(&report, after).ops, created, "{after}");
        }
    }

    #[test]
    fn io500_catches_a_target_that_returns_wrong_bytes() {
        let workload = Io500::from_config(Some(SMALL)).expect("valid config");
        let report = run_on(&mut corrupt(), &*workload, &params(2, 60_000_000_000));
        for name in ["ior-easy-read", "ior-hard-read", "mdtest-easy-stat", "mdtest-hard-stat", "mdtest-hard-read"] {
            assert!(phase(&report, name).failures > 0, "{name}: a wrong result is a failure");
        }
        assert_eq!(phase(&report, "ior-easy-write").failures, 0, "writes are not what is wrong");
    }

    #[test]
    fn io500_config_is_checked() {
        assert!(Io500::from_config(None).is_ok());
        assert!(Io500::from_config(Some("")).is_ok());
        let unknown = Io500::from_config(Some("[ior-easy]\nblock_size = 4")).map(|_| ()).unwrap_err();
        assert!(unknown.to_string().contains("block_size"), "{unknown}");
        let section = Io500::from_config(Some("[ior-medium]\n")).map(|_| ()).unwrap_err();
        assert!(section.to_string().contains("ior-medium"), "{section}");
        let invalid = Io500::from_config(Some("[ior-hard]\ntransfer_bytes = 0")).map(|_| ()).unwrap_err();
        assert!(invalid.to_string().contains("[ior-hard]"), "{invalid}");
    }
}
