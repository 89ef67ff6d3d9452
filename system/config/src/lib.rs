//! The cluster config service: membership, failure domains, epochs, failure detection and the shard map.
//!
//! - [`model`]: the replicated state ([`ClusterConfig`]), stamped with an epoch.
//! - [`command`]: the changes and their validation; [`command::apply`] is the pure state-machine step.
//! - [`placement`]: shard replicas over failure domains, balanced, with minimal movement.
//! - [`member`]: one replica of the config service (Raft + the applied config + the failure detector).
//! - [`agent`]: every node's heartbeats and config cache; [`client`]: submitting changes with retries.
//! - [`wire`]: the messages between them. All four are sans-IO state machines; [`runner`] drives them
//!   on the environment's clock, network and disks.

pub mod agent;
pub mod client;
pub mod command;
pub mod member;
pub mod model;
pub mod placement;
pub mod runner;
pub mod stripe;
pub mod wire;

pub use agent::NodeAgent;
pub use client::{ClientError, ConfigClient};
pub use command::{ConfigCommand, ConfigError, JoinRequest, apply, apply_request};
pub use member::{CONFIG_GROUP, ConfigMember, DetectorConfig, MemberError};
pub use model::{
    ChangeRecord, ClusterConfig, ClusterParams, DriveInfo, FsRecord, NodeRecord, NodeState, PlacementMode, Protection,
    RequestId,
};
pub use runner::{ConfigNode, ConfigNodeError, ConfigView, SharedView, submit};
pub use wire::ConfigMessage;

#[cfg(test)]
mod tests_command;
#[cfg(test)]
mod tests_service;
