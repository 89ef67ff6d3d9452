//! [`TransportConfig`] and [`TransportError`]: what a user sets and what a user sees.

use tessera_env::NodeId;

/// Limits and timings of a [`Transport`](super::Transport). `Default` gives production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// `Some`: peers of another cluster are refused at the hello. `None` (a client that does not know it
    /// yet): adopt the first peer's cluster id, then hold every later peer to it. Never `Some(0)`: 0 means
    /// "unknown" on the wire.
    pub cluster_id: Option<u128>,
    /// Bound on dialling and the hello exchange, both as dialler and as acceptor.
    pub connect_timeout_ms: u64,
    /// Bound on each socket write. A peer that stops reading for this long loses its connection, and an
    /// outbound peer its whole queue.
    pub write_timeout_ms: u64,
    /// Reconnect backoff: starts here after a failure, doubles per failure, jittered to 50..100 %.
    pub backoff_ms_min: u64,
    /// ... and is capped here.
    pub backoff_ms_max: u64,
    /// Messages queued per peer (or per inbound connection) beyond which `send` is `QueueFull`.
    pub peer_queue_messages_max: usize,
    /// Bytes (frame headers included) queued per peer beyond which `send` is `QueueFull`.
    pub peer_queue_bytes_max: u64,
    /// Messages waiting per local endpoint; more arriving are dropped and counted.
    pub endpoint_queue_messages_max: usize,
    /// Payload bytes waiting per local endpoint; more arriving are dropped and counted.
    pub endpoint_queue_bytes_max: u64,
    /// A connection with nothing to send sends a keepalive frame this often.
    pub keepalive_interval_ms: u64,
    /// A connection that receives no complete frame for this long is closed (a dead peer, or a path
    /// that silently drops packets). Must exceed `keepalive_interval_ms`; also bounds the time to
    /// receive one frame.
    pub idle_timeout_ms: u64,
    /// Inbound connections open at once; more are closed on accept.
    pub inbound_connections_max: u64,
    /// Seed of the backoff jitter; `None`: from the OS. Tests under a simulator pass one.
    pub jitter_seed: Option<u64>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            cluster_id: None,
            connect_timeout_ms: 2_000,
            write_timeout_ms: 10_000,
            backoff_ms_min: 20,
            backoff_ms_max: 2_000,
            peer_queue_messages_max: 8_192,
            peer_queue_bytes_max: 256 << 20,
            endpoint_queue_messages_max: 65_536,
            endpoint_queue_bytes_max: 1 << 30,
            keepalive_interval_ms: 1_000,
            idle_timeout_ms: 10_000,
            inbound_connections_max: 65_536,
            jitter_seed: None,
        }
    }
}

impl TransportConfig {
    pub(crate) fn validate(&self) -> Result<(), TransportError> {
        let fail = |reason: &str| Err(TransportError::InvalidConfig(reason.to_string()));
        if self.cluster_id == Some(0) {
            return fail("cluster_id 0 is reserved for \"unknown\"; use None or a non-zero id");
        }
        if self.connect_timeout_ms == 0 || self.write_timeout_ms == 0 || self.keepalive_interval_ms == 0 {
            return fail("connect_timeout_ms, write_timeout_ms and keepalive_interval_ms must be positive");
        }
        if self.backoff_ms_min == 0 || self.backoff_ms_min > self.backoff_ms_max {
            return fail("backoff must satisfy 0 < backoff_ms_min <= backoff_ms_max");
        }
        if self.idle_timeout_ms <= self.keepalive_interval_ms {
            return fail("idle_timeout_ms must exceed keepalive_interval_ms, or idle connections are cut");
        }
        if self.peer_queue_messages_max == 0
            || self.peer_queue_bytes_max == 0
            || self.endpoint_queue_messages_max == 0
            || self.endpoint_queue_bytes_max == 0
            || self.inbound_connections_max == 0
        {
            return fail("queue and connection bounds must be positive");
        }
        Ok(())
    }
}

/// Why a transport call failed. Addresses are quoted as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen on {address}: {reason}")]
    Bind { address: String, reason: String },
    #[error("address {address:?} is not HOST:PORT (for example 10.0.0.7:7101 or node7.example:7101)")]
    BadAddress { address: String },
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error(
        "no answer to the hello from {address} within {timeout_ms} ms (is a tessera node listening there, \
         and is the network up?)"
    )]
    Timeout { address: String, timeout_ms: u64 },
    #[error(
        "{address} belongs to cluster {theirs:#x}, this process to cluster {ours:#x}: check the address and the \
         cluster id in the configuration"
    )]
    ClusterMismatch { address: String, ours: u128, theirs: u128 },
    #[error("{address} answered as node {actual}, not node {expected}: the peer address list is out of date")]
    PeerMismatch { address: String, expected: NodeId, actual: NodeId },
    #[error("{address} broke the transport protocol during the hello: {reason}")]
    Protocol { address: String, reason: String },
    #[error("endpoint {0} is already open on this transport")]
    EndpointTaken(NodeId),
    #[error("endpoint {0} does not belong to this process (its id without bits 60..63 is not the local id)")]
    NotLocal(NodeId),
    #[error("{0} is not a process id: bits 60..63 name endpoint kinds and must be clear in a process id")]
    NotProcessId(NodeId),
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    #[error("the transport must be started from inside a tokio runtime")]
    NoRuntime,
    #[error("the transport is shut down")]
    Closed,
}

/// "HOST:PORT" with a non-empty host and a non-zero port; the host is resolved only when dialling.
pub(crate) fn check_address(address: &str) -> Result<(), TransportError> {
    let bad = || TransportError::BadAddress { address: address.to_string() };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok(())
}

pub(crate) fn bind_error(address: &str, error: &std::io::Error) -> TransportError {
    let reason = match error.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "address {address} is already in use (another tessera process or another program listens on that \
             port); stop it or choose another port"
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!("permission denied binding {address} (ports below 1024 need privileges); choose another port")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{address} is not an address of this machine; listen on one of its addresses or 0.0.0.0")
        }
        _ => format!("{error}"),
    };
    TransportError::Bind { address: address.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_host_and_port() {
        for good in ["127.0.0.1:7101", "node7.example:7101", "[::1]:7101", "n1:1"] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in ["", "127.0.0.1", ":7101", "host:", "host:0", "host:70000", "host:port", "a b:1"] {
            assert!(matches!(check_address(bad), Err(TransportError::BadAddress { .. })), "{bad}");
        }
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_refused() {
        assert_eq!(TransportConfig::default().validate(), Ok(()));
        let bad = [
            TransportConfig { cluster_id: Some(0), ..Default::default() },
            TransportConfig { backoff_ms_min: 0, ..Default::default() },
            TransportConfig { backoff_ms_min: 5_000, ..Default::default() },
            TransportConfig { idle_timeout_ms: 1_000, ..Default::default() },
            TransportConfig { peer_queue_messages_max: 0, ..Default::default() },
        ];
        for config in bad {
            assert!(matches!(config.validate(), Err(TransportError::InvalidConfig(_))), "{config:?}");
        }
    }
}
