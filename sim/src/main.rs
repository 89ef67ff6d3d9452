//! `tessera-sim`: run the default simulation scenario on one seed or a range of seeds, or replay a seed
//! with its full trace. See docs/SIMULATION.md.

use std::ops::Range;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tessera_sim::config_scenario::{config_line, run_config_seed};
use tessera_sim::data_scenario::{DataScenario, data_line, run_data_scenario};
use tessera_sim::meta_scenario::{meta_history_line, run_meta_history_seed};
use tessera_sim::{RunOutcome, run_crash_seed, run_seed};

#[derive(Parser, Debug)]
#[command(
    name = "tessera-sim",
    about = "Deterministic simulation of Tessera: one seed picks the cluster, the faults and the workload.",
    long_about = "Deterministic simulation of Tessera.\n\n\
        A run is a function of one 64-bit seed: the seed picks the cluster shape (3-7 storage nodes in 2-4 \
        racks, 1-2 disks each), the network's latency, loss and duplication, the workload and the fault mix. \
        A safety phase writes replicated extents while nodes crash and restart, links are cut and disks \
        misbehave; then everything is healed, every node restarts, and a liveness phase reads back every \
        acknowledged extent. Each run ends with one line:\n\n  \
        seed=S trace_hash=H result=pass\n  \
        seed=S trace_hash=H result=fail reason=\"...\" replay=\"cargo run -p tessera-sim -- replay S\"\n\n\
        The same seed always gives the same trace_hash.",
    after_help = "Examples:\n  tessera-sim run --seed 42\n  tessera-sim run --seeds 0..100\n  tessera-sim replay 42 2> trace.txt\n  tessera-sim crash --seeds 0..1200\n  tessera-sim config --seeds 0..500\n  tessera-sim config --seed 52 --verbose 2> trace.txt\n  tessera-sim meta --seeds 0..1000 --jobs 2\n  tessera-sim meta --seed 7 --verbose 2> trace.txt\n  tessera-sim data --seeds 0..1000 --jobs 2\n  tessera-sim data --seeds 0..100 --over-budget\n  tessera-sim campaign --seeds 0..1000 --jobs 2\n  tessera-sim campaign --seeds 0..100 --scenario faults/scenarios/rack-loss.toml\n  tessera-sim campaign --seed 7 --verbose 2> trace.txt\n\nSee docs/SIMULATION.md for how to read a failure and a trace."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the default scenario on one seed (default 1) or on a range of seeds.
    Run(RunArgs),
    /// Run one seed again with every trace event printed to stderr (virtual time, source, event).
    Replay {
        /// The seed to replay, as printed in a `seed=S ...` line.
        seed: u64,
    },
    /// Crash-recovery seeds against the storage engine alone: each seed cuts power to one simulated drive
    /// several times at random points (inside writes, frees and checkpoints), reopens the store and checks
    /// every acknowledged extent byte for byte. Prints `crash seeds=N passed=P failed=F`.
    Crash(CrashArgs),
    /// The config-service scenario: config members replicate membership, epochs and the shard map with
    /// Raft while nodes crash and the network partitions; checks linearizability of config changes,
    /// that a minority cannot change the config, leader failover and rack-failure detection.
    Config(RunArgs),
    /// The metadata scenario: concurrent clients run random POSIX operations (creates, renames across
    /// shards and directories, links, unlinks, rmdirs, readdirs, xattrs...) against metadata shards
    /// replicated with Raft while nodes crash and the network partitions, loses and duplicates; the
    /// history must be linearizable against the POSIX model and the shards consistent after healing.
    /// With --jobs N, seeds run on N threads (each seed is still one deterministic run).
    Meta(MetaArgs),
    /// Metadata throughput against cluster size in simulated time (create, stat, unlink from 8
    /// closed-loop clients per node; 16 shards per node): prints operations per simulated second per
    /// size and the scaling efficiency against the smallest size.
    MetaScale(ScaleArgs),
    /// The data-path scenario: clients write, overwrite, truncate and read files (inline, erasure-coded
    /// or replicated stripes) while nodes crash, the network partitions and up to K failure domains are
    /// lost for good; after healing and rebuild every acknowledged write must read back exactly and
    /// every stripe must be whole, consistent and in distinct failure domains. With --over-budget, K+1
    /// domains are lost and every read must be exact or a clear error. Prints `data seeds=N passed=P
    /// failed=F`.
    Data(DataArgs),
    /// Data-path throughput and rebuild time against cluster size in simulated time (4+2 erasure
    /// coding, two clients per node writing then reading 1 MiB files, then one node lost and rebuilt
    /// by the survivors): prints write and read MB per simulated second and the rebuild time per size.
    DataScale(DataScaleArgs),
    /// Fault-injection campaign (swarm testing): each seed picks the cluster (3-64 nodes, racks,
    /// protection, shards, timeouts), the workload mix (data files checked byte for byte, POSIX
    /// namespace operations checked for linearizability), the fault mix and rates, and the live buggify
    /// sites; a safety phase under faults, then a liveness phase after healing (operations complete,
    /// rebuild finishes, replicas converge) and the checks. A scenario file (TOML, see
    /// faults/scenarios/) fixes any of these choices. With --seeds, seeds run in parallel processes
    /// with a progress bar; failing seeds are printed with their replay command, a JSON summary is
    /// written, and the last line is `campaign seeds=N passed=P failed=F`.
    Campaign(CampaignArgs),
}

#[derive(Args, Debug)]
struct CampaignArgs {
    /// One seed, run in this process (default 1 when neither --seed nor --seeds is given).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Seeds to run: `A..B` (B excluded), `A..=B`, or `N`.
    #[arg(long, value_name = "A..B", value_parser = tessera_faults::campaign::parse_seed_range)]
    seeds: Option<Range<u64>>,
    /// Seeds run at the same time, each in its own process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: u64,
    /// A scenario file (TOML) composing workloads and fault injectors; default: everything from the seed.
    #[arg(long, value_name = "FILE")]
    scenario: Option<std::path::PathBuf>,
    /// Where to write the JSON summary of a campaign (default target/campaign/<name>-<A>-<B>.json).
    #[arg(long, value_name = "PATH")]
    json: Option<std::path::PathBuf>,
    /// Wall-clock seconds one seed may take before it is killed and counted as failed.
    #[arg(long, default_value_t = 900)]
    seed_timeout_s: u64,
    /// Progress display on stderr: auto (a bar on a terminal, lines otherwise), lines or off.
    #[arg(long, default_value = "auto", value_parser = ["auto", "lines", "off"])]
    progress: String,
    /// Print every trace event of a single seed to stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct DataScaleArgs {
    /// Cluster sizes to measure, comma-separated (8 to 1024 nodes).
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    nodes: Vec<u64>,
    /// The seed of every run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct DataArgs {
    #[command(flatten)]
    meta: MetaArgs,
    /// Lose one failure domain more than the protection tolerates.
    #[arg(long)]
    over_budget: bool,
}

#[derive(Args, Debug)]
struct ScaleArgs {
    /// Cluster sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    nodes: Vec<u64>,
    /// The seed of every run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct MetaArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Worker threads for a range of seeds (default 1). Output is printed in seed order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: u64,
}

#[derive(Args, Debug)]
struct CrashArgs {
    /// One seed to run (default 1 when neither --seed nor --seeds is given).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A half-open range of seeds `A..B`; only failing seeds are printed, with their replay command.
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    seeds: Option<Range<u64>>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The seed to run. Default 1 when neither --seed nor --seeds is given.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A half-open range of seeds `A..B` (B excluded): prints one line per seed, then
    /// `seeds=N passed=P failed=F`.
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Print every trace event to stderr.
    #[arg(long)]
    verbose: bool,
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let start: u64 = a.trim().parse().map_err(|e| format!("bad range start {a:?}: {e}"))?;
    let end: u64 = b.trim().parse().map_err(|e| format!("bad range end {b:?}: {e}"))?;
    if start >= end {
        return Err(format!("empty range {s:?}: A must be below B"));
    }
    Ok(start..end)
}

fn report(outcome: &RunOutcome) {
    println!("{}", outcome.line());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay { seed } => {
            let outcome = run_seed(seed, true);
            report(&outcome);
            if outcome.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Config(args) => {
            let range = args.seeds.unwrap_or_else(|| {
                let seed = args.seed.unwrap_or(1);
                seed..seed + 1
            });
            let (mut passed, mut failed) = (0u64, 0u64);
            for seed in range {
                let (result, hash) = run_config_seed(seed, args.verbose);
                println!("{}", config_line(seed, &result, hash));
                if result.passed { passed += 1 } else { failed += 1 }
            }
            println!("config seeds={} passed={passed} failed={failed}", passed + failed);
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Meta(args) => {
            let range = args.run.seeds.unwrap_or_else(|| {
                let seed = args.run.seed.unwrap_or(1);
                seed..seed + 1
            });
            let verbose = args.run.verbose;
            let lines = run_parallel(range, args.jobs, move |seed| {
                let (outcome, hash) = run_meta_history_seed(seed, verbose);
                (outcome.passed, meta_history_line(seed, &outcome, hash))
            });
            let failed = lines.iter().filter(|(passed, _)| !passed).count();
            println!("meta seeds={} passed={} failed={failed}", lines.len(), lines.len() - failed);
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Data(args) => {
            let range = args.meta.run.seeds.unwrap_or_else(|| {
                let seed = args.meta.run.seed.unwrap_or(1);
                seed..seed + 1
            });
            let (verbose, over_budget) = (args.meta.run.verbose, args.over_budget);
            let lines = if range.end - range.start == 1 {
                let seed = range.start;
                let scenario =
                    if over_budget { DataScenario::over_budget(seed) } else { DataScenario::from_seed(seed) };
                let (outcome, hash) = run_data_scenario(scenario, over_budget, verbose);
                let line = data_line(seed, &outcome, hash);
                println!("{line}");
                vec![(outcome.passed, line)]
            } else {
                // Each seed in its own process: a simulation's memory is returned whole when it ends.
                run_parallel(range, args.meta.jobs, move |seed| {
                    let mut command = std::process::Command::new(std::env::current_exe().expect("own path"));
                    command.args(["data", "--seed", &seed.to_string()]);
                    if over_budget {
                        command.arg("--over-budget");
                    }
                    seed_in_process(seed, command)
                })
            };
            let failed = lines.iter().filter(|(passed, _)| !passed).count();
            println!("data seeds={} passed={} failed={failed}", lines.len(), lines.len() - failed);
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Campaign(args) => campaign(args),
        Command::DataScale(args) => {
            let mut base: Option<(u64, f64)> = None;
            for &nodes in &args.nodes {
                match tessera_sim::data_scale::measure(nodes, args.seed) {
                    Ok(r) => {
                        let (n0, t0) = *base.get_or_insert((nodes, r.rebuild_secs));
                        println!(
                            "nodes={} racks={} shards={} clients={} bytes={} write_mb_per_sim_sec={:.0} read_mb_per_sim_sec={:.0} stripes_rebuilt={} rebuilders={} rebuild_sim_secs={:.2} rebuild_time_vs_{}_nodes={:.2}",
                            r.nodes,
                            r.racks,
                            r.shards,
                            r.clients,
                            r.bytes,
                            r.write_mb_per_sec,
                            r.read_mb_per_sec,
                            r.stripes_rebuilt,
                            r.rebuilders,
                            r.rebuild_secs,
                            n0,
                            r.rebuild_secs / t0
                        );
                    }
                    Err(reason) => {
                        println!("nodes={nodes} result=fail reason=\"{reason}\"");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::MetaScale(args) => {
            let mut base: Option<(u64, f64)> = None;
            for &nodes in &args.nodes {
                if nodes == 0 || nodes > 4096 {
                    eprintln!("meta-scale: --nodes takes sizes from 1 to 4096, got {nodes}");
                    return ExitCode::FAILURE;
                }
                match tessera_sim::meta_scale::measure(nodes, args.seed) {
                    Ok(r) => {
                        let per_node = r.ops_per_sec / nodes as f64;
                        let (n0, p0) = *base.get_or_insert((nodes, per_node));
                        println!(
                            "nodes={} shards={} replication={} clients={} ops={} ops_per_sim_sec={:.0} per_node={:.0} efficiency_vs_{}_nodes={:.2}",
                            r.nodes,
                            r.shards,
                            r.replication,
                            r.clients,
                            r.ops,
                            r.ops_per_sec,
                            per_node,
                            n0,
                            per_node / p0
                        );
                    }
                    Err(reason) => {
                        println!("nodes={nodes} result=fail reason=\"{reason}\"");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Crash(args) => {
            let range = args.seeds.unwrap_or_else(|| {
                let seed = args.seed.unwrap_or(1);
                seed..seed + 1
            });
            let (mut passed, mut failed, mut crashes) = (0u64, 0u64, 0u64);
            for seed in range {
                match run_crash_seed(seed) {
                    Ok(report) => {
                        passed += 1;
                        crashes += u64::from(report.crashes);
                    }
                    Err(reason) => {
                        failed += 1;
                        println!("{reason}");
                    }
                }
            }
            println!("crash seeds={} passed={passed} failed={failed} crashes={crashes}", passed + failed);
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Run(args) => match args.seeds {
            Some(range) => {
                let (mut passed, mut failed) = (0u64, 0u64);
                for seed in range {
                    let outcome = run_seed(seed, args.verbose);
                    report(&outcome);
                    if outcome.passed { passed += 1 } else { failed += 1 }
                }
                println!("seeds={} passed={passed} failed={failed}", passed + failed);
                if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            None => {
                let outcome = run_seed(args.seed.unwrap_or(1), args.verbose);
                report(&outcome);
                if outcome.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
        },
    }
}

/// `tessera-sim campaign`: one seed in this process, or a range of seeds in child processes.
fn campaign(args: CampaignArgs) -> ExitCode {
    use tessera_faults::campaign::{CampaignConfig, ProgressMode, run_campaign};
    use tessera_faults::scenario::ScenarioSpec;
    use tessera_sim::swarm::{SwarmScenario, run_swarm, swarm_line};
    let spec = match &args.scenario {
        Some(path) => match ScenarioSpec::load(path) {
            Ok(spec) => spec,
            Err(e) => {
                eprintln!("tessera-sim campaign: {e}");
                return ExitCode::from(2);
            }
        },
        None => ScenarioSpec::swarm(),
    };
    let file = args.scenario.as_ref().map(|p| p.display().to_string());
    let Some(range) = args.seeds else {
        let seed = args.seed.unwrap_or(1);
        let scenario = match SwarmScenario::from_spec(seed, &spec, file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tessera-sim campaign: {e}");
                return ExitCode::from(2);
            }
        };
        if args.verbose {
            eprintln!("{}", scenario.summary());
        }
        let (outcome, hash, _) = run_swarm(&scenario, args.verbose);
        println!("{}", swarm_line(&scenario, &outcome, hash));
        return if outcome.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    };
    // Refuse a scenario file that does not fit some seed before starting anything.
    if let Some(bad) = range.clone().take(64).find_map(|seed| SwarmScenario::from_spec(seed, &spec, None).err()) {
        eprintln!("tessera-sim campaign: {bad}");
        return ExitCode::from(2);
    }
    let json_path = args.json.clone().unwrap_or_else(|| {
        std::path::PathBuf::from(format!("target/campaign/{}-{}-{}.json", spec.name, range.start, range.end))
    });
    let progress = match args.progress.as_str() {
        "lines" => ProgressMode::Lines,
        "off" => ProgressMode::Off,
        _ => ProgressMode::Auto,
    };
    let config = CampaignConfig {
        label: spec.name.clone(),
        seeds: range,
        jobs: args.jobs as usize,
        seed_timeout_s: args.seed_timeout_s,
        json_path: Some(json_path.clone()),
        progress,
    };
    let exe = std::env::current_exe().expect("own path");
    let scenario = args.scenario.clone();
    let command = move |seed: u64| {
        let mut command = std::process::Command::new(&exe);
        command.args(["campaign", "--seed", &seed.to_string()]);
        if let Some(path) = &scenario {
            command.arg("--scenario").arg(path);
        }
        command
    };
    let mut out = std::io::stdout();
    match run_campaign(&config, &command, &mut out) {
        Ok(summary) => {
            eprintln!("summary: {}", json_path.display());
            if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("tessera-sim campaign: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run one seed as a child process (`command` prints the seed's line first) and take its line.
fn seed_in_process(seed: u64, mut command: std::process::Command) -> (bool, String) {
    match command.stderr(std::process::Stdio::null()).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next().unwrap_or("").to_string();
            let passed = out.status.success() && line.contains("result=pass");
            if line.is_empty() {
                (false, format!("seed={seed} result=fail reason=\"no output (exit {:?})\"", out.status.code()))
            } else {
                (passed, line)
            }
        }
        Err(e) => (false, format!("seed={seed} result=fail reason=\"cannot start the seed's process: {e}\"")),
    }
}

/// Run `f` on every seed of `range` on `jobs` threads; print each seed's line in seed order as soon as
/// it and every seed before it are done; return (passed, line) per seed.
fn run_parallel(
    range: Range<u64>,
    jobs: u64,
    f: impl Fn(u64) -> (bool, String) + Send + Sync + 'static,
) -> Vec<(bool, String)> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, mpsc};
    let next = Arc::new(AtomicU64::new(range.start));
    let f = Arc::new(f);
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (next, f, tx, end) = (next.clone(), f.clone(), tx.clone(), range.end);
            std::thread::spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let _ = tx.send((seed, f(seed)));
                }
            })
        })
        .collect();
    drop(tx);
    let mut done = BTreeMap::new();
    let mut printed = range.start;
    let mut lines = Vec::new();
    for (seed, line) in rx {
        done.insert(seed, line);
        while let Some(line) = done.remove(&printed) {
            println!("{}", line.1);
            lines.push(line);
            printed += 1;
        }
    }
    for worker in workers {
        worker.join().expect("seed worker panicked outside the simulation");
    }
    lines
}
