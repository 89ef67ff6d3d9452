//! The metadata scenario's operations: a fixed set of directories made before the concurrent phase
//! (their inode ids known both in the cluster and in the reference model), random operations over
//! them from several clients, and the translation of each operation into the model's ids.
//!
//! Every inode an operation names by id is a fixture inode (the directories `d0..d3` and the files
//! `f0`, `f1`): inodes made concurrently are reached by name only, because their ids in the cluster and
//! in the model depend on which shard allocated them. Replies are compared by shape (ids and times
//! blanked, `tessera_specs::posix_history::shape`).

use std::collections::BTreeMap;

use tessera_env::{DetRng, Rng};
use tessera_meta::{Credentials, InodeId, MetaOp, MetaReply, MetaResult, READDIR_START, SetAttr, XattrFlags};
use tessera_specs::posix::Namespace;

/// Entry names the clients pick from (small, so operations collide).
const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
/// The fixture's directories, made in the root.
pub const DIRS: [&str; 4] = ["d0", "d1", "d2", "d3"];
/// An unprivileged user; `d3` is not writable by it.
const USER: u32 = 1000;

/// The fixture: each fixture inode's id in the cluster and in the model, and the model's state after
/// the setup.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Cluster id -> model id.
    pub to_model: BTreeMap<InodeId, InodeId>,
    /// The directories `d0..d3` (cluster ids), then the base (the root, or the directory standing for it).
    pub dirs: Vec<InodeId>,
    /// The files `d0/f0` and `d1/f1` (cluster ids).
    pub files: Vec<InodeId>,
    pub model: Namespace,
}

/// The setup, in order: each step's operation given the ids made so far (cluster or model ids). The
/// first step makes the fixture's base directory writable by everyone: the root itself (`base: None`,
/// and always in the model), or a new directory `base` in the root (so the fixture can share a
/// namespace with other workloads; the model's root stands for it). Later steps work in the base.
pub fn setup_ops(made: &[InodeId], base: Option<&str>) -> Option<MetaOp> {
    let root = Credentials::root();
    let op = match made.len() {
        0 => match base {
            None => MetaOp::SetAttr {
                ino: InodeId::ROOT,
                set: SetAttr { mode: Some(0o777), ..SetAttr::default() },
                creds: root,
            },
            Some(name) => MetaOp::Mkdir { parent: InodeId::ROOT, name: name.into(), mode: 0o777, creds: root },
        },
        n @ 1..=4 => {
            let mode = if n == 4 { 0o755 } else { 0o777 };
            MetaOp::Mkdir { parent: made[0], name: DIRS[n - 1].into(), mode, creds: root }
        }
        n @ 5..=6 => MetaOp::Create { parent: made[n - 4], name: format!("f{}", n - 5), mode: 0o666, creds: root },
        _ => return None,
    };
    Some(op)
}

/// The inode an answer to a setup step made (the root for the first step).
pub fn setup_made(result: &MetaResult) -> Result<InodeId, String> {
    match result {
        Ok(MetaReply::Entry(attr)) => Ok(attr.ino),
        Ok(MetaReply::Attr(attr)) => Ok(attr.ino),
        other => Err(format!("setup step answered {other:?}")),
    }
}

impl Fixture {
    /// The fixture from the cluster ids the setup made (in [`setup_ops`] order).
    pub fn new(cluster_ids: &[InodeId]) -> Result<Fixture, String> {
        let mut model = Namespace::new(0);
        let mut model_ids = Vec::new();
        while let Some(op) = setup_ops(&model_ids, None) {
            model_ids.push(setup_made(&model.apply(&op, 0))?);
        }
        if model_ids.len() != cluster_ids.len() {
            return Err(format!("setup made {} inodes, the model {}", cluster_ids.len(), model_ids.len()));
        }
        let to_model = cluster_ids.iter().copied().zip(model_ids.iter().copied()).collect();
        let mut dirs = cluster_ids[1..5].to_vec();
        dirs.push(cluster_ids[0]);
        Ok(Fixture { to_model, dirs, files: cluster_ids[5..7].to_vec(), model })
    }

    /// A random operation (cluster ids).
    pub fn random_op(&self, rng: &mut DetRng) -> MetaOp {
        let creds = if rng.chance(1, 6) { Credentials::user(USER, USER) } else { Credentials::root() };
        let dir = |rng: &mut DetRng| self.dirs[rng.below(self.dirs.len() as u64) as usize];
        let name = |rng: &mut DetRng| NAMES[rng.below(NAMES.len() as u64) as usize].to_string();
        let file = |rng: &mut DetRng| self.files[rng.below(self.files.len() as u64) as usize];
        match rng.below(100) {
            0..=19 => MetaOp::Create { parent: dir(rng), name: name(rng), mode: 0o644, creds },
            20..=27 => MetaOp::Mkdir { parent: dir(rng), name: name(rng), mode: 0o755, creds },
            28..=39 => MetaOp::Unlink { parent: dir(rng), name: name(rng), creds },
            40..=45 => MetaOp::Rmdir { parent: dir(rng), name: name(rng), creds },
            46..=58 => {
                MetaOp::Rename { parent: dir(rng), name: name(rng), new_parent: dir(rng), new_name: name(rng), creds }
            }
            59..=62 => {
                // Move a fixture directory somewhere (possibly into itself or a descendant: EINVAL).
                let moved = DIRS[rng.below(DIRS.len() as u64) as usize].to_string();
                MetaOp::Rename { parent: dir(rng), name: moved.clone(), new_parent: dir(rng), new_name: moved, creds }
            }
            63..=67 => MetaOp::Link { ino: file(rng), new_parent: dir(rng), new_name: name(rng), creds },
            68..=77 => MetaOp::Lookup { parent: dir(rng), name: name(rng), creds },
            78..=84 => MetaOp::Readdir { dir: dir(rng), cookie: READDIR_START, max_entries: 64, creds },
            85..=89 => {
                let ino = if rng.chance(1, 2) { file(rng) } else { dir(rng) };
                MetaOp::GetAttr { ino }
            }
            90..=94 => {
                let set = SetAttr { mode: Some([0o600, 0o644, 0o666][rng.below(3) as usize]), ..SetAttr::default() };
                MetaOp::SetAttr { ino: file(rng), set, creds }
            }
            _ => {
                let value = vec![rng.below(256) as u8];
                MetaOp::SetXattr { ino: file(rng), name: "user.k".into(), value, flags: XattrFlags::Upsert, creds }
            }
        }
    }

    /// The readdir of every fixture directory, for the final check.
    pub fn listings(&self) -> Vec<MetaOp> {
        let creds = Credentials::root();
        self.dirs
            .iter()
            .map(|&dir| MetaOp::Readdir { dir, cookie: READDIR_START, max_entries: 1024, creds: creds.clone() })
            .collect()
    }

    /// `op` with its inode ids translated to the model's.
    pub fn to_model_op(&self, op: &MetaOp) -> MetaOp {
        op.map_inodes(|ino| *self.to_model.get(&ino).unwrap_or_else(|| panic!("{ino:?} is not a fixture inode")))
    }
}
