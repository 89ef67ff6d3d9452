//! Running a workload against a target: the per-process loop (pacing, timing, checking), the [`Target`]
//! a phase runs on, and the run from first phase to report.
//!
//! The loop is written once, as async code over an [`Executor`] (a clock and the operations). The
//! simulated cluster runs it as tasks in virtual time; a directory target runs it on one thread per
//! process with blocking calls (the future never waits on anything else, so `block_on` just runs it).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{PhaseReport, Recorder, RunReport};
use crate::op::{Op, OpError, Outcome};
use crate::workload::{Params, Phase, PhaseRole, Process, Workload};

/// A client's doors: its clock and its operations.
pub trait Executor {
    /// Nanoseconds on this target's clock (virtual time in the simulator).
    fn now_ns(&self) -> u64;
    /// Wait until `at_ns` on the same clock.
    fn sleep_until_ns(&mut self, at_ns: u64) -> impl Future<Output = ()>;
    /// Run one operation.
    fn execute(&mut self, op: &Op) -> impl Future<Output = Result<Outcome, OpError>>;
}

/// Where a run goes: a directory, the simulated cluster, a real cluster.
pub trait Target {
    /// Names the target in reports (`dir:/tmp/x`, `sim:8 nodes`).
    fn describe(&self) -> String;

    /// Run phase `index` of a workload with these processes (one client each); return them (their state
    /// carries into the next phase) and the phase's report. `progress` counts completed operations.
    fn run_phase(
        &mut self,
        index: usize,
        phase: &Phase,
        procs: Vec<Box<dyn Process>>,
        options: &RunOptions,
        progress: &AtomicU64,
    ) -> impl Future<Output = Result<(Vec<Box<dyn Process>>, PhaseReport), TargetError>>;
}

/// A target that could not run a phase at all (not an operation's error: those are counted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// Options of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Check every byte, name and size read against what was written.
    pub verify: bool,
    /// Width of one time-series interval.
    pub interval_ns: u64,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions { verify: true, interval_ns: 1_000_000_000 }
    }
}

/// Told when phases begin and end and, by the target, how many operations are done.
pub trait ProgressSink {
    fn phase_started(&self, workload: &str, phase: &Phase, procs: usize);
    fn phase_done(&self, report: &PhaseReport);
}

/// A sink that says nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl ProgressSink for Quiet {
    fn phase_started(&self, _: &str, _: &Phase, _: usize) {}
    fn phase_done(&self, _: &PhaseReport) {}
}

/// One process's part of a phase: issue its operations (paced if the phase has a rate) until it has none
/// left or the phase's time is up; time each; let the process check each result. `started_ns` is the
/// phase's start on the executor's clock.
pub async fn run_process<E: Executor>(
    exec: &mut E,
    process: &mut dyn Process,
    index: usize,
    phase: &Phase,
    started_ns: u64,
    options: &RunOptions,
    progress: &AtomicU64,
) -> Recorder {
    let mut recorder = Recorder::new(options.interval_ns);
    let rate = phase.rate_per_proc.map(|r| process.rate_per_sec(index).unwrap_or(r));
    recorder.requested_ops_per_sec = rate;
    let deadline_ns = phase.duration_ns.map(|d| started_ns.saturating_add(d));
    let mut issued = 0u64;
    loop {
        let now_ns = exec.now_ns();
        if deadline_ns.is_some_and(|d| now_ns >= d) {
            break;
        }
        if let Some(rate) = rate {
            let due_ns = started_ns + (issued as f64 * 1e9 / rate) as u64;
            if deadline_ns.is_some_and(|d| due_ns >= d) {
                break;
            }
            if due_ns > now_ns {
                exec.sleep_until_ns(due_ns).await;
            }
        }
        let Some(op) = process.next_op(index) else { break };
        let began_ns = exec.now_ns();
        let result = exec.execute(&op).await;
        let done_ns = exec.now_ns();
        issued += 1;
        let (read, written) = match &result {
            Ok(outcome) => (outcome.bytes_read(), op.bytes_written()),
            Err(_) => (0, 0),
        };
        recorder.record(
            op.kind(),
            done_ns.saturating_sub(began_ns),
            done_ns.saturating_sub(started_ns),
            read,
            written,
            result.is_err(),
        );
        if let Err(wrong) = process.observe(index, &op, &result, options.verify) {
            recorder.fail(format!("{} {}: {wrong}", op.kind(), op.path()));
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    recorder
}

/// The report of a phase from its processes' recorders; `elapsed_ns` runs from the phase's start until
/// its last process finished. A paced phase with a duration lasts at least that duration: its processes
/// stop issuing when the next operation would fall due after the deadline, and the time until the
/// deadline is part of the rate they were asked for.
/// What one process's task hands back when its phase ends: its executor, its process, what it recorded
/// and when it finished (nanoseconds on the phase's clock).
pub type ProcessDone<E> = (E, Box<dyn Process>, Recorder, u64);

/// The end of a phase run as one task per process (the simulated and the real cluster): every executor
/// back into its slot, in process order; the processes for the next phase; and the phase's report. The
/// phase lasts until its last process finished.
pub fn finish_phase<'a, E: 'a>(
    phase: &Phase,
    options: &RunOptions,
    started_ns: u64,
    slots: impl IntoIterator<Item = &'a mut Option<E>>,
    done: Vec<ProcessDone<E>>,
) -> (Vec<Box<dyn Process>>, PhaseReport) {
    let mut processes = Vec::with_capacity(done.len());
    let mut recorders = Vec::with_capacity(done.len());
    let mut end_ns = started_ns;
    let mut slots = slots.into_iter();
    for (exec, process, recorder, done_ns) in done {
        *slots.next().expect("a slot for every process") = Some(exec);
        processes.push(process);
        recorders.push(recorder);
        end_ns = end_ns.max(done_ns);
    }
    assert!(slots.next().is_none(), "a process for every slot");
    (processes, phase_report(phase, &recorders, options, end_ns - started_ns))
}

pub fn phase_report(phase: &Phase, recorders: &[Recorder], options: &RunOptions, elapsed_ns: u64) -> PhaseReport {
    let mut merged = Recorder::new(options.interval_ns);
    for recorder in recorders {
        merged.merge(recorder);
    }
    let elapsed_ns = match (phase.rate_per_proc, phase.duration_ns) {
        (Some(_), Some(duration_ns)) => elapsed_ns.max(duration_ns),
        _ => elapsed_ns,
    };
    PhaseReport::new(phase, recorders.len(), &merged, elapsed_ns)
}

/// Run a workload at `params` against `target`: every phase in order (check phases only if verifying).
pub async fn run_workload<T: Target>(
    target: &mut T,
    workload: &dyn Workload,
    params: &Params,
    options: &RunOptions,
    sink: &dyn ProgressSink,
    progress: &AtomicU64,
) -> Result<RunReport, TargetError> {
    let mut procs = workload.processes(params);
    let count = procs.len();
    assert_eq!(count, workload.process_count(params), "{}: process count", workload.name());
    let mut phases = Vec::new();
    for (index, phase) in workload.phases(params).iter().enumerate() {
        if phase.role == PhaseRole::Check && !options.verify {
            continue;
        }
        sink.phase_started(workload.name(), phase, count);
        progress.store(0, Ordering::Relaxed);
        let (back, report) = target.run_phase(index, phase, procs, options, progress).await?;
        assert_eq!(back.len(), count, "the target returns every process");
        procs = back;
        sink.phase_done(&report);
        phases.push(report);
    }
    let metrics = workload.metrics(params, &phases);
    Ok(RunReport {
        workload: workload.name().to_string(),
        target: target.describe(),
        load: params.load,
        procs: count,
        seed: params.seed,
        verify: options.verify,
        phases,
        metrics,
    })
}
