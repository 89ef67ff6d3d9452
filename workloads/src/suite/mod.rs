//! The workloads, by the name the command line uses.

use crate::workload::Workload;

pub mod eda;
pub mod io500;
pub mod ior;
pub mod mdtest;
pub mod swbuild;
pub mod vda;

/// Every workload name, in the order `--help` lists them.
pub const NAMES: [&str; 8] = ["swbuild", "eda", "vda", "ior-easy", "ior-hard", "mdtest-easy", "mdtest-hard", "io500"];

/// A workload that cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    #[error("unknown workload {name:?}: expected one of {}", NAMES.join(", "))]
    Unknown { name: String },
    #[error("{workload} configuration: {message}")]
    Config { workload: String, message: String },
}

/// The workload called `name`, configured by the TOML text `config` (`None`: its built-in defaults).
pub fn by_name(name: &str, config: Option<&str>) -> Result<Box<dyn Workload>, SuiteError> {
    match name {
        "swbuild" => swbuild::Swbuild::from_config(config),
        "eda" => eda::Eda::from_config(config),
        "vda" => vda::Vda::from_config(config),
        "ior-easy" => ior::IorEasy::from_config(config),
        "ior-hard" => ior::IorHard::from_config(config),
        "mdtest-easy" => mdtest::MdtestEasy::from_config(config),
        "mdtest-hard" => mdtest::MdtestHard::from_config(config),
        "io500" => io500::Io500::from_config(config),
        _ => Err(SuiteError::Unknown { name: name.to_string() }),
    }
}
