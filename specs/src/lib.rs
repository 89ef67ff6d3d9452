//! Executable specifications: reference models and checkers that decide whether a run was correct.
//!
//! Each checker is pure: it is fed what the system under test was asked to do and what it acknowledged,
//! then shown what the system holds afterwards, and answers with the list of violations. Nothing here
//! depends on how the system is built, so the same checker judges a simulated run and a real one.

pub mod config_history;
pub mod durability;
pub mod linearizability;
pub mod posix;
pub mod posix_history;
pub mod txn_model;
