//! The endpoint-wide services a session is handed when it starts: it uses
//! these and nothing else of the endpoint.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::presence::Presence;
use crate::pubsub::PubSub;

/// What every session of an endpoint shares.
#[derive(Clone, Debug)]
pub(crate) struct Services {
    /// Broadcasts and subscriptions (clustered or not).
    pub(crate) pubsub: PubSub,
    /// Presence, when the endpoint enables it.
    pub(crate) presence: Option<Presence>,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
    /// Every connection's task (HTTP, and the websocket or longpoll session
    /// after it), so shutdown waits for their close frames. The transports
    /// spawn into it; a session itself never does.
    pub(crate) tasks: TaskTracker,
}
