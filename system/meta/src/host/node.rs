//! [`MetaHost`]: one node's shard host, driving every shard replica it holds over the node's doors.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tessera_env::{Clock, DetRng, Disk, MonoTime, Net, NetError, NodeId, Rng, WallClock, buggify};
use tessera_raft::{EntryKind, GroupApply, MultiRaft, MultiRaftError, Outbox, RaftLogStore, RaftRole};

use super::command::ShardCommand;
use super::dedup::{Remembered, Seen};
use super::replica::ShardReplica;
use super::route::TxnRouter;
use super::{EpochMap, GroupView, HostConfig, HostEnv, HostError, HostSetup, SharedHostView, SharedShardMap};
use crate::exec::{ReqId, ShardCall};
use crate::shard::{Envelope, TxnMsg};
use crate::wire::MetaMessage;
use tessera_env::{recv_or_sleep, try_recv};

/// Rounds of local envelope delivery (shard to shard on this node) per drive; the rest waits for the
/// next round.
const LOCAL_ROUNDS_MAX: usize = 8;

/// A client request proposed by this node as leader, waiting for its command to apply.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) client: NodeId,
    /// The term it was proposed in: a retry in a later term is proposed again (the first proposal may
    /// have been lost with the old leadership; deduplication makes a second entry harmless).
    pub(super) term: u64,
}

/// One shard replica this node hosts, with its node-local bookkeeping.
#[derive(Debug)]
pub(super) struct Hosted {
    pub(super) replica: ShardReplica,
    pub(super) applied_index: u64,
    pub(super) compacted_index: u64,
    pub(super) waiting: BTreeMap<ReqId, Waiter>,
    /// The term this node leads the group in, once its duties noticed.
    pub(super) leading_term: Option<u64>,
    /// When the leader's transaction duties run next.
    pub(super) next_duty: MonoTime,
    /// The duties have not run yet in the term this node leads in (they resend what the log owes).
    pub(super) first_duty_of_term: bool,
    /// Since when the group has had no known leader.
    pub(super) leaderless_since: Option<MonoTime>,
}

/// One node's metadata shard host.
///
/// # Call order
/// [`MetaHost::open`] once per boot (it loads every group's persisted Raft state), then
/// [`MetaHost::run`] until the node stops. Inside `run`, each round: receive one message (or time out
/// at the next tick) and drain up to `recv_batch_max` more; on a tick, tick every group and run the
/// timers (map refresh and reconcile, leader balancing, leaders' transaction duties); then loop
/// `MultiRaft::ready` -> persist (`RaftLogStore::save_many`) -> queue messages -> apply -> `advance` ->
/// compact; then send, and publish the [`HostView`].
pub struct MetaHost<C: Clock, W: WallClock, N: Net, D: Disk> {
    pub(super) id: NodeId,
    pub(super) clock: C,
    pub(super) wall: W,
    pub(super) net: N,
    pub(super) rng: DetRng,
    pub(super) config: HostConfig,
    pub(super) setup: HostSetup,
    pub(super) log: RaftLogStore<D>,
    pub(super) multi: MultiRaft,
    pub(super) shards: BTreeMap<u16, Hosted>,
    pub(super) maps: SharedShardMap,
    pub(super) map: EpochMap,
    pub(super) view: SharedHostView,
    pub(super) router: TxnRouter,
    /// Messages other than Raft traffic to send after this round.
    pub(super) outbox: Vec<(NodeId, MetaMessage)>,
    pub(super) raft_out: Outbox,
    /// Envelopes for shards this node leads, delivered without the network.
    pub(super) local: VecDeque<Envelope>,
    /// Waiters over all shards (bounded by `waiting_requests_max`).
    pub(super) waiting_total: usize,
    pub(super) next_reconcile: MonoTime,
    pub(super) next_balance: MonoTime,
}

impl<C: Clock, W: WallClock, N: Net, D: Disk> std::fmt::Debug for MetaHost<C, W, N, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaHost")
            .field("id", &self.id)
            .field("epoch", &self.map.epoch)
            .field("multi", &self.multi)
            .finish_non_exhaustive()
    }
}

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl<C: Clock, W: WallClock, N: Net, D: Disk> MetaHost<C, W, N, D> {
    /// Opens the host on the node's Raft log store: every group the current shard map gives this node,
    /// and every group with persisted state (a replica the map dropped is removed again once its
    /// group has moved on), restarts from what the store holds.
    pub async fn open(
        env: HostEnv<C, W, N>,
        config: HostConfig,
        setup: HostSetup,
        log: RaftLogStore<D>,
        maps: SharedShardMap,
        view: SharedHostView,
    ) -> Result<MetaHost<C, W, N, D>, HostError> {
        let HostEnv { id, clock, wall, net, rng } = env;
        let multi = MultiRaft::new(id, config.multi.clone())?;
        let map = maps.lock().expect("shard map lock").clone();
        let now = clock.now();
        let mut persisted = log.load_all().await?;
        let mut host = MetaHost {
            id,
            clock,
            wall,
            net,
            rng,
            config,
            setup,
            log,
            multi,
            shards: BTreeMap::new(),
            maps,
            map,
            view,
            router: TxnRouter::default(),
            outbox: Vec::new(),
            raft_out: Outbox::new(tessera_raft::DEFAULT_MAX_BATCH_BYTES),
            local: VecDeque::new(),
            waiting_total: 0,
            next_reconcile: now,
            next_balance: now,
        };
        host.raft_out = Outbox::new(host.config.multi.max_batch_bytes);
        let shard_count = host.map.map.shards.len();
        let mut wanted: Vec<u16> = host.shards_listing_me();
        wanted.extend(persisted.keys().filter(|&&g| g < shard_count as u64).map(|&g| g as u16));
        wanted.sort_unstable();
        wanted.dedup();
        for shard in wanted {
            let state = persisted.remove(&u64::from(shard));
            host.add_group(shard, state, now)?;
        }
        host.publish();
        Ok(host)
    }

    /// Runs until the network closes or the drive fails.
    pub async fn run(mut self) -> Result<(), HostError> {
        let tick = ms(self.config.tick_interval_ms);
        let mut next_tick = self.clock.now() + tick;
        loop {
            let wait = next_tick.saturating_since(self.clock.now());
            let mut event = recv_or_sleep(&self.net, &self.clock, wait).await;
            let mut received = 0;
            while let Some(result) = event {
                match result {
                    Ok((from, bytes)) => self.on_bytes(from, &bytes),
                    Err(NetError::Closed) => return Err(HostError::NetClosed),
                    Err(_) => {}
                }
                received += 1;
                event = if received < self.config.recv_batch_max { try_recv(&self.net) } else { None };
            }
            let now = self.clock.now();
            if now >= next_tick {
                self.on_tick(now).await?;
                next_tick = now + tick;
                self.publish();
            }
            self.drive().await?;
            self.send_all().await;
        }
    }

    /// The shards whose replicas the current map lists this node for.
    pub(super) fn shards_listing_me(&self) -> Vec<u16> {
        let me = self.id;
        let listed = |(_, r): &(usize, &tessera_config::placement::ShardReplicas)| r.replicas.contains(&me);
        self.map.map.shards.iter().enumerate().filter(listed).map(|(s, _)| s as u16).collect()
    }

    /// Starts hosting `shard`: from its persisted state, as a bootstrap voter of the genesis map, or
    /// empty as a joiner (it catches up from the leader's snapshot).
    pub(super) fn add_group(
        &mut self,
        shard: u16,
        persisted: Option<tessera_raft::PersistedState>,
        now: MonoTime,
    ) -> Result<(), HostError> {
        let genesis = self.setup.genesis.shards.get(usize::from(shard)).map_or(&[][..], |r| &r.replicas[..]);
        let voters: Vec<NodeId> = if genesis.contains(&self.id) { genesis.to_vec() } else { Vec::new() };
        let snapshot = persisted.as_ref().and_then(|p| p.snapshot.as_ref());
        let (replica, applied_index) = match snapshot {
            Some(s) => (ShardReplica::from_snapshot(&s.data).map_err(HostError::Snapshot)?, s.index),
            None => (self.initial_replica(shard), 0),
        };
        let rng = self.rng.fork(&format!("group:{shard}"));
        self.multi.add_group(u64::from(shard), &voters, persisted, rng)?;
        let hosted = Hosted {
            replica,
            applied_index,
            compacted_index: applied_index,
            waiting: BTreeMap::new(),
            leading_term: None,
            next_duty: now,
            first_duty_of_term: false,
            leaderless_since: None,
        };
        self.shards.insert(shard, hosted);
        Ok(())
    }

    /// The state a shard's log starts from (every bootstrap voter builds the same one).
    fn initial_replica(&self, shard: u16) -> ShardReplica {
        let root = self.setup.roots.get(&shard).copied();
        let shard_count = u16::try_from(self.setup.genesis.shards.len()).expect("at most 65536 shards");
        let state = crate::shard::ShardState::new(shard, shard_count, root)
            .with_split_threshold(self.setup.split_threshold_entries);
        ShardReplica::with_capacity(state, self.config.dedup_capacity)
    }

    pub(super) fn remove_group(&mut self, shard: u16) {
        if let Some(hosted) = self.shards.remove(&shard) {
            self.waiting_total -= hosted.waiting.len();
        }
        self.multi.remove_group(u64::from(shard));
    }

    fn on_bytes(&mut self, from: NodeId, bytes: &[u8]) {
        // Undecodable bytes are dropped: the network may carry anything.
        let Ok(message) = MetaMessage::decode(bytes) else { return };
        match message {
            MetaMessage::Raft(batch) => {
                // Refusals (unknown group, stale peer) are harmless to drop: Raft retries.
                let _ = self.multi.step(from, batch);
            }
            MetaMessage::Txn(envelope) => {
                self.router.heard(envelope.from, from);
                self.deliver(envelope);
            }
            MetaMessage::Request { req, shard, epoch: _, call } => self.on_request(from, req, shard, call),
            MetaMessage::Response { .. }
            | MetaMessage::NotLeader { .. }
            | MetaMessage::Busy { .. }
            | MetaMessage::Stale { .. } => {}
        }
    }

    /// The leader of `shard`, if this node hosts it and knows.
    pub(super) fn leads(&self, shard: u16) -> bool {
        self.multi.status(u64::from(shard)).is_some_and(|s| s.role == RaftRole::Leader)
    }

    /// The shard's clock on this node: the wall clock, never behind what the shard applied.
    pub(super) fn now_ns(&self, shard: u16) -> u64 {
        let applied = self.shards.get(&shard).map_or(0, |h| h.replica.now_ns());
        self.wall.unix_time_ns().max(applied)
    }

    /// An envelope for a shard: logged if this node leads it, dropped otherwise (the sender retries).
    fn deliver(&mut self, envelope: Envelope) {
        let shard = envelope.to;
        if !self.leads(shard) {
            return;
        }
        if let TxnMsg::Prepare { id, .. } = envelope.msg
            && envelope.from != shard
            && buggify!("txn.refuse_prepare")
        {
            // Fault hook: refuse as a prepare whose key is locked would, logging nothing; the coordinator
            // aborts (EAGAIN) and the client plans again. Only a transaction this shard has neither
            // prepared nor resolved: a vote once given is never taken back.
            let state = self.shards[&shard].replica.state();
            if state.intent(id).is_none() && state.tombstone(id).is_none() {
                let errno = crate::Errno::EAGAIN;
                self.route(Envelope { from: shard, to: envelope.from, msg: TxnMsg::Refused { id, errno } });
                return;
            }
        }
        let command = ShardCommand::Txn { envelope, now_ns: self.now_ns(shard) };
        let _ = self.multi.propose(u64::from(shard), command.encode());
    }

    fn on_request(&mut self, from: NodeId, req: ReqId, shard: u16, call: ShardCall) {
        let Some(status) = self.multi.status(u64::from(shard)) else {
            let leader = self.map.map.shards.get(usize::from(shard)).and_then(|r| r.replicas.first().copied());
            let leader = leader.filter(|&l| l != self.id);
            self.outbox.push((from, MetaMessage::NotLeader { req, shard, leader, epoch: self.map.epoch }));
            return;
        };
        if status.role != RaftRole::Leader {
            let leader = status.leader.filter(|&l| l != self.id);
            self.outbox.push((from, MetaMessage::NotLeader { req, shard, leader, epoch: self.map.epoch }));
            return;
        }
        let hosted = self.shards.get_mut(&shard).expect("a hosted group has a replica");
        match hosted.replica.seen(req) {
            Seen::Latest(Remembered::Answered(answer)) => {
                self.outbox.push((from, MetaMessage::Response { req, answer: answer.clone() }));
                return;
            }
            Seen::Latest(Remembered::Pending(_)) => {
                if hosted.waiting.insert(req, Waiter { client: from, term: status.term }).is_none() {
                    self.waiting_total += 1;
                }
                return;
            }
            // A duplicate of a request its client has moved on from (it ignores this answer), or a
            // client restarted under an old id (it must learn why it is never served).
            Seen::Stale => {
                self.outbox.push((from, MetaMessage::Stale { req }));
                return;
            }
            Seen::New => {}
        }
        if let Some(w) = hosted.waiting.get_mut(&req)
            && w.term == status.term
        {
            w.client = from;
            return;
        }
        if self.waiting_total >= self.config.waiting_requests_max && !hosted.waiting.contains_key(&req) {
            self.outbox.push((from, MetaMessage::Busy { req }));
            return;
        }
        let now_ns = self.now_ns(shard);
        let command = match call {
            ShardCall::Apply { op } => ShardCommand::Apply { req, op, now_ns },
            ShardCall::Read { keys } => ShardCommand::Read { req, keys },
            ShardCall::Begin { plan } => ShardCommand::Begin { req, plan, now_ns },
        };
        match self.multi.propose(u64::from(shard), command.encode()) {
            Ok(()) => {
                let hosted = self.shards.get_mut(&shard).expect("hosted");
                if hosted.waiting.insert(req, Waiter { client: from, term: status.term }).is_none() {
                    self.waiting_total += 1;
                }
            }
            Err(MultiRaftError::Raft { error: tessera_raft::RaftError::NotLeader { leader_hint }, .. }) => {
                let leader = leader_hint.filter(|&l| l != self.id);
                self.outbox.push((from, MetaMessage::NotLeader { req, shard, leader, epoch: self.map.epoch }));
            }
            Err(_) => self.outbox.push((from, MetaMessage::Busy { req })),
        }
    }

    /// The ready loop: persist, queue messages, apply, advance, compact; then deliver envelopes between
    /// shards this node leads, and again.
    async fn drive(&mut self) -> Result<(), HostError> {
        for _ in 0..LOCAL_ROUNDS_MAX {
            while let Some(ready) = self.multi.ready() {
                self.log.save_many(&ready.persist).await?;
                self.raft_out.extend(ready.outgoing);
                for group in ready.applies {
                    self.apply_group(group);
                }
                self.multi.advance(ready.token);
                self.compact(&ready.snapshot_requested);
            }
            if self.local.is_empty() {
                break;
            }
            for envelope in std::mem::take(&mut self.local) {
                self.deliver(envelope);
            }
        }
        Ok(())
    }

    fn apply_group(&mut self, apply: GroupApply) {
        let shard = u16::try_from(apply.group).expect("group ids are shard ids");
        let leader = self.leads(shard);
        let hosted = self.shards.get_mut(&shard).expect("a group with work is hosted");
        if let Some(snapshot) = &apply.snapshot_to_apply {
            hosted.replica = ShardReplica::from_snapshot(&snapshot.data).expect("a shard snapshot decodes");
            assert_eq!(hosted.replica.shard(), shard, "snapshot of another shard");
            hosted.applied_index = snapshot.index;
            hosted.compacted_index = snapshot.index;
        }
        let mut send = Vec::new();
        for entry in &apply.committed {
            assert!(entry.index > hosted.applied_index, "entry {} applied twice", entry.index);
            hosted.applied_index = entry.index;
            if entry.kind != EntryKind::Normal || entry.data.is_empty() {
                continue;
            }
            let command = ShardCommand::decode(&entry.data).expect("a committed command decodes");
            let out = hosted.replica.apply(&command);
            for (req, answer) in out.answers {
                if let Some(waiter) = hosted.waiting.remove(&req) {
                    self.waiting_total -= 1;
                    self.outbox.push((waiter.client, MetaMessage::Response { req, answer }));
                }
            }
            if leader {
                send.extend(out.send);
            }
        }
        for envelope in send {
            self.route(envelope);
        }
    }

    /// Send an envelope towards the leader of its destination shard.
    pub(super) fn route(&mut self, envelope: Envelope) {
        if buggify!("txn.drop_message") {
            // Fault hook: lost on the way; the two-phase commit re-sends what it owes on its timers.
            return;
        }
        let to = envelope.to;
        let known = self.multi.status(u64::from(to)).and_then(|s| s.leader);
        let target = match known {
            Some(node) => Some(node),
            None => self.router.target(to, &self.map.map),
        };
        match target {
            Some(node) if node == self.id => self.local.push_back(envelope),
            Some(node) => self.outbox.push((node, MetaMessage::Txn(envelope))),
            None => {}
        }
    }

    fn compact(&mut self, requested: &[u64]) {
        let every = self.config.compact_every_entries;
        for (&shard, hosted) in &mut self.shards {
            let due = requested.contains(&u64::from(shard)) || hosted.applied_index >= hosted.compacted_index + every;
            // Fault hook: an early snapshot (lagging followers then catch up from it).
            let early = !due && hosted.applied_index > hosted.compacted_index && buggify!("meta.compact_early", 1_000);
            if !due && !early {
                continue;
            }
            let snapshot = hosted.replica.snapshot();
            if self.multi.compact(u64::from(shard), hosted.applied_index, snapshot).is_ok() {
                hosted.compacted_index = hosted.applied_index;
            }
        }
    }

    async fn send_all(&mut self) {
        for (to, batch) in self.raft_out.take() {
            // Loss is normal (Net is unreliable); Raft and every client retry on their own timers.
            let _ = self.net.send(to, MetaMessage::Raft(batch).encode()).await;
        }
        for (to, message) in std::mem::take(&mut self.outbox) {
            let _ = self.net.send(to, message.encode()).await;
        }
    }

    pub(super) fn publish(&self) {
        let groups = self
            .shards
            .iter()
            .filter_map(|(&shard, h)| {
                let status = self.multi.status(u64::from(shard))?;
                Some((shard, GroupView { status, inodes: h.replica.state().inode_count() }))
            })
            .collect();
        let mut view = self.view.lock().expect("host view lock");
        view.epoch = self.map.epoch;
        view.groups = groups;
        if view.capture_states {
            view.states = self.shards.iter().map(|(&shard, h)| (shard, h.replica.state().clone())).collect();
        }
    }
}
