//! `chorus attach URL [--session ID]`: a terminal on a server's session over
//! its WebSocket ([`SessionSocket`]). Each line read from stdin (a terminal or
//! a pipe) is a prompt; the answer streams to stdout as it arrives, with the
//! rest of the session's life, since the session is shared: prompts other
//! clients send (`> TEXT`) and their answers, and tool calls. A tool that asks
//! for permission is answered by the next line (`y` allows). `/cancel` cancels
//! the running prompt, `/quit` detaches at once, the end of input detaches
//! once this client's prompts are answered; a prompt belongs to its session,
//! so detaching never cancels one. Status lines (attached, queued,
//! reconnecting) go to stderr.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use chorus_client::{Client, ClientConfig, ClientError, RECONNECT_ATTEMPTS, SessionSocket, SocketItem, SocketRequests};
use chorus_proto::native::{Event, Priority, PromptRequest, ToolCall};
use chorus_proto::ws::Response;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::args::AttachArgs;

const HELP: &str = "type a prompt and press Enter; the answer streams here, with everything else the session does
/cancel   cancel the running prompt (and the ones queued behind it)
/quit     detach (also the end of input, once your prompts are answered); the session keeps running
/help     this list
a tool that asks for permission is answered by the next line: y allows, anything else refuses";

pub(crate) async fn run(args: AttachArgs) -> Result<()> {
    let client = Client::new(ClientConfig {
        url: args.url.clone(),
        api_key: args.api_key.clone(),
        timeout: Some(Duration::from_secs(args.timeout)),
    })?;
    let url = client.url().to_owned();
    let session = match &args.session {
        Some(id) => id.clone(),
        None => {
            let s = client.create_session(&Default::default()).await.map_err(|e| explain(e, &url, None))?;
            eprintln!("chorus: new session {}", s.id);
            s.id
        }
    };
    let socket = SessionSocket::connect(&client, &session).await.map_err(|e| explain(e, &url, Some(&session)))?;
    eprintln!("chorus: attached to session {session} at {url}; /help lists commands");
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let mut attach = Attach::new(socket.requests(), args.max_tokens, stdin_is_terminal);
    let result = attach.run(socket, stdin_lines()).await;
    result.map_err(|e| match e.downcast::<ClientError>() {
        Ok(e) => explain(e, &url, Some(&session)),
        Err(e) => e,
    })
}

/// An error with what to do about it.
fn explain(e: ClientError, url: &str, session: Option<&str>) -> anyhow::Error {
    match (&e, session) {
        (ClientError::Unreachable { .. } | ClientError::Timeout { .. }, _) => {
            anyhow!("{e}; is `chorus serve` running at {url}?")
        }
        (ClientError::Disconnected { .. }, Some(id)) => {
            anyhow!(
                "{e}; is `chorus serve` still running at {url}? `chorus attach {url} --session {id}` attaches again"
            )
        }
        (ClientError::Api { status, code, .. }, Some(id))
            if code.as_deref() == Some("session_not_found") || (*status == 404 && code.is_none()) =>
        {
            anyhow!(
                "no session `{id}` at {url}; `chorus sessions list --url {url}` lists them, and `chorus attach {url}` without --session starts a new one"
            )
        }
        (ClientError::Api { status: 401, .. }, _) => {
            anyhow!("{e}; pass the server's key with --api-key or CHORUS_API_KEY")
        }
        _ => e.into(),
    }
}

/// Lines of stdin, read on a thread of their own (a blocked read must not
/// hold up the exit); the channel closes at the end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A request of ours still waiting for its first answer.
enum Waiting {
    /// A prompt, until `queued` names it (its content, to recognise its events
    /// should they come first).
    Prompt(String),
    /// A cancel or a permission reply.
    Other,
}

/// A permission request waiting for a line.
struct Ask {
    request_id: String,
    call: ToolCall,
}

/// The state of one attached terminal.
struct Attach {
    requests: SocketRequests,
    max_tokens: Option<u32>,
    /// A terminal echoes what is typed; a pipe does not.
    stdin_is_terminal: bool,
    out: std::io::Stdout,
    /// Text was printed without its line's end.
    line_open: bool,
    /// Our requests without an answer yet, by request id.
    waiting: HashMap<String, Waiting>,
    /// Prompt requests whose answer may have been lost with a connection.
    lost: HashSet<String>,
    /// Our prompts not finished yet, by prompt id: whether they started.
    mine: HashMap<String, bool>,
    /// Prompts seen finishing, so a late `queued` does not wait for them.
    finished: HashSet<String>,
    /// Permission requests to answer, the first one asked.
    asking: VecDeque<Ask>,
    /// Stdin has ended.
    input_done: bool,
    /// The session was deleted: nothing more can happen in it.
    deleted: bool,
}

impl Attach {
    fn new(requests: SocketRequests, max_tokens: Option<u32>, stdin_is_terminal: bool) -> Self {
        Self {
            requests,
            max_tokens,
            stdin_is_terminal,
            out: std::io::stdout(),
            line_open: false,
            waiting: HashMap::new(),
            lost: HashSet::new(),
            mine: HashMap::new(),
            finished: HashSet::new(),
            asking: VecDeque::new(),
            input_done: false,
            deleted: false,
        }
    }

    /// Whether none of our prompts is waiting or running.
    fn idle(&self) -> bool {
        self.mine.is_empty() && !self.waiting.values().any(|w| matches!(w, Waiting::Prompt(_)))
    }

    async fn run(&mut self, mut socket: SessionSocket, mut lines: mpsc::UnboundedReceiver<String>) -> Result<()> {
        let mut failure: Option<ClientError> = None;
        loop {
            if self.input_done && self.idle() {
                self.end_line()?;
                socket.close().await;
                return Ok(());
            }
            tokio::select! {
                line = lines.recv(), if !self.input_done => match line {
                    Some(line) => {
                        if !self.line(line)? {
                            self.end_line()?;
                            if !self.idle() {
                                eprintln!("chorus: detached; the session goes on answering");
                            }
                            return Ok(());
                        }
                    }
                    None => self.end_of_input()?,
                },
                item = socket.next() => match item {
                    Some(Ok(item)) => {
                        self.item(item)?;
                        if self.deleted {
                            self.end_line()?;
                            bail!("the session {} was deleted", self.requests.session_id());
                        }
                    }
                    Some(Err(e @ ClientError::Protocol(_))) => {
                        self.end_line()?;
                        eprintln!("chorus: warning: {e}");
                    }
                    Some(Err(e)) => failure = Some(e),
                    None => {
                        self.end_line()?;
                        return Err(failure.unwrap_or(ClientError::Closed).into());
                    }
                },
            }
        }
    }

    /// One line of input; false to quit.
    fn line(&mut self, line: String) -> Result<bool> {
        if let Some(ask) = self.asking.pop_front() {
            let allow = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
            self.answer(&ask, allow)?;
            self.ask_next()?;
            return Ok(true);
        }
        let trimmed = line.trim();
        match trimmed {
            "" => {}
            "/quit" | "/exit" => return Ok(false),
            "/cancel" => {
                let id = self.requests.cancel()?;
                self.waiting.insert(id, Waiting::Other);
            }
            "/help" => eprintln!("{HELP}"),
            command if command.starts_with('/') && !command.contains(char::is_whitespace) => {
                eprintln!("chorus: unknown command {command}; /help lists them");
            }
            _ => {
                let prompt = PromptRequest {
                    content: line.clone(),
                    stream: false,
                    is_async: false,
                    priority: Priority::Normal,
                    max_tokens: self.max_tokens,
                    ignore_eos: false,
                    tool_choice: None,
                };
                let id = self.requests.send_prompt(&prompt)?;
                self.waiting.insert(id, Waiting::Prompt(line));
            }
        }
        Ok(true)
    }

    fn end_of_input(&mut self) -> Result<()> {
        self.input_done = true;
        // Nobody is left to answer: refuse rather than keep the tools waiting.
        while let Some(ask) = self.asking.pop_front() {
            self.end_line()?;
            writeln!(self.out, "(no input left)")?;
            self.answer(&ask, false)?;
        }
        if !self.idle() {
            self.end_line()?;
            eprintln!("chorus: end of input; detaching once the answer is complete");
        }
        Ok(())
    }

    fn answer(&mut self, ask: &Ask, allow: bool) -> Result<()> {
        if !self.stdin_is_terminal {
            // The answer was not echoed: close the question's line.
            self.end_line()?;
        }
        self.line_open = false;
        writeln!(self.out, "[{} {}]", if allow { "allowed" } else { "denied" }, ask.call.function.name)?;
        self.out.flush()?;
        let id = self.requests.permission_reply(&ask.request_id, allow)?;
        self.waiting.insert(id, Waiting::Other);
        Ok(())
    }

    /// Put the first waiting permission request's question.
    fn ask_next(&mut self) -> Result<()> {
        if let Some(ask) = self.asking.front() {
            let question = format!("Allow {}? [y/N] ", call_text(&ask.call));
            self.end_line()?;
            write!(self.out, "{question}")?;
            self.out.flush()?;
            self.line_open = true;
        }
        Ok(())
    }

    /// Drop a permission request that was settled elsewhere (another client
    /// answered, or the server stopped waiting).
    fn settled(&mut self, call_id: &str) -> Result<()> {
        let Some(i) = self.asking.iter().position(|a| a.request_id == call_id) else { return Ok(()) };
        self.asking.remove(i);
        if i == 0 {
            self.end_line()?;
            self.ask_next()?;
        }
        Ok(())
    }

    fn end_line(&mut self) -> std::io::Result<()> {
        if self.line_open {
            writeln!(self.out)?;
            self.out.flush()?;
            self.line_open = false;
        }
        Ok(())
    }

    fn print_line(&mut self, text: &str) -> std::io::Result<()> {
        let asking = self.asking.front().map(|a| format!("Allow {}? [y/N] ", call_text(&a.call)));
        self.end_line()?;
        writeln!(self.out, "{text}")?;
        if let Some(question) = asking {
            // Put the question again under what interrupted it.
            write!(self.out, "{question}")?;
            self.line_open = true;
        }
        self.out.flush()
    }

    fn finish(&mut self, prompt_id: &str) {
        self.mine.remove(prompt_id);
        self.finished.insert(prompt_id.to_owned());
    }

    fn item(&mut self, item: SocketItem) -> Result<()> {
        match item {
            SocketItem::Event(e) => self.event(e.event)?,
            SocketItem::Response { request_id, response } => {
                let ours = self.waiting.remove(&request_id).is_some() | self.lost.remove(&request_id);
                match response {
                    Response::Queued { prompt_id, queue_position, .. } if ours => {
                        if !self.finished.contains(&prompt_id) {
                            self.mine.entry(prompt_id).or_insert(false);
                        }
                        if queue_position > 0 {
                            self.end_line()?;
                            eprintln!("chorus: queued; {queue_position} prompt(s) run first");
                        }
                    }
                    Response::Cancelled { cancelled: false, dropped: 0 } => {
                        self.end_line()?;
                        eprintln!("chorus: nothing to cancel");
                    }
                    Response::Cancelled { dropped, .. } if dropped > 0 => {
                        self.end_line()?;
                        eprintln!("chorus: cancelled; {dropped} queued prompt(s) dropped");
                    }
                    // The answer's text and end arrive as events too.
                    _ => {}
                }
            }
            SocketItem::Error { request_id, error } => {
                // A prompt's failure after `queued` arrives as `message.error` too.
                let news = match &request_id {
                    Some(id) => self.waiting.remove(id).is_some() | self.lost.remove(id),
                    None => true,
                };
                if news {
                    self.end_line()?;
                    eprintln!("chorus: error: {}", error.message);
                }
            }
            SocketItem::Reconnecting { attempt, reason, .. } => {
                self.end_line()?;
                let what = if attempt == 1 { "connection lost" } else { "reconnecting failed" };
                eprintln!("chorus: {what} ({reason}); reconnecting, attempt {attempt} of {RECONNECT_ATTEMPTS}");
            }
            SocketItem::Reconnected { after } => {
                match after {
                    Some(id) => eprintln!("chorus: reconnected; resuming after event {id}"),
                    None => eprintln!("chorus: reconnected"),
                }
                // Answers to requests sent on the lost connection do not follow.
                let lost: Vec<String> = self
                    .waiting
                    .iter()
                    .filter(|(_, w)| matches!(w, Waiting::Prompt(_)))
                    .map(|(id, _)| id.clone())
                    .collect();
                if !lost.is_empty() {
                    eprintln!(
                        "chorus: a prompt sent as the connection dropped may be lost; its answer shows if it is not"
                    );
                }
                self.lost.extend(lost);
                self.waiting.clear();
            }
        }
        Ok(())
    }

    /// Whether a prompt that just started is ours: known by id, or, when its
    /// `queued` has not arrived yet, by content.
    fn claim(&mut self, prompt_id: &str, content: &str) -> bool {
        if let Some(started) = self.mine.get_mut(prompt_id) {
            *started = true;
            return true;
        }
        let request = self
            .waiting
            .iter()
            .find(|(_, w)| matches!(w, Waiting::Prompt(c) if c == content))
            .map(|(id, _)| id.clone());
        match request {
            Some(id) => {
                self.waiting.remove(&id);
                self.mine.insert(prompt_id.to_owned(), true);
                true
            }
            None => false,
        }
    }

    fn event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::MessageStart { prompt_id, user_message, .. } => {
                if !self.claim(&prompt_id, &user_message.content) {
                    self.print_line(&format!("> {}", user_message.content))?;
                }
            }
            Event::MessageChunk { content, .. } => {
                write!(self.out, "{content}")?;
                self.out.flush()?;
                if !content.is_empty() {
                    self.line_open = !content.ends_with('\n');
                }
            }
            Event::MessageComplete { prompt_id, message, .. } => {
                self.end_line()?;
                if message.finish_reason.as_deref() != Some("tool_calls") {
                    self.finish(&prompt_id);
                }
            }
            Event::MessageError { prompt_id, error, .. } => {
                let text = match error.code.as_deref() {
                    Some("cancelled") => "[cancelled]".to_owned(),
                    _ => format!("[error: {}]", error.message),
                };
                self.print_line(&text)?;
                self.finish(&prompt_id);
            }
            Event::AgentIdle { .. } => {
                // Nothing runs: every prompt of ours that started is done.
                self.mine.retain(|_, started| !*started);
            }
            Event::ToolCallStart { call, .. } => {
                self.settled(&call.id)?;
                self.print_line(&format!("[tool {}]", call_text(&call)))?;
            }
            Event::ToolCallComplete { name, output, .. } => {
                self.print_line(&format!("[tool {name} done: {} bytes]", output.len()))?;
            }
            Event::ToolCallError { call_id, name, error, code, .. } => {
                self.settled(&call_id)?;
                self.print_line(&format!("[tool {name} error ({code}): {error}]"))?;
            }
            Event::ToolPermissionRequest { request_id, call, .. } => {
                let ask = Ask { request_id, call };
                if self.input_done {
                    self.print_line(&format!("Allow {}? [y/N] (no input left)", call_text(&ask.call)))?;
                    self.answer(&ask, false)?;
                } else {
                    self.asking.push_back(ask);
                    if self.asking.len() == 1 {
                        self.ask_next()?;
                    }
                }
            }
            Event::SessionCompacted { messages_out_of_window, .. } => {
                self.print_line(&format!(
                    "[history compacted: the model now sees the newest turns; {messages_out_of_window} older messages are kept but not shown to it]"
                ))?;
            }
            Event::RouteDecided { route, .. } => {
                self.print_line(&format!(
                    "[routed to {} ({}, {})]",
                    route.model.as_deref().unwrap_or("no model"),
                    route.category,
                    route.stage
                ))?;
            }
            Event::CharacterUpdated { vitals, .. } if !vitals.is_empty() => {
                let line: Vec<String> = vitals
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect();
                self.print_line(&format!("[{}]", line.join(" · ")))?;
            }
            Event::CharacterRestored { snapshot, .. } => {
                let what = snapshot.map_or_else(|| "reset to its card".to_owned(), |s| format!("loaded `{s}`"));
                self.print_line(&format!("[the character was {what}]"))?;
            }
            Event::ConversationExchange { exchange, .. } => {
                self.print_line(&format!("{}: {}", exchange.speaker, exchange.message))?;
            }
            Event::SessionDeleted { .. } => self.deleted = true,
            Event::CharacterUpdated { .. }
            | Event::SessionCreated { .. }
            | Event::SessionUpdated { .. }
            | Event::SessionStatusChanged { .. }
            | Event::AgentThinking { .. }
            | Event::ModelLoading { .. }
            | Event::ModelLoaded { .. }
            | Event::ModelUnloaded { .. } => {}
        }
        Ok(())
    }
}

/// `read_file {"path":"a.txt"}`: a call as one short line (long arguments cut).
fn call_text(call: &ToolCall) -> String {
    const MAX: usize = 200;
    let arguments = call.function.arguments.trim();
    let arguments = match arguments.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &arguments[..cut]),
        None => arguments.to_owned(),
    };
    format!("{} {}", call.function.name, arguments.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use chorus_proto::native::{FunctionCall, ToolCall};

    use super::call_text;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "call_1".into(),
            kind: chorus_proto::openai::ToolType::Function,
            function: FunctionCall { name: name.into(), arguments: arguments.into() },
        }
    }

    #[test]
    fn tool_calls_print_on_one_short_line() {
        assert_eq!(call_text(&call("read_file", r#"{"path":"a.txt"}"#)), r#"read_file {"path":"a.txt"}"#);
        assert_eq!(call_text(&call("run", "{\n  \"cmd\": \"ls\"\n}")), r#"run {   "cmd": "ls" }"#);
        let long = call_text(&call("write_file", &format!(r#"{{"text":"{}"}}"#, "é".repeat(300))));
        assert_eq!(long.chars().count(), "write_file ".len() + 200 + 1);
        assert!(long.ends_with('…'));
    }
}
