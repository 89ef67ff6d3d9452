//! One simulation run from one seed, and the line that reports it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use madsim::runtime::Runtime;

use crate::scenario::{self, ScenarioConfig, StoreKind};
use crate::trace::Trace;

/// Virtual time after which a run is declared stuck.
pub const TIME_LIMIT: Duration = Duration::from_secs(3_600);

/// The verdict of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    pub seed: u64,
    pub trace_hash: u64,
    pub passed: bool,
    pub reason: Option<String>,
}

impl RunOutcome {
    /// The one-line summary: `seed=S trace_hash=H result=pass`, or with `result=fail reason=".."
    /// replay=".."`.
    pub fn line(&self) -> String {
        let head = format!("seed={} trace_hash={:016x}", self.seed, self.trace_hash);
        if self.passed {
            format!("{head} result=pass")
        } else {
            let reason = self.reason.as_deref().unwrap_or("unknown").replace('\\', "\\\\").replace('"', "\\\"");
            format!("{head} result=fail reason=\"{reason}\" replay=\"{}\"", replay_command(self.seed))
        }
    }
}

/// The shell command that replays `seed` with full tracing.
pub fn replay_command(seed: u64) -> String {
    format!("cargo run -p tessera-sim -- replay {seed}")
}

/// Run the default scenario on `seed`; `verbose` prints every trace event to stderr.
pub fn run_seed(seed: u64, verbose: bool) -> RunOutcome {
    run_config(ScenarioConfig::from_seed(seed), verbose)
}

/// Run the default scenario on `seed` with another store (the simulator's self-tests use the toy store).
pub fn run_seed_with_store(seed: u64, store: StoreKind, verbose: bool) -> RunOutcome {
    run_config(ScenarioConfig { store, ..ScenarioConfig::from_seed(seed) }, verbose)
}

/// Run `config` in a fresh madsim runtime seeded with `config.seed`; a panic is a failed run.
pub fn run_config(config: ScenarioConfig, verbose: bool) -> RunOutcome {
    let seed = config.seed;
    let trace = Trace::new(verbose);
    let (passed, reason) = match in_runtime(seed, scenario::run(config, trace.clone())) {
        Ok(r) => (r.passed, r.reason),
        Err(panic) => (false, Some(panic)),
    };
    RunOutcome { seed, trace_hash: trace.hash(), passed, reason }
}

/// Run `future` to completion in a fresh madsim runtime seeded with `seed`, limited to [`TIME_LIMIT`] of
/// virtual time. A panic anywhere in the simulation (a hang included) comes back as `Err("panic: ...")`.
pub(crate) fn in_runtime<F: std::future::Future>(seed: u64, future: F) -> Result<F::Output, String> {
    in_runtime_limited(seed, TIME_LIMIT, future)
}

/// [`in_runtime`] with a virtual-time limit of `limit` (a workload's time-bounded phases may need more
/// than the hour every scenario gets).
pub(crate) fn in_runtime_limited<F: std::future::Future>(
    seed: u64,
    limit: Duration,
    future: F,
) -> Result<F::Output, String> {
    catch_unwind(AssertUnwindSafe(move || {
        let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.set_time_limit(limit);
        runtime.block_on(future)
    }))
    .map_err(|panic| format!("panic: {}", panic_message(&*panic)))
}

/// The text of a caught panic (a simulation that panics is a failed run, reported with this text).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}
