//! The wire format of the TCP transport: a 32-byte header, then the payload. Specified byte by byte in
//! `docs/design/transport.md`; this module is the one place that writes or reads it.
//!
//! ```text
//! offset size field
//!      0    4 magic          0x5453_4652 ("TSFR")
//!      4    1 version        1
//!      5    1 kind           1 hello, 2 hello-ack, 3 message, 4 keepalive
//!      6    2 flags          0
//!      8    8 from           sender endpoint id
//!     16    8 to             receiver endpoint id
//!     24    4 payload length bytes, at most MAX_MESSAGE_BYTES (handshake frames: HELLO_PAYLOAD_MAX)
//!     28    4 crc32c         over bytes 0..28 of the header, then the payload
//! ```
//! All integers big-endian. A header or payload that fails any check is a [`FrameError`]: the reader
//! closes the connection (the byte stream can no longer be trusted to be in step).

use tessera_env::{MAX_MESSAGE_BYTES, NodeId};

/// "TSFR": Tessera frame.
pub(crate) const MAGIC: u32 = 0x5453_4652;
/// The only version this build speaks.
pub(crate) const VERSION: u8 = 1;
/// Size of every frame header.
pub(crate) const HEADER_BYTES: usize = 32;
/// Bytes of the header covered by the checksum (everything before the checksum itself).
const CHECKED_HEADER_BYTES: usize = 28;
/// Largest payload of a hello or hello-ack frame. Handshake frames are read before the peer is known, so
/// they get a small bound of their own.
pub(crate) const HELLO_PAYLOAD_MAX: usize = 1024;
/// Longest software version string a hello carries.
pub(crate) const SOFTWARE_VERSION_BYTES_MAX: usize = 256;
/// cluster id (16) + base id (8) + version length (2).
const HELLO_FIXED_BYTES: usize = 26;

const _: () = assert!(CHECKED_HEADER_BYTES + 4 == HEADER_BYTES);
const _: () = assert!(MAX_MESSAGE_BYTES <= u32::MAX as usize);
const _: () = assert!(HELLO_FIXED_BYTES + SOFTWARE_VERSION_BYTES_MAX <= HELLO_PAYLOAD_MAX);

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// First frame of a connection, dialler to acceptor; payload: a [`Hello`].
    Hello = 1,
    /// The acceptor's answer; payload: a [`Hello`] describing the acceptor.
    HelloAck = 2,
    /// One `Net` message from endpoint `from` to endpoint `to`.
    Message = 3,
    /// Sent on an idle connection so that the peer's idle timer sees traffic; empty payload.
    Keepalive = 4,
}

impl FrameKind {
    fn from_u8(value: u8) -> Option<FrameKind> {
        match value {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::HelloAck),
            3 => Some(FrameKind::Message),
            4 => Some(FrameKind::Keepalive),
            _ => None,
        }
    }
}

/// Why a frame was refused. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("bad magic {0:#010x} (not a tessera transport peer?)")]
    BadMagic(u32),
    #[error("unsupported frame version {0} (this build speaks version {VERSION})")]
    BadVersion(u8),
    #[error("unknown frame kind {0}")]
    BadKind(u8),
    #[error("non-zero frame flags {0:#06x}")]
    BadFlags(u16),
    #[error("frame payload of {length_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLong { length_bytes: u64, max_bytes: usize },
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum { stored: u32, computed: u32 },
    #[error("malformed hello: {0}")]
    BadHello(&'static str),
}

/// A decoded frame header. `payload_len` is already checked against the limit the reader passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: FrameKind,
    pub from: NodeId,
    pub to: NodeId,
    pub payload_len: usize,
    crc: u32,
}

/// The header of a frame carrying `payload`.
pub(crate) fn encode_header(kind: FrameKind, from: NodeId, to: NodeId, payload: &[u8]) -> [u8; HEADER_BYTES] {
    assert!(payload.len() <= MAX_MESSAGE_BYTES, "frame payload of {} bytes", payload.len());
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    header[4] = VERSION;
    header[5] = kind as u8;
    header[6..8].copy_from_slice(&0u16.to_be_bytes());
    header[8..16].copy_from_slice(&from.0.to_be_bytes());
    header[16..24].copy_from_slice(&to.0.to_be_bytes());
    let length = u32::try_from(payload.len()).expect("asserted above");
    header[24..28].copy_from_slice(&length.to_be_bytes());
    let crc = checksum(&header, payload);
    header[28..32].copy_from_slice(&crc.to_be_bytes());
    header
}

/// Check a received header; `payload_max` is the largest payload acceptable at this point of the
/// connection. The checksum is checked later by [`verify_payload`], once the payload is in.
pub(crate) fn decode_header(header: &[u8; HEADER_BYTES], payload_max: usize) -> Result<Header, FrameError> {
    let magic = u32::from_be_bytes(array(&header[0..4]));
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    if header[4] != VERSION {
        return Err(FrameError::BadVersion(header[4]));
    }
    let kind = FrameKind::from_u8(header[5]).ok_or(FrameError::BadKind(header[5]))?;
    let flags = u16::from_be_bytes(array(&header[6..8]));
    if flags != 0 {
        return Err(FrameError::BadFlags(flags));
    }
    let length = u32::from_be_bytes(array(&header[24..28]));
    let max_bytes = payload_max.min(MAX_MESSAGE_BYTES);
    if u64::from(length) > max_bytes as u64 {
        return Err(FrameError::TooLong { length_bytes: u64::from(length), max_bytes });
    }
    Ok(Header {
        kind,
        from: NodeId(u64::from_be_bytes(array(&header[8..16]))),
        to: NodeId(u64::from_be_bytes(array(&header[16..24]))),
        payload_len: length as usize,
        crc: u32::from_be_bytes(array(&header[28..32])),
    })
}

/// Check the frame's checksum over the raw header bytes and the payload read after it.
pub(crate) fn verify_payload(raw: &[u8; HEADER_BYTES], header: &Header, payload: &[u8]) -> Result<(), FrameError> {
    assert_eq!(payload.len(), header.payload_len, "payload read does not match the header's length");
    let computed = checksum(raw, payload);
    if computed != header.crc {
        return Err(FrameError::BadChecksum { stored: header.crc, computed });
    }
    Ok(())
}

fn checksum(header: &[u8; HEADER_BYTES], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[..CHECKED_HEADER_BYTES]), payload)
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("slice length fixed by the caller")
}

/// The payload of a hello and of a hello-ack: who the sender is and which cluster it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    /// 0: the sender does not know its cluster yet (a client before its first contact).
    pub cluster_id: u128,
    /// The sender's process ("base") id.
    pub base: NodeId,
    /// Free text for logs, e.g. "tessera 0.1.0".
    pub software_version: String,
}

impl Hello {
    /// `cluster_id` u128, `base` u64, version length u16, version bytes (UTF-8). All big-endian.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let version = truncate_utf8(&self.software_version, SOFTWARE_VERSION_BYTES_MAX);
        let mut out = Vec::with_capacity(HELLO_FIXED_BYTES + version.len());
        out.extend_from_slice(&self.cluster_id.to_be_bytes());
        out.extend_from_slice(&self.base.0.to_be_bytes());
        let length = u16::try_from(version.len()).expect("truncated to SOFTWARE_VERSION_BYTES_MAX");
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(version.as_bytes());
        assert!(out.len() <= HELLO_PAYLOAD_MAX);
        out
    }

    /// Bytes after the version string are ignored: a later version may append fields.
    pub(crate) fn decode(payload: &[u8]) -> Result<Hello, FrameError> {
        if payload.len() < HELLO_FIXED_BYTES {
            return Err(FrameError::BadHello("shorter than its fixed fields"));
        }
        let cluster_id = u128::from_be_bytes(array(&payload[0..16]));
        let base = NodeId(u64::from_be_bytes(array(&payload[16..24])));
        let length = usize::from(u16::from_be_bytes(array(&payload[24..26])));
        if length > SOFTWARE_VERSION_BYTES_MAX {
            return Err(FrameError::BadHello("software version string too long"));
        }
        let version = payload
            .get(HELLO_FIXED_BYTES..HELLO_FIXED_BYTES + length)
            .ok_or(FrameError::BadHello("software version string runs past the payload"))?;
        let software_version =
            String::from_utf8(version.to_vec()).map_err(|_| FrameError::BadHello("software version is not UTF-8"))?;
        Ok(Hello { cluster_id, base, software_version })
    }
}

fn truncate_utf8(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, payload: &[u8]) -> [u8; HEADER_BYTES] {
        encode_header(kind, NodeId(7 | 1 << 62), NodeId(9 | 1 << 60), payload)
    }

    #[test]
    fn header_round_trips_every_kind() {
        for kind in [FrameKind::Hello, FrameKind::HelloAck, FrameKind::Message, FrameKind::Keepalive] {
            let payload = b"some payload bytes";
            let raw = frame(kind, payload);
            let header = decode_header(&raw, MAX_MESSAGE_BYTES).expect("valid header");
            assert_eq!(header.kind, kind);
            assert_eq!(header.from, NodeId(7 | 1 << 62));
            assert_eq!(header.to, NodeId(9 | 1 << 60));
            assert_eq!(header.payload_len, payload.len());
            verify_payload(&raw, &header, payload).expect("checksum matches");
        }
    }

    #[test]
    fn header_layout_matches_the_spec() {
        let raw = encode_header(FrameKind::Message, NodeId(0x0102), NodeId(0x0304), &[0xAA; 5]);
        assert_eq!(&raw[0..4], b"TSFR");
        assert_eq!(raw[4], 1);
        assert_eq!(raw[5], 3);
        assert_eq!(&raw[6..8], &[0, 0]);
        assert_eq!(&raw[8..16], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&raw[16..24], &[0, 0, 0, 0, 0, 0, 3, 4]);
        assert_eq!(&raw[24..28], &[0, 0, 0, 5]);
        let mut covered = raw[..28].to_vec();
        covered.extend_from_slice(&[0xAA; 5]);
        assert_eq!(&raw[28..32], &crc32c::crc32c(&covered).to_be_bytes());
    }

    #[test]
    fn empty_and_maximum_payloads_are_accepted() {
        let raw = frame(FrameKind::Keepalive, &[]);
        let header = decode_header(&raw, MAX_MESSAGE_BYTES).expect("valid");
        verify_payload(&raw, &header, &[]).expect("valid");
        let big = vec![0x5A; MAX_MESSAGE_BYTES];
        let raw = frame(FrameKind::Message, &big);
        let header = decode_header(&raw, MAX_MESSAGE_BYTES).expect("valid");
        verify_payload(&raw, &header, &big).expect("valid");
    }

    #[test]
    fn every_kind_of_header_damage_is_rejected() {
        let good = frame(FrameKind::Message, b"x");
        let damaged = |offset: usize, value: u8| {
            let mut raw = good;
            raw[offset] = value;
            decode_header(&raw, MAX_MESSAGE_BYTES)
        };
        assert!(matches!(damaged(0, b'X'), Err(FrameError::BadMagic(_))));
        assert_eq!(damaged(4, 2), Err(FrameError::BadVersion(2)));
        assert_eq!(damaged(4, 0), Err(FrameError::BadVersion(0)));
        assert_eq!(damaged(5, 0), Err(FrameError::BadKind(0)));
        assert_eq!(damaged(5, 5), Err(FrameError::BadKind(5)));
        assert_eq!(damaged(7, 1), Err(FrameError::BadFlags(1)));
        assert!(matches!(damaged(24, 0x01), Err(FrameError::TooLong { .. })));
        assert!(matches!(damaged(24, 0xFF), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn length_over_the_reader_limit_is_rejected() {
        let raw = frame(FrameKind::Hello, &[0; HELLO_PAYLOAD_MAX + 1]);
        let err = decode_header(&raw, HELLO_PAYLOAD_MAX).expect_err("over the handshake limit");
        assert_eq!(
            err,
            FrameError::TooLong { length_bytes: HELLO_PAYLOAD_MAX as u64 + 1, max_bytes: HELLO_PAYLOAD_MAX }
        );
    }

    #[test]
    fn checksum_catches_any_flipped_bit_in_ids_length_payload_or_crc() {
        let payload = b"0123456789abcdef".to_vec();
        let good = frame(FrameKind::Message, &payload);
        // Ids and the checksum itself: the header still decodes, the checksum does not match.
        for offset in (8..24).chain(28..32) {
            for bit in 0..8 {
                let mut raw = good;
                raw[offset] ^= 1 << bit;
                let header = decode_header(&raw, MAX_MESSAGE_BYTES).expect("ids are not checked by decode");
                assert!(
                    matches!(verify_payload(&raw, &header, &payload), Err(FrameError::BadChecksum { .. })),
                    "flip at byte {offset} bit {bit} not caught"
                );
            }
        }
        for index in 0..payload.len() {
            for bit in 0..8 {
                let mut damaged = payload.clone();
                damaged[index] ^= 1 << bit;
                let header = decode_header(&good, MAX_MESSAGE_BYTES).expect("header intact");
                assert!(matches!(verify_payload(&good, &header, &damaged), Err(FrameError::BadChecksum { .. })));
            }
        }
        // A length changed to a smaller value: decodes, but the checksum covers the length.
        let mut raw = good;
        raw[27] = 15;
        let header = decode_header(&raw, MAX_MESSAGE_BYTES).expect("length within the limit");
        assert!(matches!(verify_payload(&raw, &header, &payload[..15]), Err(FrameError::BadChecksum { .. })));
    }

    #[test]
    fn hello_round_trips_and_ignores_appended_fields() {
        let hello = Hello { cluster_id: u128::MAX - 5, base: NodeId(42), software_version: "tessera 0.1.0".into() };
        let mut bytes = hello.encode();
        assert_eq!(bytes.len(), 26 + 13);
        assert_eq!(Hello::decode(&bytes), Ok(hello.clone()));
        bytes.extend_from_slice(b"future field");
        assert_eq!(Hello::decode(&bytes), Ok(hello));
    }

    #[test]
    fn hello_truncates_a_long_version_at_a_char_boundary() {
        let hello = Hello { cluster_id: 1, base: NodeId(1), software_version: "é".repeat(200) };
        let decoded = Hello::decode(&hello.encode()).expect("valid");
        assert_eq!(decoded.software_version.len(), SOFTWARE_VERSION_BYTES_MAX);
        assert!(decoded.software_version.chars().all(|c| c == 'é'));
    }

    #[test]
    fn malformed_hellos_are_rejected() {
        let good = Hello { cluster_id: 3, base: NodeId(4), software_version: "v1".into() }.encode();
        assert!(Hello::decode(&good[..25]).is_err(), "short fixed part");
        assert!(Hello::decode(&good[..27]).is_err(), "version cut short");
        let mut long = good.clone();
        long[24..26].copy_from_slice(&300u16.to_be_bytes());
        long.resize(26 + 300, b'a');
        assert!(Hello::decode(&long).is_err(), "version over the limit");
        let mut not_utf8 = good;
        not_utf8[26] = 0xFF;
        assert!(Hello::decode(&not_utf8).is_err(), "version not UTF-8");
    }
}
