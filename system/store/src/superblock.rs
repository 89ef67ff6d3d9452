//! The superblock: one sector, two copies (block 0 holds even generations, block 1 odd ones).
//!
//! ```text
//! offset size type     field
//! 0      16   [u8;16]  magic b"TESSERA\x01STORE\0\0\0"
//! 16     4    u32      format_version (1)
//! 20     4    u32      block_size_bytes (4096)
//! 24     16   u128     cluster_id
//! 40     16   u128     device_id
//! 56     8    u64      generation (>= 1; stored in block generation % 2)
//! 64     8    u64      capacity_bytes (at format time)
//! 72     8    u64      checkpoint_a_start_block
//! 80     8    u64      checkpoint_b_start_block
//! 88     8    u64      checkpoint_blocks (each area)
//! 96     8    u64      journal_start_block
//! 104    8    u64      journal_blocks
//! 112    8    u64      data_start_block
//! 120    8    u64      data_blocks
//! 128    4    u32      max_extent_bytes
//! 132    1    u8       checkpoint_slot (0 = A, 1 = B; always generation % 2)
//! 133    3    [u8;3]   reserved, zero
//! 136    8    u64      checkpoint_len_bytes
//! 144    4    u32      checkpoint_crc (the checkpoint's trailer crc)
//! 148    4    u32      reserved, zero
//! 152    8    u64      journal_start_seq (seq of the entry at journal block 0)
//! 160    8    u64      next_extent_id (equals the checkpoint's)
//! 168    3924 [u8]     reserved, zero
//! 4092   4    u32      crc32c of bytes [0, 4092)
//! ```
//! Magic, version and checksum stay at these offsets in every future version, so any version is
//! recognised and refused with `UnsupportedVersion` rather than called corrupt.

use crate::codec::{DecodeError, Reader, Writer, expect_eq, expect_zero, u32_at};
use crate::layout::{BLOCK_BYTES, BLOCK_BYTES_USIZE, Layout, MAX_JOURNAL_BYTES, check_max_extent_bytes};
use crate::{DeviceIdentity, FORMAT_VERSION, checkpoint};

pub(crate) const MAGIC: [u8; 16] = *b"TESSERA\x01STORE\0\0\0";
const CRC_OFFSET: usize = BLOCK_BYTES_USIZE - 4;
const FIELDS_END: usize = 168;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub(crate) identity: DeviceIdentity,
    pub(crate) generation: u64,
    pub(crate) layout: Layout,
    pub(crate) max_extent_bytes: u32,
    pub(crate) checkpoint_slot: u8,
    pub(crate) checkpoint_len_bytes: u64,
    pub(crate) checkpoint_crc: u32,
    pub(crate) journal_start_seq: u64,
    pub(crate) next_extent_id: u64,
}

impl Superblock {
    /// The block (0 or 1) this generation is written to.
    pub(crate) fn home_block(&self) -> u64 {
        self.generation % 2
    }

    /// One sector.
    pub(crate) fn encode(&self) -> Vec<u8> {
        if let Err(e) = self.validate() {
            panic!("encoding an invalid superblock: {e} ({self:?})");
        }
        let l = &self.layout;
        let mut w = Writer::with_capacity(BLOCK_BYTES_USIZE);
        w.bytes(&MAGIC);
        w.u32(FORMAT_VERSION);
        w.u32(BLOCK_BYTES as u32);
        w.u128(self.identity.cluster_id);
        w.u128(self.identity.device_id);
        w.u64(self.generation);
        w.u64(l.capacity_bytes);
        w.u64(l.checkpoint_start_block(0));
        w.u64(l.checkpoint_start_block(1));
        w.u64(l.checkpoint_blocks);
        w.u64(l.journal_start_block);
        w.u64(l.journal_blocks);
        w.u64(l.data_start_block);
        w.u64(l.data_blocks);
        w.u32(self.max_extent_bytes);
        w.u8(self.checkpoint_slot);
        w.bytes(&[0; 3]);
        w.u64(self.checkpoint_len_bytes);
        w.u32(self.checkpoint_crc);
        w.u32(0);
        w.u64(self.journal_start_seq);
        w.u64(self.next_extent_id);
        assert_eq!(w.len(), FIELDS_END);
        w.bytes(&[0; CRC_OFFSET - FIELDS_END]);
        let crc = crc32c::crc32c(w.peek());
        w.u32(crc);
        let out = w.into_inner();
        assert_eq!(out.len(), BLOCK_BYTES_USIZE);
        out
    }

    /// Decodes one sector: magic, then checksum, then version, then every field.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Superblock, DecodeError> {
        if bytes.len() != BLOCK_BYTES_USIZE {
            return Err(DecodeError::Truncated { needed_bytes: BLOCK_BYTES, available_bytes: bytes.len() as u64 });
        }
        if bytes[..16] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let (stored, computed) = (u32_at(bytes, CRC_OFFSET), crc32c::crc32c(&bytes[..CRC_OFFSET]));
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let mut r = Reader::new(&bytes[..CRC_OFFSET]);
        r.bytes(16)?;
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        expect_eq("block_size_bytes", u64::from(r.u32()?), BLOCK_BYTES)?;
        let identity = DeviceIdentity { cluster_id: r.u128()?, device_id: r.u128()? };
        let generation = r.u64()?;
        let capacity_bytes = r.u64()?;
        let checkpoint_a_start_block = r.u64()?;
        let checkpoint_b_start_block = r.u64()?;
        let layout = Layout {
            capacity_bytes,
            checkpoint_blocks: r.u64()?,
            journal_start_block: r.u64()?,
            journal_blocks: r.u64()?,
            data_start_block: r.u64()?,
            data_blocks: r.u64()?,
        };
        let max_extent_bytes = r.u32()?;
        let checkpoint_slot = r.u8()?;
        expect_zero("superblock reserved", r.bytes(3)?)?;
        let checkpoint_len_bytes = r.u64()?;
        let checkpoint_crc = r.u32()?;
        expect_zero("superblock reserved", r.bytes(4)?)?;
        let journal_start_seq = r.u64()?;
        let next_extent_id = r.u64()?;
        assert_eq!(r.pos(), FIELDS_END);
        expect_zero("superblock reserved", r.bytes(CRC_OFFSET - FIELDS_END)?)?;

        // The layout must be exactly what format computes for this capacity and journal.
        let journal_ok = (1..=MAX_JOURNAL_BYTES / BLOCK_BYTES).contains(&layout.journal_blocks);
        if !journal_ok || !capacity_bytes.is_multiple_of(BLOCK_BYTES) {
            return Err(DecodeError::field("layout", "journal size out of range or capacity not in whole blocks"));
        }
        let recomputed = Layout::compute(capacity_bytes, layout.journal_blocks)
            .map_err(|_| DecodeError::field("layout", format!("capacity {capacity_bytes} too small")))?;
        if recomputed != layout
            || checkpoint_a_start_block != layout.checkpoint_start_block(0)
            || checkpoint_b_start_block != layout.checkpoint_start_block(1)
        {
            return Err(DecodeError::field(
                "layout",
                format!("{layout:?} is not the layout of this capacity and journal"),
            ));
        }
        let sb = Superblock {
            identity,
            generation,
            layout,
            max_extent_bytes,
            checkpoint_slot,
            checkpoint_len_bytes,
            checkpoint_crc,
            journal_start_seq,
            next_extent_id,
        };
        sb.validate()?;
        Ok(sb)
    }

    /// Field relations every superblock satisfies (checked on both the write and the read side).
    fn validate(&self) -> Result<(), DecodeError> {
        check_max_extent_bytes(self.max_extent_bytes, &self.layout)
            .map_err(|e| DecodeError::field("max_extent_bytes", e))?;
        if self.generation == 0 {
            return Err(DecodeError::field("generation", "zero"));
        }
        expect_eq("checkpoint_slot", u64::from(self.checkpoint_slot), self.generation % 2)?;
        let area_bytes = self.layout.checkpoint_blocks * BLOCK_BYTES;
        if self.checkpoint_len_bytes < checkpoint::MIN_BYTES || self.checkpoint_len_bytes > area_bytes {
            return Err(DecodeError::field(
                "checkpoint_len_bytes",
                format!("{} not in {}..={area_bytes}", self.checkpoint_len_bytes, checkpoint::MIN_BYTES),
            ));
        }
        if self.journal_start_seq == 0 || self.next_extent_id == 0 {
            return Err(DecodeError::field("journal_start_seq/next_extent_id", "zero"));
        }
        Ok(())
    }
}
