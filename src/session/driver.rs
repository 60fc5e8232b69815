//! [`Driver`]: decides what a session handles next, in priority order —
//! server shutdown, then events from outside (channel messages,
//! `disconnect`, overflow), then finished channel callbacks, then the
//! client's next frame — and handles one client frame at a time.
//!
//! It is a plain poll function rather than an async fn, so a waiting
//! session holds only its state: the frame being handled lives in a boxed
//! future (which owns the session meanwhile) only while it runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

use super::control::SessionEvent;
use super::queue::QueueReceiver;
use super::{DisconnectReason, InboundSource, Session};

/// The handling of one client frame, holding the session until it is done.
type Handling = Pin<Box<dyn Future<Output = (Box<Session>, Result<(), DisconnectReason>)> + Send>>;

/// Runs one session over a frame source.
pub(crate) struct Driver<I> {
    /// The session, while no frame is being handled.
    session: Option<Box<Session>>,
    /// The frame being handled.
    handling: Option<Handling>,
    events: QueueReceiver<SessionEvent>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    inbound: I,
    ended: bool,
}

impl<I: InboundSource> Driver<I> {
    pub(super) fn new(
        session: Box<Session>,
        events: QueueReceiver<SessionEvent>,
        shutdown: CancellationToken,
        inbound: I,
    ) -> Self {
        Self {
            session: Some(session),
            handling: None,
            events,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            inbound,
            ended: false,
        }
    }

    /// The frame source (the websocket writes through it too).
    pub(crate) fn inbound_mut(&mut self) -> &mut I {
        &mut self.inbound
    }

    /// Run the session until it ends; `Ready` (once) with why it ended,
    /// after its channels have been ended.
    pub(crate) fn poll_session(&mut self, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        if self.ended {
            return Poll::Pending;
        }
        let span = self.session.as_ref().map(|s| s.span());
        let _entered = span.as_ref().map(tracing::Span::enter);
        let reason = ready!(self.poll_until_end(cx));
        self.ended = true;
        // A frame cut short drops the session with it, which releases it.
        self.handling = None;
        if let Some(mut session) = self.session.take() {
            session.close(&reason);
        }
        Poll::Ready(reason)
    }

    fn poll_until_end(&mut self, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        loop {
            if self.shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(DisconnectReason::ServerShutdown);
            }
            if let Some(handling) = &mut self.handling {
                let (session, result) = ready!(handling.as_mut().poll(cx));
                self.handling = None;
                self.session = Some(session);
                if let Err(reason) = result {
                    return Poll::Ready(reason);
                }
            }
            let Some(session) = self.session.as_mut() else {
                return Poll::Pending;
            };
            while let Poll::Ready(Some(event)) = self.events.poll_recv(cx) {
                if let Some(reason) = session.on_event(event) {
                    return Poll::Ready(reason);
                }
            }
            while let Poll::Ready((channel_id, handled)) = session.channels.poll_finished(cx) {
                session.on_handled(channel_id, handled);
            }
            let frame = match ready!(self.inbound.poll_frame(cx)) {
                Ok(frame) => frame,
                Err(reason) => return Poll::Ready(reason),
            };
            let Some(mut session) = self.session.take() else {
                return Poll::Pending;
            };
            let span = session.span();
            self.handling = Some(Box::pin(
                async move {
                    let result = session.on_frame(frame).await;
                    (session, result)
                }
                .instrument(span),
            ));
        }
    }
}

impl<I: InboundSource> Future for Driver<I> {
    type Output = DisconnectReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        self.get_mut().poll_session(cx)
    }
}
