//! Helpers shared by the benches (each bench uses a subset, hence the `dead_code` allowance).
#![allow(dead_code)]

use std::cmp::Ordering;

/// A temp directory for a bench's files: under `$TESSERA_BENCH_DIR` if set (e.g. /dev/shm for tmpfs),
/// else under the system temp dir.
pub fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TESSERA_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base).expect("temp dir in TESSERA_BENCH_DIR"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

/// Incompressible bytes from a xorshift generator started at `state` (which must not be 0).
pub fn xorshift_bytes(state: u64, len: usize) -> Vec<u8> {
    assert_ne!(state, 0, "xorshift needs a non-zero state");
    let mut x = state;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The median (the upper one of an even count) of samples; sorts them.
pub fn median<T: Copy + PartialOrd>(samples: &mut [T]) -> T {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    samples[samples.len() / 2]
}
