//! Talking to the hub: the `resolve` URL of a file, the HTTP clients, and the
//! metadata request (a `HEAD` that follows only relative redirects, as
//! huggingface_hub's `get_hf_file_metadata` does), with the mapping of the
//! hub's error answers onto [`HubError`].

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{self, HeaderMap};
use reqwest::{Client, StatusCode, Url, redirect};

use crate::error::{error_chain, transport_cause};
use crate::source::is_safe_name;
use crate::{HubConfig, HubError, HubFile};

/// Time allowed to open a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a response; a stalled transfer fails
/// after this (there is no limit on a whole body, which may be gigabytes).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Limit on the whole metadata request, redirects included.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Relative redirects followed by the metadata request (renamed repositories).
const MAX_RELATIVE_REDIRECTS: usize = 10;

/// Python's `urllib.parse.quote` with `safe=""`: everything but letters,
/// digits and `-._~` is percent-encoded.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What the hub says about a file before it is downloaded.
#[derive(Debug)]
pub(crate) struct FileMetadata {
    /// `X-Linked-Etag` (LFS files: the SHA-256 of the content) or `ETag`
    /// (plain git files: the git blob hash), unquoted; a safe file name.
    pub(crate) etag: String,
    /// `X-Linked-Size` or `Content-Length` of the first answer, in bytes.
    pub(crate) size: Option<u64>,
    /// `X-Repo-Commit`: the commit the revision resolved to.
    pub(crate) commit: Option<String>,
    /// Where the content is fetched: the redirect target (a CDN) for LFS
    /// files, else the resolve URL itself.
    pub(crate) location: Url,
}

/// The two HTTP clients: metadata requests must see redirects, downloads
/// follow them (reqwest drops `Authorization` on a redirect to another host).
pub(crate) struct Clients {
    pub(crate) metadata: Client,
    pub(crate) download: Client,
}

impl Clients {
    pub(crate) fn new() -> Result<Self, HubError> {
        let build = |policy| {
            Client::builder()
                .user_agent(concat!("chorus-hub/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .redirect(policy)
                .build()
                .map_err(|e| HubError::Client { cause: error_chain(&e) })
        };
        Ok(Clients { metadata: build(redirect::Policy::none())?, download: build(redirect::Policy::limited(10))? })
    }
}

/// `{endpoint}/{repo}/resolve/{revision}/{file}`, with the revision and each
/// file segment percent-encoded as huggingface_hub's `hf_hub_url` does.
pub(crate) fn resolve_url(endpoint: &str, file: &HubFile) -> Result<Url, HubError> {
    let revision = utf8_percent_encode(&file.revision, SEGMENT).to_string();
    let path: Vec<String> = file.file.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect();
    let text = format!("{}/{}/resolve/{revision}/{}", endpoint.trim_end_matches('/'), file.repo, path.join("/"));
    let url = Url::parse(&text)
        .map_err(|e| HubError::InvalidEndpoint { endpoint: endpoint.to_owned(), cause: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HubError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            cause: "the scheme must be http or https".to_owned(),
        });
    }
    Ok(url)
}

/// Whether two URLs are on the same host and port (huggingface_hub compares
/// `netloc` to decide whether the token may be sent along).
pub(crate) fn same_host(a: &Url, b: &Url) -> bool {
    a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Adds `Authorization: Bearer TOKEN` when a token is configured.
pub(crate) fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Asks the hub for the file's metadata. Relative redirects are followed
/// (a renamed repository); the first absolute redirect or success answer
/// carries the metadata, and an absolute `Location` becomes the download URL.
pub(crate) async fn file_metadata(
    client: &Client,
    config: &HubConfig,
    file: &HubFile,
    url: Url,
) -> Result<FileMetadata, HubError> {
    let model = file.to_string();
    let token = config.token.as_deref();
    let mut url = url;
    for _ in 0..=MAX_RELATIVE_REDIRECTS {
        let request = client.head(url.clone()).header(header::ACCEPT_ENCODING, "identity").timeout(HEAD_TIMEOUT);
        let response = with_token(request, token)
            .send()
            .await
            .map_err(|e| HubError::Unreachable { model: model.clone(), cause: transport_cause(e) })?;
        let status = response.status();
        let headers = response.headers();
        if status.is_redirection() {
            let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
                return Err(bad(&model, format!("HTTP {status} without a Location header")));
            };
            match Url::parse(location) {
                Ok(target) => return metadata_from(&model, headers, target),
                Err(_) => {
                    url = url.join(location).map_err(|e| bad(&model, format!("bad Location `{location}`: {e}")))?;
                    tracing::debug!(%url, "hub redirected to another path");
                    continue;
                }
            }
        }
        if status.is_success() {
            return metadata_from(&model, headers, url);
        }
        return Err(status_error(file, &url, status, headers, token.is_some()));
    }
    Err(bad(&model, format!("more than {MAX_RELATIVE_REDIRECTS} redirects")))
}

fn metadata_from(model: &str, headers: &HeaderMap, location: Url) -> Result<FileMetadata, HubError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let raw_etag = text("x-linked-etag")
        .or_else(|| text(header::ETAG.as_str()))
        .ok_or_else(|| bad(model, "no ETag header".to_owned()))?;
    let etag = normalize_etag(raw_etag);
    if !is_safe_name(etag) {
        return Err(bad(model, format!("ETag `{raw_etag}` is not a usable file name")));
    }
    let size = match text("x-linked-size").or_else(|| text(header::CONTENT_LENGTH.as_str())) {
        Some(size) => Some(size.parse::<u64>().map_err(|_| bad(model, format!("size `{size}` is not a number")))?),
        None => None,
    };
    let commit = match text("x-repo-commit") {
        Some(commit) if is_safe_name(commit) => Some(commit.to_owned()),
        Some(commit) => {
            return Err(bad(model, format!("commit `{commit}` is not a usable folder name")));
        }
        None => None,
    };
    Ok(FileMetadata { etag: etag.to_owned(), size, commit, location })
}

/// Strips a weak-validator prefix and the quotes: `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> &str {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.trim_matches('"')
}

fn bad(model: &str, reason: String) -> HubError {
    HubError::BadMetadata { model: model.to_owned(), reason }
}

/// Maps an unsuccessful answer to an error, using the hub's `X-Error-Code`
/// and `X-Error-Message` headers as huggingface_hub's `hf_raise_for_status`
/// does.
pub(crate) fn status_error(
    file: &HubFile,
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    token_sent: bool,
) -> HubError {
    let model = file.to_string();
    let code = headers.get("x-error-code").and_then(|v| v.to_str().ok());
    let not_found = |what: String| HubError::NotFound { model: model.clone(), what };
    match (status, code) {
        (_, Some("GatedRepo")) => HubError::Gated { model },
        (_, Some("RepoNotFound")) => not_found(format!("repository {} (set HF_TOKEN if it is private)", file.repo)),
        (_, Some("RevisionNotFound")) => not_found(format!("revision {} in {}", file.revision, file.repo)),
        (_, Some("EntryNotFound")) | (StatusCode::NOT_FOUND, _) => {
            not_found(format!("file {} in {} at revision {}", file.file, file.repo, file.revision))
        }
        (StatusCode::UNAUTHORIZED, _) => HubError::Unauthorized { model, token_sent },
        (StatusCode::FORBIDDEN, _) => HubError::Forbidden { model, repo: file.repo.clone() },
        _ => {
            let detail = headers
                .get("x-error-message")
                .and_then(|v| v.to_str().ok())
                .map(|message| format!(": {message}"))
                .unwrap_or_default();
            let mut shown = url.clone();
            shown.set_query(None);
            HubError::Http { model, url: shown.to_string(), status: status.as_u16(), detail }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(repo: &str, path: &str, revision: &str) -> HubFile {
        HubFile { repo: repo.into(), file: path.into(), revision: revision.into() }
    }

    #[test]
    fn resolve_url_encodes_like_hf_hub_url() {
        let url = resolve_url("https://hf.example/", &file("o/r", "dir/a b+c.gguf", "refs/pr/1")).ok();
        assert_eq!(
            url.map(String::from).as_deref(),
            Some("https://hf.example/o/r/resolve/refs%2Fpr%2F1/dir/a%20b%2Bc.gguf")
        );
    }

    #[test]
    fn resolve_url_rejects_bad_endpoints() {
        for endpoint in ["not a url", "ftp://hf.example"] {
            assert!(matches!(
                resolve_url(endpoint, &file("o/r", "f.gguf", "main")),
                Err(HubError::InvalidEndpoint { .. })
            ));
        }
    }

    #[test]
    fn etags_are_unquoted() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
    }

    #[test]
    fn hub_error_codes_win_over_status() {
        let f = file("o/r", "f.gguf", "main");
        let url = Url::parse("https://hf.example/o/r/resolve/main/f.gguf").ok();
        let Some(url) = url else { panic!("bad test url") };
        let mut headers = HeaderMap::new();
        headers.insert("x-error-code", header::HeaderValue::from_static("GatedRepo"));
        assert!(matches!(status_error(&f, &url, StatusCode::UNAUTHORIZED, &headers, false), HubError::Gated { .. }));
        headers.insert("x-error-code", header::HeaderValue::from_static("RepoNotFound"));
        assert!(matches!(
            status_error(&f, &url, StatusCode::UNAUTHORIZED, &headers, false),
            HubError::NotFound { what, .. } if what.starts_with("repository o/r")
        ));
        let empty = HeaderMap::new();
        assert!(matches!(
            status_error(&f, &url, StatusCode::UNAUTHORIZED, &empty, true),
            HubError::Unauthorized { token_sent: true, .. }
        ));
        assert!(matches!(status_error(&f, &url, StatusCode::FORBIDDEN, &empty, true), HubError::Forbidden { .. }));
        assert!(matches!(
            status_error(&f, &url, StatusCode::BAD_GATEWAY, &empty, false),
            HubError::Http { status: 502, .. }
        ));
    }
}
