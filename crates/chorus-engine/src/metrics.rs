//! Prometheus metrics of the engine and its backends, in one
//! `prometheus_client` registry that the server renders at `GET /metrics`.
//! Counters are atomics: the model thread records without locks.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
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

/// Where a cached prompt state was kept.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum CacheTier {
    /// Host RAM (`--cache-ram`).
    Ram,
    /// A snapshot file in the data dir (`--cache-disk`).
    Disk,
}

impl CacheTier {
    /// The label value: `ram` or `disk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ram => "ram",
            Self::Disk => "disk",
        }
    }
}

impl EncodeLabelValue for CacheTier {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Labels of the `chorus_prompt_cache_*` families.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `ram` or `disk`.
    pub tier: CacheTier,
}

impl CacheLabels {
    /// The labels of `tier`.
    pub fn of(tier: CacheTier) -> Self {
        Self { tier }
    }
}

/// Labels of the per-model families.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The model's id.
    pub model: String,
}

/// Labels of `chorus_model_unloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnloadLabels {
    /// The model's id.
    pub model: String,
    /// `expired`, `evicted`, `requested` or `shutdown`.
    pub reason: String,
}

/// Labels of `chorus_route_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The category chosen.
    pub category: String,
    /// The stage that decided (`endpoint`, `forced`, `rule`, `semantic`, `llm`, `default`).
    pub stage: String,
}

/// Labels of `chorus_model_loads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabels {
    /// The model's id.
    pub model: String,
    /// `ok` or `failed`.
    pub result: String,
}

/// A histogram family whose members share buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

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
    /// `chorus_prompt_cache_hits_total{tier}`: requests that restored a cached state.
    pub prompt_cache_hits: Family<CacheLabels, Counter>,
    /// `chorus_prompt_cache_misses_total{tier}`: lookups that found nothing usable (for
    /// `disk`, also snapshots refused as foreign or corrupt).
    pub prompt_cache_misses: Family<CacheLabels, Counter>,
    /// `chorus_prompt_cache_restored_tokens_total{tier}`: prompt tokens restored.
    pub prompt_cache_restored_tokens: Family<CacheLabels, Counter>,
    /// `chorus_prompt_cache_restore_seconds{tier}`: putting one state back into the KV cache
    /// (for `disk`, reading and checking the file too, off the model thread).
    pub prompt_cache_restore_seconds: HistogramFamily<CacheLabels>,
    /// `chorus_prompt_cache_save_seconds`: copying one sequence's state out of the KV cache,
    /// on the model thread (the longest the cache holds up decoding).
    pub prompt_cache_save_seconds: Histogram,
    /// `chorus_prompt_cache_ram_bytes`: bytes of state in host RAM.
    pub prompt_cache_ram_bytes: Gauge,
    /// `chorus_prompt_cache_ram_tokens`: tokens those states hold.
    pub prompt_cache_ram_tokens: Gauge,
    /// `chorus_prompt_cache_disk_bytes`: bytes of snapshots on disk.
    pub prompt_cache_disk_bytes: Gauge,
    /// `chorus_model_loaded{model}`: 1 while the model is in memory, else 0.
    pub model_loaded: Family<ModelLabels, Gauge>,
    /// `chorus_model_memory_bytes{model}`: bytes the model takes (measured once loaded,
    /// estimated before).
    pub model_memory_bytes: Family<ModelLabels, Gauge>,
    /// `chorus_memory_budget_bytes`: `--memory-budget`.
    pub memory_budget_bytes: Gauge,
    /// `chorus_model_loads_total{model,result}`: loads finished.
    pub model_loads: Family<LoadLabels, Counter>,
    /// `chorus_model_unloads_total{model,reason}`: unloads.
    pub model_unloads: Family<UnloadLabels, Counter>,
    /// `chorus_model_load_seconds`: how long loads took.
    pub model_load_seconds: Histogram,
    /// `chorus_route_total{category,stage}`: prompts routed.
    pub route: Family<RouteLabels, Counter>,
    /// `chorus_route_seconds`: how long routing a prompt took (every stage it ran).
    pub route_seconds: Histogram,
}

fn cache_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
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
        let prompt_cache_hits = Family::<CacheLabels, Counter>::default();
        registry.register(
            "prompt_cache_hits",
            "Requests that restored a cached prompt state",
            prompt_cache_hits.clone(),
        );
        let prompt_cache_misses = Family::<CacheLabels, Counter>::default();
        registry.register(
            "prompt_cache_misses",
            "Prompt cache lookups that found nothing usable",
            prompt_cache_misses.clone(),
        );
        let prompt_cache_restored_tokens = Family::<CacheLabels, Counter>::default();
        registry.register(
            "prompt_cache_restored_tokens",
            "Prompt tokens restored from the prompt cache",
            prompt_cache_restored_tokens.clone(),
        );
        let prompt_cache_restore_seconds: HistogramFamily<CacheLabels> = Family::new_with_constructor(cache_seconds);
        registry.register(
            "prompt_cache_restore_seconds",
            "Time to restore one cached prompt state",
            prompt_cache_restore_seconds.clone(),
        );
        let prompt_cache_save_seconds = cache_seconds();
        registry.register(
            "prompt_cache_save_seconds",
            "Time to copy one sequence's state out of the KV cache (model thread)",
            prompt_cache_save_seconds.clone(),
        );
        let prompt_cache_ram_bytes = Gauge::default();
        registry.register(
            "prompt_cache_ram_bytes",
            "Bytes of prompt state in host RAM",
            prompt_cache_ram_bytes.clone(),
        );
        let prompt_cache_ram_tokens = Gauge::default();
        registry.register(
            "prompt_cache_ram_tokens",
            "Tokens of prompt state in host RAM",
            prompt_cache_ram_tokens.clone(),
        );
        let prompt_cache_disk_bytes = Gauge::default();
        registry.register(
            "prompt_cache_disk_bytes",
            "Bytes of prompt snapshots on disk",
            prompt_cache_disk_bytes.clone(),
        );
        let model_loaded = Family::<ModelLabels, Gauge>::default();
        registry.register("model_loaded", "1 while the model is in memory", model_loaded.clone());
        let model_memory_bytes = Family::<ModelLabels, Gauge>::default();
        registry.register("model_memory_bytes", "Bytes the model takes in memory", model_memory_bytes.clone());
        let memory_budget_bytes = Gauge::default();
        registry.register("memory_budget_bytes", "The model pool's memory budget", memory_budget_bytes.clone());
        let model_loads = Family::<LoadLabels, Counter>::default();
        registry.register("model_loads", "Model loads finished", model_loads.clone());
        let model_unloads = Family::<UnloadLabels, Counter>::default();
        registry.register("model_unloads", "Model unloads", model_unloads.clone());
        let model_load_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register("model_load_seconds", "Time to load a model", model_load_seconds.clone());
        let route = Family::<RouteLabels, Counter>::default();
        registry.register("route", "Prompts routed, by category and deciding stage", route.clone());
        let route_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register("route_seconds", "Time to route a prompt", route_seconds.clone());
        Self {
            registry,
            route,
            route_seconds,
            model_loaded,
            model_memory_bytes,
            memory_budget_bytes,
            model_loads,
            model_unloads,
            model_load_seconds,
            requests,
            prompt_tokens,
            cached_prompt_tokens,
            completion_tokens,
            decode_step_sequences,
            queue_depth,
            slots_busy,
            time_to_first_token,
            inter_token_latency,
            prompt_cache_hits,
            prompt_cache_misses,
            prompt_cache_restored_tokens,
            prompt_cache_restore_seconds,
            prompt_cache_save_seconds,
            prompt_cache_ram_bytes,
            prompt_cache_ram_tokens,
            prompt_cache_disk_bytes,
        }
    }

    /// Set a model's `chorus_model_loaded` and `chorus_model_memory_bytes`.
    pub fn set_model_state(&self, model: &str, loaded: bool, bytes: u64) {
        let labels = ModelLabels { model: model.to_owned() };
        self.model_loaded.get_or_create(&labels).set(i64::from(loaded));
        self.model_memory_bytes.get_or_create(&labels).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Count a finished load.
    pub fn record_model_load(&self, model: &str, seconds: f64, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.model_loads.get_or_create(&LoadLabels { model: model.to_owned(), result: result.to_owned() }).inc();
        if ok {
            self.model_load_seconds.observe(seconds);
        }
    }

    /// Count an unload.
    pub fn record_model_unload(&self, model: &str, reason: &str) {
        self.model_unloads.get_or_create(&UnloadLabels { model: model.to_owned(), reason: reason.to_owned() }).inc();
    }

    /// Count a routed prompt and how long routing it took.
    pub fn record_route(&self, category: &str, stage: &str, seconds: f64) {
        self.route.get_or_create(&RouteLabels { category: category.to_owned(), stage: stage.to_owned() }).inc();
        self.route_seconds.observe(seconds);
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
