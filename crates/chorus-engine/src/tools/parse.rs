//! [`ToolCallParser`]: splits a model's streamed text into the content to show
//! and the tool calls to return, for one [`ToolFormat`] and the tools a
//! request offers. Text is released as soon as it cannot be the start of a
//! call; a possible call is held until it is complete and is then either a
//! call or, when it does not parse as a call of an offered tool, content
//! again, so nothing the model wrote is lost and no part of a call is shown.
//!
//! # Accepted forms
//!
//! Each family accepts its template's own form and the variants llama.cpp
//! accepts for it: its Hermes 2 Pro, Llama 3.x and Mistral parsers
//! (`common/chat.cpp` before the PEG rewrite, which also took small models'
//! untagged calls) and the current PEG parsers (`common/chat-peg-parser.cpp`,
//! `chat-auto-parser-generator.cpp`). In every form the name must be one of
//! the request's tools; the arguments are an object, or a string holding a
//! JSON object; `"arguments"` and `"parameters"` are both read (llama.cpp
//! reads only the family's own key and drops the other). A closing tag or
//! fence may be missing or cut off by the end (generation may stop right
//! after the JSON); text in its place is content after the call. Calls can follow one another, separated by whitespace (and one
//! `,` or `;`), and content may come before, between and after them; the
//! whitespace at the start and around calls is not content.
//!
//! | Family  | Form                                      | Example |
//! |---------|-------------------------------------------|---------|
//! | Hermes  | `<tool_call>` JSON `</tool_call>`           | `<tool_call>\n{"name": "list_dir", "arguments": {"path": "."}}\n</tool_call>` |
//! | Hermes  | the same after content, unclosed at the end | `Let me look.\n<tool_call>\n{"name": "list_dir", "arguments": {"path": "."}}` |
//! | Hermes  | several `<tool_call>` blocks                | `<tool_call>{"name": "list_dir", "arguments": {}}</tool_call>\n<tool_call>{"name": "read_file", "arguments": "{\"path\": \"a\"}"}</tool_call>` |
//! | Hermes  | a bare object, the whole answer             | `{"name": "list_dir", "arguments": {"path": "."}}` |
//! | Hermes  | a bare object with `"parameters"`           | `{"name": "list_dir", "parameters": {"path": "."}}` |
//! | Hermes  | a bare object after content                 | `Sure.\n{"name": "list_dir", "arguments": {"path": "."}}` |
//! | Hermes  | bare objects, one per line                  | `{"name": "list_dir", "arguments": {}}\n{"name": "read_file", "arguments": {"path": "a"}}` |
//! | Hermes  | a fenced ` ```json ` block                  | ` ```json\n{"name": "list_dir", "arguments": {"path": "."}}\n``` ` |
//! | Hermes  | a fenced ` ``` ` (or ` ```xml `) block      | ` ```\n{"name": "list_dir", "arguments": {"path": "."}}\n``` ` |
//! | Hermes  | `<function=NAME>` arguments `</function>`   | `<function=list_dir>{"path": "."}</function>` |
//! | Hermes  | `<function name="NAME">` arguments `</function>` | `<function name="list_dir">{"path": "."}</function>` |
//! | Hermes  | `<tool_call>` around `<function=NAME>`      | `<tool_call>\n<function=list_dir>{"path": "."}</function>\n</tool_call>` |
//! | Hermes  | other tags: `<function_call>`, `<tool>`, `<tools>`, `<response>`, `<json>`, `<xml>`, `<JSON>` | `<tools>{"name": "list_dir", "arguments": {"path": "."}}</tools>` |
//! | Hermes  | a tag inside a fence                        | ` ```xml\n<tool_call>{"name": "list_dir", "arguments": {}}</tool_call>\n``` ` |
//! | Llama 3 | a bare object                               | `{"name": "list_dir", "parameters": {"path": "."}}` |
//! | Llama 3 | with a leading `"type": "function"`         | `{"type": "function", "name": "list_dir", "parameters": {"path": "."}}` |
//! | Llama 3 | an array of calls                           | `[{"name": "list_dir", "parameters": {}}, {"name": "read_file", "parameters": {"path": "a"}}]` |
//! | Llama 3 | calls separated by `;`, content around      | `I will look.\n{"name": "list_dir", "parameters": {}}; {"name": "read_file", "parameters": {"path": "a"}}\nDone.` |
//! | Mistral | `[TOOL_CALLS]` and an array                 | `[TOOL_CALLS][{"name": "list_dir", "arguments": {"path": "."}, "id": "abcDEF123"}]` |
//! | Mistral | `[TOOL_CALLS]NAME[ARGS]` arguments          | `[TOOL_CALLS]list_dir[ARGS]{"path": "."}` |
//! | Mistral | `[TOOL_CALLS]NAME[CALL_ID]ID[ARGS]` arguments | `[TOOL_CALLS]list_dir[CALL_ID]abcDEF123[ARGS]{"path": "."}` |
//! | Mistral | several `[TOOL_CALLS]`, after content       | `Looking.[TOOL_CALLS]list_dir[ARGS]{}[TOOL_CALLS]read_file[ARGS]{"path": "a"}` |
//! | Mistral | a bare array (the `[TOOL_CALLS]` token unrendered) | `[{"name": "list_dir", "arguments": {"path": "."}}]` |
//!
//! Not calls, returned as content: a call of a tool the request did not offer
//! (`{"name": "rm", "arguments": {}}`), JSON that is not a call
//! (`{"name": "Bob", "age": 3}`), a call whose JSON does not parse, and a
//! form's start that the text then leaves (`<tools>none</tools>`).

use serde_json::Value;

use super::{FENCES, FunctionDefinition, HERMES_TAGS, ToolCall, ToolFormat};

/// What remains when generation ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOutput {
    /// Content not released by [`ToolCallParser::push`] yet: a held possible start of a call
    /// that turned out not to be one, or the text after the last call.
    pub content: String,
    /// The calls, in the order written; empty when there were none.
    pub tool_calls: Vec<ToolCall>,
}

/// The streaming tool-call parser of one generation.
#[derive(Debug)]
pub struct ToolCallParser {
    format: ToolFormat,
    /// The offered tools' names: a call of any other is content.
    names: Vec<String>,
    /// Text not released yet: whitespace after the start or a call (while `in_gap`), then a
    /// possible start of a call.
    held: String,
    /// True while `held` starts at the start of the answer or right after a call, where
    /// whitespace is held: it is not content if a call or the end follows.
    in_gap: bool,
    /// The calls found so far.
    calls: Vec<ToolCall>,
}

impl ToolCallParser {
    /// A parser for a model writing calls in `format`, offered `tools`.
    pub fn new(format: ToolFormat, tools: &[FunctionDefinition]) -> Self {
        Self {
            format,
            names: tools.iter().map(|t| t.name.clone()).collect(),
            held: String::new(),
            in_gap: true,
            calls: Vec::new(),
        }
    }

    /// Feed generated text; returns the content that can be shown now (possibly empty).
    pub fn push(&mut self, text: &str) -> String {
        self.held.push_str(text);
        self.advance(false)
    }

    /// End of generation: the remaining content and the calls.
    pub fn finish(mut self) -> ParsedOutput {
        let content = self.advance(true);
        ParsedOutput { content, tool_calls: self.calls }
    }

    /// Take the calls out of the held text and return the content that is known to be content.
    fn advance(&mut self, eof: bool) -> String {
        let mut content = String::new();
        loop {
            let (start, found) = self.find(eof);
            let gap = self.in_gap && is_gap(&self.held[..start]);
            match found {
                Found::Call { len, calls } => {
                    if !gap {
                        content.push_str(&self.held[..start]);
                    }
                    self.calls.extend(calls);
                    self.held.drain(..start + len);
                    self.in_gap = true;
                }
                Found::Partial => {
                    if !gap {
                        content.push_str(&self.held[..start]);
                        self.held.drain(..start);
                        self.in_gap = false;
                    }
                    return content;
                }
                Found::Nothing if gap && !eof => return content,
                Found::Nothing => {
                    if !gap || self.calls.is_empty() {
                        content.push_str(&self.held);
                    }
                    self.held.clear();
                    self.in_gap = false;
                    return content;
                }
            }
        }
    }

    /// The first place in the held text where a call is, or may be once more text comes.
    fn find(&self, eof: bool) -> (usize, Found) {
        let openers: &[char] = match self.format {
            ToolFormat::Hermes => &['<', '`', '{'],
            ToolFormat::Llama3 => &['{', '['],
            ToolFormat::Mistral => &['['],
        };
        for (at, _) in self.held.match_indices(openers) {
            let mut cursor = Cursor { text: &self.held[at..], pos: 0, eof };
            match self.calls_at(&mut cursor) {
                Ok(calls) => return (at, Found::Call { len: cursor.pos, calls }),
                Err(Miss::More) => return (at, Found::Partial),
                Err(Miss::No) => {}
            }
        }
        (self.held.len(), Found::Nothing)
    }

    /// The call or calls the cursor's text starts with, in one of the format's forms.
    fn calls_at(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        let forms: &[Form] = match self.format {
            ToolFormat::Hermes => &[Self::tagged, Self::fenced, Self::function_tag, Self::bare],
            ToolFormat::Llama3 => &[Self::bare, Self::bare_array],
            ToolFormat::Mistral => &[Self::mistral, Self::bare_array],
        };
        first_match(c, forms, |form, c| form(self, c))
    }

    /// `<TAG>` call `</TAG>` for one of the Hermes tags; in `<tool_call>` the call may also be a
    /// `<function=…>` tag, and the object's keys may come in any order.
    fn tagged(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        first_match(c, HERMES_TAGS, |tag, c| {
            c.lit("<")?;
            c.lit(tag)?;
            c.lit(">")?;
            c.ws();
            let calls = if tag == "tool_call" {
                first_match(c, [Self::object as Form, Self::function_tag], |form, c| form(self, c))?
            } else {
                self.bare(c)?
            };
            c.close(&format!("</{tag}>"))?;
            Ok(calls)
        })
    }

    /// A fence (` ``` `, ` ```json ` or ` ```xml ` and a newline), a tagged or bare call, ` ``` `.
    fn fenced(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        first_match(c, FENCES, |fence, c| c.lit(fence))?;
        c.ws();
        let calls = first_match(c, [Self::tagged as Form, Self::bare], |form, c| form(self, c))?;
        c.close("```")?;
        Ok(calls)
    }

    /// `<function=NAME>` or `<function name="NAME">`, the arguments object, `</function>`.
    fn function_tag(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        let name = first_match(c, [("<function=", ">"), ("<function name=\"", "\">")], |(open, close), c| {
            c.lit(open)?;
            let name = c.name(&self.names)?;
            c.lit(close)?;
            Ok(name)
        })?;
        c.ws();
        let arguments = c.json()?;
        if !arguments.is_object() {
            return Err(Miss::No);
        }
        c.close("</function>")?;
        Ok(vec![ToolCall { id: self.format.new_call_id(), name, arguments: arguments.to_string() }])
    }

    /// A JSON call object with its keys in any order.
    fn object(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        let value = c.json()?;
        Ok(vec![self.call(&value)?])
    }

    /// A JSON call object that starts with its name: `{"name": "NAME"` (for Llama 3 also
    /// `{"type": "function", "name": "NAME"`), so text that is not a call is told early.
    fn bare(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        self.head(&mut c.clone())?;
        self.object(c)
    }

    /// A JSON array of call objects, the first starting with its name.
    fn bare_array(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        let mut head = c.clone();
        head.lit("[")?;
        head.ws();
        self.head(&mut head)?;
        match c.json()? {
            Value::Array(items) => items.iter().map(|item| self.call(item)).collect(),
            _ => Err(Miss::No),
        }
    }

    /// `[TOOL_CALLS]`, then an array of call objects (or one object), or
    /// `NAME[ARGS]{…}` / `NAME[CALL_ID]ID[ARGS]{…}`.
    fn mistral(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        c.lit("[TOOL_CALLS]")?;
        c.ws();
        first_match(c, [Self::mistral_json as Form, Self::mistral_named], |form, c| form(self, c))
    }

    /// After `[TOOL_CALLS]`: an array of call objects, or one.
    fn mistral_json(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        match c.json()? {
            Value::Array(items) if !items.is_empty() => items.iter().map(|item| self.call(item)).collect(),
            object @ Value::Object(_) => Ok(vec![self.call(&object)?]),
            _ => Err(Miss::No),
        }
    }

    /// After `[TOOL_CALLS]`: `NAME[ARGS]{…}` or `NAME[CALL_ID]ID[ARGS]{…}`.
    fn mistral_named(&self, c: &mut Cursor<'_>) -> Step<Vec<ToolCall>> {
        let name = c.name(&self.names)?;
        let id = optional(c, |c| {
            c.lit("[CALL_ID]")?;
            c.call_id()
        })?;
        c.lit("[ARGS]")?;
        let arguments = c.json()?;
        if !arguments.is_object() {
            return Err(Miss::No);
        }
        let id = id.filter(|id| valid_id(id, self.format)).unwrap_or_else(|| self.format.new_call_id());
        Ok(vec![ToolCall { id, name, arguments: arguments.to_string() }])
    }

    /// The start of a call object up to its name, which must be an offered tool's.
    fn head(&self, c: &mut Cursor<'_>) -> Step<()> {
        c.lit("{")?;
        c.ws();
        if self.format == ToolFormat::Llama3 {
            let mut typed = c.clone();
            let lead = (|| {
                typed.lit("\"type\"")?;
                typed.ws();
                typed.lit(":")?;
                typed.ws();
                typed.lit("\"function\"")?;
                typed.ws();
                typed.lit(",")?;
                typed.ws();
                Ok(())
            })();
            match lead {
                Ok(()) => *c = typed,
                Err(Miss::More) => return Err(Miss::More),
                Err(Miss::No) => {}
            }
        }
        c.lit("\"name\"")?;
        c.ws();
        c.lit(":")?;
        c.ws();
        c.lit("\"")?;
        c.name(&self.names)?;
        c.lit("\"")
    }

    /// A call object as a call of an offered tool.
    fn call(&self, value: &Value) -> Step<ToolCall> {
        call_from_value(value, self.format, &self.names).ok_or(Miss::No)
    }
}

/// A form as [`first_match`] tries it.
type Form = for<'r, 's, 'a> fn(&'r ToolCallParser, &'s mut Cursor<'a>) -> Step<Vec<ToolCall>>;

/// What [`ToolCallParser::find`] found at a place in the held text.
enum Found {
    /// Complete calls, `len` bytes of text.
    Call { len: usize, calls: Vec<ToolCall> },
    /// A possible call, undecided until more text comes.
    Partial,
    /// Nothing that is or may become a call.
    Nothing,
}

/// Why text does not match a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    /// It ends before the form could be decided: more text may complete it.
    More,
    /// It cannot match.
    No,
}

/// A step of matching: its value, or why the text does not match.
type Step<T> = Result<T, Miss>;

/// A position in text being matched against a form.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    /// No more text will come: what would need more does not match.
    eof: bool,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// The miss of text that ends too early.
    fn more(&self) -> Miss {
        if self.eof { Miss::No } else { Miss::More }
    }

    /// Exactly `literal`.
    fn lit(&mut self, literal: &str) -> Step<()> {
        let rest = self.rest();
        if rest.starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else if literal.starts_with(rest) {
            Err(self.more())
        } else {
            Err(Miss::No)
        }
    }

    /// Optional JSON whitespace.
    fn ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    /// Optional whitespace and a closing `literal`, which may be cut off by the end of the
    /// text or missing: when other text follows, the call ends before it.
    fn close(&mut self, literal: &str) -> Step<()> {
        let before = self.pos;
        self.ws();
        let rest = self.rest();
        if rest.starts_with(literal) {
            self.pos += literal.len();
        } else if literal.starts_with(rest) {
            if !self.eof {
                return Err(Miss::More);
            }
            self.pos = self.text.len();
        } else {
            self.pos = before;
        }
        Ok(())
    }

    /// A JSON object or array, found by its brackets and parsed.
    fn json(&mut self) -> Step<Value> {
        let rest = self.rest();
        match rest.chars().next() {
            None => return Err(self.more()),
            Some('{' | '[') => {}
            Some(_) => return Err(Miss::No),
        }
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (i, c) in rest.char_indices() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        let value = serde_json::from_str(&rest[..=i]).map_err(|_| Miss::No)?;
                        self.pos += i + 1;
                        return Ok(value);
                    }
                }
                _ => {}
            }
        }
        Err(self.more())
    }

    /// One of `names`.
    fn name(&mut self, names: &[String]) -> Step<String> {
        let rest = self.rest();
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "_-.".contains(c))).unwrap_or(rest.len());
        let name = &rest[..len];
        if len == rest.len() {
            return Err(if names.iter().any(|n| n.starts_with(name)) { self.more() } else { Miss::No });
        }
        if names.iter().any(|n| n == name) {
            self.pos += len;
            Ok(name.to_owned())
        } else {
            Err(Miss::No)
        }
    }

    /// A call id: letters and digits.
    fn call_id(&mut self) -> Step<String> {
        let rest = self.rest();
        let len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        if len == rest.len() {
            return Err(self.more());
        }
        if len == 0 {
            return Err(Miss::No);
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }
}

/// The first of `alternatives` that `attempt` matches at `c`, moving `c` past it; `More` when
/// none does but one may with more text.
fn first_match<'a, A, T>(
    c: &mut Cursor<'a>,
    alternatives: impl IntoIterator<Item = A>,
    attempt: impl Fn(A, &mut Cursor<'a>) -> Step<T>,
) -> Step<T> {
    let mut miss = Miss::No;
    for alternative in alternatives {
        let mut tried = c.clone();
        match attempt(alternative, &mut tried) {
            Ok(value) => {
                *c = tried;
                return Ok(value);
            }
            Err(Miss::More) => miss = Miss::More,
            Err(Miss::No) => {}
        }
    }
    Err(miss)
}

/// `part` if it matches at `c`, `None` if it cannot, `More` while undecided.
fn optional<'a, T>(c: &mut Cursor<'a>, part: impl Fn(&mut Cursor<'a>) -> Step<T>) -> Step<Option<T>> {
    let mut tried = c.clone();
    match part(&mut tried) {
        Ok(value) => {
            *c = tried;
            Ok(Some(value))
        }
        Err(Miss::More) => Err(Miss::More),
        Err(Miss::No) => Ok(None),
    }
}

/// Whitespace with at most one `,` or `;`: what may separate calls.
fn is_gap(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c == ',' || c == ';') && text.matches([',', ';']).count() <= 1
}

/// Whether `id` may be a call's id in `format` (Mistral's are 9 letters and digits).
fn valid_id(id: &str, format: ToolFormat) -> bool {
    format != ToolFormat::Mistral || (id.len() == 9 && id.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// `{"name": …, "arguments"|"parameters": {…} or "…json…", "id"?: …}` to a call, if `name` is
/// one of `names`.
fn call_from_value(value: &Value, format: ToolFormat, names: &[String]) -> Option<ToolCall> {
    let name = value.get("name")?.as_str()?;
    if !names.iter().any(|n| n == name) {
        return None;
    }
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        None => "{}".to_owned(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text).ok()? {
            parsed @ Value::Object(_) => parsed.to_string(),
            _ => return None,
        },
        Some(args @ Value::Object(_)) => args.to_string(),
        Some(_) => return None,
    };
    let id = match value.get("id").and_then(Value::as_str) {
        Some(id) if valid_id(id, format) => id.to_owned(),
        _ => format.new_call_id(),
    };
    Some(ToolCall { id, name: name.to_owned(), arguments })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The tools the examples offer.
    fn tools() -> Vec<FunctionDefinition> {
        ["list_dir", "read_file", "get"]
            .map(|name| FunctionDefinition {
                name: name.into(),
                description: None,
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                strict: false,
            })
            .to_vec()
    }

    /// Feeds `pieces` in order; returns what was shown on the way and what `finish` returned.
    fn run(format: ToolFormat, pieces: &[&str]) -> (String, ParsedOutput) {
        let mut parser = ToolCallParser::new(format, &tools());
        let mut shown = String::new();
        for piece in pieces {
            shown.push_str(&parser.push(piece));
        }
        (shown, parser.finish())
    }

    /// Feeds `text` whole, one character at a time and in pieces of 3 characters, checks that
    /// the content and the calls are the same each time, and returns them: all the content, and
    /// each call's name and arguments.
    fn parse(format: ToolFormat, text: &str) -> (String, Vec<(String, String)>) {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let threes: Vec<String> = chars.chunks(3).map(|c| c.concat()).collect();
        let splits =
            [vec![text], chars.iter().map(String::as_str).collect(), threes.iter().map(String::as_str).collect()];
        let mut results = splits.iter().map(|pieces| {
            let (shown, out) = run(format, pieces);
            let calls = out.tool_calls.into_iter().map(|c| (c.name, c.arguments)).collect::<Vec<_>>();
            (shown + &out.content, calls)
        });
        let first = results.next().unwrap();
        for other in results {
            assert_eq!(other, first, "{text:?} parsed differently when split");
        }
        first
    }

    /// `text` in `format` parses to `content` and `calls` (name, arguments), however it is split.
    fn check(format: ToolFormat, text: &str, content: &str, calls: &[(&str, &str)]) {
        let (got_content, got_calls) = parse(format, text);
        assert_eq!(got_content, content, "content of {text:?}");
        let calls: Vec<_> = calls.iter().map(|(n, a)| ((*n).to_owned(), (*a).to_owned())).collect();
        assert_eq!(got_calls, calls, "calls of {text:?}");
    }

    const DOT: (&str, &str) = ("list_dir", r#"{"path":"."}"#);
    const EMPTY: (&str, &str) = ("list_dir", "{}");
    const READ: (&str, &str) = ("read_file", r#"{"path":"a"}"#);

    #[test]
    fn hermes_tool_call() {
        let text = "<tool_call>\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}\n</tool_call>";
        check(ToolFormat::Hermes, text, "", &[DOT]);
    }

    #[test]
    fn hermes_tool_call_after_content_unclosed() {
        let text = "Let me look.\n<tool_call>\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}";
        check(ToolFormat::Hermes, text, "Let me look.\n", &[DOT]);
    }

    #[test]
    fn hermes_several_tool_calls() {
        let text = "<tool_call>{\"name\": \"list_dir\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"read_file\", \"arguments\": \"{\\\"path\\\": \\\"a\\\"}\"}</tool_call>";
        check(ToolFormat::Hermes, text, "", &[EMPTY, READ]);
    }

    #[test]
    fn hermes_bare_object() {
        check(ToolFormat::Hermes, "{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}", "", &[DOT]);
    }

    #[test]
    fn hermes_bare_object_with_parameters() {
        check(ToolFormat::Hermes, "{\"name\": \"list_dir\", \"parameters\": {\"path\": \".\"}}", "", &[DOT]);
    }

    #[test]
    fn hermes_bare_object_after_content() {
        let text = "Sure.\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}";
        check(ToolFormat::Hermes, text, "Sure.\n", &[DOT]);
    }

    #[test]
    fn hermes_bare_objects_one_per_line() {
        let text =
            "{\"name\": \"list_dir\", \"arguments\": {}}\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"}}";
        check(ToolFormat::Hermes, text, "", &[EMPTY, READ]);
    }

    #[test]
    fn hermes_fenced_json() {
        let text = "```json\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}\n```";
        check(ToolFormat::Hermes, text, "", &[DOT]);
    }

    #[test]
    fn hermes_fenced_plain_and_xml() {
        let text = "```\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}\n```";
        check(ToolFormat::Hermes, text, "", &[DOT]);
        let text = "```xml\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}\n```\nDone.";
        check(ToolFormat::Hermes, text, "\nDone.", &[DOT]);
    }

    #[test]
    fn hermes_function_equals() {
        check(ToolFormat::Hermes, "<function=list_dir>{\"path\": \".\"}</function>", "", &[DOT]);
    }

    #[test]
    fn hermes_function_name_attribute() {
        check(ToolFormat::Hermes, "<function name=\"list_dir\">{\"path\": \".\"}</function>", "", &[DOT]);
    }

    #[test]
    fn hermes_tool_call_around_function() {
        let text = "<tool_call>\n<function=list_dir>{\"path\": \".\"}</function>\n</tool_call>";
        check(ToolFormat::Hermes, text, "", &[DOT]);
    }

    #[test]
    fn hermes_other_tags() {
        for tag in ["function_call", "tool", "tools", "response", "json", "xml", "JSON"] {
            let text = format!("<{tag}>{{\"name\": \"list_dir\", \"arguments\": {{\"path\": \".\"}}}}</{tag}>");
            check(ToolFormat::Hermes, &text, "", &[DOT]);
        }
    }

    #[test]
    fn hermes_tag_inside_a_fence() {
        let text = "```xml\n<tool_call>{\"name\": \"list_dir\", \"arguments\": {}}</tool_call>\n```";
        check(ToolFormat::Hermes, text, "", &[EMPTY]);
    }

    #[test]
    fn llama3_bare_object() {
        check(ToolFormat::Llama3, "{\"name\": \"list_dir\", \"parameters\": {\"path\": \".\"}}", "", &[DOT]);
    }

    #[test]
    fn llama3_typed_object() {
        let text = "{\"type\": \"function\", \"name\": \"list_dir\", \"parameters\": {\"path\": \".\"}}";
        check(ToolFormat::Llama3, text, "", &[DOT]);
    }

    #[test]
    fn llama3_array() {
        let text = "[{\"name\": \"list_dir\", \"parameters\": {}}, {\"name\": \"read_file\", \"parameters\": {\"path\": \"a\"}}]";
        check(ToolFormat::Llama3, text, "", &[EMPTY, READ]);
    }

    #[test]
    fn llama3_separated_calls_with_content_around() {
        let text = "I will look.\n{\"name\": \"list_dir\", \"parameters\": {}}; {\"name\": \"read_file\", \"parameters\": {\"path\": \"a\"}}\nDone.";
        check(ToolFormat::Llama3, text, "I will look.\n\nDone.", &[EMPTY, READ]);
    }

    #[test]
    fn mistral_array() {
        let text = "[TOOL_CALLS][{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}, \"id\": \"abcDEF123\"}]";
        check(ToolFormat::Mistral, text, "", &[DOT]);
        let (_, out) = run(ToolFormat::Mistral, &[text]);
        assert_eq!(out.tool_calls[0].id, "abcDEF123");
    }

    #[test]
    fn mistral_args() {
        check(ToolFormat::Mistral, "[TOOL_CALLS]list_dir[ARGS]{\"path\": \".\"}", "", &[DOT]);
        let (_, out) = run(ToolFormat::Mistral, &["[TOOL_CALLS]list_dir[ARGS]{}"]);
        assert_eq!(out.tool_calls[0].id.len(), 9);
    }

    #[test]
    fn mistral_call_id() {
        let text = "[TOOL_CALLS]list_dir[CALL_ID]abcDEF123[ARGS]{\"path\": \".\"}";
        check(ToolFormat::Mistral, text, "", &[DOT]);
        let (_, out) = run(ToolFormat::Mistral, &[text]);
        assert_eq!(out.tool_calls[0].id, "abcDEF123");
    }

    #[test]
    fn mistral_several_after_content() {
        let text = "Looking.[TOOL_CALLS]list_dir[ARGS]{}[TOOL_CALLS]read_file[ARGS]{\"path\": \"a\"}";
        check(ToolFormat::Mistral, text, "Looking.", &[EMPTY, READ]);
    }

    #[test]
    fn mistral_bare_array() {
        check(ToolFormat::Mistral, "[{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}]", "", &[DOT]);
    }

    #[test]
    fn what_is_not_a_call_is_content() {
        for format in [ToolFormat::Hermes, ToolFormat::Llama3] {
            for text in [
                "{\"name\": \"rm\", \"arguments\": {}}",
                "{\"name\": \"Bob\", \"age\": 3}",
                "{\"name\": \"list_dir\", \"arguments\": [1]}",
                "{\"name\": \"list_dir\", \"arguments\": {\"path\": }}",
                "{\"name\": \"list_dir\", \"arguments\": {",
                "Use {braces} and [brackets] and {\"quotes\": 1}.",
            ] {
                check(format, text, text, &[]);
            }
        }
        for text in [
            "<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>",
            "<tools>none</tools>",
            "<function=rm>{}</function>",
            "a < b and <div> and `code` and\n```python\nprint(1)\n```",
            "```json\n{\"a\": 1}\n```",
        ] {
            check(ToolFormat::Hermes, text, text, &[]);
        }
        for text in ["[TOOL_CALLS]rm[ARGS]{}", "[link](x) and [{\"name\": \"rm\", \"arguments\": {}}]"] {
            check(ToolFormat::Mistral, text, text, &[]);
        }
    }

    #[test]
    fn text_in_place_of_a_closing_tag_is_content_after_the_call() {
        let text = "<tool_call>{\"name\": \"list_dir\", \"arguments\": {}} and more";
        check(ToolFormat::Hermes, text, " and more", &[EMPTY]);
        let text = "```json\n{\"name\": \"list_dir\", \"arguments\": {}}\nDone.";
        check(ToolFormat::Hermes, text, "\nDone.", &[EMPTY]);
    }

    #[test]
    fn a_failed_call_leaves_the_calls_around_it() {
        let text = "{\"name\": \"list_dir\", \"arguments\": {}}\n{\"name\": \"rm\", \"arguments\": {}}\n<tool_call>{\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"}}</tool_call>";
        check(ToolFormat::Hermes, text, "\n{\"name\": \"rm\", \"arguments\": {}}\n", &[EMPTY, READ]);
    }

    #[test]
    fn content_is_released_as_soon_as_it_cannot_start_a_call() {
        let mut parser = ToolCallParser::new(ToolFormat::Hermes, &tools());
        assert_eq!(parser.push("Hello"), "Hello");
        assert_eq!(parser.push(" world <"), " world ");
        assert_eq!(parser.push("b> {"), "<b> ");
        assert_eq!(parser.push("\"x\": 1}"), "{\"x\": 1}");
        assert_eq!(parser.push(" {\"name\": \"li"), " ");
        assert_eq!(parser.push("nux\"}"), "{\"name\": \"linux\"}");
        assert_eq!(parser.push(" ```"), " ");
        assert_eq!(parser.push("rust\n"), "```rust\n");
        assert_eq!(parser.finish(), ParsedOutput::default());
    }

    #[test]
    fn no_part_of_a_call_is_shown() {
        let text = "Looking.\n<tool_call>\n{\"name\": \"list_dir\", \"arguments\": {\"path\": \".\"}}\n</tool_call>\n";
        let mut parser = ToolCallParser::new(ToolFormat::Hermes, &tools());
        let shown: String = text.chars().map(|c| parser.push(&c.to_string())).collect();
        assert_eq!(shown, "Looking.\n");
        let out = parser.finish();
        assert_eq!((out.content.as_str(), out.tool_calls.len()), ("", 1));
    }

    #[test]
    fn whitespace_only_answers_stay_content() {
        check(ToolFormat::Hermes, "  \n", "  \n", &[]);
        check(ToolFormat::Llama3, "  Hello {}", "  Hello {}", &[]);
    }
}
