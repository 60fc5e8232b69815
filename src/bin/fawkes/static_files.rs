//! Static files for the chat page: a folder served at `/`, and phoenix.js
//! from that folder's `node_modules` at `/vendor/phoenix.mjs`.
//!
//! Only what a page needs is served: files with a web asset extension, never
//! a hidden file, anything under `node_modules` (but phoenix.js), nor the
//! folder's `package.json` / lock file (JSON is not a page asset here).

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use fawkes::endpoint::{HttpRequest, HttpResponse};
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};

/// Where phoenix.js lives inside the static folder once `npm ci` ran there.
const PHOENIX_JS: &str = "node_modules/phoenix/priv/static/phoenix.mjs";

/// Serves files below one folder.
#[derive(Debug)]
pub(crate) struct StaticFiles {
    root: PathBuf,
}

impl StaticFiles {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Answer a GET for a file, or 404/405.
    pub(crate) async fn serve(&self, req: &HttpRequest) -> HttpResponse {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let Some(path) = self.resolve(req.uri().path()) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let mut response = hyper::Response::new(Full::new(Bytes::from(bytes)));
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&path)));
                response
            }
            Err(_) if req.uri().path() == "/vendor/phoenix.mjs" => text(
                StatusCode::NOT_FOUND,
                "phoenix.js is not installed: run `npm ci --prefix examples/chat` (./scripts/serve does it)\n",
            ),
            Err(_) => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// The file for a URL path, refusing anything that leaves the folder.
    fn resolve(&self, url_path: &str) -> Option<PathBuf> {
        let relative = match url_path {
            "/" => "index.html",
            "/vendor/phoenix.mjs" => PHOENIX_JS,
            other => other.trim_start_matches('/'),
        };
        let relative = Path::new(relative);
        let vendored = url_path == "/vendor/phoenix.mjs";
        let hidden_or_outside = relative.components().any(|c| match c {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                name.starts_with('.') || name == "node_modules"
            }
            _ => true,
        });
        if (hidden_or_outside && !vendored) || !is_page_asset(relative) {
            return None;
        }
        Some(self.root.join(relative))
    }
}

/// Extensions of files a web page loads.
const PAGE_ASSETS: &[&str] = &[
    "html", "js", "mjs", "css", "png", "svg", "ico", "jpg", "jpeg", "webp", "gif", "woff2",
];

fn is_page_asset(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PAGE_ASSETS.contains(&e))
}

/// The answer for a path no handler serves.
pub(crate) fn not_found() -> HttpResponse {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// A `text/plain` response with `status` and `body`.
pub(crate) fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::StaticFiles;
    use std::path::PathBuf;

    #[test]
    fn paths_stay_inside_the_folder() {
        let files = StaticFiles::new(PathBuf::from("/srv"));
        assert_eq!(files.resolve("/"), Some(PathBuf::from("/srv/index.html")));
        assert_eq!(files.resolve("/app.js"), Some(PathBuf::from("/srv/app.js")));
        assert_eq!(
            files.resolve("/vendor/phoenix.mjs"),
            Some(PathBuf::from(
                "/srv/node_modules/phoenix/priv/static/phoenix.mjs"
            ))
        );
        assert_eq!(files.resolve("/../etc/passwd"), None);
        assert_eq!(files.resolve("/a/../../b"), None);
    }

    #[test]
    fn only_page_assets_are_served() {
        let files = StaticFiles::new(PathBuf::from("/srv"));
        assert_eq!(
            files.resolve("/style.css"),
            Some(PathBuf::from("/srv/style.css"))
        );
        assert_eq!(files.resolve("/package.json"), None);
        assert_eq!(files.resolve("/package-lock.json"), None);
        assert_eq!(files.resolve("/README.md"), None);
        assert_eq!(files.resolve("/.env"), None);
        assert_eq!(files.resolve("/.git/config.js"), None);
        assert_eq!(
            files.resolve("/node_modules/phoenix/priv/static/phoenix.mjs"),
            None
        );
        assert_eq!(files.resolve("/node_modules/ws/index.js"), None);
    }
}
