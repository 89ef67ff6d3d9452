//! A bounded pool of cluster clients. Each client does one operation at a time (the client library is
//! `&mut self`), so the mount keeps several, each with its own transport and client id, and hands one
//! to each kernel request while it runs.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::{CliError, ClusterClient, ClusterSource};

/// Most clients one mount keeps (each holds a TCP connection per node).
pub const WORKERS_MAX: usize = 64;

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    idle: Arc<Mutex<Vec<ClusterClient>>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("available", &self.permits.available_permits()).finish()
    }
}

/// A client taken from the pool; it goes back when dropped.
pub struct Worker {
    client: Option<ClusterClient>,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Pool {
    /// `workers` clients of the cluster `source` names, each inside file system `fs`.
    pub async fn connect(source: &ClusterSource, fs: &str, workers: usize) -> Result<Pool, CliError> {
        if workers == 0 || workers > WORKERS_MAX {
            return Err(CliError::Usage(format!("--workers must be 1..={WORKERS_MAX}, not {workers}")));
        }
        let mut first = ClusterClient::connect(source).await?;
        first.enter_fs(fs).await?;
        let mut clients = Vec::with_capacity(workers);
        for _ in 1..workers {
            clients.push(first.another().await?);
        }
        clients.push(first);
        Ok(Pool { idle: Arc::new(Mutex::new(clients)), permits: Arc::new(Semaphore::new(workers)) })
    }

    /// Every `period`, each client in turn asks a node which nodes are dead and stops placing new stripes
    /// on them (a stripe placed on a dead node waits for timeouts before it is written elsewhere).
    pub fn refresh_live_nodes_every(&self, period: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let pool = self.clone();
        let workers = self.permits.available_permits();
        tokio::spawn(async move {
            loop {
                for _ in 0..workers {
                    tokio::time::sleep(period / workers as u32).await;
                    let mut w = pool.get().await;
                    w.refresh_live_nodes().await;
                }
            }
        })
    }

    /// A client, waiting for one to be free.
    pub async fn get(&self) -> Worker {
        let permit = self.permits.clone().acquire_owned().await.expect("the pool's semaphore is never closed");
        let client = self.idle.lock().expect("pool lock").pop().expect("a permit means an idle client");
        Worker { client: Some(client), pool: self.clone(), _permit: permit }
    }
}

impl Deref for Worker {
    type Target = ClusterClient;
    fn deref(&self) -> &ClusterClient {
        self.client.as_ref().expect("present until drop")
    }
}

impl DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut ClusterClient {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.idle.lock().expect("pool lock").push(client);
        }
    }
}
