//! A deterministic in-memory cluster of `MultiRaft` hosts: N nodes, many groups, a lossy reordering
//! network carrying one encoded `RaftBatch` per node pair per tick, partitions, crashes with restart
//! from the persisted state (optionally through a real `RaftLogStore` on a `SimDisk`), all driven by
//! one `DetRng`. Checks election safety and state machine safety per group as it goes.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use futures::executor::block_on;
use tessera_env::{DetRng, NodeId, Rng};
use tessera_raft::{
    LogEntry, MultiConfig, MultiRaft, MultiReady, Outbox, PersistedState, RaftBatch, RaftLogStore, RaftRole,
    message_size_bytes,
};
use tessera_sim::{DiskModel, SimDisk, Trace};
use tessera_store::{DeviceIdentity, Store, StoreConfig};

/// A group's state machine on one node: every applied entry by index (term, data).
pub type App = BTreeMap<u64, (u64, Vec<u8>)>;

#[derive(Debug, Default)]
pub struct GroupApp {
    pub app: App,
    pub last: u64,
}

#[derive(Debug)]
pub struct DiskLog {
    pub disk: SimDisk,
    pub log: RaftLogStore<SimDisk>,
    pub saves: u64,
}

#[derive(Debug)]
pub struct Slot {
    pub host: Option<MultiRaft>,
    /// The durable image per group: every persist batch applied in order.
    pub image: BTreeMap<u64, PersistedState>,
    pub apps: BTreeMap<u64, GroupApp>,
    /// Set for nodes that persist through a real log store.
    pub disk_log: Option<DiskLog>,
    /// Groups this node hosts with their bootstrap voters (`[]` for a joiner), for restarts.
    pub hosted: BTreeMap<u64, Vec<NodeId>>,
}

/// (tick, node, group, term, role, commit): the determinism trace.
pub type TraceEvent = (u64, NodeId, u64, u64, RaftRole, u64);

#[derive(Debug)]
pub struct Harness {
    pub rng: DetRng,
    pub config: MultiConfig,
    pub slots: BTreeMap<NodeId, Slot>,
    /// group -> bootstrap replicas ([0] = preferred leader).
    pub placement: BTreeMap<u64, Vec<NodeId>>,
    /// (deliver at, from, to, encoded RaftBatch).
    pub net: Vec<(u64, NodeId, NodeId, Vec<u8>)>,
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub drop_per_mille: u64,
    pub now: u64,
    /// (group, term) -> leader.
    pub leaders: BTreeMap<(u64, u64), NodeId>,
    /// (group, index) -> (term, data) of every entry any replica applied.
    pub applied: BTreeMap<(u64, u64), (u64, Vec<u8>)>,
    pub trace: Vec<TraceEvent>,
    last_seen: BTreeMap<(NodeId, u64), (u64, RaftRole, u64)>,
    /// Envelope statistics: total, messages inside them, the most one node sent one peer in one tick,
    /// the most one node sent in one tick.
    pub envelopes: u64,
    pub messages: u64,
    pub max_envelopes_per_pair_tick: u64,
    pub max_envelopes_per_node_tick: u64,
    pub restarts: u64,
    pub snapshots_applied: u64,
    /// group -> ticks at which a new entry with data was first applied anywhere.
    pub commit_ticks: BTreeMap<u64, Vec<u64>>,
}

pub fn n(i: u64) -> NodeId {
    NodeId(i)
}

impl Harness {
    /// `nodes` nodes; `groups` groups of `replicas` replicas, group g on nodes g, g+1, ... (mod nodes),
    /// so preferred leaders (`replicas[0]`) spread evenly.
    pub fn new(seed: u64, nodes: u64, groups: u64, replicas: u64, config: MultiConfig) -> Harness {
        let mut placement = BTreeMap::new();
        for g in 0..groups {
            placement.insert(g, (0..replicas).map(|k| n(1 + (g + k) % nodes)).collect::<Vec<_>>());
        }
        Harness::with_placement(seed, nodes, placement, config)
    }

    pub fn with_placement(
        seed: u64,
        nodes: u64,
        placement: BTreeMap<u64, Vec<NodeId>>,
        config: MultiConfig,
    ) -> Harness {
        let mut h = Harness {
            rng: DetRng::from_seed(seed),
            config,
            slots: BTreeMap::new(),
            placement,
            net: Vec::new(),
            blocked: BTreeSet::new(),
            drop_per_mille: 0,
            now: 0,
            leaders: BTreeMap::new(),
            applied: BTreeMap::new(),
            trace: Vec::new(),
            last_seen: BTreeMap::new(),
            envelopes: 0,
            messages: 0,
            max_envelopes_per_pair_tick: 0,
            max_envelopes_per_node_tick: 0,
            restarts: 0,
            snapshots_applied: 0,
            commit_ticks: BTreeMap::new(),
        };
        for i in 1..=nodes {
            let id = n(i);
            let hosted: BTreeMap<u64, Vec<NodeId>> =
                h.placement.iter().filter(|(_, r)| r.contains(&id)).map(|(&g, r)| (g, r.clone())).collect();
            let slot = Slot {
                host: Some(MultiRaft::new(id, h.config.clone()).unwrap()),
                image: BTreeMap::new(),
                apps: BTreeMap::new(),
                disk_log: None,
                hosted: BTreeMap::new(),
            };
            h.slots.insert(id, slot);
            for (g, voters) in hosted {
                h.add_group(id, g, &voters);
            }
        }
        h
    }

    /// Hosts `group` on `id` (bootstrap `voters`, `[]` for a replica joining an existing group).
    pub fn add_group(&mut self, id: NodeId, group: u64, voters: &[NodeId]) {
        let rng = self.rng.fork("group");
        let slot = self.slots.get_mut(&id).unwrap();
        slot.host.as_mut().unwrap().add_group(group, voters, None, rng).unwrap();
        slot.hosted.insert(group, voters.to_vec());
        slot.apps.insert(group, GroupApp::default());
    }

    pub fn remove_group(&mut self, id: NodeId, group: u64) {
        let slot = self.slots.get_mut(&id).unwrap();
        assert!(slot.host.as_mut().unwrap().remove_group(group));
        slot.hosted.remove(&group);
        slot.apps.remove(&group);
    }

    /// Makes `id` persist through a `RaftLogStore` on a fresh `SimDisk` (before anything was persisted).
    pub fn use_disk_log(&mut self, id: NodeId, seed: u64) {
        let disk = SimDisk::new(
            format!("raft-{id}"),
            DiskModel::instant(256 << 20),
            DetRng::from_seed(seed),
            Trace::new(false),
        );
        let log = block_on(async {
            let identity = DeviceIdentity { cluster_id: 1, device_id: u128::from(id.0) };
            let store = Store::format(disk.clone(), identity, StoreConfig::default()).await.unwrap();
            RaftLogStore::open(store).await.unwrap()
        });
        self.slots.get_mut(&id).unwrap().disk_log = Some(DiskLog { disk, log, saves: 0 });
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    pub fn live(&self) -> Vec<NodeId> {
        self.slots.iter().filter(|(_, s)| s.host.is_some()).map(|(&id, _)| id).collect()
    }

    pub fn host(&mut self, id: NodeId) -> &mut MultiRaft {
        self.slots.get_mut(&id).unwrap().host.as_mut().expect("node is down")
    }

    pub fn host_ref(&self, id: NodeId) -> Option<&MultiRaft> {
        self.slots[&id].host.as_ref()
    }

    /// The live leader of `group` with the highest term.
    pub fn leader(&self, group: u64) -> Option<NodeId> {
        self.live()
            .into_iter()
            .filter_map(|id| self.host_ref(id).unwrap().status(group))
            .filter(|s| s.role == RaftRole::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id)
    }

    /// Proposes on the group's current leader; true if accepted.
    pub fn propose(&mut self, group: u64, data: Vec<u8>) -> bool {
        match self.leader(group) {
            Some(l) => self.host(l).propose(group, data).is_ok(),
            None => false,
        }
    }

    pub fn crash(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).unwrap();
        slot.host = None;
        if let Some(dl) = slot.disk_log.take() {
            // Power loss: only flushed writes survive; the store recovers, the log store reindexes.
            drop(dl.log);
            dl.disk.crash();
            dl.disk.restart();
            let log =
                block_on(async { RaftLogStore::open(Store::open(dl.disk.clone()).await.unwrap()).await.unwrap() });
            let loaded = block_on(log.load_all()).unwrap();
            for (g, state) in &slot.image {
                let mut expect = state.clone();
                expect.check().unwrap();
                assert_eq!(loaded.get(g), Some(&expect), "{id}: group {g} lost persisted state in the log store");
            }
            assert_eq!(loaded.len(), slot.image.len(), "{id}: groups in the log store");
            slot.disk_log = Some(DiskLog { disk: dl.disk, log, saves: dl.saves });
        }
        self.last_seen.retain(|(node, _), _| *node != id);
    }

    /// Restarts a crashed node from its durable images (from its log store if it has one).
    pub fn restart(&mut self, id: NodeId) {
        let config = self.config.clone();
        let mut rngs: Vec<DetRng> = Vec::new();
        for _ in 0..self.slots[&id].hosted.len() {
            rngs.push(self.rng.fork("group"));
        }
        let slot = self.slots.get_mut(&id).unwrap();
        assert!(slot.host.is_none());
        let images = match &slot.disk_log {
            Some(dl) => block_on(dl.log.load_all()).unwrap(),
            None => slot.image.clone(),
        };
        let mut host = MultiRaft::new(id, config).unwrap();
        for ((g, voters), rng) in slot.hosted.iter().zip(rngs) {
            let persisted = images.get(g).cloned();
            let mut app = GroupApp::default();
            if let Some(snap) = persisted.as_ref().and_then(|p| p.snapshot.clone()) {
                restore(&mut app, snap.index, &snap.data);
            }
            slot.apps.insert(*g, app);
            host.add_group(*g, voters, persisted, rng).unwrap();
        }
        slot.host = Some(host);
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

    /// One tick: tick every live node, deliver due envelopes, drain every node and send its outbox
    /// (each node drains once per tick, so it sends at most one envelope per peer per tick).
    pub fn step(&mut self) {
        self.now += 1;
        for id in self.live() {
            self.host(id).tick();
        }
        self.deliver();
        for id in self.live() {
            self.drain(id);
        }
        self.observe();
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step();
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net).into_iter().partition(|m| m.0 <= now);
        self.net = later;
        for (_, from, to, bytes) in due {
            if self.blocked.contains(&(from, to)) || self.slots[&to].host.is_none() {
                continue;
            }
            let batch: RaftBatch = tessera_proto::decode(&bytes).expect("decode raft batch");
            let _ = self.host(to).step(from, batch);
        }
    }

    /// Handles every ready of `id` in the documented order, then sends its outbox: one envelope per
    /// destination for the whole tick.
    pub fn drain(&mut self, id: NodeId) {
        let mut outbox = Outbox::new(self.config.max_batch_bytes);
        loop {
            let slot = self.slots.get_mut(&id).unwrap();
            let Some(host) = slot.host.as_mut() else { return };
            let Some(rd) = host.ready() else { break };
            self.handle(id, rd, &mut outbox);
        }
        let mut sent = 0;
        let mut per_destination: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (to, batch) in outbox.take() {
            let count = per_destination.entry(to).or_default();
            *count += 1;
            self.max_envelopes_per_pair_tick = self.max_envelopes_per_pair_tick.max(*count);
            let messages = batch.messages.len() as u64;
            assert!(batch.messages.iter().all(|(_, m)| m.from == id.0 && m.to == to.0));
            let estimate: usize = batch.messages.iter().map(|(_, m)| 10 + message_size_bytes(m)).sum();
            let bytes = tessera_proto::encode(&batch);
            assert!(bytes.len() <= estimate + 10, "envelope of {} bytes, estimated {estimate}", bytes.len());
            sent += 1;
            self.envelopes += 1;
            self.messages += messages;
            if self.rng.below(1000) < self.drop_per_mille {
                continue;
            }
            let at = self.now + 1 + self.rng.below(2);
            self.net.push((at, id, to, bytes));
        }
        self.max_envelopes_per_node_tick = self.max_envelopes_per_node_tick.max(sent);
    }

    fn handle(&mut self, id: NodeId, rd: MultiReady, outbox: &mut Outbox) {
        let now = self.now;
        let slot = self.slots.get_mut(&id).unwrap();
        // 1. persist: one save for every group of this ready.
        for (g, batch) in &rd.persist {
            slot.image.entry(*g).or_default().apply(batch);
        }
        if let Some(dl) = slot.disk_log.as_mut()
            && !rd.persist.is_empty()
        {
            block_on(dl.log.save_many(&rd.persist)).unwrap();
            dl.saves += 1;
        }
        // 2. send (at the end of the tick, merged per destination).
        let mut destinations = BTreeSet::new();
        for (to, _) in &rd.outgoing {
            assert!(destinations.insert(*to), "two envelopes to {to} in one ready");
        }
        outbox.extend(rd.outgoing);
        // 3. apply
        for apply in rd.applies {
            let app = slot.apps.get_mut(&apply.group).unwrap();
            if let Some(snap) = &apply.snapshot_to_apply {
                self.snapshots_applied += 1;
                restore(app, snap.index, &snap.data);
            }
            for e in &apply.committed {
                apply_entry(app, &mut self.applied, &mut self.commit_ticks, now, id, apply.group, e);
            }
        }
        // 4. advance
        let host = slot.host.as_mut().unwrap();
        host.advance(rd.token);
        // 5. snapshots for new members
        for g in rd.snapshot_requested {
            let app = &slot.apps[&g];
            let _ = host.compact(g, app.last, tessera_proto::encode(&app.app));
        }
    }

    /// Compacts every group of `id` at its applied index.
    pub fn compact_all(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).unwrap();
        let Some(host) = slot.host.as_mut() else { return };
        for (g, app) in &slot.apps {
            let applied = host.status(*g).unwrap().applied;
            assert_eq!(applied, app.last);
            let _ = host.compact(*g, applied, tessera_proto::encode(&app.app));
        }
    }

    /// Election safety per group, and the determinism trace.
    fn observe(&mut self) {
        for id in self.live() {
            let host = self.slots[&id].host.as_ref().unwrap();
            for g in host.groups() {
                let s = host.status(g).unwrap();
                if s.role == RaftRole::Leader {
                    let prev = *self.leaders.entry((g, s.term)).or_insert(id);
                    assert_eq!(prev, id, "group {g}: two leaders in term {}", s.term);
                }
                let now = (s.term, s.role, s.commit);
                if self.last_seen.get(&(id, g)) != Some(&now) {
                    self.trace.push((self.now, id, g, s.term, s.role, s.commit));
                    self.last_seen.insert((id, g), now);
                }
            }
        }
    }

    /// After healing: every live replica of every group applied everything its leader committed, and
    /// holds every entry any replica ever applied (nothing committed was lost).
    pub fn check_converged(&self) {
        let groups: BTreeSet<u64> = self.applied.keys().map(|(g, _)| *g).collect();
        for g in groups {
            let leader = self.leader(g).unwrap_or_else(|| panic!("group {g} has no leader"));
            let commit = self.host_ref(leader).unwrap().status(g).unwrap().commit;
            for id in self.live() {
                let Some(s) = self.host_ref(id).unwrap().status(g) else { continue };
                assert_eq!((s.commit, s.applied), (commit, commit), "{id} group {g} did not catch up");
                let app = &self.slots[&id].apps[&g].app;
                for ((_, idx), (term, data)) in self.applied.range((g, 0)..=(g, u64::MAX)) {
                    assert_eq!(app.get(idx), Some(&(*term, data.clone())), "{id} group {g} lost entry {idx}");
                }
            }
        }
    }
}

fn restore(app: &mut GroupApp, index: u64, data: &[u8]) {
    app.app = if data.is_empty() { App::new() } else { tessera_proto::decode(data).expect("app snapshot") };
    app.last = index;
    assert!(app.app.keys().all(|&k| k <= index));
}

fn apply_entry(
    app: &mut GroupApp,
    global: &mut BTreeMap<(u64, u64), (u64, Vec<u8>)>,
    commit_ticks: &mut BTreeMap<u64, Vec<u64>>,
    now: u64,
    id: NodeId,
    group: u64,
    e: &LogEntry,
) {
    assert_eq!(e.index, app.last + 1, "{id} group {group} applies {} after {}", e.index, app.last);
    app.last = e.index;
    app.app.insert(e.index, (e.term, e.data.clone()));
    let mut first = false;
    let seen = global.entry((group, e.index)).or_insert_with(|| {
        first = true;
        (e.term, e.data.clone())
    });
    assert_eq!(*seen, (e.term, e.data.clone()), "{id} group {group} applied a different entry at {}", e.index);
    if first && !e.data.is_empty() {
        commit_ticks.entry(group).or_default().push(now);
    }
}
