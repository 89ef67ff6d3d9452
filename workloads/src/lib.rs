//! Workload replays against any target (DESIGN.md section 9): SWBUILD-like, EDA-like, VDA-like and
//! IO500-like workloads, each a list of phases run by client processes, measured per operation and
//! checked byte for byte in verify mode.
//!
//! - [`op`]: the operations, their outcomes, and the byte pattern every write follows;
//! - [`workload`]: the [`workload::Workload`] and [`workload::Process`] traits;
//! - [`run`]: the per-process loop, the [`run::Target`] trait, a whole run;
//! - [`metrics`]: histograms, time series and reports;
//! - [`suite`]: the workloads;
//! - [`dir`]: the target for any directory (`std::fs`);
//! - [`cluster`]: the executor over a Tessera cluster's data client, shared by the simulated and the real
//!   cluster;
//! - [`memfs`]: an in-memory target with a virtual clock, the reference for tests;
//! - [`report`]: the results table, JSON, CSV and the SVG plot;
//! - [`cli`]: the `bench` command line, shared by `tessera-bench` (and later `tessera bench`).
//!
//! Everything a run on the simulated cluster touches ([`op`], [`workload`], [`run`], [`metrics`], [`suite`],
//! [`cluster`]) is deterministic: choices come from [`op::WorkRng`], time from the target's
//! [`run::Executor`].

pub mod cli;
pub mod cluster;
pub mod dir;
pub mod memfs;
pub mod metrics;
pub mod op;
pub mod report;
pub mod run;
pub mod suite;
pub mod workload;
