//! The conformance app (APP.md on fawkes); the transcript replay runner it
//! is checked with lives in `fawkes-replay` and is re-exported here.

pub mod app;
pub use fawkes_replay as replay;
