//! One turn of a character session, run by the session's runner (so turns of every client on
//! the character run one at a time, in queue order):
//!
//! 1. the state: vitals (decayed by the hours since the last turn), summary, turn counter;
//! 2. memory retrieval: the user's message embedded, the memories of turns outside the window
//!    ranked ([`super::memory::rank`]), the top k injected and their recency refreshed;
//! 3. the window of the transcript the model sees (`agent::window`, as for agent sessions,
//!    with the memories in the prompt); the card's example dialogue is dropped first when the
//!    prompt would not fit whole;
//! 4. the prompt ([`super::prompt::assemble`]) streamed as the session's `message.chunk`
//!    events, with the session's prompt cache key (`session/ID`), so the KV cache keeps the
//!    stable prefix; with `vitals_update: tool` a first round calls `update_vitals` (forced by
//!    grammar: how the user's message changes the character's state), then the answer is written;
//! 5. after the answer is stored: per-turn decay, one grammar-constrained side-generation that
//!    rates the turn's memory (importance 1–10) and proposes the vitals' changes, the memory
//!    stored (or merged into a near-duplicate), the rolling summary refreshed when turns left
//!    the window, and `character.updated` announced.

use chorus_proto::character::VitalsUpdate;
use chorus_proto::native::MessageMetadata;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::instance::{Character, now_ms};
use super::memory;
use super::prompt::{self, HistoryTurn, PromptInput};
use super::vitals::{self, Vitals};
use crate::agent::{self, RoundEnd};
use crate::session::{PromptOptions, PromptOutcome};
use crate::store::{CharacterState, MemoryRecord, Message, Session, SessionId, VitalChange};
use crate::{
    ChatMessage, Engine, EngineError, FunctionDefinition, GenerateRequest, GenerationEvent, Prompt, ResponseFormat,
    Role, ToolChoice, ValidationError,
};

/// chorus's main prompt: what a card's `{{original}}` stands for (SillyTavern's default main
/// prompt, in substance).
pub(crate) const MAIN_PROMPT: &str = "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}. \
     Stay in character, write one reply only, and never speak for {{user}}.";

/// Tokens of a memory's text kept from each side of the exchange.
const MEMORY_SIDE_CHARS: usize = 400;

/// The speaker's name stored with a message, when any.
fn speaker(m: &Message) -> Option<String> {
    m.metadata.as_deref().and_then(|j| serde_json::from_str::<MessageMetadata>(j).ok()).and_then(|m| m.name)
}

fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Answer one prompt of a character session (see the module docs). The user message is stored
/// and announced already.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer(
    engine: &Engine,
    id: &SessionId,
    prompt_id: &str,
    session: &Session,
    character_id: &str,
    user_message: &Message,
    options: &PromptOptions,
    cancel: &CancellationToken,
) -> PromptOutcome {
    let character = match engine.character(character_id) {
        Ok(c) => c,
        Err(e) => {
            let error = EngineError::Invalid(ValidationError::new("character", e.to_string()));
            return agent::fail(engine, id, prompt_id, error).await;
        }
    };
    let user = options.user_name.clone().unwrap_or_else(|| super::DEFAULT_USER.to_owned());
    let store = &engine.inner.store;
    let specs = character.ext.vitals.clone();
    let mut state = match store.character_state(id).await {
        Ok(Some(s)) => s,
        Ok(None) => CharacterState {
            vitals: Vitals::initial(&specs).to_json(),
            updated_at: now_ms(),
            ..CharacterState::default()
        },
        Err(e) => return agent::store_failed(engine, id, prompt_id, e).await,
    };
    let now = now_ms();
    let mut vitals = Vitals::parse(&state.vitals, &specs);
    let hours = (now - state.updated_at).max(0) as f64 / 3_600_000.0;
    let mut changes: Vec<VitalChange> = vitals.decay(&specs, &user, 0.0, hours, state.turns, now);
    let history = match store.messages(id).await {
        Ok(h) => h,
        Err(e) => return agent::store_failed(engine, id, prompt_id, e).await,
    };
    let model = session.model.clone().or_else(|| character.ext.model.clone());
    let model = model.as_deref();
    let names: Vec<Option<String>> = history.iter().map(speaker).collect();
    let rendered = vitals.rendered(&specs, &user);
    let cache_key = crate::request::session_cache_key(&id.to_string());
    let assemble = |start: usize, examples: bool, memories: &[String]| {
        let turns: Vec<HistoryTurn<'_>> = history[start..]
            .iter()
            .zip(&names[start..])
            .filter(|(m, _)| matches!(m.role, Role::User | Role::Assistant) && !m.content.is_empty())
            .map(|(m, n)| HistoryTurn {
                role: m.role,
                content: &m.content,
                name: if m.role == Role::User { Some(n.as_deref().unwrap_or(super::DEFAULT_USER)) } else { None },
            })
            .collect();
        let input = PromptInput {
            card: &character.stored.card.data,
            history: &turns,
            user: &user,
            vitals: &rendered,
            memories,
            summary: Some(state.summary.as_str()).filter(|s| !s.is_empty()),
            include_examples: examples,
            default_system_prompt: MAIN_PROMPT,
        };
        prompt::assemble(&input, &|t: &str| t.len().div_ceil(4))
    };
    let build = |start: usize, examples: bool, memories: &[String], tools: &[FunctionDefinition]| {
        let mut request = GenerateRequest::new(Prompt::Chat(assemble(start, examples, memories).messages));
        request.max_tokens = options.max_tokens;
        request.prompt_cache_key = Some(cache_key.clone());
        if !tools.is_empty() {
            request.tools = tools.to_vec();
            // Forced: left to choose, a small model writes about its state instead of calling.
            request.tool_choice = ToolChoice::Function("update_vitals".into());
        }
        request
    };
    // The example dialogue goes first when the whole history does not fit with it.
    let current = engine
        .inner
        .sessions
        .window_start(id)
        .and_then(|first| history.iter().position(|m| m.id == first))
        .unwrap_or(0);
    // The memories first, of the turns outside the current window (a compaction below only
    // moves more turns out of it), so the window is chosen with them in the prompt.
    let used = retrieve(engine, &character, id, &history[current..], &user, &user_message.content, state.turns).await;
    let memory_texts: Vec<String> = used.iter().map(|m| m.content.clone()).collect();
    let examples = match fits(engine, model, options, &build(current, true, &memory_texts, &[])).await {
        Ok(fits) => fits,
        Err(e) => return agent::fail(engine, id, prompt_id, e).await,
    };
    let window = |s| build(s, examples, &memory_texts, &[]);
    let start = match agent::window(engine, id, prompt_id, model, options, &history, &window).await {
        Ok(s) => s,
        Err(e) => return agent::fail(engine, id, prompt_id, e).await,
    };

    // With `vitals_update: tool`, a first round calls `update_vitals`.
    let mut tool_round = character.ext.vitals_update == VitalsUpdate::Tool && !specs.is_empty();
    let update_tool = FunctionDefinition {
        name: "update_vitals".into(),
        description: Some(format!(
            "Record how this reply changes {}'s state. Numbers are changes, words are new values.",
            character.name()
        )),
        parameters: vitals::update_schema(&specs),
        strict: false,
    };
    let (text, finish_reason, usage) = loop {
        let tools = if tool_round { std::slice::from_ref(&update_tool) } else { &[] };
        let stream = match engine.generate(model, build(start, examples, &memory_texts, tools)).await {
            Ok(s) => s,
            Err(e) => return agent::fail(engine, id, prompt_id, e).await,
        };
        match agent::stream_round(engine, id, prompt_id, stream, cancel).await {
            RoundEnd::Cancelled { text } => return agent::cancelled(engine, id, prompt_id, text).await,
            RoundEnd::Failed(e) => return agent::fail(engine, id, prompt_id, e).await,
            RoundEnd::Done { tool_calls, .. } if tool_round && !tool_calls.is_empty() => {
                for call in tool_calls.iter().filter(|c| c.name == "update_vitals") {
                    if let Ok(update) = serde_json::from_str::<Value>(&call.arguments) {
                        changes.extend(vitals.apply_update(&specs, &user, &update, "tool", state.turns + 1, now_ms()));
                    }
                }
                tool_round = false;
            }
            RoundEnd::Done { text, finish_reason, usage, .. } => break (text, finish_reason, usage),
        }
    };
    let book = character.stored.card.data.character_book.as_ref();
    let lore = assemble(start, examples, &memory_texts)
        .lore
        .into_iter()
        .filter_map(|i| book.and_then(|b| b.entries.get(i)).map(|e| lore_name(e, i)))
        .collect();
    let metadata = MessageMetadata {
        model: model.map(str::to_owned),
        route: None,
        name: Some(character.name().to_owned()),
        memories: used.iter().map(|m| m.id.clone()).collect(),
        lore,
    };
    let outcome =
        agent::complete(engine, id, prompt_id, text, finish_reason, usage, serde_json::to_string(&metadata).ok()).await;
    let PromptOutcome::Complete(reply) = &outcome else { return outcome };

    // After the turn: decay, the side-generation, the memory, the summary.
    state.turns += 1;
    let now = now_ms();
    changes.extend(vitals.decay(&specs, &user, 1.0, 0.0, state.turns, now));
    let exchange = format!(
        "{user}: {}\n{}: {}",
        cut(user_message.content.trim(), MEMORY_SIDE_CHARS),
        character.name(),
        cut(reply.content.trim(), MEMORY_SIDE_CHARS)
    );
    let rate_vitals = character.ext.vitals_update == VitalsUpdate::Generate && !specs.is_empty();
    let remember = character.ext.memory.enabled;
    let proposal = if rate_vitals || remember {
        side_generation(engine, model, &character, &vitals, &user, &exchange, rate_vitals, remember).await
    } else {
        None
    };
    if rate_vitals && let Some(update) = proposal.as_ref().and_then(|p| p.get("vitals")) {
        changes.extend(vitals.apply_update(&specs, &user, update, "turn", state.turns, now));
    }
    let mut memory = None;
    if remember {
        let importance = proposal
            .as_ref()
            .and_then(|p| p.get("importance"))
            .and_then(Value::as_u64)
            .map_or(3, |i| i.clamp(1, 10) as u8);
        memory = store_memory(engine, &character, id, &user, exchange, importance, state.turns).await;
    }
    if start > 0 {
        summarize(engine, model, &character, &mut state, &history[..start]).await;
    }
    state.vitals = vitals.to_json();
    state.updated_at = now;
    if let Err(e) = store.put_character_state(id, &state, &changes).await {
        tracing::error!(session = %id, error = %e, "cannot store a character's state after a turn");
    }
    engine.emit_character_update(&character, id, &state, &vitals, &user, &changes, memory.as_ref()).await;
    outcome
}

/// How a lorebook entry is named in a message's metadata: its `name`, else its `comment`, else
/// its first key, else `#INDEX`.
fn lore_name(entry: &chorus_proto::character::BookEntry, index: usize) -> String {
    [entry.name.as_deref(), entry.comment.as_deref(), entry.keys.first().map(String::as_str)]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty())
        .map_or_else(|| format!("#{index}"), str::to_owned)
}

/// Whether `request` fits the session's budget with room for the answer.
async fn fits(
    engine: &Engine,
    model: Option<&str>,
    options: &PromptOptions,
    request: &GenerateRequest,
) -> Result<bool, EngineError> {
    let lease = engine.lease(model, None).await?;
    let (budget, reserve) = agent::budget(&lease, options);
    let n = Engine::prompt_tokens(&lease, request.clone())?;
    Ok(n.saturating_add(reserve) <= budget)
}

/// The memories this turn's prompt gets: of turns outside the window, of this user or everyone,
/// the top k by score; their recency is refreshed. Empty when memory is off, none qualifies,
/// or no embedding model is registered.
async fn retrieve(
    engine: &Engine,
    character: &Character,
    id: &SessionId,
    window: &[Message],
    user: &str,
    query: &str,
    turns: u64,
) -> Vec<MemoryRecord> {
    let settings = &character.ext.memory;
    if !settings.enabled || settings.top_k == 0 {
        return Vec::new();
    }
    let store = &engine.inner.store;
    let memories = match store.memories(id).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "cannot read memories");
            return Vec::new();
        }
    };
    // The turns the window shows (the current one included) need no memory.
    let window_turns = window.iter().filter(|m| m.role == Role::User).count() as u64;
    let newest = (turns + 1).saturating_sub(window_turns);
    let candidates: Vec<&MemoryRecord> =
        memories.iter().filter(|m| m.turn <= newest && (m.user.is_none() || m.user.as_deref() == Some(user))).collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let query = match engine.embed_text(character, query).await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "cannot embed a character's query; no memories this turn");
            return Vec::new();
        }
    };
    let now = now_ms();
    let ranked = memory::rank(&candidates, &query, now, settings.recency_decay);
    let chosen: Vec<MemoryRecord> =
        ranked.iter().take(settings.top_k as usize).map(|s| candidates[s.index].clone()).collect();
    let ids: Vec<String> = chosen.iter().map(|m| m.id.clone()).collect();
    if let Err(e) = store.touch_memories(id, &ids, now).await {
        tracing::warn!(session = %id, error = %e, "cannot refresh memories' recency");
    }
    chosen
}

/// One grammar-constrained generation after a turn: `{"importance": 1..10, "vitals": {…}}`
/// (either part only when asked). `None` when it fails (logged): the turn stands regardless.
#[allow(clippy::too_many_arguments)]
async fn side_generation(
    engine: &Engine,
    model: Option<&str>,
    character: &Character,
    vitals: &Vitals,
    user: &str,
    exchange: &str,
    rate_vitals: bool,
    remember: bool,
) -> Option<Value> {
    let specs = &character.ext.vitals;
    let name = character.name();
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    // What is the same every turn first, so the slot's KV cache keeps it between turns.
    let mut ask = format!("You keep the notes of a role-play with {name}.\n\n");
    if remember {
        properties.insert("importance".into(), json!({"type": "integer", "minimum": 1, "maximum": 10}));
        required.push("importance");
        ask.push_str(&memory::importance_prompt("the exchange below"));
        ask.push_str("\n\n");
    }
    if rate_vitals {
        properties.insert("vitals".into(), vitals::update_schema(specs));
        required.push("vitals");
        ask.push_str(&format!(
            "{name}'s state:\n{}For each number give how this exchange changes it (0 when it stays); for each \
             word give its new value.\n\n",
            vitals::describe(specs)
        ));
    }
    if rate_vitals {
        ask.push_str(&format!("Before the exchange: {}\n\n", vitals::current(specs, &vitals.values(specs, user))));
    }
    ask.push_str(&format!("The exchange, between {user} and {name}:\n{exchange}\n\n"));
    ask.push_str("Answer with one JSON object.");
    let schema =
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    let mut request = GenerateRequest::new(Prompt::Chat(vec![
        ChatMessage::new(Role::System, "You answer only in JSON.".to_owned()),
        ChatMessage::new(Role::User, ask),
    ]));
    request.response_format = ResponseFormat::JsonSchema(schema);
    request.max_tokens = Some(96);
    request.sampling.temperature = 0.2;
    let text = collect(engine, model, request).await?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, text, "a character's side-generation is not JSON");
            None
        }
    }
}

/// A whole answer as text; `None` (logged) on failure.
async fn collect(engine: &Engine, model: Option<&str>, request: GenerateRequest) -> Option<String> {
    let mut stream = match engine.generate(model, request).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "a character's side-generation failed");
            return None;
        }
    };
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            GenerationEvent::Text(t) => text.push_str(&t),
            GenerationEvent::Detail(_) => {}
            GenerationEvent::Done { .. } => return Some(text),
            GenerationEvent::Error(e) => {
                tracing::warn!(error = %e, "a character's side-generation failed");
                return None;
            }
            GenerationEvent::ToolCalls(_) => {}
        }
    }
    None
}

/// Store the turn's memory, merged into a near-duplicate when there is one (the older text is
/// kept in `merged`). Without an embedding model the memory is kept unembedded.
async fn store_memory(
    engine: &Engine,
    character: &Character,
    id: &SessionId,
    user: &str,
    content: String,
    importance: u8,
    turn: u64,
) -> Option<MemoryRecord> {
    let store = &engine.inner.store;
    let embedding = match engine.embed_text(character, &content).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "cannot embed a memory; it is kept without an embedding");
            Vec::new()
        }
    };
    let now = now_ms();
    let existing = match store.memories(id).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(session = %id, error = %e, "cannot read memories");
            return None;
        }
    };
    let memory = match memory::near_duplicate(&existing, &embedding, Some(user), character.ext.memory.merge_threshold) {
        Some(old) if !embedding.is_empty() => {
            let mut merged = old.clone();
            merged.merged.push(std::mem::replace(&mut merged.content, content));
            merged.embedding = embedding;
            merged.importance = merged.importance.max(importance);
            merged.accessed_at = now;
            merged.turn = turn;
            merged
        }
        _ => MemoryRecord {
            id: format!("mem_{}", uuid::Uuid::now_v7().simple()),
            user: Some(user.to_owned()),
            content,
            importance,
            embedding,
            created_at: now,
            accessed_at: now,
            turn,
            merged: Vec::new(),
        },
    };
    match store.put_memory(id, &memory).await {
        Ok(()) => Some(memory),
        Err(e) => {
            tracing::error!(session = %id, error = %e, "cannot store a memory");
            None
        }
    }
}

/// Fold the turns that left the window since the last summary into the rolling summary.
async fn summarize(
    engine: &Engine,
    model: Option<&str>,
    character: &Character,
    state: &mut CharacterState,
    outside: &[Message],
) {
    let new: Vec<&Message> = outside
        .iter()
        .filter(|m| m.seq > state.summarized_seq && matches!(m.role, Role::User | Role::Assistant))
        .collect();
    let Some(last) = new.last() else { return };
    let name = character.name();
    let mut text = String::new();
    for m in &new {
        let who =
            if m.role == Role::User { speaker(m).unwrap_or_else(|| super::DEFAULT_USER.into()) } else { name.into() };
        text.push_str(&format!("{who}: {}\n", cut(m.content.trim(), MEMORY_SIDE_CHARS)));
    }
    let ask = format!(
        "Summary so far: {}\n\nWhat was said next:\n{text}\nWrite the updated summary of the conversation with \
         {name} in at most five sentences: who is who, what happened, facts and promises worth keeping.",
        if state.summary.is_empty() { "(none)" } else { &state.summary }
    );
    let mut request = GenerateRequest::new(Prompt::Chat(vec![
        ChatMessage::new(Role::System, "You summarise conversations faithfully and briefly.".to_owned()),
        ChatMessage::new(Role::User, ask),
    ]));
    request.max_tokens = Some(200);
    request.sampling.temperature = 0.2;
    if let Some(summary) = collect(engine, model, request).await.filter(|s| !s.trim().is_empty()) {
        state.summary = summary.trim().to_owned();
        state.summarized_seq = last.seq;
    }
}
