//! `chorus chat`: a REPL over one conversation. Line editing and history come
//! from reedline (history in the platform data dir); when stdin is not a
//! terminal, lines are read plainly so scripts can drive it. Ctrl-C stops the
//! answer being streamed, not the program; Ctrl-D or `/exit` leaves. After each
//! answer, the model that gave it (the router's choice when no `--model` names one)
//! is shown on stderr as `[model]`, so stdout holds only the answers.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use chorus_proto::openai::{ChatMessage, Role};
use futures::StreamExt;
use reedline::{DefaultPrompt, DefaultPromptSegment, FileBackedHistory, Reedline, Signal};

use crate::args::ChatArgs;
use crate::ask::{message, request};
use crate::target::{self, Target};

const HELP: &str = "/exit          leave (also Ctrl-D)
/clear         forget the conversation (keeps the system prompt)
/system TEXT   set the system prompt and start over
/help          this list
Ctrl-C stops an answer that is streaming.";

/// Where the next line comes from.
pub(crate) enum Input {
    Editor(Box<Reedline>, DefaultPrompt),
    Plain(std::io::StdinLock<'static>),
}

impl Input {
    pub(crate) fn new() -> Self {
        if !std::io::stdin().is_terminal() {
            return Input::Plain(std::io::stdin().lock());
        }
        let mut editor = Reedline::create();
        if let Some(dirs) = directories::ProjectDirs::from("", "", "chorus") {
            let path = dirs.data_dir().join("chat-history.txt");
            let _ = std::fs::create_dir_all(dirs.data_dir());
            if let Ok(history) = FileBackedHistory::with_file(1000, path) {
                editor = editor.with_history(Box::new(history));
            }
        }
        let prompt = DefaultPrompt::new(DefaultPromptSegment::Basic("you".into()), DefaultPromptSegment::Empty);
        Input::Editor(Box::new(editor), prompt)
    }

    /// The next line; `None` at the end of input.
    pub(crate) fn read(&mut self) -> Result<Option<String>> {
        match self {
            Input::Editor(editor, prompt) => loop {
                match tokio::task::block_in_place(|| editor.read_line(prompt))? {
                    Signal::Success(line) => return Ok(Some(line)),
                    Signal::CtrlC => continue,
                    Signal::CtrlD => return Ok(None),
                    _ => continue,
                }
            },
            Input::Plain(stdin) => {
                let mut line = String::new();
                if tokio::task::block_in_place(|| stdin.read_line(&mut line))? == 0 {
                    return Ok(None);
                }
                Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
            }
        }
    }
}

pub(crate) async fn run(args: ChatArgs) -> Result<()> {
    if args.character.is_some() {
        return crate::character_chat::run(args).await;
    }
    let target = target::connect(&args.connect, &args.model).await?;
    let result = repl(&target, &args).await;
    target.close().await;
    result
}

async fn repl(target: &Target, args: &ChatArgs) -> Result<()> {
    let mut system = args.generate.system.clone();
    let mut history: Vec<ChatMessage> = Vec::new();
    let mut input = Input::new();
    eprintln!("chorus chat on {}; /help lists commands", target.client.url());
    while let Some(line) = input.read()? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
            match name {
                "exit" | "quit" => break,
                "clear" => {
                    history.clear();
                    eprintln!("(conversation cleared)");
                }
                "system" => {
                    system = Some(rest.trim().to_owned()).filter(|s| !s.is_empty());
                    history.clear();
                    eprintln!("(system prompt set; conversation cleared)");
                }
                "help" => eprintln!("{HELP}"),
                _ => eprintln!("unknown command /{name}; /help lists commands"),
            }
            continue;
        }
        history.push(message(Role::User, line));
        let mut messages: Vec<ChatMessage> = system.iter().map(|s| message(Role::System, s)).collect();
        messages.extend(history.iter().cloned());
        let req = request(target, &args.generate, messages);
        match stream_answer(target, &req).await {
            Ok(text) => history.push(ChatMessage::text(Role::Assistant, text)),
            Err(e) => {
                history.pop();
                eprintln!("chorus: {e:#}");
            }
        }
    }
    Ok(())
}

/// Stream one answer to stdout, then the model that answered on stderr (`[model]`); Ctrl-C
/// ends it early (the partial text is kept).
async fn stream_answer(target: &Target, req: &chorus_proto::openai::ChatCompletionRequest) -> Result<String> {
    let mut chunks = target.client.chat_stream(req).await?;
    let mut out = std::io::stdout();
    let mut text = String::new();
    // The chunks' `model`: the server names the routed model there.
    let mut model = String::new();
    loop {
        tokio::select! {
            chunk = chunks.next() => match chunk {
                Some(chunk) => {
                    let chunk = chunk?;
                    if model.is_empty() && !chunk.model.is_empty() {
                        model = chunk.model;
                    }
                    for choice in chunk.choices {
                        if let Some(delta) = choice.delta.content {
                            out.write_all(delta.as_bytes())?;
                            out.flush()?;
                            text.push_str(&delta);
                        }
                    }
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\n(stopped)");
                break;
            }
        }
    }
    writeln!(out)?;
    out.flush()?;
    if !model.is_empty() {
        eprintln!("[{model}]");
    }
    Ok(text)
}
