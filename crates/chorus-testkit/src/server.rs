//! [`TestServer`]: the real `chorus serve` process on `127.0.0.1:0`, for
//! end-to-end tests. It waits for the `chorus listening on URL` line, keeps the
//! server's stderr in a file for failure messages, and kills the process on
//! drop. Its control socket is in a temp dir of its own (the server's
//! `XDG_RUNTIME_DIR`), never the user's.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `chorus serve`.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    /// Base URL, such as `http://127.0.0.1:40123`.
    pub url: String,
    /// The control socket, unless ARGS hold `--no-control-socket`.
    pub control_socket: Option<PathBuf>,
    stderr: PathBuf,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Start `bin serve --port 0 ARGS…` and wait until it listens (at most 60 s).
    /// Its session store is a SQLite file in a temp dir of its own unless ARGS
    /// name a `--database-url`; that dir is also its data dir (prompt snapshots)
    /// unless ARGS name a `--data-dir`, and its `XDG_RUNTIME_DIR`, so its
    /// control socket is `DIR/chorus/chorus.sock` unless ARGS name a
    /// `--control-socket`.
    ///
    /// # Panics
    /// When the server does not start; the message holds its stderr.
    pub fn start(bin: &Path, args: &[&str]) -> Self {
        Self::start_with_env(bin, args, &[])
    }

    /// [`TestServer::start`] with more environment variables for the server (e.g.
    /// `XDG_CACHE_HOME`, so its model cache is the test's own); they win over the ones
    /// `start` sets.
    ///
    /// # Panics
    /// When the server does not start; the message holds its stderr.
    pub fn start_with_env(bin: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the server's logs");
        let stderr = dir.path().join("stderr.log");
        let err_file = std::fs::File::create(&stderr).expect("server stderr file");
        let control_socket = if args.contains(&"--no-control-socket") {
            None
        } else {
            let flag = args.iter().position(|a| *a == "--control-socket").and_then(|i| args.get(i + 1));
            Some(flag.map_or_else(|| dir.path().join("chorus").join("chorus.sock"), PathBuf::from))
        };
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .env_remove("CHORUS_API_KEY")
            .env_remove("CHORUS_CONTROL_SOCKET")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("CHORUS_DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("chorus.db").display()))
            .env("CHORUS_DATA_DIR", dir.path())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .expect("spawn chorus serve");
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("chorus listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Self { child, url, control_socket, stderr, dir },
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                panic!("chorus serve did not start; its stderr:\n{log}");
            }
        }
    }

    /// The temp dir the server runs in: its `XDG_RUNTIME_DIR`, where its logs,
    /// store and control socket are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`TERM`, `INT`) with the system's `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Wait for the process to exit (at most `timeout`); `None` if it did not.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // The test failed: show what the server said (its last 8 KiB).
            let log = self.stderr();
            let tail = &log[log.len().saturating_sub(8192)..];
            let tail = tail.get(tail.find('\n').map_or(0, |i| i + 1)..).unwrap_or(tail);
            eprintln!("--- chorus serve stderr (tail) ---\n{tail}--- end ---");
        }
    }
}
