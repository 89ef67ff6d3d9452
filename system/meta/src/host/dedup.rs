//! [`DedupTable`]: the answers to a shard's recent client requests, part of the replicated state, so a
//! retried request (after a lost answer or a leader change) takes effect at most once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exec::{ReqId, ShardAnswer};
use crate::shard::TxnId;

/// Requests a shard remembers by default (the most recent ones; the oldest answered one goes first).
pub const DEDUP_CAPACITY: usize = 4096;

/// What a shard remembers of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    Answered(ShardAnswer),
    /// A `Begin` whose transaction is not decided yet.
    Pending(TxnId),
}

/// A bounded map `ReqId -> Remembered`, evicting in insertion order. Pending transactions are evicted
/// only when nothing answered is left to evict (a retry of an evicted pending `Begin` would start a
/// second transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupTable {
    capacity: usize,
    /// req -> (insertion number, what is remembered).
    entries: BTreeMap<ReqId, (u64, Remembered)>,
    /// insertion number -> req: the eviction order.
    order: BTreeMap<u64, ReqId>,
    /// Undecided transactions and the requests that began them.
    pending: BTreeMap<TxnId, ReqId>,
    next_insertion: u64,
}

impl DedupTable {
    pub fn new(capacity: usize) -> DedupTable {
        assert!(capacity > 0, "a dedup table must remember at least one request");
        DedupTable {
            capacity,
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_insertion: 0,
        }
    }

    pub fn get(&self, req: ReqId) -> Option<&Remembered> {
        self.entries.get(&req).map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remember a new request (it must not be remembered yet), evicting the oldest if full.
    pub fn insert(&mut self, req: ReqId, what: Remembered) {
        assert!(!self.entries.contains_key(&req), "{req:?} remembered twice");
        if self.entries.len() >= self.capacity {
            self.evict_one();
        }
        if let Remembered::Pending(id) = what {
            let previous = self.pending.insert(id, req);
            assert!(previous.is_none(), "{id:?} pending for two requests");
        }
        let n = self.next_insertion;
        self.next_insertion += 1;
        self.entries.insert(req, (n, what));
        self.order.insert(n, req);
        self.check();
    }

    /// Undecided transactions with the requests that began them, in id order.
    pub fn pending(&self) -> Vec<(TxnId, ReqId)> {
        self.pending.iter().map(|(&id, &req)| (id, req)).collect()
    }

    /// Transaction `id` was decided: its request is answered `answer` from now on. The request, if
    /// one is pending on `id`.
    pub fn resolve(&mut self, id: TxnId, answer: ShardAnswer) -> Option<ReqId> {
        let req = self.pending.remove(&id)?;
        let entry = self.entries.get_mut(&req).expect("a pending request is remembered");
        assert_eq!(entry.1, Remembered::Pending(id));
        entry.1 = Remembered::Answered(answer);
        Some(req)
    }

    fn evict_one(&mut self) {
        let answered =
            self.order.iter().find(|(_, req)| matches!(self.entries[req].1, Remembered::Answered(_))).map(|(&n, _)| n);
        let n = answered.or_else(|| self.order.keys().next().copied()).expect("evicting from an empty table");
        let req = self.order.remove(&n).expect("eviction order entry");
        let (_, what) = self.entries.remove(&req).expect("evicted request remembered");
        if let Remembered::Pending(id) = what {
            self.pending.remove(&id);
        }
    }

    fn check(&self) {
        assert!(self.entries.len() <= self.capacity, "dedup table over capacity");
        assert_eq!(self.entries.len(), self.order.len(), "dedup order out of step");
        assert!(self.pending.len() <= self.entries.len(), "more pending transactions than requests");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    fn req(seq: u64) -> ReqId {
        ReqId { client: 7, seq }
    }

    fn answered(e: Errno) -> Remembered {
        Remembered::Answered(ShardAnswer::Decided(Err(e)))
    }

    #[test]
    fn evicts_oldest_answered_first_and_keeps_pending() {
        let mut t = DedupTable::new(3);
        let id = TxnId { coordinator: 1, seq: 0 };
        t.insert(req(0), Remembered::Pending(id));
        t.insert(req(1), answered(Errno::EIO));
        t.insert(req(2), answered(Errno::EIO));
        t.insert(req(3), answered(Errno::EIO));
        assert!(t.get(req(0)).is_some(), "pending survives while answered ones can go");
        assert!(t.get(req(1)).is_none());
        assert_eq!(t.len(), 3);
        assert_eq!(t.resolve(id, ShardAnswer::Decided(Ok(()))), Some(req(0)));
        assert_eq!(t.get(req(0)), Some(&Remembered::Answered(ShardAnswer::Decided(Ok(())))));
        assert_eq!(t.resolve(id, ShardAnswer::Decided(Ok(()))), None);
        t.insert(req(4), answered(Errno::EIO));
        assert!(t.get(req(0)).is_none(), "resolved requests age like the others");
    }
}
