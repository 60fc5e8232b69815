//! `/health` and `/ready`, for load balancers and orchestrators: the node
//! is alive (always 200), and it takes new clients (200, or 503 once it is
//! shutting down).

use hyper::StatusCode;

use super::http::empty;
use super::HttpResponse;
use crate::session::Services;

/// The path that answers 200 while the process serves HTTP at all.
pub const HEALTH_PATH: &str = "/health";
/// The path that answers 200 while the node takes new clients, 503 while
/// it shuts down.
pub const READY_PATH: &str = "/ready";

/// The answer for `path` if it is a health check path.
pub(crate) fn answer(path: &str, shared: &Services) -> Option<HttpResponse> {
    match path {
        HEALTH_PATH => Some(empty(StatusCode::OK)),
        READY_PATH if shared.shutdown.is_cancelled() => {
            Some(empty(StatusCode::SERVICE_UNAVAILABLE))
        }
        READY_PATH => Some(empty(StatusCode::OK)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::PubSub;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    #[test]
    fn ready_turns_503_at_shutdown_and_health_stays_200() {
        let shared = Services {
            pubsub: PubSub::new(),
            presence: None,
            shutdown: CancellationToken::new(),
            drain: Default::default(),
            tasks: TaskTracker::new(),
            state: Default::default(),
        };
        let status = |path| answer(path, &shared).map(|r| r.status());
        assert_eq!(status("/health"), Some(StatusCode::OK));
        assert_eq!(status("/ready"), Some(StatusCode::OK));
        assert_eq!(status("/readyz"), None);
        shared.shutdown.cancel();
        assert_eq!(status("/ready"), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(status("/health"), Some(StatusCode::OK));
    }
}
