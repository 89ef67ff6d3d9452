//! The real environment: Tessera's environment doors ([`tessera_env`]) over the operating system.
//!
//! - [`FileDisk`]: a [`tessera_env::Disk`] over a regular file or block device, `O_DIRECT` where the file
//!   system allows, `fdatasync` on flush, fenced after a failed write or flush.
//! - [`RealClock`] / [`RealWallClock`]: the monotonic and wall clocks.
//! - [`TokioSpawn`]: tasks on a tokio runtime.
//! - [`os_seed`] / [`os_seeded_rng`]: the one place that reads OS randomness.
//!
//! The same disk conformance suite (`tessera_env::conformance`) runs against [`FileDisk`] and the
//! simulated disk (`tests/conformance.rs`).

mod aligned;
pub mod bench;
pub mod cli;
pub mod client;
mod clock;
mod file_disk;
pub mod fuse;
pub mod local;
pub mod net;
pub mod node;
pub mod observe;
mod rng;
mod spawn;

pub use clock::{RealClock, RealWallClock};
pub use file_disk::{FileDisk, FileDiskError, IoMode, MIN_CAPACITY_BYTES};
pub use net::{
    ENDPOINT_BITS, SocketIo, TcpNet, TokioIo, Transport, TransportConfig, TransportError, TransportStats, base_of,
};
pub use rng::{os_seed, os_seeded_rng};
pub use spawn::TokioSpawn;
