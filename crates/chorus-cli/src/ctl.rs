//! `chorus ctl status|shutdown`: talk to the local server through its control
//! socket, found where `chorus serve` puts it by default ([`default_socket`])
//! unless `--control-socket` or `CHORUS_CONTROL_SOCKET` names another.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chorus_client::ControlClient;
use chorus_proto::control::{ServerState, Status};

use crate::args::{CtlArgs, CtlCommand};

/// How long one control call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `chorus serve` puts its control socket and `chorus ctl` looks for
/// it: `$XDG_RUNTIME_DIR/chorus/chorus.sock`, else `chorus.sock` in the
/// platform data dir (`~/.local/share/chorus` on Linux).
pub(crate) fn default_socket() -> Result<PathBuf> {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(runtime).join("chorus").join("chorus.sock"));
    }
    let dirs = directories::ProjectDirs::from("", "", "chorus")
        .context("no data directory on this platform; pass --control-socket PATH")?;
    Ok(dirs.data_dir().join("chorus.sock"))
}

pub(crate) async fn run(args: CtlArgs) -> Result<()> {
    let path = match args.control_socket {
        Some(path) => path,
        None => default_socket()?,
    };
    let client = ControlClient::new(path, CALL_TIMEOUT)?;
    match args.command {
        CtlCommand::Status { json } => {
            let status = client.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status, &client);
            }
            Ok(())
        }
        CtlCommand::Shutdown { timeout } => shutdown(&client, Duration::from_secs(timeout)).await,
    }
}

fn print_status(s: &Status, client: &ControlClient) {
    let state = match s.state {
        ServerState::Running => "running",
        ServerState::ShuttingDown => "shutting down",
    };
    println!("status:    {state}");
    println!("pid:       {}", s.pid);
    println!("version:   {}", s.version);
    println!("url:       {}", s.url);
    match s.uptime_s {
        0..60 => println!("uptime:    {}s", s.uptime_s),
        secs => println!("uptime:    {} ({secs}s)", human_duration(secs)),
    }
    println!("requests:  {}", s.requests_total);
    println!(
        "sessions:  {} ({} busy, {} prompts queued)",
        s.sessions.total, s.sessions.busy, s.sessions.queued_prompts
    );
    println!("slots:     {} busy / {} total, {} requests waiting", s.slots.busy, s.slots.total, s.slots.queued);
    println!("queue:     {}", s.queue_depth);
    for m in &s.models {
        println!(
            "model:     {} ({}, {} tokens of context, {} per slot, {} slots) {}",
            m.id, m.architecture, m.n_ctx, m.n_ctx_slot, m.n_parallel, m.path
        );
    }
    println!("socket:    {}", client.path().display());
}

/// `3723` → `1h 2m 3s`.
fn human_duration(s: u64) -> String {
    match (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, min, sec) => format!("{min}m {sec}s"),
        (0, h, min, sec) => format!("{h}h {min}m {sec}s"),
        (d, h, min, _) => format!("{d}d {h}h {min}m"),
    }
}

/// Ask for a shutdown, then wait until the server is gone: its socket removed
/// or nothing answering on it.
async fn shutdown(client: &ControlClient, timeout: Duration) -> Result<()> {
    let accepted = client.shutdown().await?;
    eprintln!("chorus: the server (pid {}) is shutting down; waiting for it to stop", accepted.pid);
    let start = Instant::now();
    loop {
        match client.status().await {
            Err(e) if e.is_not_running() => break,
            // Still stopping; a connection cut as the socket closes is not an answer either.
            Ok(_) | Err(_) => {}
        }
        if start.elapsed() >= timeout {
            bail!(
                "the server (pid {}) is still shutting down after {}s (in-flight requests get `chorus serve --shutdown-timeout` seconds); check again with `chorus ctl status`",
                accepted.pid,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("chorus server (pid {}) stopped", accepted.pid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(61), "1m 1s");
        assert_eq!(human_duration(3723), "1h 2m 3s");
        assert_eq!(human_duration(90_061), "1d 1h 1m");
    }
}
