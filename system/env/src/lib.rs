//! The environment: the only doors from Tessera's cluster logic to the world.
//!
//! Everything in `system/` touches time, disks, the network, randomness and task spawning only through
//! the traits in this crate. `tessera-sim` implements them deterministically on one seed; `tessera-real-io`
//! implements them over real files, TCP and the OS clock. Both must honour the semantics written on each
//! trait, and both pass the same conformance suite ([`conformance`], feature `conformance`).
//!
//! Call order and ownership: a node is handed one value of each door when it boots. It never reaches the OS
//! by any other path (clippy's `disallowed-methods`/`disallowed-types` in `system/clippy.toml` enforce it).
//!
//! The simulator's fault hooks and coverage marks, [`buggify!`] and [`mark!`], live here too ([`hooks`],
//! feature `sim-hooks`; without it they compile to `false` and `()`).

mod clock;
mod disk;
mod net;
mod recv;
mod rng;
mod spawn;

#[cfg(feature = "conformance")]
pub mod conformance;

pub mod hooks;

#[cfg(all(test, feature = "sim-hooks"))]
mod tests_hooks;

pub use clock::{Clock, MonoTime, WallClock};
pub use disk::{Disk, DiskError, SECTOR_SIZE_BYTES, check_io_range};
pub use net::{MAX_MESSAGE_BYTES, Net, NetError, NodeId};
pub use recv::{recv_or_sleep, try_recv};
pub use rng::{DetRng, Rng};
pub use spawn::{BoxTask, Spawn};
