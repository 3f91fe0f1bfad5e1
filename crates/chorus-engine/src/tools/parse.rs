//! [`ToolCallParser`]: splits a model's streamed text into the content to show
//! and the tool calls to return, for one [`ToolFormat`]. Text is released as
//! soon as it cannot be part of a call; from the call marker on it is held and
//! parsed at the end. A call that does not parse is returned as content, as
//! llama-server does, so nothing the model wrote is lost.

use serde_json::Value;

use super::{ToolCall, ToolFormat};

/// What remains when generation ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOutput {
    /// Content not released by [`ToolCallParser::push`] yet: text after the calls, a held
    /// partial marker, or the whole held text when the calls did not parse.
    pub content: String,
    /// The calls, in the order written; empty when there were none or they did not parse.
    pub tool_calls: Vec<ToolCall>,
}

/// The streaming tool-call parser of one generation.
#[derive(Debug)]
pub struct ToolCallParser {
    format: ToolFormat,
    /// True from the call marker (or, for Llama 3, an answer starting with `{`) on.
    in_calls: bool,
    /// False once the answer is known to be plain text (Llama 3).
    undecided: bool,
    /// Text held back: a possible partial marker, or everything from the marker on.
    held: String,
}

impl ToolCallParser {
    /// A parser for a model writing calls in `format`.
    pub fn new(format: ToolFormat) -> Self {
        Self { format, in_calls: false, undecided: true, held: String::new() }
    }

    /// Feed generated text; returns the content that can be shown now (possibly empty).
    pub fn push(&mut self, text: &str) -> String {
        self.held.push_str(text);
        if self.in_calls {
            return String::new();
        }
        match self.format.marker() {
            Some(marker) => {
                if let Some(at) = self.held.find(marker) {
                    self.in_calls = true;
                    let content = self.held[..at].to_owned();
                    self.held.drain(..at);
                    return content;
                }
                // Keep the longest tail that could still grow into the marker.
                let keep = (1..marker.len().min(self.held.len() + 1))
                    .rev()
                    .find(|&n| self.held.is_char_boundary(self.held.len() - n) && self.held.ends_with(&marker[..n]))
                    .unwrap_or(0);
                let cut = self.held.len() - keep;
                let content = self.held[..cut].to_owned();
                self.held.drain(..cut);
                content
            }
            None => {
                if !self.undecided {
                    return std::mem::take(&mut self.held);
                }
                match self.held.trim_start().chars().next() {
                    None => String::new(),
                    Some('{' | '[') => {
                        self.in_calls = true;
                        String::new()
                    }
                    Some(_) => {
                        self.undecided = false;
                        std::mem::take(&mut self.held)
                    }
                }
            }
        }
    }

    /// End of generation: the remaining content and the parsed calls.
    pub fn finish(self) -> ParsedOutput {
        if !self.in_calls {
            return ParsedOutput { content: self.held, tool_calls: Vec::new() };
        }
        let parsed = match self.format {
            ToolFormat::Hermes => parse_hermes(&self.held, self.format),
            ToolFormat::Llama3 => parse_json_calls(&self.held, self.format).map(|calls| (String::new(), calls)),
            ToolFormat::Mistral => parse_mistral(&self.held, self.format).map(|calls| (String::new(), calls)),
        };
        match parsed {
            Some((content, tool_calls)) if !tool_calls.is_empty() => ParsedOutput { content, tool_calls },
            _ => ParsedOutput { content: self.held, tool_calls: Vec::new() },
        }
    }
}

/// `<tool_call>…</tool_call>` blocks; the text around them is content. A missing closing tag
/// at the very end is accepted (generation may stop on EOS right after the JSON).
fn parse_hermes(text: &str, format: ToolFormat) -> Option<(String, Vec<ToolCall>)> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        content.push_str(&rest[..start]);
        let body = &rest[start + OPEN.len()..];
        let (json, after) = match body.find(CLOSE) {
            Some(end) => (&body[..end], &body[end + CLOSE.len()..]),
            None => (body, ""),
        };
        calls.push(call_from_value(&serde_json::from_str(json.trim()).ok()?, format)?);
        rest = after;
    }
    content.push_str(rest);
    Some((content.trim().to_owned(), calls))
}

/// One JSON call object, or an array of them (Llama 3).
fn parse_json_calls(text: &str, format: ToolFormat) -> Option<Vec<ToolCall>> {
    let text = text.trim().trim_end_matches(';').trim();
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(items) => items.iter().map(|v| call_from_value(v, format)).collect(),
        value => Some(vec![call_from_value(&value, format)?]),
    }
}

/// `[TOOL_CALLS][{…}, …]`, or the newer `[TOOL_CALLS]name[ARGS]{…}` (repeated).
fn parse_mistral(text: &str, format: ToolFormat) -> Option<Vec<ToolCall>> {
    let body = text.trim().strip_prefix("[TOOL_CALLS]")?.trim();
    if body.starts_with('[') {
        return parse_json_calls(body, format);
    }
    let mut calls = Vec::new();
    for part in body.split("[TOOL_CALLS]") {
        let (name, args) = part.split_once("[ARGS]")?;
        let args: Value = serde_json::from_str(args.trim()).ok()?;
        calls.push(ToolCall { id: format.new_call_id(), name: name.trim().to_owned(), arguments: args.to_string() });
    }
    Some(calls)
}

/// `{"name": …, "arguments"|"parameters": {…} or "…json…", "id"?: …}` to a call.
fn call_from_value(value: &Value, format: ToolFormat) -> Option<ToolCall> {
    let name = value.get("name")?.as_str()?.to_owned();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        None => "{}".to_owned(),
        Some(Value::String(text)) => {
            let parsed: Value = serde_json::from_str(text).ok()?;
            parsed.to_string()
        }
        Some(args @ Value::Object(_)) => args.to_string(),
        Some(_) => return None,
    };
    let id = match value.get("id").and_then(Value::as_str) {
        Some(id)
            if format != ToolFormat::Mistral || (id.len() == 9 && id.chars().all(|c| c.is_ascii_alphanumeric())) =>
        {
            id.to_owned()
        }
        _ => format.new_call_id(),
    };
    Some(ToolCall { id, name, arguments })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(format: ToolFormat, pieces: &[&str]) -> (String, ParsedOutput) {
        let mut parser = ToolCallParser::new(format);
        let mut shown = String::new();
        for piece in pieces {
            shown.push_str(&parser.push(piece));
        }
        (shown, parser.finish())
    }

    #[test]
    fn hermes_call_split_across_pieces() {
        let (shown, out) = run(
            ToolFormat::Hermes,
            &[
                "Let me look.",
                "\n<tool",
                "_call>\n{\"name\": \"read_file\", ",
                "\"arguments\": {\"path\": \"a.txt\"}}\n</tool_call>",
            ],
        );
        assert_eq!(shown, "Let me look.\n");
        assert_eq!(out.content, "");
        assert_eq!(out.tool_calls.len(), 1);
        assert_eq!(out.tool_calls[0].name, "read_file");
        assert_eq!(out.tool_calls[0].arguments, r#"{"path":"a.txt"}"#);
    }

    #[test]
    fn hermes_two_calls_and_unclosed_last() {
        let text = "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}";
        let (_, out) = run(ToolFormat::Hermes, &[text]);
        let names: Vec<_> = out.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(out.tool_calls[1].arguments, r#"{"x":1}"#);
    }

    #[test]
    fn text_that_only_looks_like_a_marker_is_released() {
        let (shown, out) = run(ToolFormat::Hermes, &["a <tool", "box> b <"]);
        assert_eq!(shown, "a <toolbox> b ");
        assert_eq!(out.content, "<");
        assert!(out.tool_calls.is_empty());
    }

    #[test]
    fn malformed_call_comes_back_as_content() {
        let (shown, out) = run(ToolFormat::Hermes, &["x<tool_call>{\"name\": "]);
        assert_eq!(shown, "x");
        assert_eq!(out.content, "<tool_call>{\"name\": ");
        assert!(out.tool_calls.is_empty());
    }

    #[test]
    fn llama3_whole_answer_json() {
        let (shown, out) = run(ToolFormat::Llama3, &[" {\"name\": \"get\", ", "\"parameters\": {\"q\": \"x\"}}"]);
        assert_eq!(shown, "");
        assert_eq!(out.tool_calls[0].name, "get");
        assert_eq!(out.tool_calls[0].arguments, r#"{"q":"x"}"#);
        let (shown, out) = run(ToolFormat::Llama3, &["  ", "Hello {", "}"]);
        assert_eq!(shown, "  Hello {}");
        assert!(out.tool_calls.is_empty());
    }

    #[test]
    fn mistral_both_syntaxes() {
        let (_, out) = run(
            ToolFormat::Mistral,
            &["[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"id\": \"abcDEF123\"}]"],
        );
        assert_eq!(out.tool_calls[0].id, "abcDEF123");
        let (_, out) = run(ToolFormat::Mistral, &["[TOOL_CALLS]f[ARGS]{\"a\": 2}"]);
        assert_eq!(out.tool_calls[0].name, "f");
        assert_eq!(out.tool_calls[0].arguments, r#"{"a":2}"#);
        assert_eq!(out.tool_calls[0].id.len(), 9);
    }
}
