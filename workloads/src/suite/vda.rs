//! VDA-like workload (model: SPEC SFS 2014 VDA, video data acquisition), and the sequential-IO process
//! it shares with the EDA back end.
//!
//! The load is in streams; each stream runs a writer (SPEC's VDA1: sequential `write`s of `io_size_bytes`
//! into a growing file, a new file every `file_size_bytes`) and a companion reader (SPEC's VDA2:
//! sequential `read`s through earlier finished files, the ones setup wrote for it), both paced at
//! `rate_per_proc`. Setup makes the stream directories (`vda-dirs`, by process 0) and the reader's files
//! (`vda-setup`); the check phase lists each
//! directory, stats every file and reads it back in `io_size_bytes` pieces. Every file holds one content
//! id from offset 0 to its end, so each process checks any range it reads against a model of (path ->
//! size, content) without keeping bytes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Deserialize;

use crate::op::{Op, OpKind, WorkRng};
use crate::suite::SuiteError;
use crate::suite::swbuild::{
    Expect, Mix, Paced, PacedLayout, PacedModels, ScriptModel, SizeTable, config_error, load_config, positive,
    positive_rate,
};
use crate::workload::Workload;

/// The built-in defaults (`workloads/vda.toml`).
const DEFAULTS: &str = include_str!("../../vda.toml");
/// The workload's name, its run phase's name and the top of its directories.
const NAME: &str = "vda";
/// Separates this workload's random streams from the others' at the same seed.
const SEED_TAG: u64 = 0x5644_4100_0000_0000;
/// Largest single read or write (one buffer per operation).
pub(crate) const IO_MAX_BYTES: u64 = 256 << 20;
/// Largest file (written and read in `io_size_bytes` pieces).
pub(crate) const SEQ_FILE_MAX_BYTES: u64 = 1 << 40;
/// Most files one sequential process may start with.
pub(crate) const SEQ_FILES_MAX: u64 = 100_000;
/// The operations an EDA back end's mix may name.
pub(crate) const SEQ_OPS: [OpKind; 4] = [OpKind::Write, OpKind::Read, OpKind::Stat, OpKind::Access];

// ---------------------------------------------------------------------------------------------------
// The sequential-IO process: VDA writer and reader, EDA back end.
// ---------------------------------------------------------------------------------------------------

/// What a sequential process does in the run phase.
#[derive(Clone, Debug)]
pub(crate) enum SeqRole {
    /// EDA back end: rewrite its files in turn (each from its start, at a size drawn anew) and read the
    /// others in order, as `mix` says, at its own pace of `rate_per_sec` in the run phase (the phase
    /// paces the front ends at theirs).
    Backend { mix: Mix, rate_per_sec: f64 },
    /// VDA writer: append to a file, a new one every file size.
    Writer,
    /// VDA companion reader: read its files in order, over and over.
    Reader,
}

/// A sequential process's work.
#[derive(Clone, Debug)]
pub(crate) struct SeqSpec {
    pub role: SeqRole,
    pub io_size_bytes: u64,
    /// Sizes of the files it writes (drawn per file).
    pub file_sizes: SizeTable,
    /// Files setup writes (back end, reader).
    pub setup_files: u64,
}

/// What a sequential process knows of one of its files: the whole file is content `content` from 0 to
/// `size_bytes`; `sure` is false once a write to it failed (it may hold anything until rewritten).
#[derive(Clone, Debug)]
struct SeqFile {
    path: String,
    size_bytes: u64,
    content: u64,
    sure: bool,
}

/// The file being written: its index, the next offset, the size it is written to and its content.
#[derive(Clone, Copy, Debug)]
struct WriteCursor {
    file: usize,
    offset: u64,
    target_bytes: u64,
    content: u64,
}

/// One process writing and reading large files sequentially in its own directory.
#[derive(Debug)]
pub(crate) struct SeqProc {
    spec: Arc<SeqSpec>,
    dir: String,
    rng: WorkRng,
    files: Vec<SeqFile>,
    by_path: BTreeMap<String, usize>,
    write: Option<WriteCursor>,
    /// The file a back end rewrites next.
    rewrite_next: usize,
    /// The file being read and the next offset.
    read: (usize, u64),
}

impl SeqProc {
    pub(crate) fn new(spec: Arc<SeqSpec>, dir: String, rng: WorkRng) -> SeqProc {
        SeqProc {
            spec,
            dir,
            rng,
            files: Vec::new(),
            by_path: BTreeMap::new(),
            write: None,
            rewrite_next: 0,
            read: (0, 0),
        }
    }

    /// A new (not yet written) file of its own.
    fn add_file(&mut self) -> usize {
        let index = self.files.len();
        let path = format!("{}/f{index}", self.dir);
        self.by_path.insert(path.clone(), index);
        self.files.push(SeqFile { path, size_bytes: 0, content: 0, sure: false });
        index
    }

    /// The operation writing the next piece of the cursor's file: the first truncates it.
    fn piece(&self, cursor: &WriteCursor) -> Op {
        let path = self.files[cursor.file].path.clone();
        let len_bytes = self.spec.io_size_bytes.min(cursor.target_bytes - cursor.offset);
        if cursor.offset == 0 {
            Op::WriteFile { path, size_bytes: len_bytes, content: cursor.content }
        } else {
            Op::Write { path, offset: cursor.offset, len_bytes, content: cursor.content }
        }
    }

    /// The next write of the run: the cursor's file, or a new one (writer) or the next to rewrite (back
    /// end) when none is under way.
    fn write_op(&mut self) -> (Op, Expect) {
        let mut cursor = match self.write {
            Some(cursor) => cursor,
            None => {
                let file = match self.spec.role {
                    SeqRole::Backend { .. } if !self.files.is_empty() => {
                        let file = self.rewrite_next % self.files.len();
                        self.rewrite_next = file + 1;
                        file
                    }
                    _ => self.add_file(),
                };
                WriteCursor {
                    file,
                    offset: 0,
                    target_bytes: self.spec.file_sizes.pick(&mut self.rng),
                    content: self.rng.next_u64(),
                }
            }
        };
        let op = self.piece(&cursor);
        cursor.offset += op.bytes_written();
        self.write = (cursor.offset < cursor.target_bytes).then_some(cursor);
        (op, Expect::Done)
    }

    /// The next read of the run: the next piece of a file known for sure and not being written, going on
    /// to the next file at each file's end; `None` if there is no such file.
    fn read_op(&mut self) -> Option<(Op, Expect)> {
        let count = self.files.len();
        for _ in 0..=count {
            let (index, offset) = self.read;
            let file = self.files.get(index)?;
            let busy = self.write.is_some_and(|c| c.file == index);
            if file.sure && !busy && offset < file.size_bytes {
                let len_bytes = self.spec.io_size_bytes.min(file.size_bytes - offset);
                let op = Op::Read { path: file.path.clone(), offset, len_bytes: self.spec.io_size_bytes };
                let expect = Expect::Bytes { content: file.content, offset, len_bytes };
                self.read = (index, offset + len_bytes);
                return Some((op, expect));
            }
            self.read = ((index + 1) % count, 0);
        }
        None
    }

    /// A stat of its own directory: the back end's idle slot, and the fallback when there is nothing to
    /// read.
    fn stat_dir(&self) -> (Op, Expect) {
        (Op::Stat { path: self.dir.clone() }, Expect::Attr { size_bytes: None, mode: None, is_dir: true })
    }

    /// A random file known for sure and not being written.
    fn pick_file(&mut self) -> Option<usize> {
        let candidates: Vec<usize> =
            (0..self.files.len()).filter(|i| self.files[*i].sure && self.write.is_none_or(|c| c.file != *i)).collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.below(candidates.len() as u64) as usize])
    }
}

impl ScriptModel for SeqProc {
    /// Setup: its directory, then every setup file written piece by piece.
    fn setup_script(&mut self) -> VecDeque<(Op, Expect)> {
        let mut script = VecDeque::new();
        script.push_back((Op::Mkdir { path: self.dir.clone() }, Expect::Done));
        for _ in 0..self.spec.setup_files {
            let file = self.add_file();
            let mut cursor = WriteCursor {
                file,
                offset: 0,
                target_bytes: self.spec.file_sizes.pick(&mut self.rng),
                content: self.rng.next_u64(),
            };
            while cursor.offset < cursor.target_bytes {
                script.push_back((self.piece(&cursor), Expect::Done));
                cursor.offset += self.spec.io_size_bytes.min(cursor.target_bytes - cursor.offset);
            }
        }
        script
    }

    /// Check: list the directory, then stat and read back every file known for sure, piece by piece.
    fn check_script(&self) -> VecDeque<(Op, Expect)> {
        let mut script = VecDeque::new();
        let prefix = format!("{}/", self.dir);
        let name = |f: &SeqFile| f.path.strip_prefix(&prefix).unwrap_or(&f.path).to_string();
        let mut sure: Vec<String> = self.files.iter().filter(|f| f.sure).map(name).collect();
        let mut maybe: Vec<String> = self.files.iter().filter(|f| !f.sure).map(name).collect();
        sure.sort();
        maybe.sort();
        script.push_back((Op::Readdir { path: self.dir.clone() }, Expect::Names { sure, maybe }));
        for file in self.files.iter().filter(|f| f.sure) {
            let attr = Expect::Attr { size_bytes: Some(file.size_bytes), mode: None, is_dir: false };
            script.push_back((Op::Stat { path: file.path.clone() }, attr));
            let mut offset = 0;
            while offset < file.size_bytes {
                let len_bytes = self.spec.io_size_bytes.min(file.size_bytes - offset);
                let op = Op::Read { path: file.path.clone(), offset, len_bytes: self.spec.io_size_bytes };
                script.push_back((op, Expect::Bytes { content: file.content, offset, len_bytes }));
                offset += len_bytes;
            }
        }
        script
    }

    fn run_op(&mut self) -> (Op, Expect) {
        match &self.spec.role {
            SeqRole::Writer => self.write_op(),
            SeqRole::Reader => self.read_op().unwrap_or_else(|| self.stat_dir()),
            SeqRole::Backend { mix, .. } => {
                match mix.pick(&mut self.rng) {
                    OpKind::Write => self.write_op(),
                    OpKind::Read => self.read_op().unwrap_or_else(|| self.stat_dir()),
                    OpKind::Stat => match self.pick_file() {
                        Some(i) => {
                            let file = &self.files[i];
                            let attr = Expect::Attr { size_bytes: Some(file.size_bytes), mode: None, is_dir: false };
                            (Op::Stat { path: file.path.clone() }, attr)
                        }
                        None => self.stat_dir(),
                    },
                    OpKind::Access => match self.pick_file() {
                        Some(i) => (Op::Access { path: self.files[i].path.clone() }, Expect::Done),
                        None => self.stat_dir(),
                    },
                    // Not in SEQ_OPS, so not in a validated mix.
                    _ => self.stat_dir(),
                }
            }
        }
    }

    /// Update the model after `op` succeeded (`ok`) or failed.
    fn apply(&mut self, op: &Op, ok: bool) {
        let Some(index) = self.by_path.get(op.path()).copied() else { return };
        let file = &mut self.files[index];
        match op {
            Op::WriteFile { size_bytes, content, .. } => {
                *file = SeqFile { path: file.path.clone(), size_bytes: *size_bytes, content: *content, sure: ok };
            }
            Op::Write { offset, len_bytes, content, .. } => {
                // Sure still only if it continues the file's own content without a gap.
                file.sure = ok && file.sure && file.content == *content && *offset <= file.size_bytes;
                file.size_bytes = file.size_bytes.max(offset + len_bytes);
            }
            _ => {}
        }
    }

    fn run_rate_per_sec(&self) -> Option<f64> {
        match &self.spec.role {
            SeqRole::Backend { rate_per_sec, .. } => Some(*rate_per_sec),
            SeqRole::Writer | SeqRole::Reader => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The VDA-like workload.
// ---------------------------------------------------------------------------------------------------

/// `vda.toml`'s shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VdaConfig {
    rate_per_proc: f64,
    io_size_bytes: u64,
    file_size_bytes: u64,
    reader_files: u64,
}

/// The VDA-like workload: load in streams, a writer and a companion reader per stream.
#[derive(Debug)]
pub struct Vda {
    writer: Arc<SeqSpec>,
    reader: Arc<SeqSpec>,
}

impl Vda {
    /// The workload from the TOML text `config` merged over the built-in defaults (`None`: the defaults).
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Vda::parse(config)?))
    }

    fn parse(config: Option<&str>) -> Result<Paced<Vda>, SuiteError> {
        let c: VdaConfig = load_config(NAME, DEFAULTS, config)?;
        let rate_per_proc = positive_rate(NAME, "rate_per_proc", c.rate_per_proc)?;
        let io_size_bytes = positive(NAME, "io_size_bytes", c.io_size_bytes)?;
        let file_size_bytes = positive(NAME, "file_size_bytes", c.file_size_bytes)?;
        let reader_files = positive(NAME, "reader_files", c.reader_files)?;
        if io_size_bytes > IO_MAX_BYTES {
            return Err(config_error(NAME, format!("io_size_bytes is above the limit of {IO_MAX_BYTES}")));
        }
        if file_size_bytes > SEQ_FILE_MAX_BYTES {
            return Err(config_error(NAME, format!("file_size_bytes is above the limit of {SEQ_FILE_MAX_BYTES}")));
        }
        if reader_files > SEQ_FILES_MAX {
            return Err(config_error(NAME, format!("reader_files is above the limit of {SEQ_FILES_MAX}")));
        }
        let spec = |role, setup_files| SeqSpec {
            role,
            io_size_bytes,
            file_sizes: SizeTable::single(file_size_bytes),
            setup_files,
        };
        // Stream `s` works in `vda/s{s}/`.
        let layout =
            PacedLayout { name: NAME, seed_tag: SEED_TAG, unit_dir: Some("s"), procs_per_unit: 2, rate_per_proc };
        let models =
            Vda { writer: Arc::new(spec(SeqRole::Writer, 0)), reader: Arc::new(spec(SeqRole::Reader, reader_files)) };
        Ok(Paced { layout, models })
    }
}

impl PacedModels for Vda {
    /// A stream's writer (rank 0) works in `vda/s{s}/ingest`, its reader (rank 1) in `vda/s{s}/archive`.
    fn model(&self, _index: usize, stream: usize, rank: usize, rng: WorkRng) -> Box<dyn ScriptModel> {
        let (spec, dir) = if rank == 0 { (&self.writer, "ingest") } else { (&self.reader, "archive") };
        Box::new(SeqProc::new(spec.clone(), format!("{NAME}/s{stream}/{dir}"), rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Outcome;
    use crate::suite::swbuild::testing::*;

    #[test]
    fn runs_clean_on_memfs_at_load_1_and_2() {
        let workload = Vda::from_config(None).expect("defaults");
        // 10 s at 8 MiB/s: each writer fills five 16 MiB files (the last partly).
        for (load, mut fs, report) in runs_keeping_up(&*workload, 10 * SECOND_NS, 2, 16.0) {
            let run = report.measured().next().expect("run phase");
            // Writers wrote half the operations, readers read the other half, 1 MiB each.
            let writes = share(&report, &[OpKind::Write, OpKind::WriteFile]);
            let reads = share(&report, &[OpKind::Read]);
            assert!((writes - 0.5).abs() < 0.01 && (reads - 0.5).abs() < 0.01, "{writes} {reads}");
            assert_eq!(run.bytes_written, run.bytes_read, "same rate, same piece size");
            assert_eq!(run.bytes_written, 80 * load * (1 << 20));
            // The files are there: 5 per writer, and the check read back all they hold and the readers'.
            let Ok(Outcome::Names(names)) = fs.apply(&Op::Readdir { path: "vda/s0/ingest".into() }) else {
                panic!("ingest dir")
            };
            assert_eq!(names, ["f0", "f1", "f2", "f3", "f4"]);
            let check = report.phases.last().expect("check");
            assert_eq!(check.bytes_read, load * (80 + 32) * (1 << 20));
        }
    }

    #[test]
    fn a_corrupted_file_is_caught_by_the_check() {
        let workload = Vda::parse(None).expect("defaults");
        assert_corruption_caught(&workload, &params(1, 3 * SECOND_NS), &["vda/s0/ingest", "vda/s0/archive"]);
    }

    #[test]
    fn a_short_file_is_caught_by_the_check() {
        let workload = Vda::parse(None).expect("defaults");
        let check = check_after(&workload, &params(1, SECOND_NS), |fs| {
            // Truncate the reader's first file to one byte short of a piece.
            fs.apply(&Op::WriteFile { path: "vda/s0/archive/f0".into(), size_bytes: 1, content: 1 }).expect("write");
        });
        assert!(check.failures >= 2, "the stat and the reads: {:?}", check.first_failures);
        assert!(check.first_failures.iter().any(|f| f.contains("size 1 bytes")), "{:?}", check.first_failures);
    }

    #[test]
    fn defaults_parse_and_bad_files_are_rejected() {
        let workload = Vda::parse(None).expect("embedded defaults parse");
        assert_eq!(workload.layout.rate_per_proc, 8.0);
        assert_eq!(workload.models.reader.setup_files, 2);
        let overridden = Vda::parse(Some("rate_per_proc = 2.5")).expect("valid");
        assert_eq!(overridden.layout.rate_per_proc, 2.5);
        assert_eq!(overridden.models.writer.io_size_bytes, 1 << 20, "kept from the defaults");
        let cases = [
            ("rate_per_proc = 0.0", "rate_per_proc must be"),
            ("io_size_bytes = 0", "io_size_bytes must be > 0"),
            ("file_size_bytes = 0", "file_size_bytes must be > 0"),
            ("reader_files = 0", "reader_files must be > 0"),
            ("io_size_bytes = 1099511627776", "io_size_bytes is above the limit"),
            ("streams = 3", "streams"),
            ("rate_per_proc = ", "TOML parse error"),
        ];
        assert_rejected(Vda::from_config, "vda", &cases);
    }
}
