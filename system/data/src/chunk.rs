//! A chunk's on-disk form: one `tessera-store` extent holding a 64-byte header, then the payload.
//!
//! The header makes every extent self-describing, so a node rebuilds its chunk index from its drives
//! alone (see `server`). Byte by byte in `docs/formats/chunk.md`; all integers little-endian:
//!
//! ```text
//! 0..8    magic b"TSRCHUNK"
//! 8..10   format version (u16, = CHUNK_FORMAT_VERSION)
//! 10      layout kind: 0 erasure coded, 1 replicated
//! 11      chunk index within the stripe
//! 12..28  stripe id (u128)
//! 28..36  owner inode (u64)
//! 36..40  layout: erasure coded: data, parity, codec, 0; replicated: copies, 0, 0, 0
//! 40..44  payload length in bytes (u32, at most CHUNK_PAYLOAD_MAX_BYTES)
//! 44..48  payload CRC32C (u32)
//! 48..60  reserved, zero
//! 60..64  CRC32C of bytes 0..60 (u32)
//! ```
//!
//! The store already checksums every 4 KiB block; the header's own CRC and the payload CRC are end to
//! end checks that do not trust the store's bookkeeping (a chunk copied elsewhere still verifies).

use tessera_meta::InodeId;
use tessera_meta::content::{STRIPE_CHUNKS_MAX, StripeId, StripeLayout};

use crate::wire::{CHUNK_PAYLOAD_MAX_BYTES, ChunkKey, ChunkMeta};

/// Bytes of a chunk header.
pub const CHUNK_HEADER_BYTES: usize = 64;
/// The first 8 bytes of every chunk.
pub const CHUNK_MAGIC: [u8; 8] = *b"TSRCHUNK";
/// The chunk format version this code writes and reads.
pub const CHUNK_FORMAT_VERSION: u16 = 1;

const LAYOUT_ERASURE_CODED: u8 = 0;
const LAYOUT_REPLICATED: u8 = 1;
const HEADER_CRC_OFFSET: usize = 60;
const RESERVED: core::ops::Range<usize> = 48..60;

const _: () = assert!(HEADER_CRC_OFFSET + 4 == CHUNK_HEADER_BYTES);
const _: () = assert!(CHUNK_PAYLOAD_MAX_BYTES <= u32::MAX as usize);
const _: () = assert!(STRIPE_CHUNKS_MAX <= u8::MAX as usize);

/// Why bytes are not a valid chunk (header) or a meta cannot be written as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkFormatError {
    /// Fewer bytes than a header.
    #[error("chunk of {len_bytes} bytes is shorter than its {CHUNK_HEADER_BYTES}-byte header")]
    Truncated { len_bytes: usize },
    /// Not a chunk at all.
    #[error("no chunk magic")]
    BadMagic,
    /// A chunk of another format version.
    #[error("chunk format version {found} is not supported (supports {CHUNK_FORMAT_VERSION})")]
    UnsupportedVersion { found: u16 },
    /// The header's own checksum does not match.
    #[error("chunk header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    HeaderCrc { stored: u32, computed: u32 },
    /// The layout or index is invalid, or reserved bytes are not zero.
    #[error("invalid chunk header: {0}")]
    BadHeader(String),
    /// The payload length is out of range or disagrees with the bytes present.
    #[error(
        "chunk payload length {payload_len_bytes} does not fit {available_bytes} bytes (max {CHUNK_PAYLOAD_MAX_BYTES})"
    )]
    BadLength { payload_len_bytes: u64, available_bytes: u64 },
    /// The payload fails its checksum.
    #[error("chunk payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    PayloadCrc { stored: u32, computed: u32 },
}

/// What a decoded header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub meta: ChunkMeta,
    pub payload_len_bytes: u32,
    pub payload_crc: u32,
}

/// Checks that `meta` can be written as a chunk: a layout with 1..=STRIPE_CHUNKS_MAX chunks (at least
/// one data chunk) and an index inside it.
pub fn validate_meta(meta: &ChunkMeta) -> Result<(), ChunkFormatError> {
    let total = match meta.layout {
        StripeLayout::ErasureCoded { data, parity, .. } => {
            if data == 0 {
                return Err(ChunkFormatError::BadHeader("erasure-coded layout with no data chunk".into()));
            }
            usize::from(data) + usize::from(parity)
        }
        StripeLayout::Replicated { copies } => usize::from(copies),
    };
    if total == 0 || total > STRIPE_CHUNKS_MAX {
        return Err(ChunkFormatError::BadHeader(format!("layout of {total} chunks (1..={STRIPE_CHUNKS_MAX})")));
    }
    if usize::from(meta.key.index) >= total {
        return Err(ChunkFormatError::BadHeader(format!("chunk index {} of a {total}-chunk layout", meta.key.index)));
    }
    Ok(())
}

/// The header bytes for a payload of `payload_len_bytes` with checksum `payload_crc`.
/// Panics on an invalid meta or an oversized payload (callers validate first).
pub fn encode_header(meta: &ChunkMeta, payload_len_bytes: usize, payload_crc: u32) -> [u8; CHUNK_HEADER_BYTES] {
    if let Err(e) = validate_meta(meta) {
        panic!("encoding an invalid chunk meta {meta:?}: {e}");
    }
    assert!(payload_len_bytes <= CHUNK_PAYLOAD_MAX_BYTES, "chunk payload of {payload_len_bytes} bytes");
    let mut h = [0u8; CHUNK_HEADER_BYTES];
    h[0..8].copy_from_slice(&CHUNK_MAGIC);
    h[8..10].copy_from_slice(&CHUNK_FORMAT_VERSION.to_le_bytes());
    let (kind, params) = match meta.layout {
        StripeLayout::ErasureCoded { data, parity, codec } => (LAYOUT_ERASURE_CODED, [data, parity, codec, 0]),
        StripeLayout::Replicated { copies } => (LAYOUT_REPLICATED, [copies, 0, 0, 0]),
    };
    h[10] = kind;
    h[11] = meta.key.index;
    h[12..28].copy_from_slice(&meta.key.stripe.0.to_le_bytes());
    h[28..36].copy_from_slice(&meta.owner.0.to_le_bytes());
    h[36..40].copy_from_slice(&params);
    h[40..44].copy_from_slice(&(payload_len_bytes as u32).to_le_bytes());
    h[44..48].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32c::crc32c(&h[..HEADER_CRC_OFFSET]);
    h[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The chunk as stored: header, then `payload`. Panics on an invalid meta or an oversized payload.
pub fn encode(meta: &ChunkMeta, payload: &[u8]) -> Vec<u8> {
    let header = encode_header(meta, payload.len(), crc32c::crc32c(payload));
    let mut out = Vec::with_capacity(CHUNK_HEADER_BYTES + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    debug_assert!(decode(&out).is_ok());
    out
}

/// Decodes the header at the start of `bytes` (which may hold all, part or none of the payload).
pub fn decode_header(bytes: &[u8]) -> Result<ChunkHeader, ChunkFormatError> {
    if bytes.len() < CHUNK_HEADER_BYTES {
        return Err(ChunkFormatError::Truncated { len_bytes: bytes.len() });
    }
    let h = &bytes[..CHUNK_HEADER_BYTES];
    if h[0..8] != CHUNK_MAGIC {
        return Err(ChunkFormatError::BadMagic);
    }
    let stored = u32_at(h, HEADER_CRC_OFFSET);
    let computed = crc32c::crc32c(&h[..HEADER_CRC_OFFSET]);
    if stored != computed {
        return Err(ChunkFormatError::HeaderCrc { stored, computed });
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != CHUNK_FORMAT_VERSION {
        return Err(ChunkFormatError::UnsupportedVersion { found: version });
    }
    if h[RESERVED].iter().any(|&b| b != 0) {
        return Err(ChunkFormatError::BadHeader("reserved bytes are not zero".into()));
    }
    let layout = match (h[10], [h[36], h[37], h[38], h[39]]) {
        (LAYOUT_ERASURE_CODED, [data, parity, codec, 0]) => StripeLayout::ErasureCoded { data, parity, codec },
        (LAYOUT_REPLICATED, [copies, 0, 0, 0]) => StripeLayout::Replicated { copies },
        (kind, params) => {
            return Err(ChunkFormatError::BadHeader(format!("layout kind {kind} with parameters {params:?}")));
        }
    };
    let stripe = StripeId(u128::from_le_bytes(h[12..28].try_into().expect("16 bytes")));
    let owner = InodeId(u64::from_le_bytes(h[28..36].try_into().expect("8 bytes")));
    let meta = ChunkMeta { key: ChunkKey { stripe, index: h[11] }, owner, layout };
    validate_meta(&meta)?;
    let payload_len_bytes = u32_at(h, 40);
    if payload_len_bytes as usize > CHUNK_PAYLOAD_MAX_BYTES {
        return Err(ChunkFormatError::BadLength {
            payload_len_bytes: u64::from(payload_len_bytes),
            available_bytes: CHUNK_PAYLOAD_MAX_BYTES as u64,
        });
    }
    Ok(ChunkHeader { meta, payload_len_bytes, payload_crc: u32_at(h, 44) })
}

/// Decodes a whole chunk: the header, exactly `payload_len` more bytes, and a matching payload CRC.
pub fn decode(bytes: &[u8]) -> Result<(ChunkHeader, &[u8]), ChunkFormatError> {
    let header = decode_header(bytes)?;
    let payload = &bytes[CHUNK_HEADER_BYTES..];
    if payload.len() != header.payload_len_bytes as usize {
        return Err(ChunkFormatError::BadLength {
            payload_len_bytes: u64::from(header.payload_len_bytes),
            available_bytes: payload.len() as u64,
        });
    }
    check_payload(&header, payload)?;
    Ok((header, payload))
}

/// Checks a whole payload against the header's CRC.
pub fn check_payload(header: &ChunkHeader, payload: &[u8]) -> Result<(), ChunkFormatError> {
    assert_eq!(payload.len(), header.payload_len_bytes as usize, "check_payload takes the whole payload");
    let computed = crc32c::crc32c(payload);
    if computed != header.payload_crc {
        return Err(ChunkFormatError::PayloadCrc { stored: header.payload_crc, computed });
    }
    Ok(())
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn layout() -> impl Strategy<Value = StripeLayout> {
        prop_oneof![
            (1u8..=16, 0u8..=4, any::<u8>()).prop_map(|(data, parity, codec)| StripeLayout::ErasureCoded {
                data,
                parity,
                codec
            }),
            (1u8..=STRIPE_CHUNKS_MAX as u8).prop_map(|copies| StripeLayout::Replicated { copies }),
        ]
    }

    fn meta() -> impl Strategy<Value = ChunkMeta> {
        (any::<u128>(), any::<u64>(), layout(), any::<u8>()).prop_map(|(stripe, owner, layout, index)| {
            let index = index % layout.total_chunks() as u8;
            ChunkMeta { key: ChunkKey { stripe: StripeId(stripe), index }, owner: InodeId(owner), layout }
        })
    }

    proptest! {
        #[test]
        fn chunk_round_trip(meta in meta(), payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let bytes = encode(&meta, &payload);
            prop_assert_eq!(bytes.len(), CHUNK_HEADER_BYTES + payload.len());
            let (header, decoded) = decode(&bytes).expect("decodes");
            prop_assert_eq!(header.meta, meta);
            prop_assert_eq!(header.payload_len_bytes as usize, payload.len());
            prop_assert_eq!(header.payload_crc, crc32c::crc32c(&payload));
            prop_assert_eq!(decoded, &payload[..]);
            prop_assert_eq!(decode_header(&bytes[..CHUNK_HEADER_BYTES]).expect("header alone"), header);
        }

        #[test]
        fn chunk_header_flip_detected(meta in meta(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                                      at in 0..CHUNK_HEADER_BYTES, mask in 1u8..=255) {
            let mut bytes = encode(&meta, &payload);
            bytes[at] ^= mask;
            prop_assert!(decode_header(&bytes).is_err());
        }

        #[test]
        fn chunk_payload_flip_detected(meta in meta(), payload in proptest::collection::vec(any::<u8>(), 1..256),
                                       at in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let mut bytes = encode(&meta, &payload);
            let at = CHUNK_HEADER_BYTES + at.index(payload.len());
            bytes[at] ^= mask;
            prop_assert!(decode_header(&bytes).is_ok());
            let is_crc_error = matches!(decode(&bytes), Err(ChunkFormatError::PayloadCrc { .. }));
            prop_assert!(is_crc_error);
        }

        #[test]
        fn chunk_garbage_never_decodes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(decode_header(&bytes).is_err());
        }

        #[test]
        fn chunk_garbage_after_magic_never_decodes(rest in proptest::collection::vec(any::<u8>(), 56..200)) {
            let mut bytes = CHUNK_MAGIC.to_vec();
            bytes.extend_from_slice(&rest);
            prop_assert!(decode_header(&bytes).is_err());
        }
    }

    #[test]
    fn chunk_wrong_lengths_are_typed() {
        let meta = ChunkMeta {
            key: ChunkKey { stripe: StripeId(7), index: 1 },
            owner: InodeId(9),
            layout: StripeLayout::Replicated { copies: 3 },
        };
        let bytes = encode(&meta, b"hello");
        assert_eq!(decode_header(&bytes[..10]), Err(ChunkFormatError::Truncated { len_bytes: 10 }));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(ChunkFormatError::BadLength { .. })));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(ChunkFormatError::BadLength { .. })));
        let bad_index = ChunkMeta { key: ChunkKey { stripe: StripeId(7), index: 3 }, ..meta };
        assert!(matches!(validate_meta(&bad_index), Err(ChunkFormatError::BadHeader(_))));
        let no_data = ChunkMeta { layout: StripeLayout::ErasureCoded { data: 0, parity: 2, codec: 0 }, ..meta };
        assert!(validate_meta(&no_data).is_err());
    }

    #[test]
    fn chunk_version_is_checked_after_crc() {
        let meta = ChunkMeta {
            key: ChunkKey { stripe: StripeId(1), index: 0 },
            owner: InodeId(2),
            layout: StripeLayout::ErasureCoded { data: 4, parity: 2, codec: 1 },
        };
        let mut bytes = encode(&meta, b"x");
        bytes[8] = 2;
        let crc = crc32c::crc32c(&bytes[..HEADER_CRC_OFFSET]);
        bytes[HEADER_CRC_OFFSET..CHUNK_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&bytes), Err(ChunkFormatError::UnsupportedVersion { found: 2 }));
    }
}
