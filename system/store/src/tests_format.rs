//! Property tests of every on-disk structure: encode then decode is the identity; any single flipped
//! byte and any random garbage decode to a typed error, never a panic.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::checkpoint::{self, Checkpoint, Expected};
use crate::codec::DecodeError;
use crate::journal::{Entry, Record};
use crate::layout::{BLOCK_BYTES, BLOCK_BYTES_USIZE, Layout, blocks_for_bytes};
use crate::record::{Bounds, ExtentRecord};
use crate::superblock::Superblock;
use crate::{DeviceIdentity, ExtentId};

const BOUNDS: Bounds = Bounds { data_start_block: 100, data_end_block: 100_000, max_extent_bytes: 64 * 1024 };

fn arb_superblock() -> impl Strategy<Value = Superblock> {
    (
        any::<u128>(),
        any::<u128>(),
        1u64..u64::MAX / 2,
        300u64..(1 << 30),
        16u64..4096,
        1u32..=64 * 1024,
        any::<u32>(),
        1u64..u64::MAX,
        1u64..u64::MAX,
    )
        .prop_map(
            |(cluster_id, device_id, generation, total_blocks, journal_blocks, max_extent_bytes, crc, seq, next)| {
                let layout = Layout::compute(total_blocks * BLOCK_BYTES, journal_blocks).unwrap_or_else(|_| {
                    Layout::compute((journal_blocks + 300) * BLOCK_BYTES, journal_blocks).expect("fits")
                });
                Superblock {
                    identity: DeviceIdentity { cluster_id, device_id },
                    generation,
                    layout,
                    max_extent_bytes,
                    checkpoint_slot: (generation % 2) as u8,
                    checkpoint_len_bytes: checkpoint::MIN_BYTES
                        + u64::from(crc) % (layout.checkpoint_blocks * BLOCK_BYTES - checkpoint::MIN_BYTES),
                    checkpoint_crc: crc,
                    journal_start_seq: seq,
                    next_extent_id: next,
                }
            },
        )
}

fn arb_extent(len_max: u32) -> impl Strategy<Value = ExtentRecord> {
    (100u64..90_000, 1u32..=len_max, any::<u32>()).prop_map(|(start_block, len_bytes, salt)| {
        let blocks = blocks_for_bytes(u64::from(len_bytes)) as u32;
        ExtentRecord { start_block, len_bytes, block_crcs: (0..blocks).map(|i| salt.wrapping_mul(i + 1)).collect() }
    })
}

fn arb_checkpoint() -> impl Strategy<Value = Checkpoint> {
    (any::<u64>(), any::<u128>(), proptest::collection::btree_map(0u64..1000, arb_extent(40_000), 0..12)).prop_map(
        |(generation, device_id, extents)| Checkpoint {
            generation,
            device_id,
            next_extent_id: 1000 + generation % 7,
            extents: extents.into_iter().map(|(id, e)| (ExtentId(id), e)).collect::<BTreeMap<_, _>>(),
        },
    )
}

fn expected_for(c: &Checkpoint, encoded: &[u8]) -> Expected {
    Expected {
        generation: c.generation,
        device_id: c.device_id,
        next_extent_id: c.next_extent_id,
        len_bytes: encoded.len() as u64,
        crc: checkpoint::trailer_crc(encoded),
        bounds: BOUNDS,
    }
}

fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<u64>(), arb_extent(20_000)).prop_map(|(id, extent)| Record::Commit { id: ExtentId(id), extent }),
        any::<u64>().prop_map(|id| Record::Free { id: ExtentId(id) }),
    ]
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (any::<u64>(), proptest::collection::vec(arb_record(), 1..20)).prop_map(|(seq, records)| Entry { seq, records })
}

const MAX_ENTRY_BLOCKS: u64 = 64;

proptest! {
    #[test]
    fn superblock_round_trips(sb in arb_superblock()) {
        let bytes = sb.encode();
        prop_assert_eq!(bytes.len(), BLOCK_BYTES_USIZE);
        prop_assert_eq!(Superblock::decode(&bytes), Ok(sb));
    }

    #[test]
    fn superblock_flipped_byte_is_an_error(sb in arb_superblock(), at in 0usize..4096, mask in 1u8..=255) {
        let mut bytes = sb.encode();
        bytes[at] ^= mask;
        prop_assert!(Superblock::decode(&bytes).is_err());
    }

    #[test]
    fn superblock_garbage_is_an_error(mut bytes in proptest::collection::vec(any::<u8>(), 4096), magic in any::<bool>()) {
        if magic {
            bytes[..16].copy_from_slice(&crate::superblock::MAGIC);
        }
        prop_assert!(Superblock::decode(&bytes).is_err());
        prop_assert!(Superblock::decode(&bytes[..100]).is_err());
    }

    #[test]
    fn checkpoint_round_trips(c in arb_checkpoint(), pad in 0usize..5000) {
        let mut bytes = c.encode();
        let expected = expected_for(&c, &bytes);
        bytes.resize(bytes.len() + pad, 0xAA);
        prop_assert_eq!(Checkpoint::decode(&bytes, &expected), Ok(c));
    }

    #[test]
    fn checkpoint_flipped_byte_is_an_error(c in arb_checkpoint(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = c.encode();
        let expected = expected_for(&c, &bytes);
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        prop_assert!(Checkpoint::decode(&bytes, &expected).is_err());
    }

    #[test]
    fn checkpoint_garbage_is_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..3000), len in 0u64..4000, crc in any::<u32>()) {
        let expected = Expected { generation: 1, device_id: 2, next_extent_id: 3, len_bytes: len, crc, bounds: BOUNDS };
        prop_assert!(Checkpoint::decode(&bytes, &expected).is_err());
    }

    #[test]
    fn journal_entry_round_trips(e in arb_entry(), device_id in any::<u128>(), tail in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let mut bytes = e.encode(device_id);
        let blocks = bytes.len() as u64 / BLOCK_BYTES;
        prop_assert_eq!(bytes.len() % BLOCK_BYTES_USIZE, 0);
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(Entry::decode(&bytes, device_id, MAX_ENTRY_BLOCKS, &BOUNDS), Ok((e, blocks)));
        // Another device's (or format's) entry is rejected.
        prop_assert!(Entry::decode(&bytes, device_id ^ 1, MAX_ENTRY_BLOCKS, &BOUNDS).is_err());
    }

    #[test]
    fn journal_flipped_byte_is_an_error(e in arb_entry(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = e.encode(9);
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        prop_assert!(Entry::decode(&bytes, 9, MAX_ENTRY_BLOCKS, &BOUNDS).is_err());
    }

    #[test]
    fn journal_garbage_is_an_error(mut bytes in proptest::collection::vec(any::<u8>(), 0..9000), magic in any::<bool>()) {
        if magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&crate::journal::MAGIC);
        }
        prop_assert!(Entry::decode(&bytes, 9, MAX_ENTRY_BLOCKS, &BOUNDS).is_err());
    }
}

#[test]
fn out_of_bounds_records_are_rejected_even_with_a_valid_checksum() {
    let extent = ExtentRecord { start_block: 99_999, len_bytes: 8192, block_crcs: vec![1, 2] };
    let bytes = Entry { seq: 1, records: vec![Record::Commit { id: ExtentId(1), extent }] }.encode(9);
    assert!(matches!(Entry::decode(&bytes, 9, MAX_ENTRY_BLOCKS, &BOUNDS), Err(DecodeError::Field { .. })));
    let c = Checkpoint {
        generation: 1,
        device_id: 2,
        next_extent_id: 5,
        extents: [(ExtentId(7), ExtentRecord { start_block: 200, len_bytes: 1, block_crcs: vec![0] })]
            .into_iter()
            .collect(),
    };
    let bytes = checkpoint::encode_table(1, 2, 8, &c.extents);
    let expected = Expected { next_extent_id: 8, ..expected_for(&c, &bytes) };
    assert!(Checkpoint::decode(&bytes, &expected).is_ok());
    let bad_ids = checkpoint::encode_table(1, 2, 7, &BTreeMap::new());
    assert!(Checkpoint::decode(&bad_ids, &Expected { next_extent_id: 8, ..expected_for(&c, &bad_ids) }).is_err());
}
