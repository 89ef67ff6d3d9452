//! A deterministic in-memory cluster harness: N `RaftNode`s, a lossy reordering network, partitions,
//! crashes with restart from the persisted state, all driven by one `DetRng`. Checks election safety,
//! log matching and state machine safety as it goes.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use tessera_env::{DetRng, NodeId, Rng};
use tessera_raft::{
    ConfChangeRequest, EntryKind, LogEntry, PersistBatch, PersistedState, RaftConfig, RaftError, RaftMessage, RaftNode,
    RaftRole, RaftStatus,
};

/// What a replica's state machine holds: every applied entry by index (term, kind, data).
pub type App = BTreeMap<u64, (u64, EntryKind, Vec<u8>)>;

#[derive(Debug)]
pub struct Slot {
    pub node: Option<RaftNode>,
    /// The durable image: every persist batch applied in order.
    pub disk: PersistedState,
    pub app: App,
    pub app_last: u64,
}

#[derive(Debug)]
pub struct Harness {
    pub rng: DetRng,
    pub config: RaftConfig,
    pub bootstrap: Vec<NodeId>,
    pub slots: BTreeMap<NodeId, Slot>,
    /// (deliver at, from, to, encoded message), in send order.
    pub net: Vec<(u64, NodeId, NodeId, Vec<u8>)>,
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub drop_per_mille: u64,
    pub now: u64,
    /// term -> leader (election safety).
    pub leaders: BTreeMap<u64, NodeId>,
    /// index -> (term, data) of every entry any replica applied (state machine safety).
    pub applied: BTreeMap<u64, (u64, Vec<u8>)>,
    /// (time, node, term, role, leader, commit) whenever a status changes: the determinism trace.
    pub trace: Vec<(u64, NodeId, u64, RaftRole, Option<NodeId>, u64)>,
    last_status: BTreeMap<NodeId, RaftStatus>,
    /// Election timeouts drawn, per node, in order.
    pub timeouts: BTreeMap<NodeId, Vec<usize>>,
    pub messages_sent: u64,
    pub snapshots_received: u64,
    pub snapshots_requested: u64,
    pub restarts: u64,
    /// Nodes whose persist batches are also recorded in `recorded` (for a real log store).
    pub record_batches: BTreeSet<NodeId>,
    pub recorded: Vec<(NodeId, PersistBatch)>,
    /// Membership changes as each replica applied them.
    pub conf_changes: Vec<(NodeId, ConfChangeRequest)>,
}

impl Harness {
    pub fn new(seed: u64, n: u64, config: RaftConfig) -> Harness {
        let bootstrap: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut rng = DetRng::from_seed(seed);
        let mut slots = BTreeMap::new();
        for &id in &bootstrap {
            let node = RaftNode::new(id, &bootstrap, config.clone(), None, rng.fork("node")).unwrap();
            slots.insert(id, Slot { node: Some(node), disk: PersistedState::default(), app: App::new(), app_last: 0 });
        }
        Harness {
            rng,
            config,
            bootstrap,
            slots,
            net: Vec::new(),
            blocked: BTreeSet::new(),
            drop_per_mille: 0,
            now: 0,
            leaders: BTreeMap::new(),
            applied: BTreeMap::new(),
            trace: Vec::new(),
            last_status: BTreeMap::new(),
            timeouts: BTreeMap::new(),
            messages_sent: 0,
            snapshots_received: 0,
            snapshots_requested: 0,
            restarts: 0,
            record_batches: BTreeSet::new(),
            recorded: Vec::new(),
            conf_changes: Vec::new(),
        }
    }

    /// Adds a fresh replica that joins an existing group (empty bootstrap configuration).
    pub fn add_joiner(&mut self, id: NodeId) {
        let node = RaftNode::new(id, &[], self.config.clone(), None, self.rng.fork("node")).unwrap();
        self.slots.insert(id, Slot { node: Some(node), disk: PersistedState::default(), app: App::new(), app_last: 0 });
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    pub fn live(&self) -> Vec<NodeId> {
        self.slots.iter().filter(|(_, s)| s.node.is_some()).map(|(&id, _)| id).collect()
    }

    pub fn node(&mut self, id: NodeId) -> &mut RaftNode {
        self.slots.get_mut(&id).unwrap().node.as_mut().expect("node is down")
    }

    pub fn status(&self, id: NodeId) -> Option<RaftStatus> {
        self.slots[&id].node.as_ref().map(|n| n.status())
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.live()
            .into_iter()
            .filter_map(|id| self.status(id))
            .filter(|s| s.role == RaftRole::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id)
    }

    pub fn crash(&mut self, id: NodeId) {
        self.slots.get_mut(&id).unwrap().node = None;
        self.last_status.remove(&id);
    }

    /// Restarts a crashed replica from its durable image; its state machine restarts from the snapshot.
    pub fn restart(&mut self, id: NodeId) {
        let rng = self.rng.fork("node");
        let voters = if self.bootstrap.contains(&id) { self.bootstrap.clone() } else { Vec::new() };
        let slot = self.slots.get_mut(&id).unwrap();
        assert!(slot.node.is_none());
        let node = RaftNode::new(id, &voters, self.config.clone(), Some(slot.disk.clone()), rng).unwrap();
        slot.app = App::new();
        slot.app_last = 0;
        if let Some(snap) = slot.disk.snapshot.clone() {
            restore(slot, snap.index, &snap.data);
        }
        slot.node = Some(node);
        self.restarts += 1;
    }

    pub fn partition(&mut self, side: &[NodeId]) {
        self.blocked.clear();
        for a in self.ids() {
            for b in self.ids() {
                if side.contains(&a) != side.contains(&b) {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Proposes on the current leader; true if accepted.
    pub fn propose(&mut self, data: Vec<u8>) -> bool {
        match self.leader() {
            Some(l) => self.node(l).propose(data).is_ok(),
            None => false,
        }
    }

    pub fn conf_change(&mut self, change: ConfChangeRequest) -> Result<(), RaftError> {
        let l = self.leader().expect("no leader");
        self.node(l).propose_conf_change(change)
    }

    /// One time step: tick every live node, deliver due messages, drain every node's readies.
    pub fn step(&mut self) {
        self.now += 1;
        for id in self.live() {
            self.node(id).tick();
            let t = self.node(id).election_timeout_ticks();
            let seq = self.timeouts.entry(id).or_default();
            if seq.last() != Some(&t) {
                seq.push(t);
            }
        }
        self.deliver();
        self.drain_all();
        self.observe();
    }

    pub fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step();
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net).into_iter().partition(|m| m.0 <= now);
        self.net = later;
        for (_, from, to, bytes) in due {
            if self.blocked.contains(&(from, to)) || self.slots[&to].node.is_none() {
                continue;
            }
            let msg: RaftMessage = tessera_proto::decode(&bytes).expect("decode raft message");
            let _ = self.node(to).step(from, msg);
            self.drain(to);
        }
    }

    pub fn drain_all(&mut self) {
        for id in self.live() {
            self.drain(id);
        }
    }

    /// Handles every ready of `id` in the documented order.
    pub fn drain(&mut self, id: NodeId) {
        loop {
            let slot = self.slots.get_mut(&id).unwrap();
            let Some(node) = slot.node.as_mut() else { return };
            let Some(rd) = node.ready() else { return };
            // 1. persist
            slot.disk.apply(&rd.persist);
            if self.record_batches.contains(&id) && !rd.persist.is_empty() {
                self.recorded.push((id, rd.persist.clone()));
            }
            // 2. send
            for (to, msg) in &rd.messages {
                assert_eq!(msg.from, id.0);
                let bytes = tessera_proto::encode(msg);
                if self.rng.below(1000) < self.drop_per_mille {
                    continue;
                }
                let at = self.now + self.rng.below(3);
                self.net.push((at, id, *to, bytes));
                self.messages_sent += 1;
            }
            // 3. apply
            let slot = self.slots.get_mut(&id).unwrap();
            if let Some(snap) = &rd.snapshot_to_apply {
                self.snapshots_received += 1;
                restore(slot, snap.index, &snap.data);
            }
            for e in &rd.committed {
                apply(slot, &mut self.applied, id, e);
                if let Some(change) = e.conf_change().expect("conf change context decodes") {
                    self.conf_changes.push((id, change));
                }
            }
            // 4. advance
            slot.node.as_mut().unwrap().advance(rd.token);
            // 5. a snapshot for a follower that joined after our latest compaction
            if rd.snapshot_requested {
                self.snapshots_requested += 1;
                let slot = self.slots.get_mut(&id).unwrap();
                let node = slot.node.as_mut().unwrap();
                let applied = node.status().applied;
                let _ = node.compact(applied, tessera_proto::encode(&slot.app));
            }
        }
    }

    /// Election safety and the determinism trace.
    fn observe(&mut self) {
        for id in self.live() {
            let s = self.status(id).unwrap();
            if s.role == RaftRole::Leader {
                let prev = *self.leaders.entry(s.term).or_insert(id);
                assert_eq!(prev, id, "two leaders in term {}", s.term);
            }
            let changed = self
                .last_status
                .get(&id)
                .is_none_or(|p| (p.term, p.role, p.leader, p.commit) != (s.term, s.role, s.leader, s.commit));
            if changed {
                self.trace.push((self.now, id, s.term, s.role, s.leader, s.commit));
                self.last_status.insert(id, s);
            }
        }
    }

    /// Log matching on the durable images of all replicas: same (index, term) implies the same entry
    /// and the same prefix (over the part both still hold).
    pub fn check_log_matching(&self) {
        let logs: Vec<(NodeId, BTreeMap<u64, &LogEntry>)> =
            self.slots.iter().map(|(&id, s)| (id, s.disk.entries.iter().map(|e| (e.index, e)).collect())).collect();
        for (i, (a, la)) in logs.iter().enumerate() {
            for (b, lb) in &logs[i + 1..] {
                let common: Vec<u64> = la.keys().filter(|k| lb.contains_key(k)).copied().collect();
                let mut matched_from = None;
                for &idx in common.iter().rev() {
                    if matched_from.is_none() && la[&idx].term == lb[&idx].term {
                        matched_from = Some(idx);
                    }
                    if matched_from.is_some() {
                        assert_eq!(la[&idx], lb[&idx], "log matching violated at {idx} between {a} and {b}");
                    }
                }
            }
        }
    }

    /// Compacts `id` at its applied index with its state machine as the snapshot.
    pub fn compact(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).unwrap();
        let Some(node) = slot.node.as_mut() else { return };
        let applied = node.status().applied;
        assert_eq!(applied, slot.app_last);
        let data = tessera_proto::encode(&slot.app);
        let _ = node.compact(applied, data);
        self.drain(id);
    }
}

fn restore(slot: &mut Slot, index: u64, data: &[u8]) {
    slot.app = if data.is_empty() { App::new() } else { tessera_proto::decode(data).expect("app snapshot") };
    slot.app_last = index;
    assert!(slot.app.keys().all(|&k| k <= index));
}

fn apply(slot: &mut Slot, global: &mut BTreeMap<u64, (u64, Vec<u8>)>, id: NodeId, e: &LogEntry) {
    assert_eq!(e.index, slot.app_last + 1, "{id} applies {} after {}", e.index, slot.app_last);
    slot.app_last = e.index;
    slot.app.insert(e.index, (e.term, e.kind, e.data.clone()));
    let seen = global.entry(e.index).or_insert_with(|| (e.term, e.data.clone()));
    assert_eq!(*seen, (e.term, e.data.clone()), "{id} applied a different entry at {}", e.index);
}
