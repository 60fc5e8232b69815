//! fawkes: a Phoenix Channels compatible real-time server.
//!
//! The crate is laid out the way a message travels:
//! [`endpoint`] accepts HTTP and mounts sockets, a [`transport`] moves frames
//! between the network and a [`session`], the session routes messages to
//! [`channel`] tasks, channels publish through [`pubsub`], and [`presence`]
//! tracks who is on a topic. [`socket`] holds what a mounted socket is
//! configured with (connect callback, channel routes, options).

pub mod channel;
pub mod endpoint;
// Also in unit tests: `fuzzing::smoke` runs the fuzz entry points on
// random inputs in every `cargo test` (the real fuzzing is `fuzz/`).
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod presence;
pub mod pubsub;
pub mod session;
pub mod socket;
mod state;
pub mod testing;
pub mod token;
pub mod transport;

pub use channel::{
    noreply, reply, reply_error, reply_ok, stop, stop_with_reply, Channel, ChannelError,
    ChannelSocket, HandleResult, Handled, InfoError, InfoSender, JoinResult, PushError, Reply,
    ReplyHandle, StopReason, TerminateReason,
};
pub use endpoint::{Endpoint, EndpointBuilder};
pub use fawkes_protocol::{Payload, PayloadError, Serializer};
pub use pubsub::PubSub;
pub use socket::{ConnectInfo, ConnectRefused, Connected, Socket, SocketOptions};
pub use state::AppState;

/// What a channel module needs, in one `use fawkes::prelude::*;`.
pub mod prelude {
    pub use crate::{
        noreply, reply, reply_error, reply_ok, stop, stop_with_reply, Channel, ChannelError,
        ChannelSocket, HandleResult, Handled, JoinResult, Payload, Reply, StopReason,
        TerminateReason,
    };
}
