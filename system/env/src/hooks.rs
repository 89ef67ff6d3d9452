//! Fault-injection hooks ([`buggify!`](crate::buggify)) and coverage marks ([`mark!`](crate::mark)) for
//! the simulator (STYLE.md rules 8 and 12; models: FoundationDB's `BUGGIFY` and `CODE_PROBE`,
//! TigerBeetle's `testing/marks.zig`).
//!
//! - `buggify!("area.what")` is a `bool`: `true` when the simulator wants the code to take a fault it is
//!   designed to tolerate at this site (a delay, a dropped message, a spurious retry, an early
//!   checkpoint). A site never makes the system incorrect: it only pushes execution into rare but
//!   legitimate paths.
//! - `mark!("area.what")` records that a rare path was reached, so a test can show the simulator
//!   reaches it ([`RARE_MARKS`], [`EXTRA_MARKS`]).
//!
//! **Compiled out in production.** Both macros are defined twice in this crate, under the cargo feature
//! `sim-hooks` and without it (a `cfg(feature)` inside a macro body would test the *calling* crate's
//! features). Without the feature `buggify!` is the literal `false` and `mark!` is `()`: the production
//! binary (`tessera-real-io`, which never enables the feature; `ci/tidy.sh` checks) contains no hook.
//! `tessera-sim` enables it, and through feature unification so does every workspace build that
//! includes the simulator.
//!
//! **Inert unless installed.** With the feature, the state lives in a thread-local (a madsim simulation
//! runs on one OS thread; test harnesses run several simulations on different threads). On a thread
//! with nothing installed, `buggify!` is `false` and `mark!` records nothing, so unit tests and all
//! non-simulation code behave exactly as without the feature.
//!
//! **Call order** (the simulator, once per run, on the thread that runs the simulation):
//! 1. [`install`] a [`HookConfig`] before the cluster starts; keep the returned [`Installed`] guard;
//! 2. run the simulation (the system's code evaluates sites and records marks);
//! 3. [`report`] (or [`Installed::finish`]) for what was seen: every site reached, whether it was
//!    enabled, how often it was evaluated and fired, and every mark's count;
//! 4. drop the guard (uninstalls). Installing twice on one thread panics.
//!
//! **Determinism.** Each site is enabled or not once per run, from a hash of (seed, site name), with
//! probability `site_enabled_per_million`: the decision does not depend on the order in which sites
//! are first reached. An enabled site fires on its n-th evaluation with probability
//! `fire_per_million`, from a hash of (seed, site name, n). Given a deterministic execution, the
//! decisions are deterministic; no clock, thread or OS randomness is involved.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// Whether the macros are compiled in (feature `sim-hooks` of this crate). Tests of code with marks can
/// check a mark only when it is.
pub const ENABLED: bool = cfg!(feature = "sim-hooks");

/// Probabilities are given in millionths.
pub const PER_MILLION: u32 = 1_000_000;

/// The rare paths every simulation campaign should show it reaches: (mark name, what it means).
pub const RARE_MARKS: [(&str, &str); 5] = [
    (
        "store.torn_record_recovered",
        "store recovery found a torn or checksum-failing journal entry at the end of the replay and discarded it",
    ),
    (
        "txn.in_doubt_resolved",
        "a participant resolved an intent it had held in doubt (past RESOLVE_TIMEOUT_NS) with the coordinator's outcome",
    ),
    (
        "data.degraded_read",
        "a stripe read was served from surviving chunks because a chunk was missing, corrupt or unanswered",
    ),
    (
        "data.rebuild_after_rack_loss",
        "the rebuilder moved a chunk off a node whose whole failure domain (rack) is dead",
    ),
    (
        "meta.stale_epoch_retry",
        "the metadata client retried a call after a node answered with a newer shard-map epoch than its own",
    ),
];

/// Further marks on rare paths (same form as [`RARE_MARKS`]).
pub const EXTRA_MARKS: [(&str, &str); 6] = [
    ("raft.snapshot_installed", "a replica received a snapshot from its leader and replaced its state with it"),
    ("txn.new_leader_resends", "a new coordinator leader re-sent what its log says its transactions still owe"),
    ("meta.split_under_way", "an operation met a directory locked by a GIGA+ split in progress (EAGAIN, retried)"),
    ("data.repair_put_back", "the data client put back a chunk from its repair queue after a degraded read"),
    ("data.duplicate_put", "a chunk server received a put of a chunk it already holds (a re-sent or repeated put)"),
    ("data.rebuild_deferred", "a damaged stripe's rebuild was deferred to the next pass"),
];

/// The `buggify!` sites of the system: (site name, the fault it injects when it fires).
pub const BUGGIFY_SITES: [(&str, &str); 16] = [
    ("store.checkpoint_early", "checkpoint before appending a journal entry although the journal has room"),
    ("store.split_commit_entries", "append a group commit as one journal entry per record, each flushed"),
    ("raft.drop_outgoing", "drop one outgoing Raft message (as the network may)"),
    ("raft.transfer_leader", "hand a group's leadership to another caught-up voter during balancing"),
    ("meta.compact_early", "compact (snapshot) a shard's Raft log long before compact_every_entries"),
    ("meta.spurious_timeout", "the metadata client gives up on an awaited attempt early and retries"),
    ("txn.drop_message", "drop one two-phase-commit envelope a shard leader sends"),
    ("txn.refuse_prepare", "a participant leader refuses a Prepare with EAGAIN without logging it"),
    ("txn.retransmit_early", "a shard leader runs its transaction duties (retransmissions, queries) early"),
    ("data.read_pretend_corrupt", "treat a verified chunk read as corrupt and decode the range from the others"),
    ("data.put_timeout", "ignore a put's answer as if it timed out, so the put is re-sent"),
    ("data.write_new_placement", "after a stripe's chunks are all durable, free them and write a fresh stripe"),
    ("data.rebuild_defer", "after a rebuilt chunk's put, defer its metadata move to the next pass"),
    ("data.rebuild_slow", "the rebuilder sleeps one extra second after a stripe"),
    ("data.scrub_early", "a chunk host runs a scrub step before it is due"),
    ("data.reply_delay", "a chunk host holds its replies for one second (a stalled node)"),
];

/// What the simulator asks of the hooks for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookConfig {
    /// Decides which sites are enabled and when they fire (usually derived from the run's seed).
    pub seed: u64,
    /// False: no site ever fires (evaluations are still counted; marks still recorded).
    pub buggify: bool,
    /// Probability, in millionths, that a site is enabled for the run.
    pub site_enabled_per_million: u32,
    /// Probability, in millionths, that an enabled site fires on one evaluation.
    pub fire_per_million: u32,
}

/// What one site saw during the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteReport {
    /// Enabled for this run (always false when `HookConfig::buggify` is false).
    pub enabled: bool,
    /// Times the site was evaluated.
    pub evaluated: u64,
    /// Times it fired.
    pub fired: u64,
}

/// What the installation on this thread saw so far: every site reached and every mark recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookReport {
    pub sites: BTreeMap<&'static str, SiteReport>,
    pub marks: BTreeMap<&'static str, u64>,
}

impl HookReport {
    /// How often `mark` was recorded (0 if never).
    pub fn mark_count(&self, mark: &str) -> u64 {
        self.marks.get(mark).copied().unwrap_or(0)
    }

    /// The marks of [`RARE_MARKS`] that were never recorded.
    pub fn rare_marks_missed(&self) -> Vec<&'static str> {
        RARE_MARKS.iter().map(|(name, _)| *name).filter(|name| self.mark_count(name) == 0).collect()
    }
}

struct State {
    config: HookConfig,
    report: HookReport,
    /// Set by [`quiesce`]: no site fires any more.
    quiet: bool,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The installation on this thread; uninstalls when dropped. Not `Send`: it belongs to the thread.
#[derive(Debug)]
#[must_use = "the hooks are uninstalled when the guard is dropped"]
pub struct Installed {
    _thread_bound: PhantomData<*const ()>,
}

impl Installed {
    /// What was seen so far, as [`report`].
    pub fn report(&self) -> HookReport {
        report()
    }

    /// Uninstalls and returns everything that was seen.
    pub fn finish(self) -> HookReport {
        let report = report();
        drop(self);
        report
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // The thread-local may already be gone if the guard outlives it (thread exit): nothing to undo.
        let _ = STATE.try_with(|state| state.borrow_mut().take());
    }
}

/// Installs the hooks on this thread for one run. Panics if some are installed here already, or if a
/// probability exceeds [`PER_MILLION`].
pub fn install(config: HookConfig) -> Installed {
    assert!(
        config.site_enabled_per_million <= PER_MILLION && config.fire_per_million <= PER_MILLION,
        "hook probabilities are in millionths: {config:?}"
    );
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        assert!(state.is_none(), "hooks are already installed on this thread");
        *state = Some(State { config, report: HookReport::default(), quiet: false });
    });
    Installed { _thread_bound: PhantomData }
}

/// From now on no site fires (evaluations are still counted): the run healed its faults and checks that
/// the cluster makes progress without them. Nothing happens when nothing is installed.
pub fn quiesce() {
    let _ = STATE.try_with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.quiet = true;
        }
    });
}

/// Whether hooks are installed on this thread.
pub fn installed() -> bool {
    STATE.try_with(|state| state.borrow().is_some()).unwrap_or(false)
}

/// What this thread's installation saw so far (empty if nothing is installed).
pub fn report() -> HookReport {
    STATE.try_with(|state| state.borrow().as_ref().map(|s| s.report.clone())).ok().flatten().unwrap_or_default()
}

/// Evaluates a `buggify!` site: whether it fires now. False when nothing is installed on this thread.
/// Called by the macro; not meant to be called directly.
#[doc(hidden)]
pub fn buggify_fire(site: &'static str) -> bool {
    buggify_fire_at(site, None)
}

/// Evaluates a `buggify!(site, per_million)` site: like [`buggify_fire`], but an enabled site fires with
/// at most `per_million` (hot paths whose fault is expensive, such as a snapshot, fire rarely). Called
/// by the macro; not meant to be called directly.
#[doc(hidden)]
pub fn buggify_fire_rarely(site: &'static str, per_million: u32) -> bool {
    buggify_fire_at(site, Some(per_million))
}

fn buggify_fire_at(site: &'static str, cap_per_million: Option<u32>) -> bool {
    STATE
        .try_with(|state| {
            let mut state = state.borrow_mut();
            let Some(state) = state.as_mut() else { return false };
            let config = state.config;
            let name = name_hash(site);
            let entry = state.report.sites.entry(site).or_insert_with(|| SiteReport {
                enabled: config.buggify && site_enabled(config.seed, name, config.site_enabled_per_million),
                evaluated: 0,
                fired: 0,
            });
            let evaluation = entry.evaluated;
            entry.evaluated += 1;
            let per_million = cap_per_million.map_or(config.fire_per_million, |cap| cap.min(config.fire_per_million));
            let fire = entry.enabled && !state.quiet && fires(config.seed, name, evaluation, per_million);
            if fire {
                entry.fired += 1;
            }
            fire
        })
        .unwrap_or(false)
}

/// Records a `mark!`. Nothing happens when nothing is installed on this thread. Called by the macro.
#[doc(hidden)]
pub fn mark(name: &'static str) {
    let _ = STATE.try_with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            *state.report.marks.entry(name).or_insert(0) += 1;
        }
    });
}

const ENABLE_DOMAIN: u64 = 0x454e_4142_4c45_0001; // "ENABLE"
const FIRE_DOMAIN: u64 = 0x4649_5245_0000_0002; // "FIRE"

/// Whether the site whose name hashes to `name` is enabled for the run with `seed`.
pub(crate) fn site_enabled(seed: u64, name: u64, per_million: u32) -> bool {
    chance(splitmix64(mix(seed, name) ^ ENABLE_DOMAIN), per_million)
}

/// Whether the site fires on its `evaluation`-th evaluation (from 0).
pub(crate) fn fires(seed: u64, name: u64, evaluation: u64, per_million: u32) -> bool {
    chance(mix(mix(seed, name) ^ FIRE_DOMAIN, evaluation), per_million)
}

fn chance(roll: u64, per_million: u32) -> bool {
    roll % u64::from(PER_MILLION) < u64::from(per_million)
}

fn mix(a: u64, b: u64) -> u64 {
    splitmix64(a ^ splitmix64(b))
}

/// FNV-1a of a site or mark name.
pub(crate) fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `buggify!("area.what")`: whether the simulator injects this site's fault now (see [`crate::hooks`]).
#[cfg(feature = "sim-hooks")]
#[macro_export]
macro_rules! buggify {
    ($site:literal) => {
        $crate::hooks::buggify_fire($site)
    };
    ($site:literal, $per_million:expr) => {
        $crate::hooks::buggify_fire_rarely($site, $per_million)
    };
}

/// `buggify!("area.what")`: always `false` without the `sim-hooks` feature (see [`crate::hooks`]).
#[cfg(not(feature = "sim-hooks"))]
#[macro_export]
macro_rules! buggify {
    ($site:literal) => {
        false
    };
    ($site:literal, $per_million:expr) => {
        false
    };
}

/// `mark!("area.what")`: records that a rare path was reached (see [`crate::hooks`]).
#[cfg(feature = "sim-hooks")]
#[macro_export]
macro_rules! mark {
    ($name:literal) => {
        $crate::hooks::mark($name)
    };
}

/// `mark!("area.what")`: nothing without the `sim-hooks` feature (see [`crate::hooks`]).
#[cfg(not(feature = "sim-hooks"))]
#[macro_export]
macro_rules! mark {
    ($name:literal) => {
        ()
    };
}
