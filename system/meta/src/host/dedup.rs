//! [`DedupTable`]: the answer to each client's latest request to a shard, part of the replicated state,
//! so a retried request (after a lost answer or a leader change) takes effect at most once, and a stale
//! duplicate of an older request (still in the network after the client moved on) never takes effect.
//!
//! A client (`MetaClient`, one call in flight at a time, a sequence number it never reuses) only ever
//! retries its latest call, so a shard keeps one session per client: the highest `seq` it applied
//! from that client and what it answered. A request below that `seq` is stale and ignored; one equal
//! to it is answered from the session; one above it is applied. Only requests that change state are
//! remembered (reads are re-executed: they are idempotent, and their answers can be large). Sessions
//! are bounded by `capacity` clients per shard, the least recently used answered one evicted first: a
//! stale duplicate from an evicted client older than every other session would be applied again, so
//! the capacity is chosen far above the clients a shard sees within a message's lifetime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exec::{ReqId, ShardAnswer};
use crate::shard::TxnId;

/// Client sessions a shard keeps by default.
pub const DEDUP_CAPACITY: usize = 16_384;

/// What a shard remembers of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    Answered(ShardAnswer),
    /// A `Begin` whose transaction is not decided yet.
    Pending(TxnId),
}

/// One client's latest remembered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    what: Remembered,
    /// When it was last written (the eviction order key).
    used: u64,
}

/// How a request relates to what the shard remembers of its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    /// Newer than anything remembered of the client: apply it.
    New,
    /// The client's latest request: answer what is remembered.
    Latest(&'a Remembered),
    /// Older than the client's latest: a stale duplicate; ignore it.
    Stale,
}

/// Client sessions, bounded; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupTable {
    capacity: usize,
    sessions: BTreeMap<u64, Session>,
    /// used -> client: the eviction order.
    order: BTreeMap<u64, u64>,
    /// Undecided transactions and the requests that began them (kept after their session moved on, so
    /// a decision is still seen).
    pending: BTreeMap<TxnId, ReqId>,
    next_use: u64,
}

impl DedupTable {
    pub fn new(capacity: usize) -> DedupTable {
        assert!(capacity > 0, "a dedup table must remember at least one client");
        DedupTable {
            capacity,
            sessions: BTreeMap::new(),
            order: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_use: 0,
        }
    }

    /// How `req` relates to its client's session.
    pub fn seen(&self, req: ReqId) -> Seen<'_> {
        match self.sessions.get(&req.client) {
            Some(s) if s.seq == req.seq => Seen::Latest(&s.what),
            Some(s) if s.seq > req.seq => Seen::Stale,
            _ => Seen::New,
        }
    }

    /// What is remembered of `req`, if it is its client's latest request.
    pub fn get(&self, req: ReqId) -> Option<&Remembered> {
        match self.seen(req) {
            Seen::Latest(what) => Some(what),
            Seen::New | Seen::Stale => None,
        }
    }

    /// Client sessions kept.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Remember a request newer than its client's session, evicting the least recently used session
    /// if full.
    pub fn insert(&mut self, req: ReqId, what: Remembered) {
        assert_eq!(self.seen(req), Seen::New, "{req:?} is not newer than its client's session");
        if let Some(old) = self.sessions.remove(&req.client) {
            self.order.remove(&old.used);
        } else if self.sessions.len() >= self.capacity {
            self.evict_one();
        }
        if let Remembered::Pending(id) = what {
            let previous = self.pending.insert(id, req);
            assert!(previous.is_none(), "{id:?} pending for two requests");
        }
        let used = self.next_use;
        self.next_use += 1;
        self.sessions.insert(req.client, Session { seq: req.seq, what, used });
        self.order.insert(used, req.client);
        self.check();
    }

    /// Undecided transactions with the requests that began them, in id order.
    pub fn pending(&self) -> Vec<(TxnId, ReqId)> {
        self.pending.iter().map(|(&id, &req)| (id, req)).collect()
    }

    /// Transaction `id` was decided: its request is answered `answer` from now on (if it is still its
    /// client's latest). The request, if one was pending on `id`.
    pub fn resolve(&mut self, id: TxnId, answer: ShardAnswer) -> Option<ReqId> {
        let req = self.pending.remove(&id)?;
        if let Some(session) = self.sessions.get_mut(&req.client)
            && session.seq == req.seq
        {
            assert_eq!(session.what, Remembered::Pending(id));
            session.what = Remembered::Answered(answer);
        }
        Some(req)
    }

    /// Evict the least recently used session whose request is answered (else the least recently used).
    fn evict_one(&mut self) {
        let answered = self
            .order
            .iter()
            .find(|(_, client)| matches!(self.sessions[client].what, Remembered::Answered(_)))
            .map(|(&used, _)| used);
        let used = answered.or_else(|| self.order.keys().next().copied()).expect("evicting from an empty table");
        let client = self.order.remove(&used).expect("eviction order entry");
        self.sessions.remove(&client).expect("evicted session kept");
    }

    fn check(&self) {
        assert!(self.sessions.len() <= self.capacity, "dedup table over capacity");
        assert_eq!(self.sessions.len(), self.order.len(), "dedup order out of step");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    fn req(client: u64, seq: u64) -> ReqId {
        ReqId { client, seq }
    }

    fn answered(e: Errno) -> Remembered {
        Remembered::Answered(ShardAnswer::Decided(Err(e)))
    }

    #[test]
    fn a_client_latest_request_is_remembered_and_older_ones_are_stale() {
        let mut t = DedupTable::new(8);
        assert_eq!(t.seen(req(7, 3)), Seen::New);
        t.insert(req(7, 3), answered(Errno::EEXIST));
        assert_eq!(t.get(req(7, 3)), Some(&answered(Errno::EEXIST)));
        t.insert(req(7, 5), answered(Errno::ENOENT));
        assert_eq!(t.seen(req(7, 3)), Seen::Stale, "a duplicate of an older request is never applied again");
        assert_eq!(t.seen(req(7, 4)), Seen::Stale);
        assert_eq!(t.get(req(7, 5)), Some(&answered(Errno::ENOENT)));
        assert_eq!(t.seen(req(8, 1)), Seen::New, "clients are independent");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn pending_begins_resolve_even_after_the_client_moved_on() {
        let mut t = DedupTable::new(8);
        let (a, b) = (TxnId { coordinator: 1, seq: 0 }, TxnId { coordinator: 1, seq: 1 });
        t.insert(req(7, 1), Remembered::Pending(a));
        assert_eq!(t.resolve(a, ShardAnswer::Decided(Ok(()))), Some(req(7, 1)));
        assert_eq!(t.get(req(7, 1)), Some(&Remembered::Answered(ShardAnswer::Decided(Ok(())))));
        assert_eq!(t.resolve(a, ShardAnswer::Decided(Ok(()))), None);
        t.insert(req(7, 2), Remembered::Pending(b));
        t.insert(req(7, 3), answered(Errno::EIO));
        assert_eq!(t.pending(), vec![(b, req(7, 2))]);
        assert_eq!(t.resolve(b, ShardAnswer::Decided(Ok(()))), Some(req(7, 2)));
        assert_eq!(t.get(req(7, 3)), Some(&answered(Errno::EIO)), "the newer request's answer stays");
    }

    #[test]
    fn evicts_the_least_recently_used_answered_session_first() {
        let mut t = DedupTable::new(3);
        let id = TxnId { coordinator: 1, seq: 0 };
        t.insert(req(1, 1), Remembered::Pending(id));
        t.insert(req(2, 1), answered(Errno::EIO));
        t.insert(req(3, 1), answered(Errno::EIO));
        t.insert(req(2, 2), answered(Errno::EIO));
        t.insert(req(4, 1), answered(Errno::EIO));
        assert!(t.get(req(1, 1)).is_some(), "a pending session survives while answered ones can go");
        assert_eq!(t.seen(req(3, 1)), Seen::New, "client 3 was the least recently used answered session");
        assert!(t.get(req(2, 2)).is_some() && t.get(req(4, 1)).is_some());
        assert_eq!(t.len(), 3);
    }
}
