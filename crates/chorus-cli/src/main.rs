//! The `chorus` binary: parses flags, sets up logging, and hands each command
//! to its module. Exit codes: 0 success, 1 error, 2 usage.

mod args;
mod ask;
mod attach;
mod character_chat;
mod characters;
mod chat;
mod config;
mod converse;
mod ctl;
mod health;
mod mcp;
mod model;
mod models;
mod pull;
mod registry;
mod route_cmd;
mod router;
mod saved;
mod serve;
mod sessions;
mod target;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs its work; client commands (whose stdout and stderr are the user's
    // conversation) keep llama.cpp's own log off the terminal unless -v or RUST_LOG asks.
    // llama-cpp-2 logs llama.cpp's lines under the target `llama-cpp-2`.
    let default_filter = match (&cli.command, cli.verbose) {
        (_, 2..) => "debug",
        (_, 1) => "info",
        (Command::Serve(_), 0) => "info,llama-cpp-2=warn",
        (_, 0) => "warn,llama-cpp-2=off",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chorus: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(a) => serve::run(a).await.map(|()| true),
            Command::Ask(a) => ask::run(a).await,
            Command::Converse(a) => converse::run(a).await,
            Command::Chat(a) => chat::run(a).await.map(|()| true),
            Command::Health(a) => health::run(a).await.map(|()| true),
            Command::Route(a) => route_cmd::run(a).await,
            Command::Sessions(a) => sessions::run(a).await.map(|()| true),
            Command::Ctl(a) => ctl::run(a).await.map(|()| true),
            Command::Attach(a) => attach::run(a).await.map(|()| true),
            Command::Mcp(a) => mcp::run(a).await.map(|()| true),
            Command::Models(a) => models::run(a).await.map(|()| true),
            Command::Pull(a) => pull::run(a).await.map(|()| true),
            Command::Characters(a) => characters::run(a).map(|()| true),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("chorus: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
