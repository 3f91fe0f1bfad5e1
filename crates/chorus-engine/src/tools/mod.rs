//! Tool calling and structured output in the engine's terms (OpenAI's chat
//! completions `tools`, `tool_choice` and `response_format`): the
//! [`FunctionDefinition`]s a request offers, the [`ToolCall`]s a model makes,
//! the [`ToolFormat`] a model family writes its calls in, the [`Constraint`]
//! that forces an output to parse (a JSON schema between two literals, which a
//! backend compiles to a grammar), and the [`ToolCallParser`] that turns the
//! model's text back into calls.
//!
//! Formats follow the chat templates that define them: Hermes/Qwen 2.5
//! (`<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`), Llama 3.1+
//! (`{"name": …, "parameters": …}` as the whole answer) and Mistral
//! (`[TOOL_CALLS][{"name": …, "arguments": …}]`).
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes 2 Pro, Qwen 2.5/3 and ChatML templates: each call is
    /// `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`. The default, also for
    /// templates that do not mention tools (the engine then describes the tools itself).
    #[default]
    Hermes,
    /// Llama 3.1 and later: the whole answer is `{"name": …, "parameters": {…}}`.
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`; call ids are 9 letters
    /// and digits, as Mistral's templates require.
    Mistral,
}

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

    /// The text that opens a call, which the parser watches for; `None` for Llama 3, whose
    /// calls are recognised by the answer starting with `{`.
    pub fn marker(self) -> Option<&'static str> {
        match self {
            ToolFormat::Hermes => Some("<tool_call>"),
            ToolFormat::Llama3 => None,
            ToolFormat::Mistral => Some("[TOOL_CALLS]"),
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

    /// The JSON schema of one call of one of `tools`, in this format's object shape.
    fn call_schema(self, tools: &[&FunctionDefinition]) -> Value {
        let one = |tool: &FunctionDefinition| {
            let mut properties = serde_json::Map::new();
            properties.insert("name".into(), json!({"const": tool.name}));
            properties.insert(self.arguments_key().into(), tool.parameters.clone());
            json!({
                "type": "object",
                "properties": properties,
                "required": ["name", self.arguments_key()],
                "additionalProperties": false,
            })
        };
        match tools {
            [tool] => one(tool),
            many => json!({"anyOf": many.iter().map(|t| one(t)).collect::<Vec<_>>()}),
        }
    }

    /// The literals around one call's JSON.
    fn call_literals(self) -> (&'static str, &'static str) {
        match self {
            ToolFormat::Hermes => ("<tool_call>\n", "\n</tool_call>"),
            ToolFormat::Llama3 => ("", ""),
            ToolFormat::Mistral => ("[TOOL_CALLS][", "]"),
        }
    }
}

/// A constraint on the generated text: `prefix`, then JSON valid against `schema`, then
/// `suffix`, and nothing after. A backend compiles it to a grammar (llama.cpp:
/// `json_schema_to_grammar` plus a root rule around it).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// Literal text before the JSON.
    pub prefix: String,
    /// The JSON schema of the value.
    pub schema: Value,
    /// Literal text after the JSON.
    pub suffix: String,
    /// When set, the constraint applies only from the first occurrence of this text (which
    /// `prefix` starts with) on, and may repeat, separated by a newline: a "lazy" grammar, as
    /// llama-server uses for `tool_choice: auto`.
    pub trigger: Option<String>,
    /// The request field the schema came from, for errors (OpenAI's `param`).
    pub param: &'static str,
}

/// The constraint a request's tools and format put on its output, if any, for a model writing
/// calls in `format`.
///
/// * `tool_choice` `required` or a named function: exactly one call, forced from the first token.
/// * `tool_choice` `auto` with Hermes or Mistral: a lazy constraint triggered by the call marker,
///   so a call the model starts always parses.
/// * `response_format` `json_object` / `json_schema`: the whole answer is that JSON.
pub fn constraint(
    tools: &[FunctionDefinition],
    choice: &ToolChoice,
    response_format: &ResponseFormat,
    format: ToolFormat,
) -> Option<Constraint> {
    let call = |selected: Vec<&FunctionDefinition>, trigger: Option<String>| {
        let (prefix, suffix) = format.call_literals();
        Constraint {
            prefix: prefix.to_owned(),
            schema: format.call_schema(&selected),
            suffix: suffix.to_owned(),
            trigger,
            param: "tools",
        }
    };
    if !tools.is_empty() {
        match choice {
            ToolChoice::Required => return Some(call(tools.iter().collect(), None)),
            ToolChoice::Function(name) => {
                let selected: Vec<_> = tools.iter().filter(|t| &t.name == name).collect();
                return Some(call(selected, None));
            }
            ToolChoice::Auto if response_format == &ResponseFormat::Text => {
                return format.marker().map(|marker| call(tools.iter().collect(), Some(marker.to_owned())));
            }
            ToolChoice::Auto | ToolChoice::None => {}
        }
    }
    let schema = match response_format {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => json!({"type": "object"}),
        ResponseFormat::JsonSchema(schema) => schema.clone(),
    };
    Some(Constraint { prefix: String::new(), schema, suffix: String::new(), trigger: None, param: "response_format" })
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

    #[test]
    fn forced_call_schema_names_the_function() {
        let tools = [tool("a"), tool("b")];
        let c =
            constraint(&tools, &ToolChoice::Function("b".into()), &ResponseFormat::Text, ToolFormat::Hermes).unwrap();
        assert_eq!(c.prefix, "<tool_call>\n");
        assert_eq!(c.schema["properties"]["name"]["const"], "b");
        assert!(c.trigger.is_none());
        let c = constraint(&tools, &ToolChoice::Required, &ResponseFormat::Text, ToolFormat::Llama3).unwrap();
        assert_eq!(c.schema["anyOf"].as_array().unwrap().len(), 2);
        assert!(c.schema["anyOf"][0]["properties"].get("parameters").is_some());
    }

    #[test]
    fn auto_is_lazy_and_none_is_free() {
        let tools = [tool("a")];
        let c = constraint(&tools, &ToolChoice::Auto, &ResponseFormat::Text, ToolFormat::Hermes).unwrap();
        assert_eq!(c.trigger.as_deref(), Some("<tool_call>"));
        assert!(constraint(&tools, &ToolChoice::Auto, &ResponseFormat::Text, ToolFormat::Llama3).is_none());
        assert!(constraint(&tools, &ToolChoice::None, &ResponseFormat::Text, ToolFormat::Hermes).is_none());
        let c = constraint(&[], &ToolChoice::Auto, &ResponseFormat::JsonObject, ToolFormat::Hermes).unwrap();
        assert_eq!(c.param, "response_format");
    }

    #[test]
    fn mistral_ids_have_nine_characters() {
        let id = ToolFormat::Mistral.new_call_id();
        assert_eq!(id.len(), 9);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(ToolFormat::Hermes.new_call_id().starts_with("call_"));
    }
}
