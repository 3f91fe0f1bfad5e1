//! An imitation of the Hugging Face hub on 127.0.0.1: the `resolve` route
//! answers like the real hub (LFS files: 302 to a CDN on another port with
//! `X-Linked-Etag`, `X-Linked-Size` and `X-Repo-Commit`; plain files: 200 with
//! `ETag`), and the CDN serves bytes with `Range` support. Every request is
//! recorded so tests can count and inspect them. A blob can be set to fail
//! once: the connection cut, or the body stalled, after N bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use futures::stream::{self, BoxStream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// A commit hash the fake hub reports in `X-Repo-Commit`.
pub(crate) const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A request the fake hub or CDN received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) range: Option<String>,
    pub(crate) authorization: Option<String>,
}

/// What the hub answers for one `OWNER/REPO/resolve/REVISION/FILE`.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// An LFS file: 302 to the CDN. `linked_size` and `etag` are what the hub
    /// announces; `content` what the CDN serves.
    Lfs { content: Vec<u8>, etag: String, linked_size: u64, honor_range: bool },
    /// A plain git file served directly with a git-style ETag.
    Plain { content: Vec<u8>, etag: String },
    /// A relative redirect, as for a renamed repository.
    Moved { location: String },
    /// An error answer with an optional `X-Error-Code`.
    Error { status: StatusCode, code: Option<&'static str> },
}

impl Entry {
    /// An LFS entry whose ETag is the real SHA-256 of `content`.
    pub(crate) fn lfs(content: &[u8]) -> Self {
        Entry::Lfs {
            content: content.to_vec(),
            etag: sha256_hex(content),
            linked_size: content.len() as u64,
            honor_range: true,
        }
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// How the next `GET` of a blob fails, once.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// Sends this many bytes of the body, then (after a pause that lets them
    /// reach the client) drops the connection.
    CutAfter(usize),
    /// Sends this many bytes of the body, then sends nothing more.
    StallAfter(usize),
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    seen: Vec<Seen>,
    /// By ETag; taken by the first `GET` of the blob.
    faults: HashMap<String, Fault>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    cdn_base: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, method: &Method, path: String, headers: &HeaderMap) {
        let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok()).map(str::to_owned);
        let seen = Seen {
            method: method.clone(),
            path,
            range: text(header::RANGE),
            authorization: text(header::AUTHORIZATION),
        };
        self.lock().seen.push(seen);
    }
}

/// A running fake hub and CDN; both stop when the test's runtime ends.
pub(crate) struct FakeHub {
    pub(crate) endpoint: String,
    shared: Shared,
}

impl FakeHub {
    pub(crate) async fn start() -> FakeHub {
        let hub_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hub");
        let cdn_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind cdn");
        let endpoint = format!("http://{}", hub_listener.local_addr().expect("hub addr"));
        let cdn_base = format!("http://{}", cdn_listener.local_addr().expect("cdn addr"));
        let shared = Shared { inner: Arc::default(), cdn_base };
        let hub =
            Router::new().route("/{owner}/{repo}/resolve/{revision}/{*file}", get(resolve)).with_state(shared.clone());
        let cdn = Router::new().route("/cdn/{etag}", get(cdn)).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(hub_listener, hub).await });
        tokio::spawn(async move { axum::serve(cdn_listener, cdn).await });
        FakeHub { endpoint, shared }
    }

    /// Serves `entry` at `OWNER/REPO`, `revision`, `file`.
    pub(crate) fn add(&self, repo: &str, revision: &str, file: &str, entry: Entry) {
        self.shared.lock().entries.insert(format!("{repo}/{revision}/{file}"), entry);
    }

    /// Makes the next `GET` of the blob `etag` from the CDN fail as `fault` says.
    pub(crate) fn fail_once(&self, etag: &str, fault: Fault) {
        self.shared.lock().faults.insert(etag.to_owned(), fault);
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }

    pub(crate) fn requests(&self) -> usize {
        self.shared.lock().seen.len()
    }

    pub(crate) fn cdn_gets(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path.starts_with("/cdn/") && s.method == Method::GET).collect()
    }
}

async fn resolve(
    State(shared): State<Shared>,
    method: Method,
    Path((owner, repo, revision, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.record(&method, format!("/{owner}/{repo}/resolve/{revision}/{file}"), &headers);
    let entry = shared.lock().entries.get(&format!("{owner}/{repo}/{revision}/{file}")).cloned();
    // As the hub does, a commit hash resolves to itself.
    let commit = if is_commit(&revision) { revision.clone() } else { COMMIT.to_owned() };
    let builder = Response::builder();
    let response = match entry {
        None => builder
            .status(StatusCode::NOT_FOUND)
            .header("x-error-code", "EntryNotFound")
            .header("x-error-message", "Entry not found")
            .body(Body::empty()),
        Some(Entry::Error { status, code }) => {
            let builder = builder.status(status);
            let builder = match code {
                Some(code) => builder.header("x-error-code", code),
                None => builder,
            };
            builder.body(Body::empty())
        }
        Some(Entry::Moved { location }) => {
            builder.status(StatusCode::TEMPORARY_REDIRECT).header(header::LOCATION, location).body(Body::empty())
        }
        Some(Entry::Lfs { etag, linked_size, .. }) => builder
            .status(StatusCode::FOUND)
            .header(header::LOCATION, format!("{}/cdn/{etag}", shared.cdn_base))
            .header("x-repo-commit", &commit)
            .header("x-linked-etag", format!("\"{etag}\""))
            .header("x-linked-size", linked_size.to_string())
            // The pointer file's own ETag, which must not be used.
            .header(header::ETAG, "\"ffffffffffffffffffffffffffffffffffffffff\"")
            .body(Body::empty()),
        Some(Entry::Plain { content, etag }) => builder
            .status(StatusCode::OK)
            .header("x-repo-commit", &commit)
            .header(header::ETAG, format!("\"{etag}\""))
            .header(header::CONTENT_LENGTH, content.len().to_string())
            .body(if method == Method::HEAD { Body::empty() } else { Body::from(content) }),
    };
    response.unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn cdn(State(shared): State<Shared>, method: Method, Path(etag): Path<String>, headers: HeaderMap) -> Response {
    shared.record(&method, format!("/cdn/{etag}"), &headers);
    let found = shared.lock().entries.values().find_map(|entry| match entry {
        Entry::Lfs { content, etag: e, honor_range, .. } if *e == etag => Some((content.clone(), *honor_range)),
        _ => None,
    });
    let Some((content, honor_range)) = found else {
        return Response::builder().status(StatusCode::NOT_FOUND).body(Body::empty()).unwrap_or_default();
    };
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|_| honor_range);
    let fault = if method == Method::GET { shared.lock().faults.remove(&etag) } else { None };
    let response = match start {
        Some(start) if start >= content.len() => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{}", content.len()))
            .body(Body::empty()),
        Some(start) => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{}", content.len() - 1, content.len()))
            .header(header::CONTENT_LENGTH, content.len() - start)
            .body(body(content[start..].to_vec(), fault)),
        None => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, content.len())
            .body(body(content, fault)),
    };
    response.unwrap_or_default()
}

/// The body: all of `content`, or the part before a fault and then the fault.
fn body(content: Vec<u8>, fault: Option<Fault>) -> Body {
    type Chunk = Result<Vec<u8>, std::io::Error>;
    let (before, rest): (Vec<u8>, BoxStream<'static, Chunk>) = match fault {
        None => return Body::from(content),
        Some(Fault::CutAfter(n)) => {
            // An error right after the bytes would make hyper drop them
            // unsent; the pause lets it flush them first.
            let cut = stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Err(std::io::Error::other("the fake CDN cut the connection"))
            });
            (content[..n.min(content.len())].to_vec(), cut.boxed())
        }
        Some(Fault::StallAfter(n)) => (content[..n.min(content.len())].to_vec(), stream::pending().boxed()),
    };
    Body::from_stream(stream::once(async move { Ok(before) }).chain(rest))
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}
