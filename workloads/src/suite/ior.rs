//! ior-easy and ior-hard, as IO500 runs them (load = processes).
//!
//! - **ior-easy**: a file per process (`ior-easy/p{i}`), written sequentially in 2 MiB transfers, each file
//!   with its own content.
//! - **ior-hard**: one shared file (`ior-hard/file`) written in 47,008-byte transfers, interleaved: segment
//!   `s` of process `i` is at offset `(s * procs + i) * 47008`. Every process writes the same content, so
//!   any range of the file is checkable.
//!
//! The write phase is stonewalled at `Params::duration_ns` (and bounded by `max_bytes_per_proc`, so a
//! stonewall that never fires cannot fill a disk); each process remembers how many transfers it wrote. The
//! read phase then reads back exactly that, byte for byte, with the ranks shifted as IO500 does: process `i`
//! reads what process `i + 1` wrote. The check phase reads everything again.

use serde::Deserialize;

use crate::op::{Op, OpError, Outcome};
use crate::suite::SuiteError;
use crate::suite::io500::{Part, Plan, PlannedWorkload, Rank, Step, check_bytes, content_id, describe, parse_config};
use crate::suite::swbuild::config_error;
use crate::workload::{Params, Score, Workload};

/// IO500's ior-easy transfer: 2 MiB.
pub const EASY_TRANSFER_BYTES: u64 = 2 * 1024 * 1024;
/// IO500's ior-hard transfer: 47,008 bytes, aligned with nothing.
pub const HARD_TRANSFER_BYTES: u64 = 47_008;
/// Default bound on what one process writes: small enough for a quick run on any disk.
pub const DEFAULT_MAX_BYTES_PER_PROC: u64 = 64 * 1024 * 1024;
/// The largest transfer allowed (a read holds one transfer in memory).
pub const MAX_TRANSFER_BYTES: u64 = 256 * 1024 * 1024;

/// Content tags of the two flavours (see [`content_id`]).
const EASY_TAG: u64 = 0x1000_0000_0000;
const HARD_TAG: u64 = 0x2000_0000_0000;

/// Which ior.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IorFlavour {
    /// A file per process, large sequential transfers.
    Easy,
    /// One shared file, small unaligned interleaved transfers.
    Hard,
}

impl IorFlavour {
    /// The workload's name, also its directory under the run root and its phases' prefix.
    pub fn name(self) -> &'static str {
        match self {
            IorFlavour::Easy => "ior-easy",
            IorFlavour::Hard => "ior-hard",
        }
    }
}

/// What an ior run writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IorConfig {
    /// Bytes per `Write` and `Read`.
    pub transfer_bytes: u64,
    /// At most this many bytes per process (rounded down to whole transfers), stonewall or not.
    pub max_bytes_per_proc: u64,
}

/// The TOML form of [`IorConfig`]: every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IorToml {
    transfer_bytes: Option<u64>,
    max_bytes_per_proc: Option<u64>,
}

impl IorConfig {
    /// IO500's transfer size for the flavour and [`DEFAULT_MAX_BYTES_PER_PROC`].
    pub fn defaults(flavour: IorFlavour) -> IorConfig {
        let transfer_bytes = match flavour {
            IorFlavour::Easy => EASY_TRANSFER_BYTES,
            IorFlavour::Hard => HARD_TRANSFER_BYTES,
        };
        IorConfig { transfer_bytes, max_bytes_per_proc: DEFAULT_MAX_BYTES_PER_PROC }
    }

    /// The defaults with the keys `toml` sets, validated.
    pub(crate) fn from_toml(flavour: IorFlavour, toml: IorToml) -> Result<IorConfig, String> {
        let defaults = IorConfig::defaults(flavour);
        let config = IorConfig {
            transfer_bytes: toml.transfer_bytes.unwrap_or(defaults.transfer_bytes),
            max_bytes_per_proc: toml.max_bytes_per_proc.unwrap_or(defaults.max_bytes_per_proc),
        };
        config.validate()?;
        Ok(config)
    }

    /// A transfer of 1 byte to [`MAX_TRANSFER_BYTES`], and room for at least one per process.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_TRANSFER_BYTES).contains(&self.transfer_bytes) {
            return Err(format!("transfer_bytes = {}: must be 1 to {MAX_TRANSFER_BYTES}", self.transfer_bytes));
        }
        if self.max_bytes_per_proc < self.transfer_bytes {
            return Err(format!(
                "max_bytes_per_proc = {}: must hold at least one transfer of {} bytes",
                self.max_bytes_per_proc, self.transfer_bytes
            ));
        }
        Ok(())
    }

    /// Transfers one process writes at most.
    pub fn transfers_per_proc(&self) -> u64 {
        self.max_bytes_per_proc / self.transfer_bytes
    }
}

/// An ior workload: setup (the directory and files), write (stonewalled), read, check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ior {
    flavour: IorFlavour,
    config: IorConfig,
}

impl Ior {
    /// An ior of this flavour and configuration (validated).
    pub fn new(flavour: IorFlavour, config: IorConfig) -> Result<Ior, SuiteError> {
        config.validate().map_err(|message| config_error(flavour.name(), message))?;
        Ok(Ior { flavour, config })
    }

    /// An ior configured by the TOML text `config` (keys `transfer_bytes`, `max_bytes_per_proc`).
    pub fn from_config(flavour: IorFlavour, config: Option<&str>) -> Result<Ior, SuiteError> {
        let toml: IorToml = parse_config(flavour.name(), config)?;
        let config = IorConfig::from_toml(flavour, toml).map_err(|message| config_error(flavour.name(), message))?;
        Ior::new(flavour, config)
    }

    pub fn flavour(&self) -> IorFlavour {
        self.flavour
    }

    pub fn config(&self) -> &IorConfig {
        &self.config
    }

    /// One part per process, sharing the record of what each wrote.
    pub(crate) fn parts(&self, params: &Params) -> Vec<Box<dyn Part>> {
        let (flavour, transfer_bytes, max_transfers) =
            (self.flavour, self.config.transfer_bytes, self.config.transfers_per_proc());
        let part = |rank| Box::new(IorPart { flavour, transfer_bytes, max_transfers, rank }) as Box<dyn Part>;
        Rank::all(params).into_iter().map(part).collect()
    }
}

impl PlannedWorkload for Ior {
    fn workload_name(&self) -> &'static str {
        self.flavour.name()
    }

    /// Setup, write (stonewalled), read, check; each phase's figure is its bandwidth, GiB/s.
    fn plan(&self, params: &Params) -> Plan {
        Plan::single(self.flavour.name(), Score::Bandwidth, &[Step::Write, Step::Read], params)
    }

    fn components(&self, params: &Params) -> Vec<Vec<Box<dyn Part>>> {
        vec![self.parts(params)]
    }
}

/// `ior-easy` by name: see [`Ior`].
#[derive(Debug)]
pub struct IorEasy;

impl IorEasy {
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Ior::from_config(IorFlavour::Easy, config)?))
    }
}

/// `ior-hard` by name: see [`Ior`].
#[derive(Debug)]
pub struct IorHard;

impl IorHard {
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Ior::from_config(IorFlavour::Hard, config)?))
    }
}

/// One process of an ior.
#[derive(Debug)]
struct IorPart {
    flavour: IorFlavour,
    transfer_bytes: u64,
    max_transfers: u64,
    /// Its rank, and the transfers each process wrote.
    rank: Rank,
}

impl IorPart {
    fn dir(&self) -> &'static str {
        self.flavour.name()
    }

    /// The file process `owner` writes.
    fn file(&self, owner: u64) -> String {
        match self.flavour {
            IorFlavour::Easy => format!("{}/p{owner}", self.dir()),
            IorFlavour::Hard => format!("{}/file", self.dir()),
        }
    }

    /// Where transfer `transfer` of process `owner` goes.
    fn offset(&self, owner: u64, transfer: u64) -> u64 {
        match self.flavour {
            IorFlavour::Easy => transfer * self.transfer_bytes,
            IorFlavour::Hard => (transfer * self.rank.procs + owner) * self.transfer_bytes,
        }
    }

    /// The content process `owner` writes: its file's own for ior-easy, the shared file's for ior-hard.
    fn content(&self, owner: u64) -> u64 {
        match self.flavour {
            IorFlavour::Easy => content_id(self.rank.seed, EASY_TAG, owner),
            IorFlavour::Hard => content_id(self.rank.seed, HARD_TAG, 0),
        }
    }

    /// Files under the directory once set up.
    fn files(&self) -> u64 {
        match self.flavour {
            IorFlavour::Easy => self.rank.procs,
            IorFlavour::Hard => 1,
        }
    }
}

impl Part for IorPart {
    fn begin(&mut self, step: Step) {
        self.rank.begin(step);
    }

    fn next_op(&mut self, step: Step) -> Option<Op> {
        let (k, index, source) = (self.rank.cursor, self.rank.index, self.rank.source());
        let op = match step {
            // Process 0 makes the directory and every file, so no process races another's mkdir.
            Step::Setup if index == 0 && k == 0 => Op::Mkdir { path: self.dir().to_string() },
            Step::Setup if index == 0 && k <= self.files() => Op::Create { path: self.file(k - 1) },
            Step::Write if !self.rank.stopped && k < self.max_transfers => Op::Write {
                path: self.file(index),
                offset: self.offset(index, k),
                len_bytes: self.transfer_bytes,
                content: self.content(index),
            },
            Step::Read | Step::Check if k < self.rank.ledger.live(source).end => {
                Op::Read { path: self.file(source), offset: self.offset(source, k), len_bytes: self.transfer_bytes }
            }
            Step::Find if index == 0 && k == 0 => Op::Find { path: self.dir().to_string() },
            _ => return None,
        };
        self.rank.issue(op)
    }

    fn observe(&mut self, step: Step, op: &Op, result: &Result<Outcome, OpError>, verify: bool) -> Result<(), String> {
        match (step, op, self.rank.outcome(step, result)?) {
            (Step::Setup, _, Outcome::Done) => Ok(()),
            (Step::Write, _, Outcome::Done) => self.rank.wrote(),
            (Step::Read | Step::Check, Op::Read { offset, len_bytes, .. }, Outcome::Bytes(bytes)) => {
                if verify {
                    check_bytes(self.content(self.rank.source()), *offset, *len_bytes, bytes)
                } else {
                    Ok(())
                }
            }
            (Step::Find, _, Outcome::Count(found)) => {
                if verify && *found != self.files() {
                    Err(format!("found {found} entries, expected {} files", self.files()))
                } else {
                    Ok(())
                }
            }
            (_, _, other) => Err(format!("unexpected result: {}", describe(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::io500::testing::{assert_clean, corrupt, params, phase, run, run_on};

    const MIB: u64 = 1024 * 1024;
    /// Long enough that the stonewall never fires on MemFs.
    const LONG_NS: u64 = 60_000_000_000;

    fn ior(flavour: IorFlavour, max_bytes_per_proc: u64) -> Ior {
        Ior::from_config(flavour, Some(&format!("max_bytes_per_proc = {max_bytes_per_proc}"))).expect("valid config")
    }

    #[test]
    fn ior_easy_reads_back_exactly_what_it_wrote() {
        let workload = ior(IorFlavour::Easy, 8 * MIB);
        for load in [1, 3] {
            let report = run(&workload, &params(load, LONG_NS));
            assert_clean(&report);
            let write = phase(&report, "ior-easy-write");
            assert_eq!(write.bytes_written, load * 8 * MIB, "the bound stops the writes");
            assert_eq!(write.kinds.iter().map(|k| k.op.name()).collect::<Vec<_>>(), ["write"]);
            assert_eq!(phase(&report, "ior-easy-read").bytes_read, write.bytes_written);
            assert_eq!(phase(&report, "ior-easy-check").bytes_read, write.bytes_written);
            let names: Vec<&str> = report.metrics.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, ["ior-easy-write", "ior-easy-read"]);
            assert!(report.metrics.iter().all(|m| m.value > 0.0 && m.unit == "GiB/s"), "{:?}", report.metrics);
        }
    }

    #[test]
    fn ior_hard_reads_back_exactly_what_it_wrote() {
        let workload = ior(IorFlavour::Hard, MIB);
        let transfers = MIB / HARD_TRANSFER_BYTES;
        for load in [1, 3] {
            let report = run(&workload, &params(load, LONG_NS));
            assert_clean(&report);
            let write = phase(&report, "ior-hard-write");
            assert_eq!(write.bytes_written, load * transfers * HARD_TRANSFER_BYTES);
            assert_eq!(phase(&report, "ior-hard-read").bytes_read, write.bytes_written);
            assert_eq!(phase(&report, "ior-hard-check").bytes_read, write.bytes_written);
        }
    }

    #[test]
    fn ior_hard_interleaves_the_processes_in_one_file() {
        let workload = ior(IorFlavour::Hard, 10 * HARD_TRANSFER_BYTES);
        let mut fs = crate::memfs::MemFs::new();
        let report = run_on(&mut fs, &workload, &params(3, LONG_NS));
        assert_clean(&report);
        let stat = fs.apply(&Op::Stat { path: "ior-hard/file".into() });
        assert_eq!(stat, Ok(Outcome::Attr { size_bytes: 30 * HARD_TRANSFER_BYTES, mode: 0o644, is_dir: false }));
        assert_eq!(fs.apply(&Op::Find { path: "ior-hard".into() }), Ok(Outcome::Count(1)));
    }

    #[test]
    fn stonewall_stops_the_write_phase_and_the_read_phase_reads_that_much() {
        // On MemFs an operation takes 10 µs plus 1 ns per KB moved: a 2 MiB transfer about 12 µs, a
        // 47,008-byte one 10 µs. The bound is 8 transfers of ior-easy, 356 of ior-hard.
        for (flavour, duration_ns) in [(IorFlavour::Easy, 50_000), (IorFlavour::Hard, 100_000)] {
            let bound = 16 * MIB;
            let workload = ior(flavour, bound);
            for load in [1, 3] {
                let report = run(&workload, &params(load, duration_ns));
                assert_clean(&report);
                let written = phase(&report, &format!("{}-write", flavour.name())).bytes_written;
                assert!(0 < written && written < load * bound, "{flavour:?} at {load}: {written}");
                assert_eq!(written % (load * workload.config().transfer_bytes), 0, "every process wrote as much");
                assert_eq!(phase(&report, &format!("{}-read", flavour.name())).bytes_read, written);
            }
        }
    }

    #[test]
    fn a_target_returning_wrong_bytes_is_caught() {
        for flavour in [IorFlavour::Easy, IorFlavour::Hard] {
            let report = run_on(&mut corrupt(), &ior(flavour, 4 * MIB), &params(3, LONG_NS));
            let read = phase(&report, &format!("{}-read", flavour.name()));
            assert!(read.failures > 0, "{flavour:?}");
            assert_eq!(read.failures, read.ops, "every read is wrong");
            assert!(read.first_failures[0].contains("differs"), "{:?}", read.first_failures);
        }
    }

    #[test]
    fn config_is_parsed_and_checked() {
        assert_eq!(
            Ior::from_config(IorFlavour::Easy, None).map(|w| w.config().clone()),
            Ok(IorConfig::defaults(IorFlavour::Easy))
        );
        let hard = Ior::from_config(IorFlavour::Hard, Some("transfer_bytes = 4096\nmax_bytes_per_proc = 8192"));
        assert_eq!(hard.map(|w| w.config().transfers_per_proc()), Ok(2));
        for (text, needle) in [
            ("segments = 3", "segments"),
            ("transfer_bytes = 0", "transfer_bytes"),
            ("max_bytes_per_proc = 1", "at least one transfer"),
            ("transfer_bytes = \"big\"", "transfer_bytes"),
        ] {
            let error = IorEasy::from_config(Some(text)).map(|_| ()).unwrap_err();
            assert!(error.to_string().contains(needle), "{text}: {error}");
            assert!(error.to_string().starts_with("ior-easy configuration"), "{error}");
        }
    }
}
