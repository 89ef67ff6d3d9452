//! The protocol's transitions: what each shard does on each message and timer.

use std::collections::BTreeSet;

use stateright::{Model, Property};

use super::scenario::{Key, Scenario, ShardId, TxnId};
use super::state::{Action, Client, Msg, Outcome, Record, Seen, Shard, State, Unlink};
use super::{Bug, TxnModelConfig, properties};

/// The protocol model for one configuration.
#[derive(Debug, Clone)]
pub struct TxnModel {
    pub config: TxnModelConfig,
    pub scenario: Scenario,
}

impl TxnModel {
    pub fn new(config: TxnModelConfig) -> Self {
        let scenario = Scenario::new(config.shards, config.txns);
        TxnModel { config, scenario }
    }

    fn bug(&self, bug: Bug) -> bool {
        self.config.bug == Some(bug)
    }

    /// The keys `shard` has locked: those of every intent it holds.
    fn locked(&self, state: &State, shard: ShardId) -> BTreeSet<Key> {
        let plans = &self.scenario.txns;
        state.shards[shard as usize]
            .intents
            .iter()
            .flat_map(|&t| plans[t as usize].changes(shard).iter().map(|c| c.key()))
            .collect()
    }

    /// Whether `shard` can take an intent for `txn` now: its keys are free and its checks pass.
    fn can_prepare(&self, state: &State, txn: TxnId, shard: ShardId) -> bool {
        let locked = self.locked(state, shard);
        let changes = self.scenario.txns[txn as usize].changes(shard);
        let ns = &state.shards[shard as usize].ns;
        changes.iter().all(|c| !locked.contains(&c.key()) && ns.valid(c))
    }

    /// `shard` applies (commit) or drops (abort) its intent for `txn` and releases its locks.
    fn resolve_intent(&self, state: &mut State, txn: TxnId, shard: ShardId, outcome: Outcome) {
        let s = &mut state.shards[shard as usize];
        s.intents.remove(&txn);
        if outcome == Outcome::Commit && !self.bug(Bug::ApplyOnPrepare) {
            for change in self.scenario.txns[txn as usize].changes(shard) {
                s.ns.apply(change);
            }
        }
        state.applied.insert((txn, shard, outcome));
    }

    /// The coordinator logs its decision, applies or drops its own part, answers the client and sends
    /// the decision to every participant.
    fn decide(&self, state: &mut State, txn: TxnId, outcome: Outcome) {
        let plan = &self.scenario.txns[txn as usize];
        let c = plan.coordinator as usize;
        state.shards[c].records.insert(txn, Record::Decided(outcome));
        state.shards[c].table.insert(txn, BTreeSet::new());
        self.resolve_intent(state, txn, plan.coordinator, outcome);
        state.clients[txn as usize] = Client::Told(outcome);
        for p in plan.participants() {
            state.net.insert(Msg::Decision { txn, to: p, outcome });
        }
        if self.bug(Bug::DoneBeforeAcks) {
            // Planted bug: "sent" is taken for "acknowledged".
            state.shards[c].records.insert(txn, Record::Done(outcome));
            state.shards[c].table.remove(&txn);
        }
    }

    fn deliver(&self, state: &mut State, msg: Msg) {
        match msg {
            Msg::Prepare { txn, to } => self.on_prepare(state, txn, to),
            Msg::Vote { txn, from, yes } => {
                let plan = &self.scenario.txns[txn as usize];
                let c = &mut state.shards[plan.coordinator as usize];
                if c.records.get(&txn) != Some(&Record::Preparing) {
                    return;
                }
                let Some(heard) = c.table.get_mut(&txn) else { return };
                if !yes {
                    self.decide(state, txn, Outcome::Abort);
                    return;
                }
                heard.insert(from);
                if plan.participants().all(|p| heard.contains(&p)) {
                    self.decide(state, txn, Outcome::Commit);
                }
            }
            Msg::Decision { txn, to, outcome } => {
                let s = &mut state.shards[to as usize];
                if s.intents.contains(&txn) {
                    self.resolve_intent(state, txn, to, outcome);
                    if !self.bug(Bug::NoTombstones) {
                        state.shards[to as usize].resolved.insert(txn, outcome);
                    }
                } else if !s.resolved.contains_key(&txn) && !self.bug(Bug::NoTombstones) {
                    // An abort overtook the prepare: remember it, so the prepare is ignored.
                    s.resolved.insert(txn, outcome);
                }
                state.net.insert(Msg::Ack { txn, from: to });
            }
            Msg::Ack { txn, from } => {
                let plan = &self.scenario.txns[txn as usize];
                let c = &mut state.shards[plan.coordinator as usize];
                let Some(Record::Decided(outcome)) = c.records.get(&txn).copied() else { return };
                let Some(heard) = c.table.get_mut(&txn) else { return };
                heard.insert(from);
                if plan.participants().all(|p| heard.contains(&p)) {
                    c.records.insert(txn, Record::Done(outcome));
                    c.table.remove(&txn);
                }
            }
            Msg::Query { txn, from } => {
                let c = &state.shards[self.scenario.txns[txn as usize].coordinator as usize];
                let outcome = match (c.table.contains_key(&txn), c.records.get(&txn)) {
                    (true, Some(Record::Decided(o))) => *o,
                    // Still preparing: no answer yet; the participant will ask again.
                    (true, _) => return,
                    // No record (never prepared, or done): presumed abort.
                    (false, _) => {
                        state.seen.presumed_abort = true;
                        Outcome::Abort
                    }
                };
                state.net.insert(Msg::Decision { txn, to: from, outcome });
            }
        }
    }

    fn on_prepare(&self, state: &mut State, txn: TxnId, to: ShardId) {
        let s = &state.shards[to as usize];
        if s.resolved.contains_key(&txn) {
            return; // Stale: this participant already resolved the transaction.
        }
        let yes = s.intents.contains(&txn) || self.can_prepare(state, txn, to);
        if yes && state.shards[to as usize].intents.insert(txn) && self.bug(Bug::ApplyOnPrepare) {
            // Planted bug: the participant applies its changes at prepare time.
            for change in self.scenario.txns[txn as usize].changes(to) {
                state.shards[to as usize].ns.apply(change);
            }
            state.applied.insert((txn, to, Outcome::Commit));
        }
        state.net.insert(Msg::Vote { txn, from: to, yes });
    }

    /// A new leader of `shard` takes over: it keeps the log and rebuilds its table from the records.
    fn crash(&self, state: &mut State, shard: ShardId) {
        let in_doubt = state.shards[shard as usize].records.iter().any(|(&t, r)| {
            *r == Record::Decided(Outcome::Commit)
                && self.scenario.txns[t as usize].participants().any(|p| state.shards[p as usize].intents.contains(&t))
        });
        state.seen.crash_in_doubt |= in_doubt;
        let skip_committed = self.bug(Bug::SkipInDoubtRecovery);
        let s = &mut state.shards[shard as usize];
        s.table = s
            .records
            .iter()
            .filter(|(_, r)| match r {
                Record::Preparing | Record::Decided(Outcome::Abort) => true,
                // Planted bug: the new leader leaves committed-but-not-done transactions out.
                Record::Decided(Outcome::Commit) => !skip_committed,
                Record::Done(_) => false,
            })
            .map(|(&t, _)| (t, BTreeSet::new()))
            .collect();
        state.crashes += 1;
    }
}

impl Model for TxnModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let shards = self
            .scenario
            .initial()
            .into_iter()
            .map(|ns| Shard {
                ns,
                intents: BTreeSet::new(),
                records: Default::default(),
                resolved: Default::default(),
                table: Default::default(),
            })
            .collect();
        vec![State {
            shards,
            net: BTreeSet::new(),
            clients: vec![Client::Idle; self.scenario.txns.len()],
            unlink: Unlink::Pending,
            crashes: 0,
            losses: 0,
            duplicates: 0,
            applied: BTreeSet::new(),
            seen: Seen::default(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let cfg = &self.config;
        for (t, plan) in self.scenario.txns.iter().enumerate() {
            let t = t as TxnId;
            let c = &state.shards[plan.coordinator as usize];
            // A client's request waits while the coordinator's keys are locked.
            if state.clients[t as usize] == Client::Idle {
                let locked = self.locked(state, plan.coordinator);
                if plan.changes(plan.coordinator).iter().all(|ch| !locked.contains(&ch.key())) {
                    actions.push(Action::Begin(t));
                }
            }
            if let (Some(heard), Some(record)) = (c.table.get(&t), c.records.get(&t)) {
                for p in plan.participants().filter(|p| !heard.contains(p)) {
                    match *record {
                        Record::Preparing if !state.net.contains(&Msg::Prepare { txn: t, to: p }) => {
                            actions.push(Action::SendPrepare(t, p))
                        }
                        Record::Decided(outcome) if !state.net.contains(&Msg::Decision { txn: t, to: p, outcome }) => {
                            actions.push(Action::SendDecision(t, p))
                        }
                        _ => {}
                    }
                }
                if *record == Record::Preparing {
                    actions.push(Action::PrepareTimeout(t));
                }
            }
            for p in plan.participants() {
                if state.shards[p as usize].intents.contains(&t) && !state.net.contains(&Msg::Query { txn: t, from: p })
                {
                    actions.push(Action::Query(t, p));
                }
            }
        }
        if state.unlink == Unlink::Pending {
            let (shard, changes) = &self.scenario.unlink;
            let locked = self.locked(state, *shard);
            if changes.iter().all(|c| !locked.contains(&c.key())) {
                actions.push(Action::Unlink);
            }
        }
        for &m in &state.net {
            actions.push(Action::Deliver(m));
            if state.duplicates < cfg.duplicates_max {
                actions.push(Action::Duplicate(m));
            }
            if state.losses < cfg.losses_max {
                actions.push(Action::Lose(m));
            }
        }
        if state.crashes < cfg.crashes_max {
            for (s, shard) in state.shards.iter().enumerate() {
                if !shard.table.is_empty() {
                    actions.push(Action::Crash(s as ShardId));
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Begin(t) => {
                let plan = &self.scenario.txns[t as usize];
                let c = plan.coordinator;
                if self.can_prepare(&state, t, c) {
                    let shard = &mut state.shards[c as usize];
                    shard.intents.insert(t);
                    shard.records.insert(t, Record::Preparing);
                    shard.table.insert(t, BTreeSet::new());
                    state.clients[t as usize] = Client::Waiting;
                    for p in plan.participants() {
                        state.net.insert(Msg::Prepare { txn: t, to: p });
                    }
                } else {
                    // The coordinator's own checks fail: the client gets the errno, nothing is logged.
                    state.clients[t as usize] = Client::Told(Outcome::Abort);
                }
            }
            Action::Unlink => {
                let (shard, changes) = &self.scenario.unlink;
                let ns = &mut state.shards[*shard as usize].ns;
                let ok = changes.iter().all(|c| ns.valid(c));
                if ok {
                    changes.iter().for_each(|c| ns.apply(c));
                }
                state.unlink = Unlink::Done(ok);
            }
            Action::Deliver(m) => {
                state.net.remove(&m);
                self.deliver(&mut state, m);
            }
            Action::Duplicate(m) => {
                state.duplicates += 1;
                self.deliver(&mut state, m);
            }
            Action::Lose(m) => {
                state.losses += 1;
                state.net.remove(&m);
            }
            Action::SendPrepare(t, p) => {
                state.net.insert(Msg::Prepare { txn: t, to: p });
            }
            Action::SendDecision(t, p) => {
                let c = self.scenario.txns[t as usize].coordinator as usize;
                let outcome = state.shards[c].records[&t].outcome()?;
                state.net.insert(Msg::Decision { txn: t, to: p, outcome });
            }
            Action::PrepareTimeout(t) => {
                state.seen.prepare_timeout = true;
                self.decide(&mut state, t, Outcome::Abort);
            }
            Action::Query(t, p) => {
                state.net.insert(Msg::Query { txn: t, from: p });
            }
            Action::Crash(s) => self.crash(&mut state, s),
        }
        (state != *last).then_some(state)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all()
    }
}
