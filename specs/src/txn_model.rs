//! A model of the cross-shard transaction protocol (two-phase commit through the coordinator's log,
//! docs/design/metadata.md), checked exhaustively with `stateright` for small configurations.
//!
//! # What is modelled
//!
//! - **Shards.** 2 or 3 shards. Each is a Raft group abstracted as one process with a *durable* part
//!   (its committed namespace, intent records, transaction records and participant tombstones: all
//!   in the Raft log) and a *volatile* part (the leader's table of unfinished transactions it
//!   coordinates, with the votes and acknowledgements it has heard). A leader crash loses the volatile
//!   part and keeps the durable one; the new leader rebuilds its table from the log (one step:
//!   `Crash`). Timers are not state: every timeout is a nondeterministic action enabled whenever the
//!   real timer could fire.
//! - **Why that abstraction is sound.** Raft makes an appended entry durable and makes every later
//!   leader's log contain it, and a leader acts on an entry (sends, answers) only once it is committed.
//!   So a group behaves like one process whose log appends are atomic and durable and whose crash
//!   erases only memory. Uncommitted entries of a deposed leader were never acted on, so they need no
//!   state. What the abstraction assumes of the implementation: (1) nothing is sent or answered from
//!   an entry before it commits; (2) answers that *read* the coordinator's state (`QueryTxn`, above all
//!   the presumed-abort answer "no record") come from the current leader (a read-index or lease
//!   check), since a deposed leader's stale "no record" would break atomicity; (3) a leader's messages
//!   sent before a crash behave like any delayed message, which the network below already covers.
//! - **Namespace and transactions** ([`scenario`]): `rename(A/a -> B/b)` replacing an existing `B/b`
//!   whose inode `Y` loses a link (coordinator: `A/a`'s shard; participants: `B/b`'s shard and `Y`'s
//!   shard), optionally `link(Y -> C/c)` competing for the lock on `Y`, and a single-shard
//!   `unlink(A/a)` competing for the lock on `A/a`.
//! - **Protocol**, as the design doc says: the coordinator logs `Preparing` and takes its own intent,
//!   sends `Prepare`; a participant validates, logs an intent (locking its keys) and answers `Prepared`,
//!   or answers `Refused` logging nothing; the coordinator logs `Commit` when all prepared (and answers
//!   the client), `Abort` on a refusal or its prepare timeout; it re-sends the decision until each
//!   participant acknowledges, then logs `Done` and forgets. Participants apply or drop idempotently.
//!   A participant holding an intent may at any time send `QueryTxn`; the coordinator answers with its
//!   decision, nothing while preparing, or `Abort` with no record (presumed abort). A new leader
//!   re-sends `Prepare` for `Preparing` and the decision for decided-not-done transactions (its
//!   retransmission timers run over the rebuilt table).
//! - **One refinement the design doc leaves implicit:** a participant remembers each transaction it
//!   resolved (a tombstone in its log) and ignores a later `Prepare` for it. Without that, a stale
//!   `Prepare` re-takes the intent after the commit; [`Bug::NoTombstones`] shows the checker finds the
//!   resulting atomicity violation. Tombstones need garbage collection in the implementation (e.g.
//!   after the coordinator's `Done`, once no older message can be in flight).
//! - **Network**: a set of messages; any may be delivered in any order, lost (at most `losses_max`
//!   times in a run) or delivered while a copy stays behind (at most `duplicates_max` times).
//!   Identical messages in flight coincide, which loses nothing: a duplicate is modelled explicitly.
//!   At most `crashes_max` leader crashes happen in a run.
//!
//! # Properties
//!
//! Safety (`always`): atomicity (no transaction applied as commit on one shard and abort on another);
//! all or nothing (once no shard holds a transaction's intent, it is applied on all its shards if the
//! coordinator logged Commit and on none otherwise); no dangling entry (every entry no intent locks
//! names a live inode); no orphan (with no intent held anywhere, every inode has `nlink >= 1` and is
//! named by exactly `nlink` entries); truthful answers (a client told "committed" finds Commit in the
//! coordinator's log; one told "failed" finds the transaction applied nowhere).
//!
//! Liveness (`eventually`): the fault budgets are finite, so every run ends fault-free (the "heal"
//! assumption). A run that stops (no step is possible) must have answered every client, marked every
//! record Done and resolved every intent. `stateright` checks `eventually` on terminal states only, so
//! runs that loop forever (retransmissions racing losses of their own copies) are not checked: this is
//! deadlock freedom under fairness, not full liveness.
//!
//! Reachability (`sometimes`, sanity that the bounds still let interesting things happen): every
//! transaction commits; one aborts; a coordinator crashes with a committed transaction in doubt; a
//! participant queries a committed transaction in doubt; a prepare timeout aborts; a query meets no
//! record and gets presumed abort; the unlink beats the rename.
//!
//! # Simplifications
//!
//! The coordinator answers the client in the step that logs its decision (the append is atomic, so
//! no state lies between them; a lost answer only leaves the client ignorant). A client whose request
//! meets a locked key waits; one told EAGAIN does not retry. A crash is enabled only for a leader with
//! unfinished transactions in its table: a participant's whole protocol state is durable, so any other
//! crash is indistinguishable from message loss, which the network already does.
//!
//! # Bounds checked (tests in `txn_model/tests.rs`, dev profile)
//!
//! | shards | txns | crashes | losses | duplicates | unique states | time |
//! |---|---|---|---|---|---|---|
//! | 2 | 1 | 2 | 2 | 2 | 15,966 | 0.1 s |
//! | 3 | 1 | 1 | 1 | 1 | 258,819 | 4 s |
//! | 2 | 2 | 1 | 1 | 0 | 617,506 | 7-9 s |
//! | 2 | 2 | 0 | 0 | 1 | 252,688 | 3 s |
//! | 3 | 2 | 0 | 0 | 0 | 4,731,120 | 90 s (`--ignored`) |
//!
//! # Planted bugs
//!
//! [`Bug`] variants change the protocol; [`check`] must find a counterexample for each and none for
//! the correct protocol (`bug: None`).

mod model;
mod properties;
pub mod scenario;
mod state;

use std::time::{Duration, Instant};

use stateright::{Checker, Expectation, HasDiscoveries, Model};

pub use model::TxnModel;
pub use state::{Action, Client, Msg, Outcome, Record, Shard, State};

/// A deliberate protocol bug, to show the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bug {
    /// A new coordinator leader leaves committed-but-not-done transactions out of its rebuilt table:
    /// it does not re-send their decision and answers `QueryTxn` for them with presumed abort.
    SkipInDoubtRecovery,
    /// The coordinator logs `Done` once it has sent the decision, without waiting for acknowledgements.
    DoneBeforeAcks,
    /// A participant applies its changes when it prepares instead of when the commit arrives.
    ApplyOnPrepare,
    /// A participant keeps no record of resolved transactions, so a stale `Prepare` re-takes an intent.
    NoTombstones,
}

/// One configuration of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnModelConfig {
    /// 2 or 3 shards.
    pub shards: u8,
    /// 1 (the rename) or 2 (the rename and a link competing for inode `Y`).
    pub txns: u8,
    pub crashes_max: u8,
    pub losses_max: u8,
    pub duplicates_max: u8,
    /// `None`: the protocol as designed.
    pub bug: Option<Bug>,
}

impl Default for TxnModelConfig {
    fn default() -> Self {
        TxnModelConfig { shards: 2, txns: 1, crashes_max: 1, losses_max: 1, duplicates_max: 1, bug: None }
    }
}

/// What a check found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// States generated (with repeats).
    pub states: usize,
    /// Distinct states.
    pub unique: usize,
    pub max_depth: usize,
    pub elapsed: Duration,
    /// The first violated property (safety before liveness) and the steps leading to the violation.
    pub counterexample: Option<(String, Vec<String>)>,
    /// `sometimes` properties the check found no example for.
    pub unreached: Vec<&'static str>,
}

/// Checks one configuration exhaustively (breadth first; stops at the first violation).
pub fn check(config: TxnModelConfig) -> CheckReport {
    let started = Instant::now();
    let model = TxnModel::new(config);
    let props = model.properties();
    let checker = model.checker().finish_when(HasDiscoveries::AnyFailures).spawn_bfs().join();
    let mut counterexample = None;
    let mut unreached = Vec::new();
    for p in &props {
        let found = checker.discovery(p.name);
        match (p.expectation.clone(), found) {
            (Expectation::Sometimes, None) => unreached.push(p.name),
            (Expectation::Always | Expectation::Eventually, Some(path)) if counterexample.is_none() => {
                let steps = path.into_actions().iter().map(|a| a.to_string()).collect();
                counterexample = Some((p.name.to_string(), steps));
            }
            _ => {}
        }
    }
    CheckReport {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        elapsed: started.elapsed(),
        counterexample,
        unreached,
    }
}

#[cfg(test)]
mod tests;
