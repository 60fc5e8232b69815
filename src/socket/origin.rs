//! `check_origin`: which browser origins may connect.

/// The origin policy of a socket. The default is [`CheckOrigin::Host`], as
/// Phoenix's default is `check_origin: true`: a page on another host cannot
/// open a socket with its visitor's cookies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CheckOrigin {
    /// Accept any origin (Phoenix's `check_origin: false`).
    Any,
    /// The origin's host must equal the host of the request's `Host` header;
    /// scheme and port are not compared (Phoenix's `check_origin: true`,
    /// with the request's host standing for the endpoint's configured host).
    #[default]
    Host,
    /// The origin's host, scheme and port must equal the request's `Host`
    /// (Phoenix's `:conn`).
    SameHost,
    /// The origin must match one of these: `"https://example.com"`,
    /// `"//example.com:8080"`, `"//*.example.com"` (a missing scheme or port
    /// matches any; `*.` matches the domain and its subdomains).
    List(Vec<String>),
}

/// Why an origin was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("origin {0:?} is not allowed")]
pub struct OriginError(pub String);

#[derive(Debug, PartialEq, Eq)]
struct Origin<'a> {
    scheme: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
}

fn parse(origin: &str) -> Option<Origin<'_>> {
    let (scheme, rest) = match origin.split_once("//") {
        Some(("", rest)) => (None, rest),
        Some((scheme, rest)) => (Some(scheme.strip_suffix(':')?), rest),
        None => return None,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin { scheme, host, port })
}

fn default_port(scheme: Option<&str>) -> Option<&'static str> {
    match scheme {
        Some("http") | Some("ws") => Some("80"),
        Some("https") | Some("wss") => Some("443"),
        _ => None,
    }
}

impl CheckOrigin {
    /// Check an `Origin` header value (absent: always allowed) against the
    /// policy; `host` is the request's `Host` header.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), OriginError> {
        let Some(origin) = origin else { return Ok(()) };
        let refused = || OriginError(origin.to_owned());
        match self {
            CheckOrigin::Any => Ok(()),
            CheckOrigin::Host => {
                let parsed = parse(origin).ok_or_else(refused)?;
                let (req_host, _) = split_host(host.ok_or_else(refused)?);
                if parsed.host.eq_ignore_ascii_case(req_host) {
                    Ok(())
                } else {
                    Err(refused())
                }
            }
            CheckOrigin::SameHost => {
                let parsed = parse(origin).ok_or_else(refused)?;
                let host = host.ok_or_else(refused)?;
                let (req_host, req_port) = split_host(host);
                let port = parsed.port.or(default_port(parsed.scheme));
                let req_port = req_port.or(default_port(parsed.scheme));
                if parsed.host.eq_ignore_ascii_case(req_host) && port == req_port {
                    Ok(())
                } else {
                    Err(refused())
                }
            }
            CheckOrigin::List(allowed) => {
                let parsed = parse(origin).ok_or_else(refused)?;
                let ok = allowed.iter().filter_map(|a| parse(a)).any(|a| {
                    a.scheme.is_none_or(|s| Some(s) == parsed.scheme)
                        && a.port
                            .is_none_or(|p| Some(p) == parsed.port.or(default_port(parsed.scheme)))
                        && host_matches(a.host, parsed.host)
                });
                if ok {
                    Ok(())
                } else {
                    Err(refused())
                }
            }
        }
    }
}

/// A `Host` header's host and port (`[::1]:4000` keeps its brackets, as an
/// origin's host does).
fn split_host(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, Some(p)),
        _ => (host, None),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => {
            host.eq_ignore_ascii_case(domain)
                || (host.len() > domain.len()
                    && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests {
    use super::CheckOrigin;

    #[test]
    fn no_origin_or_any_is_allowed() {
        assert!(CheckOrigin::Any
            .check(Some("https://evil.com"), None)
            .is_ok());
        assert!(CheckOrigin::SameHost.check(None, None).is_ok());
    }

    #[test]
    fn list_matches_scheme_host_port_and_wildcards() {
        let policy = CheckOrigin::List(vec![
            "https://example.com".into(),
            "//another.com:888".into(),
            "//*.other.com".into(),
        ]);
        assert!(policy.check(Some("https://example.com"), None).is_ok());
        assert!(policy.check(Some("http://example.com"), None).is_err());
        assert!(policy.check(Some("http://another.com:888"), None).is_ok());
        assert!(policy.check(Some("http://another.com"), None).is_err());
        assert!(policy.check(Some("https://other.com"), None).is_ok());
        assert!(policy.check(Some("https://a.b.other.com"), None).is_ok());
        assert!(policy.check(Some("https://notother.com"), None).is_err());
        assert!(policy.check(Some("null"), None).is_err());
    }

    #[test]
    fn host_compares_only_the_host_and_is_the_default() {
        let p = CheckOrigin::default();
        assert_eq!(p, CheckOrigin::Host);
        assert!(p
            .check(Some("http://localhost:4000"), Some("localhost:4000"))
            .is_ok());
        assert!(p
            .check(Some("https://localhost:5173"), Some("localhost:4000"))
            .is_ok());
        assert!(p
            .check(Some("http://LOCALHOST"), Some("localhost:4000"))
            .is_ok());
        assert!(p
            .check(Some("http://evil.example"), Some("localhost:4000"))
            .is_err());
        assert!(p
            .check(Some("http://localhost.evil.example"), Some("localhost"))
            .is_err());
        assert!(p.check(Some("null"), Some("localhost")).is_err());
        assert!(p.check(Some("http://localhost"), None).is_err());
        assert!(p.check(None, Some("localhost")).is_ok());
        assert!(p
            .check(Some("http://[::1]:4000"), Some("[::1]:4000"))
            .is_ok());
    }

    #[test]
    fn same_host_compares_host_and_port() {
        let p = CheckOrigin::SameHost;
        assert!(p
            .check(Some("http://localhost:4000"), Some("localhost:4000"))
            .is_ok());
        assert!(p
            .check(Some("http://localhost:4001"), Some("localhost:4000"))
            .is_err());
        assert!(p
            .check(Some("http://example.com"), Some("example.com"))
            .is_ok());
    }
}
