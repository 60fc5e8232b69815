//! The endpoint-wide services a session is handed when it starts: it uses
//! these and nothing else of the endpoint.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::presence::Presence;
use crate::pubsub::PubSub;

use super::drain::Drain;

/// What every session of an endpoint shares.
#[derive(Clone, Debug)]
pub(crate) struct Services {
    /// Broadcasts and subscriptions (clustered or not).
    pub(crate) pubsub: PubSub,
    /// Presence, when the endpoint enables it.
    pub(crate) presence: Option<Presence>,
    /// Cancelled when the server starts shutting down: it stops taking
    /// clients (`/ready` answers 503) and starts draining.
    pub(crate) shutdown: CancellationToken,
    /// What ends the sessions, in batches (see [`Drain`]).
    pub(crate) drain: Arc<Drain>,
    /// Every connection's task (HTTP, and the websocket or longpoll session
    /// after it), so shutdown waits for their close frames. The transports
    /// spawn into it; a session itself never does.
    pub(crate) tasks: TaskTracker,
    /// The application's state, for connect callbacks and channels.
    pub(crate) state: crate::state::AppState,
}
