//! `tessera`: the production node binary and its command line (`tessera --help`).

use std::process::ExitCode;

use clap::Parser;
use tessera_real_io::bench::RealClusterRunner;
use tessera_real_io::cli::{Cli, ClusterCommand, Command, cluster_up, run_client, run_node};
use tessera_workloads::cli::Runners;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Node { .. }) {
        // A command whose output goes into a pipe that closes early (`tessera ls / | head`) ends quietly,
        // as other command-line tools do, instead of panicking on the failed print. Not for the node: it
        // runs with Rust's default (SIGPIPE ignored), so a peer closing a socket is an error, not death.
        restore_default_sigpipe();
    }
    let result = match cli.command {
        Command::Node { config } => run_node(&config),
        Command::Cluster(ClusterCommand::Up(args)) => cluster_up(&args).map_err(|e| e.to_string()),
        Command::Cluster(ClusterCommand::Down { dir }) => {
            tessera_real_io::local::stop_all(&dir, &mut |line| println!("{line}"))
                .map(|n| println!("stopped {n} nodes"))
                .map_err(|e| e.to_string())
        }
        Command::Mount(args) => {
            let argv = std::env::args().skip(1).collect();
            tessera_real_io::fuse::mount(args.request(argv)).map_err(|e| e.to_string())
        }
        Command::Unmount { mountpoint, lazy } => {
            tessera_real_io::fuse::unmount(&mountpoint, lazy).map_err(|e| e.to_string())
        }
        Command::Bench(args) => {
            let runners = Runners { sim: None, cluster: Some(&RealClusterRunner) };
            return match tessera_workloads::cli::run_bench(&args, runners) {
                Ok(outcome) if outcome.bad == 0 => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(message) => {
                    eprintln!("tessera bench: {message}");
                    ExitCode::from(2)
                }
            };
        }
        other => run_client(other).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tessera: {message}");
            ExitCode::FAILURE
        }
    }
}

fn restore_default_sigpipe() {
    #[allow(unsafe_code)]
    // SAFETY: signal(2) with SIG_DFL installs no handler; nothing else in this process has changed the
    // disposition of SIGPIPE, and no thread runs yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
