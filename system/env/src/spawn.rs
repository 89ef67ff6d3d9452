use core::future::Future;
use core::pin::Pin;

/// A task handed to [`Spawn`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts concurrent tasks on this node.
///
/// Semantics: a spawned task runs concurrently with its spawner on the same node, until it completes or
/// the node stops. When a node crashes, all its tasks stop at their current await point and never run
/// again (their memory is gone); a restarted node starts from scratch. Tasks have no return value: results
/// travel over channels the caller sets up. `name` is for traces and logs.
pub trait Spawn: Clone + Send + Sync + 'static {
    fn spawn(&self, name: &'static str, task: BoxTask);
}
