//! `chorus converse`: an AI-to-AI conversation (`POST /api/v1/conversations`, streamed) between
//! characters (`--character`) and ad-hoc personalities (`--participant "NAME: PERSONALITY"`),
//! each exchange printed to stdout as `NAME: message` as it arrives, the session that stores it
//! named on stderr at the end. Ctrl-C stops it on the server (`…/cancel`). The server is the
//! `--url` one, the local one, or an embedded one, as for `ask`.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chorus_client::{ClientError, ConversationEvent};
use chorus_proto::character::{Conversation, ConversationRequest, Participant};
use futures::StreamExt;

use crate::args::ConverseArgs;
use crate::target::{self, Target};

/// How long to wait for the server's `done` after Ctrl-C before giving up on it.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// `NAME: PERSONALITY` as a participant.
fn participant(spec: &str) -> Result<Participant, String> {
    let (name, personality) = spec
        .split_once(':')
        .map(|(n, p)| (n.trim(), p.trim()))
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            format!(
                "--participant `{spec}` is not \"NAME: PERSONALITY\"; for example --participant \"Ada: a curious \
                 mathematician who loves puzzles\""
            )
        })?;
    Ok(Participant { character: None, name: Some(name.into()), personality: Some(personality.into()), model: None })
}

/// The request the flags describe; a usage error says what to change.
fn request(args: &ConverseArgs, model: Option<&str>) -> Result<ConversationRequest, String> {
    let topic = args.topic.as_deref().map(str::trim).unwrap_or_default();
    if topic.is_empty() {
        return Err("no topic: chorus converse --participant \"A: …\" --participant \"B: …\" \"a topic\"".into());
    }
    let mut participants: Vec<Participant> = args
        .characters
        .iter()
        .map(|c| Participant { character: Some(c.clone()), name: None, personality: None, model: None })
        .collect();
    for spec in &args.participants {
        participants.push(participant(spec)?);
    }
    if participants.len() < 2 {
        return Err(format!(
            "a conversation needs at least two participants, {} given: add --character NAME (see `chorus characters \
             list`) or --participant \"NAME: PERSONALITY\"",
            participants.len()
        ));
    }
    for p in &mut participants {
        p.model = model.map(str::to_owned);
    }
    Ok(ConversationRequest {
        participants,
        topic: topic.to_owned(),
        turns: args.turns,
        max_tokens: args.max_tokens,
        stream: true,
    })
}

/// Returns `Ok(false)` for a usage error.
pub(crate) async fn run(args: ConverseArgs) -> Result<bool> {
    // Checked before connecting: an embedded server takes a while to start.
    if let Err(usage) = request(&args, None) {
        eprintln!("chorus: {usage}");
        return Ok(false);
    }
    let target = target::connect(&args.connect, &args.model).await?;
    let result = match request(&args, target.model.as_deref()) {
        Ok(request) => converse(&target, &request).await,
        Err(usage) => Err(anyhow::anyhow!(usage)),
    };
    target.close().await;
    result.map(|()| true)
}

/// What a refused request should say.
fn explain(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api { status: 400, message, .. } => {
            anyhow::anyhow!("{message} (participants are numbered from 0: the --character ones first)")
        }
        ClientError::Api { status: 404, code: Some(code), message, .. } if code == "model_not_found" => {
            anyhow::anyhow!("{message}; `chorus models ps` lists the server's models")
        }
        other => other.into(),
    }
}

async fn converse(target: &Target, request: &ConversationRequest) -> Result<()> {
    let client = &target.client;
    let mut events = client.converse(request).await.map_err(explain)?;
    let mut out = std::io::stdout();
    let mut session: Option<String> = None;
    let mut printed = 0usize;
    let mut failure: Option<ClientError> = None;
    let mut stopping = false;
    let mut done: Option<Conversation> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            biased;
            result = &mut ctrl_c, if !stopping => {
                result.context("cannot listen for Ctrl-C")?;
                stopping = true;
                eprintln!("\nchorus: stopping the conversation…");
                if let Some(id) = &session {
                    client.cancel_conversation(id).await.context("cannot stop the conversation")?;
                }
                continue;
            }
            event = tokio::time::timeout(if stopping { STOP_WAIT } else { Duration::MAX }, events.next()) => match event {
                Ok(event) => event,
                Err(_) => break,
            },
        };
        match event {
            Some(Ok(ConversationEvent::Started(started))) => {
                if stopping {
                    client.cancel_conversation(&started.session_id).await.context("cannot stop the conversation")?;
                }
                session = Some(started.session_id);
            }
            Some(Ok(ConversationEvent::Exchange(exchange))) => {
                if printed > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "{}: {}", exchange.speaker, exchange.message.trim())?;
                out.flush()?;
                printed += 1;
            }
            Some(Ok(ConversationEvent::Done(conversation))) => {
                done = Some(conversation);
            }
            Some(Err(e @ ClientError::Api { status: 200, .. })) => failure = Some(e),
            Some(Err(e)) => return Err(e).context("the conversation's stream broke off (it goes on on the server)"),
            None => break,
        }
    }
    let id = session.as_deref().unwrap_or("(unknown)");
    match (done.as_ref().map(|c| c.status.as_str()), failure) {
        (_, Some(e)) => {
            eprintln!("chorus: session {id}");
            bail!("{e}; the {printed} exchanges before it are kept in session {id} (`chorus sessions show {id}`)")
        }
        (Some("cancelled"), None) => {
            eprintln!("chorus: stopped after {printed} exchanges; session {id}");
            Ok(())
        }
        (Some(_), None) => {
            eprintln!("chorus: session {id} keeps the conversation (`chorus sessions show {id}`)");
            Ok(())
        }
        (None, None) => {
            eprintln!("chorus: session {id}");
            bail!(
                "the server ended the stream before the conversation ended; `curl …/api/v1/conversations/{id}` shows \
                 where it stands"
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(characters: &[&str], participants: &[&str], topic: Option<&str>) -> ConverseArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            a: ConverseArgs,
        }
        let mut argv = vec!["chorus".to_owned()];
        for c in characters {
            argv.extend(["--character".to_owned(), (*c).to_owned()]);
        }
        for p in participants {
            argv.extend(["--participant".to_owned(), (*p).to_owned()]);
        }
        argv.extend(topic.map(str::to_owned));
        Wrap::try_parse_from(argv).unwrap().a
    }

    #[test]
    fn flags_become_a_request() {
        let r =
            request(&args(&["seraphina"], &["Ada: a curious mathematician: loves puzzles"], Some(" tea ")), Some("m"))
                .unwrap();
        assert_eq!(r.topic, "tea");
        assert!(r.stream);
        assert_eq!(r.participants[0].character.as_deref(), Some("seraphina"));
        assert_eq!(r.participants[1].name.as_deref(), Some("Ada"));
        assert_eq!(r.participants[1].personality.as_deref(), Some("a curious mathematician: loves puzzles"));
        assert!(r.participants.iter().all(|p| p.model.as_deref() == Some("m")));
    }

    #[test]
    fn usage_errors_say_what_to_do() {
        assert!(request(&args(&[], &["A: x", "B: y"], None), None).unwrap_err().contains("no topic"));
        assert!(request(&args(&[], &["A: x"], Some("t")), None).unwrap_err().contains("at least two"));
        assert!(request(&args(&[], &["A x", "B: y"], Some("t")), None).unwrap_err().contains("NAME: PERSONALITY"));
        assert!(request(&args(&[], &["A:  ", "B: y"], Some("t")), None).is_err());
    }
}
