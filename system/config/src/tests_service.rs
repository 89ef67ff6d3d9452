//! The config service's state machines stepped directly, without disks or a simulator: three members,
//! a client and node agents exchange messages through an in-memory queue (persistence is instant, so
//! this checks protocol logic; durability under crashes is the simulator's job).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tessera_env::{DetRng, MonoTime, NodeId};
use tessera_raft::RaftConfig;

use crate::JoinRequest;
use crate::agent::NodeAgent;
use crate::client::{ClientError, ConfigClient};
use crate::command::{ConfigCommand, ConfigError};
use crate::member::{ConfigMember, DetectorConfig};
use crate::model::{ClusterParams, DriveInfo, NodeState, PlacementMode, Protection};
use crate::wire::ConfigMessage;

const TICK_MS: u64 = 100;
const CLIENT: NodeId = NodeId(100);

struct Net {
    members: BTreeMap<NodeId, ConfigMember>,
    agents: BTreeMap<NodeId, NodeAgent>,
    client: ConfigClient,
    queue: VecDeque<(NodeId, NodeId, ConfigMessage)>,
    now: MonoTime,
    /// Nodes whose traffic is dropped (crashed or cut off).
    silent: Vec<NodeId>,
    completed: Vec<(u64, Result<u64, ClientError>)>,
}

fn timing() -> DetectorConfig {
    DetectorConfig { heartbeat_interval_ms: 200, suspect_after_ms: 1_000, down_after_ms: 2_000 }
}

impl Net {
    fn new(agents: &[u64]) -> Net {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let params = ClusterParams { cluster_id: 1, shard_count: 16, shard_replication: 3 };
        let members = ids
            .iter()
            .map(|&id| {
                let m = ConfigMember::new(
                    id,
                    &ids,
                    params.clone(),
                    RaftConfig::default(),
                    timing(),
                    None,
                    DetRng::from_seed(id.0),
                )
                .expect("member");
                (id, m)
            })
            .collect();
        let agents = agents.iter().map(|&a| (NodeId(a), NodeAgent::new(ids.to_vec(), 200, a as usize))).collect();
        Net {
            members,
            agents,
            client: ConfigClient::new(CLIENT.0, ids.to_vec(), 1_000, 10),
            queue: VecDeque::new(),
            now: MonoTime::ZERO,
            silent: Vec::new(),
            completed: Vec::new(),
        }
    }

    fn collect(&mut self) {
        for (&id, m) in &mut self.members {
            while let Some(ready) = m.ready() {
                m.on_persisted(ready);
            }
            for (to, msg) in m.take_outbox() {
                self.queue.push_back((id, to, msg));
            }
        }
        for (&id, a) in &mut self.agents {
            for (to, msg) in a.take_outbox() {
                self.queue.push_back((id, to, msg));
            }
        }
        for (to, msg) in self.client.take_outbox() {
            self.queue.push_back((CLIENT, to, msg));
        }
    }

    fn deliver(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if self.silent.contains(&from) || self.silent.contains(&to) {
                continue;
            }
            let now = self.now;
            if let Some(m) = self.members.get_mut(&to) {
                match &msg {
                    ConfigMessage::HeartbeatAck { .. }
                    | ConfigMessage::Config { .. }
                    | ConfigMessage::NotLeader { id: None, .. } => {}
                    _ => m.handle(from, msg.clone(), now),
                }
            }
            if let Some(a) = self.agents.get_mut(&to) {
                a.handle(from, &msg, now);
            }
            if to == CLIENT {
                self.client.handle(from, &msg, now);
            }
            self.collect();
        }
    }

    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now = self.now + Duration::from_millis(TICK_MS);
            let now = self.now;
            for (id, m) in &mut self.members {
                if !self.silent.contains(id) {
                    m.tick(now);
                }
            }
            for (id, a) in &mut self.agents {
                if !self.silent.contains(id) {
                    a.tick(now);
                }
            }
            self.client.tick(now);
            self.collect();
            self.deliver();
            self.completed.extend(self.client.take_completed());
        }
    }

    fn submit(&mut self, cmd: ConfigCommand) -> Result<u64, ClientError> {
        let seq = self.client.submit(cmd, self.now).expect("queue");
        for _ in 0..200 {
            self.run_for(Duration::from_millis(TICK_MS));
            if let Some(i) = self.completed.iter().position(|(s, _)| *s == seq) {
                return self.completed.remove(i).1;
            }
        }
        panic!("request {seq} never completed");
    }

    fn leader(&self) -> Option<NodeId> {
        self.members.iter().find(|(id, m)| m.is_leader() && !self.silent.contains(id)).map(|(id, _)| *id)
    }
}

fn join(id: u64, rack: u32) -> ConfigCommand {
    ConfigCommand::Join(JoinRequest {
        node: NodeId(id),
        address: format!("h{id}:1"),
        rack,
        drives: vec![DriveInfo { capacity_bytes: 1 << 30 }],
        weight: 1,
    })
}

#[test]
fn changes_commit_on_every_member_with_consecutive_epochs() {
    let mut net = Net::new(&[1, 2, 3]);
    net.run_for(Duration::from_secs(3));
    assert!(net.leader().is_some(), "a leader is elected");
    for (i, id) in [1u64, 2, 3].into_iter().enumerate() {
        assert_eq!(net.submit(join(id, i as u32)), Ok(i as u64 + 1));
    }
    let fs = ConfigCommand::CreateFs {
        name: "default".into(),
        protection: Protection::Replicated { copies: 3 },
        placement: PlacementMode::Hash,
    };
    assert_eq!(net.submit(fs.clone()), Ok(4));
    assert_eq!(net.submit(fs), Err(ClientError::Rejected(ConfigError::FsExists("default".into()))));
    net.run_for(Duration::from_secs(1));
    let configs: Vec<_> = net.members.values().map(|m| m.config().clone()).collect();
    assert!(configs.windows(2).all(|w| w[0] == w[1]), "members converge");
    assert_eq!(configs[0].shard_map.shards.len(), 16);
    // Agents learned the config through heartbeats.
    for a in net.agents.values() {
        assert_eq!(a.epoch(), configs[0].epoch);
    }
}

#[test]
fn a_silent_node_becomes_suspect_then_down_and_comes_back_up() {
    let mut net = Net::new(&[1, 2, 3, 4]);
    net.run_for(Duration::from_secs(3));
    for (id, rack) in [(1, 0), (2, 1), (3, 2), (4, 3)] {
        net.submit(join(id, rack)).expect("join");
    }
    net.silent.push(NodeId(4));
    let leader = net.leader().expect("leader");
    let state = |net: &Net| net.members[&leader].config().nodes[&NodeId(4)].state;
    net.run_for(Duration::from_millis(1_500));
    assert_eq!(state(&net), NodeState::Suspect);
    net.run_for(Duration::from_millis(1_500));
    assert_eq!(state(&net), NodeState::Down);
    assert!(net.members[&leader].config().shards_on(NodeId(4)).is_empty(), "replicas moved off the down node");
    net.silent.clear();
    net.run_for(Duration::from_secs(1));
    assert_eq!(state(&net), NodeState::Up);
}

#[test]
fn the_client_follows_a_leader_change_and_a_retry_applies_once() {
    let mut net = Net::new(&[11, 12]);
    net.run_for(Duration::from_secs(3));
    net.submit(join(11, 0)).expect("join");
    let old = net.leader().expect("leader");
    net.silent.push(old);
    let epoch = net.submit(join(12, 1)).expect("join after the leader went silent");
    assert_eq!(epoch, 2);
    assert_ne!(net.leader(), Some(old));
    let changes: Vec<_> = net.members[&net.leader().unwrap()].config().recent_changes.iter().map(|c| c.epoch).collect();
    assert_eq!(changes, vec![1, 2], "no change applied twice");
}

#[test]
fn an_agent_with_a_stale_epoch_fetches_the_config() {
    let mut net = Net::new(&[7, 11, 12]);
    net.run_for(Duration::from_secs(3));
    net.submit(join(11, 0)).expect("join");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.agents[&NodeId(7)].epoch(), 1);
    net.silent.push(NodeId(7));
    net.submit(join(12, 1)).expect("join");
    net.silent.clear();
    // A peer mentions epoch 2: the agent asks at once rather than waiting for its next heartbeat.
    net.agents.get_mut(&NodeId(7)).unwrap().observe_epoch(2);
    net.collect();
    net.deliver();
    assert_eq!(net.agents[&NodeId(7)].epoch(), 2);
}

#[test]
fn a_member_with_inconsistent_detector_timing_does_not_start() {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let params = ClusterParams { cluster_id: 1, shard_count: 16, shard_replication: 3 };
    let bad = [
        DetectorConfig { heartbeat_interval_ms: 0, suspect_after_ms: 1_000, down_after_ms: 2_000 },
        DetectorConfig { heartbeat_interval_ms: 600, suspect_after_ms: 1_000, down_after_ms: 2_000 },
        DetectorConfig { heartbeat_interval_ms: 200, suspect_after_ms: 1_000, down_after_ms: 1_000 },
    ];
    for timing in bad {
        let r = ConfigMember::new(
            NodeId(1),
            &ids,
            params.clone(),
            RaftConfig::default(),
            timing,
            None,
            DetRng::from_seed(1),
        );
        assert!(matches!(r, Err(crate::member::MemberError::InvalidTiming(_))), "{timing:?} accepted");
    }
    let bad_raft = RaftConfig { heartbeat_ticks: 0, ..RaftConfig::default() };
    let r = ConfigMember::new(NodeId(1), &ids, params, bad_raft, timing(), None, DetRng::from_seed(1));
    assert!(matches!(r, Err(crate::member::MemberError::Raft(_))));
}
