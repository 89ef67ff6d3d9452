use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    A,
    B(u32),
    C { x: i64, name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sample {
    id: u64,
    small: u8,
    signed: i64,
    flag: bool,
    bytes: Vec<u8>,
    words: Vec<u64>,
    maybe: Option<Box<Sample>>,
    kind: Kind,
    text: String,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::A),
        any::<u32>().prop_map(Kind::B),
        (any::<i64>(), ".{0,8}").prop_map(|(x, name)| Kind::C { x, name }),
    ]
}

fn leaf() -> impl Strategy<Value = Sample> {
    (
        any::<u64>(),
        any::<u8>(),
        any::<i64>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u64>(), 0..16),
        kind(),
        ".{0,16}",
    )
        .prop_map(|(id, small, signed, flag, bytes, words, kind, text)| Sample {
            id,
            small,
            signed,
            flag,
            bytes,
            words,
            maybe: None,
            kind,
            text,
        })
}

fn sample() -> impl Strategy<Value = Sample> {
    (leaf(), proptest::option::of(leaf())).prop_map(|(mut s, inner)| {
        s.maybe = inner.map(Box::new);
        s
    })
}

proptest! {
    #[test]
    fn round_trip(value in sample()) {
        let bytes = encode(&value);
        prop_assert_eq!(decode::<Sample>(&bytes), Ok(value));
    }

    #[test]
    fn trailing_bytes_are_rejected(value in sample(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode(&value);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decode::<Sample>(&bytes), Err(CodecError::TrailingBytes));
    }

    #[test]
    fn truncation_is_an_error(value in sample(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&value);
        let keep = cut.index(bytes.len());
        prop_assert!(decode::<Sample>(&bytes[..keep]).is_err());
    }

    /// Random bytes decode to an error (or, rarely, a value), never a panic or a huge allocation: the
    /// length prefixes below claim up to 2^64 elements.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<Sample>(&bytes);
        let _ = decode::<Vec<u8>>(&bytes);
        let _ = decode::<Vec<Vec<u64>>>(&bytes);
        let _ = decode::<String>(&bytes);
    }
}

#[test]
fn huge_length_prefix_is_rejected_without_allocating() {
    // A Vec<u8> claiming u64::MAX / 2 bytes: tag 253 then the u64.
    let mut bytes = vec![253u8];
    bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    // (bincode checks the claim against the limit and the remaining input before allocating).
    let result = decode::<Vec<u8>>(&bytes);
    assert!(matches!(result, Err(CodecError::TooLarge | CodecError::Truncated)), "{result:?}");
    // A claim just under the limit with no data behind it: truncated, not a 16 MiB allocation attempt
    // that succeeds.
    let mut bytes = vec![252u8];
    bytes.extend_from_slice(&((MAX_MESSAGE_BYTES as u32) - 16).to_le_bytes());
    assert!(decode::<Vec<u8>>(&bytes).is_err());
    let mut bytes = vec![253u8];
    bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(decode::<Vec<u64>>(&bytes).is_err());
}

#[test]
fn oversized_input_and_value_are_rejected() {
    let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert_eq!(decode::<Vec<u8>>(&big), Err(CodecError::TooLarge));
    assert_eq!(try_encode(&big), Err(CodecError::TooLarge));
}

#[test]
fn varint_layout_is_as_documented() {
    assert_eq!(encode(&250u64), vec![250]);
    assert_eq!(encode(&251u64), vec![251, 251, 0]);
    assert_eq!(encode(&(1u64 << 20)), vec![252, 0, 0, 16, 0]);
    assert_eq!(encode(&(1u64 << 40)), vec![253, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(encode(&-1i64), vec![1]);
    assert_eq!(encode(&Some(true)), vec![1, 1]);
    assert_eq!(encode(&vec![7u8, 8]), vec![2, 7, 8]);
    assert_eq!(encode(&Kind::B(3)), vec![1, 3]);
}
