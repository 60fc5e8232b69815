//! Wire codec for the Phoenix Channels protocol.
//!
//! This crate turns WebSocket frames into [`Message`]s and back, for the three
//! encodings Phoenix 1.8 speaks:
//!
//! * **V1 JSON** (vsn `1.0.x`): text frames holding a JSON object.
//! * **V2 JSON** (vsn `2.0.x`, the phoenix.js default): text frames holding a
//!   JSON array `[join_ref, ref, topic, event, payload]`.
//! * **V2 binary**: binary frames with a small length-prefixed header and an
//!   opaque byte payload.
//!
//! A server picks a [`Serializer`] per connection with
//! [`Serializer::from_vsn`] and uses it for every frame. Tools acting as a
//! client use the [`client`] module. The crate performs no I/O and never
//! panics on malformed input: every failure is a [`DecodeError`] or an
//! [`EncodeError`].
//!
//! ```
//! use fawkes_protocol::{Broadcast, Frame, Payload, Serializer};
//!
//! let ser = Serializer::from_vsn(Some("2.0.0")).unwrap();
//! let msg = ser.decode_text(r#"["1","1","room:lobby","phx_join",{}]"#).unwrap();
//! assert_eq!(msg.event, "phx_join");
//!
//! let frame = ser
//!     .encode_broadcast(&Broadcast::new("room:lobby", "news", Payload::empty()))
//!     .unwrap();
//! assert_eq!(frame, Frame::Text(r#"[null,null,"room:lobby","news",{}]"#.into()));
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod client;
mod error;
mod json;
mod message;
mod serializer;
mod v1;
mod v2_binary;
mod v2_json;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_support;

pub use error::{DecodeError, EncodeError, VsnError};
pub use message::{Broadcast, Frame, Message, Payload, PayloadError, Reply};
pub use serializer::Serializer;
