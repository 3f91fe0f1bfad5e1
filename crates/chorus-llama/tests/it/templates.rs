//! Renders real model chat templates (tests/data/templates) and compares the output byte for
//! byte with what Python jinja2 renders under Hugging Face transformers' settings (the
//! expected/ files, produced by tests/data/templates/generate_expected.py).

use std::fs;
use std::path::{Path, PathBuf};

use chorus_llama::template::{ChatTemplate, TemplateError};
use serde_json::{Value, json};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/templates")
}

fn read(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

fn load(template: &str, bos: &str, eos: &str) -> ChatTemplate {
    let source = read(&data_dir().join(template));
    match ChatTemplate::new(&source, bos, eos) {
        Ok(t) => t,
        Err(e) => panic!("{template} does not compile: {e}"),
    }
}

fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("case field {key} missing: {case}"))
}

/// Describes where two renderings first differ, with some context.
fn first_difference(expected: &str, actual: &str) -> String {
    let at = expected
        .char_indices()
        .zip(actual.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(expected.len().min(actual.len()));
    let from = expected[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
    format!(
        "first difference at byte {at}\n  expected: {:?}\n  actual:   {:?}",
        &expected[from..(at + 60).min(expected.len())],
        actual.get(from..(at + 60).min(actual.len())).unwrap_or(&actual[from.min(actual.len())..])
    )
}

#[test]
fn real_templates_render_like_python_jinja2() {
    let dir = data_dir();
    let cases: Value = match serde_json::from_str(&read(&dir.join("cases.json"))) {
        Ok(v) => v,
        Err(e) => panic!("cases.json: {e}"),
    };
    let cases = cases.as_array().map(Vec::as_slice).unwrap_or_default();
    assert!(cases.len() >= 10, "expected the case list, got {} cases", cases.len());

    let mut failures = Vec::new();
    let empty = serde_json::Map::new();
    for case in cases {
        let name = str_field(case, "name");
        let template = load(str_field(case, "template"), str_field(case, "bos_token"), str_field(case, "eos_token"));
        let add_generation_prompt = case["add_generation_prompt"].as_bool().unwrap_or(false);
        let extra = case.get("extra").and_then(Value::as_object).unwrap_or(&empty);
        let result = template.render_with(&case["messages"], case.get("tools"), add_generation_prompt, extra);

        let expected_ok = dir.join("expected").join(format!("{name}.txt"));
        let expected_err = dir.join("expected").join(format!("{name}.error.txt"));
        match (result, expected_ok.exists()) {
            (Ok(actual), true) => {
                let expected = read(&expected_ok);
                if actual != expected {
                    failures.push(format!("{name}: {}", first_difference(&expected, &actual)));
                }
            }
            (Err(TemplateError::Raised(message)), false) => {
                let expected = read(&expected_err);
                if message != expected {
                    failures.push(format!("{name}: raised {message:?}, expected {expected:?}"));
                }
            }
            (Ok(actual), false) => failures
                .push(format!("{name}: rendered {actual:?}, expected raise_exception({:?})", read(&expected_err))),
            (Err(e), _) => failures.push(format!("{name}: unexpected error {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{} case(s) differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn mistral_rejects_non_alternating_roles_with_its_message() {
    let template = load("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>");
    let result = template.render(
        &json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "assistant", "content": "Again"},
        ]),
        None,
        true,
    );
    match result {
        Err(e @ TemplateError::Raised(_)) => {
            assert_eq!(
                e.to_string(),
                "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."
            );
            assert!(e.is_client_error());
        }
        other => panic!("expected the template's exception, got {other:?}"),
    }
}

#[test]
fn llama_without_date_string_uses_strftime_now() {
    let template = load("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>");
    let rendered = match template.render(&json!([{"role": "user", "content": "Hi"}]), None, true) {
        Ok(text) => text,
        Err(e) => panic!("{e}"),
    };
    // strftime_now("%d %b %Y"), e.g. "21 Nov 2026".
    let date = rendered.split("Today Date: ").nth(1).and_then(|rest| rest.split('\n').next()).unwrap_or_default();
    let parts: Vec<&str> = date.split(' ').collect();
    assert_eq!(parts.len(), 3, "{rendered}");
    assert!(parts[0].len() == 2 && parts[0].bytes().all(|b| b.is_ascii_digit()), "{date}");
    assert!(parts[1].len() == 3 && parts[1].bytes().all(|b| b.is_ascii_alphabetic()), "{date}");
    assert!(parts[2].parse::<u32>().is_ok_and(|y| y >= 2024), "{date}");
    assert_ne!(date, "26 Jul 2024");
}

#[test]
fn qwen_renders_tool_calls_from_openai_argument_strings() {
    let template = load("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>");
    let rendered = template.render(
        &json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
        ]),
        Some(&json!([])),
        false,
    );
    let text = match rendered {
        Ok(text) => text,
        Err(e) => panic!("{e}"),
    };
    // An empty tools array is falsy: the plain system prompt is used.
    assert!(text.starts_with(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    ));
    assert!(
        text.ends_with(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
        ),
        "{text}"
    );
}

#[test]
fn real_templates_want_object_tool_arguments() {
    for (file, bos, eos) in [
        ("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>"),
        ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
        ("meta-llama-Llama-3.3-70B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
        ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
    ] {
        let template = load(file, bos, eos);
        assert!(template.requires_object_arguments(), "{file}");
        assert_eq!(template.source(), read(&data_dir().join(file)));
    }
}

/// The testkit's template: plain ChatML without tools, Hermes-style tool calling with them, and
/// the capability probes see it as a tool-calling template.
#[test]
fn testkit_template_is_chatml_with_hermes_tools() {
    let source = chorus_testkit::ModelSpec::tiny().chat_template.expect("the testkit writes a template");
    let template = ChatTemplate::new(&source, "", "").expect("compiles");
    assert!(template.supports_tools());
    assert!(template.requires_object_arguments());
    let plain = json!([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]);
    assert_eq!(
        template.render(&plain, None, true).expect("renders"),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let tools = json!([{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]);
    let calls = json!([
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"a\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "hello"},
    ]);
    let text = template.render(&calls, Some(&tools), true).expect("renders");
    assert!(text.starts_with("<|im_start|>system\nS\n\n# Tools\n"), "{text}");
    assert!(
        text.contains(r#"{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}"#),
        "{text}"
    );
    assert!(
        text.contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a\"}}\n</tool_call><|im_end|>\n"),
        "{text}"
    );
    assert!(
        text.ends_with("<|im_start|>user\n<tool_response>\nhello\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    );
}
