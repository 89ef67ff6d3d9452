//! One conformance suite for every `Codec` implementation in this build (`IsaL` with `--features isal`).
//! Shards are pseudo-random bytes from a seeded generator; absent shards are filled with garbage before
//! reconstruction, so a codec that reads them (or forgets to write them) fails.

use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tessera_ec::{Codec, CodecError, CodecKind, Geometry, GeometryError};

/// The geometries every codec is checked on: the policy shapes named in the issue and odd ones.
const GEOMETRIES: [(u8, u8); 12] =
    [(4, 2), (8, 2), (8, 3), (16, 4), (1, 1), (2, 1), (2, 2), (3, 3), (5, 4), (6, 3), (11, 2), (13, 4)];

fn codecs(geometry: Geometry) -> Vec<Box<dyn Codec>> {
    CodecKind::available().map(|kind| kind.build(geometry).expect("available")).collect()
}

fn geometry(data: u8, parity: u8) -> Geometry {
    Geometry::new(data, parity).unwrap()
}

fn random_bytes(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// A full stripe: random data shards and their parity computed by `codec`.
fn encoded_stripe(codec: &mut dyn Codec, rng: &mut ChaCha8Rng, shard_len: usize) -> Vec<Vec<u8>> {
    let g = codec.geometry();
    let mut shards: Vec<Vec<u8>> = (0..g.total_shards()).map(|_| random_bytes(rng, shard_len)).collect();
    let (data, parity) = shards.split_at_mut(g.data_shards());
    let data: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    codec.encode(&data, &mut parity).unwrap();
    shards
}

/// Loses the shards in `lost` (overwriting them with garbage), reconstructs, and returns the result.
fn lose_and_reconstruct(
    codec: &mut dyn Codec,
    stripe: &[Vec<u8>],
    lost: &[usize],
    rng: &mut ChaCha8Rng,
) -> (Result<(), CodecError>, Vec<Vec<u8>>) {
    let mut shards = stripe.to_vec();
    let mut present = vec![true; shards.len()];
    for &i in lost {
        rng.fill_bytes(&mut shards[i]);
        present[i] = false;
    }
    let mut buffers: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    let result = codec.reconstruct(&mut buffers, &present);
    (result, shards)
}

/// Every subset of `0..n` with at most `k` elements, in a fixed order.
fn subsets_up_to(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for size in 1..=k {
        let mut current: Vec<usize> = (0..size).collect();
        loop {
            out.push(current.clone());
            // Next combination in lexicographic order.
            let Some(i) = (0..size).rev().find(|&i| current[i] < n - size + i) else { break };
            current[i] += 1;
            for j in i + 1..size {
                current[j] = current[j - 1] + 1;
            }
        }
    }
    out
}

#[test]
fn subsets_are_counted_right() {
    // C(20,0..=4) = 1 + 20 + 190 + 1140 + 4845.
    assert_eq!(subsets_up_to(20, 4).len(), 6196);
    assert_eq!(subsets_up_to(6, 2).len(), 1 + 6 + 15);
}

#[test]
fn every_loss_of_up_to_k_shards_is_restored_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (n, k) in GEOMETRIES {
        let g = geometry(n, k);
        let erasure_sets = subsets_up_to(g.total_shards(), g.parity_shards());
        for mut codec in codecs(g) {
            // 2 bytes is the smallest length every codec takes; 250 is not a multiple of any SIMD width.
            for shard_len in [2, 250] {
                let stripe = encoded_stripe(codec.as_mut(), &mut rng, shard_len);
                for lost in &erasure_sets {
                    let (result, shards) = lose_and_reconstruct(codec.as_mut(), &stripe, lost, &mut rng);
                    assert_eq!(result, Ok(()), "{} {g} lost {lost:?}", codec.name());
                    assert!(shards == stripe, "{} {g} lost {lost:?}: wrong bytes", codec.name());
                }
            }
        }
    }
}

#[test]
fn large_shards_survive_a_sample_of_losses() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (n, k) in [(4, 2), (8, 2), (8, 3), (16, 4)] {
        let g = geometry(n, k);
        let erasure_sets = subsets_up_to(g.total_shards(), g.parity_shards());
        for mut codec in codecs(g) {
            let stripe = encoded_stripe(codec.as_mut(), &mut rng, 64 * 1024 + 6);
            for _ in 0..24 {
                let lost = &erasure_sets[rng.next_u32() as usize % erasure_sets.len()];
                let (result, shards) = lose_and_reconstruct(codec.as_mut(), &stripe, lost, &mut rng);
                assert_eq!(result, Ok(()));
                assert!(shards == stripe, "{} {g} lost {lost:?}: wrong bytes", codec.name());
            }
        }
    }
}

#[test]
fn losing_more_than_k_is_an_error_and_writes_nothing() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (n, k) in GEOMETRIES {
        let g = geometry(n, k);
        for mut codec in codecs(g) {
            let stripe = encoded_stripe(codec.as_mut(), &mut rng, 64);
            for lost in
                [(0..=k as usize).collect::<Vec<_>>(), (g.total_shards() - k as usize - 1..g.total_shards()).collect()]
            {
                let mut shards = stripe.clone();
                let mut present = vec![true; shards.len()];
                for &i in &lost {
                    shards[i].fill(0xEE);
                    present[i] = false;
                }
                let before = shards.clone();
                let mut buffers: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
                let err = codec.reconstruct(&mut buffers, &present).unwrap_err();
                assert_eq!(err, CodecError::TooFewShards { present: n as usize - 1, needed: n as usize });
                assert!(shards == before, "{} {g}: a refused reconstruct wrote", codec.name());
            }
        }
    }
}

#[test]
fn reconstruct_vecs_allocates_the_lost_shards() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let g = geometry(8, 3);
    for mut codec in codecs(g) {
        let stripe = encoded_stripe(codec.as_mut(), &mut rng, 4096);
        let mut shards: Vec<Option<Vec<u8>>> = stripe.iter().cloned().map(Some).collect();
        shards[1] = None;
        shards[6] = None;
        shards[9] = None;
        codec.reconstruct_vecs(&mut shards).unwrap();
        assert!(shards.iter().zip(&stripe).all(|(a, b)| a.as_ref() == Some(b)), "{}", codec.name());

        shards[0] = None;
        shards[2] = None;
        shards[4] = None;
        shards[8] = None;
        let before = shards.clone();
        let err = codec.reconstruct_vecs(&mut shards).unwrap_err();
        assert_eq!(err, CodecError::TooFewShards { present: 7, needed: 8 });
        assert_eq!(shards, before);

        // A present shard of the wrong length: typed error, and the lost ones stay `None`.
        let mut shards: Vec<Option<Vec<u8>>> = stripe.iter().cloned().map(Some).collect();
        shards[0] = None;
        shards[5].as_mut().unwrap().pop();
        let err = codec.reconstruct_vecs(&mut shards).unwrap_err();
        assert!(matches!(err, CodecError::UnequalShardLengths { index: 5, .. }), "{err:?}");
        assert!(shards[0].is_none());
    }
}

#[test]
fn parity_is_deterministic_and_reconstruct_agrees_with_encode() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (n, k) in GEOMETRIES {
        let g = geometry(n, k);
        for kind in CodecKind::available() {
            let mut first = kind.build(g).unwrap();
            let stripe = encoded_stripe(first.as_mut(), &mut rng, 128);
            // A second instance, after coding something else of another length, gives the same parity.
            let mut second = kind.build(g).unwrap();
            encoded_stripe(second.as_mut(), &mut rng, 4096);
            let data: Vec<&[u8]> = stripe[..g.data_shards()].iter().map(Vec::as_slice).collect();
            let mut parity = vec![vec![0u8; 128]; g.parity_shards()];
            let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            second.encode(&data, &mut parity_refs).unwrap();
            assert_eq!(parity, stripe[g.data_shards()..], "{} {g}", kind.name());
        }
    }
}

#[test]
fn implementations_produce_different_parity() {
    // Recorded fact, not a requirement: stripes are only decodable by the implementation that wrote
    // them. If two ever agree, this test says so and the doc should be updated.
    let g = geometry(8, 2);
    let mut parities = Vec::new();
    for kind in CodecKind::available() {
        let mut codec = kind.build(g).unwrap();
        let stripe = encoded_stripe(codec.as_mut(), &mut ChaCha8Rng::seed_from_u64(6), 64);
        parities.push((kind, stripe[g.data_shards()..].to_vec()));
    }
    for (i, (a, pa)) in parities.iter().enumerate() {
        for (b, pb) in &parities[i + 1..] {
            assert_ne!(pa, pb, "{} and {} produce identical parity", a.name(), b.name());
        }
    }
}

#[test]
fn geometry_is_validated() {
    assert_eq!(Geometry::new(0, 1), Err(GeometryError::DataShards { data: 0 }));
    assert_eq!(Geometry::new(17, 2), Err(GeometryError::DataShards { data: 17 }));
    assert_eq!(Geometry::new(4, 0), Err(GeometryError::ParityShards { parity: 0, max: 4 }));
    assert_eq!(Geometry::new(16, 5), Err(GeometryError::ParityShards { parity: 5, max: 4 }));
    assert_eq!(Geometry::new(2, 3), Err(GeometryError::ParityShards { parity: 3, max: 2 }));
    assert_eq!(Geometry::policy(3, 2), Err(GeometryError::OutsidePolicy { data: 3, parity: 2 }));
    assert_eq!(Geometry::policy(8, 1), Err(GeometryError::OutsidePolicy { data: 8, parity: 1 }));
    for n in 4..=16 {
        for k in 2..=4 {
            let g = Geometry::policy(n, k).unwrap();
            assert!(g.is_policy());
            assert_eq!(
                (g.data_shards(), g.parity_shards(), g.total_shards()),
                (n as usize, k as usize, (n + k) as usize)
            );
        }
    }
    assert!(!geometry(2, 2).is_policy());
    assert_eq!(geometry(8, 3).to_string(), "8+3");
}

#[test]
fn bad_arguments_are_typed_errors() {
    let g = geometry(4, 2);
    for mut codec in codecs(g) {
        let d = [[1u8; 8]; 5];
        let mut p = [[0u8; 8]; 3];
        let data: Vec<&[u8]> = d.iter().map(|s| &s[..]).collect();
        let mut parity: Vec<&mut [u8]> = p.iter_mut().map(|s| &mut s[..]).collect();
        assert_eq!(codec.encode(&data[..3], &mut parity[..2]), Err(CodecError::DataShardCount { expected: 4, got: 3 }));
        assert_eq!(
            codec.encode(&data[..4], &mut parity[..3]),
            Err(CodecError::ParityShardCount { expected: 2, got: 3 })
        );

        let short = [1u8; 6];
        let mut with_short = data[..4].to_vec();
        with_short[2] = &short;
        assert_eq!(
            codec.encode(&with_short, &mut parity[..2]),
            Err(CodecError::UnequalShardLengths { index: 2, len: 6, expected: 8 })
        );
        let mut short_parity = [0u8; 10];
        let mut parity_mixed: Vec<&mut [u8]> = vec![&mut short_parity, parity.pop().unwrap()];
        assert_eq!(
            codec.encode(&data[..4], &mut parity_mixed),
            Err(CodecError::UnequalShardLengths { index: 4, len: 10, expected: 8 })
        );
        let empty: [&[u8]; 4] = [&[]; 4];
        let (mut e1, mut e2) = ([0u8; 0], [0u8; 0]);
        assert_eq!(codec.encode(&empty, &mut [&mut e1, &mut e2]), Err(CodecError::EmptyShards));

        let mut s = [[0u8; 8]; 7];
        let mut shards: Vec<&mut [u8]> = s.iter_mut().map(|s| &mut s[..]).collect();
        assert_eq!(codec.reconstruct(&mut shards, &[true; 7]), Err(CodecError::ShardCount { expected: 6, got: 7 }));
        assert_eq!(
            codec.reconstruct(&mut shards[..6], &[true; 5]),
            Err(CodecError::PresentFlagCount { expected: 6, got: 5 })
        );
        assert_eq!(codec.reconstruct(&mut shards[..6], &[true; 6]), Ok(()), "all present: nothing to do");
    }
}

#[test]
fn odd_lengths_are_refused_only_by_reed_solomon_simd() {
    let g = geometry(4, 2);
    for mut codec in codecs(g) {
        let d = [[7u8; 33]; 4];
        let mut p = [[0u8; 33]; 2];
        let data: Vec<&[u8]> = d.iter().map(|s| &s[..]).collect();
        let mut parity: Vec<&mut [u8]> = p.iter_mut().map(|s| &mut s[..]).collect();
        let result = codec.encode(&data, &mut parity);
        if codec.shard_len_multiple() == 1 {
            assert_eq!(result, Ok(()), "{}", codec.name());
        } else {
            assert_eq!(codec.name(), "reed-solomon-simd");
            assert_eq!(result, Err(CodecError::ShardLengthAlignment { len: 33, multiple: 2 }));
        }
    }
}

#[test]
fn every_kind_is_named_and_built_when_available() {
    let g = geometry(4, 2);
    for kind in CodecKind::ALL {
        let codec = kind.build(g);
        assert_eq!(codec.is_some(), kind.is_available());
        if let Some(codec) = codec {
            assert_eq!(codec.name(), kind.name());
            assert_eq!(codec.geometry(), g);
        }
    }
    assert_eq!(CodecKind::IsaL.is_available(), cfg!(feature = "isal"));
    assert!(CodecKind::DEFAULT.is_available());
}

fn any_case() -> impl Strategy<Value = (u8, u8, usize, u64, Vec<usize>)> {
    (1u8..=16, 1u8..=4).prop_filter("parity <= data", |(n, k)| k <= n).prop_flat_map(|(n, k)| {
        let total = (n + k) as usize;
        (
            Just(n),
            Just(k),
            1usize..=600,
            any::<u64>(),
            proptest::sample::subsequence((0..total).collect::<Vec<_>>(), 0..=total),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random geometry, data and erasure set: up to K lost is restored exactly, more is refused.
    #[test]
    fn random_erasures((n, k, half_len, seed, lost) in any_case()) {
        let g = geometry(n, k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for mut codec in codecs(g) {
            let stripe = encoded_stripe(codec.as_mut(), &mut rng, 2 * half_len);
            let (result, shards) = lose_and_reconstruct(codec.as_mut(), &stripe, &lost, &mut rng);
            if lost.len() <= k as usize {
                prop_assert_eq!(result, Ok(()));
                prop_assert!(shards == stripe, "{} {} lost {:?}", codec.name(), g, lost);
            } else {
                let present = g.total_shards() - lost.len();
                prop_assert_eq!(result, Err(CodecError::TooFewShards { present, needed: n as usize }));
            }
        }
    }
}
