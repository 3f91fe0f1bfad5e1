//! DNS-rebinding protection of `/mcp` (MCP specification 2025-06-18, "Transports", security
//! warning: servers must validate `Origin`; local servers should bind to localhost only): the
//! [`HostPolicy`] derived from the address the server is bound to, and the middleware that
//! answers 403 (OpenAI's error object, code `permission_denied`) to a request it refuses. It
//! runs before the API-key check, so a rebinding request is refused whether or not it has a key.
//!
//! - Loopback bind (the default, `127.0.0.1:4096`): the server is reachable only from this
//!   machine, where any web page the user opens could send it requests through a DNS name it
//!   rebinds to 127.0.0.1. So `Host` must name a loopback host: `localhost`, `127.0.0.1` or
//!   `[::1]`, with any port or none (the name is what a rebinding changes; a port forwarded by
//!   `ssh -L` still works). `Origin`, which browsers send and other clients usually do not, must
//!   be absent or `http`/`https` on one of those names and the server's own port: a page of
//!   another local port is another site. `Origin: null` is refused.
//! - Any other bind (which `chorus serve` accepts only with an API key): no check. Clients reach
//!   such a server by names and addresses the server cannot know (a LAN address, a hostname, an
//!   mDNS name, a reverse proxy's name; every interface's for `0.0.0.0`), and the API key is what
//!   protects it: a rebinding page does not have the key, and a browser adds no `Authorization`
//!   header of its own.
//!
//! `rmcp`'s own check (loopback names in `Host`, any port) is turned off in favour of this one,
//! which also checks `Origin`, speaks the server's error format and runs before authentication.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Host names that reach a loopback interface.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Which `Host` and `Origin` headers `/mcp` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPolicy {
    /// A loopback bind: loopback names only; `Origin` on `port` (any port when `None`, as for an
    /// `app` tested in-process without a listener).
    Loopback {
        /// The server's port.
        port: Option<u16>,
    },
    /// A non-loopback bind, protected by its API key: no check.
    Open,
}

impl HostPolicy {
    /// The policy of a server bound to `bind`; `None` (no listener known) counts as loopback.
    pub(crate) fn for_bind(bind: Option<SocketAddr>) -> Self {
        match bind {
            None => Self::Loopback { port: None },
            Some(addr) if addr.ip().is_loopback() => Self::Loopback { port: Some(addr.port()) },
            Some(_) => Self::Open,
        }
    }

    /// Why a request with these headers is refused, or `Ok`.
    fn check(&self, host: Option<&HeaderValue>, uri: &Uri, origin: Option<&HeaderValue>) -> Result<(), String> {
        let Self::Loopback { port } = self else { return Ok(()) };
        // HTTP/2 carries the host in `:authority`, which lands in the URI.
        let host = match host {
            Some(value) => value.to_str().ok().and_then(|s| Authority::try_from(s).ok()),
            None => uri.authority().cloned(),
        };
        match host {
            Some(authority) if is_loopback(&authority) => {}
            Some(authority) => {
                return Err(format!(
                    "the Host `{authority}` is not allowed: this server listens on a loopback address, so only \
                     localhost, 127.0.0.1 and [::1] name it (this protects it from DNS rebinding)"
                ));
            }
            None => return Err("a request to /mcp needs a valid Host header".to_owned()),
        }
        let Some(origin) = origin else { return Ok(()) };
        let allowed = origin.to_str().ok().and_then(|s| Uri::try_from(s).ok()).is_some_and(|origin| {
            let default_port = match origin.scheme_str() {
                Some("http") => 80,
                Some("https") => 443,
                _ => return false,
            };
            origin.authority().is_some_and(|authority| {
                is_loopback(authority)
                    && port.is_none_or(|port| authority.port_u16().unwrap_or(default_port) == port)
                    && origin.path_and_query().is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/")
            })
        });
        if allowed {
            Ok(())
        } else {
            let port = port.map_or_else(|| "its port".to_owned(), |p| p.to_string());
            Err(format!(
                "the Origin `{}` is not allowed: only pages of this server (http://localhost:{port}, \
                 http://127.0.0.1:{port}, http://[::1]:{port}) may call /mcp from a browser",
                String::from_utf8_lossy(origin.as_bytes())
            ))
        }
    }
}

fn is_loopback(authority: &Authority) -> bool {
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    LOOPBACK_NAMES.contains(&host.as_str())
}

/// The middleware: 403 for a refused `Host` or `Origin`.
pub(crate) async fn check(State(policy): State<Arc<HostPolicy>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    match policy.check(headers.get(HOST), request.uri(), headers.get(ORIGIN)) {
        Ok(()) => next.run(request).await,
        Err(message) => {
            tracing::warn!(%message, "mcp: refused a request (possible DNS rebinding)");
            ApiError::forbidden(message).into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(policy: &HostPolicy, host: &str, origin: Option<&str>) -> bool {
        let host = HeaderValue::from_str(host).ok();
        let origin = origin.and_then(|o| HeaderValue::from_str(o).ok());
        policy.check(host.as_ref(), &Uri::from_static("/mcp"), origin.as_ref()).is_ok()
    }

    #[test]
    fn a_loopback_bind_takes_loopback_hosts_with_any_port() {
        let policy = HostPolicy::for_bind(Some("127.0.0.1:4096".parse().unwrap()));
        assert_eq!(policy, HostPolicy::Loopback { port: Some(4096) });
        for host in
            ["localhost", "localhost:4096", "LocalHost:4096", "127.0.0.1:4096", "[::1]:4096", "[::1]", "127.0.0.1:8080"]
        {
            assert!(check(&policy, host, None), "{host}");
        }
        for host in
            ["evil.example.com", "evil.example.com:4096", "127.0.0.2:4096", "localhost.evil.com", "a@localhost", ""]
        {
            assert!(!check(&policy, host, None), "{host}");
        }
    }

    #[test]
    fn a_loopback_bind_takes_loopback_origins_on_its_port() {
        let policy = HostPolicy::Loopback { port: Some(4096) };
        for origin in ["http://localhost:4096", "https://127.0.0.1:4096", "http://[::1]:4096", "http://LOCALHOST:4096/"]
        {
            assert!(check(&policy, "localhost:4096", Some(origin)), "{origin}");
        }
        for origin in [
            "http://evil.example.com",
            "http://evil.example.com:4096",
            "http://localhost:8080",
            "http://localhost",
            "null",
            "file://localhost",
            "localhost:4096",
            "http://localhost:4096/page",
        ] {
            assert!(!check(&policy, "localhost:4096", Some(origin)), "{origin}");
        }
        let any_port = HostPolicy::Loopback { port: None };
        assert!(check(&any_port, "localhost", Some("http://localhost:1234")));
        assert!(check(&any_port, "localhost", Some("http://localhost")));
    }

    #[test]
    fn other_binds_are_open() {
        for bind in ["0.0.0.0:4096", "192.168.1.5:4096", "[::]:4096"] {
            let policy = HostPolicy::for_bind(Some(bind.parse().unwrap()));
            assert_eq!(policy, HostPolicy::Open, "{bind}");
            assert!(check(&policy, "evil.example.com", Some("http://evil.example.com")));
        }
    }
}
