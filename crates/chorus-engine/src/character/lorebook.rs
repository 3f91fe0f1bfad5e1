//! Lorebook activation: which entries of a card's `character_book` a turn inserts, in what
//! order, within the book's token budget (Character Card V2 §"character_book", V3 §"Lorebook"),
//! with SillyTavern's world info as the reference where the specs are silent.
//!
//! [`activate`] is pure: it takes the texts of the latest messages and a token counter and
//! returns the activated entries; where they go in the prompt is [`super::prompt`]'s business.
//!
//! The rules, in the order they apply:
//!
//! - **Scan window**: the last `scan_depth` texts ([`DEFAULT_SCAN_DEPTH`] when absent,
//!   SillyTavern's world info default); `0` scans nothing, so only constant entries activate.
//! - **Disabled** entries never activate; **constant** ones always do (within the budget),
//!   keys or not.
//! - **Keys**: a case-insensitive substring by default; case-sensitive with
//!   `case_sensitive: true` (or SillyTavern's `extensions.case_sensitive` when the field is
//!   absent); whole words with `extensions.match_whole_words: true` (the key must not be
//!   preceded or followed by a letter, digit or `_`; unlike SillyTavern this holds for keys of
//!   several words too). Blank keys never match.
//! - **Regular expressions**: with V3's `use_regex: true` every key is a regular expression
//!   (the `regex` crate's syntax): `/pattern/flags` JavaScript-style, where the `i` flag makes
//!   it case-insensitive and other flags are ignored, or a bare pattern, case-insensitive unless
//!   `case_sensitive: true`. With `use_regex` absent (V2 cards, SillyTavern's exports) a key
//!   written `/pattern/flags` is a regular expression too, as in SillyTavern; with
//!   `use_regex: false` every key is literal. A key that does not compile never matches.
//!   `match_whole_words` does not apply to regular expressions.
//! - **Selective** entries (`selective: true` with non-blank `secondary_keys`) need a primary
//!   key, then the secondary keys as `extensions.selectiveLogic` says (SillyTavern's values):
//!   `0` AND ANY (the default, also for unknown values), `1` NOT ALL, `2` NOT ANY, `3` AND ALL.
//! - **Recursive scanning** (`recursive_scanning: true`): the content of activated entries is
//!   scanned as well, pass after pass until nothing new activates, at most
//!   [`MAX_RECURSION_PASSES`] passes after the first. SillyTavern's entry extensions
//!   `exclude_recursion` (the entry is activated only by the messages) and `prevent_recursion`
//!   (its content is not scanned) are honoured.
//! - **Token budget** (`token_budget`): the entries' tokens are `count_tokens` of their content
//!   (decorators stripped, macros not rendered). When the activated entries exceed the budget,
//!   they are ranked by `priority` descending (an absent priority is `0`, so an entry that
//!   names one above zero outranks those that name none), then `insertion_order` ascending,
//!   then index; the longest run of that ranking that fits is kept and the rest dropped
//!   (SillyTavern likewise stops at the first entry that overflows). Constant entries are
//!   ranked like the others. Once the budget overflows, no further recursion pass runs.
//! - **Order** of the result: `insertion_order` ascending, ties by index in `entries`.
//! - **V3 decorators**: the lines at the start of `content` that begin with `@@` are stripped
//!   from what is inserted and scanned ([`strip_decorators`]); decorators are otherwise
//!   ignored (`@@depth`, `@@activate`, `@@dont_activate`, … change nothing).
//!
//! Also ignored: SillyTavern's probability (`useProbability`), inclusion groups, per-entry scan
//! depth and timed effects, and the V3 fields this crate does not name.

use std::collections::BTreeSet;

use chorus_proto::character::{BookEntry, CharacterBook};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

/// How many of the latest messages are scanned when the book names no `scan_depth`
/// (SillyTavern's world info default).
pub const DEFAULT_SCAN_DEPTH: usize = 2;

/// The most recursion passes after the first scan, when `recursive_scanning` is on.
pub const MAX_RECURSION_PASSES: usize = 5;

/// The most bytes a compiled key's regular expression may take (a card is untrusted input).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why an entry activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationReason {
    /// `constant: true`: always inserted.
    Constant,
    /// This primary key (as written in `keys`) matched.
    Key(String),
}

/// One activated lorebook entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Activated<'b> {
    /// The entry; its `position` (`before_char` / `after_char`) tells the caller where it goes.
    pub entry: &'b BookEntry,
    /// Its index in the book's `entries`.
    pub index: usize,
    /// Why it activated.
    pub reason: ActivationReason,
    /// The text to insert: `entry.content` with its leading V3 decorators stripped, macros not
    /// rendered.
    pub content: &'b str,
}

impl Activated<'_> {
    /// Whether it activated as a constant entry.
    pub fn is_constant(&self) -> bool {
        self.reason == ActivationReason::Constant
    }

    /// Whether the entry goes before the character's definition (`position: "before_char"`);
    /// any other position, or none, is after it.
    pub fn is_before_char(&self) -> bool {
        self.entry.position.as_deref() == Some("before_char")
    }
}

/// `content` without its V3 decorators: the lines at its start that begin with `@@` (V3
/// §"Decorators"; `@@@` fallback decorators included).
pub fn strip_decorators(content: &str) -> &str {
    let mut rest = content;
    while rest.starts_with("@@") {
        match rest.find('\n') {
            Some(end) => rest = &rest[end + 1..],
            None => return "",
        }
    }
    rest
}

/// The entries of `book` that `scan` activates, ordered by `insertion_order` (ties: index).
///
/// `scan` holds the texts of the latest messages, newest last; the whole window may be
/// passed, only the last `scan_depth` are read. `count_tokens` measures an entry's content
/// against `token_budget`. The rules are in the [module documentation](self).
pub fn activate<'b>(
    book: &'b CharacterBook,
    scan: &[&str],
    count_tokens: &dyn Fn(&str) -> usize,
) -> Vec<Activated<'b>> {
    let depth = book.scan_depth.map_or(DEFAULT_SCAN_DEPTH, |d| d as usize);
    let window = &scan[scan.len().saturating_sub(depth)..];
    let chat: Vec<Hay<'_>> = window.iter().map(|t| Hay::new(t)).collect();
    let entries: Vec<Compiled<'b>> = book
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.enabled)
        .map(|(index, entry)| Compiled::new(index, entry))
        .collect();
    let recursive = book.recursive_scanning == Some(true);
    let budget = book.token_budget.map(|b| b as usize);

    let mut active: Vec<Activated<'b>> = Vec::new();
    let mut tokens: Vec<usize> = Vec::new();
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for pass in 0..=MAX_RECURSION_PASSES {
        if pass > 0 && !recursive {
            break;
        }
        let recursion: Vec<Hay<'_>> = if pass == 0 {
            Vec::new()
        } else {
            active.iter().filter(|a| !flag(a.entry, "prevent_recursion")).map(|a| Hay::new(a.content)).collect()
        };
        let mut new = Vec::new();
        for e in entries.iter().filter(|e| !seen.contains(&e.index)) {
            let reason = if e.constant {
                Some(ActivationReason::Constant)
            } else if e.exclude_recursion {
                e.matches(&chat, &[])
            } else {
                e.matches(&chat, &recursion)
            };
            if let Some(reason) = reason {
                new.push(Activated { entry: e.entry, index: e.index, reason, content: e.content });
            }
        }
        if new.is_empty() {
            break;
        }
        for a in new {
            seen.insert(a.index);
            tokens.push(count_tokens(a.content));
            active.push(a);
        }
        if let Some(budget) = budget
            && fit_budget(&mut active, &mut tokens, budget)
        {
            break;
        }
    }
    active.sort_by_key(|a| (a.entry.insertion_order, a.index));
    active
}

/// Drop the lowest-ranked entries until the rest fit `budget`; true when any was dropped.
fn fit_budget(active: &mut Vec<Activated<'_>>, tokens: &mut Vec<usize>, budget: usize) -> bool {
    if tokens.iter().sum::<usize>() <= budget {
        return false;
    }
    let mut ranked: Vec<usize> = (0..active.len()).collect();
    ranked.sort_by_key(|&i| {
        let e = active[i].entry;
        (std::cmp::Reverse(e.priority.unwrap_or(0)), e.insertion_order, active[i].index)
    });
    let mut keep = vec![false; active.len()];
    let mut used = 0usize;
    for i in ranked {
        if used + tokens[i] > budget {
            break;
        }
        used += tokens[i];
        keep[i] = true;
    }
    let mut k = keep.iter();
    active.retain(|_| k.next().copied().unwrap_or(false));
    let mut k = keep.iter();
    tokens.retain(|_| k.next().copied().unwrap_or(false));
    true
}

/// A boolean in an entry's `extensions` (SillyTavern's fields); absent or not a bool: false.
fn flag(entry: &BookEntry, name: &str) -> bool {
    entry.extensions.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// A text to search, with its lowercase form for case-insensitive keys.
struct Hay<'t> {
    raw: &'t str,
    lower: String,
}

impl<'t> Hay<'t> {
    fn new(raw: &'t str) -> Self {
        Self { raw, lower: raw.to_lowercase() }
    }
}

/// SillyTavern's `selectiveLogic`: how the secondary keys of a selective entry combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logic {
    /// `0`: at least one secondary key.
    AndAny,
    /// `1`: not every secondary key.
    NotAll,
    /// `2`: no secondary key.
    NotAny,
    /// `3`: every secondary key.
    AndAll,
}

/// An enabled entry with its keys compiled.
struct Compiled<'b> {
    index: usize,
    entry: &'b BookEntry,
    content: &'b str,
    constant: bool,
    exclude_recursion: bool,
    /// The primary keys, each with the text it was written as.
    primary: Vec<(Key, &'b str)>,
    /// The secondary keys and their logic; empty unless the entry is selective.
    secondary: Vec<Key>,
    logic: Logic,
}

impl<'b> Compiled<'b> {
    fn new(index: usize, entry: &'b BookEntry) -> Self {
        let case_sensitive = entry.case_sensitive.unwrap_or_else(|| flag(entry, "case_sensitive"));
        let whole_words = flag(entry, "match_whole_words");
        let rules = KeyRules { case_sensitive, whole_words, use_regex: entry.use_regex };
        let primary = entry.keys.iter().map(|k| (Key::new(k, rules), k.as_str())).collect();
        let secondary = match (&entry.selective, &entry.secondary_keys) {
            (Some(true), Some(keys)) => {
                keys.iter().filter(|k| !k.trim().is_empty()).map(|k| Key::new(k, rules)).collect()
            }
            _ => Vec::new(),
        };
        let logic = match entry.extensions.get("selectiveLogic").and_then(Value::as_i64) {
            Some(1) => Logic::NotAll,
            Some(2) => Logic::NotAny,
            Some(3) => Logic::AndAll,
            _ => Logic::AndAny,
        };
        Self {
            index,
            entry,
            content: strip_decorators(&entry.content),
            constant: entry.constant == Some(true),
            exclude_recursion: flag(entry, "exclude_recursion"),
            primary,
            secondary,
            logic,
        }
    }

    /// The reason it activates on these texts, if it does.
    fn matches(&self, chat: &[Hay<'_>], recursion: &[Hay<'_>]) -> Option<ActivationReason> {
        let found = |key: &Key| chat.iter().chain(recursion).any(|h| key.matches(h));
        let (_, written) = self.primary.iter().find(|(k, _)| found(k))?;
        if !self.secondary.is_empty() {
            let ok = match self.logic {
                Logic::AndAny => self.secondary.iter().any(found),
                Logic::NotAll => !self.secondary.iter().all(found),
                Logic::NotAny => !self.secondary.iter().any(found),
                Logic::AndAll => self.secondary.iter().all(found),
            };
            if !ok {
                return None;
            }
        }
        Some(ActivationReason::Key((*written).to_owned()))
    }
}

/// How an entry's keys are read.
#[derive(Debug, Clone, Copy)]
struct KeyRules {
    case_sensitive: bool,
    whole_words: bool,
    use_regex: Option<bool>,
}

/// One compiled key.
enum Key {
    /// A literal, lowercased when case-insensitive.
    Literal { needle: String, case_sensitive: bool, whole_words: bool },
    /// A regular expression.
    Regex(Regex),
    /// A blank key, or a regular expression that does not compile.
    Never,
}

impl Key {
    fn new(key: &str, rules: KeyRules) -> Self {
        if key.trim().is_empty() {
            return Key::Never;
        }
        let slashed = parse_slashed(key);
        let regex = match (rules.use_regex, slashed) {
            (Some(false), _) | (None, None) => None,
            (_, Some((pattern, flags))) => Some((pattern, flags.contains('i'))),
            (Some(true), None) => Some((key, !rules.case_sensitive)),
        };
        match regex {
            Some((pattern, insensitive)) => RegexBuilder::new(pattern)
                .case_insensitive(insensitive)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_or(Key::Never, Key::Regex),
            None => Key::Literal {
                needle: if rules.case_sensitive { key.to_owned() } else { key.to_lowercase() },
                case_sensitive: rules.case_sensitive,
                whole_words: rules.whole_words,
            },
        }
    }

    fn matches(&self, hay: &Hay<'_>) -> bool {
        match self {
            Key::Never => false,
            Key::Regex(re) => re.is_match(hay.raw),
            Key::Literal { needle, case_sensitive, whole_words } => {
                let text = if *case_sensitive { hay.raw } else { hay.lower.as_str() };
                if *whole_words {
                    text.match_indices(needle.as_str()).any(|(start, m)| {
                        let before = text[..start].chars().next_back();
                        let after = text[start + m.len()..].chars().next();
                        !before.is_some_and(is_word) && !after.is_some_and(is_word)
                    })
                } else {
                    text.contains(needle.as_str())
                }
            }
        }
    }
}

/// A word character for whole-word matching.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `/pattern/flags` (JavaScript's literal form, flags among JavaScript's `dgimsuvy`): the
/// pattern and the flags.
fn parse_slashed(key: &str) -> Option<(&str, &str)> {
    let body = key.strip_prefix('/')?;
    let end = body.rfind('/')?;
    let (pattern, flags) = (&body[..end], &body[end + 1..]);
    (!pattern.is_empty() && flags.chars().all(|c| "dgimsuvy".contains(c))).then_some((pattern, flags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn entry(keys: &[&str], content: &str) -> BookEntry {
        BookEntry {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            content: content.to_owned(),
            enabled: true,
            ..BookEntry::default()
        }
    }

    fn book(entries: Vec<BookEntry>) -> CharacterBook {
        CharacterBook { entries, ..CharacterBook::default() }
    }

    fn ext(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn indices(book: &CharacterBook, scan: &[&str]) -> Vec<usize> {
        activate(book, scan, &words).iter().map(|a| a.index).collect()
    }

    #[test]
    fn key_activates_case_insensitively_and_names_the_key() {
        let b = book(vec![entry(&["Dragon", "wyrm"], "Dragons breathe fire.")]);
        let got = activate(&b, &["I saw a DRAGON"], &words);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reason, ActivationReason::Key("Dragon".into()));
        assert_eq!(got[0].content, "Dragons breathe fire.");
        assert!(indices(&b, &["nothing here"]).is_empty());
    }

    #[test]
    fn only_the_last_scan_depth_messages_are_scanned() {
        let b = book(vec![entry(&["dragon"], "x")]);
        // Default depth 2: the key three messages back is outside.
        assert!(indices(&b, &["dragon", "hello", "there"]).is_empty());
        assert_eq!(indices(&b, &["old", "dragon", "there"]), vec![0]);
        let mut deep = b.clone();
        deep.scan_depth = Some(3);
        assert_eq!(indices(&deep, &["dragon", "hello", "there"]), vec![0]);
        deep.scan_depth = Some(0);
        assert!(indices(&deep, &["dragon"]).is_empty());
    }

    #[test]
    fn disabled_never_constant_always() {
        let mut off = entry(&["dragon"], "off");
        off.enabled = false;
        off.constant = Some(true);
        let mut on = entry(&[], "always");
        on.constant = Some(true);
        let b = book(vec![off, on]);
        let got = activate(&b, &["dragon"], &words);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].index, 1);
        assert!(got[0].is_constant());
        assert_eq!(indices(&b, &[]), vec![1]);
    }

    #[test]
    fn case_sensitive_keys() {
        let mut e = entry(&["Rose"], "x");
        e.case_sensitive = Some(true);
        let b = book(vec![e]);
        assert!(indices(&b, &["a rose"]).is_empty());
        assert_eq!(indices(&b, &["a Rose"]), vec![0]);
        // SillyTavern's extension field when the spec's is absent.
        let mut e = entry(&["Rose"], "x");
        e.extensions = ext(&[("case_sensitive", json!(true))]);
        assert!(indices(&book(vec![e]), &["a rose"]).is_empty());
    }

    #[test]
    fn whole_words() {
        let mut e = entry(&["cat"], "x");
        e.extensions = ext(&[("match_whole_words", json!(true))]);
        let b = book(vec![e]);
        assert!(indices(&b, &["a category of things"]).is_empty());
        assert!(indices(&b, &["concatenate"]).is_empty());
        assert_eq!(indices(&b, &["the Cat, sleeping"]), vec![0]);
        assert_eq!(indices(&b, &["cat"]), vec![0]);
        // A later occurrence can be whole when the first is not.
        assert_eq!(indices(&b, &["catalog and cat"]), vec![0]);
        // Without the flag, substrings match.
        assert_eq!(indices(&book(vec![entry(&["cat"], "x")]), &["category"]), vec![0]);
    }

    #[test]
    fn regex_keys() {
        let mut e = entry(&["/dra+gon/i"], "x");
        e.use_regex = Some(true);
        let b = book(vec![e]);
        assert_eq!(indices(&b, &["DRAAAGON"]), vec![0]);
        assert!(indices(&b, &["drgon"]).is_empty());

        // Without `i` a slashed pattern is case-sensitive.
        let mut e = entry(&["/Dragon/"], "x");
        e.use_regex = Some(true);
        let b = book(vec![e]);
        assert!(indices(&b, &["dragon"]).is_empty());
        assert_eq!(indices(&b, &["Dragon"]), vec![0]);

        // A bare pattern follows case_sensitive (default: insensitive).
        let mut e = entry(&[r"\bsw(or)?d\b"], "x");
        e.use_regex = Some(true);
        let b = book(vec![e]);
        assert_eq!(indices(&b, &["a SWORD"]), vec![0]);
        assert!(indices(&b, &["swordfish"]).is_empty());

        // With use_regex false the key is literal.
        let mut e = entry(&["/a.c/"], "x");
        e.use_regex = Some(false);
        let b = book(vec![e]);
        assert!(indices(&b, &["abc"]).is_empty());
        assert_eq!(indices(&b, &["see /a.c/"]), vec![0]);

        // Absent use_regex: a slashed key is a regex, as in SillyTavern.
        assert_eq!(indices(&book(vec![entry(&["/a.c/"], "x")]), &["abc"]), vec![0]);
    }

    #[test]
    fn a_bad_regex_never_matches() {
        let mut e = entry(&["/(unclosed/", "(also"], "x");
        e.use_regex = Some(true);
        let b = book(vec![e]);
        assert!(indices(&b, &["(unclosed (also"]).is_empty());
        let mut e = entry(&["/(unclosed/", "fine"], "x");
        e.use_regex = Some(true);
        assert_eq!(indices(&book(vec![e]), &["fine"]), vec![0]);
    }

    fn selective(logic: Option<i64>) -> CharacterBook {
        let mut e = entry(&["sword"], "x");
        e.selective = Some(true);
        e.secondary_keys = Some(vec!["fire".into(), "ice".into()]);
        if let Some(l) = logic {
            e.extensions = ext(&[("selectiveLogic", json!(l))]);
        }
        book(vec![e])
    }

    #[test]
    fn selective_and_any_is_the_default() {
        let b = selective(None);
        assert!(indices(&b, &["a sword"]).is_empty());
        assert!(indices(&b, &["fire and ice"]).is_empty());
        assert_eq!(indices(&b, &["a sword of fire"]), vec![0]);
        assert_eq!(indices(&selective(Some(0)), &["a sword of ice"]), vec![0]);
    }

    #[test]
    fn selective_logic_not_all_not_any_and_all() {
        let not_all = selective(Some(1));
        assert_eq!(indices(&not_all, &["a sword"]), vec![0]);
        assert_eq!(indices(&not_all, &["a sword of fire"]), vec![0]);
        assert!(indices(&not_all, &["a sword of fire and ice"]).is_empty());

        let not_any = selective(Some(2));
        assert_eq!(indices(&not_any, &["a sword"]), vec![0]);
        assert!(indices(&not_any, &["a sword of ice"]).is_empty());

        let and_all = selective(Some(3));
        assert!(indices(&and_all, &["a sword of fire"]).is_empty());
        // Keys may be spread over the scanned messages.
        assert_eq!(indices(&and_all, &["a sword of fire", "and ice"]), vec![0]);
    }

    #[test]
    fn selective_without_secondary_keys_needs_only_the_primary() {
        let mut e = entry(&["sword"], "x");
        e.selective = Some(true);
        e.secondary_keys = Some(vec![" ".into()]);
        assert_eq!(indices(&book(vec![e]), &["sword"]), vec![0]);
        // Secondary keys of a non-selective entry are ignored.
        let mut e = entry(&["sword"], "x");
        e.secondary_keys = Some(vec!["fire".into()]);
        assert_eq!(indices(&book(vec![e]), &["sword"]), vec![0]);
    }

    #[test]
    fn recursive_scanning() {
        let mut b = book(vec![
            entry(&["castle"], "The castle has a dungeon."),
            entry(&["dungeon"], "The dungeon holds a dragon."),
            entry(&["dragon"], "The dragon sleeps."),
            entry(&["unrelated"], "No."),
        ]);
        assert_eq!(indices(&b, &["the castle"]), vec![0]);
        b.recursive_scanning = Some(true);
        assert_eq!(indices(&b, &["the castle"]), vec![0, 1, 2]);
    }

    #[test]
    fn recursion_is_bounded_and_honours_the_extensions() {
        // A chain longer than the passes allowed: entry i's content names key i+1.
        let entries = (0..10).map(|i| entry(&[&format!("k{i}x")], &format!("k{}x", i + 1))).collect();
        let mut b = book(entries);
        b.recursive_scanning = Some(true);
        assert_eq!(indices(&b, &["k0x"]), (0..=MAX_RECURSION_PASSES).collect::<Vec<_>>());

        let mut prevent = entry(&["castle"], "dungeon");
        prevent.extensions = ext(&[("prevent_recursion", json!(true))]);
        let mut b = book(vec![prevent, entry(&["dungeon"], "x")]);
        b.recursive_scanning = Some(true);
        assert_eq!(indices(&b, &["castle"]), vec![0]);

        let mut exclude = entry(&["dungeon"], "x");
        exclude.extensions = ext(&[("exclude_recursion", json!(true))]);
        let mut b = book(vec![entry(&["castle"], "dungeon"), exclude]);
        b.recursive_scanning = Some(true);
        assert_eq!(indices(&b, &["castle"]), vec![0]);
        assert_eq!(indices(&b, &["castle dungeon"]), vec![0, 1]);
    }

    #[test]
    fn ordered_by_insertion_order_then_index() {
        let mut a = entry(&["x"], "a");
        a.insertion_order = 5;
        let mut b_ = entry(&["x"], "b");
        b_.insertion_order = -1;
        let mut c = entry(&["x"], "c");
        c.insertion_order = 5;
        let mut d = entry(&[], "d");
        d.constant = Some(true);
        d.insertion_order = 2;
        let b = book(vec![a, b_, c, d]);
        assert_eq!(indices(&b, &["x"]), vec![1, 3, 0, 2]);
    }

    #[test]
    fn token_budget_drops_lowest_priority_then_highest_order() {
        let mk = |content: &str, priority: Option<i64>, order: i64| {
            let mut e = entry(&["x"], content);
            e.priority = priority;
            e.insertion_order = order;
            e
        };
        let mut b = book(vec![
            mk("one two three", Some(10), 3), // 3 tokens, kept first
            mk("four five", None, 1),         // 2 tokens, priority 0
            mk("six seven", None, 2),         // 2 tokens, priority 0, higher order: dropped first
            mk("eight", Some(-1), 0),         // 1 token, lowest priority
        ]);
        assert_eq!(indices(&b, &["x"]), vec![3, 1, 2, 0]);
        b.token_budget = Some(8);
        assert_eq!(indices(&b, &["x"]), vec![3, 1, 2, 0]);
        b.token_budget = Some(7);
        assert_eq!(indices(&b, &["x"]), vec![1, 2, 0]);
        b.token_budget = Some(6);
        assert_eq!(indices(&b, &["x"]), vec![1, 0]);
        b.token_budget = Some(5);
        assert_eq!(indices(&b, &["x"]), vec![1, 0]);
        b.token_budget = Some(4);
        assert_eq!(indices(&b, &["x"]), vec![0]);
        b.token_budget = Some(2);
        assert!(indices(&b, &["x"]).is_empty());
        for budget in 0..10 {
            b.token_budget = Some(budget);
            let used: usize = activate(&b, &["x"], &words).iter().map(|a| words(a.content)).sum();
            assert!(used <= budget as usize);
        }
    }

    #[test]
    fn token_budget_counts_constants_like_the_others() {
        let mut constant = entry(&[], "a b c");
        constant.constant = Some(true);
        let mut keyed = entry(&["x"], "d e");
        keyed.priority = Some(5);
        let mut b = book(vec![constant, keyed]);
        b.token_budget = Some(4);
        assert_eq!(indices(&b, &["x"]), vec![1]);
        assert_eq!(indices(&b, &["y"]), vec![0]);
    }

    #[test]
    fn decorators_are_stripped() {
        assert_eq!(
            strip_decorators("@@depth 4\n@@@role system\nThe tower.\n@@ not a decorator"),
            "The tower.\n@@ not a decorator"
        );
        assert_eq!(strip_decorators("@@only"), "");
        assert_eq!(strip_decorators("plain @@x"), "plain @@x");
        let b = book(vec![entry(&["tower"], "@@depth 4\nThe tower.")]);
        let got = activate(&b, &["tower"], &words);
        assert_eq!(got[0].content, "The tower.");
        assert_eq!(got[0].entry.content, "@@depth 4\nThe tower.");
    }

    #[test]
    fn blank_keys_never_match() {
        assert!(indices(&book(vec![entry(&["", "  "], "x")]), &["anything"]).is_empty());
    }
}
