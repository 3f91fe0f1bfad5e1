//! AI-to-AI conversations (the AI Tester seed's `AIConversation`): two to eight participants,
//! each a character card or an ad-hoc personality (`add_participant(name, personality)`), talk
//! about a topic, one message each in turn, for a fixed number of exchanges.
//!
//! A conversation is a session: [`Engine::start_conversation`] checks the spec, creates the
//! session (`Conversation: TOPIC`), stores its opener (a `user` message `Let's talk about:
//! TOPIC` whose metadata holds the topic and the speakers, which is how
//! [`Engine::conversation`] reads it back) and spawns the task that runs it. Each exchange is
//! stored as an `assistant` message with `metadata.name` (the speaker) and `metadata.model`,
//! then published as `conversation.exchange`, then handed to the caller's channel. The task
//! belongs to the engine, not to the caller: dropping the [`ConversationHandle`] does not stop
//! it; [`Engine::stop_conversation`], cancelling the session or deleting it does (the exchange
//! in progress is dropped). The session's status is `busy` while it runs, then `idle`,
//! `cancelled` or `error`.
//!
//! # Prompts
//!
//! Participant `i` speaks at exchange `i mod n`. Its prompt is the conversation from its own
//! perspective ([`perspective`]): its own messages as `assistant`, the others' as `user`
//! prefixed `NAME: `, consecutive messages of one role merged, and the opener first whenever
//! that history would not start with a `user` message (so the first speaker opens on the
//! topic). A card speaks with its card's prompt ([`prompt::assemble`], `{{user}}` = the other
//! speakers' names, the topic appended to its system message); an ad-hoc participant with
//! [`adhoc_system`]. Generation stops at `\nNAME:` for every speaker, a leading `NAME:` the
//! model writes is removed ([`clean_reply`]), and when the prompt outgrows the model's context
//! the oldest exchanges leave the window (a card's example dialogue first).

use std::collections::{BTreeMap, HashMap};

use chorus_proto::character::{CardData, Conversation, ConversationRequest, Exchange, Participant};
use chorus_proto::native::{Event, MessageMetadata};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::instance::CharacterError;
use super::prompt::{self, HistoryTurn, PromptInput};
use super::turn::MAIN_PROMPT;
use crate::session::PromptOptions;
use crate::store::{NewMessage, NewSession, SessionId, SessionStatus};
use crate::{ChatMessage, Engine, EngineError, GenerateRequest, GenerationEvent, Prompt, Role, ValidationError};

/// The fewest participants.
pub const MIN_PARTICIPANTS: usize = 2;
/// The most participants.
pub const MAX_PARTICIPANTS: usize = 8;
/// Exchanges when the spec names none.
pub const DEFAULT_TURNS: u32 = 6;
/// The most exchanges.
pub const MAX_TURNS: u32 = 100;
/// Tokens per message when the spec names none.
pub const DEFAULT_MAX_TOKENS: u32 = 160;
/// The most tokens per message.
pub const MAX_MAX_TOKENS: u32 = 2048;
/// The longest speaker name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest topic or personality, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// The longest session title, in characters.
const MAX_TITLE_CHARS: usize = 80;

/// `status` of a conversation that ran all its exchanges.
pub const COMPLETED: &str = "completed";
/// `status` of a stopped conversation.
pub const CANCELLED: &str = "cancelled";
/// `status` of a conversation that failed.
pub const ERROR: &str = "error";
/// `status` of a conversation still running (only [`Engine::conversation`] reports it).
pub const RUNNING: &str = "running";

/// `participants[I].FIELD` for each index, as [`ValidationError::param`] needs a `'static` str
/// (the count is checked first, so an index is always in range).
macro_rules! per_participant {
    ($field:literal) => {
        [
            concat!("participants[0].", $field),
            concat!("participants[1].", $field),
            concat!("participants[2].", $field),
            concat!("participants[3].", $field),
            concat!("participants[4].", $field),
            concat!("participants[5].", $field),
            concat!("participants[6].", $field),
            concat!("participants[7].", $field),
        ]
    };
}
const NAME_PARAMS: [&str; MAX_PARTICIPANTS] = per_participant!("name");
const CHARACTER_PARAMS: [&str; MAX_PARTICIPANTS] = per_participant!("character");
const PERSONALITY_PARAMS: [&str; MAX_PARTICIPANTS] = per_participant!("personality");
const MODEL_PARAMS: [&str; MAX_PARTICIPANTS] = per_participant!("model");

fn param(table: &[&'static str; MAX_PARTICIPANTS], i: usize) -> &'static str {
    table.get(i).copied().unwrap_or("participants")
}

/// What a caller asks for: the engine's form of [`ConversationRequest`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationSpec {
    /// The participants, in speaking order.
    pub participants: Vec<Participant>,
    /// What they talk about.
    pub topic: String,
    /// Exchanges in all; [`DEFAULT_TURNS`] when `None`.
    pub turns: Option<u32>,
    /// Tokens per message at most; [`DEFAULT_MAX_TOKENS`] when `None`.
    pub max_tokens: Option<u32>,
}

impl From<ConversationRequest> for ConversationSpec {
    fn from(r: ConversationRequest) -> Self {
        Self { participants: r.participants, topic: r.topic, turns: r.turns, max_tokens: r.max_tokens }
    }
}

/// What a running conversation tells its caller.
#[derive(Debug)]
pub enum ConversationUpdate {
    /// A message, stored and published already.
    Exchange(Exchange),
    /// The end: the conversation as it stands (`status` completed, cancelled or error) and,
    /// for `error`, why. Nothing follows.
    End {
        /// The whole conversation.
        conversation: Conversation,
        /// Why it failed, for status `error`.
        error: Option<CharacterError>,
    },
}

/// A started conversation.
#[derive(Debug)]
pub struct ConversationHandle {
    /// The session that stores it.
    pub session_id: SessionId,
    /// Its topic, trimmed.
    pub topic: String,
    /// The speakers' names, in speaking order.
    pub participants: Vec<String>,
    /// Each exchange as it is made, then the end. Dropping it does not stop the conversation.
    pub updates: mpsc::UnboundedReceiver<ConversationUpdate>,
}

/// How a speaker speaks.
#[derive(Debug, Clone)]
enum Voice {
    /// With a card's prompt (its `nickname` set to the participant's `name` when given).
    Card(Box<CardData>),
    /// With [`adhoc_system`].
    AdHoc { personality: String },
}

#[derive(Debug, Clone)]
struct Speaker {
    name: String,
    voice: Voice,
    /// The canonical id of the model that speaks for it.
    model: String,
}

/// A checked spec: only this reaches the task.
#[derive(Debug, Clone)]
struct ValidConversation {
    speakers: Vec<Speaker>,
    topic: String,
    turns: u32,
    max_tokens: u32,
}

/// The opener's metadata: what [`Engine::conversation`] reads the topic and speakers from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    conversation: HeaderData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HeaderData {
    topic: String,
    participants: Vec<String>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(param, message)
}

/// A checked name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
fn check_name(name: &str, i: usize) -> Result<String, ValidationError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(invalid(
            param(&NAME_PARAMS, i),
            format!("a participant's name must be 1 to {MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// The checks that need no engine: counts, ranges, each participant's shape. Card names are
/// checked for clashes later, once the cards are read.
///
/// # Errors
/// [`ValidationError`] naming the field (`participants[1].name`, `topic`, `turns`, …).
fn check(spec: &ConversationSpec) -> Result<(), ValidationError> {
    let n = spec.participants.len();
    if !(MIN_PARTICIPANTS..=MAX_PARTICIPANTS).contains(&n) {
        return Err(invalid(
            "participants",
            format!("a conversation needs {MIN_PARTICIPANTS} to {MAX_PARTICIPANTS} participants, not {n}"),
        ));
    }
    let topic = spec.topic.trim();
    if topic.is_empty() {
        return Err(invalid("topic", "`topic` must not be blank: say what the participants talk about"));
    }
    if topic.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid("topic", format!("`topic` is longer than {MAX_TEXT_CHARS} characters")));
    }
    if spec.turns.is_some_and(|t| !(1..=MAX_TURNS).contains(&t)) {
        return Err(invalid("turns", format!("`turns` must be 1 to {MAX_TURNS}")));
    }
    if spec.max_tokens.is_some_and(|t| !(1..=MAX_MAX_TOKENS).contains(&t)) {
        return Err(invalid("max_tokens", format!("`max_tokens` must be 1 to {MAX_MAX_TOKENS}")));
    }
    for (i, p) in spec.participants.iter().enumerate() {
        if p.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(invalid(param(&MODEL_PARAMS, i), "`model` must not be blank (leave it out for the default)"));
        }
        if let Some(name) = &p.name {
            check_name(name, i)?;
        }
        match (&p.character, &p.personality) {
            (Some(c), _) if c.trim().is_empty() => {
                return Err(invalid(param(&CHARACTER_PARAMS, i), "`character` must not be blank"));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    param(&PERSONALITY_PARAMS, i),
                    "give a participant a `character` or a `personality`, not both",
                ));
            }
            (Some(_), None) => {}
            (None, personality) => {
                if p.name.is_none() {
                    return Err(invalid(
                        param(&NAME_PARAMS, i),
                        "an ad-hoc participant needs a `name` (or give a `character` from the characters directory)",
                    ));
                }
                let personality = personality.as_deref().map(str::trim).unwrap_or_default();
                if personality.is_empty() {
                    return Err(invalid(
                        param(&PERSONALITY_PARAMS, i),
                        "an ad-hoc participant needs a `personality`: a sentence or two on who they are",
                    ));
                }
                if personality.chars().count() > MAX_TEXT_CHARS {
                    return Err(invalid(
                        param(&PERSONALITY_PARAMS, i),
                        format!("`personality` is longer than {MAX_TEXT_CHARS} characters"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Two speakers of one name would be one speaker to the models: refused.
fn check_distinct(names: &[String]) -> Result<(), ValidationError> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].iter().any(|other| other.to_lowercase() == name.to_lowercase()) {
            return Err(invalid(
                param(&NAME_PARAMS, i),
                format!("two participants are named `{name}`; give one another `name`"),
            ));
        }
    }
    Ok(())
}

/// `A`, `A and B`, `A, B and C`.
pub fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The opener: the first speaker's cue.
pub fn opener(topic: &str) -> String {
    format!("Let's talk about: {topic}")
}

/// An ad-hoc participant's system message.
pub fn adhoc_system(name: &str, personality: &str, others: &str, topic: &str) -> String {
    let personality = personality.trim();
    let stop = if personality.ends_with(['.', '!', '?', '…', '"', ')']) { "" } else { "." };
    format!(
        "You are {name}. {personality}{stop} You are talking with {others} about: {topic}. Reply in one or two \
         short paragraphs, in character, and speak only for yourself."
    )
}

/// One message said so far: by whom (an index into the speakers) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    /// The speaker's index.
    pub speaker: usize,
    /// What they said.
    pub text: String,
}

/// The history speaker `me` sees of `said` (see the [module documentation](self)): its own
/// messages as `assistant`, the others' as `user`, with `NAME: ` before them when there are more
/// than two speakers (with two, the other is always the one the system prompt names; a small
/// model shown the label writes it too, and goes on in the other's voice), consecutive
/// messages of one role merged (blank line between), and the opener first when the history
/// would otherwise not start with a `user` message. Empty messages are skipped.
pub fn perspective(me: usize, names: &[String], topic: &str, said: &[Said]) -> Vec<(Role, String)> {
    let mut out: Vec<(Role, String)> = Vec::with_capacity(said.len() + 1);
    for s in said.iter().filter(|s| !s.text.trim().is_empty()) {
        let (role, text) = if s.speaker == me {
            (Role::Assistant, s.text.clone())
        } else {
            let name = names.get(s.speaker).map_or("?", String::as_str);
            let text = if names.len() > 2 { format!("{name}: {}", s.text) } else { s.text.clone() };
            (Role::User, text)
        };
        if out.is_empty() && role != Role::User {
            out.push((Role::User, opener(topic)));
        }
        match out.last_mut() {
            Some((last, content)) if *last == role => {
                content.push_str("\n\n");
                content.push_str(&text);
            }
            _ => out.push((role, text)),
        }
    }
    if out.is_empty() {
        out.push((Role::User, opener(topic)));
    }
    out
}

/// Whether `text` starts with the `NAME:` of `name` (case-insensitively, spaces allowed before
/// the colon, `*` around the name as markdown writes it); the rest when it does.
fn strip_label<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let rest = text.trim_start_matches('*');
    let head = rest.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) && head.to_lowercase() != name.to_lowercase() {
        return None;
    }
    let rest = rest[name.len()..].trim_start_matches('*').trim_start();
    let rest = rest.strip_prefix(':')?;
    Some(rest.trim_start_matches('*'))
}

/// A model's reply as it is stored: a leading `NAME:` removed (the speaker's, or one it
/// copied from the history), cut where it starts writing another line of anyone's
/// (`\nNAME:`), trimmed.
pub fn clean_reply(text: &str, speaker: &str, names: &[String]) -> String {
    let mut text = text.trim();
    let label = std::iter::once(speaker).chain(names.iter().map(String::as_str)).find_map(|n| strip_label(text, n));
    if let Some(rest) = label {
        text = rest.trim_start();
    }
    let mut end = text.len();
    for (at, _) in text.match_indices('\n') {
        let line = text[at + 1..].trim_start_matches([' ', '\t']);
        if names.iter().any(|n| strip_label(line, n).is_some()) {
            end = at;
            break;
        }
    }
    text[..end].trim().to_owned()
}

/// The session's title: `Conversation: TOPIC` on one line, cut to 80 characters.
fn title(topic: &str) -> String {
    let one_line = topic.split_whitespace().collect::<Vec<_>>().join(" ");
    let full = format!("Conversation: {one_line}");
    if full.chars().count() <= MAX_TITLE_CHARS {
        return full;
    }
    let mut cut: String = full.chars().take(MAX_TITLE_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

impl ValidConversation {
    fn names(&self) -> Vec<String> {
        self.speakers.iter().map(|s| s.name.clone()).collect()
    }

    /// Speaker `me`'s request over `said[start..]`, with or without the card's example dialogue.
    fn request(&self, me: usize, said: &[Said], start: usize, examples: bool) -> GenerateRequest {
        let names = self.names();
        let speaker = &self.speakers[me];
        let others: Vec<&str> = names.iter().enumerate().filter(|(i, _)| *i != me).map(|(_, n)| n.as_str()).collect();
        let others = join_names(&others);
        let history = perspective(me, &names, &self.topic, &said[start.min(said.len())..]);
        let messages = match &speaker.voice {
            Voice::AdHoc { personality } => {
                let mut messages = vec![ChatMessage::new(
                    Role::System,
                    adhoc_system(&speaker.name, personality, &others, &self.topic),
                )];
                messages.extend(history.into_iter().map(|(role, text)| ChatMessage::new(role, text)));
                messages
            }
            Voice::Card(card) => {
                let turns: Vec<HistoryTurn<'_>> =
                    history.iter().map(|(role, text)| HistoryTurn { role: *role, content: text, name: None }).collect();
                let vitals = BTreeMap::new();
                let input = PromptInput {
                    card,
                    history: &turns,
                    user: &others,
                    vitals: &vitals,
                    memories: &[],
                    summary: None,
                    include_examples: examples,
                    default_system_prompt: MAIN_PROMPT,
                };
                let mut messages = prompt::assemble(&input, &|t: &str| t.len().div_ceil(4)).messages;
                let about = format!("You are talking with {others} about: {}.", self.topic);
                match messages.first_mut() {
                    Some(first) if first.role == Role::System => {
                        first.content.push_str("\n\n");
                        first.content.push_str(&about);
                    }
                    _ => messages.insert(0, ChatMessage::new(Role::System, about)),
                }
                messages
            }
        };
        let mut request = GenerateRequest::new(Prompt::Chat(messages));
        request.max_tokens = Some(self.max_tokens);
        request.stop = names.iter().map(|n| format!("\n{n}:")).collect();
        // Two models talking feed each other their own words back: without a penalty a small
        // one soon repeats the other's last message (llama.cpp's repeat penalty over the
        // last 256 tokens; llama-server's default of 1.0 leaves it off).
        request.sampling.repeat_penalty = 1.15;
        request.sampling.penalty_last_n = 256;
        request
    }
}

/// How a run of the task ended.
enum Ending {
    Completed,
    Cancelled,
    Failed(CharacterError),
}

impl Engine {
    /// Check a spec against the characters and models it names.
    fn valid_conversation(&self, spec: ConversationSpec) -> Result<ValidConversation, CharacterError> {
        check(&spec)?;
        let mut speakers = Vec::with_capacity(spec.participants.len());
        for (i, p) in spec.participants.into_iter().enumerate() {
            let name = p.name.as_deref().map(|n| check_name(n, i)).transpose()?;
            let (name, voice, card_model) = match p.character {
                Some(id) => {
                    let character = self.character(id.trim()).map_err(|e| match e {
                        CharacterError::NotFound(_) | CharacterError::NoDirectory => {
                            CharacterError::Invalid(invalid(param(&CHARACTER_PARAMS, i), e.to_string()))
                        }
                        other => other,
                    })?;
                    let mut card = character.stored.card.data.clone();
                    if let Some(name) = &name {
                        card.nickname = Some(name.clone());
                    }
                    let name = card.char_name().trim().to_owned();
                    (name, Voice::Card(Box::new(card)), character.ext.model.clone())
                }
                None => {
                    let personality = p.personality.unwrap_or_default().trim().to_owned();
                    (name.unwrap_or_default(), Voice::AdHoc { personality }, None)
                }
            };
            let model = self.resolve(p.model.as_deref().map(str::trim).or(card_model.as_deref()))?;
            speakers.push(Speaker { name, voice, model });
        }
        let names: Vec<String> = speakers.iter().map(|s| s.name.clone()).collect();
        check_distinct(&names)?;
        Ok(ValidConversation {
            speakers,
            topic: spec.topic.trim().to_owned(),
            turns: spec.turns.unwrap_or(DEFAULT_TURNS),
            max_tokens: spec.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }

    /// Start an AI-to-AI conversation (see the [module documentation](self)): checked, stored
    /// in a new session, run by a task of the engine's.
    ///
    /// # Errors
    /// [`CharacterError::Invalid`] naming the field (`participants[1].name`, `topic`, an
    /// unknown `participants[0].character`, …); [`CharacterError::Engine`] for an unknown model;
    /// the store's error.
    pub async fn start_conversation(&self, spec: ConversationSpec) -> Result<ConversationHandle, CharacterError> {
        let conversation = self.valid_conversation(spec)?;
        let names = conversation.names();
        let new = NewSession { title: title(&conversation.topic), ..NewSession::default() };
        let session = self.create_session(new).await?;
        let header =
            Header { conversation: HeaderData { topic: conversation.topic.clone(), participants: names.clone() } };
        let opener = NewMessage {
            metadata: serde_json::to_string(&header).ok(),
            ..NewMessage::text(Role::User, opener(&conversation.topic))
        };
        self.inner.store.append_message(&session.id, opener).await?;
        let token = CancellationToken::new();
        self.inner.sessions.conversations.start(&session.id, token.clone());
        let (tx, updates) = mpsc::unbounded_channel();
        let topic = conversation.topic.clone();
        tokio::spawn(run(self.clone(), session.id.clone(), conversation, token, tx));
        Ok(ConversationHandle { session_id: session.id, topic, participants: names, updates })
    }

    /// Stop a running conversation: the exchange in progress is dropped, its status becomes
    /// `cancelled`. False when none runs in that session.
    pub fn stop_conversation(&self, id: &SessionId) -> bool {
        self.inner.sessions.conversations.stop(id)
    }

    /// A conversation read back from its session's messages: `None` when the session holds
    /// none. Its `status` is `running` while it runs.
    ///
    /// # Errors
    /// [`CharacterError::Session`] when there is no such session; the store's error.
    pub async fn conversation(&self, id: &SessionId) -> Result<Option<Conversation>, CharacterError> {
        let session = self.session(id).await?;
        let messages = self.inner.store.messages(id).await?;
        let Some(header) =
            messages.iter().find_map(|m| m.metadata.as_deref().and_then(|j| serde_json::from_str::<Header>(j).ok()))
        else {
            return Ok(None);
        };
        let exchanges = messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .filter_map(|m| {
                let meta = m.metadata.as_deref().and_then(|j| serde_json::from_str::<MessageMetadata>(j).ok())?;
                Some((meta.name?, meta.model, m.content.clone()))
            })
            .enumerate()
            .map(|(i, (speaker, model, message))| Exchange { speaker, message, turn: i as u32 + 1, model })
            .collect();
        let status = if self.inner.sessions.conversations.is_running(id) {
            RUNNING
        } else {
            match session.status {
                SessionStatus::Idle => COMPLETED,
                SessionStatus::Cancelled => CANCELLED,
                SessionStatus::Error => ERROR,
                // Busy without a task: another prompt of the session runs.
                SessionStatus::Busy => COMPLETED,
            }
        };
        Ok(Some(Conversation {
            session_id: id.to_string(),
            topic: header.conversation.topic,
            participants: header.conversation.participants,
            exchanges,
            status: status.to_owned(),
        }))
    }

    /// One message of speaker `me`: the window moved past the oldest exchanges as far as the
    /// model's context needs, then generated and cleaned.
    async fn speak(
        &self,
        conversation: &ValidConversation,
        me: usize,
        said: &[Said],
        window: &mut usize,
    ) -> Result<String, CharacterError> {
        let speaker = &conversation.speakers[me];
        let model = Some(speaker.model.as_str());
        let lease = self.lease(model, None).await?;
        let options = PromptOptions { max_tokens: Some(conversation.max_tokens), ..PromptOptions::default() };
        let (budget, reserve) = crate::agent::budget(&lease, &options);
        let mut examples = matches!(&speaker.voice, Voice::Card(card) if !card.mes_example.trim().is_empty());
        let request = loop {
            let request = conversation.request(me, said, *window, examples);
            let n = Engine::prompt_tokens(&lease, request.clone())?;
            if n.saturating_add(reserve) <= budget {
                break request;
            }
            if examples {
                examples = false;
            } else if *window < said.len() {
                *window += 1;
            } else {
                // Nothing left to drop: the backend says how long it is.
                break request;
            }
        };
        let mut stream = self.generate(model, request).await?;
        // Held until the stream holds its own, so the model cannot leave memory in between.
        drop(lease);
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            match event {
                GenerationEvent::Text(t) => text.push_str(&t),
                GenerationEvent::ToolCalls(_) | GenerationEvent::Detail(_) => {}
                GenerationEvent::Done { .. } => return Ok(clean_reply(&text, &speaker.name, &conversation.names())),
                GenerationEvent::Error(e) => return Err(EngineError::Backend(e).into()),
            }
        }
        Err(EngineError::Backend(crate::BackendError::Unavailable).into())
    }
}

/// The task of one conversation.
async fn run(
    engine: Engine,
    id: SessionId,
    conversation: ValidConversation,
    token: CancellationToken,
    tx: mpsc::UnboundedSender<ConversationUpdate>,
) {
    engine.set_status(&id, SessionStatus::Busy).await;
    let n = conversation.speakers.len();
    let mut said: Vec<Said> = Vec::new();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut window = 0;
    let mut ending = Ending::Completed;
    for turn in 0..conversation.turns {
        let me = turn as usize % n;
        let spoken = tokio::select! {
            biased;
            () = token.cancelled() => {
                ending = Ending::Cancelled;
                break;
            }
            spoken = engine.speak(&conversation, me, &said, &mut window) => spoken,
        };
        let text = match spoken {
            Ok(text) => text,
            Err(e) => {
                ending = Ending::Failed(e);
                break;
            }
        };
        let speaker = &conversation.speakers[me];
        let exchange = Exchange {
            speaker: speaker.name.clone(),
            message: text.clone(),
            turn: turn + 1,
            model: Some(speaker.model.clone()),
        };
        let metadata = MessageMetadata {
            model: Some(speaker.model.clone()),
            name: Some(speaker.name.clone()),
            ..MessageMetadata::default()
        };
        let message = NewMessage {
            metadata: serde_json::to_string(&metadata).ok(),
            finish_reason: Some("stop".into()),
            ..NewMessage::text(Role::Assistant, text.clone())
        };
        if let Err(e) = engine.inner.store.append_message(&id, message).await {
            // Deleted meanwhile: that stopped it.
            ending = if token.is_cancelled() { Ending::Cancelled } else { Ending::Failed(e.into()) };
            break;
        }
        engine
            .inner
            .bus
            .emit(Event::ConversationExchange { session_id: id.to_string(), exchange: exchange.clone() })
            .await;
        // The caller may be gone: the conversation goes on regardless.
        let _ = tx.send(ConversationUpdate::Exchange(exchange.clone()));
        said.push(Said { speaker: me, text });
        exchanges.push(exchange);
    }
    let (status, session_status, error) = match ending {
        Ending::Completed => (COMPLETED, SessionStatus::Idle, None),
        Ending::Cancelled => (CANCELLED, SessionStatus::Cancelled, None),
        Ending::Failed(e) => {
            tracing::warn!(session = %id, error = %e, "a conversation failed");
            (ERROR, SessionStatus::Error, Some(e))
        }
    };
    engine.set_status(&id, session_status).await;
    engine.inner.sessions.conversations.end(&id);
    let conversation = Conversation {
        session_id: id.to_string(),
        topic: conversation.topic.clone(),
        participants: conversation.names(),
        exchanges,
        status: status.to_owned(),
    };
    let _ = tx.send(ConversationUpdate::End { conversation, error });
}

/// The running conversations of an engine, by session, with the token that stops each; kept in
/// [`crate::session::SessionTable`].
#[derive(Default)]
pub(crate) struct Running(std::sync::Mutex<HashMap<SessionId, CancellationToken>>);

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, CancellationToken>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn start(&self, id: &SessionId, token: CancellationToken) {
        self.lock().insert(id.clone(), token);
    }

    /// Cancel the session's conversation; false when none runs.
    pub(crate) fn stop(&self, id: &SessionId) -> bool {
        match self.lock().get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub(crate) fn end(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    pub(crate) fn is_running(&self, id: &SessionId) -> bool {
        self.lock().contains_key(id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn adhoc(name: &str, personality: &str) -> Participant {
        Participant { character: None, name: Some(name.into()), personality: Some(personality.into()), model: None }
    }

    fn spec(participants: Vec<Participant>) -> ConversationSpec {
        ConversationSpec { participants, topic: "the sea".into(), turns: None, max_tokens: None }
    }

    fn param_of(spec: &ConversationSpec) -> &'static str {
        check(spec).unwrap_err().param
    }

    #[test]
    fn a_good_spec_passes() {
        check(&spec(vec![adhoc("Ann", "A sailor."), adhoc("Bob", "A fish.")])).unwrap();
        let card = Participant { character: Some("seraphina".into()), name: None, personality: None, model: None };
        check(&spec(vec![card, adhoc("Bob", "A fish.")])).unwrap();
    }

    #[test]
    fn bad_specs_name_the_field() {
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "A sailor.")])), "participants");
        assert_eq!(param_of(&spec(vec![adhoc("A", "x"); 9])), "participants");
        let mut s = spec(vec![adhoc("Ann", "A sailor."), adhoc("Bob", "A fish.")]);
        s.topic = "  \n".into();
        assert_eq!(param_of(&s), "topic");
        s.topic = "x".into();
        s.turns = Some(0);
        assert_eq!(param_of(&s), "turns");
        s.turns = Some(101);
        assert_eq!(param_of(&s), "turns");
        s.turns = Some(100);
        s.max_tokens = Some(2049);
        assert_eq!(param_of(&s), "max_tokens");
        s.max_tokens = Some(2048);
        check(&s).unwrap();

        let no_personality = Participant { personality: None, ..adhoc("Bob", "") };
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), no_personality])), "participants[1].personality");
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), adhoc("Bob", "   ")])), "participants[1].personality");
        let no_name = Participant { name: None, ..adhoc("", "A fish.") };
        assert_eq!(param_of(&spec(vec![no_name, adhoc("Bob", "x")])), "participants[0].name");
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), adhoc(&"n".repeat(65), "x")])), "participants[1].name");
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), adhoc("  ", "x")])), "participants[1].name");
        let both = Participant { character: Some("c".into()), ..adhoc("Bob", "x") };
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), both])), "participants[1].personality");
        let blank = Participant { character: Some(" ".into()), name: None, personality: None, model: None };
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), blank])), "participants[1].character");
        let model = Participant { model: Some("".into()), ..adhoc("Bob", "x") };
        assert_eq!(param_of(&spec(vec![adhoc("Ann", "x"), model])), "participants[1].model");
        assert_eq!(
            param_of(&spec(vec![adhoc("A", "x"), adhoc("B", "x"), adhoc("C", "x"), adhoc("", "x")])),
            "participants[3].name"
        );
    }

    #[test]
    fn names_must_differ() {
        assert!(check_distinct(&["Ann".into(), "Bob".into()]).is_ok());
        assert_eq!(
            check_distinct(&["Ann".into(), "Bob".into(), "ann".into()]).unwrap_err().param,
            "participants[2].name"
        );
    }

    fn said(speaker: usize, text: &str) -> Said {
        Said { speaker, text: text.into() }
    }

    #[test]
    fn the_first_speaker_opens_on_the_topic() {
        let names = vec!["Ann".to_owned(), "Bob".to_owned()];
        assert_eq!(perspective(0, &names, "the sea", &[]), vec![(Role::User, "Let's talk about: the sea".into())]);
        let history = [said(0, "Hello."), said(1, "Hi."), said(0, "Nice day.")];
        assert_eq!(
            perspective(0, &names, "the sea", &history),
            vec![
                (Role::User, "Let's talk about: the sea".into()),
                (Role::Assistant, "Hello.".into()),
                (Role::User, "Hi.".into()),
                (Role::Assistant, "Nice day.".into()),
            ]
        );
        assert_eq!(
            perspective(1, &names, "the sea", &history),
            vec![(Role::User, "Hello.".into()), (Role::Assistant, "Hi.".into()), (Role::User, "Nice day.".into()),]
        );
        // A window that starts with the speaker's own message gets the opener first.
        assert_eq!(
            perspective(1, &names, "the sea", &history[1..])[0],
            (Role::User, "Let's talk about: the sea".into())
        );
    }

    #[test]
    fn others_in_a_row_are_one_message() {
        let names = vec!["Ann".to_owned(), "Bob".to_owned(), "Cy".to_owned()];
        let history = [said(0, "One."), said(1, "Two."), said(2, ""), said(2, "Three.")];
        assert_eq!(
            perspective(2, &names, "t", &history),
            vec![(Role::User, "Ann: One.\n\nBob: Two.".into()), (Role::Assistant, "Three.".into())]
        );
        assert_eq!(
            perspective(0, &names, "t", &history),
            vec![
                (Role::User, "Let's talk about: t".into()),
                (Role::Assistant, "One.".into()),
                (Role::User, "Bob: Two.\n\nCy: Three.".into()),
            ]
        );
    }

    #[test]
    fn replies_lose_their_label_and_the_other_side() {
        let names = vec!["Ann".to_owned(), "Bob".to_owned()];
        assert_eq!(clean_reply("Ann: Hello there.", "Ann", &names), "Hello there.");
        assert_eq!(clean_reply("  **Ann:** Hello.", "Ann", &names), "Hello.");
        assert_eq!(clean_reply("ann : Hello.", "Ann", &names), "Hello.");
        assert_eq!(clean_reply("Hello.\nBob: I am Bob.", "Ann", &names), "Hello.");
        assert_eq!(clean_reply("Hello.\n\n  Ann: again", "Ann", &names), "Hello.");
        assert_eq!(clean_reply("Annie is here. Ann: x", "Ann", &names), "Annie is here. Ann: x");
        assert_eq!(clean_reply("Bob: it is me", "Ann", &names), "it is me", "a label copied from the history goes too");
        assert_eq!(clean_reply("", "Ann", &names), "");
    }

    #[test]
    fn ad_hoc_prompt_and_names() {
        assert_eq!(
            adhoc_system("Ann", "A sailor", "Bob", "the sea"),
            "You are Ann. A sailor. You are talking with Bob about: the sea. Reply in one or two short paragraphs, \
             in character, and speak only for yourself."
        );
        assert!(adhoc_system("Ann", "A sailor!", "Bob", "t").starts_with("You are Ann. A sailor! You"));
        assert_eq!(join_names(&["A"]), "A");
        assert_eq!(join_names(&["A", "B"]), "A and B");
        assert_eq!(join_names(&["A", "B", "C"]), "A, B and C");
    }

    #[test]
    fn titles_are_one_line_and_short() {
        assert_eq!(title("the  sea\nand sky"), "Conversation: the sea and sky");
        let long = title(&"word ".repeat(40));
        assert!(long.chars().count() <= 80 && long.chars().count() > 70, "{long}");
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_request_stops_at_every_speaker_and_keeps_the_topic() {
        let conversation = ValidConversation {
            speakers: vec![
                Speaker {
                    name: "Ann".into(),
                    voice: Voice::AdHoc { personality: "A sailor.".into() },
                    model: "m".into(),
                },
                Speaker {
                    name: "Bob".into(),
                    voice: Voice::Card(Box::new(CardData {
                        name: "Bob".into(),
                        description: "{{char}} is a fish who talks to {{user}}.".into(),
                        ..CardData::default()
                    })),
                    model: "m".into(),
                },
            ],
            topic: "the sea".into(),
            turns: 6,
            max_tokens: 50,
        };
        let said = [said(0, "Hello.")];
        let r = conversation.request(1, &said, 0, true);
        assert_eq!(r.stop, ["\nAnn:", "\nBob:"]);
        assert_eq!(r.max_tokens, Some(50));
        let Prompt::Chat(messages) = &r.prompt else { panic!("a chat prompt") };
        assert_eq!(messages[0].role, Role::System);
        assert!(messages[0].content.contains("Bob is a fish who talks to Ann."), "{}", messages[0].content);
        assert!(messages[0].content.ends_with("You are talking with Ann about: the sea."));
        assert_eq!((messages[1].role, messages[1].content.as_str()), (Role::User, "Hello."), "two speakers: no label");
        let r = conversation.request(0, &said, 0, true);
        let Prompt::Chat(messages) = &r.prompt else { panic!("a chat prompt") };
        assert!(messages[0].content.starts_with("You are Ann. A sailor. You are talking with Bob about: the sea."));
        assert_eq!(messages.len(), 3);
    }
}
