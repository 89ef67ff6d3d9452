//! Config changes: the commands the replicated state machine applies, their validation and their errors.
//!
//! [`apply`] is pure and all-or-nothing: it validates, then changes a copy; on error the config is
//! exactly as before (the error is still recorded for the client's session so a retry sees the same
//! answer). Every successful change raises the epoch by one and recomputes the shard map with minimal
//! movement.

use serde::{Deserialize, Serialize};
use tessera_env::NodeId;

use crate::model::{
    ADDRESS_LEN_MAX_BYTES, ChangeRecord, ClientSession, ClusterConfig, DRIVES_PER_NODE_MAX, DriveInfo, FILESYSTEMS_MAX,
    FS_NAME_LEN_MAX_BYTES, FsRecord, NODES_MAX, NodeRecord, NodeState, PlacementMode, Protection, RECENT_CHANGES_KEPT,
    RequestId,
};
use crate::placement::{self, PlacementNode};

/// Client sessions remembered for deduplication; the oldest is forgotten beyond this.
pub const CLIENT_SESSIONS_MAX: usize = 10_000;

/// What a node declares when it joins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node: NodeId,
    pub address: String,
    pub rack: u32,
    pub drives: Vec<DriveInfo>,
    pub weight: u32,
}

/// A change to the cluster config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigCommand {
    Join(JoinRequest),
    /// Failure detector: missed heartbeats.
    MarkSuspect {
        node: NodeId,
    },
    /// Failure detector: declared dead; its replicas move to other nodes.
    MarkDown {
        node: NodeId,
    },
    /// The node heartbeats again.
    MarkUp {
        node: NodeId,
    },
    /// Operator: drain the node (its replicas move off), then `Remove` it.
    Decommission {
        node: NodeId,
    },
    /// Remove a drained or down node from the config.
    Remove {
        node: NodeId,
    },
    /// Replace `old` (typically down) by a new node in one change: `old` leaves, `new` joins.
    Replace {
        old: NodeId,
        new: JoinRequest,
    },
    CreateFs {
        name: String,
        protection: Protection,
        placement: PlacementMode,
    },
    DeleteFs {
        name: String,
    },
}

/// Why a command was refused. The config is unchanged whenever one of these is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ConfigError {
    #[error("malformed join request for node {node}: {reason}")]
    MalformedJoin { node: NodeId, reason: String },
    #[error("node id {0} is already a member")]
    DuplicateNodeId(NodeId),
    #[error("address {address} is already used by node {by}")]
    DuplicateAddress { address: String, by: NodeId },
    #[error("no node {0} in the config")]
    UnknownNode(NodeId),
    #[error("node {node} is {state:?}; {action} is not allowed in that state")]
    InvalidState { node: NodeId, state: NodeState, action: String },
    #[error("this change needs {needed} failure domains with live nodes, the cluster would have {available}")]
    NotEnoughFailureDomains { needed: u32, available: u32 },
    #[error("the cluster holds the maximum of {max} {what}")]
    LimitReached { what: String, max: u64 },
    #[error("file system name {name:?} is invalid: {reason}")]
    InvalidFsName { name: String, reason: String },
    #[error("file system {0:?} already exists")]
    FsExists(String),
    #[error("no file system {0:?}")]
    FsNotFound(String),
    #[error("protection {0:?} is invalid (replicated: 2-5 copies; erasure coded: 4-16 data + 2-4 parity)")]
    InvalidProtection(Protection),
    #[error("shard placement failed: {0}")]
    Placement(String),
}

/// The outcome of a successful command: the epoch it created.
pub type Applied = u64;

/// Apply `cmd` for `request` (None: the failure detector's own change, not deduplicated). A request
/// whose sequence number is not above its client's last applied one returns the recorded result
/// without changing anything: retries are idempotent (clients keep one request in flight).
pub fn apply_request(
    config: &mut ClusterConfig,
    request: Option<RequestId>,
    cmd: &ConfigCommand,
) -> Result<Applied, ConfigError> {
    if let Some(recorded) = request.and_then(|r| config.recorded_result(r)) {
        return recorded;
    }
    let result = apply(config, cmd);
    if result.is_ok() {
        config.recent_changes.push_back(ChangeRecord { epoch: config.epoch, request, summary: summary(cmd) });
        if config.recent_changes.len() > RECENT_CHANGES_KEPT {
            config.recent_changes.pop_front();
        }
    }
    if let Some(RequestId { client: client_id, seq }) = request {
        config
            .client_sessions
            .insert(client_id, ClientSession { last_seq: seq, last_result: result.clone(), epoch: config.epoch });
        if config.client_sessions.len() > CLIENT_SESSIONS_MAX {
            let oldest = config.client_sessions.iter().min_by_key(|(id, s)| (s.epoch, **id)).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                config.client_sessions.remove(&oldest);
            }
        }
    }
    result
}

/// Apply one command; all-or-nothing.
pub fn apply(config: &mut ClusterConfig, cmd: &ConfigCommand) -> Result<Applied, ConfigError> {
    let mut next = config.clone();
    change(&mut next, cmd)?;
    next.epoch = config.epoch + 1;
    let observed_fact = matches!(
        cmd,
        ConfigCommand::MarkSuspect { .. } | ConfigCommand::MarkDown { .. } | ConfigCommand::MarkUp { .. }
    );
    replace_shard_map(&mut next, config, observed_fact)?;
    *config = next;
    Ok(config.epoch)
}

/// One line describing a command, for the change history.
pub fn summary(cmd: &ConfigCommand) -> String {
    match cmd {
        ConfigCommand::Join(r) => format!("join {} rack {} at {}", r.node, r.rack, r.address),
        ConfigCommand::MarkSuspect { node } => format!("{node} suspect"),
        ConfigCommand::MarkDown { node } => format!("{node} down"),
        ConfigCommand::MarkUp { node } => format!("{node} up"),
        ConfigCommand::Decommission { node } => format!("decommission {node}"),
        ConfigCommand::Remove { node } => format!("remove {node}"),
        ConfigCommand::Replace { old, new } => format!("replace {old} by {}", new.node),
        ConfigCommand::CreateFs { name, .. } => format!("create fs {name}"),
        ConfigCommand::DeleteFs { name } => format!("delete fs {name}"),
    }
}

fn change(c: &mut ClusterConfig, cmd: &ConfigCommand) -> Result<(), ConfigError> {
    let epoch = c.epoch + 1;
    match cmd {
        ConfigCommand::Join(req) => join(c, req, epoch),
        ConfigCommand::MarkSuspect { node } => set_state(c, *node, NodeState::Suspect, &[NodeState::Up], epoch),
        ConfigCommand::MarkDown { node } => {
            set_state(c, *node, NodeState::Down, &[NodeState::Up, NodeState::Suspect], epoch)
        }
        ConfigCommand::MarkUp { node } => {
            set_state(c, *node, NodeState::Up, &[NodeState::Suspect, NodeState::Down], epoch)
        }
        ConfigCommand::Decommission { node } => set_state(
            c,
            *node,
            NodeState::Decommissioning,
            &[NodeState::Up, NodeState::Suspect, NodeState::Down],
            epoch,
        ),
        ConfigCommand::Remove { node } => {
            let state = node_state(c, *node)?;
            if state.holds_replicas() {
                return Err(ConfigError::InvalidState {
                    node: *node,
                    state,
                    action: "remove (decommission it first)".into(),
                });
            }
            c.nodes.remove(node);
            Ok(())
        }
        ConfigCommand::Replace { old, new } => {
            node_state(c, *old)?;
            c.nodes.remove(old);
            join(c, new, epoch)
        }
        ConfigCommand::CreateFs { name, protection, placement } => create_fs(c, name, *protection, *placement, epoch),
        ConfigCommand::DeleteFs { name } => {
            c.filesystems.remove(name).map(|_| ()).ok_or_else(|| ConfigError::FsNotFound(name.clone()))
        }
    }
}

fn node_state(c: &ClusterConfig, node: NodeId) -> Result<NodeState, ConfigError> {
    c.nodes.get(&node).map(|n| n.state).ok_or(ConfigError::UnknownNode(node))
}

fn set_state(
    c: &mut ClusterConfig,
    node: NodeId,
    to: NodeState,
    from: &[NodeState],
    epoch: u64,
) -> Result<(), ConfigError> {
    let record = c.nodes.get_mut(&node).ok_or(ConfigError::UnknownNode(node))?;
    if !from.contains(&record.state) {
        return Err(ConfigError::InvalidState { node, state: record.state, action: format!("marking it {to:?}") });
    }
    record.state = to;
    record.state_epoch = epoch;
    Ok(())
}

fn join(c: &mut ClusterConfig, req: &JoinRequest, epoch: u64) -> Result<(), ConfigError> {
    let malformed = |reason: &str| ConfigError::MalformedJoin { node: req.node, reason: reason.into() };
    if req.address.is_empty() || req.address.len() > ADDRESS_LEN_MAX_BYTES {
        return Err(malformed("the address must be 1 to 256 bytes"));
    }
    if req.address.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(malformed("the address contains whitespace or control characters"));
    }
    if req.drives.is_empty() || req.drives.len() > DRIVES_PER_NODE_MAX {
        return Err(malformed("a node declares 1 to 64 drives"));
    }
    if req.drives.iter().any(|d| d.capacity_bytes == 0) {
        return Err(malformed("a drive of zero bytes"));
    }
    if req.weight == 0 {
        return Err(malformed("weight must be at least 1"));
    }
    if c.nodes.contains_key(&req.node) {
        return Err(ConfigError::DuplicateNodeId(req.node));
    }
    if let Some(other) = c.nodes.values().find(|n| n.address == req.address) {
        return Err(ConfigError::DuplicateAddress { address: req.address.clone(), by: other.id });
    }
    if c.nodes.len() >= NODES_MAX {
        return Err(ConfigError::LimitReached { what: "nodes".into(), max: NODES_MAX as u64 });
    }
    c.nodes.insert(
        req.node,
        NodeRecord {
            id: req.node,
            address: req.address.clone(),
            rack: req.rack,
            drives: req.drives.clone(),
            weight: req.weight,
            state: NodeState::Up,
            state_epoch: epoch,
        },
    );
    Ok(())
}

fn create_fs(
    c: &mut ClusterConfig,
    name: &str,
    protection: Protection,
    placement: PlacementMode,
    epoch: u64,
) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidFsName { name: name.into(), reason: reason.into() };
    if name.is_empty() || name.len() > FS_NAME_LEN_MAX_BYTES {
        return Err(invalid("1 to 64 bytes"));
    }
    if !name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')) || name.starts_with('.') {
        return Err(invalid("only letters, digits, '-', '_' and '.', not starting with '.'"));
    }
    if !protection.is_valid() {
        return Err(ConfigError::InvalidProtection(protection));
    }
    if c.filesystems.contains_key(name) {
        return Err(ConfigError::FsExists(name.into()));
    }
    if c.filesystems.len() >= FILESYSTEMS_MAX {
        return Err(ConfigError::LimitReached { what: "file systems".into(), max: FILESYSTEMS_MAX as u64 });
    }
    let needed = protection.failure_domains_needed();
    let available = c.live_failure_domains();
    if available < needed {
        return Err(ConfigError::NotEnoughFailureDomains { needed, available });
    }
    let id = c.next_fs_id;
    c.next_fs_id += 1;
    c.filesystems.insert(name.into(), FsRecord { id, name: name.into(), protection, placement, created_epoch: epoch });
    Ok(())
}

/// Recompute the shard map of `next` from the nodes that may hold replicas, moving as little as possible
/// from `prev`'s map.
///
/// - An operator change that itself takes failure domains away, leaving fewer than the shards or a file
///   system need, is refused (a shortage that already existed does not block unrelated changes).
/// - An `observed_fact` (the failure detector's verdicts) is never refused: the nodes are down whether
///   we like it or not.
/// - With fewer live domains than the shard replication, the map stays as it was (shards run degraded;
///   empty while the cluster is still being built) until nodes come back or are replaced.
fn replace_shard_map(next: &mut ClusterConfig, prev: &ClusterConfig, observed_fact: bool) -> Result<(), ConfigError> {
    let needed_fs = next.filesystems.values().map(|f| f.protection.failure_domains_needed()).max().unwrap_or(0);
    let had_map = !prev.shard_map.shards.is_empty();
    let needed = if had_map { next.params.shard_replication.max(needed_fs) } else { needed_fs };
    let available = next.live_failure_domains();
    if !observed_fact && available < needed && available < prev.live_failure_domains() {
        return Err(ConfigError::NotEnoughFailureDomains { needed, available });
    }
    if available < next.params.shard_replication {
        return Ok(());
    }
    let nodes: Vec<PlacementNode> = next
        .nodes
        .values()
        .filter(|n| n.state.holds_replicas())
        .map(|n| PlacementNode { id: n.id, rack: n.rack, weight: n.weight })
        .collect();
    let previous = if had_map { Some(&prev.shard_map) } else { None };
    match placement::place(&nodes, next.params.shard_count, next.params.shard_replication, previous) {
        Ok(map) => next.shard_map = map,
        Err(_) if observed_fact => {}
        Err(e) => return Err(ConfigError::Placement(e.to_string())),
    }
    Ok(())
}
