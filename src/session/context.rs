//! What every channel of one session shares.

use std::sync::Arc;

use fawkes_protocol::Serializer;

use super::{Outbound, SessionControl};
use crate::presence::Presence;
use crate::pubsub::PubSub;
use crate::state::AppState;

/// The session-wide handles a channel task needs.
#[derive(Clone, Debug)]
pub(crate) struct SessionContext {
    pub(crate) serializer: Serializer,
    pub(crate) outbound: Outbound,
    pub(crate) pubsub: PubSub,
    pub(crate) presence: Option<Presence>,
    /// The socket assigns as a compact slice (a one-entry map would cost a
    /// whole B-tree node per connection).
    pub(crate) assigns: Arc<[(String, serde_json::Value)]>,
    pub(crate) control: SessionControl,
    /// The socket id (`Connected::id`), if it has one.
    pub(crate) id: Option<Arc<str>>,
    /// The endpoint's application state.
    pub(crate) state: AppState,
}
