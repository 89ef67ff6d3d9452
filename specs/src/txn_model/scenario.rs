//! The tiny namespace the protocol model runs on, and the transactions its clients submit.
//!
//! Two inodes and three directory entries are enough to express every cross-shard effect the protocol
//! must keep atomic:
//!
//! - inode `X` lives in shard 0 and is named by entry `A/a` (shard 0);
//! - inode `Y` lives in the last shard and is named by entry `B/b` (shard 1);
//! - entry `C/c` (absent at first) lives in shard 0 with 2 shards, in shard 1 with 3.
//!
//! Transaction 0 is `rename(A/a -> B/b)`: coordinator shard 0 removes `A/a`; shard 1 points `B/b` at
//! `X`; `Y`'s shard decrements `Y`'s link count (which deletes `Y`). Transaction 1 (with `txns = 2`) is
//! `link(Y -> C/c)`: coordinator `C/c`'s shard creates the entry; `Y`'s shard increments `Y`'s link
//! count, so it competes with the rename for the lock on `Y`. A single-shard `unlink(A/a)` on shard 0
//! competes with the rename for the lock on `A/a`.

use std::collections::BTreeMap;
use std::fmt;

/// A shard (a Raft group, abstracted as one durable process).
pub type ShardId = u8;
/// A transaction, numbered from 0 in the order of [`Scenario::txns`].
pub type TxnId = u8;

/// A directory entry, named by its path (`A/a` is entry `a` of directory `A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    Aa,
    Bb,
    Cc,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entry::Aa => "A/a",
            Entry::Bb => "B/b",
            Entry::Cc => "C/c",
        })
    }
}

/// An inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ino {
    X,
    Y,
}

/// What an intent locks: one entry or one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Entry(Entry),
    Inode(Ino),
}

/// One planned change on one shard. Each names the value it expects to find (validated at prepare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Remove `entry`, which must name `expect`.
    Remove { entry: Entry, expect: Ino },
    /// Make `entry` name `ino`; it must currently name `expect` (`None`: be absent).
    Put { entry: Entry, expect: Option<Ino>, ino: Ino },
    /// Decrement the link count of an existing inode (it is deleted when the count reaches 0).
    Unref(Ino),
    /// Increment the link count of an existing inode.
    Ref(Ino),
}

impl Change {
    pub fn key(&self) -> Key {
        match *self {
            Change::Remove { entry, .. } | Change::Put { entry, .. } => Key::Entry(entry),
            Change::Unref(ino) | Change::Ref(ino) => Key::Inode(ino),
        }
    }
}

/// The committed namespace one shard holds: its entries and its inodes' link counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Namespace {
    pub entries: BTreeMap<Entry, Ino>,
    pub inodes: BTreeMap<Ino, u8>,
}

impl Namespace {
    /// The POSIX checks of a prepare: does the change still apply to what this shard holds?
    pub fn valid(&self, change: &Change) -> bool {
        match *change {
            Change::Remove { entry, expect } => self.entries.get(&entry) == Some(&expect),
            Change::Put { entry, expect, .. } => self.entries.get(&entry).copied() == expect,
            Change::Unref(ino) | Change::Ref(ino) => self.inodes.get(&ino).is_some_and(|&n| n >= 1),
        }
    }

    /// Applies a change without checking it (a commit applies what was validated at prepare).
    pub fn apply(&mut self, change: &Change) {
        match *change {
            Change::Remove { entry, .. } => {
                self.entries.remove(&entry);
            }
            Change::Put { entry, ino, .. } => {
                self.entries.insert(entry, ino);
            }
            Change::Unref(ino) => {
                if let Some(n) = self.inodes.get_mut(&ino) {
                    *n -= 1;
                    if *n == 0 {
                        self.inodes.remove(&ino);
                    }
                }
            }
            Change::Ref(ino) => {
                if let Some(n) = self.inodes.get_mut(&ino) {
                    *n += 1;
                }
            }
        }
    }
}

/// One cross-shard transaction: its coordinator and the changes each shard makes.
#[derive(Debug, Clone)]
pub struct TxnPlan {
    pub name: &'static str,
    pub coordinator: ShardId,
    /// Changes per shard, the coordinator's included; sorted by shard.
    pub parts: Vec<(ShardId, Vec<Change>)>,
}

impl TxnPlan {
    /// The changes `shard` makes (empty if it takes no part).
    pub fn changes(&self, shard: ShardId) -> &[Change] {
        self.parts.iter().find(|(s, _)| *s == shard).map_or(&[], |(_, c)| c.as_slice())
    }

    /// The shards other than the coordinator.
    pub fn participants(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.parts.iter().map(|(s, _)| *s).filter(move |s| *s != self.coordinator)
    }

    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.parts.iter().map(|(s, _)| *s)
    }
}

/// The shard layout, the initial namespace and the transactions, for `shards` shards and `txns` txns.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub shards: u8,
    pub txns: Vec<TxnPlan>,
    /// The single-shard `unlink(A/a)`: its shard and changes.
    pub unlink: (ShardId, Vec<Change>),
}

impl Scenario {
    /// `shards` is 2 or 3; `txns` is 1 or 2.
    pub fn new(shards: u8, txns: u8) -> Self {
        assert!((2..=3).contains(&shards), "the scenario has 2 or 3 shards");
        assert!((1..=2).contains(&txns), "the scenario has 1 or 2 transactions");
        let mut scenario = Scenario { shards, txns: Vec::new(), unlink: (0, Vec::new()) };
        let rename = [
            (scenario.entry_shard(Entry::Aa), Change::Remove { entry: Entry::Aa, expect: Ino::X }),
            (scenario.entry_shard(Entry::Bb), Change::Put { entry: Entry::Bb, expect: Some(Ino::Y), ino: Ino::X }),
            (scenario.inode_shard(Ino::Y), Change::Unref(Ino::Y)),
        ];
        scenario.txns.push(plan("rename(A/a -> B/b)", scenario.entry_shard(Entry::Aa), &rename));
        if txns == 2 {
            let link = [
                (scenario.entry_shard(Entry::Cc), Change::Put { entry: Entry::Cc, expect: None, ino: Ino::Y }),
                (scenario.inode_shard(Ino::Y), Change::Ref(Ino::Y)),
            ];
            scenario.txns.push(plan("link(Y -> C/c)", scenario.entry_shard(Entry::Cc), &link));
        }
        scenario.unlink = (0, vec![Change::Remove { entry: Entry::Aa, expect: Ino::X }, Change::Unref(Ino::X)]);
        scenario
    }

    pub fn entry_shard(&self, entry: Entry) -> ShardId {
        match entry {
            Entry::Aa => 0,
            Entry::Bb => 1,
            Entry::Cc => self.shards - 2,
        }
    }

    pub fn inode_shard(&self, ino: Ino) -> ShardId {
        match ino {
            Ino::X => 0,
            Ino::Y => self.shards - 1,
        }
    }

    /// The namespace each shard starts with.
    pub fn initial(&self) -> Vec<Namespace> {
        let mut shards = vec![Namespace::default(); self.shards as usize];
        shards[self.entry_shard(Entry::Aa) as usize].entries.insert(Entry::Aa, Ino::X);
        shards[self.entry_shard(Entry::Bb) as usize].entries.insert(Entry::Bb, Ino::Y);
        shards[self.inode_shard(Ino::X) as usize].inodes.insert(Ino::X, 1);
        shards[self.inode_shard(Ino::Y) as usize].inodes.insert(Ino::Y, 1);
        shards
    }
}

fn plan(name: &'static str, coordinator: ShardId, changes: &[(ShardId, Change)]) -> TxnPlan {
    let mut parts: BTreeMap<ShardId, Vec<Change>> = BTreeMap::new();
    for &(shard, change) in changes {
        parts.entry(shard).or_default().push(change);
    }
    TxnPlan { name, coordinator, parts: parts.into_iter().collect() }
}
