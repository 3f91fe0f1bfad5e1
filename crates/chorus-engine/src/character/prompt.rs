//! The messages a character's turn sends to the model: macros ([`render`]), greetings
//! ([`greeting`]) and the prompt itself ([`assemble`]), from a Character Card V2/V3's fields
//! (V2 §"Prompt building", V3 §"Macros"), with SillyTavern's behaviour as the reference where
//! the specs are silent. Pure: no I/O; the caller fetches the window, memories and vitals.
//!
//! # Layout
//!
//! The stable part comes first, so that the model's KV cache reuses it from turn to turn;
//! what changes per turn sits as late as it can:
//!
//! 1. **One system message**, the same every turn while the card, the speaker and the summary
//!    are (and the card's fields use no `{{vitals.…}}`), each part separated by a blank line:
//!    - the card's `system_prompt` with `{{original}}` = chorus's default system prompt, or
//!      that default when the card's is blank (V2 §"system_prompt");
//!    - the constant lorebook entries with `position: "before_char"`;
//!    - `description`;
//!    - `{{char}}'s personality: …` when `personality` is set;
//!    - `Scenario: …` when `scenario` is set;
//!    - the constant lorebook entries after the character (`after_char`, or no position);
//!    - with [`PromptInput::include_examples`], each `mes_example` block (split on `<START>`,
//!      case-insensitively, trimmed, empty ones skipped) under an `Example dialogue:` header;
//!    - `Summary of the earlier conversation: …` when a summary is given.
//! 2. **The history**, oldest first. User messages are prefixed `NAME: ` when the window
//!    holds more than one distinct user name, so a multi-user chat says who speaks.
//! 3. **One per-turn system message**, just before the last user message (at the end of the
//!    history when it has none), only when it has anything: the key-activated lorebook
//!    entries (`before_char` ones, then the others, each group in activation order), then
//!    `Things {{char}} remembers:` with a `- …` line per memory, then
//!    `{{char}}'s current state: NAME: value, …` from the vitals (in name order).
//! 4. **`post_history_instructions`** as a last system message when set, with `{{original}}`
//!    empty (chorus has no prompt of its own there).
//!
//! Macros are rendered in every card field and lorebook entry. Data is not rendered: the
//! history, the memories, the summary and the vital values go in as they are. `creator_notes`
//! never appears (V2: "not used in the prompt"). The lorebook is scanned over the contents of
//! the window's user and assistant messages ([`lorebook::activate`]); its token budget, when
//! short, may drop a constant entry too, which changes the system message.

use std::collections::BTreeMap;

use chorus_proto::character::CardData;

use super::lorebook::{self, Activated};
use crate::{ChatMessage, Role};

/// The values macros stand for.
#[derive(Debug, Clone, Copy)]
pub struct Macros<'a> {
    /// `{{char}}` and `<BOT>`: the character's name ([`CardData::char_name`]).
    pub char: &'a str,
    /// `{{user}}` and `<USER>`: the current speaker's name.
    pub user: &'a str,
    /// `{{vitals.NAME}}`: a vital's rendered value, by name.
    pub vitals: &'a BTreeMap<String, String>,
    /// `{{original}}`: the prompt a card's field replaces; `None` renders it empty.
    pub original: Option<&'a str>,
}

/// `text` with its macros replaced (V2 §"{{char}}, {{user}}, {{original}}"):
///
/// - `{{char}}`, `{{user}}`, `{{original}}`: case-insensitive, inner spaces allowed
///   (`{{ Char }}`), as in SillyTavern; `{{original}}` is empty when [`Macros::original`] is
///   `None`;
/// - the legacy `<BOT>` and `<USER>`, case-insensitive;
/// - `{{vitals.NAME}}`: the vital's value (`vitals` case-insensitive, `NAME` exact); an
///   unknown vital is left as it is.
///
/// Other macros are left untouched. One pass: a replacement is not rendered again, so a user
/// named `{{char}}` stays that.
pub fn render(text: &str, m: &Macros<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(['{', '<']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{")
            && let Some(end) = after.find("}}")
            && let Some(value) = macro_value(&after[..end], m)
        {
            out.push_str(value);
            rest = &after[end + 2..];
        } else if starts_with_ci(tail, "<bot>") {
            out.push_str(m.char);
            rest = &tail["<bot>".len()..];
        } else if starts_with_ci(tail, "<user>") {
            out.push_str(m.user);
            rest = &tail["<user>".len()..];
        } else {
            // `{` and `<` are one byte: keep it and look again just after, so `{{{char}}`
            // keeps its first brace and renders the rest.
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// What the macro with this inner text (between `{{` and `}}`) stands for, if it is one.
fn macro_value<'m>(inner: &str, m: &Macros<'m>) -> Option<&'m str> {
    let name = inner.trim();
    if name.eq_ignore_ascii_case("char") {
        Some(m.char)
    } else if name.eq_ignore_ascii_case("user") {
        Some(m.user)
    } else if name.eq_ignore_ascii_case("original") {
        Some(m.original.unwrap_or(""))
    } else if starts_with_ci(name, "vitals.") {
        m.vitals.get(&name["vitals.".len()..]).map(String::as_str)
    } else {
        None
    }
}

/// Whether `text` starts with the ASCII `prefix`, ignoring ASCII case.
fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Greeting `index`, rendered for `user`: `0` is `first_mes`, `1..` are
/// `alternate_greetings[index - 1]` (V2 §"alternate_greetings"). `None` when out of range or
/// blank.
pub fn greeting(card: &CardData, index: usize, user: &str, vitals: &BTreeMap<String, String>) -> Option<String> {
    let text = match index {
        0 => card.first_mes.as_str(),
        i => card.alternate_greetings.get(i - 1)?.as_str(),
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(render(text, &Macros { char: card.char_name(), user, vitals, original: None }))
}

/// One message of the window, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryTurn<'a> {
    /// Who wrote it.
    pub role: Role,
    /// Its text, as stored (not rendered).
    pub content: &'a str,
    /// For a user message: the speaker's name.
    pub name: Option<&'a str>,
}

/// What a character's turn is assembled from.
#[derive(Debug, Clone, Copy)]
pub struct PromptInput<'a> {
    /// The character.
    pub card: &'a CardData,
    /// The conversation in the model's window, oldest first (the greeting is its first
    /// assistant message when stored); user messages carry the speaker's name.
    pub history: &'a [HistoryTurn<'a>],
    /// The current speaker's name, what `{{user}}` stands for.
    pub user: &'a str,
    /// Vital name → rendered value, for `{{vitals.NAME}}` and the state line.
    pub vitals: &'a BTreeMap<String, String>,
    /// Retrieved memories to inject, best first.
    pub memories: &'a [String],
    /// A rolling summary of the turns that left the window.
    pub summary: Option<&'a str>,
    /// Whether the `mes_example` blocks are included (the caller drops them first when space
    /// runs short).
    pub include_examples: bool,
    /// chorus's main prompt: what `{{original}}` stands for in the card's `system_prompt`,
    /// and the system prompt when the card's is blank.
    pub default_system_prompt: &'a str,
}

/// An assembled prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// The messages, laid out as the [module documentation](self) says.
    pub messages: Vec<ChatMessage>,
    /// The indices (in `character_book.entries`) of the lorebook entries inserted, in
    /// activation order.
    pub lore: Vec<usize>,
    /// How many example dialogue blocks the system message holds.
    pub example_blocks: usize,
}

/// Assemble a character's turn; `count_tokens` measures lorebook entries against the book's
/// token budget. The layout is in the [module documentation](self).
pub fn assemble(input: &PromptInput<'_>, count_tokens: &dyn Fn(&str) -> usize) -> Assembled {
    let card = input.card;
    let char_name = card.char_name();
    let macros = Macros { char: char_name, user: input.user, vitals: input.vitals, original: None };
    let r = |text: &str| render(text, &macros);

    let scan: Vec<&str> =
        input.history.iter().filter(|t| matches!(t.role, Role::User | Role::Assistant)).map(|t| t.content).collect();
    let lore: Vec<Activated<'_>> =
        card.character_book.as_ref().map(|book| lorebook::activate(book, &scan, count_tokens)).unwrap_or_default();
    let lore_group = |constant: bool, before: bool| -> Option<String> {
        let texts: Vec<String> = lore
            .iter()
            .filter(|a| a.is_constant() == constant && a.is_before_char() == before)
            .map(|a| r(a.content.trim()))
            .filter(|t| !t.is_empty())
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n"))
    };

    // 1. The stable system message.
    let mut parts: Vec<String> = Vec::new();
    let original = r(input.default_system_prompt);
    let system_prompt = if card.system_prompt.trim().is_empty() {
        original
    } else {
        render(&card.system_prompt, &Macros { original: Some(&original), ..macros })
    };
    parts.push(system_prompt);
    parts.extend(lore_group(true, true));
    parts.push(r(&card.description));
    if !card.personality.trim().is_empty() {
        parts.push(format!("{char_name}'s personality: {}", r(card.personality.trim())));
    }
    if !card.scenario.trim().is_empty() {
        parts.push(format!("Scenario: {}", r(card.scenario.trim())));
    }
    parts.extend(lore_group(true, false));
    let mut example_blocks = 0;
    if input.include_examples {
        for block in split_ci(&card.mes_example, "<START>").map(str::trim).filter(|b| !b.is_empty()) {
            parts.push(format!("Example dialogue:\n{}", r(block)));
            example_blocks += 1;
        }
    }
    if let Some(summary) = input.summary.map(str::trim).filter(|s| !s.is_empty()) {
        parts.push(format!("Summary of the earlier conversation: {summary}"));
    }
    let mut messages = Vec::with_capacity(input.history.len() + 3);
    if let Some(system) = join_parts(parts) {
        messages.push(ChatMessage::new(Role::System, system));
    }

    // 2. The history.
    let mut names: Vec<&str> = input.history.iter().filter(|t| t.role == Role::User).filter_map(|t| t.name).collect();
    names.sort_unstable();
    names.dedup();
    let multi_user = names.len() > 1;
    let last_user = input.history.iter().rposition(|t| t.role == Role::User);
    let per_turn = per_turn_message(input, char_name, lore_group(false, true), lore_group(false, false));
    for (i, turn) in input.history.iter().enumerate() {
        if Some(i) == last_user
            && let Some(text) = &per_turn
        {
            messages.push(ChatMessage::new(Role::System, text.clone()));
        }
        let content = match (turn.role, turn.name) {
            (Role::User, Some(name)) if multi_user => format!("{name}: {}", turn.content),
            _ => turn.content.to_owned(),
        };
        messages.push(ChatMessage::new(turn.role, content));
    }
    if last_user.is_none()
        && let Some(text) = per_turn
    {
        messages.push(ChatMessage::new(Role::System, text));
    }

    // 4. Post-history instructions.
    let post = r(card.post_history_instructions.trim());
    if !post.trim().is_empty() {
        messages.push(ChatMessage::new(Role::System, post));
    }

    Assembled { messages, lore: lore.iter().map(|a| a.index).collect(), example_blocks }
}

/// 3. The per-turn system message: keyed lore, memories, the state line; `None` when empty.
fn per_turn_message(
    input: &PromptInput<'_>,
    char_name: &str,
    lore_before: Option<String>,
    lore_after: Option<String>,
) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let lore: Vec<String> = lore_before.into_iter().chain(lore_after).collect();
    if !lore.is_empty() {
        parts.push(lore.join("\n"));
    }
    let memories: Vec<&str> = input.memories.iter().map(|m| m.trim()).filter(|m| !m.is_empty()).collect();
    if !memories.is_empty() {
        let lines: Vec<String> = memories.iter().map(|m| format!("- {m}")).collect();
        parts.push(format!("Things {char_name} remembers:\n{}", lines.join("\n")));
    }
    if !input.vitals.is_empty() {
        let state: Vec<String> = input.vitals.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        parts.push(format!("{char_name}'s current state: {}", state.join(", ")));
    }
    join_parts(parts)
}

/// The non-blank parts, trimmed and separated by blank lines; `None` when none is left.
fn join_parts(parts: Vec<String>) -> Option<String> {
    let parts: Vec<&str> = parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// `text` split on the ASCII `sep`, ignoring ASCII case.
fn split_ci<'t>(text: &'t str, sep: &str) -> impl Iterator<Item = &'t str> {
    let lower = text.to_ascii_lowercase();
    let sep = sep.to_ascii_lowercase();
    let mut pieces = Vec::new();
    let mut start = 0;
    // ASCII lowercasing keeps byte offsets, so the offsets found in `lower` are `text`'s.
    for (at, _) in lower.match_indices(sep.as_str()) {
        pieces.push(&text[start..at]);
        start = at + sep.len();
    }
    pieces.push(&text[start..]);
    pieces.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_proto::character::{BookEntry, CharacterBook};

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn no_vitals() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn lore(keys: &[&str], content: &str, constant: bool, position: Option<&str>) -> BookEntry {
        BookEntry {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            content: content.to_owned(),
            enabled: true,
            constant: constant.then_some(true),
            position: position.map(str::to_owned),
            ..BookEntry::default()
        }
    }

    fn card() -> CardData {
        CardData {
            name: "Seraphina".into(),
            description: "{{char}} is a guardian of the forest who watches over {{user}}.".into(),
            personality: "kind, <BOT>-like, protective".into(),
            scenario: "{{user}} wakes in {{char}}'s glade.".into(),
            first_mes: "Hello, {{user}}. I am {{char}}.".into(),
            mes_example: "<START>\n{{user}}: Hi\n{{char}}: Hello.\n<start>\n\n<START>\n{{char}}: Welcome back.".into(),
            creator_notes: "SECRET CREATOR NOTE".into(),
            system_prompt: "{{original}} Stay in character as {{char}}.".into(),
            post_history_instructions: "Reply as {{char}} only.{{original}}".into(),
            alternate_greetings: vec!["Oh, {{user}}!".into(), "  ".into()],
            character_book: Some(CharacterBook {
                entries: vec![
                    lore(&[], "The forest is ancient.", true, Some("before_char")),
                    lore(&[], "{{char}} wields glowing magic.", true, Some("after_char")),
                    lore(&["dragon"], "Dragons fear {{char}}.", false, Some("after_char")),
                    lore(&["river"], "The river runs north.", false, Some("before_char")),
                    lore(&[], "An after entry with no position.", true, None),
                ],
                ..CharacterBook::default()
            }),
            ..CardData::default()
        }
    }

    struct Turn {
        history: Vec<HistoryTurn<'static>>,
        vitals: BTreeMap<String, String>,
        memories: Vec<String>,
    }

    fn turn(history: Vec<HistoryTurn<'static>>) -> Turn {
        Turn { history, vitals: no_vitals(), memories: Vec::new() }
    }

    fn user(content: &'static str, name: &'static str) -> HistoryTurn<'static> {
        HistoryTurn { role: Role::User, content, name: Some(name) }
    }

    fn bot(content: &'static str) -> HistoryTurn<'static> {
        HistoryTurn { role: Role::Assistant, content, name: None }
    }

    fn build(card: &CardData, t: &Turn, include_examples: bool) -> Assembled {
        let input = PromptInput {
            card,
            history: &t.history,
            user: "Alex",
            vitals: &t.vitals,
            memories: &t.memories,
            summary: None,
            include_examples,
            default_system_prompt: "You are {{char}}, talking with {{user}}.",
        };
        assemble(&input, &words)
    }

    fn all_text(a: &Assembled) -> String {
        a.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n---\n")
    }

    #[test]
    fn render_macros() {
        let mut vitals = no_vitals();
        vitals.insert("mood".into(), "cheerful".into());
        let m = Macros { char: "Sera", user: "Alex", vitals: &vitals, original: Some("ORIG") };
        assert_eq!(render("{{char}} {{CHAR}} {{ User }} <BOT> <user> <Bot>", &m), "Sera Sera Alex Sera Alex Sera");
        assert_eq!(render("[{{original}}]", &m), "[ORIG]");
        assert_eq!(render("[{{original}}]", &Macros { original: None, ..m }), "[]");
        assert_eq!(
            render("{{vitals.mood}} {{VITALS.mood}} {{vitals.trust}}", &m),
            "cheerful cheerful {{vitals.trust}}"
        );
        assert_eq!(render("{{random:a,b}} {{char", &m), "{{random:a,b}} {{char");
        assert_eq!(render("{{{char}}} <b>", &m), "{Sera} <b>");
        // One pass: a replacement is not rendered again.
        let odd = Macros { user: "{{char}}", ..m };
        assert_eq!(render("{{user}}", &odd), "{{char}}");
        assert_eq!(render("héllo {{char}} ünï", &m), "héllo Sera ünï");
    }

    #[test]
    fn greetings() {
        let c = card();
        let v = no_vitals();
        assert_eq!(greeting(&c, 0, "Alex", &v).as_deref(), Some("Hello, Alex. I am Seraphina."));
        assert_eq!(greeting(&c, 1, "Alex", &v).as_deref(), Some("Oh, Alex!"));
        assert_eq!(greeting(&c, 2, "Alex", &v), None);
        assert_eq!(greeting(&c, 3, "Alex", &v), None);
        let blank = CardData { first_mes: String::new(), ..c };
        assert_eq!(greeting(&blank, 0, "Alex", &v), None);
    }

    #[test]
    fn creator_notes_never_appear() {
        let c = card();
        let a = build(&c, &turn(vec![bot("Hello."), user("Tell me SECRET things about dragons", "Alex")]), true);
        let text = all_text(&a);
        assert!(!text.contains("CREATOR NOTE"), "{text}");
    }

    #[test]
    fn system_prompt_and_original() {
        let c = card();
        let a = build(&c, &turn(vec![user("hi", "Alex")]), true);
        let system = &a.messages[0];
        assert_eq!(system.role, Role::System);
        assert!(
            system.content.starts_with("You are Seraphina, talking with Alex. Stay in character as Seraphina.\n\n"),
            "{}",
            system.content
        );
        // A blank system_prompt falls back to the default.
        let blank = CardData { system_prompt: " ".into(), ..card() };
        let a = build(&blank, &turn(vec![user("hi", "Alex")]), true);
        assert!(a.messages[0].content.starts_with("You are Seraphina, talking with Alex.\n\n"));
        // post_history_instructions: {{original}} is empty, and it comes last.
        let last = a.messages.last().map(|m| (m.role, m.content.as_str()));
        assert_eq!(last, Some((Role::System, "Reply as Seraphina only.")));
    }

    #[test]
    fn system_message_layout() {
        let c = card();
        let a = build(&c, &turn(vec![user("hi", "Alex")]), true);
        let expected = "You are Seraphina, talking with Alex. Stay in character as Seraphina.\n\n\
            The forest is ancient.\n\n\
            Seraphina is a guardian of the forest who watches over Alex.\n\n\
            Seraphina's personality: kind, Seraphina-like, protective\n\n\
            Scenario: Alex wakes in Seraphina's glade.\n\n\
            Seraphina wields glowing magic.\nAn after entry with no position.\n\n\
            Example dialogue:\nAlex: Hi\nSeraphina: Hello.\n\n\
            Example dialogue:\nSeraphina: Welcome back.";
        assert_eq!(a.messages[0].content, expected);
        assert_eq!(a.example_blocks, 2);
        assert_eq!(a.lore, vec![0, 1, 4]);
    }

    #[test]
    fn nickname_is_char() {
        let c = CardData { nickname: Some("Sera".into()), ..card() };
        let a = build(&c, &turn(vec![user("hi", "Alex")]), true);
        assert!(a.messages[0].content.contains("Sera is a guardian"));
        assert!(a.messages[0].content.contains("Sera's personality"));
        assert!(!all_text(&a).contains("Seraphina"));
    }

    #[test]
    fn examples_dropped_when_not_included() {
        let c = card();
        let a = build(&c, &turn(vec![user("hi", "Alex")]), false);
        assert_eq!(a.example_blocks, 0);
        assert!(!a.messages[0].content.contains("Example dialogue"));
        assert!(!a.messages[0].content.contains("Welcome back"));
    }

    #[test]
    fn keyed_lore_only_within_scan_depth_and_before_the_last_user_message() {
        let c = card();
        // "dragon" three messages back: outside the default depth of 2.
        let far = build(&c, &turn(vec![user("a dragon!", "Alex"), bot("Yes."), user("and then?", "Alex")]), true);
        assert!(!all_text(&far).contains("Dragons fear"));
        assert!(!far.lore.contains(&2));

        let near = build(&c, &turn(vec![bot("A dragon."), user("The river too", "Alex")]), true);
        assert_eq!(near.lore, vec![0, 1, 2, 3, 4]);
        let roles: Vec<Role> = near.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, vec![Role::System, Role::Assistant, Role::System, Role::User, Role::System]);
        // before_char keyed entries first, then after_char; not in the stable message.
        assert_eq!(near.messages[2].content, "The river runs north.\nDragons fear Seraphina.");
        assert!(!near.messages[0].content.contains("Dragons fear"));
        // Constant entries stay in the system message.
        assert!(near.messages[0].content.contains("The forest is ancient."));
        assert!(far.messages[0].content.contains("The forest is ancient."));
    }

    #[test]
    fn memories_and_vitals_before_the_last_user_message_post_history_after() {
        let c = card();
        let mut t = turn(vec![user("hello", "Alex"), bot("Hi."), user("how are you?", "Alex")]);
        t.memories = vec!["Alex likes tea.".into(), " ".into(), "Alex fears the dark.".into()];
        t.vitals.insert("trust".into(), "50".into());
        t.vitals.insert("mood".into(), "cheerful".into());
        let a = build(&c, &t, true);
        let roles: Vec<Role> = a.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, vec![Role::System, Role::User, Role::Assistant, Role::System, Role::User, Role::System]);
        assert_eq!(
            a.messages[3].content,
            "Things Seraphina remembers:\n- Alex likes tea.\n- Alex fears the dark.\n\n\
             Seraphina's current state: mood: cheerful, trust: 50"
        );
        assert_eq!(a.messages[4].content, "how are you?");
        assert_eq!(a.messages[5].content, "Reply as Seraphina only.");
        assert!(!a.messages[0].content.contains("cheerful"));
    }

    #[test]
    fn no_per_turn_message_when_empty_and_no_post_history_when_unset() {
        let c = CardData { post_history_instructions: String::new(), ..card() };
        let a = build(&c, &turn(vec![bot("Hello."), user("hi", "Alex")]), true);
        let roles: Vec<Role> = a.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, vec![Role::System, Role::Assistant, Role::User]);
    }

    #[test]
    fn the_system_message_is_stable_across_turns() {
        let c = card();
        let first = build(&c, &turn(vec![bot("Hello."), user("hi", "Alex")]), true);
        let mut t = turn(vec![bot("Hello."), user("hi", "Alex"), bot("A dragon!"), user("by the river", "Alex")]);
        t.vitals.insert("mood".into(), "afraid".into());
        t.memories = vec!["Alex saw a dragon.".into()];
        let second = build(&c, &t, true);
        assert_ne!(first.lore, second.lore);
        assert_eq!(first.messages[0], second.messages[0]);
    }

    #[test]
    fn user_names_only_in_multi_user_windows() {
        let c = card();
        let one = build(&c, &turn(vec![user("hi", "Alex"), bot("Hello."), user("again", "Alex")]), true);
        assert_eq!(one.messages[1].content, "hi");
        let two = build(&c, &turn(vec![user("hi", "Alex"), bot("Hello."), user("me too", "Sam")]), true);
        assert_eq!(two.messages[1].content, "Alex: hi");
        assert_eq!(two.messages[2].content, "Hello.");
        assert_eq!(
            two.messages.iter().rfind(|m| m.role == Role::User).map(|m| m.content.as_str()),
            Some("Sam: me too")
        );
    }

    #[test]
    fn summary_closes_the_system_message() {
        let c = card();
        let t = turn(vec![user("hi", "Alex")]);
        let input = PromptInput {
            card: &c,
            history: &t.history,
            user: "Alex",
            vitals: &t.vitals,
            memories: &t.memories,
            summary: Some("They met at dawn."),
            include_examples: false,
            default_system_prompt: "",
        };
        let a = assemble(&input, &words);
        assert!(a.messages[0].content.ends_with("\n\nSummary of the earlier conversation: They met at dawn."));
        assert!(a.messages[0].content.starts_with("Stay in character as Seraphina."));
    }

    #[test]
    fn per_turn_message_without_a_user_message_goes_last_before_post_history() {
        let c = card();
        let mut t = turn(vec![bot("Hello.")]);
        t.vitals.insert("mood".into(), "calm".into());
        let a = build(&c, &t, false);
        let roles: Vec<Role> = a.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, vec![Role::System, Role::Assistant, Role::System, Role::System]);
        assert_eq!(a.messages[2].content, "Seraphina's current state: mood: calm");
    }
}
