//! The client's copy of the shard map: which nodes hold each shard's replicas, under which epoch.

use tessera_config::ClusterConfig;
use tessera_config::placement::ShardMap;
use tessera_env::NodeId;

/// Most shards a map can have: shard ids and the driver's shard count are `u16`.
pub const SHARDS_MAX: usize = u16::MAX as usize;

/// For each shard (index = shard id) its replica nodes, `replicas[0]` the preferred leader, and the
/// epoch of the shard map they come from. Every shard has at least one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDirectory {
    epoch: u64,
    shards: Vec<Vec<NodeId>>,
}

/// A shard map a client cannot route with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("the shard map has no shards")]
    Empty,
    #[error("the shard map has {count} shards, at most {SHARDS_MAX}")]
    TooManyShards { count: usize },
    #[error("shard {shard} has no replicas")]
    NoReplicas { shard: u16 },
    #[error("the shard count changed from {from} to {to}")]
    ShardCountChanged { from: u16, to: u16 },
}

impl ShardDirectory {
    /// The directory of `map`, committed by the config service under `epoch`.
    pub fn new(map: &ShardMap, epoch: u64) -> Result<ShardDirectory, DirectoryError> {
        let shards: Vec<Vec<NodeId>> = map.shards.iter().map(|s| s.replicas.clone()).collect();
        ShardDirectory::from_replicas(shards, epoch)
    }

    /// The directory of a config's shard map.
    pub fn from_config(config: &ClusterConfig) -> Result<ShardDirectory, DirectoryError> {
        ShardDirectory::new(&config.shard_map, config.epoch)
    }

    /// A directory from replica lists directly (index = shard id).
    pub fn from_replicas(shards: Vec<Vec<NodeId>>, epoch: u64) -> Result<ShardDirectory, DirectoryError> {
        if shards.is_empty() {
            return Err(DirectoryError::Empty);
        }
        if shards.len() > SHARDS_MAX {
            return Err(DirectoryError::TooManyShards { count: shards.len() });
        }
        if let Some(shard) = shards.iter().position(Vec::is_empty) {
            return Err(DirectoryError::NoReplicas { shard: shard as u16 });
        }
        Ok(ShardDirectory { epoch, shards })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of shards, in `1..=SHARDS_MAX`.
    pub fn shard_count(&self) -> u16 {
        u16::try_from(self.shards.len()).expect("checked at construction")
    }

    /// The replicas of `shard` (never empty), or `None` for a shard outside the map.
    pub fn replicas(&self, shard: u16) -> Option<&[NodeId]> {
        self.shards.get(usize::from(shard)).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use tessera_config::placement::ShardReplicas;

    use super::*;

    #[test]
    fn built_from_a_shard_map_and_checked() {
        let map = ShardMap {
            shards: vec![
                ShardReplicas { replicas: vec![NodeId(1), NodeId(2)] },
                ShardReplicas { replicas: vec![NodeId(3)] },
            ],
        };
        let dir = ShardDirectory::new(&map, 7).unwrap();
        assert_eq!((dir.epoch(), dir.shard_count()), (7, 2));
        assert_eq!(dir.replicas(1), Some(&[NodeId(3)][..]));
        assert_eq!(dir.replicas(2), None);
        assert_eq!(ShardDirectory::new(&ShardMap::default(), 1), Err(DirectoryError::Empty));
        let hole = vec![vec![NodeId(1)], vec![]];
        assert_eq!(ShardDirectory::from_replicas(hole, 1), Err(DirectoryError::NoReplicas { shard: 1 }));
    }
}
