//! The conformance app (APP.md on fawkes) and the transcript replay runner.

pub mod app;
pub mod replay;
