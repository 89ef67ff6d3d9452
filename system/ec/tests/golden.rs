//! Parity bytes pinned per codec: stripes on disk are reconstructed by the implementation that encoded
//! them, so a library upgrade (or a change of matrix) that changes parity would make stored stripes
//! unreadable. If this fails after an upgrade, the codec's on-disk identity must change with it.

use tessera_ec::{CodecKind, Geometry};

/// FNV-1a over the parity shards, in order.
fn digest(parity: &[Vec<u8>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parity.iter().flatten() {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn parity_digest(kind: CodecKind, data_shards: u8, parity_shards: u8) -> Option<u64> {
    let geometry = Geometry::new(data_shards, parity_shards).expect("geometry");
    let mut codec = kind.build(geometry)?;
    let len = 1024;
    let data: Vec<Vec<u8>> = (0..usize::from(data_shards))
        .map(|s| (0..len).map(|i| ((i * 31 + s * 101 + 7) % 251) as u8).collect())
        .collect();
    let mut parity = vec![vec![0u8; len]; usize::from(parity_shards)];
    let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    codec.encode(&data_refs, &mut parity_refs).expect("encode");
    Some(digest(&parity))
}

#[test]
fn parity_bytes_are_pinned() {
    let mut seen = Vec::new();
    for kind in CodecKind::ALL {
        for (n, k) in [(4, 2), (8, 2), (16, 4)] {
            if let Some(d) = parity_digest(kind, n, k) {
                seen.push(format!("{kind:?} {n}+{k} {d:#018x}"));
            }
        }
    }
    let pinned = PINNED.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
    let missing: Vec<&String> = seen.iter().filter(|line| !pinned.contains(&line.as_str())).collect();
    assert!(missing.is_empty(), "parity changed or not pinned:\n{missing:#?}\npinned:\n{PINNED}");
    assert!(seen.len() >= 6, "both always-built codecs are pinned at three geometries");
}

const PINNED: &str = "
    ReedSolomonErasure 4+2 0xc04d3d1cbb6ecda7
    ReedSolomonErasure 8+2 0xc647b5463d560243
    ReedSolomonErasure 16+4 0x1864b4bce6363aa6
    ReedSolomonSimd 4+2 0x38b7836e31f65ee1
    ReedSolomonSimd 8+2 0x96240f857f977a82
    ReedSolomonSimd 16+4 0xfb69b1b95551b57a
    IsaL 4+2 0xcd4ceb76ecdca71e
    IsaL 8+2 0xd47d58a325995b78
    IsaL 16+4 0xe6efc0bd121465c9
";
