//! The endpoint-wide services a session is handed when it starts: it uses
//! these and nothing else of the endpoint.

use tokio_util::sync::CancellationToken;

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
}
