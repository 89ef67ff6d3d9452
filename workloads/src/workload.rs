//! What a workload is: phases (setup, run, check), processes that issue operations, and its own figures.
//!
//! A workload is a list of phases and one [`Process`] per simulated client process. In each phase every
//! process issues operations until it has none left for the phase, or until the phase's duration is up
//! (then the phase stops, as IO500's stonewall does); a process keeps its state across phases, so a read
//! phase reads back exactly what its write phase wrote. Processes draw their choices from a
//! [`crate::op::WorkRng`] seeded from the run's seed, so a run on the simulated cluster replays exactly.

use serde::Serialize;

use crate::metrics::{Metric, PhaseReport};
use crate::op::{Op, OpError, Outcome};

/// What a phase is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseRole {
    /// Builds the data set; not measured.
    Setup,
    /// Measured.
    Run,
    /// Reads back and checks everything the run left (only in verify mode); not measured.
    Check,
}

/// How IO500 scores a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    /// Not part of a score.
    None,
    /// Bandwidth, GiB/s (ior phases).
    Bandwidth,
    /// Thousands of operations per second (mdtest and find phases).
    Metadata,
}

/// One phase of a workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub name: String,
    pub role: PhaseRole,
    /// Operations per second each process issues (open loop: an operation is due at start + i / rate and
    /// is issued then, or at once if the process is behind). `None`: as fast as it can (closed loop).
    pub rate_per_proc: Option<f64>,
    /// Stop issuing new operations this long after the phase began. `None`: run until every process is
    /// done with the phase.
    pub duration_ns: Option<u64>,
    pub score: Score,
}

impl Phase {
    /// A closed-loop phase that runs until the processes are done.
    pub fn until_done(name: &str, role: PhaseRole) -> Phase {
        Phase { name: name.to_string(), role, rate_per_proc: None, duration_ns: None, score: Score::None }
    }
}

/// The knobs every workload takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The load: what it means is the workload's (SWBUILD: builds; IO500 and the others: processes).
    pub load: u64,
    /// Seed of every process's choices.
    pub seed: u64,
    /// Length of each measured, time-bounded phase.
    pub duration_ns: u64,
}

/// One client process of a workload: it issues operations and checks what comes back.
pub trait Process: Send {
    /// The next operation of phase `phase` (an index into [`Workload::phases`]), or `None` when this
    /// process is done with the phase.
    fn next_op(&mut self, phase: usize) -> Option<Op>;

    /// The result of the operation `next_op` just returned. The process updates what it knows (a file it
    /// wrote now exists). `Err` says what was wrong: an error it did not expect, or, when `verify`, bytes
    /// or names or sizes other than those it wrote.
    fn observe(&mut self, phase: usize, op: &Op, result: &Result<Outcome, OpError>, verify: bool)
    -> Result<(), String>;

    /// This process's own pace in a paced phase (operations per second), where it differs from the
    /// phase's `rate_per_proc` (EDA's back end runs slower than its front end). `None`: the phase's rate.
    fn rate_per_sec(&self, _phase: usize) -> Option<f64> {
        None
    }
}

/// A workload: its phases, its processes and its own figures.
pub trait Workload: Send + Sync {
    /// The name on the command line (`swbuild`, `ior-easy`, ...).
    fn name(&self) -> &str;

    /// How many processes the load `params.load` means.
    fn process_count(&self, params: &Params) -> usize;

    /// The phases that build the data set (not measured).
    fn setup(&self, params: &Params) -> Vec<Phase>;

    /// The measured phases.
    fn run(&self, params: &Params) -> Vec<Phase>;

    /// The phases that read back and check what the run left (run only in verify mode).
    fn check(&self, params: &Params) -> Vec<Phase>;

    /// Every phase in order: setup, run, check. Process phase indices count in this list.
    fn phases(&self, params: &Params) -> Vec<Phase> {
        let mut phases = self.setup(params);
        phases.extend(self.run(params));
        phases.extend(self.check(params));
        phases
    }

    /// The processes, one per [`Workload::process_count`].
    fn processes(&self, params: &Params) -> Vec<Box<dyn Process>>;

    /// The workload's own figures from the phase reports (IO500 scores; SWBUILD's achieved rate).
    fn metrics(&self, params: &Params, phases: &[PhaseReport]) -> Vec<Metric>;
}
