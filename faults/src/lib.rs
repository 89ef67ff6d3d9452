//! Fault injection for Tessera's simulation campaigns (DESIGN.md section 9, STYLE.md rules 7-12).
//!
//! - [`kind`]: the fault models by name;
//! - [`target`]: the fault surface a cluster offers (the simulator implements it);
//! - [`nemesis`]: the injectors, composed by a weighted mix, with the fault budget of the safety phase;
//! - [`scenario`]: scenario files (TOML) that compose workloads and injectors;
//! - [`campaign`]: the runner that replays many seeds in parallel child processes.

pub mod campaign;
pub mod kind;
pub mod nemesis;
pub mod scenario;
pub mod target;

pub use kind::FaultKind;
pub use nemesis::{FaultMix, Nemesis, NemesisConfig};
pub use target::{FaultTarget, LinkFault};
