//! A bounded pool of cluster clients. Each client does one operation at a time (the client library is
//! `&mut self`), so the mount keeps several, each with its own transport and client id, and hands one
//! to each kernel request while it runs.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tessera_config::placement::PlacementNode;

use crate::client::{CliError, ClusterClient, ClusterSource};

/// Most clients one mount keeps (each holds a TCP connection per node).
pub const WORKERS_MAX: usize = 64;

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    /// Idle clients, each with the generation of the live-node list it places stripes on.
    idle: Arc<Mutex<Vec<(ClusterClient, u64)>>>,
    permits: Arc<Semaphore>,
    /// The nodes new stripes go to (the live ones, as last learned) and its generation.
    live: Arc<Mutex<(u64, Vec<PlacementNode>)>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("available", &self.permits.available_permits()).finish()
    }
}

/// A client taken from the pool; it goes back when dropped.
pub struct Worker {
    client: Option<ClusterClient>,
    generation: u64,
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
        let live = first.data_client().nodes().to_vec();
        let mut clients = Vec::with_capacity(workers);
        for _ in 1..workers {
            clients.push((first.another().await?, 0));
        }
        clients.push((first, 0));
        Ok(Pool {
            idle: Arc::new(Mutex::new(clients)),
            permits: Arc::new(Semaphore::new(workers)),
            live: Arc::new(Mutex::new((0, live))),
        })
    }

    /// Every `period`, one client asks a node which nodes are dead, and every client stops placing new
    /// stripes on them (a stripe placed on a dead node waits for timeouts before it is written elsewhere).
    pub fn refresh_live_nodes_every(&self, period: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let pool = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let mut w = pool.get().await;
                if !w.refresh_live_nodes().await {
                    continue; // no node answered: keep what is known
                }
                let nodes = w.data_client().nodes().to_vec();
                let mut live = pool.live.lock().expect("live lock");
                if live.1 != nodes {
                    tracing::info!(nodes = nodes.len(), "new stripes go to the live nodes only");
                    *live = (live.0 + 1, nodes);
                }
                w.generation = live.0;
            }
        })
    }

    /// A client, waiting for one to be free.
    pub async fn get(&self) -> Worker {
        let permit = self.permits.clone().acquire_owned().await.expect("the pool's semaphore is never closed");
        let (mut client, mut generation) =
            self.idle.lock().expect("pool lock").pop().expect("a permit means an idle client");
        let live = self.live.lock().expect("live lock");
        if generation != live.0 {
            client.data_client().set_nodes(live.1.clone());
            generation = live.0;
        }
        drop(live);
        Worker { client: Some(client), generation, pool: self.clone(), _permit: permit }
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
            self.pool.idle.lock().expect("pool lock").push((client, self.generation));
        }
    }
}
