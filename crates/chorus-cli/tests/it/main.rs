//! End-to-end tests: the real `chorus` binary serving a testkit GGUF model on
//! `127.0.0.1:0`, driven by the real client (`chorus-client`), raw HTTP for
//! malformed input, and the CLI as a person runs it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error, which is what it should do

mod api;
mod attach;
mod characters_api;
mod characters_cli;
mod characters_real;
mod cli;
mod converse;
mod ctl;
mod docs;
mod errors;
mod kv_cache;
mod lifecycle;
mod llama_api;
mod mcp_client;
mod mcp_server;
mod models;
mod models_cli;
mod real_model;
mod route_cli;
mod routing;
mod sessions;
mod store_failure;
mod tools;
mod webui;
mod ws_seed;

use std::path::Path;
use std::time::Duration;

use chorus_client::{Client, ClientConfig};
use chorus_proto::openai::{ChatCompletionRequest, ChatMessage, Role};
use chorus_testkit::server::TestServer;

/// The `chorus` binary under test.
pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chorus"))
}

/// A server on the tiny model with extra flags.
pub(crate) fn server(extra: &[&str]) -> TestServer {
    let model = chorus_testkit::tiny_model_path();
    let model = model.to_str().expect("utf-8 temp path");
    let mut args = vec!["--model", model, "--alias", "tiny", "--threads", "2"];
    if !extra.contains(&"--ctx-size") {
        // Session prompts carry the agent's tool definitions: ~1.5k tokens with the testkit's small BPE.
        args.extend_from_slice(&["--ctx-size", "16384"]);
    }
    args.extend_from_slice(extra);
    TestServer::start(bin(), &args)
}

pub(crate) fn client(url: &str, key: Option<&str>) -> Client {
    Client::new(ClientConfig {
        url: url.to_owned(),
        api_key: key.map(str::to_owned),
        timeout: Some(Duration::from_secs(60)),
    })
    .expect("client")
}

/// A one-message chat request.
pub(crate) fn chat(prompt: &str, max_tokens: i64) -> ChatCompletionRequest {
    ChatCompletionRequest {
        messages: vec![ChatMessage::text(Role::User, prompt)],
        max_tokens: Some(max_tokens),
        ..ChatCompletionRequest::default()
    }
}

/// Greedy sampling, so runs are comparable.
pub(crate) fn greedy(mut req: ChatCompletionRequest) -> ChatCompletionRequest {
    req.sampling.temperature = Some(0.0);
    req
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}
