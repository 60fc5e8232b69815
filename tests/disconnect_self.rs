//! End-to-end: a channel that broadcasts `disconnect` on its own socket's
//! id and then replies. As in Phoenix, the socket stops first: the client
//! gets the close (1001), never the reply; frames queued before the
//! `disconnect` still arrive.

mod support;

use fawkes::prelude::*;
use fawkes::{ConnectInfo, Connected, Endpoint, PubSub, Socket};
use serde_json::json;
use support::{Client, Server};

/// `kick_self` pushes `before`, broadcasts `disconnect` on the socket's id,
/// then replies.
struct KickChannel {
    pubsub: PubSub,
}

impl Channel for KickChannel {
    async fn join(&mut self, _: &str, _: Payload, _: &mut ChannelSocket) -> JoinResult {
        Ok(Payload::empty())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        if event == "kick_self" {
            let id = format!("users_socket:{}", socket.assign_str("user").unwrap_or(""));
            let _ = socket.push("before", Payload::Json(json!({"queued": "first"})));
            self.pubsub.broadcast(&id, "disconnect", Payload::empty());
        }
        reply_ok(Payload::Json(json!({"replied": true})))
    }
}

#[tokio::test]
async fn the_socket_stops_before_the_reply_of_the_callback_that_disconnected_it() {
    let builder = Endpoint::builder();
    let pubsub = builder.pubsub().clone();
    let socket = Socket::new()
        .connect(|info: ConnectInfo| async move {
            let user = info.param("user").unwrap_or("anon").to_owned();
            let mut connected = Connected {
                id: Some(format!("users_socket:{user}")),
                ..Connected::default()
            };
            connected.assigns.insert("user".into(), json!(user));
            Ok(connected)
        })
        .channel("room:*", move || KickChannel {
            pubsub: pubsub.clone(),
        });
    let server = Server::start_endpoint(builder.socket("/socket", socket).build()).await;

    // Repeated: a reply racing the close would slip through now and then.
    for round in 0..20 {
        let mut client = Client::connect(&server.url("vsn=2.0.0&user=alice")).await;
        client.join("room:kick", "1").await;
        client
            .send_json(json!(["1", "2", "room:kick", "kick_self", {}]))
            .await;
        let before = client.recv_json().await;
        assert_eq!(before[3], "before", "round {round}: {before}");
        // Next: the close, with no reply in between.
        let close = client.recv_close_strict().await;
        assert_eq!(close, Some(1001), "round {round}");
    }

    // Another socket with another id is untouched.
    let mut bob = Client::connect(&server.url("vsn=2.0.0&user=bob")).await;
    bob.join("room:kick", "1").await;
    bob.send_json(json!(["1", "3", "room:kick", "stay", {}]))
        .await;
    assert_eq!(bob.recv_json().await[4]["response"]["replied"], true);
}
