//! [`Held`]: what a channel callback produced that must wait until the
//! callback has replied. Presence diffs wait for any callback's reply (a
//! client sees the answer to its `track` push before the diff it caused,
//! as with Phoenix's asynchronous tracker); pushes wait only in `join`, for
//! the `ok` join reply, so `join` can greet the client where a Phoenix
//! channel sends itself `:after_join`. A `presence_state` asked for in
//! `join` is held as a request, not a list: the list is taken when it is
//! sent, once the channel is subscribed, so no change falls between the
//! list and the first diff.

use std::sync::{Mutex, MutexGuard};

use crate::presence::{Diff, HoldDiffs};
use crate::pubsub::WireFrame;

/// One held item, kept in the order the callback produced them.
enum Item {
    Diff(Diff),
    Push(Pending),
}

/// A push `join` made, to send after its `ok` reply.
#[derive(Debug, PartialEq)]
pub(crate) enum Pending {
    /// An encoded push.
    Frame(WireFrame),
    /// `presence_state` with the topic's list as it is when sent.
    PresenceState,
}

/// One channel's held output: empty (no allocation) between callbacks, so
/// an idle channel pays only for the empty vector and its lock.
#[derive(Default)]
pub(crate) struct Held(Mutex<Vec<Item>>);

impl Held {
    fn items(&self) -> MutexGuard<'_, Vec<Item>> {
        // A callback that panicked while holding the lock left a vector
        // that is still whole: keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep a push made in `join` until the join reply is written.
    pub(crate) fn hold_push(&self, push: Pending) {
        self.items().push(Item::Push(push));
    }

    /// The held pushes, in order; held diffs stay.
    pub(crate) fn take_pushes(&self) -> Vec<Pending> {
        let mut items = self.items();
        if !items.iter().any(|item| matches!(item, Item::Push(_))) {
            return Vec::new();
        }
        let mut pushes = Vec::new();
        for item in std::mem::take(&mut *items) {
            match item {
                Item::Push(push) => pushes.push(push),
                diff => items.push(diff),
            }
        }
        pushes
    }

    /// The held diffs, in order. Pushes still held are dropped: only a
    /// refused or crashed join leaves any, and those are never sent.
    pub(crate) fn take_diffs(&self) -> Vec<Diff> {
        let mut items = self.items();
        if items.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut *items)
            .into_iter()
            .filter_map(|item| match item {
                Item::Diff(diff) => Some(diff),
                Item::Push(_) => None,
            })
            .collect()
    }
}

impl HoldDiffs for Held {
    fn hold(&self, diffs: &mut dyn Iterator<Item = Diff>) {
        self.items().extend(diffs.map(Item::Diff));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::tracker::{ReplicaId, Tracker};
    use fawkes_protocol::{Frame, Message, Payload, Serializer};

    fn frame(event: &str) -> Pending {
        let message = Message {
            join_ref: None,
            ref_: None,
            topic: "t".into(),
            event: event.into(),
            payload: Payload::empty(),
        };
        let frame: Frame = Serializer::V2.encode_message(&message).expect("encodes");
        Pending::Frame(frame.into())
    }

    /// Holds, in `held`, the diff of tracking each of `keys`.
    fn hold_diffs(held: &Held, keys: &[&str]) {
        let mut tracker = Tracker::new(ReplicaId::new("n", 1));
        let owner = tracker.owner(1);
        for key in keys {
            let diff = tracker.track(owner.clone(), "t", key, Default::default(), key.to_string());
            held.hold(&mut [diff.expect("tracks")].into_iter());
        }
    }

    #[test]
    fn pushes_and_diffs_are_taken_apart_each_in_order() {
        let held = Held::default();
        held.hold_push(frame("a"));
        hold_diffs(&held, &["k1"]);
        held.hold_push(frame("b"));
        hold_diffs(&held, &["k2"]);
        held.hold_push(Pending::PresenceState);

        let pushes = held.take_pushes();
        assert_eq!(pushes, vec![frame("a"), frame("b"), Pending::PresenceState]);
        assert!(held.take_pushes().is_empty(), "taken once");
        let diffs = held.take_diffs();
        assert_eq!(diffs.len(), 2, "the diffs stayed");
        assert!(held.take_diffs().is_empty());
    }

    #[test]
    fn taking_the_diffs_drops_the_pushes_of_a_refused_join() {
        let held = Held::default();
        held.hold_push(frame("welcome"));
        hold_diffs(&held, &["k"]);
        assert_eq!(held.take_diffs().len(), 1);
        assert!(held.take_pushes().is_empty(), "the push is gone");
    }
}
