//! Little-endian field encoding shared by every on-disk structure, and the decode error they report.

/// Why bytes read from disk do not decode. Internal: the store maps it to a [`crate::StoreError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported format version {found}")]
    UnsupportedVersion { found: u32 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("truncated: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated { needed_bytes: u64, available_bytes: u64 },
    #[error("invalid {field}: {detail}")]
    Field { field: &'static str, detail: String },
}

impl DecodeError {
    pub(crate) fn field(field: &'static str, detail: impl Into<String>) -> DecodeError {
        DecodeError::Field { field, detail: detail.into() }
    }
}

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity_bytes: usize) -> Writer {
        Writer { buf: Vec::with_capacity(capacity_bytes) }
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u128(&mut self, v: u128) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn peek(&self) -> &[u8] {
        &self.buf
    }
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian fields from a slice; running off the end is a [`DecodeError::Truncated`].
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                needed_bytes: self.pos as u64 + len as u64,
                available_bytes: self.buf.len() as u64,
            });
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// CRC32C of `bytes` with the 4 bytes at `crc_offset` taken as zero (the stored checksum's own field).
pub(crate) fn crc_with_hole(bytes: &[u8], crc_offset: usize) -> u32 {
    assert!(crc_offset + 4 <= bytes.len());
    let crc = crc32c::crc32c(&bytes[..crc_offset]);
    let crc = crc32c::crc32c_append(crc, &[0u8; 4]);
    crc32c::crc32c_append(crc, &bytes[crc_offset + 4..])
}

/// Reads the u32 stored at `offset` (the caller checked the length).
pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(v)
}

/// Fails unless every byte is zero (reserved fields and padding).
pub(crate) fn expect_zero(field: &'static str, bytes: &[u8]) -> Result<(), DecodeError> {
    match bytes.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(DecodeError::field(field, format!("byte {i} is {:#04x}, must be zero", bytes[i]))),
    }
}

/// Fails unless a decoded field has the value the referencing structure promised.
pub(crate) fn expect_eq<T: PartialEq + core::fmt::Display>(
    field: &'static str,
    found: T,
    expected: T,
) -> Result<(), DecodeError> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::field(field, format!("found {found}, expected {expected}")))
    }
}
