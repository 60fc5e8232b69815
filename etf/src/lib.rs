//! Erlang's External Term Format for fawkes: what Phoenix nodes put on Redis
//! and inside `Phoenix.Token`s.
//!
//! * [`decode`] / [`decode_with`]: bytes from the network to a [`Term`],
//!   bounded on hostile input (see the `decode` module for why this is our own
//!   decoder rather than the `eetf` crate);
//! * [`encode`]: a [`Term`] to the bytes OTP 25 or OTP 26 would write;
//! * [`json`]: the mapping between terms and JSON, as Jason does it;
//! * [`pubsub_redis`]: the phoenix_pubsub_redis 3.x message, both ways.
//!
//! The crate performs no I/O and never panics on input: every failure is a
//! typed error.
//!
//! ```
//! use fawkes_etf::{decode, encode, EncodeOptions, Term};
//!
//! let bytes = encode(&Term::atom("nil"), &EncodeOptions::default()).unwrap();
//! assert_eq!(bytes, [131, 100, 0, 3, b'n', b'i', b'l']);
//! assert_eq!(decode(&bytes).unwrap(), Term::atom("nil"));
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

mod decode;
mod encode;
mod error;
pub mod json;
pub mod pubsub_redis;
mod tags;
mod term;

pub use decode::{decode, decode_with, Limits};
pub use encode::{encode, sorted_map, AtomEncoding, EncodeOptions};
pub use error::{DecodeError, EncodeError, NoJsonForm};
pub use term::{term_cmp, BigInt, Opaque, OpaqueKind, Term};
