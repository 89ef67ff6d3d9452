//! Journal entries: a checksummed batch of commit and free records, padded to whole blocks.
//!
//! ```text
//! offset size type     field
//! 0      8    [u8;8]   magic b"TSJRNL\0\x01"
//! 8      16   u128     device_id
//! 24     8    u64      seq (contiguous: the entry at journal block 0 has the superblock's start seq)
//! 32     4    u32      record_count (>= 1)
//! 36     4    u32      payload_len_bytes
//! 40     4    u32      crc32c of the whole padded entry with these 4 bytes taken as zero
//! 44     4    u32      reserved, zero
//! 48     ..            payload: record_count records
//! ..                   zero padding to a block boundary
//! ```
//! Records: `Commit` = tag `1u8` + an extent entry (record.rs); `Free` = tag `2u8` + `id u64`.

use crate::ExtentId;
use crate::codec::{DecodeError, Reader, Writer, crc_with_hole, expect_eq, expect_zero, u32_at};
use crate::layout::{BLOCK_BYTES, BLOCK_BYTES_USIZE, blocks_for_bytes};
use crate::record::{Bounds, ENTRY_FIXED_BYTES, ExtentRecord};

pub(crate) const MAGIC: [u8; 8] = *b"TSJRNL\0\x01";
pub(crate) const HEADER_BYTES: u64 = 48;
const CRC_OFFSET: usize = 40;
const TAG_COMMIT: u8 = 1;
const TAG_FREE: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// A new extent whose data was flushed before this record was written.
    Commit { id: ExtentId, extent: ExtentRecord },
    /// The extent's blocks are free from this record on.
    Free { id: ExtentId },
}

impl Record {
    pub(crate) fn encoded_bytes(&self) -> u64 {
        match self {
            Record::Commit { extent, .. } => 1 + extent.encoded_bytes(),
            Record::Free { .. } => 1 + 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) records: Vec<Record>,
}

/// Encoded size (unpadded) of an entry holding one commit record per extent length in `lens_bytes`.
pub(crate) fn entry_bytes_for_commits(lens_bytes: &[u64]) -> u64 {
    HEADER_BYTES + lens_bytes.iter().map(|&len| 1 + ENTRY_FIXED_BYTES + 4 * blocks_for_bytes(len)).sum::<u64>()
}

/// Blocks taken by an entry holding `records`.
pub(crate) fn entry_blocks(records: &[Record]) -> u64 {
    blocks_for_bytes(HEADER_BYTES + records.iter().map(Record::encoded_bytes).sum::<u64>())
}

/// Splits `records` in order into groups that each fit an entry of `max_entry_blocks`.
pub(crate) fn split_into_entries(records: Vec<Record>, max_entry_blocks: u64) -> Vec<Vec<Record>> {
    let limit_bytes = max_entry_blocks * BLOCK_BYTES;
    let mut groups: Vec<Vec<Record>> = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut current_bytes = HEADER_BYTES;
    for record in records {
        let bytes = record.encoded_bytes();
        assert!(
            HEADER_BYTES + bytes <= limit_bytes,
            "a single record exceeds the entry limit (config validation missed it)"
        );
        if current_bytes + bytes > limit_bytes {
            groups.push(std::mem::take(&mut current));
            current_bytes = HEADER_BYTES;
        }
        current_bytes += bytes;
        current.push(record);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

impl Entry {
    /// The entry padded to whole blocks.
    pub(crate) fn encode(&self, device_id: u128) -> Vec<u8> {
        assert!(!self.records.is_empty(), "empty journal entry");
        let payload_bytes: u64 = self.records.iter().map(Record::encoded_bytes).sum();
        let total_bytes = blocks_for_bytes(HEADER_BYTES + payload_bytes) * BLOCK_BYTES;
        let mut w = Writer::with_capacity(total_bytes as usize);
        w.bytes(&MAGIC);
        w.u128(device_id);
        w.u64(self.seq);
        w.u32(u32::try_from(self.records.len()).expect("record count fits u32"));
        w.u32(u32::try_from(payload_bytes).expect("payload fits u32"));
        w.u32(0); // crc, filled below
        w.u32(0);
        assert_eq!(w.len() as u64, HEADER_BYTES);
        for record in &self.records {
            match record {
                Record::Commit { id, extent } => {
                    w.u8(TAG_COMMIT);
                    extent.encode(*id, &mut w);
                }
                Record::Free { id } => {
                    w.u8(TAG_FREE);
                    w.u64(id.0);
                }
            }
        }
        assert_eq!(w.len() as u64, HEADER_BYTES + payload_bytes);
        w.bytes(&vec![0u8; (total_bytes - HEADER_BYTES - payload_bytes) as usize]);
        let mut out = w.into_inner();
        let crc = crc_with_hole(&out, CRC_OFFSET);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the entry at the start of `bytes` (which may run on to the end of the journal).
    /// Returns the entry and the blocks it takes.
    pub(crate) fn decode(
        bytes: &[u8],
        device_id: u128,
        max_entry_blocks: u64,
        bounds: &Bounds,
    ) -> Result<(Entry, u64), DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<8>()? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        expect_eq("journal device_id", r.u128()?, device_id)?;
        let seq = r.u64()?;
        let record_count = r.u32()?;
        let payload_bytes = u64::from(r.u32()?);
        r.u32()?; // crc, checked below over the whole entry
        expect_zero("journal reserved", r.bytes(4)?)?;
        let blocks = blocks_for_bytes(HEADER_BYTES + payload_bytes);
        if blocks > max_entry_blocks || record_count == 0 {
            return Err(DecodeError::field(
                "journal entry",
                format!("{blocks} blocks (max {max_entry_blocks}), {record_count} records"),
            ));
        }
        let total = (blocks * BLOCK_BYTES) as usize;
        if bytes.len() < total {
            return Err(DecodeError::Truncated { needed_bytes: total as u64, available_bytes: bytes.len() as u64 });
        }
        let entry = &bytes[..total];
        let (stored, computed) = (u32_at(entry, CRC_OFFSET), crc_with_hole(entry, CRC_OFFSET));
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let payload_end = (HEADER_BYTES + payload_bytes) as usize;
        let mut r = Reader::new(&entry[HEADER_BYTES as usize..payload_end]);
        let mut records = Vec::new();
        for _ in 0..record_count {
            let record = match r.u8()? {
                TAG_COMMIT => {
                    let (id, extent) = ExtentRecord::decode(&mut r, bounds)?;
                    Record::Commit { id, extent }
                }
                TAG_FREE => Record::Free { id: ExtentId(r.u64()?) },
                tag => return Err(DecodeError::field("journal record tag", format!("{tag}"))),
            };
            records.push(record);
        }
        if r.remaining() != 0 {
            return Err(DecodeError::field(
                "journal payload",
                format!("{} bytes after the last record", r.remaining()),
            ));
        }
        expect_zero("journal padding", &entry[payload_end..])?;
        debug_assert_eq!(entry.len() % BLOCK_BYTES_USIZE, 0);
        Ok((Entry { seq, records }, blocks))
    }
}
