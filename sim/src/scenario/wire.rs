//! The extent service's messages and their byte encoding.
//!
//! Layout, little-endian: `tag: u8`, `req_id: u64`, then by tag:
//! - 1 Put: `len: u32`, `data` — 2 PutOk: `disk: u32`, `extent: u64` — 3 PutErr: `len: u32`, UTF-8 reason
//! - 4 Get: `disk: u32`, `extent: u64` — 5 GetOk: `len: u32`, `data` — 6 GetErr: `len: u32`, UTF-8 reason

use std::fmt;

/// Where a server put an extent: which of its disks and the store's id on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExtentRef {
    pub disk: u32,
    pub extent: u64,
}

impl fmt::Display for ExtentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "disk{}/extent#{}", self.disk, self.extent)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Put { req_id: u64, data: Vec<u8> },
    PutOk { req_id: u64, at: ExtentRef },
    PutErr { req_id: u64, reason: String },
    Get { req_id: u64, at: ExtentRef },
    GetOk { req_id: u64, data: Vec<u8> },
    GetErr { req_id: u64, reason: String },
}

impl Message {
    pub fn req_id(&self) -> u64 {
        match self {
            Message::Put { req_id, .. }
            | Message::PutOk { req_id, .. }
            | Message::PutErr { req_id, .. }
            | Message::Get { req_id, .. }
            | Message::GetOk { req_id, .. }
            | Message::GetErr { req_id, .. } => *req_id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (tag, req_id) = match self {
            Message::Put { req_id, .. } => (1u8, *req_id),
            Message::PutOk { req_id, .. } => (2, *req_id),
            Message::PutErr { req_id, .. } => (3, *req_id),
            Message::Get { req_id, .. } => (4, *req_id),
            Message::GetOk { req_id, .. } => (5, *req_id),
            Message::GetErr { req_id, .. } => (6, *req_id),
        };
        let mut out = vec![tag];
        out.extend_from_slice(&req_id.to_le_bytes());
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&u32::try_from(b.len()).expect("message under 4 GiB").to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Message::Put { data, .. } | Message::GetOk { data, .. } => bytes(&mut out, data),
            Message::PutErr { reason, .. } | Message::GetErr { reason, .. } => bytes(&mut out, reason.as_bytes()),
            Message::PutOk { at, .. } | Message::Get { at, .. } => {
                out.extend_from_slice(&at.disk.to_le_bytes());
                out.extend_from_slice(&at.extent.to_le_bytes());
            }
        }
        out
    }

    /// `None` for anything malformed (the receiver ignores it).
    pub fn decode(b: &[u8]) -> Option<Message> {
        let (&tag, rest) = b.split_first()?;
        let req_id = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let rest = &rest[8..];
        let bytes = || -> Option<Vec<u8>> {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let body = rest.get(4..)?;
            (body.len() == len).then(|| body.to_vec())
        };
        let at = || -> Option<ExtentRef> {
            (rest.len() == 12).then_some(())?;
            Some(ExtentRef {
                disk: u32::from_le_bytes(rest[..4].try_into().ok()?),
                extent: u64::from_le_bytes(rest[4..12].try_into().ok()?),
            })
        };
        let text = || bytes().and_then(|b| String::from_utf8(b).ok());
        Some(match tag {
            1 => Message::Put { req_id, data: bytes()? },
            2 => Message::PutOk { req_id, at: at()? },
            3 => Message::PutErr { req_id, reason: text()? },
            4 => Message::Get { req_id, at: at()? },
            5 => Message::GetOk { req_id, data: bytes()? },
            6 => Message::GetErr { req_id, reason: text()? },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reject_garbage() {
        let at = ExtentRef { disk: 1, extent: 99 };
        let all = [
            Message::Put { req_id: 1, data: vec![1, 2, 3] },
            Message::PutOk { req_id: 2, at },
            Message::PutErr { req_id: 3, reason: "full".into() },
            Message::Get { req_id: 4, at },
            Message::GetOk { req_id: 5, data: vec![] },
            Message::GetErr { req_id: 6, reason: "gone".into() },
        ];
        for m in all {
            let b = m.encode();
            assert_eq!(Message::decode(&b), Some(m.clone()));
            assert_eq!(Message::decode(&b[..b.len() - 1]), None, "{m:?} truncated");
        }
        assert_eq!(Message::decode(&[9; 20]), None);
        assert_eq!(Message::decode(&[]), None);
    }
}
