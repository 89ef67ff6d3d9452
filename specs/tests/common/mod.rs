//! Shared by the differential tests (`shard_differential.rs`, `cluster_differential.rs`): the random
//! `MetaOp` generator and its sources of choices, the tally of outcomes kept as evidence of coverage,
//! and the loop over seeds.
//!
//! The generator's draws are part of each test's replay contract (a seed must keep generating the same
//! operations), so where the two tests generate differently a flag of [`Gen`] says which way to draw.

use std::collections::BTreeMap;
use std::fmt;

use tessera_env::{DetRng, NodeId, Rng};
use tessera_meta::content::{INLINE_LEN_MAX_BYTES, NewExtent, StripeId, StripeLayout, StripeRef, WriteData};
use tessera_meta::{
    Credentials, FILE_SIZE_MAX_BYTES, FileType, InodeId, MODE_STICKY, MetaOp, MetaResult, READDIR_START,
    SYMLINK_TARGET_LEN_MAX_BYTES, SetAttr, SetTime, XATTR_VALUE_LEN_MAX_BYTES, XattrFlags,
};

/// A source of choices: `pick(n)` is in `0..n`.
pub trait Draw {
    fn pick(&mut self, n: u64) -> u64;

    fn one_in(&mut self, n: u64) -> bool {
        self.pick(n) == 0
    }
}

impl Draw for DetRng {
    fn pick(&mut self, n: u64) -> u64 {
        self.below(n)
    }
}

/// A proptest-made tape of numbers, read in turn; zeros once it runs out.
#[allow(dead_code)] // Only `shard_differential.rs` runs the generator from a proptest tape.
pub struct Tape {
    pub values: Vec<u64>,
    pub at: usize,
}

impl Draw for Tape {
    fn pick(&mut self, n: u64) -> u64 {
        let v = self.values.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v % n
    }
}

fn choose<T: Clone>(d: &mut impl Draw, items: &[T]) -> T {
    items[d.pick(items.len() as u64) as usize].clone()
}

fn users() -> Vec<Credentials> {
    vec![
        Credentials::root(),
        Credentials::user(1000, 1000),
        Credentials { uid: 1001, gid: 1001, groups: vec![1000] },
        Credentials { uid: 1002, gid: 1002, groups: vec![1001, 1003] },
    ]
}

const MODES: [u32; 10] = [0o755, 0o700, 0o777 | MODE_STICKY, 0o644, 0o2775, 0o555, 0o6755, 0o2750, 0o000, 0o7777];
const KINDS: [FileType; 7] = [
    FileType::Regular,
    FileType::Directory,
    FileType::Symlink,
    FileType::CharDevice,
    FileType::BlockDevice,
    FileType::Fifo,
    FileType::Socket,
];

/// The generator: its view of the state (live inodes, cookies seen) is taken from the system under
/// test (a shard, or a cluster).
pub struct Gen<'a, D: Draw> {
    pub d: &'a mut D,
    pub inodes: Vec<InodeId>,
    /// The live directories: parents are picked from them most of the time.
    pub dirs: Vec<InodeId>,
    /// Each shard's next inode counter.
    pub next_counters: Vec<u64>,
    pub cookies: &'a [u64],
    /// Whether a stale id may name any shard, or one beyond the cluster (a draw more), rather than
    /// always shard 0.
    pub stale_in_any_shard: bool,
    /// Whether the credentials are root half the time (a draw more), so more operations get past the
    /// permission checks to the cross-shard parts, rather than any user alike.
    pub root_half_the_time: bool,
    /// Whether file-content operations (`Write`, `ReadMap`, `GetStripe`, `MoveChunk`) are drawn too
    /// (a draw more); their stripes get ids `StripeId::new(1, stripe_seq * 4 + k)`, fresh at every
    /// step (a shard refuses a stripe id it queued as garbage; the model knows no garbage).
    pub content_ops: bool,
    pub stripe_seq: u64,
}

impl<D: Draw> Gen<'_, D> {
    fn ino(&mut self) -> InodeId {
        if self.d.one_in(20) {
            // Freed, never allocated, or the next one to be: ESTALE.
            // Now and then of a shard beyond the cluster.
            let shard =
                if self.stale_in_any_shard { self.d.pick(self.next_counters.len() as u64 + 1) as usize } else { 0 };
            let counter = self.next_counters.get(shard).copied().unwrap_or(3);
            return InodeId::new(shard as u16, 1 + self.d.pick(counter));
        }
        choose(self.d, &self.inodes)
    }

    /// A directory usually; any inode (ENOTDIR, ESTALE) now and then.
    fn dir(&mut self) -> InodeId {
        if self.d.one_in(8) { self.ino() } else { choose(self.d, &self.dirs) }
    }

    fn name(&mut self) -> String {
        if self.d.one_in(25) {
            let (long, longest) = ("x".repeat(256), "y".repeat(255));
            return choose(self.d, &["", ".", "..", "x/y", "n\0ul", long.as_str(), longest.as_str()]).to_string();
        }
        choose(self.d, &["a", "b", "c", "d"]).to_string()
    }

    fn mode(&mut self) -> u32 {
        if self.d.one_in(30) { 0o10_000 | 0o644 } else { choose(self.d, &MODES) }
    }

    fn creds(&mut self) -> Credentials {
        if self.root_half_the_time && self.d.one_in(2) { Credentials::root() } else { choose(self.d, &users()) }
    }

    fn time(&mut self) -> Option<SetTime> {
        match self.d.pick(3) {
            0 => None,
            1 => Some(SetTime::Now),
            _ => Some(SetTime::At(self.d.pick(1_000_000))),
        }
    }

    fn set_attr(&mut self) -> SetAttr {
        let mut set = SetAttr::default();
        if self.d.one_in(2) {
            set.mode = Some(self.mode());
        }
        if self.d.one_in(4) {
            set.uid = Some(choose(self.d, &[0, 1000, 1001, 1002]));
        }
        if self.d.one_in(4) {
            set.gid = Some(choose(self.d, &[0, 1000, 1001, 1002, 1003]));
        }
        if self.d.one_in(4) {
            set.size = Some(if self.d.one_in(10) { FILE_SIZE_MAX_BYTES + 1 } else { self.d.pick(100) });
        }
        if self.d.one_in(3) {
            set.atime = self.time();
            set.mtime = self.time();
        }
        set
    }

    fn xattr_name(&mut self) -> String {
        let long = format!("user.{}", "z".repeat(251));
        choose(
            self.d,
            &["user.a", "user.b", "user.a", "trusted.a", "security.a", "system.a", "user.", "", "other", &long],
        )
        .to_string()
    }

    fn value(&mut self) -> Vec<u8> {
        if self.d.one_in(50) { vec![7; XATTR_VALUE_LEN_MAX_BYTES + 1] } else { vec![1; self.d.pick(4) as usize] }
    }

    fn stripe(&mut self, k: u64) -> StripeRef {
        StripeRef {
            id: StripeId::new(1, self.stripe_seq * 4 + k),
            layout: StripeLayout::Replicated { copies: 2 },
            chunk_len_bytes: 4096,
            data_len_bytes: 4096,
            nodes: vec![NodeId(1), NodeId(2)],
        }
    }

    /// A recent step's stripe id, now and then one in use.
    fn old_stripe(&mut self) -> StripeId {
        let back = if self.d.one_in(2) { self.d.pick(4) * 4 + self.d.pick(3) } else { self.d.pick(200) };
        StripeId::new(1, (self.stripe_seq * 4).saturating_sub(back))
    }

    fn content_op(&mut self, creds: Credentials) -> MetaOp {
        let ino = self.ino();
        match self.d.pick(6) {
            0 | 1 => {
                let offset = choose(self.d, &[0, 7, 100, INLINE_LEN_MAX_BYTES - 3]);
                let bytes = vec![1 + self.d.pick(255) as u8; self.d.pick(12) as usize];
                MetaOp::Write { ino, offset, data: WriteData::Inline(bytes), creds }
            }
            2 | 3 => {
                let mut at = if self.d.one_in(30) { FILE_SIZE_MAX_BYTES - 5 } else { self.d.pick(150) };
                let mut extents = Vec::new();
                for k in 0..1 + self.d.pick(3) {
                    let len_bytes = 1 + self.d.pick(40);
                    let stripe = self.stripe(k);
                    let stripe_offset_bytes = if self.d.one_in(40) { 4090 } else { self.d.pick(100) };
                    extents.push(NewExtent { file_offset: at, len_bytes, stripe, stripe_offset_bytes });
                    // Now and then overlapping: EINVAL.
                    at += if self.d.one_in(20) { 0 } else { len_bytes + self.d.pick(30) };
                }
                MetaOp::Write { ino, offset: extents[0].file_offset, data: WriteData::Extents(extents), creds }
            }
            4 => {
                let (offset, len) = (self.d.pick(200), self.d.pick(200));
                if self.d.one_in(2) {
                    MetaOp::ReadMap { ino, offset, len }
                } else {
                    MetaOp::GetStripe { ino, stripe: self.old_stripe() }
                }
            }
            _ => {
                let (stripe, index) = (self.old_stripe(), self.d.pick(3) as u8);
                MetaOp::MoveChunk { ino, stripe, index, from: NodeId(1 + self.d.pick(2)), to: NodeId(9) }
            }
        }
    }

    pub fn op(&mut self) -> MetaOp {
        let creds = self.creds();
        if self.content_ops && self.d.one_in(5) {
            return self.content_op(creds);
        }
        match self.d.pick(22) {
            0 => MetaOp::Lookup { parent: self.dir(), name: self.name(), creds },
            1 => MetaOp::GetAttr { ino: self.ino() },
            2 | 3 => MetaOp::SetAttr { ino: self.ino(), set: self.set_attr(), creds },
            4 | 5 => MetaOp::Create { parent: self.dir(), name: self.name(), mode: self.mode(), creds },
            6 | 7 => MetaOp::Mkdir { parent: self.dir(), name: self.name(), mode: self.mode(), creds },
            8 => {
                let (parent, name, mode) = (self.dir(), self.name(), self.mode());
                MetaOp::Mknod { parent, name, mode, kind: choose(self.d, &KINDS), rdev: self.d.pick(3), creds }
            }
            9 => {
                let long = "t".repeat(SYMLINK_TARGET_LEN_MAX_BYTES + 1);
                let target = choose(self.d, &["t", "t", "../a/b", "", &long]).to_string();
                MetaOp::Symlink { parent: self.dir(), name: self.name(), target, creds }
            }
            10 => MetaOp::Readlink { ino: self.ino() },
            11 => MetaOp::Link { ino: self.ino(), new_parent: self.dir(), new_name: self.name(), creds },
            12 | 13 => MetaOp::Unlink { parent: self.dir(), name: self.name(), creds },
            14 => MetaOp::Rmdir { parent: self.dir(), name: self.name(), creds },
            15 | 16 => {
                let (parent, name, new_parent, new_name) = (self.dir(), self.name(), self.dir(), self.name());
                MetaOp::Rename { parent, name, new_parent, new_name, creds }
            }
            17 => {
                let cookie = match self.d.pick(3) {
                    0 => READDIR_START,
                    1 if !self.cookies.is_empty() => choose(self.d, self.cookies),
                    _ => self.d.pick(u64::MAX),
                };
                MetaOp::Readdir { dir: self.dir(), cookie, max_entries: self.d.pick(4) as u32, creds }
            }
            18 => {
                let flags = choose(self.d, &[XattrFlags::Upsert, XattrFlags::Create, XattrFlags::Replace]);
                MetaOp::SetXattr { ino: self.ino(), name: self.xattr_name(), value: self.value(), flags, creds }
            }
            19 => MetaOp::GetXattr { ino: self.ino(), name: self.xattr_name(), creds },
            20 => {
                if self.d.one_in(2) {
                    MetaOp::ListXattr { ino: self.ino(), creds }
                } else {
                    MetaOp::RemoveXattr { ino: self.ino(), name: self.xattr_name(), creds }
                }
            }
            _ => {
                let size = if self.d.one_in(10) { FILE_SIZE_MAX_BYTES + 1 } else { self.d.pick(100) };
                MetaOp::Truncate { ino: self.ino(), size, creds }
            }
        }
    }
}

/// How often each reply kind (or errno) was seen, by `"<operation> <ok or errno>"` and any keys a test
/// adds: evidence of coverage. Prints as the map of counts.
#[derive(Default)]
pub struct Outcomes {
    counts: BTreeMap<String, u64>,
}

impl fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.counts.fmt(f)
    }
}

impl Outcomes {
    /// Count `op`'s outcome; returns its key, `"<operation> <ok or errno>"`.
    pub fn note(&mut self, op: &MetaOp, reply: &MetaResult) -> String {
        let op_name = format!("{op:?}");
        let op_name = op_name.split([' ', '{']).next().unwrap_or("?");
        let outcome = match reply {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        };
        let key = format!("{op_name} {outcome}");
        self.add(key.clone());
        key
    }

    /// Count `key` once more.
    pub fn add(&mut self, key: String) {
        *self.counts.entry(key).or_default() += 1;
    }

    fn seen(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// Panic unless every one of `ops` (operation kinds) succeeded somewhere.
    pub fn assert_succeeded(&self, ops: &[&str]) {
        for op in ops {
            assert!(self.seen(&format!("{op} ok")) > 0, "{op} never succeeded: {self:?}");
        }
    }

    /// Panic unless every one of `keys` was counted.
    pub fn assert_reached(&self, keys: &[&str]) {
        for key in keys {
            assert!(self.seen(key) > 0, "{key} never reached: {self:?}");
        }
    }
}

/// Call `run` with each seed in `0..seeds` in turn; when it panics, print `failure(seed)` (how to
/// replay that seed) and panic on.
pub fn for_each_seed(seeds: u64, mut run: impl FnMut(u64), failure: impl Fn(u64) -> String) {
    for seed in 0..seeds {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
        if let Err(panic) = result {
            eprintln!("{}", failure(seed));
            std::panic::resume_unwind(panic);
        }
    }
}
