//! Tool calling and structured output in the engine's terms (OpenAI's chat
//! completions `tools`, `tool_choice` and `response_format`): the
//! [`FunctionDefinition`]s a request offers, the [`ToolCall`]s a model makes,
//! the [`ToolFormat`] a model family writes its calls in, the [`Constraint`]
//! that forces an output to parse (shapes of literal text, whitespace and JSON
//! schemas, which a backend compiles to a grammar), and the [`ToolCallParser`]
//! that turns the model's text back into calls.
//!
//! Formats follow the chat templates that define them: Hermes/Qwen 2.5
//! (`<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`), Llama 3.1+
//! (`{"name": …, "parameters": …}`) and Mistral
//! (`[TOOL_CALLS][{"name": …, "arguments": …}]`); the parser also accepts the
//! variants llama.cpp accepts for each family, such as a Hermes call without
//! its tags (the table of forms is in the `parse` module's docs, `tools/parse.rs`).
//!
//! The tools the server itself runs in the agent loop live in [`ToolRegistry`]
//! (the [`Tool`] trait, permission policies, the [`ToolSet`] of one prompt),
//! [`builtin`], and the [`ToolProvider`]s whose tools are known once they run
//! (external MCP servers, `SERVER.TOOL`).

pub mod builtin;
mod parse;
mod provider;
mod registry;

pub use parse::{ParsedOutput, ToolCallParser};
pub use provider::{ProviderState, ProviderStatus, ToolProvider};
pub use registry::{Permission, Tool, ToolContext, ToolError, ToolRegistry, ToolSet, tool_matches};

use serde_json::{Value, json};

/// A function the model may call (OpenAI: `FunctionObject`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDefinition {
    /// The name the model calls it by: 1 to 64 of `a-z A-Z 0-9 _ - .` (the dot for MCP servers'
    /// tools, `SERVER.TOOL`).
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// Its arguments as a JSON schema object; `{"type": "object", "properties": {}}` when the
    /// request gives none.
    pub parameters: Value,
    /// OpenAI's `strict`: the arguments must follow the schema exactly. chorus constrains
    /// generation by the schema whenever it forces a call, strict or not.
    pub strict: bool,
}

impl FunctionDefinition {
    /// The tool as chat templates read it: `{"type": "function", "function": {name, description, parameters}}`.
    pub fn template_json(&self) -> Value {
        let mut function = serde_json::Map::new();
        function.insert("name".into(), self.name.clone().into());
        if let Some(description) = &self.description {
            function.insert("description".into(), description.clone().into());
        }
        function.insert("parameters".into(), self.parameters.clone());
        json!({"type": "function", "function": function})
    }
}

/// Whether and which tool the model must call (OpenAI: `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (the default when tools are given).
    #[default]
    Auto,
    /// No calls: the answer is text, never parsed for calls.
    None,
    /// At least one call; chorus forces exactly one, by grammar.
    Required,
    /// A call of this function, forced by grammar.
    Function(String),
}

/// The shape the answer must have (OpenAI: `response_format`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following this schema.
    JsonSchema(Value),
    /// Text of this GBNF grammar (llama.cpp's grammar format, `grammars/README.md` in its
    /// sources; the start rule is `root`): llama-server's `grammar` field.
    Grammar(String),
}

/// A function call the model asked for (OpenAI's `tool_calls[]` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id, which the tool's result message names.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
}

/// How a model family writes tool calls, read from its chat template by [`ToolFormat::detect`].
///
/// The forms each family's calls are accepted in (the template's own and the variants llama.cpp
/// accepts for it) are listed in the `parse` module's docs (`tools/parse.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes 2 Pro, Qwen 2.5/3 and ChatML templates: each call is
    /// `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`. The default, also for
    /// templates that do not mention tools (the engine then describes the tools itself).
    #[default]
    Hermes,
    /// Llama 3.1 and later: a call is `{"name": …, "parameters": {…}}`.
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`; call ids are 9 letters
    /// and digits, as Mistral's templates require.
    Mistral,
}

/// The tags a Hermes call object may be wrapped in: the template's `<tool_call>` and the others
/// llama.cpp's Hermes 2 Pro parser accepts.
const HERMES_TAGS: [&str; 8] = ["tool_call", "function_call", "tool", "tools", "response", "json", "xml", "JSON"];

/// The openings of the fenced blocks a Hermes call may be written in.
const FENCES: [&str; 3] = ["```\n", "```json\n", "```xml\n"];

/// Whitespace between the pieces of a shape, as [`Piece::Space`] allows it, as a regular expression.
const SPACE_RE: &str = "[ \\t\\r\\n]{0,20}";

/// Whitespace inside JSON in a trigger pattern: none, one space, or a newline and indentation,
/// which a JSON grammar accepts everywhere whitespace may be.
const JSON_SPACE_RE: &str = "(?: |\\n[ \\t]{0,20})?";

impl ToolFormat {
    /// The format a chat template writes tool calls in, recognised by its markers (as
    /// llama.cpp's `common_chat_templates` does): `[TOOL_CALLS]` → Mistral;
    /// `<|start_header_id|>` with `"parameters"` or `ipython` → Llama 3; otherwise Hermes.
    pub fn detect(template_source: &str) -> Self {
        if template_source.contains("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if template_source.contains("<|start_header_id|>")
            && (template_source.contains("parameters") || template_source.contains("ipython"))
        {
            ToolFormat::Llama3
        } else {
            ToolFormat::Hermes
        }
    }

    /// The key that holds a call's arguments in this format.
    fn arguments_key(self) -> &'static str {
        match self {
            ToolFormat::Llama3 => "parameters",
            ToolFormat::Hermes | ToolFormat::Mistral => "arguments",
        }
    }

    /// A fresh call id in the shape the family's templates accept: `call_` + 24 hex digits,
    /// or 9 letters and digits for Mistral.
    pub fn new_call_id(self) -> String {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        match self {
            ToolFormat::Mistral => hex[..9].to_owned(),
            ToolFormat::Hermes | ToolFormat::Llama3 => format!("call_{}", &hex[..24]),
        }
    }

    /// The JSON schema of one call of one of `tools`, in this format's object shape; with
    /// `typed`, the object starts with `"type": "function"` (a Llama 3 variant).
    fn call_schema(self, tools: &[&FunctionDefinition], typed: bool) -> Value {
        let one = |tool: &FunctionDefinition| {
            let mut properties = serde_json::Map::new();
            let mut required = Vec::new();
            if typed {
                properties.insert("type".into(), json!({"const": "function"}));
                required.push("type");
            }
            properties.insert("name".into(), json!({"const": tool.name}));
            properties.insert(self.arguments_key().into(), tool.parameters.clone());
            required.extend(["name", self.arguments_key()]);
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        };
        match tools {
            [tool] => one(tool),
            many => json!({"anyOf": many.iter().map(|t| one(t)).collect::<Vec<_>>()}),
        }
    }

    /// The shape of exactly one call of one of `tools`, in the template's own form.
    fn forced_shape(self, tools: &[&FunctionDefinition]) -> Vec<Piece> {
        let (prefix, suffix) = match self {
            ToolFormat::Hermes => ("<tool_call>\n", "\n</tool_call>"),
            ToolFormat::Llama3 => ("", ""),
            ToolFormat::Mistral => ("[TOOL_CALLS][", "]"),
        };
        let mut shape = Vec::new();
        if !prefix.is_empty() {
            shape.push(Piece::Text(prefix.to_owned()));
        }
        shape.push(Piece::Json(self.call_schema(tools, false)));
        if !suffix.is_empty() {
            shape.push(Piece::Text(suffix.to_owned()));
        }
        shape
    }

    /// The shapes a lazy constraint accepts once triggered, and its trigger patterns: every form
    /// of a call of one of `tools` that [`ToolCallParser`] accepts and can be told from text by
    /// its start, so the arguments of a call the model starts follow the tool's schema.
    fn lazy(self, tools: &[FunctionDefinition]) -> (Vec<Vec<Piece>>, Vec<String>) {
        let all: Vec<&FunctionDefinition> = tools.iter().collect();
        let names = tools.iter().map(|t| regex_escape(&t.name)).collect::<Vec<_>>().join("|");
        let s = JSON_SPACE_RE;
        let head = format!("\\{{{s}\"name\"{s}:{s}\"(?:{names})\"");
        match self {
            ToolFormat::Hermes => {
                let call = Piece::Json(self.call_schema(&all, false));
                let wrapped = |tag: &str| {
                    vec![
                        Piece::Text(format!("<{tag}>")),
                        Piece::Space,
                        call.clone(),
                        Piece::Space,
                        Piece::Text(format!("</{tag}>")),
                    ]
                };
                let mut shapes: Vec<Vec<Piece>> = HERMES_TAGS.iter().map(|tag| wrapped(tag)).collect();
                for tool in tools {
                    for open in [format!("<function={}>", tool.name), format!("<function name=\"{}\">", tool.name)] {
                        let tag = vec![
                            Piece::Text(open),
                            Piece::Space,
                            Piece::Json(tool.parameters.clone()),
                            Piece::Space,
                            Piece::Text("</function>".into()),
                        ];
                        let mut in_tool_call = vec![Piece::Text("<tool_call>".into()), Piece::Space];
                        in_tool_call.extend(tag.iter().cloned());
                        in_tool_call.extend([Piece::Space, Piece::Text("</tool_call>".into())]);
                        shapes.push(tag);
                        shapes.push(in_tool_call);
                    }
                }
                shapes.push(vec![call.clone()]);
                for fence in FENCES {
                    let bodies = std::iter::once(vec![call.clone()]).chain(HERMES_TAGS.iter().map(|tag| wrapped(tag)));
                    for body in bodies {
                        let mut shape = vec![Piece::Text(fence.into()), Piece::Space];
                        shape.extend(body);
                        shape.extend([Piece::Space, Piece::Text("```".into())]);
                        shapes.push(shape);
                    }
                }
                let other_tags = HERMES_TAGS[1..].join("|");
                let all_tags = HERMES_TAGS.join("|");
                let patterns = vec![
                    "(<tool_call>)".to_owned(),
                    format!("(<function=(?:{names})>|<function name=\"(?:{names})\">)"),
                    format!("(<(?:{other_tags})>{SPACE_RE}{head})"),
                    format!("(```(?:json|xml)?\\n{SPACE_RE}(?:<(?:{all_tags})>{SPACE_RE})?{head})"),
                    format!("(?:^|[ \\t\\r\\n])({head})"),
                ];
                (shapes, patterns)
            }
            ToolFormat::Llama3 => {
                let shapes = vec![
                    vec![Piece::Json(self.call_schema(&all, false))],
                    vec![Piece::Json(self.call_schema(&all, true))],
                ];
                let typed_head = format!("\\{{{s}(?:\"type\"{s}:{s}\"function\",{s})?\"name\"{s}:{s}\"(?:{names})\"");
                (shapes, vec![format!("(?:^|[ \\t\\r\\n])({typed_head})")])
            }
            ToolFormat::Mistral => {
                let array =
                    Piece::Json(json!({"type": "array", "items": self.call_schema(&all, false), "minItems": 1}));
                let mut shapes =
                    vec![vec![Piece::Text("[TOOL_CALLS]".into()), Piece::Space, array.clone()], vec![array]];
                for tool in tools {
                    shapes.push(vec![
                        Piece::Text(format!("[TOOL_CALLS]{}[ARGS]", tool.name)),
                        Piece::Json(tool.parameters.clone()),
                    ]);
                }
                let patterns = vec!["(\\[TOOL_CALLS\\])".to_owned(), format!("(?:^|[ \\t\\r\\n])(\\[{s}{head})")];
                (shapes, patterns)
            }
        }
    }
}

/// `text` as a regular expression that matches exactly it.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One piece of a shape a [`Constraint`] allows.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// This text, exactly.
    Text(String),
    /// Optional whitespace: up to 20 spaces, tabs, carriage returns and newlines.
    Space,
    /// A JSON value valid against this schema (with the whitespace JSON allows around it).
    Json(Value),
    /// A text of this GBNF grammar, from its rule `root`.
    Gbnf(String),
}

/// A constraint on the generated text: it takes one of `shapes`, each a sequence of
/// [`Piece`]s, and nothing after. A backend compiles it to a grammar (llama.cpp:
/// `json_schema_to_grammar` for the JSON pieces, plus rules around them).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The shapes the text may take.
    pub shapes: Vec<Vec<Piece>>,
    /// When set, the constraint is lazy (llama-server's for `tool_choice: auto`): it applies
    /// from the first match of one of these regular expressions (ECMAScript syntax, as
    /// llama.cpp reads them) on, from where the match's capture group (each has one) starts;
    /// from there the text is one shape, then optional whitespace ([`Piece::Space`]), and
    /// nothing after: one call, as llama-server constrains by default (its
    /// `parallel_tool_calls` is off unless asked for; a Mistral array may hold several).
    /// Before a match the text is free.
    pub trigger: Option<Vec<String>>,
    /// The request field the schema came from, for errors (OpenAI's `param`).
    pub param: &'static str,
}

/// The constraint a request's tools and format put on its output, if any, for a model writing
/// calls in `format`.
///
/// * `tool_choice` `required` or a named function: exactly one call in the template's own
///   form, forced from the first token.
/// * `tool_choice` `auto`: a lazy constraint triggered by the start of any form of a call the
///   parser accepts (the call marker, `<function=NAME>`, a fence or a tag before `{"name":
///   "NAME"`, or `{"name": "NAME"` at the start or after whitespace, for an offered NAME), so
///   a call the model starts always parses and its arguments follow the tool's schema.
/// * `response_format` `json_object` / `json_schema`: the whole answer is that JSON.
pub fn constraint(
    tools: &[FunctionDefinition],
    choice: &ToolChoice,
    response_format: &ResponseFormat,
    format: ToolFormat,
) -> Option<Constraint> {
    let forced = |selected: Vec<&FunctionDefinition>| Constraint {
        shapes: vec![format.forced_shape(&selected)],
        trigger: None,
        param: "tools",
    };
    if !tools.is_empty() {
        match choice {
            ToolChoice::Required => return Some(forced(tools.iter().collect())),
            ToolChoice::Function(name) => return Some(forced(tools.iter().filter(|t| &t.name == name).collect())),
            ToolChoice::Auto if response_format == &ResponseFormat::Text => {
                let (shapes, patterns) = format.lazy(tools);
                return Some(Constraint { shapes, trigger: Some(patterns), param: "tools" });
            }
            ToolChoice::Auto | ToolChoice::None => {}
        }
    }
    let schema = match response_format {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => json!({"type": "object"}),
        ResponseFormat::JsonSchema(schema) => schema.clone(),
        ResponseFormat::Grammar(gbnf) => {
            return Some(Constraint { shapes: vec![vec![Piece::Gbnf(gbnf.clone())]], trigger: None, param: "grammar" });
        }
    };
    Some(Constraint { shapes: vec![vec![Piece::Json(schema)]], trigger: None, param: "response_format" })
}

/// A system prompt describing `tools` in the Hermes format, for chat templates that ignore the
/// `tools` variable (so the model still learns what it may call and how).
pub fn hermes_system_prompt(tools: &[FunctionDefinition]) -> String {
    let mut text = String::from(
        "You may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for tool in tools {
        text.push('\n');
        text.push_str(&tool.template_json().to_string());
    }
    text.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within \
         <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tool(name: &str) -> FunctionDefinition {
        FunctionDefinition {
            name: name.into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}),
            strict: true,
        }
    }

    #[test]
    fn detects_formats_by_marker() {
        assert_eq!(ToolFormat::detect("{{ '[TOOL_CALLS]' }}"), ToolFormat::Mistral);
        assert_eq!(ToolFormat::detect("<|start_header_id|>ipython"), ToolFormat::Llama3);
        assert_eq!(ToolFormat::detect("<tool_call>"), ToolFormat::Hermes);
        assert_eq!(ToolFormat::detect("{{ message.content }}"), ToolFormat::Hermes);
    }

    /// The JSON schema of a shape that is one JSON value.
    fn only_json(shape: &[Piece]) -> &Value {
        match shape {
            [Piece::Json(schema)] => schema,
            [Piece::Text(_), Piece::Json(schema), Piece::Text(_)] => schema,
            other => panic!("not one JSON value: {other:?}"),
        }
    }

    #[test]
    fn forced_call_schema_names_the_function() {
        let tools = [tool("a"), tool("b")];
        let c =
            constraint(&tools, &ToolChoice::Function("b".into()), &ResponseFormat::Text, ToolFormat::Hermes).unwrap();
        assert!(c.trigger.is_none());
        let [shape] = c.shapes.as_slice() else { panic!("{:?}", c.shapes) };
        assert_eq!(shape[0], Piece::Text("<tool_call>\n".into()));
        assert_eq!(shape[2], Piece::Text("\n</tool_call>".into()));
        assert_eq!(only_json(shape)["properties"]["name"]["const"], "b");
        let c = constraint(&tools, &ToolChoice::Required, &ResponseFormat::Text, ToolFormat::Llama3).unwrap();
        let schema = only_json(&c.shapes[0]);
        assert_eq!(schema["anyOf"].as_array().unwrap().len(), 2);
        assert!(schema["anyOf"][0]["properties"].get("parameters").is_some());
    }

    #[test]
    fn auto_is_lazy_and_none_is_free() {
        let tools = [tool("a")];
        for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Mistral] {
            let c = constraint(&tools, &ToolChoice::Auto, &ResponseFormat::Text, format).unwrap();
            assert!(c.trigger.is_some_and(|t| !t.is_empty()));
            assert!(constraint(&tools, &ToolChoice::None, &ResponseFormat::Text, format).is_none());
        }
        let c = constraint(&[], &ToolChoice::Auto, &ResponseFormat::JsonObject, ToolFormat::Hermes).unwrap();
        assert_eq!(c.param, "response_format");
        assert_eq!(c.shapes, vec![vec![Piece::Json(json!({"type": "object"}))]]);
    }

    /// Where the lazy constraint of `format` for tools `a` and `srv.tool` starts in `text`: the
    /// text from the start of the first non-empty capture group of the patterns joined by `|`
    /// (as llama.cpp reads the one pattern a backend makes of them).
    fn triggered(format: ToolFormat, text: &str) -> Option<String> {
        let tools = [tool("a"), tool("srv.tool")];
        let c = constraint(&tools, &ToolChoice::Auto, &ResponseFormat::Text, format).unwrap();
        let joined = c.trigger.unwrap().iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
        let captures = regex::Regex::new(&joined).unwrap().captures(text)?;
        let start = captures.iter().skip(1).flatten().find(|m| !m.is_empty()).unwrap().start();
        Some(text[start..].to_owned())
    }

    #[test]
    fn lazy_triggers_start_at_the_calls_forms() {
        let hermes = [
            ("Let me look.\n<tool_call>", Some("<tool_call>")),
            ("x <function=a>", Some("<function=a>")),
            ("<function name=\"srv.tool\">", Some("<function name=\"srv.tool\">")),
            ("<tools>\n{\"name\": \"a\"", Some("<tools>\n{\"name\": \"a\"")),
            ("```json\n{\n  \"name\": \"a\"", Some("```json\n{\n  \"name\": \"a\"")),
            ("```\n<tool_call>", Some("<tool_call>")),
            ("```xml\n<json>{\"name\":\"a\"", Some("```xml\n<json>{\"name\":\"a\"")),
            ("Sure.\n{\"name\": \"a\"", Some("{\"name\": \"a\"")),
            ("{ \"name\" : \"srv.tool\"", Some("{ \"name\" : \"srv.tool\"")),
            ("{\"name\": \"srvXtool\"", None),
            ("{\"name\": \"ab\"", None),
            ("x{\"name\": \"a\"", None),
            ("{  \"name\": \"a\"", None),
            ("<function=b>", None),
        ];
        for (text, start) in hermes {
            assert_eq!(triggered(ToolFormat::Hermes, text).as_deref(), start, "{text:?}");
        }
        let llama = [
            ("{\"type\": \"function\", \"name\": \"a\"", Some("{\"type\": \"function\", \"name\": \"a\"")),
            ("Ok. {\"name\": \"a\"", Some("{\"name\": \"a\"")),
            ("<tool_call>", None),
        ];
        for (text, start) in llama {
            assert_eq!(triggered(ToolFormat::Llama3, text).as_deref(), start, "{text:?}");
        }
        let mistral = [
            ("Ok[TOOL_CALLS]", Some("[TOOL_CALLS]")),
            ("[{\"name\": \"a\"", Some("[{\"name\": \"a\"")),
            ("[{\"name\": \"b\"", None),
        ];
        for (text, start) in mistral {
            assert_eq!(triggered(ToolFormat::Mistral, text).as_deref(), start, "{text:?}");
        }
    }

    /// A text `piece` allows: the schema's JSON for a call (`{"name": NAME, KEY: {}}`, the first
    /// of several), an array of one such call, or `{}`.
    fn example(piece: &Piece) -> String {
        match piece {
            Piece::Text(text) => text.clone(),
            Piece::Space => "\n".into(),
            Piece::Gbnf(_) => unreachable!("tool shapes hold no GBNF"),
            Piece::Json(schema) => {
                let call = |s: &Value| {
                    let s = s.get("anyOf").map_or(s, |all| &all[0]);
                    let properties = s["properties"].as_object()?;
                    let mut call = serde_json::Map::new();
                    for (key, property) in properties {
                        call.insert(key.clone(), property.get("const").cloned().unwrap_or_else(|| json!({})));
                    }
                    Some(Value::Object(call))
                };
                match schema.get("items") {
                    Some(items) => json!([call(items).unwrap()]).to_string(),
                    None => call(schema).filter(|c| c.get("name").is_some()).unwrap_or_else(|| json!({})).to_string(),
                }
            }
        }
    }

    #[test]
    fn every_constrained_shape_parses_as_calls() {
        let tools = [tool("a"), tool("srv.tool")];
        for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Mistral] {
            for choice in [ToolChoice::Auto, ToolChoice::Required] {
                let c = constraint(&tools, &choice, &ResponseFormat::Text, format).unwrap();
                for shape in &c.shapes {
                    let text: String = shape.iter().map(example).collect();
                    let mut parser = ToolCallParser::new(format, &tools);
                    let shown = parser.push(&text);
                    let out = parser.finish();
                    assert_eq!((shown.as_str(), out.content.as_str()), ("", ""), "{format:?} {text:?}");
                    assert_eq!(out.tool_calls.len(), 1, "{format:?} {text:?}");
                }
            }
        }
    }

    #[test]
    fn mistral_ids_have_nine_characters() {
        let id = ToolFormat::Mistral.new_call_id();
        assert_eq!(id.len(), 9);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(ToolFormat::Hermes.new_call_id().starts_with("call_"));
    }
}
