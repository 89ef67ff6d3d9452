//! Messages of the config service between nodes, clients and config members (encoded with
//! `tessera-proto`; see docs/formats/wire.md).

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;
use tessera_raft::RaftMessage;

use crate::command::{ConfigCommand, ConfigError};
use crate::model::ClusterConfig;

pub use crate::model::RequestId;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConfigMessage {
    /// Raft traffic between config members.
    Raft(RaftMessage),
    /// A client asks for a change. Retries reuse the id; the service applies it at most once.
    Request { id: RequestId, command: ConfigCommand },
    /// The change was applied (`Ok(epoch)`) or refused (the config is unchanged).
    Response { id: RequestId, result: Result<u64, ConfigError> },
    /// The receiver is not the leader; `leader` is its best guess. `id` is set when answering a request.
    NotLeader { id: Option<RequestId>, leader: Option<NodeId> },
    /// A node says it is alive and which config epoch it holds.
    Heartbeat { epoch: u64 },
    /// The leader's answer; carries the config when the node's epoch is stale.
    HeartbeatAck { leader: NodeId, epoch: u64, config: Option<Box<ClusterConfig>> },
    /// A node that saw a newer epoch somewhere asks for the current config.
    GetConfig { known_epoch: u64 },
    /// The current config.
    Config { config: Box<ClusterConfig> },
}

impl ConfigMessage {
    pub fn encode(&self) -> Vec<u8> {
        tessera_proto::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<ConfigMessage, tessera_proto::CodecError> {
        tessera_proto::decode(bytes)
    }
}
