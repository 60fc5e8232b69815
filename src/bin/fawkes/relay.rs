//! The channel of a configured topic ([`RelayChannel`]): asks the backend
//! on join and for the chosen events when webhooks are set, relays the
//! listed events to the other subscribers, and tracks presence when
//! enabled.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fawkes::prelude::*;
use serde_json::{json, Value};

use crate::config::TopicRule;
use crate::webhook::{JoinAnswer, TopicHooks};

/// One topic rule and its webhooks, shared by the rule's channels.
pub(crate) struct TopicApp {
    /// The rule from the configuration.
    pub(crate) rule: TopicRule,
    /// The rule's webhooks, if it has any.
    pub(crate) hooks: Option<TopicHooks>,
}

/// A channel configured by a [`TopicRule`].
pub(crate) struct RelayChannel {
    /// The rule this channel follows.
    pub(crate) topic: Arc<TopicApp>,
}

impl RelayChannel {
    /// The presence key: the configured assign, else the `user` join
    /// param, else the `user` assign, else `"anonymous"`.
    fn presence_key(&self, params: &Payload, socket: &ChannelSocket) -> String {
        let key = match &self.topic.rule.presence_key {
            Some(assign) => match socket.assign(assign) {
                Some(Value::String(key)) => Some(key.clone()),
                Some(Value::Number(key)) => Some(key.to_string()),
                _ => None,
            },
            None => params
                .get("user")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .or_else(|| socket.assign_str("user"))
                .map(str::to_owned),
        };
        key.unwrap_or_else(|| "anonymous".to_owned())
    }
}

impl Channel for RelayChannel {
    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        socket: &mut ChannelSocket,
    ) -> JoinResult {
        let mut reply = Payload::empty();
        if let Some(hooks) = &self.topic.hooks {
            match hooks.join(topic, &params, socket.assigns_object()).await {
                None => {}
                Some(Ok(JoinAnswer::Ok { response })) => reply = Value::Object(response).into(),
                Some(Ok(JoinAnswer::Error { response })) => {
                    return Err(ChannelError::new(Value::Object(response)));
                }
                Some(Err(error)) => {
                    tracing::warn!(%topic, %error, "join webhook failed");
                    return Err(ChannelError::reason(error.reason()));
                }
            }
        }
        // Tracked now (the diff goes out after the join reply); the list
        // is read and pushed after the reply too.
        if let (true, Some(presence)) = (self.topic.rule.presence, socket.presence()) {
            let key = self.presence_key(&params, socket);
            let online_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default();
            if let Err(error) = presence.track(&key, json!({"online_at": online_at})) {
                tracing::warn!(%error, key, "presence track failed");
            }
            socket.push_presence_state()?;
        }
        Ok(reply)
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        socket: &mut ChannelSocket,
    ) -> HandleResult {
        let Some(hooks) = self.topic.hooks.as_ref().filter(|h| h.handles(event)) else {
            if !self.topic.rule.relay.iter().any(|e| e == event) {
                return Err(ChannelError::reason("unknown event"));
            }
            socket.broadcast_from(event, payload);
            return reply_ok(Payload::empty());
        };
        let topic = socket.topic();
        let answer = hooks
            .handle_in(topic, event, &payload, socket.assigns_object())
            .await
            .map_err(|error| {
                tracing::warn!(%topic, event, %error, "handle_in webhook failed");
                ChannelError::reason(error.reason())
            })?;
        if let Some(ask) = answer.broadcast {
            if ask.exclude_sender {
                socket.broadcast_from(&ask.event, ask.payload);
            } else {
                socket.broadcast(&ask.event, ask.payload);
            }
        }
        reply(answer.status.as_str(), Value::Object(answer.response))
    }
}
