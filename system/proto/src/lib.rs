//! The one codec module (DESIGN.md section 10). Every crate that turns a serde type into bytes for the
//! network or for a codec-encoded record calls [`encode`] / [`decode`] here and nowhere else, so the
//! underlying codec (today bincode 1.3, unmaintained: RUSTSEC-2025-0141; postcard is the fallback) can
//! be swapped in one place.
//!
//! The encoding, exactly (docs/formats/raft-log.md relies on it):
//! - bincode 1.3 `DefaultOptions`: **varint** integers, little endian. An unsigned integer `v` is one
//!   byte if `v < 251`; otherwise a tag byte `251` (u16 follows), `252` (u32), `253` (u64) or `254` (u128)
//!   followed by the value in little endian, in the smallest width that holds it. Signed integers are
//!   zigzag-mapped first (`0, -1, 1, -2, ...` -> `0, 1, 2, 3, ...`). `bool` is one byte `0`/`1`.
//! - Sequences, `Vec<u8>` and strings: varint length, then the elements. `Option`: byte `0` (None) or
//!   `1` then the value. Structs: the fields in declaration order, nothing between them. Enums: the
//!   variant index as a varint u32, then the variant's fields.
//! - Limits: decoding never reads or allocates more than [`MAX_MESSAGE_BYTES`] in total (bincode's
//!   byte limit is charged before every allocation of a length-prefixed buffer), and bytes left over
//!   after the value are an error ([`CodecError::TrailingBytes`]).
//!
//! Changing a field's type or order in an encoded struct changes the format: treat every encoded type
//! as a format, versioned by its owner.

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest encoding [`encode`] produces and [`decode`] accepts: the network's message limit.
pub const MAX_MESSAGE_BYTES: usize = tessera_env::MAX_MESSAGE_BYTES;

/// Why bytes could not be decoded (or a value could not be encoded within the limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input (or the encoding of a value) is larger than [`MAX_MESSAGE_BYTES`], or a length prefix
    /// inside it claims more than the limit allows.
    #[error("encoding exceeds the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// The input ended in the middle of a value.
    #[error("input ended in the middle of a value")]
    Truncated,
    /// The input decoded to a complete value but bytes were left over.
    #[error("trailing bytes after a complete value")]
    TrailingBytes,
    /// The input is not an encoding of the expected type (bad tag, bad UTF-8, out-of-range value...).
    #[error("malformed input: {reason}")]
    Malformed { reason: String },
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_MESSAGE_BYTES as u64)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

fn classify_kind(kind: bincode::ErrorKind) -> CodecError {
    match kind {
        bincode::ErrorKind::SizeLimit => CodecError::TooLarge,
        bincode::ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => CodecError::Truncated,
        bincode::ErrorKind::Custom(ref msg) if msg.contains("bytes remaining") => CodecError::TrailingBytes,
        other => CodecError::Malformed { reason: other.to_string() },
    }
}

/// Encodes `value`, or fails with [`CodecError::TooLarge`] if the encoding would exceed
/// [`MAX_MESSAGE_BYTES`]. The only other failure bincode has is a type it cannot represent (a map or
/// sequence of unknown length, `serialize_any`-style data): a programmer error, so it panics.
pub fn try_encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    match options().serialize(value) {
        Ok(bytes) => {
            assert!(bytes.len() <= MAX_MESSAGE_BYTES, "codec limit not enforced on encode");
            Ok(bytes)
        }
        Err(err) => match classify_kind(*err) {
            CodecError::TooLarge => Err(CodecError::TooLarge),
            other => panic!("type cannot be encoded by tessera-proto: {other}"),
        },
    }
}

/// Encodes `value`. Panics if the encoding would exceed [`MAX_MESSAGE_BYTES`]: callers bound what they
/// encode (messages by configuration, records by splitting); use [`try_encode`] where the size is not
/// bounded by construction.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    match try_encode(value) {
        Ok(bytes) => bytes,
        Err(err) => panic!("tessera-proto encode: {err}"),
    }
}

/// Decodes exactly one `T` from all of `bytes`. Never panics and never allocates more than
/// [`MAX_MESSAGE_BYTES`] in total, whatever the input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge);
    }
    options().deserialize(bytes).map_err(|err| classify_kind(*err))
}

#[cfg(test)]
mod tests;
