//! The health-check task: every `health_interval`, `GET {url}/health` on each
//! upstream (chorus and llama-server serve it; llama-server answers 503 while
//! it loads its model); a URL whose `/health` is a 404 (vLLM before 0.5, TGI
//! behind some proxies, OpenAI itself) is checked with `GET {url}/v1/models`
//! from then on. A 2xx is healthy; anything else, or no answer, is not.

use std::sync::Weak;
use std::time::Duration;

use crate::pool::{Pool, Target};

/// The longest a health check may take, at most.
const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest a health check may take before it counts as failed.
const MIN_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Check every URL of `pool` now and then every `interval`, each on its own clock (one that
/// hangs delays no other), until the pool is dropped (the task holds it weakly: the backend
/// owns it).
pub(crate) async fn run(pool: Weak<Pool>, client: reqwest::Client, api_key: Option<String>, interval: Duration) {
    let Some(n) = pool.upgrade().map(|p| p.targets.len()) else { return };
    let loops = (0..n).map(|index| check_every(&pool, index, &client, api_key.as_deref(), interval));
    futures::future::join_all(loops).await;
}

/// Check the URL at `index` every `interval` until the pool is dropped.
async fn check_every(
    pool: &Weak<Pool>,
    index: usize,
    client: &reqwest::Client,
    api_key: Option<&str>,
    interval: Duration,
) {
    let timeout = interval.clamp(MIN_CHECK_TIMEOUT, MAX_CHECK_TIMEOUT);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        check(client, &pool.targets[index], api_key, timeout).await;
    }
}

/// Check one URL and record the result.
async fn check(client: &reqwest::Client, target: &Target, api_key: Option<&str>, timeout: Duration) {
    use std::sync::atomic::Ordering;
    let get = |path: &str| {
        let mut rb = client.get(format!("{}{path}", target.url)).timeout(timeout);
        if let Some(key) = api_key {
            rb = rb.bearer_auth(key);
        }
        rb.send()
    };
    let mut result =
        if target.no_health_route.load(Ordering::Relaxed) { get("/v1/models").await } else { get("/health").await };
    if matches!(&result, Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND) {
        target.no_health_route.store(true, Ordering::Relaxed);
        result = get("/v1/models").await;
    }
    match result {
        Ok(r) if r.status().is_success() => target.set_healthy(true, "health check passed"),
        Ok(r) => target.set_healthy(false, &format!("health check answered {}", r.status())),
        Err(e) => target.set_healthy(false, &format!("health check failed: {e}")),
    }
}
