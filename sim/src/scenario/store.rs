//! The store behind each extent server: Tessera's storage engine, or the toy log that tests the simulator.

use tessera_store::{DeviceIdentity, ExtentId, Store, StoreConfig};

use crate::disk::SimDisk;

use super::toy_store::ToyStore;

/// Which store the extent servers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `tessera_store::Store`: the system under test.
    Tessera,
    /// The toy log of [`super::toy_store`]; with `ack_before_flush` it is known to lose acknowledged data.
    Toy { ack_before_flush: bool },
}

/// One opened store on one disk.
#[derive(Debug)]
pub enum ExtentStore {
    Tessera(Box<Store<SimDisk>>),
    Toy(ToyStore<SimDisk>),
}

/// Every store error as text: the client reports it verbatim.
fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl ExtentStore {
    /// `cluster_id` and `device_id` end up in the store's superblock.
    pub async fn format(
        kind: StoreKind,
        disk: SimDisk,
        cluster_id: u128,
        device_id: u128,
    ) -> Result<ExtentStore, String> {
        match kind {
            StoreKind::Tessera => {
                let identity = DeviceIdentity { cluster_id, device_id };
                Store::format(disk, identity, StoreConfig::default())
                    .await
                    .map(|s| ExtentStore::Tessera(Box::new(s)))
                    .map_err(text)
            }
            StoreKind::Toy { ack_before_flush } => {
                ToyStore::format(disk, ack_before_flush).await.map(ExtentStore::Toy).map_err(text)
            }
        }
    }

    pub async fn open(kind: StoreKind, disk: SimDisk) -> Result<ExtentStore, String> {
        match kind {
            StoreKind::Tessera => Store::open(disk).await.map(|s| ExtentStore::Tessera(Box::new(s))).map_err(text),
            StoreKind::Toy { ack_before_flush } => {
                ToyStore::open(disk, ack_before_flush).await.map(ExtentStore::Toy).map_err(text)
            }
        }
    }

    pub fn extent_count(&self) -> usize {
        match self {
            ExtentStore::Tessera(s) => s.extents().len(),
            ExtentStore::Toy(s) => s.extent_count(),
        }
    }

    /// Durable when it returns `Ok`.
    pub async fn write_extent(&mut self, data: &[u8]) -> Result<u64, String> {
        match self {
            ExtentStore::Tessera(s) => s.write_extent(data).await.map(|id| id.0).map_err(text),
            ExtentStore::Toy(s) => s.write_extent(data).await.map_err(text),
        }
    }

    pub async fn read_extent(&self, extent: u64) -> Result<Vec<u8>, String> {
        match self {
            ExtentStore::Tessera(s) => s.read_extent(ExtentId(extent)).await.map_err(text),
            ExtentStore::Toy(s) => s.read_extent(extent).await.map_err(text),
        }
    }
}
