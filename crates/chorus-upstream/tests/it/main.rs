//! The integration tests of chorus-upstream: an [`UpstreamBackend`] against small in-process
//! OpenAI-compatible servers ([`mock`]) on `127.0.0.1:0`.

#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod balance;
mod embed;
mod errors;
mod generate;
mod mock;

use std::time::Duration;

use chorus_engine::{Backend, ChatMessage, GenerateRequest, Prompt, Role, ValidGenerateRequest};
use chorus_upstream::{UpstreamBackend, UpstreamConfig};

/// A backend over `urls` with quick health checks.
pub fn backend(urls: &[&str]) -> UpstreamBackend {
    backend_with(urls, |_| {})
}

/// A backend over `urls` with quick health checks, after `change` to its config.
pub fn backend_with(urls: &[&str], change: impl FnOnce(&mut UpstreamConfig)) -> UpstreamBackend {
    let mut config = UpstreamConfig::new("up-model", urls.iter().map(|u| (*u).to_owned()).collect());
    config.health_interval = Duration::from_millis(50);
    config.request_timeout = Duration::from_secs(20);
    change(&mut config);
    UpstreamBackend::new(config).unwrap()
}

/// A chat request saying `text`, validated for `backend`.
pub fn chat(backend: &UpstreamBackend, text: &str) -> ValidGenerateRequest {
    request(backend, GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, text)])))
}

/// The same with a `prompt_cache_key`.
pub fn keyed(backend: &UpstreamBackend, key: &str) -> ValidGenerateRequest {
    let mut r = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "hi")]));
    r.prompt_cache_key = Some(key.into());
    request(backend, r)
}

pub fn request(backend: &UpstreamBackend, r: GenerateRequest) -> ValidGenerateRequest {
    r.validate(backend.info()).unwrap()
}
