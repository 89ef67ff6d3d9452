//! Receiving on a [`Net`] endpoint without a runtime: with a timeout (poll the endpoint's `recv` and
//! the clock's `sleep` side by side), or only what is already waiting. Every receive loop of the
//! cluster logic (config members and agents, shard hosts, clients) uses these.

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use crate::{Clock, Net, NetError, NodeId};

/// The next message, or `None` once `wait` has passed without one. Cancel-safe as far as `Net::recv`
/// is: a message is taken off the endpoint only when it is returned. A message that is ready wins
/// over an expired sleep.
pub async fn recv_or_sleep<C: Clock, N: Net>(
    net: &N,
    clock: &C,
    wait: Duration,
) -> Option<Result<(NodeId, Vec<u8>), NetError>> {
    let mut recv = pin!(net.recv());
    let mut sleep = pin!(clock.sleep(wait));
    poll_fn(|cx| {
        if let Poll::Ready(msg) = recv.as_mut().poll(cx) {
            return Poll::Ready(Some(msg));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A message already waiting on the endpoint, without waiting.
pub fn try_recv<N: Net>(net: &N) -> Option<Result<(NodeId, Vec<u8>), NetError>> {
    let mut recv = pin!(net.recv());
    match recv.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(message) => Some(message),
        Poll::Pending => None,
    }
}
