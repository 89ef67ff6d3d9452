//! The two configuration files of a real cluster, parsed and validated with messages an operator can act
//! on:
//!
//! - [`ClusterSpec`] (`cluster.toml`): what every node and client must agree on: the cluster id, the
//!   members (id, failure domain, address), the number of metadata shards and their replication, the
//!   protection of file data. Written once when the cluster is created (`tessera cluster up` writes it);
//!   every node refuses drives formatted for another cluster id.
//! - [`NodeConfig`] (`node.toml`): one node's own settings: which member it is, where it listens, its
//!   drives (files or block devices), where its logs and metrics go.
//!
//! Both are TOML; unknown keys are refused (a typo must not silently fall back to a default).

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_config::model::Protection;
use tessera_config::placement::{PlacementNode, ShardMap};
use tessera_env::NodeId;

/// Largest node id: ids share a `u64` with the transport's endpoint bits (60..63).
pub const NODE_ID_MAX: u64 = (1 << 40) - 1;
/// Most members a cluster file may list (the config model's limit).
pub const MEMBERS_MAX: usize = tessera_config::model::NODES_MAX;
/// Most metadata shards (shard ids are `u16`).
pub const SHARDS_MAX: u32 = u16::MAX as u32;
/// Smallest drive this binary formats: the store's metadata regions plus room for data.
pub const DRIVE_BYTES_MIN: u64 = 64 * 1024 * 1024;
/// Largest configuration file read (a cluster of thousands of members is well under this).
pub const CONFIG_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Why a configuration file was refused. The message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is {size_bytes} bytes, more than the {CONFIG_FILE_BYTES_MAX} bytes a configuration file may have")]
    TooLarge { path: PathBuf, size_bytes: u64 },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// How file data is protected, as written in `cluster.toml`: `"4+2"` (erasure coding, N data + K parity
/// chunks) or `"3 copies"` (replication).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectionSpec(pub Protection);

impl ProtectionSpec {
    /// Parses `N+K` or `C copies` (also `Cx`).
    pub fn parse(text: &str) -> Result<ProtectionSpec, String> {
        let text = text.trim();
        let protection = if let Some((n, k)) = text.split_once('+') {
            let data: u8 = n.trim().parse().map_err(|_| format!("{text:?}: N in N+K must be a number"))?;
            let parity: u8 = k.trim().parse().map_err(|_| format!("{text:?}: K in N+K must be a number"))?;
            Protection::ErasureCoded { data, parity }
        } else {
            let count = text.strip_suffix("copies").or_else(|| text.strip_suffix('x')).unwrap_or(text);
            let copies: u8 = count.trim().parse().map_err(|_| {
                format!("{text:?}: expected N+K (erasure coding, e.g. 4+2) or C copies (e.g. 2 copies)")
            })?;
            Protection::Replicated { copies }
        };
        if !protection.is_valid() {
            return Err(format!(
                "{text:?} is out of range: erasure coding takes 4..16 data and 2..4 parity chunks, replication 2..5 copies"
            ));
        }
        Ok(ProtectionSpec(protection))
    }
}

impl fmt::Display for ProtectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// Stable id, 1..=[`NODE_ID_MAX`], unique in the cluster.
    pub id: u64,
    /// Failure domain (rack). Metadata replicas and the chunks of one stripe sit in distinct racks.
    pub rack: u32,
    /// Where peers and clients reach it: `host:port`.
    pub address: String,
}

/// `cluster.toml` as written on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    /// 32 hex digits.
    cluster_id: String,
    /// Unix time of creation, nanoseconds (the root directory's timestamps).
    created_unix_ns: u64,
    shards: u32,
    shard_replication: u32,
    protection: String,
    /// Files up to this size stay inline in metadata.
    inline_max_bytes: u64,
    /// A peer that has not answered for this long is declared dead and its chunks are rebuilt.
    dead_after_ms: u64,
    members: Vec<MemberSpec>,
}

/// The cluster every node and client agrees on (validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub cluster_id: u128,
    pub created_unix_ns: u64,
    pub shards: u16,
    pub shard_replication: u32,
    pub protection: ProtectionSpec,
    pub inline_max_bytes: u64,
    pub dead_after_ms: u64,
    pub members: Vec<MemberSpec>,
}

impl ClusterSpec {
    /// Racks among the members.
    pub fn racks(&self) -> BTreeSet<u32> {
        self.members.iter().map(|m| m.rack).collect()
    }

    pub fn member(&self, id: NodeId) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.id == id.0)
    }

    pub fn placement_nodes(&self) -> Vec<PlacementNode> {
        self.members.iter().map(|m| PlacementNode { id: NodeId(m.id), rack: m.rack, weight: 1 }).collect()
    }

    /// The metadata shard map every node boots from (a pure function of the members: every node computes
    /// the same one).
    pub fn genesis_map(&self) -> ShardMap {
        tessera_config::placement::place(&self.placement_nodes(), u32::from(self.shards), self.shard_replication, None)
            .expect("a validated cluster spec can be placed")
    }

    /// Checks everything a node relies on; `path` names the file in messages.
    pub fn validate(&self, path: &Path) -> Result<(), SpecError> {
        let invalid = |message: String| SpecError::Invalid { path: path.to_path_buf(), message };
        if self.cluster_id == 0 {
            return Err(invalid("cluster_id must not be zero".into()));
        }
        if self.members.len() < 3 {
            return Err(invalid(format!("a cluster needs at least 3 members, {} are listed", self.members.len())));
        }
        if self.members.len() > MEMBERS_MAX {
            return Err(invalid(format!("at most {MEMBERS_MAX} members, {} are listed", self.members.len())));
        }
        let mut ids = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for m in &self.members {
            if m.id == 0 || m.id > NODE_ID_MAX {
                return Err(invalid(format!("member id {} is out of range 1..={NODE_ID_MAX}", m.id)));
            }
            if !ids.insert(m.id) {
                return Err(invalid(format!("member id {} is listed twice", m.id)));
            }
            parse_address(&m.address).map_err(|e| invalid(format!("member {}: {e}", m.id)))?;
            if !addresses.insert(m.address.clone()) {
                return Err(invalid(format!("address {} is listed for two members", m.address)));
            }
        }
        if !(3..=5).contains(&self.shard_replication) {
            return Err(invalid(format!("shard_replication must be 3..=5, got {}", self.shard_replication)));
        }
        if self.shards == 0 {
            return Err(invalid(format!("shards must be 1..={SHARDS_MAX}, got 0")));
        }
        let racks = self.racks().len() as u32;
        if racks < self.shard_replication {
            return Err(invalid(format!(
                "{} metadata replicas need as many racks; the members are in {racks}",
                self.shard_replication
            )));
        }
        let needed = self.protection.0.failure_domains_needed();
        if racks < needed {
            return Err(invalid(format!(
                "protection {} puts each stripe's {needed} chunks in {needed} distinct racks; the members are in {racks}",
                self.protection
            )));
        }
        if self.inline_max_bytes > tessera_meta::content::INLINE_LEN_MAX_BYTES {
            return Err(invalid(format!(
                "inline_max_bytes is at most {}, got {}",
                tessera_meta::content::INLINE_LEN_MAX_BYTES,
                self.inline_max_bytes
            )));
        }
        if self.dead_after_ms < 1_000 {
            return Err(invalid(format!("dead_after_ms must be at least 1000, got {}", self.dead_after_ms)));
        }
        Ok(())
    }

    /// Parses and validates `text` (the contents of `path`).
    pub fn parse(text: &str, path: &Path) -> Result<ClusterSpec, SpecError> {
        let file: ClusterFile =
            toml::from_str(text).map_err(|e| SpecError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        let invalid = |message: String| SpecError::Invalid { path: path.to_path_buf(), message };
        let cluster_id = u128::from_str_radix(file.cluster_id.trim(), 16)
            .map_err(|_| invalid(format!("cluster_id {:?} is not 32 hex digits", file.cluster_id)))?;
        let shards = u16::try_from(file.shards)
            .map_err(|_| invalid(format!("shards must be 1..={SHARDS_MAX}, got {}", file.shards)))?;
        let protection = ProtectionSpec::parse(&file.protection).map_err(|e| invalid(format!("protection {e}")))?;
        let spec = ClusterSpec {
            cluster_id,
            created_unix_ns: file.created_unix_ns,
            shards,
            shard_replication: file.shard_replication,
            protection,
            inline_max_bytes: file.inline_max_bytes,
            dead_after_ms: file.dead_after_ms,
            members: file.members,
        };
        spec.validate(path)?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<ClusterSpec, SpecError> {
        ClusterSpec::parse(&read_config(path)?, path)
    }

    /// The TOML text of this spec.
    pub fn to_toml(&self) -> String {
        let file = ClusterFile {
            cluster_id: format!("{:032x}", self.cluster_id),
            created_unix_ns: self.created_unix_ns,
            shards: u32::from(self.shards),
            shard_replication: self.shard_replication,
            protection: self.protection.to_string(),
            inline_max_bytes: self.inline_max_bytes,
            dead_after_ms: self.dead_after_ms,
            members: self.members.clone(),
        };
        let body = toml::to_string(&file).expect("a cluster spec serializes");
        format!(
            "# The cluster every Tessera node and client of it agrees on. Written when the cluster was created.\n{body}"
        )
    }
}

/// One drive of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSpec {
    /// A regular file (created at `size_bytes` on first start if missing) or a block device.
    pub path: PathBuf,
    /// `meta` (the metadata shards' Raft logs; exactly one) or `data` (chunks; at least one).
    pub role: DriveRole,
    /// Size of a file drive created on first start; ignored for an existing file or a block device.
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriveRole {
    Meta,
    Data,
}

/// `node.toml`: one node's own settings (validated against the cluster spec by [`NodeConfig::load`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Which member of the cluster this node is.
    pub node_id: u64,
    /// The cluster file (relative paths are relative to this file's directory).
    pub cluster: PathBuf,
    /// Address to listen on for peers and clients; must be the member's address (or bind all
    /// interfaces on its port: `0.0.0.0:PORT`).
    pub listen: String,
    /// Prometheus metrics endpoint (`host:port`), if any.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Log filter: `error`, `warn`, `info`, `debug`, `trace`, or a directive such as `tessera=debug,warn`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Append logs to this file instead of stderr.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    pub drives: Vec<DriveSpec>,
}

fn default_log_level() -> String {
    "info".to_string()
}

/// A node's configuration with its cluster spec, paths made absolute.
#[derive(Clone, Debug)]
pub struct LoadedNode {
    pub config: NodeConfig,
    pub spec: ClusterSpec,
    pub member: MemberSpec,
    /// Where `node.toml` was read from.
    pub config_path: PathBuf,
}

impl NodeConfig {
    /// Reads `path`, its cluster file, and checks them against each other.
    pub fn load(path: &Path) -> Result<LoadedNode, SpecError> {
        let text = read_config(path)?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|e| SpecError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.cluster = base.join(&config.cluster);
        for d in &mut config.drives {
            d.path = base.join(&d.path);
        }
        config.log_file = config.log_file.map(|f| base.join(f));
        let spec = ClusterSpec::load(&config.cluster)?;
        let member = config.validate(&spec, path)?;
        Ok(LoadedNode { config, spec, member, config_path: path.to_path_buf() })
    }

    /// Checks this node's settings against the cluster; returns its member entry.
    pub fn validate(&self, spec: &ClusterSpec, path: &Path) -> Result<MemberSpec, SpecError> {
        let invalid = |message: String| SpecError::Invalid { path: path.to_path_buf(), message };
        let member = spec.member(NodeId(self.node_id)).cloned().ok_or_else(|| {
            invalid(format!(
                "node_id {} is not a member of the cluster in {} (members: {})",
                self.node_id,
                self.cluster.display(),
                spec.members.iter().map(|m| m.id.to_string()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let listen = parse_address(&self.listen).map_err(|e| invalid(format!("listen: {e}")))?;
        let advertised = parse_address(&member.address).map_err(|e| invalid(format!("member address: {e}")))?;
        if listen.port() != advertised.port() || !(listen.ip().is_unspecified() || listen.ip() == advertised.ip()) {
            return Err(invalid(format!(
                "listen {} does not match this member's address {} in the cluster file",
                self.listen, member.address
            )));
        }
        if let Some(m) = &self.metrics_listen {
            let metrics = parse_address(m).map_err(|e| invalid(format!("metrics_listen: {e}")))?;
            if metrics.port() == listen.port() && metrics.port() != 0 {
                return Err(invalid(format!("metrics_listen {m} uses the same port as listen {}", self.listen)));
            }
        }
        let metas = self.drives.iter().filter(|d| d.role == DriveRole::Meta).count();
        let datas = self.drives.iter().filter(|d| d.role == DriveRole::Data).count();
        if metas != 1 {
            return Err(invalid(format!("exactly one drive must have role = \"meta\", found {metas}")));
        }
        if datas == 0 {
            return Err(invalid("at least one drive must have role = \"data\"".into()));
        }
        let mut paths = BTreeSet::new();
        for d in &self.drives {
            if !paths.insert(d.path.clone()) {
                return Err(invalid(format!("drive {} is listed twice", d.path.display())));
            }
            if let Some(size) = d.size_bytes
                && (size < DRIVE_BYTES_MIN || !size.is_multiple_of(tessera_env::SECTOR_SIZE_BYTES as u64))
            {
                return Err(invalid(format!(
                    "drive {}: size_bytes must be at least {DRIVE_BYTES_MIN} and a multiple of 4096, got {size}",
                    d.path.display()
                )));
            }
        }
        Ok(member)
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a node config serializes");
        format!("# One Tessera node: which member it is, where it listens, its drives.\n{body}")
    }
}

/// A `host:port` socket address (names are not resolved: the cluster file lists IP addresses).
pub fn parse_address(address: &str) -> Result<SocketAddr, String> {
    address
        .parse::<SocketAddr>()
        .map_err(|_| format!("{address:?} is not an IP address with a port (e.g. 127.0.0.1:7101)"))
}

fn read_config(path: &Path) -> Result<String, SpecError> {
    let meta = std::fs::metadata(path).map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
    if meta.len() > CONFIG_FILE_BYTES_MAX {
        return Err(SpecError::TooLarge { path: path.to_path_buf(), size_bytes: meta.len() });
    }
    std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.to_path_buf(), source })
}

/// Write `text` to `path` atomically (a temporary file renamed over it, both synced).
pub fn write_atomically(path: &Path, text: &str) -> Result<(), SpecError> {
    use std::io::Write;
    let err = |source| SpecError::Write { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(racks: &[u32], protection: &str) -> ClusterSpec {
        ClusterSpec {
            cluster_id: 0xabc,
            created_unix_ns: 1,
            shards: 12,
            shard_replication: 3,
            protection: ProtectionSpec::parse(protection).expect("protection"),
            inline_max_bytes: 16 * 1024,
            dead_after_ms: 5_000,
            members: racks
                .iter()
                .enumerate()
                .map(|(i, &rack)| MemberSpec { id: i as u64 + 1, rack, address: format!("127.0.0.1:{}", 7101 + i) })
                .collect(),
        }
    }

    #[test]
    fn a_cluster_file_round_trips_and_places_its_shards() {
        let s = spec(&[0, 0, 1, 1, 2, 2], "2 copies");
        let path = Path::new("cluster.toml");
        let back = ClusterSpec::parse(&s.to_toml(), path).expect("parses");
        assert_eq!(back, s);
        let map = back.genesis_map();
        assert_eq!(map.shards.len(), 12);
        for shard in &map.shards {
            let racks: BTreeSet<u32> = shard.replicas.iter().map(|id| s.member(*id).expect("member").rack).collect();
            assert_eq!(racks.len(), 3, "replicas of one shard in distinct racks");
        }
    }

    #[test]
    fn protection_needs_as_many_racks_as_chunks() {
        let s = spec(&[0, 0, 1, 1, 2, 2], "4+2");
        let err = s.validate(Path::new("c.toml")).expect_err("4+2 on 3 racks");
        assert!(err.to_string().contains("6 distinct racks; the members are in 3"), "{err}");
        assert!(spec(&[0, 1, 2, 3, 4, 5], "4+2").validate(Path::new("c.toml")).is_ok());
    }

    #[test]
    fn bad_protection_and_unknown_keys_are_refused_with_their_names() {
        assert!(ProtectionSpec::parse("3+2").unwrap_err().contains("out of range"));
        assert!(ProtectionSpec::parse("lots").unwrap_err().contains("expected N+K"));
        assert_eq!(ProtectionSpec::parse("3 copies").unwrap().to_string(), "3 copies");
        let text = spec(&[0, 1, 2], "2 copies").to_toml().replace("shards =", "shardz =");
        let err = ClusterSpec::parse(&text, Path::new("c.toml")).expect_err("typo");
        assert!(err.to_string().contains("shardz"), "{err}");
    }

    #[test]
    fn a_node_config_must_match_its_member() {
        let s = spec(&[0, 1, 2], "2 copies");
        let drives = vec![
            DriveSpec { path: "m".into(), role: DriveRole::Meta, size_bytes: None },
            DriveSpec { path: "d".into(), role: DriveRole::Data, size_bytes: Some(DRIVE_BYTES_MIN) },
        ];
        let mut c = NodeConfig {
            node_id: 2,
            cluster: "cluster.toml".into(),
            listen: "127.0.0.1:7102".into(),
            metrics_listen: None,
            log_level: "info".into(),
            log_file: None,
            drives,
        };
        let p = Path::new("node.toml");
        assert_eq!(c.validate(&s, p).expect("valid").id, 2);
        c.listen = "127.0.0.1:7199".into();
        assert!(c.validate(&s, p).unwrap_err().to_string().contains("does not match"));
        c.listen = "0.0.0.0:7102".into();
        assert!(c.validate(&s, p).is_ok());
        c.node_id = 9;
        assert!(c.validate(&s, p).unwrap_err().to_string().contains("not a member"));
        c.node_id = 2;
        c.drives.pop();
        assert!(c.validate(&s, p).unwrap_err().to_string().contains("role = \"data\""));
    }
}
