//! The disk conformance suite: the behaviour every [`Disk`] implementation must show.
//!
//! One suite, run against the simulated disk (`tessera-sim`) and the file disk (`tessera-real-io`), so the
//! simulator cannot drift from the real thing. Each check is an async function generic over the disk; the
//! caller supplies the executor (madsim or a plain `block_on`) and, for the reopen check, a way to close
//! and reopen the same device.

use crate::{Disk, DiskError, SECTOR_SIZE_BYTES};

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;

/// A failed conformance check: which check and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "disk conformance check `{}` failed: {}", self.check, self.detail)
    }
}

fn fail<T>(check: &'static str, detail: String) -> Result<T, Violation> {
    Err(Violation { check, detail })
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i % 251) as u8).wrapping_mul(31)).collect()
}

/// All checks that need only one open device. The device must be at least 16 sectors and its contents
/// are overwritten.
pub async fn check_all<D: Disk>(disk: &D) -> Result<(), Violation> {
    check_capacity(disk)?;
    check_bad_input(disk).await?;
    check_read_your_writes(disk).await?;
    check_overwrite(disk).await?;
    check_flush(disk).await?;
    Ok(())
}

pub fn check_capacity<D: Disk>(disk: &D) -> Result<(), Violation> {
    let cap = disk.capacity_bytes();
    if cap == 0 || !cap.is_multiple_of(SECTOR) || cap < 16 * SECTOR {
        return fail("capacity", format!("capacity {cap} is not a non-zero multiple of {SECTOR} of >= 16 sectors"));
    }
    Ok(())
}

/// Unaligned, zero-length and out-of-range accesses give the documented errors and change nothing.
pub async fn check_bad_input<D: Disk>(disk: &D) -> Result<(), Violation> {
    let cap = disk.capacity_bytes();
    let one = vec![7u8; SECTOR_SIZE_BYTES];
    disk.write(0, &one).await.map_err(|e| Violation { check: "bad_input", detail: format!("setup write: {e}") })?;
    let cases: [(u64, usize, &str); 5] = [
        (1, SECTOR_SIZE_BYTES, "unaligned offset"),
        (0, 100, "unaligned length"),
        (0, 0, "zero length"),
        (cap, SECTOR_SIZE_BYTES, "at capacity"),
        (u64::MAX - (SECTOR - 1), SECTOR_SIZE_BYTES, "offset overflow"),
    ];
    for (offset, len, what) in cases {
        let want_unaligned = what.starts_with("unaligned") || what == "zero length";
        let r = disk.read(offset, len).await;
        let ok = match &r {
            Err(DiskError::Unaligned { .. }) => want_unaligned,
            Err(DiskError::OutOfRange { .. }) => !want_unaligned,
            _ => false,
        };
        if !ok {
            return fail("bad_input", format!("read {what} ({offset}, {len}) gave {r:?}"));
        }
        let data = vec![9u8; len];
        let w = disk.write(offset, &data).await;
        let ok = match &w {
            Err(DiskError::Unaligned { .. }) => want_unaligned,
            Err(DiskError::OutOfRange { .. }) => !want_unaligned,
            _ => false,
        };
        if !ok {
            return fail("bad_input", format!("write {what} ({offset}, {len}) gave {w:?}"));
        }
    }
    let back =
        disk.read(0, SECTOR_SIZE_BYTES).await.map_err(|e| Violation { check: "bad_input", detail: format!("{e}") })?;
    if back != one {
        return fail("bad_input", "a rejected write changed the device".into());
    }
    Ok(())
}

/// A completed write is visible to later reads, at the start, the middle and the last sector.
pub async fn check_read_your_writes<D: Disk>(disk: &D) -> Result<(), Violation> {
    let cap = disk.capacity_bytes();
    for (i, offset) in [0, 3 * SECTOR, cap - 2 * SECTOR].into_iter().enumerate() {
        let data = pattern(i as u8 + 1, 2 * SECTOR_SIZE_BYTES);
        disk.write(offset, &data)
            .await
            .map_err(|e| Violation { check: "read_your_writes", detail: format!("write at {offset}: {e}") })?;
        let back = disk
            .read(offset, data.len())
            .await
            .map_err(|e| Violation { check: "read_your_writes", detail: format!("read at {offset}: {e}") })?;
        if back != data {
            return fail("read_your_writes", format!("bytes read at {offset} differ from bytes written"));
        }
        let one = disk
            .read(offset + SECTOR, SECTOR_SIZE_BYTES)
            .await
            .map_err(|e| Violation { check: "read_your_writes", detail: format!("{e}") })?;
        if one[..] != data[SECTOR_SIZE_BYTES..] {
            return fail("read_your_writes", format!("partial read at {} differs", offset + SECTOR));
        }
    }
    Ok(())
}

/// Overlapping writes: the later one wins on the overlap, the rest stays.
pub async fn check_overwrite<D: Disk>(disk: &D) -> Result<(), Violation> {
    let base = 6 * SECTOR;
    let a = pattern(40, 3 * SECTOR_SIZE_BYTES);
    let b = pattern(90, SECTOR_SIZE_BYTES);
    let err = |e: DiskError| Violation { check: "overwrite", detail: e.to_string() };
    disk.write(base, &a).await.map_err(err)?;
    disk.write(base + SECTOR, &b).await.map_err(err)?;
    let back = disk.read(base, a.len()).await.map_err(err)?;
    let mut want = a.clone();
    want[SECTOR_SIZE_BYTES..2 * SECTOR_SIZE_BYTES].copy_from_slice(&b);
    if back != want {
        return fail("overwrite", "overlapping write did not replace exactly the overlapped sector".into());
    }
    Ok(())
}

/// `flush` succeeds on a healthy device and does not change what reads return.
pub async fn check_flush<D: Disk>(disk: &D) -> Result<(), Violation> {
    let err = |e: DiskError| Violation { check: "flush", detail: e.to_string() };
    let data = pattern(200, SECTOR_SIZE_BYTES);
    disk.write(10 * SECTOR, &data).await.map_err(err)?;
    disk.flush().await.map_err(err)?;
    disk.flush().await.map_err(err)?;
    if disk.read(10 * SECTOR, SECTOR_SIZE_BYTES).await.map_err(err)? != data {
        return fail("flush", "flush changed the device's contents".into());
    }
    Ok(())
}

/// Data written and flushed before the device was closed is there after it is reopened.
/// `reopen` closes the device (cleanly, or by a simulated crash) and opens the same device again.
pub async fn check_flushed_survives_reopen<D, F>(disk: D, reopen: F) -> Result<D, Violation>
where
    D: Disk,
    F: FnOnce(D) -> D,
{
    let err = |e: DiskError| Violation { check: "flushed_survives_reopen", detail: e.to_string() };
    let data = pattern(77, 4 * SECTOR_SIZE_BYTES);
    disk.write(4 * SECTOR, &data).await.map_err(err)?;
    disk.flush().await.map_err(err)?;
    let disk = reopen(disk);
    let back = disk.read(4 * SECTOR, data.len()).await.map_err(err)?;
    if back != data {
        return fail("flushed_survives_reopen", "flushed bytes changed across reopen".into());
    }
    Ok(disk)
}
