//! chorus as an MCP client, end to end: `[[mcp.servers]]` in chorus.toml runs the testkit's
//! stdio MCP server (`chorus-testkit mcp-server`: `lookup`, read-only, and `crash`, which exits
//! the process), and the scripted model, forced to call `kit.lookup`, gets its answer through the
//! agent loop. The server starts on first need, shows in `GET /api/v1/tools`, `GET
//! /api/v1/mcp/servers` and `chorus mcp list`; when it crashes it is restarted and reported
//! while chorus keeps answering; a server whose command does not exist is `failed` and breaks
//! nothing; the MCP server's process ends with chorus.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chorus_proto::native::{Event, McpServer, McpServerStatus, Priority, PromptRequest};
use chorus_proto::openai::{FunctionName, NamedToolChoice, ToolChoice, ToolType};
use chorus_testkit::mcp_server::lookup_text;
use chorus_testkit::server::TestServer;

use crate::tools::{events_until_idle, notes_dir, scripted_server, session_in};
use crate::{bin, client, runtime};

/// The testkit binary, built next to `chorus` (`cargo test --workspace` builds it).
fn testkit_bin() -> PathBuf {
    let path = bin().with_file_name("chorus-testkit");
    assert!(
        path.is_file(),
        "{} is missing: these tests run `chorus-testkit mcp-server`; `cargo test --workspace` builds it (or `cargo build -p chorus-testkit --bin chorus-testkit`)",
        path.display()
    );
    path
}

/// A scripted-model server whose chorus.toml has the MCP servers `kit` (the testkit's, its
/// `crash` allowed) and `ghost` (a command that does not exist). The file's directory is returned
/// with it (it must live as long as the server).
fn server_with_mcp() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    let text = format!(
        r#"
[tools.permissions]
"kit.crash" = "allow"

[[mcp.servers]]
name = "kit"
command = "{}"
args = ["mcp-server"]

[[mcp.servers]]
name = "ghost"
command = "/nonexistent/chorus-test-mcp-server"
"#,
        testkit_bin().display()
    );
    std::fs::write(&config, text).unwrap();
    let srv = scripted_server(&["--config", config.to_str().unwrap()]);
    (srv, dir)
}

/// A prompt whose first round must call `tool`.
fn forcing(tool: &str) -> PromptRequest {
    PromptRequest {
        content: "Look it up.".into(),
        stream: false,
        is_async: false,
        priority: Priority::Normal,
        max_tokens: Some(256),
        ignore_eos: false,
        tool_choice: Some(ToolChoice::Named(NamedToolChoice {
            kind: ToolType::Function,
            function: FunctionName { name: tool.into() },
        })),
    }
}

fn server<'a>(servers: &'a [McpServer], name: &str) -> &'a McpServer {
    servers.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no MCP server {name} in {servers:#?}"))
}

/// Processes whose parent is `pid` (from /proc).
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after its `)`.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn an_agent_calls_a_tool_of_an_mcp_server() {
    let (mut srv, _config) = server_with_mcp();
    let c = client(&srv.url, None);
    let work = tempfile::tempdir().unwrap();
    assert!(children(srv.pid()).is_empty(), "no MCP server starts with chorus");
    runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        let answer = c.prompt(&id, &forcing("kit.lookup")).await.unwrap();
        assert_eq!(answer.content, "OK");

        let seen = events_until_idle(&mut events).await;
        let started = seen.iter().find_map(|e| match e {
            Event::ToolCallStart { call, .. } => Some(call.function.clone()),
            _ => None,
        });
        let started = started.unwrap_or_else(|| panic!("no tool.call_start in {seen:#?}"));
        assert_eq!((started.name.as_str(), started.arguments.as_str()), ("kit.lookup", r#"{"path":"notes.md"}"#));
        let output = seen.iter().find_map(|e| match e {
            Event::ToolCallComplete { name, output, .. } if name == "kit.lookup" => Some(output.clone()),
            _ => None,
        });
        assert_eq!(output, Some(lookup_text("notes.md")), "{seen:#?}");

        let messages = c.messages(&id).await.unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
        assert_eq!(messages[2].content, lookup_text("notes.md"));
    });

    // The tools list has the server's tools, with their policies; the ghost has none.
    let tools: serde_json::Value = reqwest::blocking::get(format!("{}/api/v1/tools", srv.url)).unwrap().json().unwrap();
    let listed: Vec<(&str, &str)> = tools["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["permission"].as_str().unwrap()))
        .collect();
    // In the server's order; `crash` is allowed by the file, `lookup` as read-only.
    assert_eq!(listed[5..], [("kit.crash", "allow"), ("kit.lookup", "allow")], "{listed:?}");
    assert_eq!(tools["data"][6]["parameters"]["properties"]["path"]["type"], "string");

    // `chorus mcp list`: the table, then the JSON.
    let out = Command::new(bin()).args(["mcp", "list", "--url", &srv.url]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SERVER") && lines[0].contains("STATUS") && lines[0].ends_with("TOOLS"), "{table}");
    let kit = lines.iter().find(|l| l.starts_with("kit ")).unwrap_or_else(|| panic!("{table}"));
    assert!(kit.contains(" stdio ") && kit.contains(" running ") && kit.ends_with("kit.crash, kit.lookup"), "{table}");
    let ghost = lines.iter().position(|l| l.starts_with("ghost ")).unwrap_or_else(|| panic!("{table}"));
    assert!(lines[ghost].contains(" failed "), "{table}");
    assert!(lines[ghost + 1].contains("error: cannot run `/nonexistent/chorus-test-mcp-server`"), "{table}");
    let out = Command::new(bin()).args(["mcp", "list", "--json", "--url", &srv.url]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["data"][0]["name"], "kit");
    assert_eq!(list["data"][0]["status"], "running");
    assert_eq!(list["data"][0]["tools"], serde_json::json!(["kit.crash", "kit.lookup"]));
    assert_eq!(list["data"][1]["status"], "failed");

    // Its stderr is in chorus's log, not on chorus's stdout.
    assert!(srv.stderr().contains("mcp stderr: chorus-testkit mcp-server: ready"), "{}", srv.stderr());

    // It ends with chorus.
    let mcp_children = children(srv.pid());
    assert_eq!(mcp_children.len(), 1, "one MCP server process: {mcp_children:?}");
    srv.signal("TERM");
    assert!(srv.wait(Duration::from_secs(30)).is_some(), "chorus did not stop");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(mcp_children[0]) {
        assert!(Instant::now() < deadline, "the MCP server outlived chorus");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_crashing_mcp_server_is_restarted_and_reported() {
    let (srv, _config) = server_with_mcp();
    let c = client(&srv.url, None);
    let work = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let id = session_in(&c, work.path()).await;
        let mut events = c.events(Some(&id), None).await.unwrap();
        // The call kills the server: the model is told, the prompt goes on.
        let answer = c.prompt(&id, &forcing("kit.crash")).await.unwrap();
        assert_eq!(answer.content, "OK", "the loop goes on after a tool error");
        let seen = events_until_idle(&mut events).await;
        let error = seen.iter().find_map(|e| match e {
            Event::ToolCallError { name, error, code, .. } if name == "kit.crash" => {
                Some((code.clone(), error.clone()))
            }
            _ => None,
        });
        let (code, error) = error.unwrap_or_else(|| panic!("no tool.call_error in {seen:#?}"));
        assert_eq!(code, "unavailable", "{error}");
        assert!(error.contains("the MCP server `kit` exited during the call"), "{error}");
        c.health().await.expect("chorus keeps answering");

        // It is restarted (after its backoff delay) and reported.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let servers = c.mcp_servers().await.unwrap().data;
            let kit = server(&servers, "kit");
            if kit.status == McpServerStatus::Running && kit.restarts >= 1 {
                assert_eq!(kit.tools, ["kit.crash", "kit.lookup"]);
                break;
            }
            assert!(Instant::now() < deadline, "kit was not restarted: {kit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // And works again.
        let answer = c.prompt(&id, &forcing("kit.lookup")).await.unwrap();
        assert_eq!(answer.content, "OK");
        let messages = c.messages(&id).await.unwrap();
        assert_eq!(messages[messages.len() - 2].content, lookup_text("notes.md"));
    });
    let log = srv.stderr();
    assert!(log.contains("mcp server kit exited; restarting in 0.5 s"), "{log}");
    assert!(log.contains("chorus-testkit mcp-server: crashing (notes.md)"), "{log}");
}

#[test]
fn a_server_that_cannot_start_breaks_no_prompt() {
    let (srv, _config) = server_with_mcp();
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let servers = c.mcp_servers().await.unwrap().data;
        let ghost = server(&servers, "ghost");
        assert_eq!((ghost.status, ghost.transport.as_str()), (McpServerStatus::Failed, "stdio"));
        assert!(ghost.tools.is_empty());
        let error = ghost.error.as_deref().unwrap();
        assert!(error.contains("cannot run `/nonexistent/chorus-test-mcp-server`"), "{error}");

        // A prompt with the built-in tools works, and so does one with the other server's.
        let id = session_in(&c, work.path()).await;
        assert_eq!(c.prompt(&id, &forcing("read_file")).await.unwrap().content, "OK");
        assert_eq!(c.prompt(&id, &forcing("kit.lookup")).await.unwrap().content, "OK");
        let messages = c.messages(&id).await.unwrap();
        assert_eq!(messages[2].content, "buy milk\n");
        assert_eq!(messages[6].content, lookup_text("notes.md"));
    });
}
