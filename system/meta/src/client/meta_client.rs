//! [`MetaClient`]: the I/O shell around [`Router`] and the operation driver.

use core::fmt;

use tessera_env::{Clock, MonoTime, Net, NetError, Rng, WallClock};

use crate::client::ClientError;
use crate::client::config::{ClientConfig, ClientConfigError};
use crate::client::directory::{DirectoryError, ShardDirectory};
use crate::client::router::{CallEvent, Router};
use crate::exec::{Next, OpDriver, ShardAnswer, ShardCall};
use crate::wire::MetaMessage;
use crate::{InodeId, MetaOp, MetaResult};
use tessera_env::recv_or_sleep;

/// Called with the newer shard-map epoch a shard reported; returns the newer directory if the caller
/// has one at hand (e.g. from the node's config cache), `None` otherwise (the client keeps routing
/// with what it has and follows leader hints; the caller may also [`MetaClient::set_directory`]).
pub type RefreshHook = Box<dyn FnMut(u64) -> Option<ShardDirectory> + Send>;

/// A metadata client on one node's environment. One operation at a time (`&mut self`); run several
/// clients (each with its own endpoint and id) for concurrency.
///
/// The client owns its network endpoint: every message received on it is taken to be for the
/// client; anything that is not an answer to the call in flight is dropped.
pub struct MetaClient<C: Clock, W: WallClock, N: Net, R: Rng> {
    clock: C,
    wall: W,
    net: N,
    router: Router<R>,
    refresh: Option<RefreshHook>,
    root: InodeId,
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> fmt::Debug for MetaClient<C, W, N, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaClient")
            .field("local", &self.net.local_id())
            .field("epoch", &self.router.directory().epoch())
            .finish_non_exhaustive()
    }
}

impl<C: Clock, W: WallClock, N: Net, R: Rng> MetaClient<C, W, N, R> {
    /// `client_id` must be unique among the cluster's clients and across restarts of this client
    /// (see [`Router::new`]). The root of paths is [`InodeId::ROOT`] until [`MetaClient::set_root`].
    pub fn new(
        client_id: u64,
        directory: ShardDirectory,
        config: ClientConfig,
        clock: C,
        wall: W,
        net: N,
        rng: R,
    ) -> Result<MetaClient<C, W, N, R>, ClientConfigError> {
        let router = Router::new(client_id, directory, config, rng)?;
        Ok(MetaClient { clock, wall, net, router, refresh: None, root: InodeId::ROOT })
    }

    /// The directory paths are resolved from (the file system's root inode).
    pub fn set_root(&mut self, root: InodeId) {
        self.root = root;
    }

    pub fn root(&self) -> InodeId {
        self.root
    }

    pub fn config(&self) -> &ClientConfig {
        self.router.config()
    }

    pub fn directory(&self) -> &ShardDirectory {
        self.router.directory()
    }

    /// Route with a newer shard map (an older one is ignored: `Ok(false)`).
    pub fn set_directory(&mut self, directory: ShardDirectory) -> Result<bool, DirectoryError> {
        self.router.set_directory(directory)
    }

    /// Install the hook asked for a newer shard map when a shard reports one.
    pub fn set_refresh_hook(&mut self, hook: RefreshHook) {
        self.refresh = Some(hook);
    }

    /// Run one operation to its answer. `Ok(Err(errno))` is the operation's POSIX failure; `Err` means
    /// no answer (see [`ClientError`]; after [`ClientError::Timeout`] the outcome is unknown).
    pub async fn execute(&mut self, op: MetaOp) -> Result<MetaResult, ClientError> {
        let started = self.clock.now();
        let deadline = started + self.router.config().op_timeout();
        let mut driver = OpDriver::new(op, self.wall.unix_time_ns(), self.router.directory().shard_count());
        loop {
            match driver.next() {
                Next::Call { shard, call } => {
                    let expected = answer_kind(&call);
                    let answer = self.call(shard, call, started, deadline).await?;
                    // The driver panics on an answer of the wrong kind; a remote bug must not crash
                    // the client.
                    if answer_kind_of(&answer) != expected {
                        return Err(ClientError::UnexpectedAnswer { shard });
                    }
                    driver.answer(answer);
                }
                Next::Backoff { attempt } => {
                    // The driver counts failed attempts from 1; the schedule from 0.
                    let wait = self.router.op_backoff(attempt.saturating_sub(1));
                    let now = self.clock.now();
                    if now + wait >= deadline {
                        return Err(timeout(None, 0, started, now));
                    }
                    self.clock.sleep(wait).await;
                }
                Next::Done(result) => return Ok(result),
                Next::GiveUp => return Err(ClientError::GaveUp),
            }
        }
    }

    /// Carry one shard call to its answer (see the router's call order).
    async fn call(
        &mut self,
        shard: u16,
        call: ShardCall,
        started: MonoTime,
        deadline: MonoTime,
    ) -> Result<ShardAnswer, ClientError> {
        // An operation whose future was dropped mid-call leaves its call behind: forget it.
        self.router.abandon();
        self.router.begin(shard, call, self.clock.now(), deadline);
        loop {
            while let Some((to, msg)) = self.router.poll_transmit(self.clock.now()) {
                // Loss is normal: a message the endpoint refuses (queue full, unknown node) is one
                // lost on the way, and the attempt times out.
                if let Err(NetError::Closed) = self.net.send(to, msg.encode()).await {
                    self.abandon();
                    return Err(ClientError::Closed);
                }
            }
            if let Some(event) = self.router.poll_event() {
                return match event {
                    CallEvent::Answered(answer) => Ok(answer),
                    CallEvent::Exhausted { shard, attempts } | CallEvent::DeadlineExceeded { shard, attempts } => {
                        Err(timeout(Some(shard), attempts, started, self.clock.now()))
                    }
                    CallEvent::NoSuchShard { shard } => Err(ClientError::NoSuchShard { shard }),
                    CallEvent::Stale { shard } => Err(ClientError::StaleClientId { shard }),
                };
            }
            self.refresh_directory();
            let until = self.router.poll_timeout().expect("a call in flight that sends nothing waits");
            let wait = until.saturating_since(self.clock.now());
            match recv_or_sleep(&self.net, &self.clock, wait).await {
                Some(Ok((from, bytes))) => {
                    // Undecodable bytes are dropped: the network may carry anything.
                    if let Ok(msg) = MetaMessage::decode(&bytes) {
                        self.router.handle_message(from, msg, self.clock.now());
                    }
                }
                Some(Err(NetError::Closed)) => {
                    self.abandon();
                    return Err(ClientError::Closed);
                }
                Some(Err(_)) | None => {}
            }
            self.router.handle_timeout(self.clock.now());
        }
    }

    /// Ask the refresh hook for a newer directory if a shard reported one.
    fn refresh_directory(&mut self) {
        let Some(epoch) = self.router.take_refresh() else { return };
        let Some(hook) = &mut self.refresh else { return };
        if let Some(directory) = hook(epoch) {
            // A directory of another shard count is a caller bug the hook cannot fix here; keep routing
            // with the current one (leader hints still work).
            let _ = self.router.set_directory(directory);
        }
    }

    /// Drop the call in flight (its outcome stays unknown).
    fn abandon(&mut self) {
        self.router.abandon();
    }
}

fn timeout(shard: Option<u16>, attempts: u32, started: MonoTime, now: MonoTime) -> ClientError {
    let elapsed_ms = u64::try_from(now.saturating_since(started).as_millis()).unwrap_or(u64::MAX);
    ClientError::Timeout { shard, attempts, elapsed_ms }
}

/// Which kind of [`ShardAnswer`] a call is answered with: 0 apply, 1 read, 2 begin.
fn answer_kind(call: &ShardCall) -> u8 {
    match call {
        ShardCall::Apply { .. } => 0,
        ShardCall::Read { .. } => 1,
        ShardCall::Begin { .. } => 2,
    }
}

fn answer_kind_of(answer: &ShardAnswer) -> u8 {
    match answer {
        ShardAnswer::Applied(_) => 0,
        ShardAnswer::Read(_) => 1,
        ShardAnswer::Decided(_) => 2,
    }
}
