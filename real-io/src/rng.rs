//! Seeding the one deterministic generator from the OS. Only `real-io` reads OS randomness; everything in
//! `system/` gets a [`DetRng`] handed in.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_env::DetRng;

/// A 64-bit seed from the OS. std's [`RandomState`] keys SipHash with bytes from the OS random source
/// (`getrandom`); hashing the time and process id with a fresh one gives an unpredictable seed without
/// another dependency. Log it at boot: [`DetRng::from_seed`] with the same value replays the stream.
pub fn os_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    RandomState::new().hash_one((nanos, std::process::id()))
}

/// A [`DetRng`] seeded from [`os_seed`]. Prefer `DetRng::from_seed(os_seed())` when the seed should be
/// logged.
pub fn os_seeded_rng() -> DetRng {
    DetRng::from_seed(os_seed())
}
