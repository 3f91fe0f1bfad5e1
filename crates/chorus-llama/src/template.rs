//! Chat templates: compiles a model's Jinja `chat_template` (the `tokenizer.chat_template`
//! GGUF metadata / `tokenizer_config.json` field) with minijinja and renders OpenAI-shaped
//! conversations into the prompt text the model was trained on.
//!
//! The rendering environment reproduces Hugging Face `transformers`' `apply_chat_template`
//! (`transformers/utils/chat_template_utils.py`), which renders with jinja2's
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//! extensions=[AssistantTracker, loopcontrols])` and adds:
//!
//! * the `tojson` filter, `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
//!   sort_keys=False)` (Python's separators, no HTML escaping);
//! * the `raise_exception(message)` function, which aborts rendering with the template's
//!   message ([`TemplateError::Raised`]);
//! * the `strftime_now(format)` function, the current time formatted with strftime
//!   directives (here in UTC; transformers uses the server's local time);
//! * the `{% generation %}` … `{% endgeneration %}` block (a training-time marker; it renders
//!   its body unchanged).
//!
//! Undefined values are lenient like jinja2's default `Undefined`: a missing key or attribute
//! is undefined, prints as the empty string, is falsy and iterates as empty; looking up an
//! attribute *of* an undefined value is an error. Python string, dict and list methods
//! (`.strip()`, `.items()`, `.startswith(…)`, `.get(…)`, …) come from
//! `minijinja_contrib::pycompat`. Where minijinja and jinja2 differ in ways templates
//! notice, jinja2 wins: `none is iterable` is false, floats print as Python does (`1e-05`),
//! and `\r\n` line endings in the source are read as `\n`.
//!
//! The reference for all of this is the test data in `tests/data/templates`: real model
//! templates whose expected renderings were produced with Python jinja2 under transformers'
//! settings.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Rest, Serde, Value, ValueKind, ValueOrKwargs, from_args};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};

/// Name under which the chat template is stored in its environment (it appears in error
/// messages as the location, e.g. `(in chat_template:12)`).
const TEMPLATE_NAME: &str = "chat_template";

/// The ChatML template used when a model ships no chat template.
///
/// It renders every message as `<|im_start|>{role}\n{content}<|im_end|>\n` (a missing or null
/// `content` renders as the empty string) and, with `add_generation_prompt`, ends with
/// `<|im_start|>assistant\n`. This is the `chatml` format of llama.cpp and the former default
/// template of `transformers`. It does not render tools or tool calls.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>' + '\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}\
{{- '<|im_start|>assistant\\n' }}\
{%- endif %}";

/// Errors of compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template source is not valid Jinja (or uses syntax minijinja does not support).
    #[error("chat template does not compile: {0}")]
    Compile(#[source] minijinja::Error),
    /// Rendering failed for a reason other than `raise_exception` (an undefined attribute of
    /// an undefined value, adding a string to a null, an unknown filter, …). With a template
    /// that compiled, this is nearly always caused by the shape of the request's messages.
    #[error("chat template failed to render: {0}")]
    Render(#[source] minijinja::Error),
    /// The template called `raise_exception(message)`; the payload is the template's own
    /// message verbatim (for example Mistral's "After the optional system message,
    /// conversation roles must alternate user/assistant/user/assistant/..."). It describes a
    /// request the model's template refuses and is meant to be returned to the API client.
    #[error("{0}")]
    Raised(String),
    /// The messages or tools given to [`ChatTemplate::render`] do not have the OpenAI shape
    /// (not an array, a message that is not an object, a content part that is not text).
    #[error("invalid chat request: {0}")]
    InvalidInput(String),
}

impl TemplateError {
    /// Whether the error is caused by the request rather than by the template or the server:
    /// true for [`Raised`](Self::Raised), [`InvalidInput`](Self::InvalidInput) and
    /// [`Render`](Self::Render) (a compiled template fails to render only on messages it was
    /// not written for), false for [`Compile`](Self::Compile). An HTTP layer answers 400 for
    /// client errors.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Compile(_))
    }
}

/// A compiled chat template with Hugging Face `tokenizer.chat_template` semantics.
///
/// Cheap to clone and share between threads (`Send + Sync`, the compiled template sits behind
/// an [`Arc`]). Rendering does not mutate it.
#[derive(Clone)]
pub struct ChatTemplate {
    inner: Arc<Inner>,
}

struct Inner {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    /// Tool-call `arguments` must be given to the template as objects (see
    /// [`ChatTemplate::requires_object_arguments`]).
    object_arguments: bool,
    /// The template prints `tools` and assistant `tool_calls` (see [`ChatTemplate::supports_tools`]).
    supports_tools: bool,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_len", &self.inner.source.len())
            .field("bos_token", &self.inner.bos_token)
            .field("eos_token", &self.inner.eos_token)
            .field("object_arguments", &self.inner.object_arguments)
            .field("supports_tools", &self.inner.supports_tools)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template source.
    ///
    /// `bos_token` and `eos_token` are the text of the model's BOS and EOS tokens; the
    /// template sees them as the variables `bos_token` and `eos_token` (as transformers passes
    /// the tokenizer's special tokens). `{% generation %}` markers are accepted.
    ///
    /// Compiling also probes how the template prints tool-call arguments (see
    /// [`requires_object_arguments`](Self::requires_object_arguments)) by rendering a small
    /// conversation twice.
    ///
    /// # Errors
    /// [`TemplateError::Compile`] when the source is not valid Jinja for minijinja.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = environment().map_err(TemplateError::Compile)?;
        let prepared = prepare_source(source);
        env.add_template_owned(TEMPLATE_NAME, prepared).map_err(TemplateError::Compile)?;
        let mut template = Self {
            inner: Arc::new(Inner {
                env,
                source: source.to_owned(),
                bos_token: bos_token.to_owned(),
                eos_token: eos_token.to_owned(),
                object_arguments: true,
                supports_tools: false,
            }),
        };
        let object_arguments = template.probe_object_arguments();
        let supports_tools = template.probe_tools();
        if let Some(inner) = Arc::get_mut(&mut template.inner) {
            inner.object_arguments = object_arguments;
            inner.supports_tools = supports_tools;
        }
        Ok(template)
    }

    /// Decides whether the template prints the `tools` it is given and the `tool_calls` of
    /// assistant messages: renders both with needle names and looks for them.
    fn probe_tools(&self) -> bool {
        let tools = serde_json::json!([{"type": "function", "function": {
            "name": "tools_needle", "description": "", "parameters": {"type": "object", "properties": {}},
        }}]);
        let messages = serde_json::json!([
            {"role": "user", "content": "Hey"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1___", "type": "function",
                "function": {"name": "calls_needle", "arguments": {}},
            }]},
            {"role": "tool", "tool_call_id": "call_1___", "content": "ok"},
        ]);
        self.render_prepared(messages, Some(&tools), false, &serde_json::Map::new())
            .is_ok_and(|text| text.contains("tools_needle") && text.contains("calls_needle"))
    }

    /// Whether this template prints the request's `tools` and assistant `tool_calls` (Qwen
    /// 2.5, Hermes, Llama 3.1+, Mistral templates do; plain ChatML does not). For templates
    /// that do not, the backend describes tools and calls in the messages' text itself.
    pub fn supports_tools(&self) -> bool {
        self.inner.supports_tools
    }

    /// Decides whether tool-call arguments must be objects, after llama.cpp's template
    /// capability detection (minja `chat_template` caps): render an assistant tool call whose
    /// arguments are the JSON text `{"argument_needle": …}` and look for `"argument_needle":`
    /// printed as is. If it is, the template prints argument strings verbatim and they are
    /// kept; otherwise (the template escapes them with `tojson`, or the probe does not
    /// render) objects are used, the convention of transformers' documentation.
    fn probe_object_arguments(&self) -> bool {
        let arguments = serde_json::json!({"argument_needle": "print('Hello, World!')"});
        let messages = serde_json::json!([
            {"role": "user", "content": "Hey"},
            {"role": "assistant", "content": "", "tool_calls": [{
                "id": "call_1___",
                "type": "function",
                "function": {"name": "ipython", "arguments": arguments.to_string()},
            }]},
        ]);
        let prints_strings_verbatim = self
            .render_prepared(messages, None, false, &serde_json::Map::new())
            .is_ok_and(|text| text.contains("\"argument_needle\":") || text.contains("'argument_needle':"));
        !prints_strings_verbatim
    }

    /// Whether this template needs tool-call `arguments` as JSON objects rather than the
    /// JSON text OpenAI requests carry (true for Qwen 2.5, Llama 3.x and Mistral templates,
    /// which print them with `tojson`; false for templates that print the text as is, such as
    /// DeepSeek R1's). [`render`](Self::render) converts the arguments accordingly.
    pub fn requires_object_arguments(&self) -> bool {
        self.inner.object_arguments
    }

    /// The ChatML template ([`CHATML_TEMPLATE`]), for models that ship none. Its `bos_token`
    /// and `eos_token` are empty (ChatML does not use them).
    pub fn chatml() -> Self {
        match Self::new(CHATML_TEMPLATE, "", "") {
            Ok(template) => template,
            // The constant compiles (tested); should it ever not, rendering reports
            // "template not found" instead of this constructor panicking.
            Err(_) => Self {
                inner: Arc::new(Inner {
                    env: Environment::empty(),
                    source: CHATML_TEMPLATE.to_owned(),
                    bos_token: String::new(),
                    eos_token: String::new(),
                    object_arguments: true,
                    supports_tools: false,
                }),
            },
        }
    }

    /// The template source text, as given to [`new`](Self::new).
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The BOS token text the template sees as `bos_token`.
    pub fn bos_token(&self) -> &str {
        &self.inner.bos_token
    }

    /// The EOS token text the template sees as `eos_token`.
    pub fn eos_token(&self) -> &str {
        &self.inner.eos_token
    }

    /// Renders a conversation into prompt text.
    ///
    /// * `messages`: a JSON array of OpenAI chat messages, objects with `role`, `content` and
    ///   optionally `tool_calls`, `tool_call_id`, `name`. Before rendering, each message is
    ///   normalised the way OpenAI-compatible servers (vLLM, llama.cpp) do:
    ///   - a `content` array of parts `{"type": "text", "text": …}` becomes one string, the
    ///     texts joined with `""`; a part of any other type is an
    ///     [`InvalidInput`](TemplateError::InvalidInput) error (this renderer is text-only);
    ///   - when the template [requires object arguments](Self::requires_object_arguments),
    ///     a `tool_calls[].function.arguments` string holding a JSON object is replaced by
    ///     that object and an empty string by `{}` (as vLLM does; templates such as Qwen 2.5
    ///     and Llama 3 print it with `tojson` or iterate it with `items`); any other string
    ///     is kept;
    ///   - keys whose value is `null` are removed, except `content` (so `'tool_calls' in
    ///     message` is false when `tool_calls` is null); a null `content` stays `none`.
    /// * `tools`: the request's `tools`, a JSON array of OpenAI tool objects
    ///   (`{"type": "function", "function": {"name", "description", "parameters"}}`), passed
    ///   unchanged as `tools`; with `None` the variable is left undefined.
    /// * `add_generation_prompt`: as in transformers, ask the template to end with the
    ///   header of an assistant turn.
    ///
    /// The template also sees `bos_token` and `eos_token`, and the functions
    /// `raise_exception` and `strftime_now`.
    ///
    /// # Errors
    /// [`TemplateError::Raised`] when the template calls `raise_exception`,
    /// [`TemplateError::InvalidInput`] for messages or tools that are not OpenAI-shaped, and
    /// [`TemplateError::Render`] for any other rendering failure.
    pub fn render(
        &self,
        messages: &serde_json::Value,
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.render_with(messages, tools, add_generation_prompt, &serde_json::Map::new())
    }

    /// Like [`render`](Self::render), with extra template variables: the OpenAI-compatible
    /// `chat_template_kwargs` of vLLM and llama.cpp (for example `{"enable_thinking": false}`
    /// for Qwen 3 or `{"date_string": "26 Jul 2024"}` for Llama 3). The variables
    /// `messages`, `tools`, `add_generation_prompt`, `bos_token` and `eos_token` are always
    /// those of the request and cannot be overridden through `extra`.
    ///
    /// # Errors
    /// As [`render`](Self::render).
    pub fn render_with(
        &self,
        messages: &serde_json::Value,
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TemplateError> {
        let messages = normalise_messages(messages, self.inner.object_arguments)?;
        self.render_prepared(messages, tools, add_generation_prompt, extra)
    }

    /// Renders already normalised messages.
    fn render_prepared(
        &self,
        messages: serde_json::Value,
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TemplateError> {
        let mut ctx: BTreeMap<&str, Value> =
            extra.iter().map(|(key, value)| (key.as_str(), Value::from(Serde(value)))).collect();
        ctx.insert("messages", Value::from(Serde(&messages)));
        ctx.remove("tools");
        if let Some(tools) = tools {
            if !tools.is_array() {
                return Err(TemplateError::InvalidInput("`tools` must be an array of tool objects".to_owned()));
            }
            ctx.insert("tools", Value::from(Serde(tools)));
        }
        ctx.insert("add_generation_prompt", Value::from(add_generation_prompt));
        ctx.insert("bos_token", Value::from(self.inner.bos_token.as_str()));
        ctx.insert("eos_token", Value::from(self.inner.eos_token.as_str()));

        let template = self.inner.env.get_template(TEMPLATE_NAME).map_err(TemplateError::Render)?;
        template.render(ctx).map_err(classify_render_error)
    }
}

/// Builds the environment shared by all chat templates: HF whitespace settings, lenient
/// undefined, no auto-escaping, Python methods, and transformers' extra filter/functions.
fn environment() -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(false).build()?);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // Print floats as Python's `str(float)` does (`1e+20`, `inf`), everything else as usual.
    env.set_formatter(|out, state, value| {
        if value.kind() == ValueKind::Number
            && !value.is_integer()
            && let Ok(float) = f64::try_from(value.clone())
        {
            let text = match python_float_repr(float).as_str() {
                "NaN" => "nan".to_owned(),
                "Infinity" => "inf".to_owned(),
                "-Infinity" => "-inf".to_owned(),
                other => other.to_owned(),
            };
            return out.write_str(&text).map_err(Error::from);
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // jinja2 built-ins that minijinja keeps in its contrib crate.
    env.add_filter("truncate", minijinja_contrib::filters::truncate);
    env.add_filter("striptags", minijinja_contrib::filters::striptags);
    env.add_filter("filesizeformat", minijinja_contrib::filters::filesizeformat);
    env.add_function("cycler", minijinja_contrib::globals::cycler);
    env.add_function("joiner", minijinja_contrib::globals::joiner);
    // minijinja iterates `none` as an empty sequence; in Python `None` is not iterable, and
    // templates test `content is iterable` to tell lists from null.
    env.add_test("iterable", |value: &Value| !value.is_none() && value.try_iter().is_ok());
    // transformers' additions.
    env.add_filter("tojson", tojson_filter);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    Ok(env)
}

/// Marker attached (as the error source) to the error `raise_exception` returns, so that the
/// template's own message can be told apart from engine errors after rendering.
#[derive(Debug)]
struct RaisedException(String);

impl fmt::Display for RaisedException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

/// `raise_exception(message)`: aborts rendering with the template's message.
fn raise_exception(message: Value) -> Result<Value, Error> {
    let message = match message.as_str() {
        Some(text) => text.to_owned(),
        None => message.to_string(),
    };
    Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(RaisedException(message)))
}

/// `strftime_now(format)`: the current time (UTC) formatted with strftime directives.
fn strftime_now(state: &State, format: String) -> Result<String, Error> {
    // `datetimeformat` reads these names as presets; Python's strftime prints them as is.
    if matches!(format.as_str(), "short" | "medium" | "long" | "full" | "iso" | "unix") {
        return Ok(format);
    }
    let kwargs = Kwargs::from_iter([("format", Value::from(format))]);
    minijinja_contrib::filters::datetimeformat(state, minijinja_contrib::globals::now(), kwargs)
}

/// Maps a minijinja render error to [`TemplateError`], recognising `raise_exception`.
fn classify_render_error(err: Error) -> TemplateError {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = current {
        if let Some(raised) = e.downcast_ref::<RaisedException>() {
            return TemplateError::Raised(raised.0.clone());
        }
        current = e.source();
    }
    TemplateError::Render(err)
}

/// Turns template source into what minijinja should compile: line endings normalised to
/// `\n` (jinja2's lexer does this for all template text and string literals) and
/// `{% generation %}` markers neutralised.
fn prepare_source(source: &str) -> String {
    let source = if source.contains('\r') {
        Cow::Owned(source.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(source)
    };
    neutralise_generation_tags(&source).into_owned()
}

/// Rewrites `{% generation %}` / `{% endgeneration %}` (transformers' `AssistantTracker`
/// extension, unknown to minijinja) into `{% if true %}` / `{% endif %}`, keeping the
/// whitespace-control modifiers so the rendered text is what jinja2 produces.
fn neutralise_generation_tags(source: &str) -> Cow<'_, str> {
    if !source.contains("generation") {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let (before, tag) = rest.split_at(start);
        out.push_str(before);
        match rewrite_generation_tag(tag) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &tag[consumed..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// If `tag` (starting with `{%`) opens a `generation` or `endgeneration` tag, returns the
/// replacement tag and the number of bytes of `tag` it replaces.
fn rewrite_generation_tag(tag: &str) -> Option<(String, usize)> {
    let body = &tag[2..];
    let open_modifier = body.starts_with(['-', '+']);
    let after_modifier = if open_modifier { &body[1..] } else { body };
    let keyword_start = after_modifier.trim_start();
    let keyword_len =
        keyword_start.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(keyword_start.len());
    let replacement_keyword = match &keyword_start[..keyword_len] {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return None,
    };
    let after_keyword = keyword_start[keyword_len..].trim_start();
    let close_modifier = after_keyword.starts_with(['-', '+']);
    let closing = if close_modifier { &after_keyword[1..] } else { after_keyword };
    if !closing.starts_with("%}") {
        return None;
    }
    let consumed = tag.len() - closing.len() + 2;
    let mut replacement = String::from("{%");
    if open_modifier {
        replacement.push_str(&body[..1]);
    }
    replacement.push(' ');
    replacement.push_str(replacement_keyword);
    replacement.push(' ');
    if close_modifier {
        replacement.push_str(&after_keyword[..1]);
    }
    replacement.push_str("%}");
    Some((replacement, consumed))
}

/// Normalises OpenAI messages for rendering (see [`ChatTemplate::render`]).
fn normalise_messages(
    messages: &serde_json::Value,
    object_arguments: bool,
) -> Result<serde_json::Value, TemplateError> {
    let list = messages
        .as_array()
        .ok_or_else(|| TemplateError::InvalidInput("`messages` must be an array of message objects".to_owned()))?;
    let mut out = Vec::with_capacity(list.len());
    for (index, message) in list.iter().enumerate() {
        let object = message
            .as_object()
            .ok_or_else(|| TemplateError::InvalidInput(format!("message {index} is not an object")))?;
        let mut normalised = serde_json::Map::with_capacity(object.len());
        for (key, value) in object {
            if value.is_null() && key != "content" {
                continue;
            }
            let value = match key.as_str() {
                "content" => normalise_content(index, value)?,
                "tool_calls" if object_arguments => arguments_to_objects(value),
                _ => value.clone(),
            };
            normalised.insert(key.clone(), value);
        }
        out.push(serde_json::Value::Object(normalised));
    }
    Ok(serde_json::Value::Array(out))
}

/// Joins an array of text parts into one string; other content is kept.
fn normalise_content(index: usize, content: &serde_json::Value) -> Result<serde_json::Value, TemplateError> {
    let Some(parts) = content.as_array() else {
        return Ok(content.clone());
    };
    let mut text = String::new();
    for part in parts {
        let kind = part.get("type").and_then(serde_json::Value::as_str);
        match (kind, part.get("text").and_then(serde_json::Value::as_str)) {
            (Some("text"), Some(part_text)) => text.push_str(part_text),
            (Some("text"), None) => {
                return Err(TemplateError::InvalidInput(format!(
                    "a text content part of message {index} has no `text` string"
                )));
            }
            (Some(other), _) => {
                return Err(TemplateError::InvalidInput(format!(
                    "content parts of type `{other}` (message {index}) are not supported; only `text` parts are"
                )));
            }
            (None, _) => {
                return Err(TemplateError::InvalidInput(format!("a content part of message {index} has no `type`")));
            }
        }
    }
    Ok(serde_json::Value::String(text))
}

/// Parses `function.arguments` strings that hold JSON objects into those objects (an empty
/// string becomes `{}`).
fn arguments_to_objects(tool_calls: &serde_json::Value) -> serde_json::Value {
    let mut tool_calls = tool_calls.clone();
    if let Some(calls) = tool_calls.as_array_mut() {
        for call in calls {
            let Some(arguments) = call.get_mut("function").and_then(|function| function.get_mut("arguments")) else {
                continue;
            };
            let Some(text) = arguments.as_str() else {
                continue;
            };
            if text.trim().is_empty() {
                *arguments = serde_json::Value::Object(serde_json::Map::new());
            } else if let Ok(object @ serde_json::Value::Object(_)) = serde_json::from_str(text) {
                *arguments = object;
            }
        }
    }
    tool_calls
}

/// Options of the `tojson` filter, named after Python's `json.dumps` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonOptions {
    /// Escape every non-ASCII character as `\uXXXX` (UTF-16 code units, lower-case hex).
    ensure_ascii: bool,
    /// Pretty-printing indentation unit; `None` prints on one line.
    indent: Option<String>,
    /// Separator between items and between a key and its value.
    item_separator: String,
    key_separator: String,
    /// Sort object keys.
    sort_keys: bool,
}

impl Default for JsonOptions {
    /// transformers' defaults: `ensure_ascii=False`, one line, `", "` and `": "`.
    fn default() -> Self {
        Self {
            ensure_ascii: false,
            indent: None,
            item_separator: ", ".to_owned(),
            key_separator: ": ".to_owned(),
            sort_keys: false,
        }
    }
}

/// `tojson(ensure_ascii=False, indent=None, separators=None, sort_keys=False)`:
/// transformers' filter, `json.dumps` with those parameters (positionally in that order too).
fn tojson_filter(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let args: Vec<Value> = args.0.into_iter().map(Value::from).collect();
    let (positional, kwargs): (&[Value], Kwargs) = from_args(&args)?;
    if positional.len() > 4 {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            "tojson takes at most 4 arguments (ensure_ascii, indent, separators, sort_keys)",
        ));
    }
    let param = |index: usize, name: &str| -> Result<Option<Value>, Error> {
        let by_name: Option<Value> = kwargs.get(name)?;
        Ok(by_name.or_else(|| positional.get(index).cloned()))
    };
    let ensure_ascii = param(0, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = param(1, "indent")?;
    let separators = param(2, "separators")?;
    let sort_keys = param(3, "sort_keys")?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;

    let mut options = JsonOptions { ensure_ascii, sort_keys, ..JsonOptions::default() };
    options.indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => {
            if let Some(text) = v.as_str() {
                Some(text.to_owned())
            } else if let Some(n) = v.as_i64() {
                Some(" ".repeat(usize::try_from(n).unwrap_or(0)))
            } else {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer, a string or none",
                ));
            }
        }
    };
    if options.indent.is_some() {
        options.item_separator = ",".to_owned();
    }
    if let Some(separators) = separators.filter(|v| !v.is_none() && !v.is_undefined()) {
        let pair: Vec<String> =
            separators.try_iter()?.map(|s| s.as_str().map(str::to_owned)).collect::<Option<_>>().unwrap_or_default();
        let [item, key] = <[String; 2]>::try_from(pair).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be a pair of strings (item_separator, key_separator)",
            )
        })?;
        options.item_separator = item;
        options.key_separator = key;
    }
    let mut out = String::new();
    write_json(&mut out, value, &options, 0)?;
    Ok(Value::from(out))
}

fn not_serializable(what: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("Object of type {what} is not JSON serializable"))
}

/// Serialises `value` like Python's `json.dumps` with `options`.
fn write_json(out: &mut String, value: &Value, options: &JsonOptions, level: usize) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, value)?,
        ValueKind::String => write_json_string(out, value.as_str().unwrap_or_default(), options),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, options, level, '[', ']', &items, |out, item, level| {
                write_json(out, item, options, level)
            })?;
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((json_key(&key)?, item));
            }
            if options.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(out, options, level, '{', '}', &entries, |out, (key, item), level| {
                write_json_string(out, key, options);
                out.push_str(&options.key_separator);
                write_json(out, item, options, level)
            })?;
        }
        ValueKind::Undefined => return Err(not_serializable("Undefined")),
        ValueKind::Bytes => return Err(not_serializable("bytes")),
        _ => return Err(not_serializable(&value.kind().to_string())),
    }
    Ok(())
}

/// Writes a JSON array or object, pretty-printed the way Python's encoder does.
fn write_container<T>(
    out: &mut String,
    options: &JsonOptions,
    level: usize,
    open: char,
    close: char,
    items: &[T],
    mut write_item: impl FnMut(&mut String, &T, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let inner = level + 1;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&options.item_separator);
        }
        if let Some(indent) = &options.indent {
            out.push('\n');
            out.push_str(&indent.repeat(inner));
        }
        write_item(out, item, inner)?;
    }
    if let Some(indent) = &options.indent {
        out.push('\n');
        out.push_str(&indent.repeat(level));
    }
    out.push(close);
    Ok(())
}

/// An object key as Python's encoder converts it (`str`, numbers, `true`, `false`, `null`).
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::None => Ok("null".to_owned()),
        ValueKind::Number => {
            let mut text = String::new();
            write_number(&mut text, key)?;
            Ok(text)
        }
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("keys must be str, int, float, bool or None, not {other}"),
        )),
    }
}

/// Writes an integer exactly, or a float as Python's `float.__repr__` (`1.0`, `1e-05`,
/// `1e+16`, `NaN`, `Infinity`).
fn write_number(out: &mut String, value: &Value) -> Result<(), Error> {
    if value.is_integer() {
        out.push_str(&value.to_string());
        return Ok(());
    }
    let float = f64::try_from(value.clone())?;
    out.push_str(&python_float_repr(float));
    Ok(())
}

/// Python's `repr(float)` as `json.dumps` prints it: the shortest round-tripping digits, in
/// positional notation for exponents in `-4..16`, scientific (`1.5e-07`, `1e+16`) otherwise.
fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // `{:e}` prints the shortest round-tripping digits as `d.ddde±x`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat(usize::try_from(-exponent - 1).unwrap_or(0)));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    }
    out
}

/// Writes a JSON string literal with Python's escaping: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`,
/// `\f`, other control characters as `\u00XX`; with `ensure_ascii` every character outside
/// `' '..='~'` as `\uXXXX` UTF-16 units. `<`, `>`, `&` and `'` are never escaped.
fn write_json_string(out: &mut String, text: &str, options: &JsonOptions) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (options.ensure_ascii && (c as u32) > 0x7e) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tojson(expr: &str, ctx: serde_json::Value) -> Result<String, TemplateError> {
        let template = ChatTemplate::new(&format!("{{{{ {expr} }}}}"), "", "")?;
        template.render_with(&json!([]), None, false, ctx.as_object().unwrap_or(&serde_json::Map::new()))
    }

    #[test]
    fn tojson_matches_python_json_dumps_defaults() {
        let value = json!({"b": [1, 2.5, true, null], "a": "x<y>&'z\"\\", "n": {"k": []}});
        assert_eq!(
            tojson("v | tojson", json!({"v": value})).ok().as_deref(),
            Some(r#"{"b": [1, 2.5, true, null], "a": "x<y>&'z\"\\", "n": {"k": []}}"#)
        );
    }

    #[test]
    fn tojson_non_ascii_follows_ensure_ascii() {
        let ctx = json!({"v": "héllo 😀 \u{7f}\u{1}\n"});
        // transformers' default is ensure_ascii=False: characters are kept.
        assert_eq!(tojson("v | tojson", ctx.clone()).ok().as_deref(), Some("\"héllo 😀 \u{7f}\\u0001\\n\""));
        assert_eq!(
            tojson("v | tojson(ensure_ascii=true)", ctx.clone()).ok().as_deref(),
            Some(r#""h\u00e9llo \ud83d\ude00 \u007f\u0001\n""#)
        );
        assert_eq!(
            tojson("v | tojson(ensure_ascii=false)", ctx).ok().as_deref(),
            Some("\"héllo 😀 \u{7f}\\u0001\\n\"")
        );
    }

    #[test]
    fn tojson_indent_separators_and_sort_keys() {
        let ctx = json!({"v": {"b": 1, "a": [1, {"c": null}], "e": {}, "f": []}});
        assert_eq!(
            tojson("v | tojson(indent=2)", ctx.clone()).ok().as_deref(),
            Some(
                "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"c\": null\n    }\n  ],\n  \"e\": {},\n  \"f\": []\n}"
            )
        );
        assert_eq!(
            tojson("v | tojson(sort_keys=true)", ctx.clone()).ok().as_deref(),
            Some(r#"{"a": [1, {"c": null}], "b": 1, "e": {}, "f": []}"#)
        );
        assert_eq!(
            tojson("v | tojson(separators=(',', ':'))", ctx.clone()).ok().as_deref(),
            Some(r#"{"b":1,"a":[1,{"c":null}],"e":{},"f":[]}"#)
        );
        assert_eq!(tojson("v | tojson(indent='\t')", json!({"v": [1]})).ok().as_deref(), Some("[\n\t1\n]"));
        assert_eq!(tojson("v | tojson(indent=0)", json!({"v": [1, 2]})).ok().as_deref(), Some("[\n1,\n2\n]"));
    }

    #[test]
    fn tojson_numbers_like_python() {
        let cases = [
            (json!(1.0), "1.0"),
            (json!(-0.0), "-0.0"),
            (json!(0.1), "0.1"),
            (json!(1e16), "1e+16"),
            (json!(1e15), "1000000000000000.0"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1.5e-7), "1.5e-07"),
            (json!(123456.789), "123456.789"),
            (json!(1.7976931348623157e308), "1.7976931348623157e+308"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(-42), "-42"),
        ];
        for (value, expected) in cases {
            assert_eq!(tojson("v | tojson", json!({ "v": value })).ok().as_deref(), Some(expected), "{value}");
        }
        assert_eq!(python_float_repr(f64::NAN), "NaN");
        assert_eq!(python_float_repr(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn tojson_of_undefined_is_an_error() {
        assert!(matches!(tojson("missing | tojson", json!({})), Err(TemplateError::Render(_))));
    }

    #[test]
    fn chatml_renders_conversation() {
        let template = ChatTemplate::chatml();
        let rendered = template.render(
            &json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": null, "tool_calls": null},
            ]),
            None,
            true,
        );
        assert_eq!(
            rendered.ok().as_deref(),
            Some(
                "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let without_prompt = template.render(&json!([{"role": "user", "content": "x"}]), None, false);
        assert_eq!(without_prompt.ok().as_deref(), Some("<|im_start|>user\nx<|im_end|>\n"));
    }

    #[test]
    fn raise_exception_keeps_the_template_message() {
        let template =
            ChatTemplate::new("{% if messages|length == 0 %}{{ raise_exception('No messages!') }}{% endif %}", "", "");
        let err = template.and_then(|t| t.render(&json!([]), None, false));
        match err {
            Err(e @ TemplateError::Raised(_)) => {
                assert_eq!(e.to_string(), "No messages!");
                assert!(e.is_client_error());
            }
            other => panic!("expected Raised, got {other:?}"),
        }
    }

    #[test]
    fn raise_exception_inside_a_macro_is_recognised() {
        let source = "{% macro check(m) %}{% if m.role != 'user' %}{{ raise_exception('bad role ' ~ m.role) }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}";
        let result = ChatTemplate::new(source, "", "")
            .and_then(|t| t.render(&json!([{"role": "bot", "content": ""}]), None, false));
        assert!(matches!(result, Err(TemplateError::Raised(ref m)) if m == "bad role bot"), "{result:?}");
    }

    #[test]
    fn compile_errors_are_reported() {
        let result = ChatTemplate::new("{% for m in messages %}", "", "");
        assert!(matches!(result, Err(TemplateError::Compile(_))));
        assert!(result.is_err_and(|e| !e.is_client_error()));
    }

    #[test]
    fn generation_markers_render_their_body_with_whitespace_control() {
        let source = "{%- for m in messages %}\n    {%- if m.role == 'assistant' %}\n        {%- generation %}\n{{- m.content }}\n        {%- endgeneration %}\n    {%- else %}\n{{ m.content }}\n    {%- endif %}\n{%- endfor %}{% generation%}!{%endgeneration -%}\n  .";
        let template = ChatTemplate::new(source, "", "");
        let rendered = template.and_then(|t| {
            t.render(&json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]), None, false)
        });
        assert_eq!(rendered.ok().as_deref(), Some("ab!."));
    }

    #[test]
    fn crlf_line_endings_render_like_lf() {
        let lf = "{% for m in messages %}\n{{ m.content }}\n{% endfor %}\n{{ 'a\nb' }}\n";
        let crlf = lf.replace('\n', "\r\n");
        let messages = json!([{"role": "user", "content": "x"}]);
        let render =
            |source: &str| ChatTemplate::new(source, "", "").and_then(|t| t.render(&messages, None, false)).ok();
        assert_eq!(render(lf).as_deref(), Some("x\na\nb"));
        assert_eq!(render(&crlf), render(lf));
    }

    #[test]
    fn neutralise_leaves_other_text_alone() {
        let source = "{{ 'generation' }}{% if x %}{%- endif %}{% generation_x %}";
        assert_eq!(neutralise_generation_tags(source), source);
        assert_eq!(
            neutralise_generation_tags("{%+ generation -%}x{%-endgeneration+%}"),
            "{%+ if true -%}x{%- endif +%}"
        );
    }

    #[test]
    fn lenient_undefined_and_python_methods() {
        let source = "{% for m in messages %}[{{ m.name }}|{{ m.tool_calls is defined }}|{{ m.content.strip() }}|{% for k, v in m.meta.items() %}{{ k }}={{ v }}{% endfor %}|{{ m.content.startswith('  he') }}]{% if not m.missing %}!{% endif %}{% endfor %}";
        let rendered = ChatTemplate::new(source, "", "").and_then(|t| {
            t.render(
                &json!([{"role": "user", "content": "  hello  ", "tool_calls": null, "meta": {"a": 1, "b": "x"}}]),
                None,
                false,
            )
        });
        assert_eq!(rendered.ok().as_deref(), Some("[|False|hello|a=1b=x|True]!"));
    }

    #[test]
    fn none_is_not_iterable() {
        let source =
            "{{ n is iterable }} {{ u is iterable }} {{ 'ab' is iterable }} {{ [] is iterable }} {{ 3 is iterable }}";
        let rendered = ChatTemplate::new(source, "", "").and_then(|t| {
            t.render_with(&json!([]), None, false, json!({"n": null}).as_object().unwrap_or(&serde_json::Map::new()))
        });
        assert_eq!(rendered.ok().as_deref(), Some("False True True True False"));
    }

    #[test]
    fn namespace_and_adjacent_loop_items() {
        let source = "{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.previtem and loop.previtem.role == m.role %}{% set ns.n = ns.n + 1 %}{% endif %}{{ loop.nextitem.role if loop.nextitem else 'end' }},{% endfor %}{{ ns.n }}";
        let rendered = ChatTemplate::new(source, "", "")
            .and_then(|t| t.render(&json!([{"role": "user"}, {"role": "user"}, {"role": "assistant"}]), None, false));
        assert_eq!(rendered.ok().as_deref(), Some("user,assistant,end,1"));
    }

    #[test]
    fn tools_are_undefined_without_tools_and_bos_eos_are_set() {
        let source =
            "{{ bos_token }}{{ tools is defined }}{% if tools %}{{ tools[0].function.name }}{% endif %}{{ eos_token }}";
        let template = ChatTemplate::new(source, "<s>", "</s>");
        let template = match template {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(template.render(&json!([]), None, false).ok().as_deref(), Some("<s>False</s>"));
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        assert_eq!(template.render(&json!([]), Some(&tools), false).ok().as_deref(), Some("<s>Truef</s>"));
        let extra = json!({"tools": "hijack", "bos_token": "X"});
        assert_eq!(
            template
                .render_with(&json!([]), None, false, extra.as_object().unwrap_or(&serde_json::Map::new()))
                .ok()
                .as_deref(),
            Some("<s>False</s>")
        );
    }

    #[test]
    fn tool_call_arguments_strings_become_objects() {
        let source = "{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.arguments | tojson }};{% endfor %}{% endfor %}";
        let rendered = ChatTemplate::new(source, "", "").and_then(|t| {
            t.render(
                &json!([{"role": "assistant", "content": null, "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"city\": \"Paris\"}"}},
                    {"id": "2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
                    {"id": "3", "type": "function", "function": {"name": "h", "arguments": {"already": true}}}
                ]}]),
                None,
                false,
            )
        });
        assert_eq!(rendered.ok().as_deref(), Some(r#"{"city": "Paris"};"not json";{"already": true};"#));
    }

    #[test]
    fn tool_call_arguments_stay_strings_for_templates_that_print_them() {
        let source = "{% for m in messages %}{% for c in m.tool_calls %}{{ '<call>' + c.function.arguments + '</call>' }}{% endfor %}{% endfor %}";
        let template = match ChatTemplate::new(source, "", "") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert!(!template.requires_object_arguments());
        let rendered = template.render(
            &json!([{"role": "assistant", "content": null, "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"city\": \"Paris\"}"}}
            ]}]),
            None,
            false,
        );
        assert_eq!(rendered.ok().as_deref(), Some(r#"<call>{"city": "Paris"}</call>"#));
    }

    #[test]
    fn empty_arguments_become_an_empty_object() {
        let source = "{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.arguments | tojson }}{% endfor %}{% endfor %}";
        let template = match ChatTemplate::new(source, "", "") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert!(template.requires_object_arguments());
        let rendered = template.render(
            &json!([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": ""}}]}]),
            None,
            false,
        );
        assert_eq!(rendered.ok().as_deref(), Some("{}"));
    }

    #[test]
    fn floats_print_like_python() {
        let rendered = ChatTemplate::new("{{ a }} {{ b }} {{ c }} {{ 1e20 }}", "", "").and_then(|t| {
            t.render_with(
                &json!([]),
                None,
                false,
                json!({"a": 1.0, "b": 0.00001, "c": 3}).as_object().unwrap_or(&serde_json::Map::new()),
            )
        });
        assert_eq!(rendered.ok().as_deref(), Some("1.0 1e-05 3 1e+20"));
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let template = ChatTemplate::chatml();
        assert!(matches!(template.render(&json!({"role": "user"}), None, false), Err(TemplateError::InvalidInput(_))));
        assert!(matches!(template.render(&json!(["hi"]), None, false), Err(TemplateError::InvalidInput(_))));
        let image = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]);
        assert!(matches!(
            template.render(&image, None, false),
            Err(TemplateError::InvalidInput(ref m)) if m.contains("image_url")
        ));
        assert!(matches!(
            template.render(&json!([]), Some(&json!({"a": 1})), false),
            Err(TemplateError::InvalidInput(_))
        ));
    }

    #[test]
    fn strftime_now_formats_the_current_time() {
        let rendered = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('short') }}", "", "")
            .and_then(|t| t.render(&json!([]), None, false));
        let text = match rendered {
            Ok(text) => text,
            Err(e) => panic!("{e}"),
        };
        let (date, preset) = text.split_once('|').unwrap_or_default();
        assert_eq!(preset, "short");
        let parts: Vec<&str> = date.split('-').collect();
        assert_eq!(parts.len(), 3, "{date}");
        assert!(parts[0].parse::<u32>().is_ok_and(|year| year >= 2024), "{date}");
        assert_eq!(parts[1].len(), 2);
        assert_eq!(parts[2].len(), 2);
    }

    #[test]
    fn chat_template_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<ChatTemplate>();
        let a = ChatTemplate::chatml();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert_eq!(b.source(), CHATML_TEMPLATE);
    }
}
