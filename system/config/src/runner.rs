//! Drives the config service's state machines on a node's environment: network, clock and the Raft
//! log store on the node's drive.
//!
//! [`ConfigNode::run`] is the node's config loop: it receives messages, ticks, persists Raft state
//! before sending what depends on it, and publishes a [`ConfigView`] for the rest of the node (and for
//! simulation checkers). [`submit`] runs a [`ConfigClient`] request to completion on a client's own
//! network endpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_env::{Clock, Disk, MonoTime, Net, NetError, NodeId, recv_or_sleep};
use tessera_raft::{RaftLogError, RaftLogStore, RaftStatus};

use crate::agent::NodeAgent;
use crate::client::{ClientError, ConfigClient};
use crate::command::ConfigCommand;
use crate::member::{CONFIG_GROUP, ConfigMember};
use crate::model::ClusterConfig;
use crate::wire::ConfigMessage;

/// What a node's config loop publishes after every step.
#[derive(Clone, Debug, Default)]
pub struct ConfigView {
    /// The config this node's agent caches (any node).
    pub cached: Option<Arc<ClusterConfig>>,
    /// On config members: Raft status and the applied config.
    pub member_status: Option<RaftStatus>,
    pub member_config: Option<Arc<ClusterConfig>>,
}

/// Shared, read-mostly view of a node's config state.
pub type SharedView = Arc<Mutex<ConfigView>>;

#[derive(Debug, thiserror::Error)]
pub enum ConfigNodeError {
    #[error("raft log store failed: {0}")]
    Log(#[from] RaftLogError),
    #[error("network endpoint closed")]
    NetClosed,
}

/// One node's config loop.
pub struct ConfigNode<C: Clock, N: Net, D: Disk> {
    id: NodeId,
    clock: C,
    net: N,
    tick: Duration,
    member: Option<(ConfigMember, RaftLogStore<D>)>,
    agent: NodeAgent,
    view: SharedView,
    replies: Vec<(NodeId, ConfigMessage)>,
}

impl<C: Clock, N: Net, D: Disk> std::fmt::Debug for ConfigNode<C, N, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigNode").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<C: Clock, N: Net, D: Disk> ConfigNode<C, N, D> {
    /// `member`: on config members, the member and the Raft log store it persists to.
    pub fn new(
        id: NodeId,
        clock: C,
        net: N,
        tick: Duration,
        member: Option<(ConfigMember, RaftLogStore<D>)>,
        agent: NodeAgent,
        view: SharedView,
    ) -> ConfigNode<C, N, D> {
        ConfigNode { id, clock, net, tick, member, agent, view, replies: Vec::new() }
    }

    /// Runs until the network closes or the drive fails (a failed persist is fatal: the node stops
    /// rather than acknowledge what it could not make durable).
    pub async fn run(mut self) -> Result<(), ConfigNodeError> {
        let mut next_tick = self.clock.now() + self.tick;
        loop {
            let wait = next_tick.saturating_since(self.clock.now());
            let event = recv_or_sleep(&self.net, &self.clock, wait).await;
            let now = self.clock.now();
            match event {
                Some(Ok((from, bytes))) => {
                    // Undecodable bytes are dropped: the network may carry anything.
                    if let Ok(msg) = ConfigMessage::decode(&bytes) {
                        self.route(from, msg, now);
                    }
                }
                Some(Err(NetError::Closed)) => return Err(ConfigNodeError::NetClosed),
                Some(Err(_)) | None => {}
            }
            if now >= next_tick {
                if let Some((member, _)) = &mut self.member {
                    member.tick(now);
                }
                self.agent.tick(now);
                next_tick = now + self.tick;
            }
            if let Some((member, log)) = &mut self.member {
                while let Some(ready) = member.ready() {
                    log.save(CONFIG_GROUP, &ready.persist).await?;
                    member.on_persisted(ready);
                }
            }
            self.send_all().await;
            self.publish();
        }
    }

    fn route(&mut self, from: NodeId, msg: ConfigMessage, now: MonoTime) {
        match (&msg, &mut self.member) {
            (
                ConfigMessage::Raft(_)
                | ConfigMessage::Request { .. }
                | ConfigMessage::Heartbeat { .. }
                | ConfigMessage::GetConfig { .. },
                Some((member, _)),
            ) => member.handle(from, msg, now),
            (ConfigMessage::Request { id, .. }, None) => {
                self.replies.push((from, ConfigMessage::NotLeader { id: Some(*id), leader: self.agent.leader() }));
            }
            _ => self.agent.handle(from, &msg, now),
        }
    }

    async fn send_all(&mut self) {
        let mut out = std::mem::take(&mut self.replies);
        if let Some((member, _)) = &mut self.member {
            out.extend(member.take_outbox());
        }
        out.extend(self.agent.take_outbox());
        for (to, msg) in out {
            // Loss is normal (Net is unreliable); every sender here retries on its own timer.
            let _ = self.net.send(to, msg.encode()).await;
        }
    }

    fn publish(&mut self) {
        let mut view = self.view.lock().expect("config view lock");
        if let Some(c) = self.agent.config()
            && view.cached.as_ref().is_none_or(|v| v.epoch != c.epoch)
        {
            view.cached = Some(Arc::new(c.clone()));
        }
        if let Some((member, _)) = &self.member {
            view.member_status = Some(member.status());
            let c = member.config();
            if view.member_config.as_ref().is_none_or(|v| v.epoch != c.epoch) {
                view.member_config = Some(Arc::new(c.clone()));
            }
        }
    }
}

/// Submit `command` through `client` and wait for its outcome, driving the client on `net` and `clock`.
/// Returns the request's sequence number (its [`crate::RequestId`] is `(client id, seq)`) and the
/// outcome: `Ok(epoch)` of the applied change. Every message that is not for the client is dropped, so
/// give the client its own endpoint.
pub async fn submit<C: Clock, N: Net>(
    client: &mut ConfigClient,
    clock: &C,
    net: &N,
    command: ConfigCommand,
    poll: Duration,
) -> (u64, Result<u64, ClientError>) {
    let seq = match client.submit(command, clock.now()) {
        Ok(seq) => seq,
        Err(e) => return (0, Err(e)),
    };
    loop {
        for (to, msg) in client.take_outbox() {
            let _ = net.send(to, msg.encode()).await;
        }
        if let Some((_, result)) = client.take_completed().into_iter().find(|(s, _)| *s == seq) {
            return (seq, result);
        }
        let event = recv_or_sleep(net, clock, poll).await;
        let now = clock.now();
        if let Some(Ok((from, bytes))) = event
            && let Ok(msg) = ConfigMessage::decode(&bytes)
        {
            client.handle(from, &msg, now);
        }
        client.tick(now);
    }
}
