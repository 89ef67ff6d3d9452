//! `tessera-bench`: the workload runner (`tessera_workloads::cli`) with the simulated cluster plugged in,
//! until the `tessera` binary carries the same command as `tessera bench`.
//!
//! `cargo run --release -p tessera-sim --bin tessera-bench -- swbuild --target sim --load 1,2 --verify`

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use clap::Parser;
use tessera_sim::bench::{SimBenchConfig, run_bench};
use tessera_workloads::cli::{BenchArgs, SimRunner};
use tessera_workloads::metrics::RunReport;
use tessera_workloads::run::{ProgressSink, RunOptions};
use tessera_workloads::workload::{Params, Workload};

/// The simulated cluster as `--target sim[:NODES]`.
struct Sim;

impl SimRunner for Sim {
    fn run(
        &self,
        workload: &dyn Workload,
        params: &Params,
        options: &RunOptions,
        nodes: Option<u64>,
        sink: &dyn ProgressSink,
        progress: &Arc<AtomicU64>,
    ) -> Result<RunReport, String> {
        let mut config = SimBenchConfig::default();
        if let Some(nodes) = nodes {
            config.nodes = nodes;
        }
        run_bench(workload, params, options, &config, sink, progress)
    }
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runners = tessera_workloads::cli::Runners { sim: Some(&Sim), cluster: None };
    match tessera_workloads::cli::run_bench(&args, runners) {
        Ok(outcome) if outcome.bad == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(message) => {
            eprintln!("tessera-bench: {message}");
            ExitCode::from(2)
        }
    }
}
