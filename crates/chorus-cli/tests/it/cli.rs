//! The CLI as a person uses it: `ask` (argument and stdin), `health`,
//! embedded mode, and the error for an unreachable `--url`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::{bin, server};

/// Run `chorus ARGS` (with `stdin` piped in, when given) with its own data dir and none of
/// the user's chorus environment.
pub(crate) fn chorus(args: &[&str], stdin: Option<&str>) -> Output {
    // Embedded mode opens a session store: keep it out of the user's data dir.
    let data = tempfile::tempdir().expect("temp data dir");
    let mut child = Command::new(bin())
        .args(args)
        .env("XDG_DATA_HOME", data.path())
        .env_remove("CHORUS_DATABASE_URL")
        .env_remove("CHORUS_URL")
        .env_remove("CHORUS_API_KEY")
        .env_remove("CHORUS_MODEL")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chorus");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("chorus output")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ask_streams_and_reads_stdin() {
    let srv = server(&[]);
    let out = chorus(&["ask", "--url", &srv.url, "--max-tokens", "6", "Hello there"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());

    let out = chorus(&["ask", "--url", &srv.url, "--max-tokens", "6", "--no-stream"], Some("a prompt from a pipe\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());

    let out = chorus(&["ask", "--url", &srv.url], None);
    assert_eq!(out.status.code(), Some(2), "no prompt is a usage error");
}

#[test]
fn health_reports_the_model() {
    let srv = server(&[]);
    let out = chorus(&["health", "--url", &srv.url], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("status:   ok") && stdout.contains("model:"), "{stdout}");
}

#[test]
fn embedded_mode_runs_when_no_server_answers() {
    assert!(
        std::net::TcpStream::connect("127.0.0.1:4096").is_err(),
        "something listens on 127.0.0.1:4096, the default URL; stop it to test embedded mode"
    );
    let model = chorus_testkit::tiny_model_path();
    let model = model.to_str().expect("utf-8 path");
    let out = chorus(&["ask", "--model", model, "--max-tokens", "5", "Hi"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("embedded mode"));
    assert!(!text(&out.stdout).trim().is_empty());
}

#[test]
fn an_unreachable_url_fails_with_advice() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let out = chorus(&["ask", "--url", &url, "Hi"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach") && stderr.contains("chorus serve"), "{stderr}");
    let out = chorus(&["health", "--url", &url], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ask_in_a_session_then_list_show_and_delete_it() {
    let srv = server(&[]);
    let out = chorus(&["ask", "--url", &srv.url, "--session", "new", "--max-tokens", "4", "Remember this"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("ses_"))
        .unwrap_or_else(|| panic!("the new session's id on stderr: {stderr}"))
        .to_owned();

    // A second prompt goes to the same session.
    let out = chorus(&["ask", "--url", &srv.url, "--session", &id, "--max-tokens", "4", "And this"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = chorus(&["sessions", "list", "--url", &srv.url], None);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&id) && stdout.contains("idle"), "{stdout}");
    let out = chorus(&["sessions", "show", &id, "--url", &srv.url], None);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("messages:  4")
            && stdout.contains("[user] Remember this")
            && stdout.contains("[user] And this")
            && stdout.matches("[assistant]").count() == 2,
        "{stdout}"
    );

    let out = chorus(&["sessions", "delete", &id, "--url", &srv.url], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = chorus(&["sessions", "show", &id, "--url", &srv.url], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let out = chorus(&["ask", "--url", &srv.url, "--session", &id, "x"], None);
    assert_eq!(out.status.code(), Some(1), "a prompt to a deleted session fails");
}
