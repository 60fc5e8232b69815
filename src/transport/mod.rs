//! Transports: adapters that move frames between the network and a
//! [`crate::session`]. They know HTTP and websockets, not Phoenix.

pub(crate) mod longpoll;
pub(crate) mod websocket;
