//! Entry names: which names the service accepts, the stable hash that orders and partitions a
//! directory's entries, and the readdir cookies built from it.
//!
//! **Cookies.** An entry's cookie is `(top 56 bits of name_hash(name)) | collision`, with `collision` in
//! `1..=255` the smallest counter no other entry of the same directory with the same 56-bit prefix holds
//! when the entry is inserted. The cookie is fixed while the entry exists, entries are listed in cookie
//! order, and a readdir from cookie `c` returns the entries with cookies above `c`; so a paused listing
//! resumes exactly where it left off whatever was added or removed meanwhile (an entry present throughout
//! is returned exactly once), and the cookie stays valid when a directory splits, because partitions are
//! ranges of the hash and a split moves entries without changing their hashes. Cookie 0
//! ([`READDIR_START`]) is never an entry's: it is the start of the directory.

use crate::{Errno, NAME_LEN_MAX_BYTES};

/// The cookie that starts a directory listing.
pub const READDIR_START: u64 = 0;
/// Low bits of a cookie that hold the collision counter.
pub const COOKIE_COLLISION_BITS: u32 = 8;
const COOKIE_COLLISION_MASK: u64 = (1 << COOKIE_COLLISION_BITS) - 1;

/// Whether the service accepts `name` as a directory-entry name.
///
/// A Linux file system never receives `""`, `.`, `..`, or a name with `/` or NUL (the VFS resolves
/// dots, splits at slashes and stops at NUL, and answers path-level errors such as EEXIST for
/// `mkdir(".")` or EBUSY for `rename(".", ..)` itself). The client library plays the VFS's part; the
/// service answers such a name with EINVAL for every operation, lookup included. A name over
/// [`NAME_LEN_MAX_BYTES`] bytes is ENAMETOOLONG.
pub fn validate_name(name: &str) -> Result<(), Errno> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_LEN_MAX_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// The stable 64-bit hash of an entry name: FNV-1a over the UTF-8 bytes, then MurmurHash3's 64-bit
/// finaliser so that every bit (the top ones pick a directory partition) depends on every input byte.
/// Frozen: cookies handed to clients and the placement of directory partitions depend on it.
pub fn name_hash(name: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The cookies `name` may take, in the order they are tried: its hash prefix with collision counters
/// 1, 2, ..., 255.
pub fn candidate_cookies(name: &str) -> impl Iterator<Item = u64> {
    let prefix = name_hash(name) & !COOKIE_COLLISION_MASK;
    (1..=COOKIE_COLLISION_MASK).map(move |collision| prefix | collision)
}

/// The cookie a new entry `name` takes in a directory where `taken(cookie)` tells which cookies its
/// entries hold; `None` (ENOSPC) if all 255 cookies of the name's hash prefix are taken.
pub fn assign_cookie(name: &str, taken: impl Fn(u64) -> bool) -> Option<u64> {
    candidate_cookies(name).find(|&c| !taken(c))
}

/// Whether `cookie` could be an entry's cookie for `name` (its hash prefix, a non-zero counter).
pub fn cookie_matches(name: &str, cookie: u64) -> bool {
    cookie & COOKIE_COLLISION_MASK != 0
        && (cookie & !COOKIE_COLLISION_MASK) == (name_hash(name) & !COOKIE_COLLISION_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_linux_never_passes_to_a_file_system_are_invalid() {
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert_eq!(validate_name(bad), Err(Errno::EINVAL), "{bad:?}");
        }
        for good in ["a", "...", ".hidden", "a..", "é", " "] {
            assert_eq!(validate_name(good), Ok(()), "{good:?}");
        }
        assert_eq!(validate_name(&"x".repeat(255)), Ok(()));
        assert_eq!(validate_name(&"x".repeat(256)), Err(Errno::ENAMETOOLONG));
        // The limit is in bytes: 128 two-byte characters are 256 bytes.
        assert_eq!(validate_name(&"é".repeat(128)), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn name_hash_is_frozen() {
        // Pinned values (checked against an independent Python implementation): changing the hash breaks cookies held by clients and directory placement.
        assert_eq!(name_hash(""), 0xefd0_1f60_ba99_2926);
        assert_eq!(name_hash("a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(name_hash("hello.txt"), 0x2598_1a84_9d7b_07e0);
    }

    #[test]
    fn cookies_skip_taken_counters() {
        let first = assign_cookie("a", |_| false).unwrap();
        assert!(cookie_matches("a", first) && first & COOKIE_COLLISION_MASK == 1);
        let second = assign_cookie("a", |c| c == first).unwrap();
        assert_eq!(second, first + 1);
        assert!(cookie_matches("a", second));
        assert_eq!(assign_cookie("a", |_| true), None);
        assert_eq!(candidate_cookies("a").count(), 255);
        assert!(!cookie_matches("a", first & !COOKIE_COLLISION_MASK));
    }

    proptest! {
        #[test]
        fn cookies_are_never_the_start(name in ".{0,20}") {
            for c in candidate_cookies(&name) {
                prop_assert_ne!(c, READDIR_START);
                prop_assert!(cookie_matches(&name, c));
            }
        }

        #[test]
        fn hash_spreads_short_names(names in proptest::collection::btree_set("[a-z0-9]{1,8}", 50..100)) {
            // Distinct names collide on the 56-bit prefix with negligible probability.
            let prefixes: BTreeSet<u64> = names.iter().map(|n| name_hash(n) >> COOKIE_COLLISION_BITS).collect();
            prop_assert_eq!(prefixes.len(), names.len());
        }
    }
}
