//! `[dashboard]`: a live page at `/dashboard` for a person looking at the
//! node (connections, topics, presences, rates, evictions, refused frames,
//! the cluster link). Off unless `[dashboard] secret` (or
//! `FAWKES_DASHBOARD_SECRET`) is set; then the page wants HTTP basic auth
//! (user `admin`, that secret) and updates over fawkes's own channels: it
//! loads phoenix.js (vendored here, served at `/dashboard/phoenix.mjs`),
//! connects to the socket at `/dashboard/socket` with a short-lived token
//! the page request minted, and joins `fawkes:dashboard`.

mod access;
mod channel;
mod sampler;
mod snapshot;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use fawkes::endpoint::HttpResponse;
use fawkes::presence::replication::Replication;
use fawkes::presence::Presence;
use fawkes::pubsub::redis::ClusterStats;
use fawkes::socket::{ConnectRefused, SocketOptions};
use fawkes::{Connected, Payload, PubSub, Socket};
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use access::Access;
pub(crate) use access::AccessError;
use channel::{DashboardChannel, SNAPSHOT_EVENT, TOPIC};
use sampler::{Publish, Sampler};
use snapshot::Sources;

/// Environment variable that sets (and overrides) `[dashboard] secret`.
pub(crate) const SECRET_ENV: &str = "FAWKES_DASHBOARD_SECRET";
/// The page.
pub(crate) const PATH: &str = "/dashboard";
/// Where the page's socket is mounted.
pub(crate) const SOCKET_PATH: &str = "/dashboard/socket";

const PAGE: &str = include_str!("page.html");
/// phoenix.js 1.8.16 (MIT, `phoenix.LICENSE.md`), as npm ships it.
const PHOENIX_JS: &str = include_str!("phoenix.mjs");
/// Where the page finds its fresh socket token.
const TOKEN_PATH: &str = "/dashboard/token";
const PHOENIX_PATH: &str = "/dashboard/phoenix.mjs";
/// Replaced in the page by a freshly minted token.
const TOKEN_SLOT: &str = "__FAWKES_DASHBOARD_TOKEN__";

/// `[dashboard]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DashboardConfig {
    /// The password of user `admin`; unset: no dashboard (404).
    #[serde(serialize_with = "crate::redact::secret")]
    pub(crate) secret: Option<String>,
}

/// The dashboard of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Dashboard {
    access: Access,
    sampler: Sampler,
}

impl Dashboard {
    /// The dashboard `config` asks for (`env_secret`, the value of
    /// [`SECRET_ENV`], wins), or `None` when no secret is set.
    pub(crate) fn new(
        config: &DashboardConfig,
        env_secret: Option<String>,
        pubsub: &PubSub,
        redis: Option<Arc<ClusterStats>>,
        node: Option<String>,
    ) -> Result<Option<Self>, AccessError> {
        let Some(secret) = env_secret.or_else(|| config.secret.clone()) else {
            return Ok(None);
        };
        let access = Access::new(&secret)?;
        let sources = Arc::new(Sources {
            pubsub: pubsub.clone(),
            presence: OnceLock::new(),
            replication: OnceLock::new(),
            redis,
            node,
        });
        let target = pubsub.clone();
        let publish: Publish = Arc::new(move |snapshot| {
            // This node's watchers only: every node samples itself.
            target.local_broadcast(TOPIC, SNAPSHOT_EVENT, Payload::Json(snapshot));
        });
        Ok(Some(Self {
            access,
            sampler: Sampler::new(sources, publish),
        }))
    }

    /// The socket to mount at [`SOCKET_PATH`]: a connect needs a token
    /// minted by a page request (param `token`); its only topic is
    /// `fawkes:dashboard`.
    pub(crate) fn socket(&self) -> Socket {
        let access = self.access.clone();
        let sampler = self.sampler.clone();
        Socket::new()
            .connect(move |info: fawkes::ConnectInfo| {
                let allowed = info
                    .param("token")
                    .is_some_and(|token| access.token_valid(token, SystemTime::now()));
                async move {
                    if allowed {
                        Ok(Connected::default())
                    } else {
                        tracing::info!(peer = ?info.peer_addr, "dashboard socket refused: no valid token");
                        Err(ConnectRefused)
                    }
                }
            })
            .options(SocketOptions {
                longpoll: true,
                max_channels: 1,
                ..SocketOptions::default()
            })
            .channel(TOPIC, move || DashboardChannel::new(sampler.clone()))
    }

    /// Gives the dashboard the endpoint's presence service once built.
    pub(crate) fn attach(&self, presence: Option<&Presence>) {
        if let Some(presence) = presence {
            let _ = self.sampler.sources().presence.set(presence.clone());
        }
    }

    /// Gives the dashboard presence replication's view of the other nodes.
    pub(crate) fn attach_replication(&self, replication: &Replication) {
        let _ = self.sampler.sources().replication.set(replication.clone());
    }

    /// The answer for a dashboard path, or `None` for any other path.
    pub(crate) fn answer<B>(&self, req: &hyper::Request<B>) -> Option<HttpResponse> {
        let path = req.uri().path();
        if !matches!(path, PATH | "/dashboard/" | TOKEN_PATH | PHOENIX_PATH) {
            return None;
        }
        if !self.access.authorizes(req.headers()) {
            return Some(unauthorized());
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Some(crate::static_files::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n",
            ));
        }
        let token = || self.access.mint(SystemTime::now());
        Some(match path {
            TOKEN_PATH => respond(token(), "text/plain; charset=utf-8"),
            PHOENIX_PATH => respond(PHOENIX_JS.to_owned(), "text/javascript; charset=utf-8"),
            _ => respond(
                PAGE.replace(TOKEN_SLOT, &token()),
                "text/html; charset=utf-8",
            ),
        })
    }
}

fn respond(body: String, content_type: &'static str) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 401 with the challenge that makes a browser ask for user and password.
fn unauthorized() -> HttpResponse {
    let mut response = crate::static_files::text(StatusCode::UNAUTHORIZED, "unauthorized\n");
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"fawkes\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dashboard(file: Option<&str>, env: Option<&str>) -> Result<Option<Dashboard>, AccessError> {
        let config = DashboardConfig {
            secret: file.map(str::to_owned),
        };
        Dashboard::new(&config, env.map(str::to_owned), &PubSub::new(), None, None)
    }

    fn get(dashboard: &Dashboard, path: &str, password: &str) -> Option<u16> {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
        let req = hyper::Request::get(path)
            .header("authorization", format!("Basic {auth}"))
            .body(())
            .expect("request");
        dashboard.answer(&req).map(|r| r.status().as_u16())
    }

    #[test]
    fn on_only_with_a_secret_and_the_environment_wins() {
        assert!(dashboard(None, None).expect("no secret").is_none());
        assert_eq!(
            dashboard(Some(""), None).map(|_| ()),
            Err(AccessError::Empty)
        );
        let on = dashboard(Some("file"), Some("env"))
            .expect("ok")
            .expect("on");
        assert_eq!(get(&on, "/dashboard", "env"), Some(200));
        assert_eq!(get(&on, "/dashboard", "file"), Some(401));
        assert_eq!(get(&on, "/dashboard/", "env"), Some(200));
        assert_eq!(get(&on, "/dashboard/token", "env"), Some(200));
        assert_eq!(
            get(&on, "/elsewhere", "env"),
            None,
            "other paths pass through"
        );
        let printed = toml::to_string(&DashboardConfig {
            secret: Some("hush".into()),
        })
        .expect("toml");
        assert!(!printed.contains("hush") && printed.contains(crate::redact::REDACTED));
    }
}
