//! Answers: plain and streamed text, completions, tool calls, cancellation.

use chorus_engine::tools::{ToolCallParser, ToolChoice};
use chorus_engine::{
    Backend, ChatMessage, FinishReason, FunctionDefinition, GenerateRequest, GenerationEvent, Prompt, Role, ToolCall,
    ToolFormat, Usage,
};
use futures::StreamExt;
use serde_json::json;

use crate::mock::{CHAT, COMPLETIONS, Mock, Reply, chunk, until, usage};
use crate::{backend, backend_with, chat, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_answer_is_collected_with_the_upstreams_usage() {
    let mock = Mock::start().await;
    let backend = backend_with(&[&mock.url], |c| {
        c.model = Some("served-upstream".into());
        c.api_key = Some("sekret".into());
    });
    let answer = backend.generate(chat(&backend, "hi")).unwrap().collect().await.unwrap();
    assert_eq!(answer.text, "Hello world");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.usage, Usage { prompt_tokens: 7, completion_tokens: 2, cached_tokens: 2, ..Usage::default() });
    assert!(answer.tool_calls.is_empty());
    let sent = &mock.state.received(CHAT)[0];
    assert_eq!(sent.body["model"], "served-upstream");
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent.body["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(sent.authorization.as_deref(), Some("Bearer sekret"));
    until("the request is counted out", || backend.stats().slots_busy == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_comes_piece_by_piece() {
    let mock = Mock::start().await;
    mock.state.reply(CHAT, Reply::Events(crate::mock::chat_text(&["One", ", two", ", three"], "length")));
    let backend = backend(&[&mock.url]);
    let mut stream = backend.generate(chat(&backend, "count")).unwrap();
    let mut pieces = Vec::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event {
            GenerationEvent::Text(t) => pieces.push(t),
            GenerationEvent::Done { finish_reason, usage } => done = Some((finish_reason, usage)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pieces, ["One", ", two", ", three"]);
    let (finish, usage) = done.unwrap();
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(usage.completion_tokens, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_prompt_goes_to_completions() {
    let mock = Mock::start().await;
    let backend = backend(&[&mock.url]);
    let mut r = GenerateRequest::new(Prompt::Text("Once upon".into()));
    r.max_tokens = Some(5);
    r.stop = vec!["\n".into()];
    let answer = backend.generate(request(&backend, r)).unwrap().collect().await.unwrap();
    assert_eq!(answer.text, "Hello world");
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(answer.usage.prompt_tokens, 3);
    assert_eq!(mock.state.count(CHAT), 0);
    let sent = &mock.state.received(COMPLETIONS)[0];
    assert_eq!(sent.body["prompt"], "Once upon");
    assert_eq!(sent.body["max_tokens"], 5);
    assert_eq!(sent.body["stop"], json!(["\n"]));
    assert_eq!(sent.body["model"], "up-model");
}

fn weather_tool() -> FunctionDefinition {
    FunctionDefinition {
        name: "get_weather".into(),
        description: Some("The weather in a city".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        strict: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_tool_call_pieces_become_whole_calls() {
    let mock = Mock::start().await;
    let call_start = |index: u32, id: &str, name: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            None,
        )
    };
    let args = |index: u32, text: &str| {
        chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]}), None)
    };
    // Content that a Hermes parser would take for a call: the upstream said it is content.
    let look_alike = r#"{"name": "get_weather", "arguments": {}}"#;
    mock.state.reply(
        CHAT,
        Reply::Events(vec![
            chunk(json!({"role": "assistant", "content": look_alike}), None),
            call_start(0, "call_paris", "get_weather"),
            args(0, "{\"city\": "),
            args(0, "\"Paris\"}"),
            call_start(1, "call_rome", "get_weather"),
            args(1, "{\"city\": \"Rome\"}"),
            chunk(json!({}), Some("tool_calls")),
            usage(30, 12),
            "[DONE]".into(),
        ]),
    );
    let backend = backend(&[&mock.url]);
    let mut assistant = ChatMessage::new(Role::Assistant, "");
    assistant.tool_calls = vec![ToolCall { id: "call_0".into(), name: "get_weather".into(), arguments: "{}".into() }];
    let mut result = ChatMessage::new(Role::Tool, "sunny");
    result.tool_call_id = Some("call_0".into());
    let mut r = GenerateRequest::new(Prompt::Chat(vec![
        ChatMessage::new(Role::User, "Weather in Paris and Rome?"),
        assistant,
        result,
    ]));
    r.tools = vec![weather_tool()];
    r.tool_choice = ToolChoice::Required;
    // What the engine does with a request with tools.
    let parser = ToolCallParser::new(ToolFormat::Hermes, &r.tools);
    let stream = backend.generate(request(&backend, r)).unwrap().with_parser(parser);
    let answer = stream.collect().await.unwrap();
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.text, look_alike, "the engine's parser must not run over an upstream's text");
    assert_eq!(
        answer.tool_calls,
        vec![
            ToolCall { id: "call_paris".into(), name: "get_weather".into(), arguments: r#"{"city": "Paris"}"#.into() },
            ToolCall { id: "call_rome".into(), name: "get_weather".into(), arguments: r#"{"city": "Rome"}"#.into() },
        ]
    );
    assert_eq!(answer.usage.prompt_tokens, 30);
    let body = &mock.state.received(CHAT)[0].body;
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["messages"][1]["content"], serde_json::Value::Null);
    assert_eq!(body["messages"][1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(body["messages"][2]["role"], "tool");
    assert_eq!(body["messages"][2]["tool_call_id"], "call_0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_the_upstream_request() {
    let mock = Mock::start().await;
    mock.state.reply(CHAT, Reply::EventsThenHang(vec![chunk(json!({"content": "Thinking"}), None)]));
    let backend = backend(&[&mock.url]);
    let mut stream = backend.generate(chat(&backend, "hi")).unwrap();
    assert!(matches!(stream.next().await, Some(GenerationEvent::Text(t)) if t == "Thinking"));
    assert_eq!(backend.stats().slots_busy, 1);
    drop(stream);
    until("the upstream sees the client leave", || mock.state.disconnected.load(std::sync::atomic::Ordering::SeqCst))
        .await;
    until("the request is counted out", || backend.stats().slots_busy == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_stream_is_read_whole() {
    let mock = Mock::start().await;
    let whole = json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "up",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Looking.",
            "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}],
        }}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
    });
    mock.state.reply(CHAT, Reply::Status(200, whole.to_string()));
    let backend = backend(&[&mock.url]);
    let mut r = GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "Oslo?")]));
    r.tools = vec![weather_tool()];
    let answer = backend.generate(request(&backend, r)).unwrap().collect().await.unwrap();
    assert_eq!(answer.text, "Looking.");
    assert_eq!(
        answer.tool_calls,
        vec![ToolCall { id: "call_x".into(), name: "get_weather".into(), arguments: r#"{"city":"Oslo"}"#.into() }]
    );
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.usage, Usage { prompt_tokens: 11, completion_tokens: 4, ..Usage::default() });
}
