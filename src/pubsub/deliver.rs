//! The seam between the fan-out and whoever subscribed: pubsub defines what
//! it needs from a subscriber, and the session implements it, so pubsub
//! depends on neither sessions nor channels.

use fawkes_protocol::Broadcast;

use super::WireFrame;

/// Where the fan-out hands a broadcast. Every method must return without
/// waiting: fan-out never blocks on one subscriber.
pub(crate) trait Deliver: Send + Sync + 'static {
    /// Queue an already encoded broadcast for the client (the fastlane).
    fn deliver_frame(&self, frame: WireFrame);

    /// Hand a broadcast the channel `channel_id` intercepts to that
    /// channel's `handle_out`.
    fn deliver_intercepted(&self, channel_id: u64, broadcast: &Broadcast);

    /// A `disconnect` arrived on the socket's id topic: close the socket.
    fn deliver_disconnect(&self);
}
