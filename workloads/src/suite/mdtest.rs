//! mdtest-easy and mdtest-hard, as IO500 runs them (load = processes).
//!
//! - **mdtest-easy**: a directory per process (`mdtest-easy/p{i}/`), empty files (`Create`).
//! - **mdtest-hard**: one shared directory (`mdtest-hard/`), files of 3,901 bytes (`WriteFile`) named
//!   uniquely per process (`f{i}.{n}`).
//!
//! Process 0 makes the directories in setup (the others issue nothing there, so none races its mkdir). The
//! write phase is stonewalled at `Params::duration_ns` and bounded by `max_files_per_proc`; each process
//! remembers how many files it made. Then, with ranks shifted as IO500 does (process `i` looks at what
//! process `i + 1` made): stat every file and check its size; for mdtest-hard, read every file and check its
//! bytes; then each process deletes its own files. The check phase lists the directories and compares the
//! names with what should be there (after the delete phase: nothing).

use serde::Deserialize;

use crate::op::{Op, OpError, Outcome};
use crate::suite::SuiteError;
use crate::suite::io500::{
    Part, Plan, PlannedWorkload, Rank, Step, check_bytes, check_names, content_id, describe, parse_config,
};
use crate::suite::swbuild::config_error;
use crate::workload::{Params, Score, Workload};

/// IO500's mdtest-hard file size.
pub const HARD_FILE_BYTES: u64 = 3_901;
/// Default bound on the files one process makes.
pub const DEFAULT_MAX_FILES_PER_PROC: u64 = 20_000;
/// The largest mdtest-hard file allowed (a read holds one file in memory).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Content tag of mdtest-hard's files (see [`content_id`]).
const HARD_TAG: u64 = 0x3000_0000_0000;

/// Which mdtest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MdtestFlavour {
    /// A directory per process, empty files.
    Easy,
    /// One shared directory, small files with data.
    Hard,
}

impl MdtestFlavour {
    /// The workload's name, also its directory under the run root and its phases' prefix.
    pub fn name(self) -> &'static str {
        match self {
            MdtestFlavour::Easy => "mdtest-easy",
            MdtestFlavour::Hard => "mdtest-hard",
        }
    }
}

/// What an mdtest run makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdtestConfig {
    /// At most this many files per process, stonewall or not.
    pub max_files_per_proc: u64,
    /// Bytes per file: 0 for mdtest-easy (empty files made by `Create`), 1 or more for mdtest-hard.
    pub file_bytes: u64,
}

/// The TOML form of [`MdtestConfig`]: every key optional (`file_bytes` only for mdtest-hard).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MdtestToml {
    max_files_per_proc: Option<u64>,
    file_bytes: Option<u64>,
}

impl MdtestConfig {
    /// IO500's file size for the flavour and [`DEFAULT_MAX_FILES_PER_PROC`].
    pub fn defaults(flavour: MdtestFlavour) -> MdtestConfig {
        let file_bytes = match flavour {
            MdtestFlavour::Easy => 0,
            MdtestFlavour::Hard => HARD_FILE_BYTES,
        };
        MdtestConfig { max_files_per_proc: DEFAULT_MAX_FILES_PER_PROC, file_bytes }
    }

    /// The defaults with the keys `toml` sets, validated.
    pub(crate) fn from_toml(flavour: MdtestFlavour, toml: MdtestToml) -> Result<MdtestConfig, String> {
        if flavour == MdtestFlavour::Easy && toml.file_bytes.is_some() {
            return Err("file_bytes: mdtest-easy files are empty; only mdtest-hard takes a size".to_string());
        }
        let defaults = MdtestConfig::defaults(flavour);
        let config = MdtestConfig {
            max_files_per_proc: toml.max_files_per_proc.unwrap_or(defaults.max_files_per_proc),
            file_bytes: toml.file_bytes.unwrap_or(defaults.file_bytes),
        };
        config.validate(flavour)?;
        Ok(config)
    }

    /// At least one file per process; empty files for mdtest-easy, 1 to [`MAX_FILE_BYTES`] for mdtest-hard.
    pub fn validate(&self, flavour: MdtestFlavour) -> Result<(), String> {
        if self.max_files_per_proc == 0 {
            return Err("max_files_per_proc = 0: must be at least 1".to_string());
        }
        match flavour {
            MdtestFlavour::Easy if self.file_bytes != 0 => {
                Err(format!("file_bytes = {}: mdtest-easy files are empty", self.file_bytes))
            }
            MdtestFlavour::Hard if !(1..=MAX_FILE_BYTES).contains(&self.file_bytes) => {
                Err(format!("file_bytes = {}: must be 1 to {MAX_FILE_BYTES}", self.file_bytes))
            }
            _ => Ok(()),
        }
    }
}

/// An mdtest workload: setup (the directories), write (stonewalled), stat, read (mdtest-hard), delete,
/// check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mdtest {
    flavour: MdtestFlavour,
    config: MdtestConfig,
}

impl Mdtest {
    /// An mdtest of this flavour and configuration (validated).
    pub fn new(flavour: MdtestFlavour, config: MdtestConfig) -> Result<Mdtest, SuiteError> {
        config.validate(flavour).map_err(|message| config_error(flavour.name(), message))?;
        Ok(Mdtest { flavour, config })
    }

    /// An mdtest configured by the TOML text `config` (keys `max_files_per_proc`, and `file_bytes` for
    /// mdtest-hard).
    pub fn from_config(flavour: MdtestFlavour, config: Option<&str>) -> Result<Mdtest, SuiteError> {
        let toml: MdtestToml = parse_config(flavour.name(), config)?;
        let config = MdtestConfig::from_toml(flavour, toml).map_err(|message| config_error(flavour.name(), message))?;
        Mdtest::new(flavour, config)
    }

    pub fn flavour(&self) -> MdtestFlavour {
        self.flavour
    }

    pub fn config(&self) -> &MdtestConfig {
        &self.config
    }

    /// One part per process, sharing the record of which files each has.
    pub(crate) fn parts(&self, params: &Params) -> Vec<Box<dyn Part>> {
        let (flavour, file_bytes, max_files) = (self.flavour, self.config.file_bytes, self.config.max_files_per_proc);
        let part = |rank| Box::new(MdtestPart { flavour, file_bytes, max_files, rank, items: 0..0 }) as Box<dyn Part>;
        Rank::all(params).into_iter().map(part).collect()
    }
}

impl PlannedWorkload for Mdtest {
    fn workload_name(&self) -> &'static str {
        self.flavour.name()
    }

    /// Setup, write (stonewalled), stat, read (mdtest-hard), delete, check; each phase's figure is its
    /// rate, kIOPS.
    fn plan(&self, params: &Params) -> Plan {
        let run: &[Step] = match self.flavour {
            MdtestFlavour::Easy => &[Step::Write, Step::Stat, Step::Delete],
            MdtestFlavour::Hard => &[Step::Write, Step::Stat, Step::Read, Step::Delete],
        };
        Plan::single(self.flavour.name(), Score::Metadata, run, params)
    }

    fn components(&self, params: &Params) -> Vec<Vec<Box<dyn Part>>> {
        vec![self.parts(params)]
    }
}

/// `mdtest-easy` by name: see [`Mdtest`].
#[derive(Debug)]
pub struct MdtestEasy;

impl MdtestEasy {
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Mdtest::from_config(MdtestFlavour::Easy, config)?))
    }
}

/// `mdtest-hard` by name: see [`Mdtest`].
#[derive(Debug)]
pub struct MdtestHard;

impl MdtestHard {
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Mdtest::from_config(MdtestFlavour::Hard, config)?))
    }
}

/// One process of an mdtest.
#[derive(Debug)]
struct MdtestPart {
    flavour: MdtestFlavour,
    file_bytes: u64,
    max_files: u64,
    /// Its rank, and the files each process has.
    rank: Rank,
    /// The files the current stat, read or delete step goes through (taken from the ledger as it begins).
    items: std::ops::Range<u64>,
}

impl MdtestPart {
    fn dir(&self) -> &'static str {
        self.flavour.name()
    }

    /// The directory process `owner`'s files are in.
    fn dir_of(&self, owner: u64) -> String {
        match self.flavour {
            MdtestFlavour::Easy => format!("{}/p{owner}", self.dir()),
            MdtestFlavour::Hard => self.dir().to_string(),
        }
    }

    /// The name of file `n` of process `owner` in its directory.
    fn name(&self, owner: u64, n: u64) -> String {
        match self.flavour {
            MdtestFlavour::Easy => format!("f{n}"),
            MdtestFlavour::Hard => format!("f{owner}.{n}"),
        }
    }

    fn path(&self, owner: u64, n: u64) -> String {
        format!("{}/{}", self.dir_of(owner), self.name(owner, n))
    }

    /// The content of process `owner`'s mdtest-hard files.
    fn content(&self, owner: u64) -> u64 {
        content_id(self.rank.seed, HARD_TAG, owner)
    }

    /// The processes whose files are in the directory this process finds and lists (none: another does).
    fn listed(&self) -> std::ops::Range<u64> {
        match self.flavour {
            MdtestFlavour::Easy => self.rank.index..self.rank.index + 1,
            MdtestFlavour::Hard if self.rank.index == 0 => 0..self.rank.procs,
            MdtestFlavour::Hard => 0..0,
        }
    }

    /// The names that should be in the directory this process lists.
    fn expected_names(&self) -> Vec<String> {
        self.listed()
            .flat_map(|owner| self.rank.ledger.live(owner).map(move |n| (owner, n)))
            .map(|(o, n)| self.name(o, n))
            .collect()
    }
}

impl Part for MdtestPart {
    fn begin(&mut self, step: Step) {
        self.rank.begin(step);
        self.items = match step {
            Step::Stat | Step::Read => self.rank.ledger.live(self.rank.source()),
            Step::Delete => self.rank.ledger.live(self.rank.index),
            Step::Setup | Step::Write | Step::Find | Step::Check => 0..0,
        };
    }

    fn next_op(&mut self, step: Step) -> Option<Op> {
        let (k, index, source) = (self.rank.cursor, self.rank.index, self.rank.source());
        let n = self.items.start + k;
        let easy = self.flavour == MdtestFlavour::Easy;
        let op = match step {
            // Process 0 makes every directory, so no process races another's mkdir.
            Step::Setup if index == 0 && k == 0 => Op::Mkdir { path: self.dir().to_string() },
            Step::Setup if index == 0 && easy && k <= self.rank.procs => Op::Mkdir { path: self.dir_of(k - 1) },
            Step::Write if !self.rank.stopped && k < self.max_files => {
                let path = self.path(index, k);
                if easy {
                    Op::Create { path }
                } else {
                    Op::WriteFile { path, size_bytes: self.file_bytes, content: self.content(index) }
                }
            }
            Step::Stat if n < self.items.end => Op::Stat { path: self.path(source, n) },
            Step::Read if !easy && n < self.items.end => Op::ReadFile { path: self.path(source, n) },
            Step::Delete if n < self.items.end => Op::Unlink { path: self.path(index, n) },
            Step::Find if k == 0 && !self.listed().is_empty() => Op::Find { path: self.dir_of(index) },
            Step::Check if k == 0 && !self.listed().is_empty() => Op::Readdir { path: self.dir_of(index) },
            _ => return None,
        };
        self.rank.issue(op)
    }

    fn observe(&mut self, step: Step, op: &Op, result: &Result<Outcome, OpError>, verify: bool) -> Result<(), String> {
        let outcome = self.rank.outcome(step, result)?;
        match (step, outcome) {
            (Step::Setup, Outcome::Done) => Ok(()),
            (Step::Write, Outcome::Done) => self.rank.wrote(),
            (Step::Stat, Outcome::Attr { size_bytes, is_dir, .. }) => {
                if verify && (*is_dir || *size_bytes != self.file_bytes) {
                    Err(format!("{}, expected a file of {} bytes", describe(outcome), self.file_bytes))
                } else {
                    Ok(())
                }
            }
            (Step::Read, Outcome::Bytes(bytes)) => {
                if verify {
                    check_bytes(self.content(self.rank.source()), 0, self.file_bytes, bytes)
                } else {
                    Ok(())
                }
            }
            (Step::Delete, Outcome::Done) => {
                self.rank.ledger.deleted_through(self.rank.index, self.items.start + self.rank.cursor - 1);
                Ok(())
            }
            (Step::Find, Outcome::Count(found)) => {
                let want: u64 = self.listed().map(|owner| self.rank.ledger.live(owner).count() as u64).sum();
                if verify && *found != want {
                    Err(format!("found {found} entries under {}, expected {want}", op.path()))
                } else {
                    Ok(())
                }
            }
            (Step::Check, Outcome::Names(names)) => {
                if verify {
                    check_names(self.expected_names(), names)
                } else {
                    Ok(())
                }
            }
            (_, other) => Err(format!("unexpected result: {}", describe(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::MemFs;
    use crate::suite::io500::testing::{assert_clean, corrupt, params, phase, run, run_on};
    use crate::workload::PhaseRole;

    /// Long enough that the stonewall never fires on MemFs.
    const LONG_NS: u64 = 60_000_000_000;

    fn mdtest(flavour: MdtestFlavour, max_files_per_proc: u64) -> Mdtest {
        Mdtest::from_config(flavour, Some(&format!("max_files_per_proc = {max_files_per_proc}"))).expect("valid config")
    }

    #[test]
    fn mdtest_easy_creates_stats_and_deletes_every_file() {
        let workload = mdtest(MdtestFlavour::Easy, 40);
        for load in [1, 3] {
            let mut fs = MemFs::new();
            let report = run_on(&mut fs, &workload, &params(load, LONG_NS));
            assert_clean(&report);
            let names: Vec<&str> = report.measured().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["mdtest-easy-write", "mdtest-easy-stat", "mdtest-easy-delete"]);
            for name in names {
                assert_eq!(phase(&report, name).ops, load * 40, "{name}");
            }
            assert_eq!(phase(&report, "mdtest-easy-check").ops, load, "each process lists its directory");
            assert_eq!(fs.apply(&Op::Find { path: "mdtest-easy".into() }), Ok(Outcome::Count(load)), "empty dirs left");
            assert!(report.metrics.iter().all(|m| m.value > 0.0 && m.unit == "kIOPS"), "{:?}", report.metrics);
        }
    }

    #[test]
    fn mdtest_hard_writes_stats_reads_back_and_deletes_every_file() {
        let workload = mdtest(MdtestFlavour::Hard, 40);
        for load in [1, 3] {
            let report = run(&workload, &params(load, LONG_NS));
            assert_clean(&report);
            let names: Vec<&str> = report.measured().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["mdtest-hard-write", "mdtest-hard-stat", "mdtest-hard-read", "mdtest-hard-delete"]);
            let write = phase(&report, "mdtest-hard-write");
            assert_eq!(write.ops, load * 40);
            assert_eq!(write.bytes_written, load * 40 * HARD_FILE_BYTES);
            assert_eq!(phase(&report, "mdtest-hard-read").bytes_read, write.bytes_written, "reads back every byte");
            assert_eq!(phase(&report, "mdtest-hard-delete").ops, load * 40);
            assert_eq!(phase(&report, "mdtest-hard-check").ops, 1, "process 0 lists the shared directory");
        }
    }

    #[test]
    fn stonewall_stops_the_write_phase_and_later_phases_see_that_many() {
        // On MemFs a create or a 3,901-byte write takes about 10 µs: 0.2 ms stops both after about 20.
        for flavour in [MdtestFlavour::Easy, MdtestFlavour::Hard] {
            let workload = mdtest(flavour, 1_000);
            for load in [1, 3] {
                let report = run(&workload, &params(load, 200_000));
                assert_clean(&report);
                let created = phase(&report, &format!("{}-write", flavour.name())).ops;
                assert!(0 < created && created < load * 1_000, "{flavour:?} at {load}: {created}");
                for step in ["stat", "delete"] {
                    assert_eq!(phase(&report, &format!("{}-{step}", flavour.name())).ops, created, "{step}");
                }
            }
        }
    }

    #[test]
    fn check_lists_what_should_exist() {
        // Only set up and write: the check then lists every file made.
        let workload = mdtest(MdtestFlavour::Hard, 5);
        let params = params(2, LONG_NS);
        let mut fs = MemFs::new();
        let mut procs = workload.processes(&params);
        let phases = workload.phases(&params);
        let options = crate::run::RunOptions::default();
        let progress = std::sync::atomic::AtomicU64::new(0);
        let mut failures = Vec::new();
        for (index, phase) in phases.iter().enumerate() {
            if phase.role == PhaseRole::Run && !phase.name.ends_with("-write") {
                continue;
            }
            if phase.role == PhaseRole::Check {
                // A stray file the workload did not make.
                fs.apply(&Op::Create { path: "mdtest-hard/stray".into() }).expect("create");
            }
            let (back, report) = futures::executor::block_on(crate::run::Target::run_phase(
                &mut fs, index, phase, procs, &options, &progress,
            ))
            .expect("memfs runs");
            procs = back;
            failures.push((phase.name.clone(), report.failures, report.first_failures));
        }
        assert_eq!(failures[0].1 + failures[1].1, 0, "{failures:?}");
        let (name, count, first) = &failures[2];
        assert_eq!((name.as_str(), *count), ("mdtest-hard-check", 1), "{first:?}");
        assert!(first[0].contains("listed 11 names, expected 10") && first[0].contains("stray"), "{first:?}");
    }

    #[test]
    fn a_target_returning_wrong_sizes_or_bytes_is_caught() {
        let easy = run_on(&mut corrupt(), &mdtest(MdtestFlavour::Easy, 20), &params(3, LONG_NS));
        let stat = phase(&easy, "mdtest-easy-stat");
        assert_eq!(stat.failures, stat.ops, "every size is wrong");
        let hard = run_on(&mut corrupt(), &mdtest(MdtestFlavour::Hard, 20), &params(3, LONG_NS));
        let read = phase(&hard, "mdtest-hard-read");
        assert_eq!(read.failures, read.ops, "every file's bytes are wrong");
        assert!(read.first_failures[0].contains("differs"), "{:?}", read.first_failures);
    }

    #[test]
    fn config_is_parsed_and_checked() {
        let hard = Mdtest::from_config(MdtestFlavour::Hard, None).map(|w| w.config().clone());
        assert_eq!(hard, Ok(MdtestConfig { max_files_per_proc: DEFAULT_MAX_FILES_PER_PROC, file_bytes: 3_901 }));
        let small = Mdtest::from_config(MdtestFlavour::Hard, Some("file_bytes = 10\nmax_files_per_proc = 7"));
        assert_eq!(small.map(|w| w.config().clone()), Ok(MdtestConfig { max_files_per_proc: 7, file_bytes: 10 }));
        for (flavour, text, needle) in [
            (MdtestFlavour::Easy, "file_bytes = 3901", "mdtest-easy files are empty"),
            (MdtestFlavour::Easy, "files = 3", "files"),
            (MdtestFlavour::Hard, "max_files_per_proc = 0", "at least 1"),
            (MdtestFlavour::Hard, "file_bytes = 0", "file_bytes"),
        ] {
            let error = Mdtest::from_config(flavour, Some(text)).map(|_| ()).unwrap_err();
            assert!(error.to_string().contains(needle), "{text}: {error}");
            assert!(error.to_string().starts_with(&format!("{} configuration", flavour.name())), "{error}");
        }
        assert!(MdtestEasy::from_config(None).is_ok() && MdtestHard::from_config(None).is_ok());
    }
}
