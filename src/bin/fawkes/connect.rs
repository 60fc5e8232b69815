//! The connect callback of a configured socket: the Phoenix.Token check
//! when `[socket.auth]` is set (its data becomes the assigns), then the
//! connect webhook when one is set (the backend decides, and may add assigns
//! and set the socket id); with neither, the default chat's rule (the `user`
//! param becomes an assign).

use fawkes::socket::ConnectRefused;
use fawkes::{ConnectInfo, Connected};
use serde_json::Value;

use crate::auth::Auth;
use crate::webhook::{ConnectAnswer, SocketHooks};

/// What one socket's connect callback needs.
#[derive(Debug)]
pub(crate) struct SocketGate {
    /// The socket's mount path (sent to the backend).
    pub(crate) path: String,
    /// The socket's token check, if configured.
    pub(crate) auth: Option<Auth>,
    /// The socket's backend, if configured.
    pub(crate) hooks: Option<SocketHooks>,
}

impl SocketGate {
    /// Accept or refuse one connection.
    pub(crate) async fn connect(&self, info: ConnectInfo) -> Result<Connected, ConnectRefused> {
        let mut connected = Connected::default();
        if let Some(auth) = &self.auth {
            match auth.authenticate(&info) {
                Ok((assigns, id)) => {
                    connected.assigns = assigns;
                    connected.id = id;
                }
                Err(refusal) => {
                    tracing::info!(socket = %self.path, peer = ?info.peer_addr, "connect refused: {refusal}");
                    return Err(ConnectRefused);
                }
            }
        }
        let asked = match &self.hooks {
            Some(hooks) => hooks.connect(&self.path, &info, &connected.assigns).await,
            None => None,
        };
        match asked {
            None if self.auth.is_none() => {
                if let Some(user) = info.param("user").filter(|u| !u.is_empty()) {
                    connected
                        .assigns
                        .insert("user".into(), Value::String(user.to_owned()));
                }
            }
            None => {}
            Some(Ok(ConnectAnswer::Ok { assigns, id })) => {
                connected.assigns.extend(assigns);
                if id.is_some() {
                    connected.id = id;
                }
            }
            Some(Ok(ConnectAnswer::Error {})) => {
                tracing::info!(socket = %self.path, peer = ?info.peer_addr, "connect refused by the backend");
                return Err(ConnectRefused);
            }
            Some(Err(error)) => {
                tracing::warn!(socket = %self.path, %error, "connect webhook failed; refusing the connection");
                return Err(ConnectRefused);
            }
        }
        Ok(connected)
    }
}
