//! The content router: which category a prompt belongs to, and so which model answers it,
//! for requests whose `model` is absent, `auto`, or the router's id.
//!
//! Stages, the first that decides wins ([`RouteStage`]):
//! 1. the endpoint's category (`/code/generation` is `code`);
//! 2. a forced `category` (request field, CLI `--category`), by name or alias;
//! 3. rules: per category, regexes and keywords (case-insensitive, keywords on word
//!    boundaries), tried in the categories' order;
//! 4. the semantic classifier: the prompt's embedding against each category's example
//!    utterances (cosine similarity of L2-normalised vectors; a category's score is the mean
//!    of its `top_k` best examples); the best category wins when its score is at least
//!    `threshold` and leads the second by at least `margin`;
//! 5. optionally, when the semantic stage is undecided: a small LLM (`llm_model`) that
//!    answers under a grammar with one category name;
//! 6. the default category.
//!
//! [`Router::new`] checks a [`RouterConfig`] against the registered models and picks each
//! category's model: the one the config names, else the first generating model that
//! declares the category as a capability; `general` falls back to the first generating
//! model without a specialty (`code`, `math`, `translation`), the others to `general`'s
//! model; `image` has none unless a model declares `image`. The examples are embedded once,
//! on first need (or [`Engine::warm_router`] at start), with the embedding model (the one
//! the config names, else the first registered model that only embeds).

use std::time::{Duration, Instant};

use regex::{Regex, RegexBuilder};

use crate::embed::{EmbedRequest, EmbeddingInput};
use crate::pool::ModelState;
use crate::request::{ChatMessage, GenerateRequest, Prompt, Role};
use crate::tools::ResponseFormat;
use crate::{Engine, EngineError, ModelPool, ValidationError};

/// Categories that make a model a specialist: `general` prefers a model with none of them.
const SPECIALTIES: &[&str] = &["code", "math", "translation", "image"];

/// How much of a long prompt the classifiers read: its start and its end, this many bytes
/// each (an embedding model reads a few hundred tokens at most).
const ROUTE_TEXT_BYTES: usize = 600;

/// `[router]` of `chorus.toml`, with the shipped defaults filled in by the binary.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// A `model` value that asks for routing, besides `auto` and an absent `model`.
    pub id: String,
    /// The categories, in the order their rules are tried.
    pub categories: Vec<CategoryConfig>,
    /// Where undecided prompts go.
    pub default_category: String,
    /// The model that embeds prompts and examples; `None`: the first model that only embeds.
    pub embedding_model: Option<String>,
    /// The lowest semantic score that decides, in cosine similarity (-1 to 1).
    pub threshold: f32,
    /// How far the best semantic score must lead the second to decide.
    pub margin: f32,
    /// How many of a category's best examples its score averages.
    pub top_k: usize,
    /// A generating model that classifies what the semantic stage leaves undecided; `None`
    /// skips that stage.
    pub llm_model: Option<String>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            id: "auto".into(),
            categories: Vec::new(),
            default_category: "general".into(),
            embedding_model: None,
            threshold: 0.3,
            margin: 0.03,
            top_k: 3,
            llm_model: None,
        }
    }
}

/// One category of [`RouterConfig`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CategoryConfig {
    /// Its name (`code`).
    pub name: String,
    /// Other names a forced `category` may use (TBot's `code_generation`).
    pub aliases: Vec<String>,
    /// The model that answers it; `None`: chosen from the registered models.
    pub model: Option<String>,
    /// Regexes (the `regex` crate's syntax), matched case-insensitively.
    pub rules: Vec<String>,
    /// Words or phrases, matched case-insensitively on word boundaries.
    pub keywords: Vec<String>,
    /// Example utterances for the semantic stage.
    pub examples: Vec<String>,
}

/// Why a [`RouterConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouterError {
    /// Two categories share a name or an alias.
    #[error("the router category name or alias `{0}` is used twice")]
    Duplicate(String),
    /// `default_category` names no category.
    #[error("the router's default_category `{0}` is not one of its categories")]
    UnknownDefault(String),
    /// A category, the embedding model or the LLM names a model that is not registered.
    #[error("the router's {what} names the model `{model}`, which is not registered")]
    UnknownModel {
        /// `category `code``, `embedding_model` or `llm_model`.
        what: String,
        /// The name.
        model: String,
    },
    /// A rule is not a valid regex.
    #[error("the router category `{category}` has a bad rule `{rule}`: {error}")]
    BadRule {
        /// The category.
        category: String,
        /// The rule.
        rule: String,
        /// The regex crate's complaint.
        error: String,
    },
    /// A number is out of range.
    #[error("the router's {0}")]
    OutOfRange(&'static str),
}

/// The stage that decided a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStage {
    /// The endpoint has a category of its own.
    Endpoint,
    /// The request forced one.
    Forced,
    /// A rule matched.
    Rule,
    /// The semantic classifier was sure enough.
    Semantic,
    /// The LLM classifier chose.
    Llm,
    /// Nothing decided: the default category.
    Default,
}

impl RouteStage {
    /// Its name, as the `x-chorus-route` header and the metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::Forced => "forced",
            Self::Rule => "rule",
            Self::Semantic => "semantic",
            Self::Llm => "llm",
            Self::Default => "default",
        }
    }
}

/// What the router was asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteInput<'a> {
    /// The text to classify (a chat's last user message, a completion's prompt).
    pub text: &'a str,
    /// The endpoint's own category, if it has one.
    pub endpoint: Option<&'a str>,
    /// A category the request forces (name or alias); `param` names its field in errors.
    pub category: Option<&'a str>,
}

/// What the router decided.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDecision {
    /// The category (its canonical name).
    pub category: String,
    /// The stage that decided.
    pub stage: RouteStage,
    /// The semantic (or rule: 1) score of the chosen category; `None` for other stages.
    pub score: Option<f32>,
    /// How far the best semantic score led the second, when the semantic stage ran.
    pub margin: Option<f32>,
    /// The model that answers; `None` when no registered model serves the category.
    pub model: Option<String>,
    /// Every category's semantic score, when the semantic stage ran, in category order.
    pub scores: Vec<(String, f32)>,
    /// Time spent routing.
    pub elapsed: Duration,
}

impl RouteDecision {
    /// The `x-chorus-route` header's value:
    /// `category=code; stage=semantic; score=0.83; model=qwen-coder`.
    pub fn header(&self) -> String {
        let mut out = format!("category={}; stage={}", self.category, self.stage.as_str());
        if let Some(score) = self.score {
            out.push_str(&format!("; score={score:.2}"));
        }
        out.push_str("; model=");
        out.push_str(self.model.as_deref().unwrap_or("none"));
        out
    }

    /// The model, or [`EngineError::NoModelForCategory`].
    ///
    /// # Errors
    /// When no registered model serves the category (an `image` prompt without an image model).
    pub fn require_model(&self) -> Result<&str, EngineError> {
        self.model.as_deref().ok_or_else(|| EngineError::NoModelForCategory(self.category.clone()))
    }
}

struct Category {
    name: String,
    aliases: Vec<String>,
    model: Option<String>,
    rules: Vec<Regex>,
    examples: Vec<String>,
}

/// Example vectors: (category index, L2-normalised vector).
type ExampleIndex = Vec<(usize, Vec<f32>)>;

/// A checked [`RouterConfig`], with each category's model chosen.
pub struct Router {
    id: String,
    categories: Vec<Category>,
    default: usize,
    embedding_model: Option<String>,
    threshold: f32,
    margin: f32,
    top_k: usize,
    llm_model: Option<String>,
    index: tokio::sync::OnceCell<ExampleIndex>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("categories", &self.categories.iter().map(|c| (&c.name, &c.model)).collect::<Vec<_>>())
            .field("embedding_model", &self.embedding_model)
            .finish_non_exhaustive()
    }
}

fn generates(m: &ModelState) -> bool {
    m.capabilities.iter().any(|c| c == "chat" || c == "completion")
}

fn chats(m: &ModelState) -> bool {
    m.capabilities.iter().any(|c| c == "chat")
}

impl Router {
    /// Check `config` against the pool's models and choose each category's model.
    ///
    /// # Errors
    /// [`RouterError`]: duplicate names, an unknown default category or model, a bad rule, a
    /// threshold outside -1 to 1, a margin outside 0 to 2, or `top_k` 0.
    pub fn new(config: RouterConfig, pool: &ModelPool) -> Result<Self, RouterError> {
        if !(-1.0..=1.0).contains(&config.threshold) {
            return Err(RouterError::OutOfRange("threshold must be between -1 and 1"));
        }
        if !(0.0..=2.0).contains(&config.margin) {
            return Err(RouterError::OutOfRange("margin must be between 0 and 2"));
        }
        if config.top_k == 0 {
            return Err(RouterError::OutOfRange("top_k must be at least 1"));
        }
        let states = pool.states();
        let resolve = |what: String, name: &str| {
            pool.resolve(name).map_err(|_| RouterError::UnknownModel { what, model: name.to_owned() })
        };
        // A model that chats first: routed prompts are mostly chat requests.
        let by_capability = |cap: &str| {
            let has = |m: &&ModelState| m.capabilities.iter().any(|c| c == cap);
            states.iter().filter(has).find(|m| chats(m)).or_else(|| states.iter().filter(has).find(|m| generates(m)))
        };
        // A chat model without a specialty, else any chat model, else any that generates.
        let plain = |m: &ModelState| chats(m) && !m.capabilities.iter().any(|c| SPECIALTIES.contains(&c.as_str()));
        let picks: [&dyn Fn(&ModelState) -> bool; 3] = [&plain, &chats, &generates];
        let generalist = picks.iter().find_map(|pick| states.iter().find(|m| pick(m))).map(|m| m.id.clone());

        let mut seen = std::collections::HashSet::new();
        let mut categories = Vec::with_capacity(config.categories.len());
        for c in &config.categories {
            for name in std::iter::once(&c.name).chain(&c.aliases) {
                if !seen.insert(name.to_lowercase()) {
                    return Err(RouterError::Duplicate(name.clone()));
                }
            }
            let model = match &c.model {
                Some(m) => Some(resolve(format!("category `{}`", c.name), m)?),
                None => by_capability(&c.name).map(|m| m.id.clone()),
            };
            let mut rules = Vec::with_capacity(c.rules.len() + 1);
            for rule in &c.rules {
                let compiled = RegexBuilder::new(rule).case_insensitive(true).build().map_err(|e| {
                    RouterError::BadRule { category: c.name.clone(), rule: rule.clone(), error: e.to_string() }
                })?;
                rules.push(compiled);
            }
            // A word boundary where the keyword's edge is a word character (`c++` ends in none:
            // `\b` there would never match before a space).
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            let words: Vec<String> = c
                .keywords
                .iter()
                .map(|k| k.trim())
                .filter(|k| !k.is_empty())
                .map(|k| {
                    let start = if word(k.chars().next()) { r"\b" } else { "" };
                    let end = if word(k.chars().last()) { r"\b" } else { "" };
                    format!("{start}{}{end}", regex::escape(k))
                })
                .collect();
            // No keywords is no rule (an empty alternation would match every prompt).
            if !words.is_empty() {
                let pattern = format!("(?:{})", words.join("|"));
                rules.push(RegexBuilder::new(&pattern).case_insensitive(true).build().map_err(|e| {
                    RouterError::BadRule { category: c.name.clone(), rule: pattern.clone(), error: e.to_string() }
                })?);
            }
            let examples = c.examples.iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
            categories.push(Category { name: c.name.clone(), aliases: c.aliases.clone(), model, rules, examples });
        }
        // Categories without a model of their own: `general` takes the generalist, the others
        // `general`'s model; `image` needs a model that makes images.
        let general = categories.iter().find(|c| c.name == "general").and_then(|c| c.model.clone());
        let fallback = general.or(generalist);
        for c in &mut categories {
            if c.model.is_none() && c.name != "image" {
                c.model.clone_from(&fallback);
            }
        }
        let default = categories
            .iter()
            .position(|c| c.name == config.default_category)
            .ok_or_else(|| RouterError::UnknownDefault(config.default_category.clone()))?;
        let embedding_model = match &config.embedding_model {
            Some(m) => Some(resolve("embedding_model".into(), m)?),
            None => states.iter().find(|m| m.capabilities.iter().all(|c| c == "embedding")).map(|m| m.id.clone()),
        };
        let llm_model = config.llm_model.as_deref().map(|m| resolve("llm_model".into(), m)).transpose()?;
        Ok(Self {
            id: config.id,
            categories,
            default,
            embedding_model,
            threshold: config.threshold,
            margin: config.margin,
            top_k: config.top_k,
            llm_model,
            index: tokio::sync::OnceCell::new(),
        })
    }

    /// A router with one category, `general`, on the default model: what an engine without
    /// a configured router routes with.
    pub fn single(pool: &ModelPool) -> Self {
        let config = RouterConfig {
            categories: vec![CategoryConfig { name: "general".into(), ..CategoryConfig::default() }],
            ..RouterConfig::default()
        };
        match Self::new(config, pool) {
            Ok(router) => router,
            // The config above has no rules, models or numbers that could be refused.
            Err(e) => unreachable!("the single-category router was refused: {e}"),
        }
    }

    /// Whether a request naming `model` is routed: `auto` or the router's id always; an absent
    /// `model` when the router has a choice (its categories map to two models or more), so a
    /// server with one model answers as llama-server does.
    pub fn routes(&self, model: Option<&str>) -> bool {
        match model {
            None => self.has_choice(),
            Some(m) => m == "auto" || m == self.id,
        }
    }

    /// Whether the categories map to two models or more.
    pub fn has_choice(&self) -> bool {
        let mut models = self.categories.iter().filter_map(|c| c.model.as_deref());
        let first = models.next();
        models.any(|m| Some(m) != first)
    }

    /// The categories' names and models, in order.
    pub fn categories(&self) -> Vec<(String, Option<String>)> {
        self.categories.iter().map(|c| (c.name.clone(), c.model.clone())).collect()
    }

    /// The embedding model of the semantic stage.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// The index of the category `name` names (its name or an alias, any case).
    fn find(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.categories
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
    }

    /// The index of category `name` (name or alias), or a [`ValidationError`] on `param`
    /// listing the categories.
    fn lookup(&self, name: &str, param: &'static str) -> Result<usize, ValidationError> {
        self.find(name).ok_or_else(|| {
            let names: Vec<&str> = self.categories.iter().map(|c| c.name.as_str()).collect();
            ValidationError::new(param, format!("unknown category `{name}`; the categories are {}", names.join(", ")))
        })
    }

    fn rule(&self, text: &str) -> Option<usize> {
        self.categories.iter().position(|c| c.rules.iter().any(|r| r.is_match(text)))
    }

    /// Per category, the mean of its `top_k` best similarities to `vector`.
    fn scores(&self, index: &ExampleIndex, vector: &[f32]) -> Vec<f32> {
        let mut per: Vec<Vec<f32>> = vec![Vec::new(); self.categories.len()];
        for (category, example) in index {
            per[*category].push(example.iter().zip(vector).map(|(a, b)| a * b).sum());
        }
        per.into_iter()
            .map(|mut sims| {
                if sims.is_empty() {
                    return f32::NEG_INFINITY;
                }
                sims.sort_by(|a, b| b.total_cmp(a));
                let k = self.top_k.min(sims.len());
                sims[..k].iter().sum::<f32>() / k as f32
            })
            .collect()
    }

    fn decision(&self, category: usize, stage: RouteStage) -> RouteDecision {
        let c = &self.categories[category];
        RouteDecision {
            category: c.name.clone(),
            stage,
            score: None,
            margin: None,
            model: c.model.clone(),
            scores: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// What the router reads of a prompt: a chat's last user message, a completion's text, the
/// code before an infill's gap.
pub fn prompt_text(prompt: &Prompt) -> &str {
    match prompt {
        Prompt::Text(text) | Prompt::Infill { prefix: text, .. } => text,
        Prompt::Tokens(_) => "",
        Prompt::Chat(messages) => {
            messages.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str())
        }
    }
}

/// A long text's start and end, cut at character boundaries.
fn route_text(text: &str) -> String {
    let text = text.trim();
    if text.len() <= 2 * ROUTE_TEXT_BYTES {
        return text.to_owned();
    }
    let mut head = ROUTE_TEXT_BYTES;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - ROUTE_TEXT_BYTES;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n…\n{}", &text[..head], &text[tail..])
}

impl Engine {
    /// The engine's router.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Embed the router's examples now (loading the embedding model), so the first routed
    /// prompt does not wait for it. Failures are logged; the semantic stage retries later.
    pub async fn warm_router(&self) {
        if let Err(e) = self.example_index().await {
            tracing::warn!(error = %e, "cannot embed the router's examples; the semantic stage waits until it can");
        }
    }

    async fn example_index(&self) -> Result<&ExampleIndex, EngineError> {
        let router = &self.inner.router;
        router
            .index
            .get_or_try_init(|| async {
                let Some(model) = router.embedding_model.as_deref() else { return Ok(Vec::new()) };
                let mut owners = Vec::new();
                let mut inputs = Vec::new();
                for (i, c) in router.categories.iter().enumerate() {
                    for e in &c.examples {
                        owners.push(i);
                        inputs.push(EmbeddingInput::Text(e.clone()));
                    }
                }
                if inputs.is_empty() {
                    return Ok(Vec::new());
                }
                let started = Instant::now();
                let embedded = self.embed(Some(model), EmbedRequest { inputs, truncate: true }, None, None).await?;
                tracing::info!(
                    model,
                    examples = owners.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "embedded the router's examples"
                );
                Ok(owners.into_iter().zip(embedded.vectors).collect())
            })
            .await
    }

    /// The model a request runs on, and the route that chose it when the router did: the
    /// model `model` names (a `category` is then ignored), else the router's choice for the
    /// prompt's text (a chat's last user message) or the forced `category`; an absent `model`
    /// on a router without a choice (see [`Router::routes`]) is the default model.
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`] for an unknown `model`; as [`Engine::route`]; and
    /// [`EngineError::NoModelForCategory`] when no model serves the chosen category.
    pub async fn pick(
        &self,
        model: Option<&str>,
        prompt: &Prompt,
        category: Option<&str>,
    ) -> Result<(String, Option<RouteDecision>), EngineError> {
        // A forced category is routed even where an absent model would not be.
        if !(self.inner.router.routes(model) || (model.is_none() && category.is_some())) {
            return Ok((self.resolve(model)?, None));
        }
        let decision = self.route(RouteInput { text: prompt_text(prompt), endpoint: None, category }).await?;
        Ok((decision.require_model()?.to_owned(), Some(decision)))
    }

    /// Route a prompt: the category and model that answer it, and why.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] on `category` when the forced or endpoint category is unknown.
    /// The semantic and LLM stages' failures are logged and skipped, never returned.
    pub async fn route(&self, input: RouteInput<'_>) -> Result<RouteDecision, EngineError> {
        let started = Instant::now();
        let mut decision = self.decide(input).await?;
        decision.elapsed = started.elapsed();
        self.metrics().record_route(&decision.category, decision.stage.as_str(), decision.elapsed.as_secs_f64());
        tracing::debug!(route = %decision.header(), ms = decision.elapsed.as_secs_f64() * 1e3, "routed");
        Ok(decision)
    }

    async fn decide(&self, input: RouteInput<'_>) -> Result<RouteDecision, EngineError> {
        let router = &self.inner.router;
        if let Some(name) = input.endpoint {
            return Ok(router.decision(router.lookup(name, "category")?, RouteStage::Endpoint));
        }
        if let Some(name) = input.category {
            return Ok(router.decision(router.lookup(name, "category")?, RouteStage::Forced));
        }
        let text = route_text(input.text);
        if let Some(i) = router.rule(&text) {
            let mut d = router.decision(i, RouteStage::Rule);
            d.score = Some(1.0);
            return Ok(d);
        }
        let mut semantic = None;
        if let Some(model) = router.embedding_model.as_deref()
            && !text.is_empty()
        {
            match self.semantic(model, &text).await {
                Ok(s) => semantic = s,
                Err(e) => tracing::warn!(error = %e, "the router's semantic stage failed; skipping it"),
            }
        }
        if let Some((scores, best, second)) = &semantic {
            let score = scores[*best];
            let margin = second.map_or(score, |s| score - scores[s]);
            let mut d = if score >= router.threshold && margin >= router.margin {
                router.decision(*best, RouteStage::Semantic)
            } else {
                self.undecided(&text).await
            };
            if d.stage == RouteStage::Semantic {
                d.score = Some(score);
            }
            d.margin = Some(margin);
            // A category without examples has no score (not -inf: JSON has no infinities).
            d.scores = router
                .categories
                .iter()
                .zip(scores)
                .filter(|(_, s)| s.is_finite())
                .map(|(c, s)| (c.name.clone(), *s))
                .collect();
            return Ok(d);
        }
        Ok(self.undecided(&text).await)
    }

    /// The semantic scores of `text` and the best and second categories; `None` when no
    /// category has examples.
    async fn semantic(&self, model: &str, text: &str) -> Result<Option<(Vec<f32>, usize, Option<usize>)>, EngineError> {
        let index = self.example_index().await?;
        if index.is_empty() {
            return Ok(None);
        }
        let request = EmbedRequest { inputs: vec![EmbeddingInput::Text(text.to_owned())], truncate: true };
        let mut embedded = self.embed(Some(model), request, None, None).await?;
        let Some(vector) = embedded.vectors.pop() else { return Ok(None) };
        let scores = self.inner.router.scores(index, &vector);
        let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i].is_finite()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        Ok(order.first().map(|&best| (scores.clone(), best, order.get(1).copied())))
    }

    /// Stages 5 and 6: the LLM classifier when there is one, else the default category.
    async fn undecided(&self, text: &str) -> RouteDecision {
        let router = &self.inner.router;
        if let Some(model) = router.llm_model.as_deref() {
            match self.llm_category(model, text).await {
                Ok(Some(i)) => return router.decision(i, RouteStage::Llm),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the router's LLM stage failed; using the default category"),
            }
        }
        router.decision(router.default, RouteStage::Default)
    }

    /// Ask `model` for one category name, its answer constrained to a JSON string of them.
    async fn llm_category(&self, model: &str, text: &str) -> Result<Option<usize>, EngineError> {
        let router = &self.inner.router;
        let names: Vec<&str> = router.categories.iter().map(|c| c.name.as_str()).collect();
        let system = format!(
            "Classify the user's request into exactly one category: {}. Answer with the category name only.",
            names.join(", ")
        );
        let mut request = GenerateRequest::new(Prompt::Chat(vec![
            ChatMessage::new(Role::System, system),
            ChatMessage::new(Role::User, text),
        ]));
        // A token is at least a byte: the longest name, its quotes and the end token fit this.
        let longest = names.iter().map(|n| n.len()).max().unwrap_or(0);
        request.max_tokens = Some(u32::try_from(longest).unwrap_or(u32::MAX).saturating_add(4));
        request.sampling.temperature = 0.0;
        request.response_format = ResponseFormat::JsonSchema(serde_json::json!({ "type": "string", "enum": names }));
        let done = self.generate(Some(model), request).await?.collect().await?;
        let answer: Option<String> = serde_json::from_str(done.text.trim()).ok();
        Ok(answer.and_then(|a| router.find(&a)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;
    use futures::future::BoxFuture;

    use super::*;
    use crate::{Backend, ModelLoader, ModelSpec, PoolConfig};

    /// Never loaded: the router only reads the registrations.
    struct NoLoad;

    impl ModelLoader for NoLoad {
        fn load(&self) -> BoxFuture<'static, Result<Arc<dyn Backend>, String>> {
            async { Err("not in this test".to_owned()) }.boxed()
        }
    }

    fn pool(models: &[(&str, &[&str])]) -> ModelPool {
        let (pool, _events) = ModelPool::new(PoolConfig::default());
        for (id, caps) in models {
            pool.register(ModelSpec {
                id: (*id).to_owned(),
                aliases: Vec::new(),
                source: format!("{id}.gguf"),
                capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
                keep_alive: None,
                pinned: false,
                estimate: 1,
                facts: None,
                loader: Arc::new(NoLoad),
            })
            .expect("register");
        }
        pool
    }

    fn five() -> RouterConfig {
        let category = |name: &str| CategoryConfig { name: name.into(), ..CategoryConfig::default() };
        RouterConfig {
            categories: ["general", "code", "math", "translation", "image"].map(category).to_vec(),
            ..RouterConfig::default()
        }
    }

    fn models(router: &Router) -> Vec<(String, Option<String>)> {
        router.categories()
    }

    #[tokio::test]
    async fn each_category_gets_a_model_from_the_registered_ones() {
        let pool = pool(&[
            ("base", &["completion"]),
            ("coder", &["chat", "completion", "code"]),
            ("chatty", &["chat", "completion"]),
            ("minilm", &["embedding"]),
        ]);
        let router = Router::new(five(), &pool).expect("router");
        let some = |m: &str| Some(m.to_owned());
        assert_eq!(
            models(&router),
            vec![
                ("general".into(), some("chatty")),
                ("code".into(), some("coder")),
                ("math".into(), some("chatty")),
                ("translation".into(), some("chatty")),
                ("image".into(), None),
            ],
            "a base model is never the chat fallback; image has no model"
        );
        assert_eq!(router.embedding_model(), Some("minilm"));
        assert!(router.has_choice() && router.routes(None) && router.routes(Some("auto")));
        assert!(!router.routes(Some("coder")));

        // A config's model wins, by alias too; one model only: no choice, so no routing of
        // an absent model.
        let mut config = five();
        config.categories[1].model = Some("chatty".into());
        let router = Router::new(config, &pool).expect("router");
        assert_eq!(router.categories()[1].1.as_deref(), Some("chatty"));
        let single = Router::new(five(), &self::pool(&[("coder", &["chat", "completion", "code"])])).expect("router");
        assert!(single.categories().iter().filter(|c| c.0 != "image").all(|c| c.1.as_deref() == Some("coder")));
        assert!(!single.has_choice() && !single.routes(None) && single.routes(Some("auto")));
    }

    #[tokio::test]
    async fn bad_configs_are_refused_with_what_is_wrong() {
        let pool = pool(&[("coder", &["chat"])]);
        let mut dup = five();
        dup.categories[2].aliases = vec!["CODE".into()];
        assert_eq!(Router::new(dup, &pool).unwrap_err(), RouterError::Duplicate("CODE".into()));
        let unknown_default = RouterConfig { default_category: "chitchat".into(), ..five() };
        assert_eq!(Router::new(unknown_default, &pool).unwrap_err(), RouterError::UnknownDefault("chitchat".into()));
        let mut bad_rule = five();
        bad_rule.categories[1].rules = vec!["(unclosed".into()];
        assert!(
            matches!(Router::new(bad_rule, &pool), Err(RouterError::BadRule { category, .. }) if category == "code")
        );
        let mut unknown_model = five();
        unknown_model.categories[0].model = Some("ghost".into());
        assert!(
            matches!(Router::new(unknown_model, &pool), Err(RouterError::UnknownModel { model, .. }) if model == "ghost")
        );
        let no_embedder = RouterConfig { embedding_model: Some("ghost".into()), ..five() };
        assert!(Router::new(no_embedder, &pool).is_err());
        let threshold = RouterConfig { threshold: 1.5, ..five() };
        assert!(matches!(Router::new(threshold, &pool), Err(RouterError::OutOfRange(_))));
        let top_k = RouterConfig { top_k: 0, ..five() };
        assert!(matches!(Router::new(top_k, &pool), Err(RouterError::OutOfRange(_))));
    }

    #[tokio::test]
    async fn rules_and_keywords_match_case_insensitively_and_keywords_on_word_boundaries() {
        let pool = pool(&[("coder", &["chat"])]);
        let mut config = five();
        config.categories[1].keywords = vec!["SELECT".into(), "c++".into()];
        config.categories[2].keywords = vec!["  ".into()];
        config.categories[3].rules = vec![r"\btranslate\b.*\binto\b".into()];
        config.categories[3].aliases = vec!["translation_task".into()];
        let router = Router::new(config, &pool).expect("router");
        assert_eq!(router.rule("select * from users"), Some(1));
        assert_eq!(router.rule("I like c++ a lot"), Some(1), "keywords are escaped, not regexes");
        assert_eq!(router.rule("natural selection explained"), None, "not inside a word; a blank keyword is none");
        assert_eq!(router.rule("Translate this INTO French"), Some(3));
        assert_eq!(router.lookup("Translation_Task", "category"), Ok(3), "aliases, any case");
        let e = router.lookup("astrology", "category").unwrap_err();
        assert_eq!(e.param, "category");
        assert!(e.message.contains("general, code, math, translation, image"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_category_scores_the_mean_of_its_best_examples() {
        let pool = pool(&[("coder", &["chat"])]);
        let router = Router::new(RouterConfig { top_k: 2, ..five() }, &pool).expect("router");
        // Unit vectors along two axes: general's examples at 1.0, 0.5 and 0.0 of the query.
        let index: ExampleIndex =
            vec![(0, vec![1.0, 0.0]), (0, vec![0.5, 0.0]), (0, vec![0.0, 1.0]), (1, vec![0.2, 0.0])];
        let scores = router.scores(&index, &[1.0, 0.0]);
        assert_eq!(scores[0], 0.75, "the mean of the two best");
        assert_eq!(scores[1], 0.2, "fewer examples than top_k: their mean");
        assert_eq!(scores[2], f32::NEG_INFINITY, "no examples, no score");
    }

    #[test]
    fn long_texts_keep_their_start_and_end() {
        let short = "  fix my loop  ";
        assert_eq!(route_text(short), "fix my loop");
        let long = format!("{}{}{}", "é".repeat(400), "x".repeat(1000), "ü".repeat(400));
        let cut = route_text(&long);
        assert!(cut.starts_with('é') && cut.ends_with('ü'), "{}", cut.len());
        assert!(cut.len() <= 2 * ROUTE_TEXT_BYTES + 8);
        assert!(!cut.contains('x'));
    }

    #[test]
    fn the_header_has_the_issue_shape() {
        let d = RouteDecision {
            category: "code".into(),
            stage: RouteStage::Semantic,
            score: Some(0.8312),
            margin: Some(0.1),
            model: Some("qwen-coder".into()),
            scores: Vec::new(),
            elapsed: Duration::ZERO,
        };
        assert_eq!(d.header(), "category=code; stage=semantic; score=0.83; model=qwen-coder");
        let none = RouteDecision { model: None, score: None, stage: RouteStage::Default, ..d };
        assert_eq!(none.header(), "category=code; stage=default; model=none");
    }
}
