//! The config scenario's clients: each submits changes one at a time and records what it saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_config::{
    ClientError, ConfigClient, ConfigCommand, DriveInfo, JoinRequest, PlacementMode, Protection, RequestId, submit,
};
use tessera_env::{Clock, DetRng, MonoTime, NodeId, Rng};
use tessera_specs::config_history::{OpRecord, Outcome};

use crate::env::SimClock;
use crate::net::SimNet;

pub type History = Arc<Mutex<Vec<OpRecord>>>;

/// Per-attempt timeout and attempts of a client request.
const ATTEMPT_TIMEOUT_MS: u64 = 1_000;
const ATTEMPTS_MAX: u32 = 6;

pub fn join_request(node: NodeId, rack: u32) -> JoinRequest {
    JoinRequest {
        node,
        address: format!("10.{rack}.{}.{}:7100", node.0 / 256, node.0 % 256),
        rack,
        drives: vec![DriveInfo { capacity_bytes: 4 << 40 }],
        weight: 1,
    }
}

/// One client: its endpoint, its request state and the shared history.
#[derive(Debug)]
pub struct ScenarioClient {
    pub id: NodeId,
    client: ConfigClient,
    net: SimNet,
    history: History,
    rng: DetRng,
    racks: u32,
    fake_nodes: Vec<NodeId>,
    next_fake: u64,
}

impl ScenarioClient {
    pub fn new(id: NodeId, members: Vec<NodeId>, net: SimNet, history: History, rng: DetRng, racks: u32) -> Self {
        let client = ConfigClient::new(id.0, members, ATTEMPT_TIMEOUT_MS, ATTEMPTS_MAX);
        ScenarioClient {
            id,
            client,
            net,
            history,
            rng,
            racks,
            fake_nodes: Vec::new(),
            next_fake: 500 + id.0 % 10 * 100,
        }
    }

    /// Submit one change and record it.
    pub async fn op(&mut self, command: ConfigCommand) -> Outcome {
        let summary = tessera_config::command::summary(&command);
        let invoke_ns = SimClock.now().as_nanos();
        let (seq, result) = submit(&mut self.client, &SimClock, &self.net, command, Duration::from_millis(20)).await;
        let complete_ns = SimClock.now().as_nanos();
        let outcome = match result {
            Ok(epoch) => Outcome::Applied(epoch),
            Err(ClientError::Rejected(e)) => Outcome::Refused(e.to_string()),
            Err(ClientError::Unavailable { .. } | ClientError::QueueFull) => Outcome::Unknown,
        };
        let request = RequestId { client: self.id.0, seq };
        self.history.lock().expect("history").push(OpRecord {
            request,
            invoke_ns,
            complete_ns,
            outcome: outcome.clone(),
            summary,
        });
        outcome
    }

    /// Submit until the change is applied or refused (bounded); `true` if applied or already there.
    pub async fn op_until_answered(&mut self, command: ConfigCommand, tries: u32) -> Result<(), String> {
        for _ in 0..tries {
            match self.op(command.clone()).await {
                Outcome::Applied(_) => return Ok(()),
                // A retry after an unanswered attempt that did apply is refused as a duplicate.
                Outcome::Refused(e) if e.contains("already") => return Ok(()),
                Outcome::Refused(e) => return Err(e),
                Outcome::Unknown => {}
            }
        }
        Err(format!("no answer after {tries} submissions"))
    }

    /// Random changes until `until` (virtual time).
    pub async fn random_ops(&mut self, until: MonoTime) {
        while SimClock.now() < until {
            let command = self.random_command();
            self.op(command).await;
            let pause = Duration::from_millis(self.rng.range_inclusive(10, 400));
            SimClock.sleep(pause).await;
        }
    }

    /// Random changes for `duration`.
    pub async fn ops_for(&mut self, duration: Duration) {
        self.random_ops(SimClock.now() + duration).await;
    }

    fn random_command(&mut self) -> ConfigCommand {
        let fs = format!("fs{}", self.rng.below(8));
        match self.rng.below(100) {
            0..=34 => {
                let protection = match self.rng.below(10) {
                    0..=6 => Protection::Replicated { copies: 3 },
                    7 | 8 => Protection::ErasureCoded { data: 4, parity: 2 },
                    _ => Protection::ErasureCoded { data: 3, parity: 2 },
                };
                ConfigCommand::CreateFs { name: fs, protection, placement: PlacementMode::Hash }
            }
            35..=59 => ConfigCommand::DeleteFs { name: fs },
            60..=79 => {
                let node = NodeId(self.next_fake);
                self.next_fake += 1;
                self.fake_nodes.push(node);
                ConfigCommand::Join(join_request(node, self.rng.below(u64::from(self.racks)) as u32))
            }
            _ => match self.fake_nodes.len() {
                0 => ConfigCommand::DeleteFs { name: fs },
                n => {
                    let node = self.fake_nodes[self.rng.below(n as u64) as usize];
                    if self.rng.chance(1, 2) {
                        ConfigCommand::Decommission { node }
                    } else {
                        ConfigCommand::Remove { node }
                    }
                }
            },
        }
    }
}
