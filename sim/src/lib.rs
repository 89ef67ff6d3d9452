//! Deterministic simulation of Tessera.
//!
//! A run is a function of one 64-bit seed (DESIGN.md section 9): the seed seeds madsim's scheduler and a
//! [`tessera_env::DetRng`] from which every simulated component forks its own generator. The simulated
//! doors ([`SimDisk`], [`SimNet`], [`SimClock`], [`SimWallClock`], [`SimSpawn`]) implement the traits of
//! `tessera-env`; [`Cluster`] runs nodes on them; [`scenario`] holds the default run and its checker;
//! [`run_seed`] runs one seed. Every event goes through one [`Trace`], whose hash proves determinism.
//! See docs/SIMULATION.md.

pub mod bench;
pub mod cluster;
pub mod config_scenario;
pub mod crash;
pub mod data_scale;
pub mod data_scenario;
pub mod disk;
pub mod env;
pub mod meta_scale;
pub mod meta_scenario;
pub mod meta_support;
pub mod net;
pub mod outages;
mod run;
pub mod scenario;
pub mod swarm;
pub mod trace;

pub use cluster::{Cluster, NodeEnv, NodeSpec};
pub use crash::{CrashSeedReport, crash_replay_command, run_crash_seed};
pub use disk::{DiskModel, DiskStats, SimDisk};
pub use env::{SimClock, SimSpawn, SimWallClock};
pub use net::{LinkConfig, NetConfig, NetStats, SimNet, SimNetwork};
pub use run::{RunOutcome, TIME_LIMIT, replay_command, run_config, run_seed, run_seed_with_store};
pub use trace::Trace;
