//! The properties checked on every reachable state.

use std::collections::BTreeMap;

use stateright::Property;

use super::model::TxnModel;
use super::scenario::{Entry, Ino, Key, TxnId};
use super::state::{Client, Msg, Outcome, Record, State, Unlink};

pub const ATOMICITY: &str = "atomicity: no transaction is committed on one shard and aborted on another";
pub const ALL_OR_NOTHING: &str = "all or nothing: a transaction with no intent left applied everywhere or nowhere";
pub const NO_DANGLING: &str = "no dangling entry: every unlocked entry names a live inode";
pub const NO_ORPHAN: &str = "no orphan: with no intent held, every inode's nlink equals the entries naming it";
pub const TRUTHFUL: &str = "truthful answers: committed means logged Commit; failed means applied nowhere";
pub const LIVENESS: &str = "liveness: every transaction is done and every intent resolved";

pub const SOMETIMES_COMMIT: &str = "sometimes: every transaction commits";
pub const SOMETIMES_ABORT: &str = "sometimes: a prepared transaction aborts";
pub const SOMETIMES_CRASH_IN_DOUBT: &str = "sometimes: a coordinator crashes with a committed transaction in doubt";
pub const SOMETIMES_QUERY_IN_DOUBT: &str = "sometimes: a participant queries a committed transaction in doubt";
pub const SOMETIMES_PREPARE_TIMEOUT: &str = "sometimes: a prepare timeout aborts a transaction";
pub const SOMETIMES_PRESUMED_ABORT: &str = "sometimes: a query meets no record and is answered Abort";
pub const SOMETIMES_UNLINK_WINS: &str = "sometimes: unlink(A/a) removes the entry before the rename";

pub fn all() -> Vec<Property<TxnModel>> {
    vec![
        Property::always(ATOMICITY, atomicity),
        Property::always(ALL_OR_NOTHING, all_or_nothing),
        Property::always(NO_DANGLING, no_dangling),
        Property::always(NO_ORPHAN, no_orphan),
        Property::always(TRUTHFUL, truthful),
        Property::eventually(LIVENESS, |m, s: &State| finished(m, s)),
        Property::sometimes(SOMETIMES_COMMIT, |_, s: &State| {
            s.clients.iter().all(|c| *c == Client::Told(Outcome::Commit))
        }),
        Property::sometimes(SOMETIMES_ABORT, |_, s: &State| s.applied.iter().any(|(_, _, o)| *o == Outcome::Abort)),
        Property::sometimes(SOMETIMES_CRASH_IN_DOUBT, |_, s: &State| s.seen.crash_in_doubt),
        Property::sometimes(SOMETIMES_QUERY_IN_DOUBT, query_in_doubt),
        Property::sometimes(SOMETIMES_PREPARE_TIMEOUT, |_, s: &State| s.seen.prepare_timeout),
        Property::sometimes(SOMETIMES_PRESUMED_ABORT, |_, s: &State| s.seen.presumed_abort),
        Property::sometimes(SOMETIMES_UNLINK_WINS, |_, s: &State| {
            s.unlink == Unlink::Done(true) && s.clients[0] == Client::Told(Outcome::Abort)
        }),
    ]
}

/// The coordinator's durable record of `txn`, if any.
fn record(m: &TxnModel, s: &State, txn: TxnId) -> Option<Record> {
    s.shards[m.scenario.txns[txn as usize].coordinator as usize].records.get(&txn).copied()
}

fn holds_intent(s: &State, txn: TxnId) -> bool {
    s.shards.iter().any(|sh| sh.intents.contains(&txn))
}

fn atomicity(_: &TxnModel, s: &State) -> bool {
    let committed = |t: TxnId| s.applied.iter().any(|&(t2, _, o)| t2 == t && o == Outcome::Commit);
    !s.applied.iter().any(|&(t, _, o)| o == Outcome::Abort && committed(t))
}

fn all_or_nothing(m: &TxnModel, s: &State) -> bool {
    m.scenario.txns.iter().enumerate().all(|(t, plan)| {
        let t = t as TxnId;
        if holds_intent(s, t) {
            return true;
        }
        let committed_on = |shard| s.applied.contains(&(t, shard, Outcome::Commit));
        match record(m, s, t).and_then(Record::outcome) {
            Some(Outcome::Commit) => plan.shards().all(committed_on),
            _ => !plan.shards().any(committed_on),
        }
    })
}

fn no_dangling(m: &TxnModel, s: &State) -> bool {
    s.shards.iter().enumerate().all(|(i, shard)| {
        let locked: Vec<Key> = shard
            .intents
            .iter()
            .flat_map(|&t| m.scenario.txns[t as usize].changes(i as u8).iter().map(|c| c.key()))
            .collect();
        shard
            .entries_unlocked(&locked)
            .all(|(_, ino)| s.shards[m.scenario.inode_shard(ino) as usize].ns.inodes.get(&ino).is_some_and(|&n| n >= 1))
    })
}

fn no_orphan(m: &TxnModel, s: &State) -> bool {
    if s.shards.iter().any(|sh| !sh.intents.is_empty()) {
        return true;
    }
    let mut names: BTreeMap<Ino, u8> = BTreeMap::new();
    for shard in &s.shards {
        for &ino in shard.ns.entries.values() {
            *names.entry(ino).or_default() += 1;
        }
    }
    s.shards.iter().enumerate().all(|(i, shard)| {
        shard.ns.inodes.iter().all(|(&ino, &n)| {
            m.scenario.inode_shard(ino) as usize == i && n >= 1 && names.get(&ino).copied().unwrap_or(0) == n
        })
    })
}

fn truthful(m: &TxnModel, s: &State) -> bool {
    s.clients.iter().enumerate().all(|(t, client)| match client {
        Client::Told(Outcome::Commit) => {
            matches!(record(m, s, t as TxnId), Some(Record::Decided(Outcome::Commit) | Record::Done(Outcome::Commit)))
        }
        Client::Told(Outcome::Abort) => !s.applied.iter().any(|&(t2, _, o)| t2 as usize == t && o == Outcome::Commit),
        _ => true,
    })
}

/// Every client answered, every record `Done`, no intent held, the unlink executed.
pub fn finished(m: &TxnModel, s: &State) -> bool {
    s.clients.iter().all(|c| matches!(c, Client::Told(_)))
        && (0..m.scenario.txns.len())
            .all(|t| !matches!(record(m, s, t as TxnId), Some(Record::Preparing | Record::Decided(_))))
        && s.shards.iter().all(|sh| sh.intents.is_empty())
        && s.unlink != Unlink::Pending
}

fn query_in_doubt(m: &TxnModel, s: &State) -> bool {
    s.net.iter().any(|msg| match *msg {
        Msg::Query { txn, from } => {
            record(m, s, txn) == Some(Record::Decided(Outcome::Commit))
                && s.shards[from as usize].intents.contains(&txn)
        }
        _ => false,
    })
}

impl super::state::Shard {
    /// The committed entries whose keys no intent of this shard locks.
    fn entries_unlocked<'a>(&'a self, locked: &'a [Key]) -> impl Iterator<Item = (Entry, Ino)> + 'a {
        self.ns.entries.iter().filter(move |(e, _)| !locked.contains(&Key::Entry(**e))).map(|(&e, &i)| (e, i))
    }
}
