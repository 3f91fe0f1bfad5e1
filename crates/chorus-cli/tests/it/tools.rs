//! The agent loop on the real server with the testkit's scripted model
//! (`ModelSpec::scripted`): forced to call `read_file`, it asks for
//! `notes.md`; answering freely it says `OK`. So the loop's every step is
//! checked for real: the call, its permission, the tool run in the session's
//! work dir, the result fed back, the final answer. Path confinement,
//! `deny`, `ask` with an answer and `ask` timing out to deny.

use std::path::Path;

use chorus_client::{Client, ClientError, EventItem, SessionEvent};
use chorus_proto::native::{CreateSessionRequest, Event, Message, Priority, PromptRequest};
use chorus_proto::openai::{FunctionName, NamedToolChoice, ToolChoice, ToolType};
use chorus_testkit::server::TestServer;
use futures::StreamExt;
use serde_json::json;

use crate::{bin, client, runtime};

/// A server on the scripted model with extra flags.
pub(crate) fn scripted_server(extra: &[&str]) -> TestServer {
    let model = chorus_testkit::scripted_model_path();
    let model = model.to_str().expect("utf-8 temp path");
    let mut args = vec!["--model", model, "--threads", "2", "--ctx-size", "8192", "--parallel", "2"];
    args.extend_from_slice(extra);
    TestServer::start(bin(), &args)
}

/// A prompt that forces the agent's first round to call `read_file`.
pub(crate) fn read_notes() -> PromptRequest {
    PromptRequest {
        content: "Read my notes.".into(),
        stream: false,
        is_async: false,
        priority: Priority::Normal,
        max_tokens: Some(64),
        ignore_eos: false,
        tool_choice: Some(ToolChoice::Named(NamedToolChoice {
            kind: ToolType::Function,
            function: FunctionName { name: "read_file".into() },
        })),
    }
}

/// A work dir holding `notes.md` ("buy milk\n"), the file the scripted model's forced
/// `read_file` call names.
pub(crate) fn notes_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.md"), "buy milk\n").unwrap();
    work
}

pub(crate) async fn session_in(c: &Client, work_dir: &Path) -> String {
    let request = CreateSessionRequest {
        work_dir: Some(work_dir.to_str().expect("utf-8").to_owned()),
        ..CreateSessionRequest::default()
    };
    c.create_session(&request).await.unwrap().id
}

/// All events of a session until (and with) its `agent.idle` (waiting at most 60 s for each).
pub(crate) async fn events_until_idle(
    events: &mut (impl futures::Stream<Item = Result<EventItem, ClientError>> + Unpin),
) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let item = tokio::time::timeout(std::time::Duration::from_secs(60), events.next())
            .await
            .unwrap_or_else(|_| panic!("no agent.idle within 60 s; saw {seen:#?}"))
            .expect("the stream ended")
            .expect("an event");
        if let EventItem::Event(SessionEvent { event, .. }) = item {
            let idle = matches!(event, Event::AgentIdle { .. });
            seen.push(event);
            if idle {
                return seen;
            }
        }
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::kind).filter(|k| *k != "message.chunk").collect()
}

fn roles(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.role.as_str()).collect()
}

#[test]
fn session_loop_reads_a_file_and_answers() {
    let srv = scripted_server(&[]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        let answer = c.prompt(&id, &read_notes()).await.unwrap();
        assert_eq!(answer.content, "OK");
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));

        let seen = events_until_idle(&mut events).await;
        assert_eq!(
            kinds(&seen),
            [
                "session.status_changed",
                "message.start",
                "agent.thinking",
                "tool.call_start",
                "tool.call_complete",
                "agent.thinking",
                "message.complete",
                "session.status_changed",
                "agent.idle"
            ]
        );
        let output = seen.iter().find_map(|e| match e {
            Event::ToolCallComplete { name, output, .. } if name == "read_file" => Some(output.clone()),
            _ => None,
        });
        assert_eq!(output.as_deref(), Some("buy milk\n"));

        let messages = c.messages(&id).await.unwrap();
        assert_eq!(roles(&messages), ["user", "assistant", "tool", "assistant"]);
        let call = &messages[1].tool_calls[0];
        assert_eq!(
            (call.function.name.as_str(), call.function.arguments.as_str()),
            ("read_file", r#"{"path":"notes.md"}"#)
        );
        assert_eq!(messages[1].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(messages[2].tool_call_id.as_deref(), Some(call.id.as_str()));
        assert_eq!(messages[2].content, "buy milk\n");
    });
}

#[test]
fn a_symlink_out_of_the_work_dir_is_a_tool_error() {
    let srv = scripted_server(&[]);
    let c = client(&srv.url, None);
    let work = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.md"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.md"), work.path().join("notes.md")).unwrap();
    let id = runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        let answer = c.prompt(&id, &read_notes()).await.unwrap();
        assert_eq!(answer.content, "OK", "the loop goes on after a tool error");
        let seen = events_until_idle(&mut events).await;
        let error = seen.iter().find_map(|e| match e {
            Event::ToolCallError { code, error, .. } => Some((code.clone(), error.clone())),
            _ => None,
        });
        let (code, error) = error.expect("a tool.call_error");
        assert_eq!(code, "path_outside_work_dir");
        assert!(error.contains("outside the work dir"), "{error}");
        let messages = c.messages(&id).await.unwrap();
        assert!(messages[2].content.starts_with("error: "), "{}", messages[2].content);
        assert!(!messages[2].content.contains("secret\n") && messages[2].content != "secret");
        id
    });

    // The same confinement for direct execution: `..` and absolute paths elsewhere.
    let http = reqwest::blocking::Client::new();
    let secret = outside.path().join("secret.md");
    for path in ["../secret.md", secret.to_str().unwrap(), "notes.md"] {
        let body: serde_json::Value = http
            .post(format!("{}/api/v1/tools/read_file/execute", srv.url))
            .json(&json!({"arguments": {"path": path}, "session_id": id}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(body["code"], "path_outside_work_dir", "{path}: {body}");
        assert!(body["output"].is_null());
    }
}

#[test]
fn deny_refuses_and_the_model_is_told() {
    let srv = scripted_server(&["--tool-permission", "read_file=deny"]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        assert_eq!(c.prompt(&id, &read_notes()).await.unwrap().content, "OK");
        let seen = events_until_idle(&mut events).await;
        assert!(!kinds(&seen).contains(&"tool.call_start"), "a denied call never starts: {seen:#?}");
        assert!(seen.iter().any(|e| matches!(e, Event::ToolCallError { code, .. } if code == "permission_denied")));
        let messages = c.messages(&id).await.unwrap();
        assert!(messages[2].content.starts_with("error: permission denied"), "{}", messages[2].content);
    });
    // Direct execution of a denied tool is a 403 in OpenAI's error shape.
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/tools/read_file/execute", srv.url))
        .json(&json!({"arguments": {"path": "notes.md"}}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "permission_denied");
}

#[test]
fn ask_runs_the_tool_once_a_client_allows_it() {
    let srv = scripted_server(&["--tool-permission", "read_file=ask", "--permission-timeout", "60"]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        c.prompt_async(&id, &read_notes()).await.unwrap();
        let mut seen = Vec::new();
        let request_id = loop {
            let item = tokio::time::timeout(std::time::Duration::from_secs(60), events.next()).await.unwrap();
            if let Some(Ok(EventItem::Event(SessionEvent { event, .. }))) = item {
                if let Event::ToolPermissionRequest { request_id, call, timeout_ms, .. } = &event {
                    assert_eq!(call.function.name, "read_file");
                    assert_eq!(*timeout_ms, 60_000);
                    break request_id.clone();
                }
                seen.push(event);
            }
        };
        // An unknown request id is a 404; the real one is accepted once.
        let http = reqwest::Client::new();
        let url = |rid: &str| format!("{}/api/v1/sessions/{id}/permissions/{rid}", srv.url);
        let missing = http.post(url("call_nope")).json(&json!({"allow": true})).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let ok = http.post(url(&request_id)).json(&json!({"allow": true})).send().await.unwrap();
        assert_eq!(ok.status(), 204);
        let again = http.post(url(&request_id)).json(&json!({"allow": true})).send().await.unwrap();
        assert_eq!(again.status(), 404);

        let rest = events_until_idle(&mut events).await;
        assert!(rest.iter().any(|e| matches!(e, Event::ToolCallComplete { output, .. } if output == "buy milk\n")));
        let messages = c.messages(&id).await.unwrap();
        assert_eq!(roles(&messages), ["user", "assistant", "tool", "assistant"]);
        assert_eq!(messages[3].content, "OK");
    });
}

#[test]
fn ask_without_an_answer_times_out_to_deny() {
    let srv = scripted_server(&["--tool-permission", "read_file=ask", "--permission-timeout", "1"]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        assert_eq!(c.prompt(&id, &read_notes()).await.unwrap().content, "OK");
        let seen = events_until_idle(&mut events).await;
        let order: Vec<_> = kinds(&seen).into_iter().filter(|k| k.starts_with("tool.")).collect();
        assert_eq!(order, ["tool.permission_request", "tool.call_error"]);
        assert!(seen.iter().any(|e| matches!(e, Event::ToolCallError { code, .. } if code == "permission_timeout")));
        let messages = c.messages(&id).await.unwrap();
        assert!(messages[2].content.contains("no client answered"), "{}", messages[2].content);
    });
}

#[test]
fn tools_are_listed_with_their_policies() {
    let srv = scripted_server(&["--tool-permission", "run_command=deny"]);
    let body: serde_json::Value = reqwest::blocking::get(format!("{}/api/v1/tools", srv.url)).unwrap().json().unwrap();
    let policies: Vec<(String, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t["permission"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("read_file", "allow"),
        ("write_file", "ask"),
        ("list_dir", "allow"),
        ("search_files", "allow"),
        ("run_command", "deny"),
    ];
    assert_eq!(policies, expected.map(|(n, p)| (n.to_owned(), p.to_owned())));
    assert_eq!(body["data"][0]["parameters"]["required"], json!(["path"]));
}

#[test]
fn agents_and_policies_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    std::fs::write(
        &config,
        r#"
[[agents]]
name = "reader"
description = "reads files, never writes"
system_prompt = "You answer questions about the files in the work dir."
tools = ["read_file", "list_dir"]

[tools.permissions]
write_file = "deny"
"#,
    )
    .unwrap();
    let srv = scripted_server(&["--config", config.to_str().unwrap()]);
    let agents: serde_json::Value =
        reqwest::blocking::get(format!("{}/api/v1/agents", srv.url)).unwrap().json().unwrap();
    let names: Vec<&str> = agents["data"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "reader"]);
    assert_eq!(agents["data"][1]["tools"], json!(["read_file", "list_dir"]));
    assert_eq!(agents["data"][1]["system_prompt"], "You answer questions about the files in the work dir.");
    let tools: serde_json::Value = reqwest::blocking::get(format!("{}/api/v1/tools", srv.url)).unwrap().json().unwrap();
    assert_eq!(tools["data"][1]["name"], "write_file");
    assert_eq!(tools["data"][1]["permission"], "deny");

    // A session of the agent runs with its tools: the forced read works as with the default.
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let request = CreateSessionRequest {
            work_dir: Some(work.path().to_str().unwrap().to_owned()),
            agent: Some("reader".into()),
            ..CreateSessionRequest::default()
        };
        let id = c.create_session(&request).await.unwrap().id;
        assert_eq!(c.prompt(&id, &read_notes()).await.unwrap().content, "OK");
        let messages = c.messages(&id).await.unwrap();
        assert_eq!(messages[2].content, "buy milk\n");
    });
}

#[test]
fn a_bad_config_file_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    let model = chorus_testkit::scripted_model_path();
    // `serve` with `config` as its configuration file: its exit code and stderr.
    let serve = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(bin())
            .args(["serve", "--port", "0", "--no-control-socket", "--model", model.to_str().unwrap()])
            .args(["--config", config.to_str().unwrap()])
            .env("CHORUS_DATABASE_URL", format!("sqlite://{}", dir.path().join("c.db").display()))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = serve("[[agents]]\nname = \"x\"\ntools = [\"fly\"]\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("names the tool `fly`, which does not exist"), "{stderr}");
    let (code, stderr) = serve("[[agents]\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not valid") && stderr.contains("chorus.toml"), "{stderr}");
}
