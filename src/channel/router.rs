//! Topic patterns routed to channel types.

use std::sync::Arc;

use fawkes_protocol::Payload;
use tokio::task::JoinHandle;

use super::instance::{self, Joined};
use super::{Channel, ChannelSocket};

type Starter = Arc<dyn Fn(ChannelSocket, Payload) -> JoinHandle<Joined> + Send + Sync>;

/// An ordered list of topic patterns: an exact topic, or a prefix ending in
/// `*` (`"room:*"` matches every topic starting with `"room:"`). The first
/// match wins.
#[derive(Clone, Default)]
pub(crate) struct Router {
    routes: Vec<(String, Starter)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, _)| p))
            .finish()
    }
}

impl Router {
    /// Route `pattern` to channels made by `factory`, one per join.
    pub(crate) fn route<F, C, I>(&mut self, pattern: impl Into<String>, factory: F)
    where
        F: Fn() -> C + Send + Sync + 'static,
        C: Channel<I>,
        I: Send + 'static,
    {
        let starter: Starter = Arc::new(move |socket, params| {
            instance::join::<C, I>(factory(), socket.retype(), params)
        });
        self.routes.push((pattern.into(), starter));
    }

    /// Create the channel for `socket`'s topic, if a pattern matches it,
    /// and run its join callback with `params`.
    pub(crate) fn join(
        &self,
        socket: ChannelSocket,
        params: Payload,
    ) -> Option<JoinHandle<Joined>> {
        let (_, starter) = self
            .routes
            .iter()
            .find(|(pattern, _)| matches(pattern, &socket.topic))?;
        Some(starter(socket, params))
    }

    /// Whether a pattern matches `topic`.
    pub(crate) fn has_route(&self, topic: &str) -> bool {
        self.routes
            .iter()
            .any(|(pattern, _)| matches(pattern, topic))
    }
}

fn matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcard_is_a_prefix_and_exact_is_exact() {
        assert!(matches("room:*", "room:lobby"));
        assert!(matches("room:*", "room:"));
        assert!(!matches("room:*", "rooms:lobby"));
        assert!(matches("lobby", "lobby"));
        assert!(!matches("lobby", "lobby2"));
        assert!(matches("*", "anything"));
    }
}
