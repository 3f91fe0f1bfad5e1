//! How MCP requests and sessions end.
//!
//! What a graceful shutdown needs of `/mcp`: [`McpSessions`], the token that ends every MCP
//! session (rmcp closes their streams when it is cancelled) and the count of `POST`s in flight
//! ([`InFlight`]: a message whose answer has not been sent yet, such as a running tool call).
//! An MCP client keeps a stream open between calls (its `GET` stream), which would hold the
//! server's graceful shutdown until the shutdown timeout. So once the shutdown starts, the
//! sessions are closed as soon as no `POST` is in flight: answers being worked on are sent
//! first, as every in-flight request's is; idle clients do not delay the stop.
//!
//! What tells a client's cancellation from its going away: [`Cancellations`]. rmcp cancels a
//! request's token (`RequestContext::ct`) both when the client sends `notifications/cancelled`
//! for it and when the MCP session ends (`DELETE`, idle timeout, shutdown, a stateless
//! request's stream closed), so a handler that must act on the first only (a session prompt
//! belongs to its session, not to the connection) watches its request here instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::RequestId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The MCP sessions of a server, as its shutdown sees them.
#[derive(Debug, Clone)]
pub(crate) struct McpSessions {
    /// `POST`s whose answer has not been sent yet.
    pub(crate) posts: Arc<InFlight>,
    /// Cancelled to end every session (given to rmcp); a child of the server's abort token, so
    /// the shutdown timeout ends them too.
    pub(crate) stop: CancellationToken,
}

impl McpSessions {
    /// Sessions that `stop` ends.
    pub(crate) fn new(stop: CancellationToken) -> Self {
        Self { posts: Arc::default(), stop }
    }

    /// End every session once no `POST` is in flight (at once when none is).
    pub(crate) async fn close_when_idle(&self) {
        tokio::select! {
            () = self.posts.idle() => self.stop.cancel(),
            () = self.stop.cancelled() => {}
        }
    }
}

/// A count of requests in flight that can be waited on until it is zero.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One request in flight; dropping it ends it.
#[derive(Debug)]
pub(crate) struct Call(Arc<InFlight>);

impl InFlight {
    /// Count a request until the returned guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> Call {
        self.count.fetch_add(1, Ordering::SeqCst);
        Call(self.clone())
    }

    /// Wait until nothing is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a request ending in between still wakes us.
            notified.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The requests of one MCP session that a `notifications/cancelled` from its client cancels:
/// [`ServerHandler::on_cancelled`](rmcp::ServerHandler::on_cancelled) calls [`Self::cancel`],
/// which cancels the token of a request being [watched](Self::watch).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancellations(Arc<Mutex<HashMap<RequestId, CancellationToken>>>);

/// A request being watched; dropping it stops the watch.
#[derive(Debug)]
pub(crate) struct Watched {
    cancellations: Cancellations,
    id: RequestId,
    token: CancellationToken,
}

impl Cancellations {
    /// Watch the request `id` until the returned guard is dropped.
    ///
    /// rmcp cancels the request's own token before it hands the notification to
    /// `on_cancelled`, so a cancellation that comes before the watch starts has already
    /// cancelled that token: check it after calling this, before starting the work.
    pub(crate) fn watch(&self, id: RequestId) -> Watched {
        let token = CancellationToken::new();
        self.map().insert(id.clone(), token.clone());
        Watched { cancellations: self.clone(), id, token }
    }

    /// The client cancelled the request `id`: cancel its watch, if it has one.
    pub(crate) fn cancel(&self, id: &RequestId) {
        if let Some(token) = self.map().get(id) {
            token.cancel();
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Watched {
    /// Resolves when the client cancels the request.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.cancellations.map().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn only_the_watched_request_is_cancelled_while_it_is_watched() {
        let cancellations = Cancellations::default();
        let first = cancellations.watch(RequestId::Number(1));
        let second = cancellations.watch(RequestId::Number(2));
        cancellations.cancel(&RequestId::Number(1));
        first.cancelled().await;
        let waited = tokio::time::timeout(Duration::from_millis(20), second.cancelled()).await;
        assert!(waited.is_err(), "another request is not cancelled");
        drop(second);
        cancellations.cancel(&RequestId::Number(2));
        assert!(cancellations.map().len() == 1, "a dropped watch is forgotten");
        drop(first);
        assert!(cancellations.map().is_empty());
    }

    #[tokio::test]
    async fn sessions_close_once_the_last_request_ends() {
        let sessions = McpSessions::new(CancellationToken::new());
        let first = sessions.posts.enter();
        let second = sessions.posts.enter();
        let mut closing = tokio::spawn({
            let sessions = sessions.clone();
            async move { sessions.close_when_idle().await }
        });
        drop(first);
        let waited = tokio::time::timeout(Duration::from_millis(50), &mut closing).await;
        assert!(waited.is_err() && !sessions.stop.is_cancelled(), "a request is still in flight");
        drop(second);
        closing.await.expect("the task");
        assert!(sessions.stop.is_cancelled());
    }

    #[tokio::test]
    async fn idle_sessions_close_at_once() {
        let sessions = McpSessions::new(CancellationToken::new());
        sessions.close_when_idle().await;
        assert!(sessions.stop.is_cancelled());
    }
}
