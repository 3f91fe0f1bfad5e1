//! `/openapi.json` and Swagger UI at `/docs` are served by the binary itself, with no network
//! (every asset the page loads comes from the same server) and without an API key, even when
//! the server has one. That the document is valid OpenAPI, and matches what the server sends,
//! is checked in `tests/conformance/test_openapi.py`.

use reqwest::blocking::Client;
use serde_json::Value;

use crate::server;

/// The values of `src="…"` and `href="…"` attributes in an HTML page.
fn asset_refs(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let Some(end) = rest.find('"') else { break };
            refs.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    refs
}

#[test]
fn docs_and_the_document_are_served_offline_without_a_key() {
    let srv = server(&["--api-key", "sesame"]);
    let http = Client::new();

    let doc = http.get(format!("{}/openapi.json", srv.url)).send().expect("openapi.json");
    assert_eq!(doc.status().as_u16(), 200);
    let doc: Value = doc.json().expect("a JSON document");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    assert!(doc["paths"]["/v1/chat/completions"]["post"].is_object());

    // `/docs` redirects to `/docs/`; reqwest follows it.
    let page = http.get(format!("{}/docs", srv.url)).send().expect("docs");
    assert_eq!(page.status().as_u16(), 200);
    let base = page.url().clone();
    assert_eq!(base.path(), "/docs/");
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://") && !html.contains("http://"), "the page loads something from elsewhere: {html}");

    let refs = asset_refs(&html);
    for want in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        assert!(refs.iter().any(|r| r.ends_with(want)), "{want} is not in {refs:?}");
    }
    for r in &refs {
        let url = base.join(r).expect("relative asset url");
        assert_eq!(url.origin(), base.origin(), "{r} is not served by this server");
        let asset = http.get(url.clone()).send().expect("asset");
        assert_eq!(asset.status().as_u16(), 200, "{url}");
        assert!(!asset.bytes().expect("body").is_empty(), "{url} is empty");
    }

    // The page's configuration points at this server's document, and the validator badge
    // (an image from validator.swagger.io) is off.
    let init = http.get(base.join("swagger-initializer.js").expect("url")).send().expect("initializer");
    let init = init.text().expect("js");
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert!(!init.contains("https://"), "{init}");

    // The key still guards the API itself.
    let models = http.get(format!("{}/v1/models", srv.url)).send().expect("models");
    assert_eq!(models.status().as_u16(), 401);
}
