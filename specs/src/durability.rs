//! The durability contract of an extent store, as a model.
//!
//! The contract: an extent whose write was acknowledged reads back with exactly the bytes written until
//! its free is acknowledged; after an acknowledged free it is gone. Across a crash, a write or free that
//! was in flight (issued, not acknowledged) may or may not have happened, but nothing else may: an extent
//! that was never acknowledged may appear only with exactly the bytes of an in-flight write, and no
//! extent ever reads back with bytes that no one wrote.
//!
//! Use: call `begin_*` before issuing an operation and `ack_*` when it is acknowledged. At a crash call
//! [`DurabilityModel::check`] with what the recovered store holds; it reports every violation and folds
//! the in-flight outcomes it observed into the model, so checking can go on across many crashes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A token for a write in flight, returned by [`DurabilityModel::begin_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WriteToken(u64);

/// What the recovered store says about one extent when asked to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The read succeeded with these bytes.
    Bytes(Vec<u8>),
    /// The read failed with a typed error (rendered for the report).
    Error(String),
}

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// An acknowledged extent is missing after recovery.
    AckedLost { id: u64 },
    /// An acknowledged extent reads back with different bytes.
    AckedWrongBytes { id: u64, expected_len: usize, got_len: usize },
    /// An acknowledged extent cannot be read (typed error instead of its data).
    AckedUnreadable { id: u64, error: String },
    /// An extent whose free was acknowledged is present again.
    FreedResurrected { id: u64 },
    /// An extent that was never acknowledged is present with bytes no in-flight write carried.
    UnackedGarbage { id: u64, len: usize },
    /// An extent that was never acknowledged is present but unreadable: recovery kept a record of data
    /// that did not survive.
    UnackedUnreadable { id: u64, error: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AckedLost { id } => write!(f, "acknowledged extent {id} lost"),
            Violation::AckedWrongBytes { id, expected_len, got_len } => {
                write!(f, "acknowledged extent {id} reads wrong bytes (expected {expected_len} bytes, got {got_len})")
            }
            Violation::AckedUnreadable { id, error } => write!(f, "acknowledged extent {id} unreadable: {error}"),
            Violation::FreedResurrected { id } => write!(f, "extent {id} present after its free was acknowledged"),
            Violation::UnackedGarbage { id, len } => {
                write!(f, "unacknowledged extent {id} present with {len} bytes that no in-flight write carried")
            }
            Violation::UnackedUnreadable { id, error } => {
                write!(f, "unacknowledged extent {id} present but unreadable: {error}")
            }
        }
    }
}

/// The model of one store's durable state.
#[derive(Debug, Default, Clone)]
pub struct DurabilityModel {
    acked: BTreeMap<u64, Vec<u8>>,
    freed: BTreeSet<u64>,
    writes_in_flight: BTreeMap<WriteToken, Vec<Vec<u8>>>,
    frees_in_flight: BTreeSet<u64>,
    next_token: u64,
}

impl DurabilityModel {
    pub fn new() -> DurabilityModel {
        DurabilityModel::default()
    }

    /// A write (or a group-committed batch) of these payloads is about to be issued.
    pub fn begin_write(&mut self, payloads: Vec<Vec<u8>>) -> WriteToken {
        let token = WriteToken(self.next_token);
        self.next_token += 1;
        self.writes_in_flight.insert(token, payloads);
        token
    }

    /// The write was acknowledged with these extent ids, in payload order.
    pub fn ack_write(&mut self, token: WriteToken, ids: &[u64]) {
        let payloads = self.writes_in_flight.remove(&token).expect("ack of an unknown write token");
        assert_eq!(payloads.len(), ids.len(), "ack names a different number of extents than were written");
        for (id, data) in ids.iter().zip(payloads) {
            assert!(!self.acked.contains_key(id), "store acknowledged extent id {id} twice while it was live");
            self.freed.remove(id);
            self.acked.insert(*id, data);
        }
    }

    /// The write failed with a typed error before being acknowledged: it stays "maybe" until the next
    /// check, exactly like an in-flight write at a crash.
    pub fn fail_write(&mut self, _token: WriteToken) {}

    pub fn begin_free(&mut self, id: u64) {
        assert!(self.acked.contains_key(&id), "model: freeing extent {id} that is not acknowledged");
        self.frees_in_flight.insert(id);
    }

    pub fn ack_free(&mut self, id: u64) {
        assert!(self.frees_in_flight.remove(&id), "model: ack of a free that was not begun");
        self.acked.remove(&id);
        self.freed.insert(id);
    }

    /// Live extents the model is certain of (acknowledged and not being freed).
    pub fn certain(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.acked.iter().filter(|(id, _)| !self.frees_in_flight.contains(id)).map(|(id, d)| (*id, d.as_slice()))
    }

    pub fn acked_count(&self) -> usize {
        self.acked.len()
    }

    /// Judge a recovered store. `present` lists every extent the store holds with what reading it gave.
    /// Afterwards, in-flight operations are resolved by what was observed and the model goes on.
    pub fn check(&mut self, present: BTreeMap<u64, Observed>) -> Vec<Violation> {
        let mut violations = Vec::new();
        for (id, expected) in &self.acked {
            let maybe_freed = self.frees_in_flight.contains(id);
            match present.get(id) {
                None if maybe_freed => {}
                None => violations.push(Violation::AckedLost { id: *id }),
                Some(Observed::Bytes(got)) if got == expected => {}
                Some(Observed::Bytes(got)) => violations.push(Violation::AckedWrongBytes {
                    id: *id,
                    expected_len: expected.len(),
                    got_len: got.len(),
                }),
                Some(Observed::Error(error)) => {
                    violations.push(Violation::AckedUnreadable { id: *id, error: error.clone() })
                }
            }
        }
        let mut newly_durable = Vec::new();
        for (id, observed) in &present {
            if self.acked.contains_key(id) {
                continue;
            }
            if self.freed.contains(id) && !self.could_be_in_flight(observed) {
                violations.push(Violation::FreedResurrected { id: *id });
                continue;
            }
            match observed {
                Observed::Bytes(got) if self.could_be_in_flight(observed) => newly_durable.push((*id, got.clone())),
                Observed::Bytes(got) => violations.push(Violation::UnackedGarbage { id: *id, len: got.len() }),
                Observed::Error(error) => {
                    violations.push(Violation::UnackedUnreadable { id: *id, error: error.clone() })
                }
            }
        }
        // Resolve what was in flight: frees that happened, writes that became durable.
        for id in std::mem::take(&mut self.frees_in_flight) {
            if !present.contains_key(&id) {
                self.acked.remove(&id);
                self.freed.insert(id);
            }
        }
        self.writes_in_flight.clear();
        for (id, data) in newly_durable {
            self.freed.remove(&id);
            self.acked.insert(id, data);
        }
        violations
    }

    fn could_be_in_flight(&self, observed: &Observed) -> bool {
        match observed {
            Observed::Bytes(got) => self.writes_in_flight.values().flatten().any(|p| p == got),
            Observed::Error(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[u8]) -> Observed {
        Observed::Bytes(v.to_vec())
    }

    #[test]
    fn acked_extents_must_survive_with_exact_bytes() {
        let mut m = DurabilityModel::new();
        let t = m.begin_write(vec![b"aa".to_vec(), b"bb".to_vec()]);
        m.ack_write(t, &[1, 2]);
        let v = m.check(BTreeMap::from([(1, bytes(b"aa")), (2, bytes(b"bx"))]));
        assert_eq!(v, vec![Violation::AckedWrongBytes { id: 2, expected_len: 2, got_len: 2 }]);
        let v = m.check(BTreeMap::from([(1, bytes(b"aa"))]));
        assert_eq!(v, vec![Violation::AckedLost { id: 2 }]);
    }

    #[test]
    fn in_flight_write_may_appear_only_with_its_bytes() {
        let mut m = DurabilityModel::new();
        let _t = m.begin_write(vec![b"new".to_vec()]);
        assert!(m.check(BTreeMap::from([(5, bytes(b"new"))])).is_empty());
        // Now durable: losing it later is a violation.
        assert_eq!(m.check(BTreeMap::new()), vec![Violation::AckedLost { id: 5 }]);
        let mut m = DurabilityModel::new();
        let _t = m.begin_write(vec![b"new".to_vec()]);
        assert_eq!(m.check(BTreeMap::from([(5, bytes(b"nex"))])), vec![Violation::UnackedGarbage { id: 5, len: 3 }]);
    }

    #[test]
    fn frees_are_final_once_acked_and_maybe_while_in_flight() {
        let mut m = DurabilityModel::new();
        let t = m.begin_write(vec![b"a".to_vec(), b"b".to_vec()]);
        m.ack_write(t, &[1, 2]);
        m.begin_free(1);
        m.ack_free(1);
        m.begin_free(2);
        assert_eq!(
            m.check(BTreeMap::from([(1, bytes(b"a")), (2, bytes(b"b"))])),
            vec![Violation::FreedResurrected { id: 1 }]
        );
        // The in-flight free of 2 did not happen (2 was present): 2 is still owed.
        assert_eq!(m.check(BTreeMap::new()), vec![Violation::AckedLost { id: 2 }]);
    }

    #[test]
    fn typed_errors_on_acked_or_unacked_extents_are_violations() {
        let mut m = DurabilityModel::new();
        let t = m.begin_write(vec![b"a".to_vec()]);
        m.ack_write(t, &[1]);
        let v = m.check(BTreeMap::from([(1, Observed::Error("corrupt".into())), (9, Observed::Error("x".into()))]));
        assert_eq!(
            v,
            vec![
                Violation::AckedUnreadable { id: 1, error: "corrupt".into() },
                Violation::UnackedUnreadable { id: 9, error: "x".into() }
            ]
        );
    }
}
