//! The server while its models load at startup: every request on the already bound listener
//! gets llama-server's `503 Loading model` (`{"error": {"code": 503, "message": "Loading
//! model", "type": "unavailable_error"}}`, llama.cpp `tools/server/README.md`, "GET
//! /health"), with `Connection: close`, so a client polling `/health` sees the load and then
//! reaches the real server on a new connection.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// A listener lent to the loading server, handed back once it stopped.
struct Lent(Arc<TcpListener>);

impl axum::serve::Listener for Lent {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok(conn) => return conn,
                // Out of file descriptors and the like: wait, as axum's own listener does.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed while loading");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

async fn loading() -> Response {
    let body = json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Answer every request on `listener` with `503 Loading model` until `load` completes; then
/// stop (connections still open are closed once their request is answered) and give the
/// listener back with `load`'s output, for [`crate::run`].
///
/// # Errors
/// An I/O error when the loading server could not stop cleanly.
pub async fn while_loading<T>(listener: TcpListener, load: impl Future<Output = T>) -> io::Result<(TcpListener, T)> {
    let shared = Arc::new(listener);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().fallback(loading);
    let server = axum::serve(Lent(Arc::clone(&shared)), app)
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .into_future();
    let server = tokio::spawn(server);
    let out = load.await;
    let _ = stop.send(());
    server.await.map_err(io::Error::other)??;
    let listener = Arc::try_unwrap(shared).map_err(|_| io::Error::other("the loading server kept the listener"))?;
    Ok((listener, out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get_health(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut out = String::new();
        // `Connection: close`: the server ends the connection after the answer.
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn answers_503_loading_until_the_load_is_done_then_gives_the_listener_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (done, wait) = tokio::sync::oneshot::channel::<u32>();
        let lent = tokio::spawn(while_loading(listener, async { wait.await.unwrap() }));
        let answer = get_health(addr).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        assert!(answer.ends_with(r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#));
        done.send(7).unwrap();
        let (listener, out) = lent.await.unwrap().unwrap();
        assert_eq!((out, listener.local_addr().unwrap()), (7, addr));
        // The same listener serves the next server.
        let app = Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let answer = {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
    }
}
