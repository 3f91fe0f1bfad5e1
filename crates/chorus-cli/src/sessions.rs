//! `chorus sessions list|show|delete` and `chorus ask --session ID`: the
//! server's sessions from the terminal (embedded mode when no server runs,
//! on the same store a server would use).

use std::io::Write;

use anyhow::Result;
use chorus_proto::native::{Event, Priority, PromptRequest, Session, SessionStatus};
use futures::StreamExt;

use crate::args::{SessionsArgs, SessionsCommand};
use crate::target::{self, Target};

pub(crate) async fn run(args: SessionsArgs) -> Result<()> {
    let (SessionsCommand::List { target: flags }
    | SessionsCommand::Show { target: flags, .. }
    | SessionsCommand::Delete { target: flags, .. }) = &args.command;
    let target = target::connect(&flags.connect, &flags.model).await?;
    let result = command(&target, args.command).await;
    target.close().await;
    result
}

async fn command(target: &Target, command: SessionsCommand) -> Result<()> {
    let client = &target.client;
    match command {
        SessionsCommand::List { .. } => {
            let sessions = client.sessions().await?;
            if sessions.is_empty() {
                println!("no sessions; `chorus ask --session new \"…\"` starts one");
                return Ok(());
            }
            println!("{:<36}  {:<9}  {:>8}  {:<8}  TITLE", "ID", "STATUS", "MESSAGES", "AGENT");
            for s in sessions {
                println!("{:<36}  {:<9}  {:>8}  {:<8}  {}", s.id, status(&s), s.message_count, s.agent, s.title);
            }
        }
        SessionsCommand::Show { id, .. } => {
            let s = client.session(&id).await?;
            println!("id:        {}", s.id);
            println!("title:     {}", s.title);
            println!("status:    {}", status(&s));
            println!("agent:     {}", s.agent);
            println!("model:     {}", s.model.as_deref().unwrap_or("(server default)"));
            println!("work_dir:  {}", s.work_dir);
            println!("messages:  {}", s.message_count);
            println!(
                "tokens:    {} prompt, {} completion",
                s.token_usage.prompt_tokens, s.token_usage.completion_tokens
            );
            for m in client.messages(&id).await? {
                println!("\n[{}] {}", m.role, m.content);
            }
        }
        SessionsCommand::Delete { id, .. } => {
            client.delete_session(&id).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

fn status(s: &Session) -> &'static str {
    match s.status {
        SessionStatus::Idle => "idle",
        SessionStatus::Busy => "busy",
        SessionStatus::Cancelled => "cancelled",
        SessionStatus::Error => "error",
    }
}

/// `chorus ask --session ID "…"`: the prompt goes to a session (`new` creates
/// one, whose id is printed on stderr); the answer streams to stdout.
pub(crate) async fn ask(target: &Target, session: &str, content: String, max_tokens: Option<u32>) -> Result<()> {
    let client = &target.client;
    let id = if session == "new" {
        let s = client.create_session(&Default::default()).await?;
        eprintln!("chorus: session {}", s.id);
        s.id
    } else {
        session.to_owned()
    };
    let request = PromptRequest {
        content,
        stream: true,
        is_async: false,
        priority: Priority::Normal,
        max_tokens,
        ignore_eos: false,
        tool_choice: None,
    };
    let mut events = client.prompt_stream(&id, &request).await?;
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        match event?.event {
            Event::MessageChunk { content, .. } => {
                out.write_all(content.as_bytes())?;
                out.flush()?;
            }
            Event::MessageError { error, .. } => {
                writeln!(out)?;
                anyhow::bail!("the session's answer failed: {}", error.message);
            }
            _ => {}
        }
    }
    writeln!(out)?;
    Ok(())
}
