//! Opening a node's drives: file or block device, created on first start if it is a missing file,
//! formatted only if it holds no Tessera store at all, and refused if it belongs to another cluster or
//! another node. Nothing here ever writes to a drive that holds a store of another identity.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use tessera_env::{Disk, DiskError, NodeId};
use tessera_store::{DeviceIdentity, Store, StoreConfig, StoreError};

use crate::file_disk::{FileDisk, FileDiskError};
use crate::node::spec::{DriveRole, DriveSpec};

const MIB: u64 = 1024 * 1024;
/// Size of a missing file drive created without `size_bytes`.
pub const DEFAULT_DRIVE_BYTES: u64 = 1024 * MIB;
/// Journal of the metadata drive (Raft logs of every hosted shard).
pub const META_JOURNAL_BYTES: u64 = 16 * MIB;
/// Journal of each data drive.
pub const DATA_JOURNAL_BYTES: u64 = 16 * MIB;
/// Largest extent on the metadata drive.
const META_EXTENT_BYTES_MAX: u32 = 4 * MIB as u32;
/// Largest extent on a data drive (a chunk is at most 1 MiB plus its header).
const DATA_EXTENT_BYTES_MAX: u32 = 2 * MIB as u32;

/// Why a drive cannot be used. Each message names the drive and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("drive {path}: {source}")]
    File { path: PathBuf, source: FileDiskError },
    #[error(
        "drive {path} belongs to cluster {found:032x}, this node is configured for cluster {ours:032x}; refusing to start (the drive was not touched). Use the right cluster.toml, or point drives at fresh paths"
    )]
    OtherCluster { path: PathBuf, found: u128, ours: u128 },
    #[error(
        "drive {path} was formatted as device {found:#x} (node {found_node}), this node expects device {ours:#x}; refusing to start (the drive was not touched)"
    )]
    OtherDevice { path: PathBuf, found: u128, ours: u128, found_node: u64 },
    #[error("drive {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
}

/// A drive opened for the node, as the cluster logic sees it. The file disk's syscalls block; they run
/// under `tokio::task::block_in_place` so the runtime moves its other tasks off the thread meanwhile
/// (needs the multi-thread runtime, which the node uses).
#[derive(Debug, Clone)]
pub struct NodeDisk {
    inner: Arc<FileDisk>,
}

impl NodeDisk {
    pub fn new(disk: FileDisk) -> NodeDisk {
        NodeDisk { inner: Arc::new(disk) }
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    fn blocking<T>(&self, io: impl std::future::Future<Output = T>) -> T {
        // FileDisk's futures complete on their first poll (the syscall runs inline).
        tokio::task::block_in_place(|| io.now_or_never().expect("a FileDisk operation completes when first polled"))
    }
}

impl Disk for NodeDisk {
    fn capacity_bytes(&self) -> u64 {
        self.inner.capacity_bytes()
    }

    async fn read(&self, offset_bytes: u64, len_bytes: usize) -> Result<Vec<u8>, DiskError> {
        self.blocking(self.inner.read(offset_bytes, len_bytes))
    }

    async fn write(&self, offset_bytes: u64, data: &[u8]) -> Result<(), DiskError> {
        self.blocking(self.inner.write(offset_bytes, data))
    }

    async fn flush(&self) -> Result<(), DiskError> {
        self.blocking(self.inner.flush())
    }
}

/// The device id of drive `index` of `node` (the chunk server's scheme: node in the high half).
pub fn device_id(node: NodeId, index: usize) -> u128 {
    (u128::from(node.0) << 64) | index as u128
}

/// Open the file or device at `spec.path`, creating a missing regular file of `spec.size_bytes`.
pub fn open_disk(spec: &DriveSpec) -> Result<(FileDisk, bool), DriveError> {
    let path = spec.path.clone();
    if path.exists() {
        return FileDisk::open(&path).map(|d| (d, false)).map_err(|source| DriveError::File { path, source });
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DriveError::File {
            path: path.clone(),
            source: FileDiskError::Io { path: parent.to_path_buf(), source: e },
        })?;
    }
    let size = spec.size_bytes.unwrap_or(DEFAULT_DRIVE_BYTES);
    FileDisk::create(&path, size).map(|d| (d, true)).map_err(|source| DriveError::File { path, source })
}

/// What opening one drive found.
#[derive(Debug)]
pub struct OpenedStore<D: Disk> {
    pub store: Store<D>,
    pub path: PathBuf,
    pub capacity_bytes: u64,
    /// Formatted now (a new or blank drive) rather than recovered.
    pub formatted: bool,
}

/// Open (crash recovery) or, if it holds no store at all, format the drive at `spec` as device
/// `device_id(node, index)` of `cluster_id`. A store of another cluster or device is refused untouched.
pub async fn open_store<D: Disk>(
    spec: &DriveSpec,
    cluster_id: u128,
    node: NodeId,
    index: usize,
    wrap: impl Fn(FileDisk) -> D,
) -> Result<OpenedStore<D>, DriveError> {
    let (file, _created) = open_disk(spec)?;
    let path = spec.path.clone();
    let capacity_bytes = file.capacity_bytes();
    let disk = wrap(file);
    let ours = DeviceIdentity { cluster_id, device_id: device_id(node, index) };
    match Store::open(disk).await {
        Ok(store) => {
            let found = store.identity();
            if found.cluster_id != cluster_id {
                return Err(DriveError::OtherCluster { path, found: found.cluster_id, ours: cluster_id });
            }
            if found.device_id != ours.device_id {
                let found_node = (found.device_id >> 64) as u64;
                return Err(DriveError::OtherDevice { path, found: found.device_id, ours: ours.device_id, found_node });
            }
            Ok(OpenedStore { store, path, capacity_bytes, formatted: false })
        }
        Err(StoreError::NotFormatted) => {
            // Store::open consumed (and closed) the disk: open the file again to format it.
            let disk = wrap(FileDisk::open(&path).map_err(|source| DriveError::File { path: path.clone(), source })?);
            let config = match spec.role {
                DriveRole::Meta => {
                    StoreConfig { max_extent_bytes: META_EXTENT_BYTES_MAX, journal_bytes: Some(META_JOURNAL_BYTES) }
                }
                DriveRole::Data => {
                    StoreConfig { max_extent_bytes: DATA_EXTENT_BYTES_MAX, journal_bytes: Some(DATA_JOURNAL_BYTES) }
                }
            };
            let store = Store::format(disk, ours, config)
                .await
                .map_err(|source| DriveError::Store { path: path.clone(), source })?;
            Ok(OpenedStore { store, path, capacity_bytes, formatted: true })
        }
        Err(source) => Err(DriveError::Store { path, source }),
    }
}
