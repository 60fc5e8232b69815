//! PrivateChannel: every join is refused with `{reason: "unauthorized"}`.

use fawkes::{Channel, ChannelSocket, HandleResult, JoinResult, Payload};
use serde_json::json;

/// Refuses every join.
#[derive(Debug, Default)]
pub struct PrivateChannel;

impl Channel for PrivateChannel {
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        _socket: &mut ChannelSocket,
    ) -> JoinResult {
        JoinResult::Error(Payload::Json(json!({"reason": "unauthorized"})))
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        _socket: &mut ChannelSocket,
    ) -> HandleResult {
        panic!("PrivateChannel has no handle_in for {event:?}")
    }
}
