//! The web UI's HTTP side on the real server (the page itself is tested in a real Chromium by
//! `web/tests`): the embedded bundle at `/` with its caching, compression and CSP, `--no-webui`,
//! the files public while the API needs a key, the key as a WebSocket subprotocol, `GET /qr`
//! and `/info`, renaming a session and changing its model (`PATCH`, `session.updated`), the
//! sessions search, and the mobile API keeping devices apart.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{runtime, server};

const KEY: &str = "sk-test webui/key";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// The `src="/assets/…"` and `href="/assets/…"` paths of a page.
fn asset_paths(html: &str) -> Vec<String> {
    html.split(['"', '\'']).filter(|s| s.starts_with("/assets/")).map(str::to_owned).collect()
}

#[test]
fn the_bundle_is_served_cached_and_compressed() {
    let srv = server(&["--api-key", KEY]);
    runtime().block_on(async {
        let page = http().get(format!("{}/", srv.url)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the page needs no key");
        assert!(page.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
        assert_eq!(page.headers()[CACHE_CONTROL], "no-cache");
        let etag = page.headers()[ETAG].clone();
        let html = page.text().await.unwrap();
        assert!(html.contains("manifest.webmanifest"), "a PWA manifest link: {html}");
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing from elsewhere: {html}");

        let again = http().get(format!("{}/", srv.url)).header(IF_NONE_MATCH, etag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let assets = asset_paths(&html);
        assert!(assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
        for asset in &assets {
            let r = http().get(format!("{}{asset}", srv.url)).header(ACCEPT_ENCODING, "gzip").send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{asset}");
            assert_eq!(r.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable", "{asset}");
            assert_eq!(r.headers().get(CONTENT_ENCODING).map(|v| v.to_str().unwrap()), Some("gzip"), "{asset}");
            let kind = r.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
            let want = if asset.ends_with(".js") {
                "javascript"
            } else if asset.ends_with(".css") {
                "text/css"
            } else {
                ""
            };
            assert!(kind.contains(want), "{asset}: {kind}");
        }

        let manifest: Value =
            http().get(format!("{}/manifest.webmanifest", srv.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(manifest["name"], "chorus");
        assert_eq!(manifest["display"], "standalone");

        // An unknown path is the API's 404, and the API still needs the key.
        let missing = http().get(format!("{}/no/such/page", srv.url)).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");
        let sessions = http().get(format!("{}/api/v1/sessions", srv.url)).send().await.unwrap();
        assert_eq!(sessions.status(), StatusCode::UNAUTHORIZED);
        let posted = http().post(format!("{}/", srv.url)).send().await.unwrap();
        assert_eq!(posted.status(), StatusCode::NOT_FOUND, "only GET and HEAD read files");
    });
}

#[test]
fn no_webui_turns_the_page_off() {
    let srv = server(&["--no-webui"]);
    runtime().block_on(async {
        let page = http().get(format!("{}/", srv.url)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert_eq!(page.json::<Value>().await.unwrap()["error"]["code"], "not_found");
        let health = http().get(format!("{}/health", srv.url)).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    });
}

/// A WebSocket handshake offering `chorus` and, when given, a key as `bearer.B64`.
async fn ws_handshake(url: &str, key: Option<&str>) -> Result<Option<String>, u16> {
    let mut request = format!("{}/ws", url.replacen("http://", "ws://", 1)).into_client_request().unwrap();
    let mut protocols = "chorus".to_owned();
    if let Some(key) = key {
        protocols.push_str(&format!(", bearer.{}", URL_SAFE_NO_PAD.encode(key)));
    }
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&protocols).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => {
            Ok(response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned()))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

#[test]
fn a_browser_sends_its_key_as_a_websocket_subprotocol() {
    let srv = server(&["--api-key", KEY]);
    runtime().block_on(async {
        assert_eq!(ws_handshake(&srv.url, Some(KEY)).await, Ok(Some("chorus".into())));
        assert_eq!(ws_handshake(&srv.url, Some("wrong")).await, Err(401));
        assert_eq!(ws_handshake(&srv.url, None).await, Err(401));
    });
    let open = server(&[]);
    runtime().block_on(async {
        assert_eq!(ws_handshake(&open.url, None).await, Ok(Some("chorus".into())));
    });
}

#[test]
fn qr_and_info_name_the_phone_url_without_the_key() {
    let srv = server(&["--api-key", KEY, "--public-url", "http://chorus.lan:4096/"]);
    runtime().block_on(async {
        let qr = http().get(format!("{}/qr", srv.url)).send().await.unwrap();
        assert_eq!(qr.status(), StatusCode::UNAUTHORIZED, "the code is behind the key");
        let qr = http().get(format!("{}/qr", srv.url)).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(qr.status(), StatusCode::OK);
        assert_eq!(qr.headers()[CONTENT_TYPE], "image/svg+xml");
        assert!(qr.text().await.unwrap().contains("<svg"));
        for path in ["/info", "/api/v1/info"] {
            let info: Value =
                http().get(format!("{}{path}", srv.url)).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
            assert_eq!(info["url"], "http://chorus.lan:4096/", "{path}: {info}");
            assert_eq!(info["router"], false, "one model: no choice to route");
            assert_eq!(info["models"], json!(["tiny"]));
        }
    });
    // Bound to loopback, the URL is the bound address.
    let local = server(&[]);
    runtime().block_on(async {
        let info: Value = http().get(format!("{}/info", local.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(info["url"], format!("{}/", local.url));
    });
}

#[test]
fn sessions_are_renamed_re_modelled_and_searched() {
    let srv = server(&[]);
    let c = http();
    runtime().block_on(async {
        let create = |title: &'static str| {
            let c = c.clone();
            let url = srv.url.clone();
            async move {
                let s: Value = c
                    .post(format!("{url}/api/v1/sessions"))
                    .json(&json!({"title": title}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                s["id"].as_str().unwrap().to_owned()
            }
        };
        let a = create("Rust lifetimes").await;
        let b = create("Dinner plans").await;
        let events = c.get(format!("{}/api/v1/sessions/{a}/events", srv.url)).send().await.unwrap().bytes_stream();
        futures::pin_mut!(events);

        let patch = |body: Value| {
            let c = c.clone();
            let url = format!("{}/api/v1/sessions/{a}", srv.url);
            async move { c.patch(url).json(&body).send().await.unwrap() }
        };
        let renamed: Value = patch(json!({"title": "  Borrowing rules "})).await.json().await.unwrap();
        assert_eq!((renamed["title"].as_str(), renamed["model"].as_str()), (Some("Borrowing rules"), None));
        let modelled: Value = patch(json!({"model": "tiny"})).await.json().await.unwrap();
        assert_eq!((modelled["title"].as_str(), modelled["model"].as_str()), (Some("Borrowing rules"), Some("tiny")));
        let cleared: Value = patch(json!({"model": null})).await.json().await.unwrap();
        assert_eq!(cleared["model"], Value::Null);

        let unknown = patch(json!({"model": "no-such-model"})).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(unknown.json::<Value>().await.unwrap()["error"]["code"], "model_not_found");
        let long = patch(json!({"title": "x".repeat(201)})).await;
        assert_eq!(long.status(), StatusCode::BAD_REQUEST);
        assert_eq!(long.json::<Value>().await.unwrap()["error"]["param"], "title");
        let typo = patch(json!({"tittle": "x"})).await;
        assert_eq!(typo.status(), StatusCode::BAD_REQUEST);
        let ghost = c
            .patch(format!("{}/api/v1/sessions/ses_{}", srv.url, "0".repeat(32)))
            .json(&json!({"title": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(ghost.status(), StatusCode::NOT_FOUND);

        // Each change is announced to the session's watchers.
        let mut text = String::new();
        while text.matches("event: session.updated").count() < 3 {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
                .await
                .expect("session.updated events")
                .unwrap()
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(text.contains("Borrowing rules"), "{text}");

        let found: Value =
            c.get(format!("{}/api/v1/sessions?q=BORROW", srv.url)).send().await.unwrap().json().await.unwrap();
        let ids: Vec<&str> = found["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [a.as_str()]);
        let all: Value = c.get(format!("{}/api/v1/sessions?q=", srv.url)).send().await.unwrap().json().await.unwrap();
        let all: Vec<&str> = all["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(all, [a.as_str(), b.as_str()], "an empty q lists every session, latest change first");
        let none: Value =
            c.get(format!("{}/api/v1/sessions?q=zebra", srv.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(none["data"], json!([]));
    });
}

#[test]
fn the_mobile_api_keeps_each_device_to_itself() {
    // The scripted model answers `OK` and stops.
    let srv = crate::tools::scripted_server(&[]);
    let c = http();
    runtime().block_on(async {
        let chat = |device: &'static str, text: &'static str| {
            let c = c.clone();
            let url = format!("{}/api/v1/mobile/chat", srv.url);
            async move {
                let r = c.post(url).json(&json!({"device_id": device, "text": text})).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                r.json::<Value>().await.unwrap()
            }
        };
        let history = |device: &'static str| {
            let c = c.clone();
            let url = format!("{}/api/v1/mobile/history?device_id={device}", srv.url);
            async move { c.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let empty = history("phone-a").await;
        assert_eq!(empty["messages"], json!([]), "{empty}");

        let a1 = chat("phone-a", "first from a").await;
        let b1 = chat("phone-b", "first from b").await;
        let a2 = chat("phone-a", "second from a").await;
        assert!(a1["text"].is_string() && a1["session_id"].as_str().unwrap().starts_with("ses_"), "{a1}");
        assert_eq!(a1["session_id"], a2["session_id"], "a device keeps its session");
        assert_ne!(a1["session_id"], b1["session_id"], "two devices, two sessions");
        assert_eq!(empty["session_id"], a1["session_id"], "the history names the session to come");

        let users = |h: &Value| -> Vec<String> {
            h["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "user")
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect()
        };
        let ha = history("phone-a").await;
        assert_eq!(users(&ha), ["first from a", "second from a"]);
        assert_eq!(ha["messages"].as_array().unwrap().len(), 4, "{ha}");
        assert_eq!(ha["messages"][1]["text"], "OK");
        assert!(ha["messages"][0]["ts"].as_i64().unwrap() > 1_700_000_000_000, "Unix ms");
        assert_eq!(users(&history("phone-b").await), ["first from b"]);

        // The session is an ordinary one: the web UI and the native API see it.
        let session: Value = c
            .get(format!("{}/api/v1/sessions/{}", srv.url, a1["session_id"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session["title"], "mobile: phone-a");

        // Streamed: pieces, then the whole answer with `done`.
        let stream = c
            .post(format!("{}/api/v1/mobile/chat", srv.url))
            .json(&json!({"device_id": "phone-b", "text": "stream it", "stream": true}))
            .send()
            .await
            .unwrap();
        assert!(stream.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
        let body = stream.text().await.unwrap();
        let events: Vec<Value> =
            body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
        let last = events.last().unwrap();
        assert_eq!((last["done"].as_bool(), &last["session_id"]), (Some(true), &b1["session_id"]), "{body}");
        let pieces: String = events[..events.len() - 1].iter().map(|e| e["text"].as_str().unwrap()).collect();
        assert_eq!(pieces, last["text"].as_str().unwrap(), "the pieces make the answer");

        // Bad input is a 400 on the field.
        for body in [
            json!({"device_id": "", "text": "x"}),
            json!({"device_id": "a\u{7}b", "text": "x"}),
            json!({"device_id": "x".repeat(129), "text": "x"}),
        ] {
            let r = c.post(format!("{}/api/v1/mobile/chat", srv.url)).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "device_id");
        }
        let no_text =
            c.post(format!("{}/api/v1/mobile/chat", srv.url)).json(&json!({"device_id": "a"})).send().await.unwrap();
        assert_eq!(no_text.status(), StatusCode::BAD_REQUEST);
        let no_device = c.get(format!("{}/api/v1/mobile/history", srv.url)).send().await.unwrap();
        assert_eq!(no_device.status(), StatusCode::BAD_REQUEST);
        assert_eq!(no_device.json::<Value>().await.unwrap()["error"]["param"], "device_id");
    });
}
