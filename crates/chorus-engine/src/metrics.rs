//! Prometheus metrics of the engine and its backends, in one
//! `prometheus_client` registry that the server renders at `GET /metrics`.
//! Counters are atomics: the model thread records without locks.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

/// Labels of `chorus_requests`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The endpoint, as its route pattern (`/v1/chat/completions`).
    pub endpoint: String,
    /// The response status code.
    pub status: u16,
}

/// Every metric chorus exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `chorus_requests_total{endpoint,status}`: HTTP requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// `chorus_prompt_tokens_total`: prompt tokens processed (cached ones excluded).
    pub prompt_tokens: Counter,
    /// `chorus_cached_prompt_tokens_total`: prompt tokens reused from the KV cache.
    pub cached_prompt_tokens: Counter,
    /// `chorus_completion_tokens_total`: tokens generated.
    pub completion_tokens: Counter,
    /// `chorus_decode_step_sequences`: sequences in each decode step.
    pub decode_step_sequences: Histogram,
    /// `chorus_queue_depth`: requests waiting for a slot.
    pub queue_depth: Gauge,
    /// `chorus_slots_busy`: slots decoding a sequence.
    pub slots_busy: Gauge,
    /// `chorus_time_to_first_token_seconds`: from queueing to the first generated token.
    pub time_to_first_token: Histogram,
    /// `chorus_inter_token_latency_seconds`: between consecutive tokens of one sequence.
    pub inter_token_latency: Histogram,
}

impl Metrics {
    /// All metrics, registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chorus");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests answered", requests.clone());
        let prompt_tokens = Counter::default();
        registry.register("prompt_tokens", "Prompt tokens processed", prompt_tokens.clone());
        let cached_prompt_tokens = Counter::default();
        registry.register(
            "cached_prompt_tokens",
            "Prompt tokens reused from the KV cache",
            cached_prompt_tokens.clone(),
        );
        let completion_tokens = Counter::default();
        registry.register("completion_tokens", "Tokens generated", completion_tokens.clone());
        let decode_step_sequences = Histogram::new(linear_buckets(1.0, 1.0, 16));
        registry.register("decode_step_sequences", "Sequences held by each decode step", decode_step_sequences.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Requests waiting for a slot", queue_depth.clone());
        let slots_busy = Gauge::default();
        registry.register("slots_busy", "Slots decoding a sequence", slots_busy.clone());
        let time_to_first_token = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "time_to_first_token_seconds",
            "Time from queueing to the first generated token",
            time_to_first_token.clone(),
        );
        let inter_token_latency = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "inter_token_latency_seconds",
            "Time between consecutive tokens of one sequence",
            inter_token_latency.clone(),
        );
        Self {
            registry,
            requests,
            prompt_tokens,
            cached_prompt_tokens,
            completion_tokens,
            decode_step_sequences,
            queue_depth,
            slots_busy,
            time_to_first_token,
            inter_token_latency,
        }
    }

    /// Render in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
