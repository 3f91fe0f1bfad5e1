//! The control socket and `chorus ctl`: status as text and JSON, the socket's
//! mode, a second server refused while the first lives, a stale socket
//! replaced, a graceful `chorus ctl shutdown`, and the error when no server
//! runs. Every socket lives in a temp dir of the test's own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, server};

/// `chorus ctl ARGS…` with `XDG_RUNTIME_DIR` set to `runtime_dir` and no
/// `CHORUS_CONTROL_SOCKET`, so the socket is found as a user's would be.
fn ctl(runtime_dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("ctl")
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env_remove("CHORUS_CONTROL_SOCKET")
        .output()
        .expect("run chorus ctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `chorus serve` on the tiny model with `args`, for servers that must refuse
/// to start: its output once it exits; a panic if it is still running after 60 s.
fn serve_refused(args: &[&str]) -> Output {
    let data = tempfile::tempdir().expect("temp dir");
    let model = chorus_testkit::tiny_model_path();
    let mut child = Command::new(bin())
        .args(["serve", "--port", "0", "--threads", "2", "--model"])
        .arg(&model)
        .args(args)
        .env_remove("CHORUS_API_KEY")
        .env_remove("CHORUS_CONTROL_SOCKET")
        .env("XDG_RUNTIME_DIR", data.path())
        .env("CHORUS_DATABASE_URL", format!("sqlite://{}?mode=rwc", data.path().join("chorus.db").display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chorus serve");
    let start = Instant::now();
    while child.try_wait().expect("wait for chorus serve").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("the server started instead of refusing; its stdout: {}", text(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn ctl_status_finds_the_server_and_reports_it() {
    // Sizes of its own, so the test does not depend on the suite's defaults.
    let srv = server(&["--ctx-size", "8192", "--parallel", "2", "--no-kv-unified"]);
    let socket = srv.control_socket.clone().expect("a control socket");
    assert_eq!(socket, srv.dir().join("chorus/chorus.sock"), "the default path under XDG_RUNTIME_DIR");
    // One HTTP request and one session for the status to count.
    let http = reqwest::blocking::Client::new();
    let created = http.post(format!("{}/api/v1/sessions", srv.url)).json(&serde_json::json!({})).send().unwrap();
    assert!(created.status().is_success(), "{}", created.status());

    let out = ctl(srv.dir(), &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "status:    running".to_owned(),
        format!("pid:       {}", srv.pid()),
        format!("url:       {}", srv.url),
        "uptime:".to_owned(),
        "sessions:  1 (0 busy, 0 prompts queued)".to_owned(),
        "model:     tiny (llama".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "`{expected}` missing from:\n{stdout}");
    }

    // The flag names the socket as well as the default does.
    let out = ctl(Path::new("/nonexistent"), &["status", "--json", "--control-socket", socket.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(status["pid"], srv.pid());
    assert_eq!(status["state"], "running");
    assert_eq!(status["url"], srv.url.as_str());
    assert_eq!(status["sessions"]["total"], 1);
    assert_eq!(status["queue_depth"], 0);
    assert_eq!(status["models"][0]["id"], "tiny");
    assert_eq!(status["models"][0]["n_ctx"], 8192);
    assert_eq!(status["models"][0]["n_ctx_slot"], 4096);
    assert_eq!(status["slots"]["total"], 2);
    assert!(status["requests_total"].as_u64().unwrap() >= 1, "the session request is counted: {status}");
    assert!(status["uptime_s"].is_u64() && status["version"].is_string(), "{status}");
}

#[test]
fn the_control_socket_is_only_for_its_owner() {
    let srv = server(&[]);
    let socket = srv.control_socket.clone().expect("a control socket");
    let meta = std::fs::metadata(&socket).expect("the control socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode {:o}", meta.permissions().mode());
    let dir = std::fs::metadata(socket.parent().unwrap()).expect("its directory");
    assert_eq!(dir.permissions().mode() & 0o077, 0, "the directory it created is private");
}

#[test]
fn a_second_server_refuses_a_live_servers_socket() {
    let srv = server(&[]);
    let socket = srv.control_socket.clone().expect("a control socket");
    let out = serve_refused(&["--control-socket", socket.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("another chorus server is running")
            && stderr.contains(socket.to_str().unwrap())
            && stderr.contains("chorus ctl shutdown")
            && stderr.contains("--control-socket"),
        "{stderr}"
    );
    // The first server keeps its socket.
    let out = ctl(srv.dir(), &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], srv.pid());
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chorus.sock");
    std::fs::write(&path, "not a socket").unwrap();
    let out = serve_refused(&["--control-socket", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is not a socket"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chorus.sock");
    // A server that died: its socket file stays, nothing listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let refused = std::os::unix::net::UnixStream::connect(&path).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "the socket is stale");
    let out = ctl(dir.path(), &["status", "--control-socket", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stale"), "{}", text(&out.stderr));

    let srv = server(&["--control-socket", path.to_str().unwrap()]);
    let out = ctl(dir.path(), &["status", "--json", "--control-socket", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], srv.pid());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn ctl_shutdown_stops_the_server_gracefully() {
    let mut srv = server(&[]);
    let socket = srv.control_socket.clone().expect("a control socket");
    let out = ctl(srv.dir(), &["shutdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("chorus server (pid {}) stopped", srv.pid())), "{}", text(&out.stdout));
    let status = srv.wait(Duration::from_secs(30)).expect("the server exits");
    assert_eq!(status.code(), Some(0), "stderr: {}", srv.stderr());
    assert!(!socket.exists(), "the socket file is removed");
    assert!(srv.stderr().contains("shutdown asked for on the control socket"), "{}", srv.stderr());
}

#[test]
fn ctl_without_a_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["status", "shutdown"] {
        let out = ctl(dir.path(), &[command]);
        assert_eq!(out.status.code(), Some(1), "ctl {command}");
        let stderr = text(&out.stderr);
        let expected = dir.path().join("chorus/chorus.sock");
        assert!(
            stderr.contains("no chorus server is running")
                && stderr.contains(expected.to_str().unwrap())
                && stderr.contains("chorus serve"),
            "ctl {command}: {stderr}"
        );
    }
    // Without XDG_RUNTIME_DIR the socket is in the data dir.
    let out = Command::new(bin())
        .args(["ctl", "status"])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("CHORUS_CONTROL_SOCKET")
        .env("XDG_DATA_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected = dir.path().join("chorus/chorus.sock");
    assert!(text(&out.stderr).contains(expected.to_str().unwrap()), "{}", text(&out.stderr));
}

#[test]
fn embedded_mode_opens_no_control_socket() {
    assert!(
        std::net::TcpStream::connect("127.0.0.1:4096").is_err(),
        "something listens on 127.0.0.1:4096, the default URL; stop it to test embedded mode"
    );
    let runtime = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let model = chorus_testkit::tiny_model_path();
    let out = Command::new(bin())
        .args(["ask", "--max-tokens", "3", "--model"])
        .arg(&model)
        .arg("Hi")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("XDG_DATA_HOME", data.path())
        .env_remove("CHORUS_CONTROL_SOCKET")
        .env_remove("CHORUS_DATABASE_URL")
        .env_remove("CHORUS_URL")
        .env_remove("CHORUS_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("embedded mode"));
    // Binding the socket would have created RUNTIME/chorus/, which stays after the socket is removed.
    assert!(!runtime.path().join("chorus").exists(), "embedded mode opened a control socket");
}
