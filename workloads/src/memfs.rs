//! An in-memory file system target with a virtual clock: the reference a workload's own tests run on.
//!
//! Processes run one after another within a phase (each on its own virtual clock starting at the phase's
//! start), every operation takes a fixed virtual time, and the phase lasts as long as its slowest process.
//! It is exact and fast, so a test can run a whole workload, and a wrong workload (one that reads what it
//! never wrote, or checks the wrong bytes) fails there before it meets a real target.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use crate::metrics::PhaseReport;
use crate::op::{Op, OpError, Outcome, fill};
use crate::run::{Executor, RunOptions, Target, TargetError, phase_report, run_process};
use crate::workload::{Phase, Process};

/// Virtual time one operation takes, plus this per byte moved.
const OP_NS: u64 = 10_000;
const BYTE_NS_DIVISOR: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
}

/// The file system: paths (relative, `/`-separated) to nodes; the root is the empty path.
#[derive(Clone, Debug)]
pub struct MemFs {
    nodes: BTreeMap<String, Node>,
    clock_ns: u64,
    /// Return wrong results (see [`MemFs::corrupting`]).
    corrupt: bool,
}

impl Default for MemFs {
    fn default() -> MemFs {
        MemFs::new()
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn err_not_found(path: &str) -> OpError {
    OpError::NotFound { path: path.to_string() }
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs { nodes: BTreeMap::from([(String::new(), Node::Dir)]), clock_ns: 0, corrupt: false }
    }

    /// A file system that answers wrongly as a target (not through [`MemFs::apply`]): one byte flipped in
    /// the middle of every read, one byte more in every file's size. Tests use it to show that verify
    /// mode catches a target that returns wrong results.
    pub fn corrupting() -> MemFs {
        MemFs { corrupt: true, ..MemFs::new() }
    }

    /// The wrong result a corrupting file system returns instead of `outcome`.
    fn corrupted(outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Bytes(mut bytes) => {
                if let Some(middle) = bytes.len().checked_div(2).and_then(|i| bytes.get_mut(i)) {
                    *middle ^= 0x40;
                }
                Outcome::Bytes(bytes)
            }
            Outcome::Attr { size_bytes, mode, is_dir: false } => {
                Outcome::Attr { size_bytes: size_bytes + 1, mode, is_dir: false }
            }
            other => other,
        }
    }

    /// Names directly under directory `path`.
    fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p.is_empty() && !p[prefix.len()..].contains('/'))
            .map(|(p, _)| p[prefix.len()..].to_string())
            .collect()
    }

    fn need_parent_dir(&self, path: &str) -> Result<(), OpError> {
        match self.nodes.get(parent_of(path)) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File { .. }) => {
                Err(OpError::Other { path: path.to_string(), message: "parent is not a directory".into() })
            }
            None => Err(err_not_found(path)),
        }
    }

    fn file_mut(&mut self, path: &str) -> Result<&mut Vec<u8>, OpError> {
        match self.nodes.get_mut(path) {
            Some(Node::File { data, .. }) => Ok(data),
            Some(Node::Dir) => Err(OpError::Other { path: path.to_string(), message: "is a directory".into() }),
            None => Err(err_not_found(path)),
        }
    }

    /// Apply one operation.
    pub fn apply(&mut self, op: &Op) -> Result<Outcome, OpError> {
        let path = op.path();
        match op {
            Op::Mkdir { .. } | Op::Create { .. } => {
                self.need_parent_dir(path)?;
                if self.nodes.contains_key(path) {
                    return Err(OpError::Exists { path: path.to_string() });
                }
                let node = if matches!(op, Op::Mkdir { .. }) {
                    Node::Dir
                } else {
                    Node::File { data: Vec::new(), mode: 0o644 }
                };
                self.nodes.insert(path.to_string(), node);
                Ok(Outcome::Done)
            }
            Op::WriteFile { size_bytes, content, .. } => {
                self.need_parent_dir(path)?;
                let mut data = vec![0; *size_bytes as usize];
                fill(*content, 0, &mut data);
                match self.nodes.get_mut(path) {
                    Some(Node::File { data: old, .. }) => *old = data,
                    Some(Node::Dir) => {
                        return Err(OpError::Other { path: path.to_string(), message: "is a directory".into() });
                    }
                    None => {
                        self.nodes.insert(path.to_string(), Node::File { data, mode: 0o644 });
                    }
                }
                Ok(Outcome::Done)
            }
            Op::Write { offset, len_bytes, content, .. } => {
                let data = self.file_mut(path)?;
                let end = (*offset + *len_bytes) as usize;
                if data.len() < end {
                    data.resize(end, 0);
                }
                fill(*content, *offset, &mut data[*offset as usize..end]);
                Ok(Outcome::Done)
            }
            Op::ReadFile { .. } => Ok(Outcome::Bytes(self.file_mut(path)?.clone())),
            Op::Read { offset, len_bytes, .. } => {
                let data = self.file_mut(path)?;
                let start = (*offset as usize).min(data.len());
                let end = (*offset + *len_bytes).min(data.len() as u64) as usize;
                Ok(Outcome::Bytes(data[start..end].to_vec()))
            }
            Op::Stat { .. } => match self.nodes.get(path) {
                Some(Node::Dir) => Ok(Outcome::Attr { size_bytes: 0, mode: 0o755, is_dir: true }),
                Some(Node::File { data, mode }) => {
                    Ok(Outcome::Attr { size_bytes: data.len() as u64, mode: *mode, is_dir: false })
                }
                None => Err(err_not_found(path)),
            },
            Op::Access { .. } => self.nodes.get(path).map(|_| Outcome::Done).ok_or_else(|| err_not_found(path)),
            Op::Chmod { mode: new, .. } => match self.nodes.get_mut(path) {
                Some(Node::File { mode, .. }) => {
                    *mode = *new;
                    Ok(Outcome::Done)
                }
                Some(Node::Dir) => Ok(Outcome::Done),
                None => Err(err_not_found(path)),
            },
            Op::Readdir { .. } => match self.nodes.get(path) {
                Some(Node::Dir) => Ok(Outcome::Names(self.children(path))),
                Some(Node::File { .. }) => {
                    Err(OpError::Other { path: path.to_string(), message: "not a directory".into() })
                }
                None => Err(err_not_found(path)),
            },
            Op::Unlink { .. } => match self.nodes.get(path) {
                Some(Node::File { .. }) => {
                    self.nodes.remove(path);
                    Ok(Outcome::Done)
                }
                Some(Node::Dir) => Err(OpError::Other { path: path.to_string(), message: "is a directory".into() }),
                None => Err(err_not_found(path)),
            },
            Op::Rmdir { .. } => match self.nodes.get(path) {
                Some(Node::Dir) if !self.children(path).is_empty() => Err(OpError::NotEmpty { path: path.to_string() }),
                Some(Node::Dir) => {
                    self.nodes.remove(path);
                    Ok(Outcome::Done)
                }
                Some(Node::File { .. }) => {
                    Err(OpError::Other { path: path.to_string(), message: "not a directory".into() })
                }
                None => Err(err_not_found(path)),
            },
            Op::Find { .. } => match self.nodes.get(path) {
                Some(Node::Dir) => {
                    let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
                    let below = self
                        .nodes
                        .range(prefix.clone()..)
                        .take_while(|(p, _)| p.starts_with(&prefix))
                        .filter(|(p, _)| !p.is_empty())
                        .count();
                    Ok(Outcome::Count(below as u64))
                }
                _ => Err(err_not_found(path)),
            },
        }
    }
}

/// One process's view: the shared file system and its own virtual clock.
struct MemExec<'a> {
    fs: &'a mut MemFs,
    now_ns: u64,
}

impl Executor for MemExec<'_> {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    async fn sleep_until_ns(&mut self, at_ns: u64) {
        self.now_ns = self.now_ns.max(at_ns);
    }

    async fn execute(&mut self, op: &Op) -> Result<Outcome, OpError> {
        let result = self.fs.apply(op);
        let moved = op.bytes_written() + result.as_ref().map_or(0, Outcome::bytes_read);
        self.now_ns += OP_NS + moved / BYTE_NS_DIVISOR;
        if self.fs.corrupt { result.map(MemFs::corrupted) } else { result }
    }
}

impl Target for MemFs {
    fn describe(&self) -> String {
        if self.corrupt { "corrupting memfs".to_string() } else { "memfs".to_string() }
    }

    async fn run_phase(
        &mut self,
        index: usize,
        phase: &Phase,
        mut procs: Vec<Box<dyn Process>>,
        options: &RunOptions,
        progress: &AtomicU64,
    ) -> Result<(Vec<Box<dyn Process>>, PhaseReport), TargetError> {
        let started_ns = self.clock_ns;
        let mut recorders = Vec::new();
        let mut end_ns = started_ns;
        for process in &mut procs {
            let mut exec = MemExec { fs: self, now_ns: started_ns };
            recorders.push(run_process(&mut exec, process.as_mut(), index, phase, started_ns, options, progress).await);
            end_ns = end_ns.max(exec.now_ns);
        }
        self.clock_ns = end_ns;
        let report = phase_report(phase, &recorders, options, end_ns - started_ns);
        Ok((procs, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_file_system() {
        let mut fs = MemFs::new();
        let op = |op: Op| op;
        assert_eq!(fs.apply(&op(Op::Mkdir { path: "a".into() })), Ok(Outcome::Done));
        assert!(matches!(fs.apply(&Op::Mkdir { path: "a".into() }), Err(OpError::Exists { .. })));
        assert!(matches!(fs.apply(&Op::Create { path: "x/y".into() }), Err(OpError::NotFound { .. })));
        fs.apply(&Op::WriteFile { path: "a/f".into(), size_bytes: 100, content: 3 }).unwrap();
        fs.apply(&Op::Write { path: "a/f".into(), offset: 150, len_bytes: 10, content: 3 }).unwrap();
        assert_eq!(
            fs.apply(&Op::Stat { path: "a/f".into() }),
            Ok(Outcome::Attr { size_bytes: 160, mode: 0o644, is_dir: false })
        );
        let Ok(Outcome::Bytes(bytes)) = fs.apply(&Op::Read { path: "a/f".into(), offset: 90, len_bytes: 100 }) else {
            panic!("read")
        };
        assert_eq!(bytes.len(), 70);
        assert_eq!(bytes[..10], crate::op::content_bytes(3, 90, 10));
        assert_eq!(bytes[10..60], [0; 50]);
        fs.apply(&Op::Mkdir { path: "a/d".into() }).unwrap();
        fs.apply(&Op::Create { path: "a/d/e".into() }).unwrap();
        fs.apply(&Op::Create { path: "ab".into() }).unwrap();
        assert_eq!(fs.apply(&Op::Readdir { path: "a".into() }), Ok(Outcome::Names(vec!["d".into(), "f".into()])));
        assert_eq!(fs.apply(&Op::Find { path: "a".into() }), Ok(Outcome::Count(3)));
        assert!(matches!(fs.apply(&Op::Rmdir { path: "a/d".into() }), Err(OpError::NotEmpty { .. })));
        fs.apply(&Op::Unlink { path: "a/d/e".into() }).unwrap();
        fs.apply(&Op::Rmdir { path: "a/d".into() }).unwrap();
        assert_eq!(fs.apply(&Op::Find { path: String::new() }), Ok(Outcome::Count(3)));
    }
}
