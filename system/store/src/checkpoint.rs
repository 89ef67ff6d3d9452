//! The checkpoint: the full extent table at one superblock generation.
//!
//! ```text
//! offset size type     field
//! 0      8    [u8;8]   magic b"TSCKPT\0\x01"
//! 8      8    u64      generation (of the superblock that references it)
//! 16     16   u128     device_id
//! 32     8    u64      next_extent_id
//! 40     8    u64      entry_count
//! 48     8    u64      len_bytes (whole checkpoint, header through trailer)
//! 56     8    u64      reserved, zero
//! 64     ..            entry_count entries (see record.rs), sorted by id, strictly increasing
//! len-4  4    u32      crc32c of bytes [0, len-4)
//! ```

use std::collections::BTreeMap;

use crate::ExtentId;
use crate::codec::{DecodeError, Reader, Writer, expect_eq as check, expect_zero, u32_at};
use crate::record::{Bounds, ENTRY_FIXED_BYTES, ExtentRecord};

pub(crate) const MAGIC: [u8; 8] = *b"TSCKPT\0\x01";
pub(crate) const HEADER_BYTES: u64 = 64;
pub(crate) const TRAILER_BYTES: u64 = 4;
/// Smallest encoded checkpoint: an empty table.
pub(crate) const MIN_BYTES: u64 = HEADER_BYTES + TRAILER_BYTES;

/// Encoded size of the worst case table for `data_blocks`: every block its own one-block extent.
pub(crate) fn max_encoded_bytes(data_blocks: u64) -> u64 {
    HEADER_BYTES + data_blocks * (ENTRY_FIXED_BYTES + 4) + TRAILER_BYTES
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) generation: u64,
    pub(crate) device_id: u128,
    pub(crate) next_extent_id: u64,
    pub(crate) extents: BTreeMap<ExtentId, ExtentRecord>,
}

/// What the referencing superblock says about the checkpoint; decoding checks every item.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected {
    pub(crate) generation: u64,
    pub(crate) device_id: u128,
    pub(crate) next_extent_id: u64,
    pub(crate) len_bytes: u64,
    pub(crate) crc: u32,
    pub(crate) bounds: Bounds,
}

impl Checkpoint {
    /// The encoded bytes (not padded to blocks).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_table(self.generation, self.device_id, self.next_extent_id, &self.extents)
    }

    /// Decodes `bytes` (at least `expected.len_bytes` long; the rest is block padding and ignored).
    pub(crate) fn decode(bytes: &[u8], expected: &Expected) -> Result<Checkpoint, DecodeError> {
        let len = usize::try_from(expected.len_bytes).map_err(|_| DecodeError::field("len_bytes", "too large"))?;
        if expected.len_bytes < MIN_BYTES || len > bytes.len() {
            return Err(DecodeError::Truncated {
                needed_bytes: expected.len_bytes.max(MIN_BYTES),
                available_bytes: bytes.len() as u64,
            });
        }
        let bytes = &bytes[..len];
        let computed = crc32c::crc32c(&bytes[..len - 4]);
        let stored = u32_at(bytes, len - 4);
        if bytes[..8] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        if stored != expected.crc {
            return Err(DecodeError::Checksum { stored: expected.crc, computed });
        }
        let mut r = Reader::new(&bytes[..len - 4]);
        r.bytes(8)?;
        let generation = r.u64()?;
        let device_id = r.u128()?;
        let next_extent_id = r.u64()?;
        let entry_count = r.u64()?;
        let len_bytes = r.u64()?;
        expect_zero("checkpoint reserved", r.bytes(8)?)?;
        check("generation", generation, expected.generation)?;
        check("device_id", device_id, expected.device_id)?;
        check("next_extent_id", next_extent_id, expected.next_extent_id)?;
        check("len_bytes", len_bytes, expected.len_bytes)?;
        let mut extents = BTreeMap::new();
        for _ in 0..entry_count {
            let (id, record) = ExtentRecord::decode(&mut r, &expected.bounds)?;
            if extents.last_key_value().is_some_and(|(&last, _)| last >= id) || id.0 >= next_extent_id {
                return Err(DecodeError::field(
                    "checkpoint entry id",
                    format!("{id} out of order or not below next_extent_id {next_extent_id}"),
                ));
            }
            extents.insert(id, record);
        }
        if r.remaining() != 0 {
            return Err(DecodeError::field(
                "checkpoint length",
                format!("{} bytes after the last entry", r.remaining()),
            ));
        }
        Ok(Checkpoint { generation, device_id, next_extent_id, extents })
    }
}

/// Encodes a checkpoint of `extents` (not padded to blocks) without copying the table.
pub(crate) fn encode_table(
    generation: u64,
    device_id: u128,
    next_extent_id: u64,
    extents: &BTreeMap<ExtentId, ExtentRecord>,
) -> Vec<u8> {
    let body_bytes: u64 = extents.values().map(ExtentRecord::encoded_bytes).sum();
    let len_bytes = HEADER_BYTES + body_bytes + TRAILER_BYTES;
    let mut w = Writer::with_capacity(usize::try_from(len_bytes).expect("checkpoint fits memory"));
    w.bytes(&MAGIC);
    w.u64(generation);
    w.u128(device_id);
    w.u64(next_extent_id);
    w.u64(extents.len() as u64);
    w.u64(len_bytes);
    w.u64(0);
    assert_eq!(w.len() as u64, HEADER_BYTES);
    for (&id, record) in extents {
        assert!(id.0 < next_extent_id, "{id} not below next_extent_id {next_extent_id}");
        record.encode(id, &mut w);
    }
    let crc = crc32c::crc32c(w.peek());
    w.u32(crc);
    let out = w.into_inner();
    assert_eq!(out.len() as u64, len_bytes);
    out
}

/// The trailer checksum of an encoded checkpoint (what the superblock records).
pub(crate) fn trailer_crc(encoded: &[u8]) -> u32 {
    assert!(encoded.len() as u64 >= MIN_BYTES);
    u32_at(encoded, encoded.len() - 4)
}
