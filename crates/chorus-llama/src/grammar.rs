//! From an engine [`Constraint`] to a llama.cpp grammar sampler. Each JSON
//! schema of the constraint's shapes becomes GBNF with llama.cpp's own
//! `json_schema_to_grammar` (the converter llama-server uses for
//! `response_format` and tool calls), its rules renamed `chorus-jsonN-…` so
//! several live in one grammar; a rule `chorus-shape` is the choice of the
//! shapes, each its literals, whitespace and JSON rules in order, and the root
//! rule `chorus-root` is one shape. A lazy constraint (`tool_choice: auto`)
//! uses llama.cpp's lazy grammar: its trigger patterns, joined into one
//! regular expression, start it, and from there the root is one shape and
//! optional whitespace.

use std::collections::HashSet;

use chorus_engine::BackendError;
use chorus_engine::tools::{Constraint, Piece};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use serde_json::Value;

/// The root rule of every grammar chorus builds.
const ROOT: &str = "chorus-root";

/// The rule of [`Piece::Space`]: up to 20 spaces, tabs, carriage returns and newlines.
const SPACE_RULE: &str = "chorus-space ::= [ \\t\\r\\n]{0,20}\n";

/// The GBNF text of a constraint.
///
/// # Errors
/// [`BackendError::InvalidSchema`] when llama.cpp cannot convert a schema (unsupported
/// keywords, bad `$ref`s, malformed schema).
pub(crate) fn gbnf(constraint: &Constraint) -> Result<String, BackendError> {
    let mut rules = String::new();
    let mut schemas: Vec<&Value> = Vec::new();
    let mut grammars = 0;
    let mut shapes = Vec::new();
    for shape in &constraint.shapes {
        let mut sequence = Vec::new();
        for piece in shape {
            sequence.push(match piece {
                Piece::Text(text) => literal(text),
                Piece::Space => "chorus-space".to_owned(),
                Piece::Json(schema) => {
                    let index = match schemas.iter().position(|known| *known == schema) {
                        Some(index) => index,
                        None => {
                            let converted = convert(schema, constraint.param)?;
                            rules.push_str(&prefixed(&converted, &format!("chorus-json{}-", schemas.len())));
                            schemas.push(schema);
                            schemas.len() - 1
                        }
                    };
                    format!("chorus-json{index}-root")
                }
                Piece::Gbnf(grammar) => {
                    let prefix = format!("chorus-gbnf{grammars}-");
                    rules.push_str(&prefixed(grammar, &prefix));
                    rules.push('\n');
                    grammars += 1;
                    format!("{prefix}root")
                }
            });
        }
        shapes.push(if sequence.is_empty() { "\"\"".to_owned() } else { sequence.join(" ") });
    }
    let root = if constraint.trigger.is_some() {
        format!("{ROOT} ::= chorus-shape chorus-space\n")
    } else {
        format!("{ROOT} ::= chorus-shape\n")
    };
    Ok(format!("{rules}{SPACE_RULE}chorus-shape ::= {}\n{root}", shapes.join(" | ")))
}

/// The grammar sampler of a constraint, checked against the model's vocabulary.
///
/// # Errors
/// [`BackendError::InvalidSchema`] when a schema cannot be converted or the grammar does
/// not parse.
pub(crate) fn sampler(model: &LlamaModel, constraint: &Constraint) -> Result<LlamaSampler, BackendError> {
    let grammar = gbnf(constraint)?;
    let built = match &constraint.trigger {
        None => LlamaSampler::grammar(model, &grammar, ROOT),
        Some(patterns) => LlamaSampler::grammar_lazy_patterns(model, &grammar, ROOT, &[trigger(patterns)], &[]),
    };
    built.map_err(|e| BackendError::InvalidSchema {
        param: constraint.param,
        message: if constraint.param == "grammar" {
            format!("the grammar does not parse as GBNF, or has no rule `root`: {e}")
        } else {
            format!("the grammar built from this JSON schema does not load: {e}")
        },
    })
}

/// The one regular expression of a lazy constraint's trigger patterns: their alternation, so
/// the leftmost match wins and its capture group (the only one of its pattern that takes part)
/// is where llama.cpp starts the grammar.
fn trigger(patterns: &[String]) -> String {
    patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|")
}

/// A JSON schema as GBNF, its root rule `root`.
fn convert(schema: &Value, param: &'static str) -> Result<String, BackendError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| BackendError::InvalidSchema {
        param,
        message: format!(
            "llama.cpp cannot turn this JSON schema into a grammar (an unsupported keyword, or a $ref that does not resolve): {e}"
        ),
    })
}

/// `gbnf` with `prefix` before the name of every rule it defines, where the rule is defined and
/// wherever it is referred to (names outside string literals, character classes and `{m,n}`).
fn prefixed(gbnf: &str, prefix: &str) -> String {
    let defined: HashSet<&str> =
        gbnf.lines().filter_map(|line| line.split_once("::=")).map(|(name, _)| name.trim()).collect();
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let mut out = String::with_capacity(gbnf.len() + defined.len() * prefix.len() * 4);
    let mut chars = gbnf.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let close = match c {
            '"' => Some('"'),
            '[' => Some(']'),
            '{' => Some('}'),
            _ => None,
        };
        if let Some(close) = close {
            out.push(c);
            while let Some((_, d)) = chars.next() {
                out.push(d);
                if d == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                } else if d == close {
                    break;
                }
            }
        } else if is_name_char(c) {
            let mut end = start + c.len_utf8();
            while let Some(&(at, d)) = chars.peek() {
                if !is_name_char(d) {
                    break;
                }
                end = at + d.len_utf8();
                chars.next();
            }
            let name = &gbnf[start..end];
            if defined.contains(name) {
                out.push_str(prefix);
            }
            out.push_str(name);
        } else {
            out.push(c);
        }
    }
    out
}

/// A GBNF string literal; empty text is the empty sequence `""`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use chorus_engine::tools::{FunctionDefinition, ResponseFormat, ToolChoice, ToolFormat, constraint};
    use chorus_engine::{Backend, ChatMessage, GenerateRequest, Metrics, Prompt, Role};
    use serde_json::json;

    use super::*;

    fn tool(name: &str) -> FunctionDefinition {
        FunctionDefinition {
            name: name.into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
            strict: false,
        }
    }

    fn tools_constraint(format: ToolFormat, choice: &ToolChoice) -> Constraint {
        constraint(&[tool("list_dir"), tool("srv.read")], choice, &ResponseFormat::Text, format).unwrap()
    }

    #[test]
    fn wraps_the_schema_in_its_literals() {
        let c = constraint(&[tool("list_dir")], &ToolChoice::Required, &ResponseFormat::Text, ToolFormat::Hermes);
        let g = gbnf(&c.unwrap()).unwrap();
        assert!(g.contains("\nchorus-shape ::= \"<tool_call>\\n\" chorus-json0-root \"\\n</tool_call>\"\n"), "{g}");
        assert!(g.ends_with("\nchorus-root ::= chorus-shape\n"), "{g}");
        assert!(g.lines().any(|l| l.starts_with("chorus-json0-root ::= ")), "{g}");
        // Every converted rule is renamed, references included.
        assert!(g.lines().all(|l| l.starts_with("chorus-")), "{g}");
        // The object's name comes first, as the trigger patterns and the parser's bare form expect.
        let root = g.lines().find(|l| l.starts_with("chorus-json0-root ::= ")).unwrap();
        assert!(root.find("name-kv").unwrap() < root.find("arguments-kv").unwrap(), "{root}");
    }

    #[test]
    fn json_whitespace_is_what_the_trigger_patterns_assume() {
        // ToolFormat's patterns allow no whitespace, one space, or a newline and indentation
        // inside JSON: all of which the converter's `space` rule accepts.
        let c = constraint(&[], &ToolChoice::Auto, &ResponseFormat::JsonObject, ToolFormat::Hermes).unwrap();
        let g = gbnf(&c).unwrap();
        assert!(g.contains("chorus-json0-space ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}\n"), "{g}");
    }

    #[test]
    fn lazy_hermes_has_every_form() {
        let g = gbnf(&tools_constraint(ToolFormat::Hermes, &ToolChoice::Auto)).unwrap();
        // One conversion for the call object, one for the shared parameters schema.
        assert!(g.contains("\nchorus-json1-root ::= "), "{g}");
        assert!(!g.contains("chorus-json2-root"), "{g}");
        let shapes = g.lines().find(|l| l.starts_with("chorus-shape ::= ")).unwrap();
        for part in [
            "\"<tool_call>\" chorus-space chorus-json0-root chorus-space \"</tool_call>\"",
            "\"<function=list_dir>\" chorus-space chorus-json1-root chorus-space \"</function>\"",
            "\"<function name=\\\"srv.read\\\">\" chorus-space chorus-json1-root",
            "\"```json\\n\" chorus-space chorus-json0-root chorus-space \"```\"",
            "\"<tools>\" chorus-space chorus-json0-root",
            "| chorus-json0-root |",
        ] {
            assert!(shapes.contains(part), "{part} not in {shapes}");
        }
        assert!(g.ends_with("\nchorus-root ::= chorus-shape chorus-space\n"), "{g}");
    }

    #[test]
    fn triggers_join_into_one_expression() {
        assert_eq!(trigger(&["(a)".into(), "x(b)".into()]), "(?:(a))|(?:x(b))");
    }

    #[test]
    fn prefixed_renames_rules_and_references_only() {
        let g = "root ::= \"{\" space x-kv \"}\" space\nx-kv ::= \"\\\"x-kv\\\"\" space [^\"\\\\\\]x] 1{1,2}\n1 ::= \"1\"\nspace ::= | \" \"\n";
        let expected = "p-root ::= \"{\" p-space p-x-kv \"}\" p-space\np-x-kv ::= \"\\\"x-kv\\\"\" p-space [^\"\\\\\\]x] p-1{1,2}\np-1 ::= \"1\"\np-space ::= | \" \"\n";
        assert_eq!(prefixed(g, "p-"), expected);
    }

    #[test]
    fn unsupported_schema_is_a_client_error() {
        let c = Constraint {
            shapes: vec![vec![Piece::Json(json!({"$ref": "#/definitions/missing"}))]],
            trigger: None,
            param: "response_format",
        };
        let e = gbnf(&c).unwrap_err();
        assert!(e.is_client_error());
        assert!(matches!(e, BackendError::InvalidSchema { param: "response_format", .. }));
    }

    /// Each family's lazy and forced grammars load into a sampler (GBNF and trigger pattern
    /// accepted by llama.cpp): generation starts with them on the test model.
    #[test]
    fn every_family_grammar_loads() {
        let templates = [
            (ToolFormat::Hermes, None),
            (ToolFormat::Llama3, Some("tests/data/templates/meta-llama-Llama-3.2-3B-Instruct.jinja")),
            (ToolFormat::Mistral, Some("tests/data/templates/mistralai-Mistral-Nemo-Instruct-2407.jinja")),
        ];
        for (format, template) in templates {
            let mut config = crate::LlamaConfig::new(chorus_testkit::tiny_model_path());
            config.n_ctx = 8192;
            config.n_parallel = 1;
            config.chat_template = template.map(|path| {
                std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path).unwrap()
            });
            let backend = crate::LlamaBackend::load(&config, Arc::new(Metrics::new())).unwrap();
            assert_eq!(backend.info().tool_format, format);
            for choice in [ToolChoice::Auto, ToolChoice::Required] {
                let mut request = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "hi")]));
                request.tools = vec![tool("list_dir"), tool("srv.read")];
                request.tool_choice = choice.clone();
                request.max_tokens = Some(4);
                let valid = request.validate(backend.info()).unwrap();
                let stream = backend.generate(valid);
                assert!(stream.is_ok(), "{format:?} {choice:?}: {:?}", stream.err());
            }
        }
    }
}
