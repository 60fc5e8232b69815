//! `[socket.auth]`: Phoenix.Token authentication of a socket's connects.
//! The token comes from a connect param (phoenix.js `params: {token}`) or
//! from phoenix.js's `authToken` option; its verified data becomes the
//! socket's assigns and may name the socket id. A missing, forged or
//! expired token refuses the connect with 403, as Phoenix does.

use fawkes::token::{TokenError, TokenKey, VerifyOptions};
use fawkes::ConnectInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Environment variable that sets (and overrides) `secret_key_base`.
pub(crate) const SECRET_KEY_BASE_ENV: &str = "FAWKES_SECRET_KEY_BASE";

/// `[socket.auth]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    /// The Elixir app's `secret_key_base` (or `FAWKES_SECRET_KEY_BASE`).
    #[serde(default, serialize_with = "crate::redact::secret")]
    pub(crate) secret_key_base: Option<String>,
    /// The salt the app signs socket tokens with (`Phoenix.Token.sign(conn, salt, data)`).
    pub(crate) salt: String,
    /// Seconds a token stays valid, or `"infinity"` (default 86400, Phoenix's).
    #[serde(default)]
    pub(crate) max_age: MaxAge,
    /// `"verify"` for `Phoenix.Token.sign` tokens, `"decrypt"` for `Phoenix.Token.encrypt`.
    #[serde(default)]
    pub(crate) mode: Mode,
    /// The connect param that carries the token.
    #[serde(default = "default_param")]
    pub(crate) param: String,
    /// Also accept phoenix.js's `authToken` option (websocket subprotocol,
    /// longpoll `X-Phoenix-AuthToken`).
    #[serde(default = "yes")]
    pub(crate) auth_token: bool,
    /// The assign that holds token data that is not a JSON object (e.g. a
    /// bare user id); an object's fields become assigns one by one.
    #[serde(default = "default_assign")]
    pub(crate) assign: String,
    /// The socket id, with `{name}` replaced by that assign, e.g.
    /// `"users_socket:{user_id}"`. A `disconnect` broadcast on it closes the
    /// user's sockets.
    #[serde(default)]
    pub(crate) socket_id: Option<String>,
}

/// `max_age = 86400 | "infinity"`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum MaxAge {
    /// Seconds.
    Seconds(u64),
    /// `"infinity"`: never expires.
    Keyword(Infinity),
}

/// The word `infinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Infinity {
    /// Never expires.
    Infinity,
}

impl Default for MaxAge {
    fn default() -> Self {
        MaxAge::Seconds(86_400)
    }
}

/// Signed or encrypted tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// `Phoenix.Token.sign` / `verify`.
    #[default]
    Verify,
    /// `Phoenix.Token.encrypt` / `decrypt`.
    Decrypt,
}

fn default_param() -> String {
    "token".into()
}
fn default_assign() -> String {
    "user_id".into()
}
fn yes() -> bool {
    true
}

impl AuthConfig {
    /// The token a connect carries: the configured param, else (when
    /// allowed) phoenix.js's `authToken`.
    pub(crate) fn token<'a>(&self, info: &'a ConnectInfo) -> Option<&'a str> {
        info.param(&self.param)
            .or_else(|| info.auth_token.as_deref().filter(|_| self.auth_token))
            .filter(|token| !token.is_empty())
    }

    /// Verified token data as assigns.
    pub(crate) fn assigns(&self, data: Value) -> Map<String, Value> {
        match data {
            Value::Object(map) => map,
            other => Map::from_iter([(self.assign.clone(), other)]),
        }
    }

    /// The socket id for these assigns; `None` when not configured or when
    /// an assign it names is missing or not a string or number.
    pub(crate) fn socket_id(&self, assigns: &Map<String, Value>) -> Option<String> {
        render(self.socket_id.as_deref()?, assigns)
    }
}

/// Why `[socket.auth]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthConfigError {
    /// No `secret_key_base` in the file nor in the environment.
    #[error("[socket.auth] needs secret_key_base (or {SECRET_KEY_BASE_ENV})")]
    NoSecretKeyBase,
}

/// Why a connect's token was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Missing, invalid (forged, tampered, wrong key) or expired.
    #[error("token {0}")]
    Token(#[from] TokenError),
    /// Verified, but its data has no JSON form (a pid, a tuple...).
    #[error("token data has no JSON form: {0}")]
    NoJsonForm(String),
}

/// A socket's token check: the config and the key derived from it once.
#[derive(Debug)]
pub(crate) struct Auth {
    config: AuthConfig,
    key: TokenKey,
}

impl Auth {
    /// Derive the key for `config`; `env_secret` (from
    /// [`SECRET_KEY_BASE_ENV`]) overrides the file's `secret_key_base`.
    pub(crate) fn new(
        config: &AuthConfig,
        env_secret: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        let secret = env_secret
            .or(config.secret_key_base.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or(AuthConfigError::NoSecretKeyBase)?;
        Ok(Self {
            config: config.clone(),
            key: TokenKey::derive(secret.as_bytes(), config.salt.as_bytes()),
        })
    }

    /// Verify the connect's token: the socket's assigns and id, or why not.
    pub(crate) fn authenticate(
        &self,
        info: &ConnectInfo,
    ) -> Result<(Map<String, Value>, Option<String>), Refusal> {
        let token = self.config.token(info);
        let options = VerifyOptions {
            max_age: Some(match self.config.max_age {
                MaxAge::Seconds(seconds) => fawkes::token::MaxAge::Seconds(seconds as f64),
                MaxAge::Keyword(Infinity::Infinity) => fawkes::token::MaxAge::Infinity,
            }),
            now_ms: None,
        };
        let data = match self.config.mode {
            Mode::Verify => self.key.verify(token, &options)?,
            Mode::Decrypt => self.key.decrypt(token, &options)?,
        };
        let data = data
            .to_json()
            .map_err(|error| Refusal::NoJsonForm(error.to_string()))?;
        let assigns = self.config.assigns(data);
        let id = self.config.socket_id(&assigns);
        Ok((assigns, id))
    }
}

/// `template` with every `{name}` replaced by assign `name`.
fn render(template: &str, assigns: &Map<String, Value>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        match assigns.get(&after[..end])? {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            _ => return None,
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fawkes::token::SignOptions;
    use serde_json::json;

    fn config(text: &str) -> AuthConfig {
        toml::from_str(text).expect("valid [socket.auth]")
    }

    #[test]
    fn defaults_and_forms() {
        let auth = config("salt = \"user socket\"\n");
        assert_eq!(auth.max_age, MaxAge::Seconds(86_400));
        assert_eq!(auth.mode, Mode::Verify);
        assert_eq!(auth.param, "token");
        assert!(auth.auth_token);
        let auth = config("salt = \"s\"\nmax_age = \"infinity\"\nmode = \"decrypt\"\n");
        assert_eq!(auth.max_age, MaxAge::Keyword(Infinity::Infinity));
        assert_eq!(auth.mode, Mode::Decrypt);
        assert!(toml::from_str::<AuthConfig>("salt = \"s\"\nmax_age = \"forever\"\n").is_err());
        assert!(toml::from_str::<AuthConfig>("salt = \"s\"\nmode = \"sign\"\n").is_err());
    }

    #[test]
    fn the_token_comes_from_the_param_else_the_auth_token() {
        let auth = config("salt = \"s\"\n");
        let mut info = ConnectInfo::default();
        assert_eq!(auth.token(&info), None);
        info.auth_token = Some("from-header".into());
        assert_eq!(auth.token(&info), Some("from-header"));
        info.params.insert("token".into(), json!("from-param"));
        assert_eq!(auth.token(&info), Some("from-param"));
        let no_header = config("salt = \"s\"\nauth_token = false\nparam = \"t\"\n");
        assert_eq!(no_header.token(&info), None);
    }

    #[test]
    fn data_becomes_assigns_and_names_the_socket_id() {
        let auth = config("salt = \"s\"\nsocket_id = \"users_socket:{user_id}\"\n");
        let assigns = auth.assigns(json!(42));
        assert_eq!(Value::Object(assigns.clone()), json!({"user_id": 42}));
        assert_eq!(auth.socket_id(&assigns).as_deref(), Some("users_socket:42"));
        let assigns = auth.assigns(json!({"user_id": "u-7", "name": "Ann"}));
        assert_eq!(
            auth.socket_id(&assigns).as_deref(),
            Some("users_socket:u-7")
        );
        let assigns = auth.assigns(json!({"name": "Ann"}));
        assert_eq!(auth.socket_id(&assigns), None);
        assert_eq!(
            render("{a}-{b}", &auth.assigns(json!({"a": 1, "b": "x"}))).as_deref(),
            Some("1-x")
        );
        assert_eq!(render("{a", &auth.assigns(json!({"a": 1}))), None);
    }

    const BASE: &str = "a secret_key_base of at least 64 bytes, like the ones Phoenix generates";

    fn info(token: &str) -> ConnectInfo {
        let mut info = ConnectInfo::default();
        info.params.insert("token".into(), json!(token));
        info
    }

    #[test]
    fn a_signed_token_becomes_assigns_and_socket_id() {
        let auth = Auth::new(
            &config("salt = \"user socket\"\nsocket_id = \"users_socket:{user_id}\"\n"),
            Some(BASE),
        )
        .expect("auth");
        let key = TokenKey::derive(BASE.as_bytes(), b"user socket");
        let token = key.sign_json(&json!(7), &SignOptions::default());
        let (assigns, id) = auth.authenticate(&info(&token)).expect("valid");
        assert_eq!(Value::Object(assigns), json!({"user_id": 7}));
        assert_eq!(id.as_deref(), Some("users_socket:7"));
        // another salt, a tampered token, no token, an expired token
        let other = TokenKey::derive(BASE.as_bytes(), b"other salt");
        let forged = other.sign_json(&json!(7), &SignOptions::default());
        assert!(matches!(
            auth.authenticate(&info(&forged)),
            Err(Refusal::Token(TokenError::Invalid))
        ));
        let mut tampered = token.clone();
        tampered.pop();
        assert!(auth.authenticate(&info(&tampered)).is_err());
        assert!(matches!(
            auth.authenticate(&ConnectInfo::default()),
            Err(Refusal::Token(TokenError::Missing))
        ));
        let old = SignOptions {
            signed_at_ms: Some(1_000),
            ..SignOptions::default()
        };
        let expired = key.sign_json(&json!(7), &old);
        assert!(matches!(
            auth.authenticate(&info(&expired)),
            Err(Refusal::Token(TokenError::Expired))
        ));
    }

    #[test]
    fn decrypt_mode_takes_encrypted_tokens_only() {
        let auth =
            Auth::new(&config("salt = \"s\"\nmode = \"decrypt\"\n"), Some(BASE)).expect("auth");
        let key = TokenKey::derive(BASE.as_bytes(), b"s");
        let signed = key.sign_json(&json!({"user_id": 1}), &SignOptions::default());
        assert!(auth.authenticate(&info(&signed)).is_err());
        let term = fawkes_etf::json::from_json(&json!({"user_id": 1}));
        let encrypted = key
            .encrypt(&term, &SignOptions::default())
            .expect("encrypt");
        let (assigns, _) = auth.authenticate(&info(&encrypted)).expect("valid");
        assert_eq!(Value::Object(assigns), json!({"user_id": 1}));
    }

    #[test]
    fn a_secret_key_base_is_required() {
        assert!(Auth::new(&config("salt = \"s\"\n"), None).is_err());
        assert!(Auth::new(&config("salt = \"s\"\n"), Some("")).is_err());
        assert!(Auth::new(&config("secret_key_base = \"k\"\nsalt = \"s\"\n"), None).is_ok());
    }
}
