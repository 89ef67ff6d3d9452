//! [`TokioSpawn`]: the [`Spawn`] door over a tokio runtime.

use tessera_env::{BoxTask, Spawn};
use tokio::runtime::Handle;

/// Spawns tasks on one tokio runtime. The task is detached (its `JoinHandle` is dropped): results travel
/// over channels, as the [`Spawn`] contract says. `name` is not passed to tokio (task names need
/// `tokio_unstable`); it is kept for the day tracing spans wrap tasks.
#[derive(Debug, Clone)]
pub struct TokioSpawn {
    handle: Handle,
}

impl TokioSpawn {
    /// Spawn onto the given runtime.
    pub fn new(handle: Handle) -> TokioSpawn {
        TokioSpawn { handle }
    }

    /// Spawn onto the runtime this is called from. Panics outside a tokio runtime.
    pub fn current() -> TokioSpawn {
        TokioSpawn { handle: Handle::current() }
    }
}

impl Spawn for TokioSpawn {
    fn spawn(&self, _name: &'static str, task: BoxTask) {
        drop(self.handle.spawn(task));
    }
}
