//! Optimistic planning of cross-shard operations (see `crate::exec`). STUB: types only; issue 4.

use serde::{Deserialize, Serialize};

/// A key the planner reads from a shard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReadKey {}

/// A key's value as read, what a plan's expectations compare against at prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {}

/// A cross-shard operation's plan: the coordinator and each shard's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnPlan {}
