//! EDA-like workload (model: SPEC SFS 2014 SP2 EDA = EDA_FRONTEND + EDA_BACKEND).
//!
//! The load is in job sets; each job set runs `frontend_procs_per_job_set` front-end processes (a tree of
//! small and empty files under a metadata-heavy mix, the [`TreeProc`] SWBUILD uses) and
//! `backend_procs_per_job_set` back-end processes (a few large files rewritten and read sequentially, the
//! [`SeqProc`] VDA uses). Process `k` of job set `j` works in `eda/js{j}/fe{k}` or `eda/js{j}/be{k}`.
//!
//! The run phase paces the front ends at `frontend.rate_per_proc`; a back-end process paces itself at
//! its own, lower `backend.rate_per_proc` ([`crate::workload::Process::rate_per_sec`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::op::WorkRng;
use crate::suite::SuiteError;
use crate::suite::swbuild::{
    Mix, Paced, PacedLayout, PacedModels, ScriptModel, SizeTable, SizeWeight, TreeProc, TreeSpec, config_error,
    load_config, positive, positive_rate,
};
use crate::suite::vda::{IO_MAX_BYTES, SEQ_FILE_MAX_BYTES, SEQ_FILES_MAX, SEQ_OPS, SeqProc, SeqRole, SeqSpec};
use crate::workload::Workload;

/// The built-in defaults (`workloads/eda.toml`).
const DEFAULTS: &str = include_str!("../../eda.toml");
/// The workload's name, its run phase's name and the top of its directories.
const NAME: &str = "eda";
/// Separates this workload's random streams from the others' at the same seed.
const SEED_TAG: u64 = 0x4544_4100_0000_0000;

/// `eda.toml`'s shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdaConfig {
    frontend_procs_per_job_set: u64,
    backend_procs_per_job_set: u64,
    frontend: FrontendConfig,
    backend: BackendConfig,
}

/// `[frontend]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontendConfig {
    rate_per_proc: f64,
    dirs: u64,
    fanout: u64,
    files_per_dir: u64,
    ops: BTreeMap<String, u64>,
    file_sizes: Vec<SizeWeight>,
}

/// `[backend]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendConfig {
    rate_per_proc: f64,
    files: u64,
    io_size_bytes: u64,
    ops: BTreeMap<String, u64>,
    file_sizes: Vec<SizeWeight>,
}

/// The EDA-like workload: load in job sets of front-end and back-end processes.
#[derive(Debug)]
pub struct Eda {
    /// Front ends per job set (its first processes; the others are back ends).
    frontends: u64,
    frontend: Arc<TreeSpec>,
    backend: Arc<SeqSpec>,
}

impl Eda {
    /// The workload from the TOML text `config` merged over the built-in defaults (`None`: the defaults).
    pub fn from_config(config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
        Ok(Box::new(Eda::parse(config)?))
    }

    fn parse(config: Option<&str>) -> Result<Paced<Eda>, SuiteError> {
        let c: EdaConfig = load_config(NAME, DEFAULTS, config)?;
        if c.frontend_procs_per_job_set.saturating_add(c.backend_procs_per_job_set) == 0 {
            return Err(config_error(
                NAME,
                "frontend_procs_per_job_set + backend_procs_per_job_set must be > 0 (a job set needs a process)",
            ));
        }
        let f = &c.frontend;
        let rate_per_proc = positive_rate(NAME, "frontend.rate_per_proc", f.rate_per_proc)?;
        let frontend =
            TreeSpec::new(NAME, "frontend.", (f.dirs, f.fanout, f.files_per_dir), &f.file_sizes, true, &f.ops)?;
        let b = &c.backend;
        let backend_rate = positive_rate(NAME, "backend.rate_per_proc", b.rate_per_proc)?;
        let files = positive(NAME, "backend.files", b.files)?;
        if !(2..=SEQ_FILES_MAX).contains(&files) {
            return Err(config_error(
                NAME,
                format!("backend.files must be 2 to {SEQ_FILES_MAX} (one is rewritten while the others are read)"),
            ));
        }
        let io_size_bytes = positive(NAME, "backend.io_size_bytes", b.io_size_bytes)?;
        if io_size_bytes > IO_MAX_BYTES {
            return Err(config_error(NAME, format!("backend.io_size_bytes is above the limit of {IO_MAX_BYTES}")));
        }
        let backend = SeqSpec {
            role: SeqRole::Backend {
                mix: Mix::from_table(NAME, "[backend.ops]", &b.ops, &SEQ_OPS)?,
                rate_per_sec: backend_rate,
            },
            io_size_bytes,
            file_sizes: SizeTable::from_rows(NAME, "backend.file_sizes", &b.file_sizes, false, SEQ_FILE_MAX_BYTES)?,
            setup_files: files,
        };
        let layout = PacedLayout {
            name: NAME,
            seed_tag: SEED_TAG,
            // Job set `j` works in `eda/js{j}/`.
            unit_dir: Some("js"),
            procs_per_unit: c.frontend_procs_per_job_set.saturating_add(c.backend_procs_per_job_set),
            // The run phase's pace: the front ends' rate (the back ends pace themselves).
            rate_per_proc,
        };
        let models =
            Eda { frontends: c.frontend_procs_per_job_set, frontend: Arc::new(frontend), backend: Arc::new(backend) };
        Ok(Paced { layout, models })
    }
}

impl PacedModels for Eda {
    /// A job set's processes are its front ends (`eda/js{j}/fe{k}`), then its back ends (`eda/js{j}/be{k}`).
    fn model(&self, _index: usize, job_set: usize, rank: usize, rng: WorkRng) -> Box<dyn ScriptModel> {
        let frontends = usize::try_from(self.frontends).unwrap_or(usize::MAX);
        if rank < frontends {
            Box::new(TreeProc::new(self.frontend.clone(), format!("{NAME}/js{job_set}/fe{rank}"), rng))
        } else {
            Box::new(SeqProc::new(self.backend.clone(), format!("{NAME}/js{job_set}/be{}", rank - frontends), rng))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Op, OpKind, Outcome};
    use crate::suite::swbuild::testing::*;

    #[test]
    fn runs_clean_on_memfs_at_load_1_and_2() {
        let workload = Eda::from_config(None).expect("defaults");
        // 3 front ends at 100 op/s and 2 back ends at 75 op/s per job set.
        for (load, mut fs, report) in runs_keeping_up(&*workload, 2 * SECOND_NS, 5, 450.0) {
            let run = report.measured().next().expect("run phase");
            // Every job set's processes are where the layout says.
            for j in 0..load {
                let Ok(Outcome::Names(names)) = fs.apply(&Op::Readdir { path: format!("eda/js{j}") }) else {
                    panic!("job set dir")
                };
                assert_eq!(names, ["be0", "be1", "fe0", "fe1", "fe2"]);
            }
            // Back ends moved data both ways, 1 MiB a piece (2 x 150 mix operations a second per job set,
            // 45% each way).
            let least = load * (100 << 20);
            assert!(run.bytes_written >= least && run.bytes_read >= least, "{run:?}");
        }
    }

    #[test]
    fn run_phase_follows_the_mix_tables() {
        // Smaller back-end pieces and files than the defaults' (the mix is the same), to run quickly.
        let small = "[backend]\nio_size_bytes = 65536\nfile_sizes = [{ size_bytes = 524288, weight = 1 }]\n";
        let workload = Eda::parse(Some(small)).expect("valid");
        let (_, report) = run_clean(&workload, &params(1, 20 * SECOND_NS));
        // 3 front ends at 100 op/s and 2 back ends at 75 op/s: 300 + 150 operations a second.
        let ops = 450.0;
        let fe = |kind| workload.models.frontend.mix.share(kind) * 300.0 / ops;
        let SeqRole::Backend { mix, .. } = &workload.models.backend.role else { panic!("backend role") };
        let be = |kind| mix.share(kind) * 150.0 / ops;
        let expected = [
            (vec![OpKind::Stat], fe(OpKind::Stat) + be(OpKind::Stat)),
            (vec![OpKind::Access], fe(OpKind::Access) + be(OpKind::Access)),
            (vec![OpKind::ReadFile], fe(OpKind::ReadFile)),
            (vec![OpKind::Create], fe(OpKind::Create)),
            (vec![OpKind::Unlink], fe(OpKind::Unlink)),
            (vec![OpKind::Readdir], fe(OpKind::Readdir)),
            (vec![OpKind::Chmod], fe(OpKind::Chmod)),
            // A back end's writes are write_file for a file's first piece, write for the rest.
            (vec![OpKind::WriteFile, OpKind::Write], fe(OpKind::WriteFile) + be(OpKind::Write)),
            (vec![OpKind::Read], be(OpKind::Read)),
        ];
        for (kinds, want) in expected {
            let got = share(&report, &kinds);
            assert!((got - want).abs() < 0.015, "{kinds:?}: {got} vs {want}");
        }
    }

    #[test]
    fn the_backend_mix_runs_at_its_own_lower_rate() {
        let config = "frontend_procs_per_job_set = 0\n[backend.ops]\nwrite = 1\nread = 1\n";
        let workload = Eda::parse(Some(config)).expect("valid");
        let (_, report) = run_clean(&workload, &params(1, 10 * SECOND_NS));
        assert_eq!(report.procs, 2);
        // Two back ends at their own 75 op/s for 10 s, nothing but their mix; the requested rate is theirs.
        let run = report.measured().next().expect("run phase");
        assert_eq!(run.ops, 1_500);
        assert_eq!(run.requested_ops_per_sec, Some(150.0));
        assert_eq!(share(&report, &[OpKind::Write, OpKind::WriteFile, OpKind::Read]), 1.0);
        assert!((share(&report, &[OpKind::Read]) - 0.5).abs() < 0.03, "{:?}", run.kinds);
    }

    #[test]
    fn a_corrupted_file_is_caught_by_the_check() {
        let workload = Eda::parse(None).expect("defaults");
        assert_corruption_caught(&workload, &params(1, SECOND_NS), &["eda/js0/fe1", "eda/js0/be1"]);
    }

    #[test]
    fn defaults_parse_and_bad_files_are_rejected() {
        let workload = Eda::parse(None).expect("embedded defaults parse");
        assert_eq!((workload.models.frontends, workload.layout.procs_per_unit), (3, 3 + 2));
        assert_eq!(workload.layout.rate_per_proc, 100.0);
        assert_eq!(workload.models.backend.setup_files, 3);
        let overridden = Eda::parse(Some("[backend]\nrate_per_proc = 50.0\n")).expect("valid");
        assert_eq!(
            workload.models.frontend.mix, overridden.models.frontend.mix,
            "untouched tables keep their defaults"
        );
        let SeqRole::Backend { rate_per_sec, .. } = overridden.models.backend.role else { panic!("backend role") };
        assert_eq!(rate_per_sec, 50.0);
        let cases = [
            ("[frontend.ops]\nstat = 0\n", "[frontend.ops]: every weight is zero"),
            ("[frontend.ops]\nstat = 1\nlink = 1\n", "[frontend.ops]: unknown operation \"link\""),
            ("[backend.ops]\nwrite = 1\nmkdir = 1\n", "[backend.ops]: unknown operation \"mkdir\""),
            ("[backend]\nrate_per_proc = 0.0\n", "backend.rate_per_proc must be"),
            ("[frontend]\nrate_per_proc = -1.0\n", "frontend.rate_per_proc must be"),
            ("[backend]\nfiles = 1\n", "backend.files must be 2"),
            ("[backend]\nio_size_bytes = 0\n", "backend.io_size_bytes must be > 0"),
            ("[frontend]\ndirs = 0\n", "frontend.dirs must be > 0"),
            ("[backend]\nfile_sizes = [{ size_bytes = 0, weight = 1 }]\n", "backend.file_sizes[0]: size_bytes"),
            ("[frontend]\nfile_sizes = [{ size_bytes = 0, weight = 1 }]\n", "needs a size > 0"),
            ("frontend_procs_per_job_set = 0\nbackend_procs_per_job_set = 0\n", "must be > 0"),
            ("[frontend]\nfiles = 3\n", "files"),
            ("[midend]\nrate_per_proc = 3.0\n", "midend"),
        ];
        assert_rejected(Eda::from_config, "eda", &cases);
    }
}
