//! `fawkes-replay`: Phoenix Channels transcripts and what is done with them.
//!
//! Replays the recorded Phoenix transcripts (`shared/conformance/`, format and
//! rules in its `APP.md`) against any server speaking the Phoenix Channels
//! protocol over HTTP and WebSocket, and reports whether the server answered
//! as the recording did.
//!
//! - [`transcript`]: the file format and its grouping into actions;
//! - [`normalize`]: JSON comparison with the `phx_ref`/token bijection;
//! - [`expect`]: per-connection expectation queues;
//! - [`ws`] / [`http`]: the client transports;
//! - [`longpoll`]: LongPoll polls matched as one message stream per session;
//! - [`runner`]: replaying one transcript;
//! - [`report`]: running many and printing the results;
//! - [`record`]: the recording proxy that writes transcripts;
//! - [`equivalence`]: whether two transcripts record the same conversation.

pub mod equivalence;
pub mod expect;
pub mod http;
pub mod longpoll;
pub mod normalize;
pub mod record;
pub mod report;
pub mod runner;
pub mod transcript;
pub mod ws;

#[cfg(test)]
mod tests;

pub use report::{collect, run_files, run_files_with_context, Summary};
pub use runner::{run_transcript, Failure, RunConfig};
pub use transcript::Transcript;
