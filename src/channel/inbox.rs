//! The messages a running callback task takes next. While a channel is busy
//! its session adds messages here and the task takes them one after the
//! other without handing the state back in between, so a burst (pushes,
//! intercepted broadcasts, info messages) costs one task, not one per
//! message. An idle channel has no inbox.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ChannelMsg;

/// Shared by a channel's session and its running callback task.
pub(crate) struct Inbox(Mutex<State>);

struct State {
    msgs: VecDeque<ChannelMsg>,
    /// The task still takes messages.
    open: bool,
}

impl Inbox {
    /// An open inbox holding `msgs`.
    pub(crate) fn new(msgs: VecDeque<ChannelMsg>) -> Arc<Inbox> {
        Arc::new(Inbox(Mutex::new(State { msgs, open: true })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add `msg` for the running task; gives it back once the task has
    /// stopped taking messages.
    pub(crate) fn push(&self, msg: ChannelMsg) -> Result<(), ChannelMsg> {
        let mut state = self.lock();
        if !state.open {
            return Err(msg);
        }
        state.msgs.push_back(msg);
        Ok(())
    }

    /// The next message; `None` closes the inbox (the task is about to
    /// hand the channel back).
    pub(crate) fn next(&self) -> Option<ChannelMsg> {
        let mut state = self.lock();
        let msg = state.msgs.pop_front();
        if msg.is_none() {
            state.open = false;
        }
        msg
    }

    /// Stop taking messages; those waiting are dropped.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.open = false;
        state.msgs = VecDeque::new();
    }

    /// How many messages wait.
    pub(crate) fn len(&self) -> usize {
        self.lock().msgs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Inbox;
    use crate::channel::ChannelMsg;

    fn leave(n: u8) -> ChannelMsg {
        ChannelMsg::Leave {
            ref_: Some(n.to_string()),
        }
    }

    fn ref_of(msg: Option<ChannelMsg>) -> Option<String> {
        match msg {
            Some(ChannelMsg::Leave { ref_ }) => ref_,
            _ => None,
        }
    }

    #[test]
    fn messages_come_out_in_order_until_it_closes() {
        let inbox = Inbox::new([leave(1)].into());
        assert!(inbox.push(leave(2)).is_ok());
        assert_eq!(inbox.len(), 2);
        assert_eq!(ref_of(inbox.next()), Some("1".into()));
        assert_eq!(ref_of(inbox.next()), Some("2".into()));
        assert!(inbox.next().is_none(), "empty: closes");
        assert!(inbox.push(leave(3)).is_err(), "closed: given back");

        let ended = Inbox::new([leave(4)].into());
        ended.close();
        assert_eq!(ended.len(), 0);
        assert!(ended.push(leave(5)).is_err());
    }
}
