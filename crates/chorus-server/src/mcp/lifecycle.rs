//! What a graceful shutdown needs of `/mcp`: [`McpSessions`], the token that ends every MCP
//! session (rmcp closes their streams when it is cancelled) and the count of `POST`s in flight
//! ([`InFlight`]: a message whose answer has not been sent yet, such as a running tool call).
//!
//! An MCP client keeps a stream open between calls (its `GET` stream), which would hold the
//! server's graceful shutdown until the shutdown timeout. So once the shutdown starts, the
//! sessions are closed as soon as no `POST` is in flight: answers being worked on are sent
//! first, as every in-flight request's is; idle clients do not delay the stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
