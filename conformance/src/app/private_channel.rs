//! PrivateChannel: every join is refused with `{reason: "unauthorized"}`.

use fawkes::prelude::*;

/// Refuses every join.
#[derive(Debug, Default)]
pub struct PrivateChannel;

impl Channel for PrivateChannel {
    async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelSocket) -> JoinResult {
        Err(ChannelError::reason("unauthorized"))
    }
}
