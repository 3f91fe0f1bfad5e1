//! Sending one request upstream: [`Upstreams`] (the pool, the HTTP client, the
//! key) and [`Upstreams::send`], which POSTs a JSON body to the leased URL and
//! moves to another URL when the connection fails (the request never reached
//! the upstream, so it is safe to send again), marking URLs that fail as
//! unhealthy.

use std::sync::Arc;

use chorus_engine::BackendError;
use serde_json::Value;

use crate::error::{from_response, unreachable};
use crate::pool::{Lease, Pool};

/// What every request task shares.
pub(crate) struct Upstreams {
    pub(crate) pool: Arc<Pool>,
    pub(crate) http: reqwest::Client,
    /// `Authorization: Bearer` value.
    pub(crate) api_key: Option<String>,
    /// The model name sent upstream.
    pub(crate) model: String,
}

/// The key is left out, as from [`crate::UpstreamConfig`]'s `Debug`.
impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").field("pool", &self.pool).field("model", &self.model).finish_non_exhaustive()
    }
}

impl Upstreams {
    /// POST `body` to `path` under the leased URL and return its 2xx response. On a connection
    /// failure the URL is marked unhealthy and the next URL [`Pool::pick`] gives (for `key`,
    /// leaving out those tried) is tried, until none is left; `lease` is then the URL that
    /// answered.
    ///
    /// # Errors
    /// [`BackendError::Upstream`]: the upstream's error status and object (a 5xx also marks
    /// the URL unhealthy), or status 0 when no URL could be reached or one timed out.
    pub(crate) async fn send(
        &self,
        lease: &mut Lease,
        key: Option<&str>,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, BackendError> {
        let mut tried = Vec::new();
        loop {
            let url = format!("{}{path}", lease.url());
            let mut rb = self.http.post(&url).json(body);
            if let Some(api_key) = &self.api_key {
                rb = rb.bearer_auth(api_key);
            }
            // The client's read timeout bounds the wait for the headers too; a timeout is an
            // error but does not mark the URL (a loaded upstream is slow, not down).
            let response = match rb.send().await {
                Ok(response) => response,
                Err(e) if e.is_connect() => {
                    let error = unreachable(lease.url(), &e);
                    lease.mark_unhealthy(&error.to_string());
                    tried.push(lease.index());
                    match self.pool.pick(key, &tried) {
                        Some(next) => {
                            tracing::warn!(%error, next = next.url(), "upstream unreachable; trying the next");
                            *lease = next;
                            continue;
                        }
                        None => return Err(error),
                    }
                }
                Err(e) => {
                    let error = unreachable(lease.url(), &e);
                    if !e.is_timeout() {
                        lease.mark_unhealthy(&error.to_string());
                    }
                    return Err(error);
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let body = response.bytes().await.unwrap_or_default();
            let error = from_response(lease.url(), status.as_u16(), &body);
            if status.is_server_error() {
                lease.mark_unhealthy(&format!("answered {status}"));
            }
            tracing::debug!(url, %status, %error, "upstream refused a request");
            return Err(error);
        }
    }
}
