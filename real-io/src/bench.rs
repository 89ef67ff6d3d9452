//! A real cluster as a workload target (`tessera bench WORKLOAD --target cluster:HOST:PORT`): one
//! client per workload process, each with its own transport (its own client id and connections), the
//! processes running as tokio tasks on one runtime, their operations mapped onto the data client by the
//! same executor the simulated cluster uses ([`tessera_workloads::cluster::ClusterExec`]). Every run
//! works in a fresh directory `/.bench-<random>` of the chosen file system, removed afterwards (kept if
//! an operation read back wrong bytes, or with `--keep`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_env::{Clock, DetRng};
use tessera_meta::InodeId;
use tessera_workloads::cluster::ClusterExec;
use tessera_workloads::metrics::{PhaseReport, RunReport};
use tessera_workloads::run::{ProgressSink, RunOptions, Target, TargetError, finish_phase, run_process, run_workload};
use tessera_workloads::workload::{Params, Phase, Process, Workload};

use crate::client::{ClusterClient, ClusterSource, data_client, load_spec};
use crate::clock::{RealClock, RealWallClock};
use crate::net::TcpNet;
use crate::rng::os_seed;

/// Most workload processes one run may have against a real cluster (each holds a connection per node).
pub const PROCS_MAX: usize = 1024;
/// How often the driver copies the completed-operation count into the caller's counter.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

type Exec = ClusterExec<RealClock, RealWallClock, TcpNet, DetRng>;

/// Run `workload` against the cluster `source` names, in file system `fs`.
#[allow(clippy::too_many_arguments)]
pub fn run_cluster_bench(
    source: &ClusterSource,
    fs: &str,
    workload: &dyn Workload,
    params: &Params,
    options: &RunOptions,
    keep: bool,
    sink: &dyn ProgressSink,
    progress: &AtomicU64,
) -> Result<RunReport, String> {
    let procs = workload.process_count(params);
    if procs > PROCS_MAX {
        return Err(format!("{}: {procs} processes, a real-cluster run takes at most {PROCS_MAX}", workload.name()));
    }
    let runtime = crate::cli::client_runtime().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut admin = ClusterClient::connect(source).await.map_err(|e| e.to_string())?;
        admin.enter_fs(fs).await.map_err(|e| e.to_string())?;
        let run_dir = format!("/.bench-{:08x}", os_seed() as u32);
        admin.mkdir(&run_dir, false).await.map_err(|e| e.to_string())?;
        let root = admin.stat(&run_dir).await.map_err(|e| e.to_string())?.ino;
        let clock = RealClock::new();
        let mut execs = Vec::with_capacity(procs);
        for _ in 0..procs {
            execs.push(Some(new_exec(source, &clock, root).await?));
        }
        let describe =
            format!("cluster:{} ({} nodes, {})", source_name(source), admin.spec.members.len(), admin.spec.protection);
        let mut target = RealCluster { clock, execs, describe };
        let report =
            run_workload(&mut target, workload, params, options, sink, progress).await.map_err(|e| e.to_string());
        let wrong = report.as_ref().map(|r| r.phases.iter().any(|p| p.failures > 0)).unwrap_or(true);
        if keep || wrong {
            eprintln!("kept the run directory {fs}:{run_dir}");
        } else if let Err(e) = admin.remove(&run_dir, true, &mut |_| {}).await {
            eprintln!("could not remove the run directory {fs}:{run_dir}: {e}");
        }
        report
    })
}

fn source_name(source: &ClusterSource) -> String {
    match source {
        ClusterSource::Dir(d) => d.display().to_string(),
        ClusterSource::Address(a) => a.clone(),
    }
}

/// One process's client: its own transport and ids, the run's shared clock, paths from `root`.
async fn new_exec(source: &ClusterSource, clock: &RealClock, root: InodeId) -> Result<Exec, String> {
    let (spec, transport, id) = load_spec(source).await.map_err(|e| e.to_string())?;
    let mut rng = DetRng::from_seed(os_seed());
    let client = data_client(&spec, &transport, id, clock, &mut rng, 60_000).map_err(|e| e.to_string())?;
    Ok(ClusterExec::new(client, clock.clone(), root))
}

struct RealCluster {
    clock: RealClock,
    execs: Vec<Option<Exec>>,
    describe: String,
}

impl Target for RealCluster {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    /// Every process runs as a tokio task; the phase lasts until the last one is done.
    async fn run_phase(
        &mut self,
        index: usize,
        phase: &Phase,
        procs: Vec<Box<dyn Process>>,
        options: &RunOptions,
        progress: &AtomicU64,
    ) -> Result<(Vec<Box<dyn Process>>, PhaseReport), TargetError> {
        if procs.len() != self.execs.len() {
            return Err(TargetError::Failed(format!("{} processes for {} clients", procs.len(), self.execs.len())));
        }
        let done_ops = Arc::new(AtomicU64::new(0));
        let started_ns = self.clock.now().as_nanos();
        let mut tasks = Vec::with_capacity(procs.len());
        for (slot, mut process) in self.execs.iter_mut().zip(procs) {
            let mut exec =
                slot.take().ok_or_else(|| TargetError::Failed("a client was lost by an earlier phase".into()))?;
            let (phase, options, done_ops, clock) =
                (phase.clone(), options.clone(), done_ops.clone(), self.clock.clone());
            tasks.push(tokio::spawn(async move {
                let recorder =
                    run_process(&mut exec, process.as_mut(), index, &phase, started_ns, &options, &done_ops).await;
                (exec, process, recorder, clock.now().as_nanos())
            }));
        }
        let mut all = Box::pin(futures::future::join_all(tasks));
        let results = loop {
            tokio::select! {
                results = &mut all => break results,
                () = tokio::time::sleep(PROGRESS_EVERY) => progress.store(done_ops.load(Ordering::Relaxed), Ordering::Relaxed),
            }
        };
        progress.store(done_ops.load(Ordering::Relaxed), Ordering::Relaxed);
        let done = results
            .into_iter()
            .map(|result| result.map_err(|e| TargetError::Failed(format!("a client task failed: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(finish_phase(phase, options, started_ns, &mut self.execs, done))
    }
}

/// `tessera bench`'s `cluster:HOST:PORT` target.
#[derive(Debug, Clone, Copy)]
pub struct RealClusterRunner;

impl tessera_workloads::cli::ClusterRunner for RealClusterRunner {
    fn run(
        &self,
        workload: &dyn Workload,
        params: &Params,
        options: &RunOptions,
        address: &str,
        fs: &str,
        keep: bool,
        sink: &dyn ProgressSink,
        progress: &Arc<AtomicU64>,
    ) -> Result<RunReport, String> {
        let source = ClusterSource::Address(address.to_string());
        run_cluster_bench(&source, fs, workload, params, options, keep, sink, progress)
    }
}
