//! From an engine [`Constraint`] to a llama.cpp grammar sampler: the JSON
//! schema becomes GBNF with llama.cpp's own `json_schema_to_grammar` (the
//! converter llama-server uses for `response_format` and tool calls), and a
//! root rule `chorus-root` wraps it in the constraint's literals. A lazy
//! constraint (`tool_choice: auto`) uses llama.cpp's lazy grammar, which
//! applies from the trigger text on.

use chorus_engine::BackendError;
use chorus_engine::tools::Constraint;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;

/// The root rule of every grammar chorus builds.
const ROOT: &str = "chorus-root";

/// The GBNF text of a constraint.
///
/// # Errors
/// [`BackendError::InvalidSchema`] when llama.cpp cannot convert the schema (unsupported
/// keywords, bad `$ref`s, malformed schema).
pub(crate) fn gbnf(constraint: &Constraint) -> Result<String, BackendError> {
    let schema = constraint.schema.to_string();
    let converted = llama_cpp_2::json_schema_to_grammar(&schema).map_err(|e| BackendError::InvalidSchema {
        param: constraint.param,
        message: format!(
            "llama.cpp cannot turn this JSON schema into a grammar (an unsupported keyword, or a $ref that does not resolve): {e}"
        ),
    })?;
    let one = format!("{} root {}", literal(&constraint.prefix), literal(&constraint.suffix));
    let root = if constraint.trigger.is_some() {
        // Lazy: one or more calls, one per line, once the model starts the first.
        format!("{ROOT} ::= chorus-call (\"\\n\" chorus-call)*\nchorus-call ::= {one}\n")
    } else {
        format!("{ROOT} ::= {one}\n")
    };
    Ok(format!("{converted}\n{root}"))
}

/// The grammar sampler of a constraint, checked against the model's vocabulary.
///
/// # Errors
/// [`BackendError::InvalidSchema`] when the schema cannot be converted or the grammar does
/// not parse.
pub(crate) fn sampler(model: &LlamaModel, constraint: &Constraint) -> Result<LlamaSampler, BackendError> {
    let grammar = gbnf(constraint)?;
    let built = match &constraint.trigger {
        None => LlamaSampler::grammar(model, &grammar, ROOT),
        Some(trigger) => LlamaSampler::grammar_lazy(model, &grammar, ROOT, [trigger.as_bytes()], &[]),
    };
    built.map_err(|e| BackendError::InvalidSchema {
        param: constraint.param,
        message: format!("the grammar built from this JSON schema does not load: {e}"),
    })
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
    use serde_json::json;

    use super::*;

    #[test]
    fn wraps_the_schema_in_its_literals() {
        let c = Constraint {
            prefix: "<tool_call>\n".into(),
            schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
            suffix: "\n</tool_call>".into(),
            trigger: None,
            param: "tools",
        };
        let g = gbnf(&c).unwrap();
        assert!(g.contains("chorus-root ::= \"<tool_call>\\n\" root \"\\n</tool_call>\""), "{g}");
        assert!(g.contains("root ::="));
    }

    #[test]
    fn unsupported_schema_is_a_client_error() {
        let c = Constraint {
            prefix: String::new(),
            schema: json!({"$ref": "#/definitions/missing"}),
            suffix: String::new(),
            trigger: None,
            param: "response_format",
        };
        let e = gbnf(&c).unwrap_err();
        assert!(e.is_client_error());
        assert!(matches!(e, BackendError::InvalidSchema { param: "response_format", .. }));
    }
}
