use core::future::Future;

/// Size of a sector: the unit of alignment, of atomicity and of tearing for every [`Disk`].
pub const SECTOR_SIZE_BYTES: usize = 4096;

/// Errors a [`Disk`] reports. Every one is something a caller must expect and handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// Offset or length is not a multiple of [`SECTOR_SIZE_BYTES`], or the length is zero.
    #[error("unaligned disk access: offset {offset_bytes} length {len_bytes} (sector {SECTOR_SIZE_BYTES} bytes)")]
    Unaligned { offset_bytes: u64, len_bytes: u64 },
    /// The access reaches past the end of the device.
    #[error("disk access out of range: offset {offset_bytes} length {len_bytes} capacity {capacity_bytes}")]
    OutOfRange { offset_bytes: u64, len_bytes: u64, capacity_bytes: u64 },
    /// The medium could not read these sectors (a latent sector error). The device stays usable.
    #[error("medium error reading at offset {offset_bytes}")]
    ReadFailed { offset_bytes: u64 },
    /// A write or flush failed. After this the device is fenced: every later call returns
    /// [`DiskError::Fenced`] until it is repaired (re-opened by an operator or the repair path), because
    /// what reached the medium is unknown (the PostgreSQL fsync lesson).
    #[error("write or flush failed at offset {offset_bytes}; device fenced")]
    WriteFailed { offset_bytes: u64 },
    /// The device failed earlier and is not trusted any more.
    #[error("device fenced after an earlier write or flush failure")]
    Fenced,
    /// The device is gone: the node crashed or the drive was pulled. Nothing issued after this point
    /// reaches the medium.
    #[error("device offline")]
    Offline,
}

impl DiskError {
    /// True if the device can no longer be trusted for writes without repair.
    pub fn is_fatal(&self) -> bool {
        matches!(self, DiskError::WriteFailed { .. } | DiskError::Fenced | DiskError::Offline)
    }
}

/// A block device of [`SECTOR_SIZE_BYTES`] sectors.
///
/// Semantics every implementation honours (the conformance suite checks what is checkable):
/// - **Alignment.** `offset_bytes` and the length of every read and write are non-zero multiples of
///   [`SECTOR_SIZE_BYTES`]; otherwise [`DiskError::Unaligned`]. Past the end: [`DiskError::OutOfRange`].
/// - **Visibility.** A completed `write` is visible to every later `read` on this device (the live image),
///   whether or not it was flushed.
/// - **Durability.** Only writes that completed before a `flush` that completed survive a crash (the
///   durable image). A crash may drop or keep each sector of every write not yet covered by a completed
///   flush, independently per sector: a multi-sector write can tear at any sector boundary, but a single
///   sector is never half-written. Writes that are concurrent (in flight together) are unordered.
/// - **Corruption.** A read may return bytes that differ from what was written (latent corruption) or fail
///   with [`DiskError::ReadFailed`]. Callers checksum everything they read.
/// - **Failure.** A failed write or flush fences the device ([`DiskError::WriteFailed`], then
///   [`DiskError::Fenced`] for every later call): it is never trusted again without repair.
/// - **Fresh device.** Sectors never written read back as some content, not an error (zeros on a
///   new file or simulated disk, anything on a reused block device).
pub trait Disk: Send + Sync + 'static {
    /// Usable size, a multiple of [`SECTOR_SIZE_BYTES`].
    fn capacity_bytes(&self) -> u64;

    /// Read `len_bytes` starting at `offset_bytes`.
    fn read(&self, offset_bytes: u64, len_bytes: usize) -> impl Future<Output = Result<Vec<u8>, DiskError>> + Send;

    /// Write `data` at `offset_bytes`. Visible to reads on completion; durable only after a later flush.
    fn write(&self, offset_bytes: u64, data: &[u8]) -> impl Future<Output = Result<(), DiskError>> + Send;

    /// Make every write that completed before this call durable.
    fn flush(&self) -> impl Future<Output = Result<(), DiskError>> + Send;
}

/// Check alignment and range of an access as every [`Disk`] must; shared by the implementations so they
/// agree on the exact error for each bad input.
pub fn check_io_range(offset_bytes: u64, len_bytes: u64, capacity_bytes: u64) -> Result<(), DiskError> {
    let sector = SECTOR_SIZE_BYTES as u64;
    if len_bytes == 0 || !offset_bytes.is_multiple_of(sector) || !len_bytes.is_multiple_of(sector) {
        return Err(DiskError::Unaligned { offset_bytes, len_bytes });
    }
    match offset_bytes.checked_add(len_bytes) {
        Some(end) if end <= capacity_bytes => Ok(()),
        _ => Err(DiskError::OutOfRange { offset_bytes, len_bytes, capacity_bytes }),
    }
}
