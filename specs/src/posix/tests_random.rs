//! Random operation sequences: the invariants hold after every step, failures change nothing, and a
//! readdir interleaved with changes returns every entry present throughout exactly once.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tessera_meta::{Credentials, InodeId, MODE_STICKY, MetaOp, MetaReply, READDIR_START, SetAttr, XattrFlags};

use super::test_util::{Fs, ROOT};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const MODES: [u32; 6] = [0o755, 0o700, 0o777 | MODE_STICKY, 0o644, 0o2775, 0o555];

fn users() -> [Credentials; 3] {
    [Credentials::root(), Credentials::user(1000, 1000), Credentials { uid: 1001, gid: 1001, groups: vec![1000] }]
}

/// An operation with indices that [`RawOp::resolve`] maps onto the inodes that exist when it runs.
#[derive(Debug, Clone)]
enum RawOp {
    Create { dir: usize, name: usize, mode: usize, user: usize },
    Mkdir { dir: usize, name: usize, mode: usize, user: usize },
    Symlink { dir: usize, name: usize, user: usize },
    Link { ino: usize, dir: usize, name: usize, user: usize },
    Unlink { dir: usize, name: usize, user: usize },
    Rmdir { dir: usize, name: usize, user: usize },
    Rename { dir: usize, name: usize, new_dir: usize, new_name: usize, user: usize },
    Chmod { ino: usize, mode: usize, user: usize },
    Chown { ino: usize, uid: usize, user: usize },
    Truncate { ino: usize, size: u64, user: usize },
    SetXattr { ino: usize, name: usize, create: bool, user: usize },
    RemoveXattr { ino: usize, name: usize, user: usize },
    Lookup { dir: usize, name: usize, user: usize },
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    let i = || 0..16usize;
    prop_oneof![
        (i(), i(), i(), i()).prop_map(|(dir, name, mode, user)| RawOp::Create { dir, name, mode, user }),
        (i(), i(), i(), i()).prop_map(|(dir, name, mode, user)| RawOp::Mkdir { dir, name, mode, user }),
        (i(), i(), i()).prop_map(|(dir, name, user)| RawOp::Symlink { dir, name, user }),
        (i(), i(), i(), i()).prop_map(|(ino, dir, name, user)| RawOp::Link { ino, dir, name, user }),
        (i(), i(), i()).prop_map(|(dir, name, user)| RawOp::Unlink { dir, name, user }),
        (i(), i(), i()).prop_map(|(dir, name, user)| RawOp::Rmdir { dir, name, user }),
        (i(), i(), i(), i(), i()).prop_map(|(dir, name, new_dir, new_name, user)| RawOp::Rename {
            dir,
            name,
            new_dir,
            new_name,
            user
        }),
        (i(), i(), i()).prop_map(|(ino, mode, user)| RawOp::Chmod { ino, mode, user }),
        (i(), i(), i()).prop_map(|(ino, uid, user)| RawOp::Chown { ino, uid, user }),
        (i(), 0..100u64, i()).prop_map(|(ino, size, user)| RawOp::Truncate { ino, size, user }),
        (i(), i(), any::<bool>(), i()).prop_map(|(ino, name, create, user)| RawOp::SetXattr {
            ino,
            name,
            create,
            user
        }),
        (i(), i(), i()).prop_map(|(ino, name, user)| RawOp::RemoveXattr { ino, name, user }),
        (i(), i(), i()).prop_map(|(dir, name, user)| RawOp::Lookup { dir, name, user }),
    ]
}

impl RawOp {
    fn resolve(&self, fs: &Fs) -> MetaOp {
        let inos: Vec<InodeId> = fs.ns.inodes.keys().copied().collect();
        let ino = |i: usize| inos[i % inos.len()];
        let name = |i: usize| NAMES[i % NAMES.len()].to_string();
        let mode = |i: usize| MODES[i % MODES.len()];
        let creds = |i: usize| users()[i % 3].clone();
        match *self {
            RawOp::Create { dir, name: n, mode: m, user } => {
                MetaOp::Create { parent: ino(dir), name: name(n), mode: mode(m), creds: creds(user) }
            }
            RawOp::Mkdir { dir, name: n, mode: m, user } => {
                MetaOp::Mkdir { parent: ino(dir), name: name(n), mode: mode(m), creds: creds(user) }
            }
            RawOp::Symlink { dir, name: n, user } => {
                MetaOp::Symlink { parent: ino(dir), name: name(n), target: "t".into(), creds: creds(user) }
            }
            RawOp::Link { ino: i, dir, name: n, user } => {
                MetaOp::Link { ino: ino(i), new_parent: ino(dir), new_name: name(n), creds: creds(user) }
            }
            RawOp::Unlink { dir, name: n, user } => {
                MetaOp::Unlink { parent: ino(dir), name: name(n), creds: creds(user) }
            }
            RawOp::Rmdir { dir, name: n, user } => {
                MetaOp::Rmdir { parent: ino(dir), name: name(n), creds: creds(user) }
            }
            RawOp::Rename { dir, name: n, new_dir, new_name, user } => MetaOp::Rename {
                parent: ino(dir),
                name: name(n),
                new_parent: ino(new_dir),
                new_name: name(new_name),
                creds: creds(user),
            },
            RawOp::Chmod { ino: i, mode: m, user } => MetaOp::SetAttr {
                ino: ino(i),
                set: SetAttr { mode: Some(mode(m)), ..SetAttr::default() },
                creds: creds(user),
            },
            RawOp::Chown { ino: i, uid, user } => {
                let set = SetAttr { uid: Some(users()[uid % 3].uid), ..SetAttr::default() };
                MetaOp::SetAttr { ino: ino(i), set, creds: creds(user) }
            }
            RawOp::Truncate { ino: i, size, user } => MetaOp::Truncate { ino: ino(i), size, creds: creds(user) },
            RawOp::SetXattr { ino: i, name: n, create, user } => MetaOp::SetXattr {
                ino: ino(i),
                name: format!("user.{}", name(n)),
                value: vec![1, 2, 3],
                flags: if create { XattrFlags::Create } else { XattrFlags::Upsert },
                creds: creds(user),
            },
            RawOp::RemoveXattr { ino: i, name: n, user } => {
                MetaOp::RemoveXattr { ino: ino(i), name: format!("user.{}", name(n)), creds: creds(user) }
            }
            RawOp::Lookup { dir, name: n, user } => {
                MetaOp::Lookup { parent: ino(dir), name: name(n), creds: creds(user) }
            }
        }
    }
}

/// A step of a listing interleaved with changes to the directory being listed.
#[derive(Debug, Clone)]
enum ListStep {
    Create(usize),
    Unlink(usize),
    Page(u32),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_invariants(ops in proptest::collection::vec(raw_op(), 1..120)) {
        // `Fs::apply` checks the invariants after every step and that failures change nothing.
        let mut fs = Fs::new();
        let mut successes = 0;
        for raw in &ops {
            let op = raw.resolve(&fs);
            if fs.apply(op.clone()).is_ok() {
                successes += 1;
                if let MetaOp::Unlink { parent, name, .. } | MetaOp::Rmdir { parent, name, .. } = &op {
                    let gone = MetaOp::Lookup { parent: *parent, name: name.clone(), creds: Credentials::root() };
                    prop_assert_eq!(fs.apply(gone), Err(tessera_meta::Errno::ENOENT));
                }
            }
        }
        prop_assert!(successes <= ops.len());
    }

    #[test]
    fn interleaved_listing_returns_survivors_once(
        steps in proptest::collection::vec(
            prop_oneof![(0..40usize).prop_map(ListStep::Create), (0..40usize).prop_map(ListStep::Unlink), (1..6u32).prop_map(ListStep::Page)],
            1..80,
        ),
        initial in proptest::collection::btree_set(0..40usize, 0..40),
    ) {
        let mut fs = Fs::new();
        let root = Credentials::root();
        for i in &initial {
            fs.create(ROOT, &format!("n{i}"), 0o644, &root);
        }
        let mut removed = BTreeSet::new();
        let mut listed = Vec::new();
        let mut cookie = READDIR_START;
        let steps = steps.into_iter().chain(std::iter::repeat_n(ListStep::Page(5), 20));
        for step in steps {
            match step {
                ListStep::Create(i) => {
                    let _ = fs.apply(MetaOp::Create { parent: ROOT, name: format!("n{i}"), mode: 0o644, creds: root.clone() });
                }
                ListStep::Unlink(i) => {
                    if fs.apply(MetaOp::Unlink { parent: ROOT, name: format!("n{i}"), creds: root.clone() }).is_ok() {
                        removed.insert(i);
                    }
                }
                ListStep::Page(max_entries) => {
                    let op = MetaOp::Readdir { dir: ROOT, cookie, max_entries, creds: root.clone() };
                    let Ok(MetaReply::DirEntries { entries, eof }) = fs.apply(op) else { panic!("readdir failed") };
                    for e in entries {
                        prop_assert!(e.cookie > cookie);
                        cookie = e.cookie;
                        listed.push(e.name);
                    }
                    if eof {
                        break;
                    }
                }
            }
        }
        let unique: BTreeSet<&String> = listed.iter().collect();
        prop_assert_eq!(unique.len(), listed.len(), "an entry was listed twice: {:?}", listed);
        for i in initial.iter().filter(|i| !removed.contains(*i)) {
            prop_assert!(unique.contains(&format!("n{i}")), "n{} present throughout, not listed", i);
        }
    }
}
