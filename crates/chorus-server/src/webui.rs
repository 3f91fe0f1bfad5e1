//! The web UI at `/`: the bundle Vite builds from `web/` into `crates/chorus-server/webui`
//! (committed, as llama.cpp commits its server's UI), compressed into the binary by
//! `rust-embed`, so neither `cargo build` nor the page needs Node or a network.
//!
//! It is the router's fallback: a `GET` or `HEAD` of a path that names a bundled file gets it
//! (`/` is `index.html`); anything else gets the API's JSON 404. The files are public (the page
//! asks for the API key itself). Hashed `assets/*` are cached for a year, the rest revalidated by
//! `ETag`; responses are gzip-compressed for clients that accept it (tower-http's
//! `CompressionLayer`). The page gets a `Content-Security-Policy` that allows only this origin,
//! so a model's answer rendered as HTML cannot load or run anything from elsewhere.

use axum::Router;
use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tower_http::compression::CompressionLayer;

/// The built bundle (`index.html`, `assets/`, `manifest.webmanifest`, icons).
#[derive(rust_embed::Embed)]
#[folder = "webui/"]
struct Bundle;

/// What the page may load: its own origin (HTTP and WebSocket), blob and data images (the QR
/// code, icons), and inline style attributes (set by the framework).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' blob: data:; connect-src 'self' ws: wss:; media-src 'self' blob:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// The fallback service that serves the bundle, gzip-compressed where the client accepts it.
pub(crate) fn service() -> Router {
    Router::new().fallback(serve).layer(CompressionLayer::new())
}

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let file = match (&method, Bundle::get(path)) {
        (&Method::GET | &Method::HEAD, Some(file)) => file,
        _ => return crate::error::not_found(method, uri).await.into_response(),
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = if headers.get(IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(file.data.into_owned()));
        if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
            r.headers_mut().insert(CONTENT_TYPE, mime);
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, etag);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path.ends_with(".html") {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
