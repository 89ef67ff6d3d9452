//! [`ChunkServer`]: a node's chunks over its drives, one `tessera-store` [`Store`] per drive.
//!
//! Every chunk is one store extent in the self-describing form of [`crate::chunk`]; the in-memory index
//! `ChunkKey -> Location` is rebuilt from the headers on [`ChunkServer::open`]. The server owns its data
//! drives outright: every extent on them is a chunk (an extent whose header does not decode is freed).
//!
//! # Call order
//! [`ChunkServer::format`] once for fresh drives (tests, the simulator's genesis), or
//! [`ChunkServer::open`] after every boot; then any sequence of [`put`](ChunkServer::put),
//! [`put_batch`](ChunkServer::put_batch), [`get`](ChunkServer::get), [`free`](ChunkServer::free),
//! [`scrub_step`](ChunkServer::scrub_step), one caller at a time (`&mut self`). After each call the
//! caller drains [`take_dropped`](ChunkServer::take_dropped) into its repair queue.
//!
//! # Failures
//! - A block that fails its checksum or cannot be read (on a get, or found by scrub) costs the chunk:
//!   it leaves the index, its extent is freed, and it is reported for repair (`DataError::Corrupt` to a
//!   get).
//! - A drive whose store fails a write or flush (fenced, `Disk` error that [`DiskError::is_fatal`]) is
//!   failed for good (STYLE rule 6): its store is dropped, its chunks leave the index (gets answer
//!   `NotFound`) and are reported for repair, and no later operation uses it. Repair means reformatting.
//!
//! Invariants (asserted): `index` and `owners` are inverse maps; every indexed chunk lives on a healthy
//! drive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tessera_env::{Disk, DiskError, NodeId, SECTOR_SIZE_BYTES, mark};
use tessera_store::{DeviceIdentity, ExtentId, ScrubCursor, Store, StoreConfig, StoreError};

use crate::chunk::{self, CHUNK_HEADER_BYTES, ChunkHeader};
use crate::wire::{CHUNK_PAYLOAD_MAX_BYTES, ChunkKey, ChunkMeta, DataError, DataStatus};

/// Store blocks are disk sectors.
const BLOCK_BYTES: u64 = SECTOR_SIZE_BYTES as u64;

/// Where a chunk lives and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Index into the server's drives.
    pub drive: usize,
    pub extent: ExtentId,
    pub payload_len_bytes: u32,
    pub payload_crc: u32,
    pub meta: ChunkMeta,
}

/// Why a chunk server could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("a chunk server needs at least one drive")]
    NoDrives,
    #[error("formatting drive {drive} failed: {error}")]
    Format { drive: usize, error: StoreError },
}

/// What [`ChunkServer::open`] found on the drives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Chunks indexed.
    pub chunks: u64,
    /// Drives that could not be opened or failed while being read (their chunks are not indexed).
    pub failed_drives: Vec<(usize, String)>,
    /// Extents freed because they are not valid chunks (bad header, wrong length, unreadable header).
    pub bad_extents: Vec<(usize, ExtentId, String)>,
    /// Extents freed because another extent holds the same chunk (a rewrite interrupted by a crash).
    pub duplicate_extents: Vec<(usize, ExtentId, ChunkKey)>,
}

struct Drive<D: Disk> {
    /// `None` once the drive failed.
    store: Option<Store<D>>,
    scrub_cursor: Option<ScrubCursor>,
}

/// A node's chunks over its drives. See the module docs for the call order and failure handling.
pub struct ChunkServer<D: Disk> {
    drives: Vec<Drive<D>>,
    index: BTreeMap<ChunkKey, Location>,
    /// The inverse of `index`: which chunk each extent holds.
    owners: BTreeMap<(usize, ExtentId), ChunkKey>,
    /// Chunks lost since the last `take_dropped` (corrupt on a get, or on a failed drive).
    dropped: Vec<ChunkMeta>,
    /// The drive the next scrub step starts with.
    scrub_drive: usize,
    scrub_bad_chunks: u64,
    scrub_blocks_checked: u64,
    open_report: OpenReport,
}

impl<D: Disk> fmt::Debug for ChunkServer<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkServer")
            .field("drives", &self.drives.len())
            .field("failed_drives", &self.failed_drives())
            .field("chunks", &self.index.len())
            .field("scrub_bad_chunks", &self.scrub_bad_chunks)
            .finish_non_exhaustive()
    }
}

/// How an operation's store error is handled.
enum Failure {
    /// The drive is not trusted any more.
    Drive,
    /// The chunk's bytes are damaged (checksum or medium error).
    Chunk,
    /// This drive cannot take the extent (no contiguous room, or above its extent size limit).
    NoRoom,
}

fn classify(e: &StoreError) -> Failure {
    match e {
        StoreError::Fenced => Failure::Drive,
        StoreError::Disk(d) if d.is_fatal() => Failure::Drive,
        StoreError::Corrupt { .. } | StoreError::Disk(DiskError::ReadFailed { .. }) => Failure::Chunk,
        StoreError::NoSpace { .. } | StoreError::ExtentTooLarge { .. } => Failure::NoRoom,
        other => panic!("chunk server: unexpected store error (a bug in the index or the store): {other}"),
    }
}

/// A well-mixed hash of a key (splitmix64 finaliser), for spreading chunks over drives.
fn key_hash(key: &ChunkKey) -> u64 {
    let mut x = (key.stripe.0 as u64) ^ ((key.stripe.0 >> 64) as u64).rotate_left(29) ^ u64::from(key.index);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn blocks_bytes(len_bytes: usize) -> u64 {
    (len_bytes as u64).div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// Checks a put's arguments.
fn check_put(meta: &ChunkMeta, payload: &[u8]) -> Result<(), DataError> {
    if payload.len() > CHUNK_PAYLOAD_MAX_BYTES {
        return Err(DataError::BadRequest(format!(
            "payload of {} bytes exceeds {CHUNK_PAYLOAD_MAX_BYTES}",
            payload.len()
        )));
    }
    chunk::validate_meta(meta).map_err(|e| DataError::BadRequest(e.to_string()))
}

impl<D: Disk> ChunkServer<D> {
    /// Formats every drive (destroys contents) and returns an empty server. Drive `i` gets device id
    /// `node << 64 | i` in cluster `cluster_id`.
    pub async fn format(
        disks: Vec<D>,
        cluster_id: u128,
        node: NodeId,
        config: StoreConfig,
    ) -> Result<ChunkServer<D>, ServerError> {
        if disks.is_empty() {
            return Err(ServerError::NoDrives);
        }
        let mut stores = Vec::with_capacity(disks.len());
        for (drive, disk) in disks.into_iter().enumerate() {
            let identity = DeviceIdentity { cluster_id, device_id: (u128::from(node.0) << 64) | drive as u128 };
            let store = Store::format(disk, identity, config.clone())
                .await
                .map_err(|error| ServerError::Format { drive, error })?;
            stores.push(Ok(store));
        }
        ChunkServer::load(stores).await
    }

    /// Opens every drive (store crash recovery) and rebuilds the index from the chunk headers. A drive
    /// that does not open is failed (see [`ChunkServer::open_report`]); only an empty list is an error.
    pub async fn open(disks: Vec<D>) -> Result<ChunkServer<D>, ServerError> {
        let mut stores = Vec::with_capacity(disks.len());
        for disk in disks {
            stores.push(Store::open(disk).await);
        }
        ChunkServer::load(stores).await
    }

    /// Builds the server over stores the caller already formatted or opened.
    pub async fn from_stores(stores: Vec<Store<D>>) -> Result<ChunkServer<D>, ServerError> {
        ChunkServer::load(stores.into_iter().map(Ok).collect()).await
    }

    async fn load(stores: Vec<Result<Store<D>, StoreError>>) -> Result<ChunkServer<D>, ServerError> {
        if stores.is_empty() {
            return Err(ServerError::NoDrives);
        }
        let mut server = ChunkServer {
            drives: Vec::with_capacity(stores.len()),
            index: BTreeMap::new(),
            owners: BTreeMap::new(),
            dropped: Vec::new(),
            scrub_drive: 0,
            scrub_bad_chunks: 0,
            scrub_blocks_checked: 0,
            open_report: OpenReport::default(),
        };
        for (drive, store) in stores.into_iter().enumerate() {
            let store =
                store.inspect_err(|e| server.open_report.failed_drives.push((drive, format!("open: {e}")))).ok();
            server.drives.push(Drive { store, scrub_cursor: None });
        }
        for drive in 0..server.drives.len() {
            server.load_drive(drive).await;
        }
        server.open_report.chunks = server.index.len() as u64;
        // Nothing was lost yet: chunks of drives failing during the load were never known.
        server.dropped.clear();
        server.check_invariants();
        Ok(server)
    }

    /// Indexes one drive's chunks from their headers; frees extents that are not valid chunks and the
    /// losing copies of duplicated keys.
    async fn load_drive(&mut self, drive: usize) {
        let Some(store) = self.drives[drive].store.as_ref() else { return };
        let mut found: Vec<(ExtentId, ChunkHeader)> = Vec::new();
        let mut bad: Vec<(ExtentId, String)> = Vec::new();
        for (extent, len_bytes) in store.extents() {
            let head_bytes = len_bytes.min(CHUNK_HEADER_BYTES as u64);
            match store.read_range(extent, 0, head_bytes).await {
                Ok(bytes) => match chunk::decode_header(&bytes) {
                    Ok(h) if u64::from(h.payload_len_bytes) + CHUNK_HEADER_BYTES as u64 == len_bytes => {
                        found.push((extent, h));
                    }
                    Ok(h) => bad.push((
                        extent,
                        format!("extent of {len_bytes} bytes holds a header for {} payload bytes", h.payload_len_bytes),
                    )),
                    Err(e) => bad.push((extent, e.to_string())),
                },
                Err(e) => match classify(&e) {
                    Failure::Chunk => bad.push((extent, e.to_string())),
                    Failure::Drive | Failure::NoRoom => {
                        self.open_report.failed_drives.push((drive, format!("reading headers: {e}")));
                        self.fail_drive(drive);
                        return;
                    }
                },
            }
        }
        let mut to_free: Vec<ExtentId> = bad.iter().map(|(extent, _)| *extent).collect();
        self.open_report.bad_extents.extend(bad.into_iter().map(|(extent, why)| (drive, extent, why)));
        for (extent, header) in found {
            let key = header.meta.key;
            if let Some(old) = self.index.get(&key).copied() {
                // Same drive: the later extent (extents come in id order) is the newer write. Across
                // drives the order is unknown: keep the first drive's, deterministically.
                if old.drive != drive {
                    self.open_report.duplicate_extents.push((drive, extent, key));
                    to_free.push(extent);
                    continue;
                }
                self.open_report.duplicate_extents.push((drive, old.extent, key));
                self.remove_chunk(&key);
                to_free.push(old.extent);
            }
            self.install(header.meta, drive, extent, header.payload_len_bytes, header.payload_crc);
        }
        let frees = to_free.into_iter().map(|extent| (drive, extent)).collect();
        // A failure here fails the drive; the report already says so.
        if self.free_extents(frees).await.is_err() {
            self.open_report.failed_drives.push((drive, "freeing bad extents failed".into()));
        }
    }

    /// What the last `open` found.
    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }

    /// Stores a chunk durably. Idempotent: the same key with the same payload (length and CRC) is Ok
    /// without I/O; the same key with another payload writes the new chunk, then frees the old one.
    pub async fn put(&mut self, meta: &ChunkMeta, payload: &[u8]) -> Result<(), DataError> {
        check_put(meta, payload)?;
        if self.already_stored(meta, payload) {
            return Ok(());
        }
        let encoded = chunk::encode(meta, payload);
        let (drive, extent) = self.write_one(&meta.key, &encoded).await?;
        let old = self.install(*meta, drive, extent, payload.len() as u32, crc32c::crc32c(payload));
        if let Some(old) = old {
            // The new chunk is durable; losing the old one's free to a drive failure is harmless.
            let _ = self.free_extents(vec![(old.drive, old.extent)]).await;
        }
        Ok(())
    }

    /// Stores several chunks with one group commit (`write_extents`) per drive; a result per item, in
    /// order. Items that cannot join a group (a key repeated in the batch, a drive that ran out of room
    /// or failed) are then put one by one.
    pub async fn put_batch(&mut self, items: Vec<(ChunkMeta, Vec<u8>)>) -> Vec<Result<(), DataError>> {
        let mut results: Vec<Option<Result<(), DataError>>> = vec![None; items.len()];
        let mut seen = BTreeSet::new();
        let mut repeated = Vec::new();
        let mut alone = Vec::new();
        let mut groups: BTreeMap<usize, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        let mut planned_bytes: BTreeMap<usize, u64> = BTreeMap::new();
        for (i, (meta, payload)) in items.iter().enumerate() {
            if let Err(e) = check_put(meta, payload) {
                results[i] = Some(Err(e));
            } else if !seen.insert(meta.key) {
                repeated.push(i);
            } else if self.already_stored(meta, payload) {
                results[i] = Some(Ok(()));
            } else {
                let encoded = chunk::encode(meta, payload);
                let needed = blocks_bytes(encoded.len());
                let fits = |d: usize| self.room_bytes(d) >= needed + planned_bytes.get(&d).copied().unwrap_or(0);
                match self.drive_order(&meta.key).into_iter().find(|&d| fits(d)) {
                    Some(drive) => {
                        *planned_bytes.entry(drive).or_default() += needed;
                        groups.entry(drive).or_default().push((i, encoded));
                    }
                    None => alone.push(i),
                }
            }
        }
        let mut old_extents = Vec::new();
        for (drive, group) in groups {
            let slices: Vec<&[u8]> = group.iter().map(|(_, encoded)| &encoded[..]).collect();
            let store = self.drives[drive].store.as_mut().expect("groups name healthy drives");
            match store.write_extents(&slices).await {
                Ok(extents) => {
                    assert_eq!(extents.len(), group.len());
                    for ((i, _), extent) in group.iter().zip(extents) {
                        let (meta, payload) = &items[*i];
                        let crc = crc32c::crc32c(payload);
                        if let Some(old) = self.install(*meta, drive, extent, payload.len() as u32, crc) {
                            old_extents.push((old.drive, old.extent));
                        }
                        results[*i] = Some(Ok(()));
                    }
                }
                Err(e) => {
                    if let Failure::Drive = classify(&e) {
                        self.fail_drive(drive);
                    }
                    alone.extend(group.iter().map(|(i, _)| *i));
                }
            }
        }
        let _ = self.free_extents(old_extents).await;
        alone.sort_unstable();
        for i in alone.into_iter().chain(repeated) {
            let (meta, payload) = &items[i];
            results[i] = Some(self.put(meta, payload).await);
        }
        results.into_iter().map(|r| r.expect("every item answered")).collect()
    }

    /// Reads `len_bytes` of the chunk's payload from `offset_bytes`, verified: the store checks the
    /// blocks, the header must name `key`, and a read of the whole payload must match its CRC. A chunk
    /// found damaged is dropped (freed, reported by `take_dropped`) and the answer is `Corrupt`.
    pub async fn get(&mut self, key: &ChunkKey, offset_bytes: u32, len_bytes: u32) -> Result<Vec<u8>, DataError> {
        let loc = *self.index.get(key).ok_or(DataError::NotFound(*key))?;
        let end = u64::from(offset_bytes) + u64::from(len_bytes);
        if end > u64::from(loc.payload_len_bytes) {
            return Err(DataError::BadRequest(format!(
                "range {offset_bytes}+{len_bytes} outside the {}-byte chunk",
                loc.payload_len_bytes
            )));
        }
        let store = self.drives[loc.drive].store.as_ref().expect("indexed chunks live on healthy drives");
        match read_chunk(store, loc.extent, offset_bytes, len_bytes).await {
            Ok((header, data)) => {
                let whole = offset_bytes == 0 && len_bytes == loc.payload_len_bytes;
                let valid = match chunk::decode_header(&header) {
                    Ok(h) => {
                        h.meta.key == *key
                            && h.payload_len_bytes == loc.payload_len_bytes
                            && h.payload_crc == loc.payload_crc
                            && (!whole || chunk::check_payload(&h, &data).is_ok())
                    }
                    Err(_) => false,
                };
                if valid {
                    return Ok(data);
                }
            }
            Err(e) => match classify(&e) {
                Failure::Chunk => {}
                Failure::Drive | Failure::NoRoom => {
                    self.fail_drive(loc.drive);
                    return Err(DataError::DriveFailed(format!("drive {}: {e}", loc.drive)));
                }
            },
        }
        self.remove_chunk(key);
        self.dropped.push(loc.meta);
        let _ = self.free_extents(vec![(loc.drive, loc.extent)]).await;
        Err(DataError::Corrupt(*key))
    }

    /// Frees chunks durably (one `free_extents` per drive). Unknown keys are fine. `DriveFailed` if a
    /// drive failed on the way (its chunks are gone anyway; a retry answers Ok).
    pub async fn free(&mut self, keys: &[ChunkKey]) -> Result<(), DataError> {
        let mut extents = Vec::new();
        for key in keys.iter().collect::<BTreeSet<_>>() {
            if let Some(loc) = self.remove_chunk(key) {
                extents.push((loc.drive, loc.extent));
            }
        }
        self.free_extents(extents).await
    }

    /// The keys of every chunk, in order.
    pub fn keys(&self) -> Vec<ChunkKey> {
        self.index.keys().copied().collect()
    }

    /// Every chunk with its location, in key order.
    pub fn chunks(&self) -> impl Iterator<Item = &Location> {
        self.index.values()
    }

    pub fn location(&self, key: &ChunkKey) -> Option<&Location> {
        self.index.get(key)
    }

    pub fn drive_count(&self) -> usize {
        self.drives.len()
    }

    pub fn failed_drives(&self) -> usize {
        self.drives.iter().filter(|d| d.store.is_none()).count()
    }

    /// The node's data status; `rebuild` is left default for the caller to fill in.
    pub fn status(&self) -> DataStatus {
        let stats: Vec<_> = self.drives.iter().filter_map(|d| d.store.as_ref()).map(Store::stats).collect();
        DataStatus {
            chunks: self.index.len() as u64,
            used_bytes: stats.iter().map(|s| s.used_bytes).sum(),
            free_bytes: stats.iter().map(|s| s.free_bytes).sum(),
            failed_drives: self.failed_drives() as u32,
            scrub_bad_chunks: self.scrub_bad_chunks,
            scrub_blocks_checked: self.scrub_blocks_checked,
            rebuild: Default::default(),
        }
    }

    /// Chunks lost since the last call (corrupt on a get, or on a drive that failed): the caller queues
    /// their repair. Scrub's findings are returned by [`scrub_step`](ChunkServer::scrub_step) instead.
    pub fn take_dropped(&mut self) -> Vec<ChunkMeta> {
        std::mem::take(&mut self.dropped)
    }

    /// Verifies up to `budget_blocks` blocks of the next healthy drive (round robin, each drive resuming
    /// where its last step stopped). Chunks with a bad block are dropped and freed, and returned for
    /// repair.
    pub async fn scrub_step(&mut self, budget_blocks: u64) -> Vec<ChunkMeta> {
        let n = self.drives.len();
        let Some(drive) = (0..n).map(|i| (self.scrub_drive + i) % n).find(|&d| self.drives[d].store.is_some()) else {
            return Vec::new();
        };
        self.scrub_drive = (drive + 1) % n;
        let cursor = self.drives[drive].scrub_cursor.take();
        let store = self.drives[drive].store.as_mut().expect("chosen healthy");
        let report = match store.scrub(cursor, budget_blocks).await {
            Ok(report) => report,
            Err(e) => {
                // Any scrub error is a device failure: bad blocks are findings, not errors.
                if !matches!(classify(&e), Failure::Drive) {
                    panic!("scrub of drive {drive} failed with a non-device error: {e}");
                }
                self.fail_drive(drive);
                return Vec::new();
            }
        };
        self.drives[drive].scrub_cursor = report.next;
        self.scrub_blocks_checked += report.blocks_checked;
        let bad: BTreeSet<ExtentId> = report.bad.iter().map(|b| b.extent).collect();
        let mut lost = Vec::new();
        let mut frees = Vec::new();
        for extent in bad {
            if let Some(key) = self.owners.get(&(drive, extent)).copied() {
                let loc = self.remove_chunk(&key).expect("owners mirror the index");
                lost.push(loc.meta);
            }
            frees.push((drive, extent));
        }
        self.scrub_bad_chunks += lost.len() as u64;
        let _ = self.free_extents(frees).await;
        lost
    }

    /// Healthy drives in this key's preference order (a hash of the key picks the first).
    fn drive_order(&self, key: &ChunkKey) -> Vec<usize> {
        let n = self.drives.len();
        let start = (key_hash(key) % n as u64) as usize;
        (0..n).map(|i| (start + i) % n).filter(|&d| self.drives[d].store.is_some()).collect()
    }

    /// Free bytes of a drive (0 when failed).
    fn room_bytes(&self, drive: usize) -> u64 {
        self.drives[drive].store.as_ref().map_or(0, |s| s.stats().free_bytes)
    }

    fn already_stored(&self, meta: &ChunkMeta, payload: &[u8]) -> bool {
        let stored = self.index.get(&meta.key).is_some_and(|loc| {
            loc.payload_len_bytes as usize == payload.len() && loc.payload_crc == crc32c::crc32c(payload)
        });
        if stored {
            mark!("data.duplicate_put");
        }
        stored
    }

    /// Writes one encoded chunk on the first drive of the key's order that takes it.
    async fn write_one(&mut self, key: &ChunkKey, encoded: &[u8]) -> Result<(usize, ExtentId), DataError> {
        let needed = blocks_bytes(encoded.len());
        let mut last_failure = None;
        for drive in self.drive_order(key) {
            if self.room_bytes(drive) < needed {
                continue;
            }
            let store = self.drives[drive].store.as_mut().expect("drive_order lists healthy drives");
            match store.write_extent(encoded).await {
                Ok(extent) => return Ok((drive, extent)),
                Err(e) => match classify(&e) {
                    Failure::NoRoom | Failure::Chunk => {}
                    Failure::Drive => {
                        last_failure = Some(format!("drive {drive}: {e}"));
                        self.fail_drive(drive);
                    }
                },
            }
        }
        if self.failed_drives() == self.drives.len() {
            let why = last_failure.unwrap_or_else(|| "every drive of the node failed".into());
            return Err(DataError::DriveFailed(why));
        }
        Err(DataError::NoSpace { needed_bytes: needed })
    }

    /// Records a durable chunk; returns the location it replaces (whose extent the caller frees).
    fn install(
        &mut self,
        meta: ChunkMeta,
        drive: usize,
        extent: ExtentId,
        payload_len_bytes: u32,
        payload_crc: u32,
    ) -> Option<Location> {
        assert!(self.drives[drive].store.is_some(), "installing a chunk on failed drive {drive}");
        let loc = Location { drive, extent, payload_len_bytes, payload_crc, meta };
        assert!(self.owners.insert((drive, extent), meta.key).is_none(), "extent {extent} indexed twice");
        let old = self.index.insert(meta.key, loc);
        if let Some(old) = old {
            assert_eq!(self.owners.remove(&(old.drive, old.extent)), Some(meta.key));
        }
        old
    }

    /// Takes a chunk out of the index (not off the disk).
    fn remove_chunk(&mut self, key: &ChunkKey) -> Option<Location> {
        let loc = self.index.remove(key)?;
        assert_eq!(self.owners.remove(&(loc.drive, loc.extent)), Some(*key));
        Some(loc)
    }

    /// Frees extents durably, one `free_extents` per drive; extents on failed drives are skipped.
    /// `DriveFailed` if a drive failed on the way (it is failed).
    async fn free_extents(&mut self, extents: Vec<(usize, ExtentId)>) -> Result<(), DataError> {
        let mut per_drive: BTreeMap<usize, Vec<ExtentId>> = BTreeMap::new();
        for (drive, extent) in extents {
            per_drive.entry(drive).or_default().push(extent);
        }
        let mut result = Ok(());
        for (drive, extents) in per_drive {
            let Some(store) = self.drives[drive].store.as_mut() else { continue };
            if let Err(e) = store.free_extents(&extents).await {
                match classify(&e) {
                    Failure::Drive => {
                        self.fail_drive(drive);
                        result = Err(DataError::DriveFailed(format!("drive {drive}: {e}")));
                    }
                    Failure::Chunk | Failure::NoRoom => panic!("free of drive {drive} failed: {e}"),
                }
            }
        }
        result
    }

    /// Stops trusting `drive` for good: drops its store and its chunks (reported by `take_dropped`).
    fn fail_drive(&mut self, drive: usize) {
        if self.drives[drive].store.take().is_none() {
            return;
        }
        self.drives[drive].scrub_cursor = None;
        let keys: Vec<ChunkKey> =
            self.owners.range((drive, ExtentId(0))..=(drive, ExtentId(u64::MAX))).map(|(_, k)| *k).collect();
        for key in keys {
            let loc = self.remove_chunk(&key).expect("owners mirror the index");
            self.dropped.push(loc.meta);
        }
    }

    fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.owners.len());
        for (key, loc) in &self.index {
            assert_eq!(self.owners.get(&(loc.drive, loc.extent)), Some(key));
            assert!(self.drives[loc.drive].store.is_some());
        }
    }

    /// Test hook: the invariants hold.
    #[cfg(test)]
    pub(crate) fn assert_invariants(&self) {
        self.check_invariants();
    }

    /// Test hook: the store of a drive.
    #[cfg(test)]
    pub(crate) fn store(&self, drive: usize) -> Option<&Store<D>> {
        self.drives[drive].store.as_ref()
    }
}

/// Reads a chunk's header and the payload range: one store read when the range starts in the first
/// block, else two (the header's block and the range's blocks).
async fn read_chunk<D: Disk>(
    store: &Store<D>,
    extent: ExtentId,
    offset_bytes: u32,
    len_bytes: u32,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let header = CHUNK_HEADER_BYTES as u64;
    let start = header + u64::from(offset_bytes);
    if start < BLOCK_BYTES {
        let mut bytes = store.read_range(extent, 0, start + u64::from(len_bytes)).await?;
        let data = bytes.split_off(start as usize);
        bytes.truncate(CHUNK_HEADER_BYTES);
        Ok((bytes, data))
    } else {
        let head = store.read_range(extent, 0, header).await?;
        let data = store.read_range(extent, start, u64::from(len_bytes)).await?;
        Ok((head, data))
    }
}
