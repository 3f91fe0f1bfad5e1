//! The OpenAI API through the real client: chat (plain and streamed),
//! completions, usage, `finish_reason`, stop sequences, seeds, batching and
//! prefix reuse.

use chorus_proto::openai::{ChunkUsage, FinishReason, Stop, StreamOptions};
use futures::StreamExt;

use crate::{chat, client, greedy, runtime, server};

#[test]
fn chat_plain_and_streamed_agree_and_count_usage() {
    let srv = server(&[]);
    runtime().block_on(async {
        let c = client(&srv.url, None);
        let req = greedy(chat("Tell me about the sea", 12));
        let plain = c.chat(&req).await.expect("chat");
        let choice = &plain.choices[0];
        assert_eq!(choice.finish_reason, FinishReason::Length);
        let text = choice.message.content.clone().expect("content");
        assert!(!text.is_empty());
        assert_eq!(plain.usage.completion_tokens, 12);
        assert!(plain.usage.prompt_tokens > 5, "chat template tokens are counted");
        assert_eq!(plain.usage.total_tokens, plain.usage.prompt_tokens + 12);

        let mut req_s = req.clone();
        req_s.stream_options = Some(StreamOptions { include_usage: true });
        let mut stream = c.chat_stream(&req_s).await.expect("stream");
        let (mut streamed, mut finish, mut usage, mut after_usage) = (String::new(), None, None, 0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("chunk");
            if usage.is_some() {
                after_usage += 1;
            }
            for ch in &chunk.choices {
                streamed.push_str(ch.delta.content.as_deref().unwrap_or(""));
                finish = finish.or(ch.finish_reason);
            }
            match chunk.usage {
                ChunkUsage::Counts(u) => {
                    assert!(chunk.choices.is_empty(), "the usage chunk has no choices");
                    usage = Some(u);
                }
                ChunkUsage::Null => {}
                ChunkUsage::Absent => panic!("include_usage: every chunk carries a usage field"),
            }
        }
        assert_eq!(streamed, text, "greedy streamed text equals the plain text");
        assert_eq!(finish, Some(FinishReason::Length));
        let usage = usage.expect("a usage chunk");
        assert_eq!(usage.completion_tokens, 12);
        assert_eq!(after_usage, 0, "the usage chunk is the last one");
        // The same prompt again reuses the cached prefix.
        let cached = usage.prompt_tokens_details.expect("details").cached_tokens;
        assert!(cached > 0 && cached < usage.prompt_tokens, "prefix reuse: cached {cached} of {}", usage.prompt_tokens);
    });
}

#[test]
fn completions_take_a_string_or_an_array() {
    let srv = server(&[]);
    let http = reqwest::blocking::Client::new();
    let one: serde_json::Value = http
        .post(format!("{}/v1/completions", srv.url))
        .json(&serde_json::json!({"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}))
        .send()
        .and_then(|r| r.json())
        .expect("completion");
    assert_eq!(one["object"], "text_completion");
    assert_eq!(one["choices"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["usage"]["completion_tokens"], 5);
    assert_eq!(one["choices"][0]["finish_reason"], "length");

    let many: serde_json::Value = http
        .post(format!("{}/v1/completions", srv.url))
        .json(&serde_json::json!({"prompt": ["Once upon a time", "The cat"], "max_tokens": 4, "temperature": 0}))
        .send()
        .and_then(|r| r.json())
        .expect("completion");
    let choices = many["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[1]["index"], 1);
    assert!(choices.iter().all(|c| c["text"].is_string() && c["finish_reason"] == "length"));
    assert_eq!(many["usage"]["completion_tokens"], 8);

    let streamed = http
        .post(format!("{}/v1/completions", srv.url))
        .json(&serde_json::json!({"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "stream": true}))
        .send()
        .and_then(|r| r.text())
        .expect("stream");
    let text: String = streamed
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).expect("json event")["choices"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(text, one["choices"][0]["text"].as_str().expect("text"));
    assert!(streamed.trim_end().ends_with("data: [DONE]"));
}

#[test]
fn stop_sequence_spanning_tokens_never_reaches_the_client() {
    let srv = server(&[]);
    runtime().block_on(async {
        let c = client(&srv.url, None);
        let req = greedy(chat("Write a long story", 40));
        // Find a boundary between two streamed pieces to build a stop sequence across it.
        let mut stream = c.chat_stream(&req).await.expect("stream");
        let mut pieces = Vec::new();
        while let Some(chunk) = stream.next().await {
            for ch in chunk.expect("chunk").choices {
                if let Some(t) = ch.delta.content.filter(|t| !t.is_empty()) {
                    pieces.push(t);
                }
            }
        }
        let full: String = pieces.concat();
        let k = (3..pieces.len() - 1)
            .find(|&k| pieces[k].chars().count() >= 2 && pieces[k + 1].chars().count() >= 1)
            .expect("two usable pieces");
        let tail: String = pieces[k].chars().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
        let head: String = pieces[k + 1].chars().take(2).collect();
        let stop = format!("{tail}{head}");
        let expected = &full[..full.find(&stop).expect("stop occurs")];

        let mut req_stop = req.clone();
        req_stop.stop = Some(Stop::Many(vec!["never-there".into(), stop.clone()]));
        let plain = c.chat(&req_stop).await.expect("chat");
        assert_eq!(plain.choices[0].message.content.as_deref(), Some(expected));
        assert_eq!(plain.choices[0].finish_reason, FinishReason::Stop);

        let mut stream = c.chat_stream(&req_stop).await.expect("stream");
        let (mut streamed, mut finish) = (String::new(), None);
        while let Some(chunk) = stream.next().await {
            for ch in chunk.expect("chunk").choices {
                let piece = ch.delta.content.unwrap_or_default();
                assert!(!piece.contains(&stop));
                streamed.push_str(&piece);
                finish = finish.or(ch.finish_reason);
            }
        }
        assert_eq!(streamed, expected);
        assert_eq!(finish, Some(FinishReason::Stop));
    });
}

#[test]
fn same_seed_same_text() {
    let srv = server(&[]);
    runtime().block_on(async {
        let c = client(&srv.url, None);
        let mut req = chat("Say something", 24);
        req.sampling.temperature = Some(1.0);
        req.sampling.seed = Some(42);
        let a = c.chat(&req).await.expect("chat").choices[0].message.content.clone();
        let b = c.chat(&req).await.expect("chat").choices[0].message.content.clone();
        assert_eq!(a, b);
        req.sampling.seed = Some(43);
        let other = c.chat(&req).await.expect("chat").choices[0].message.content.clone();
        assert_ne!(a, other, "a different seed samples differently");
    });
}

#[test]
fn eight_concurrent_requests_complete_batched_together() {
    let srv = server(&["--parallel", "8"]);
    runtime().block_on(async {
        let c = client(&srv.url, None);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut req = chat(&format!("Request number {i}"), 48);
                    req.sampling.ignore_eos = Some(true);
                    let mut stream = c.chat_stream(&req).await.expect("stream");
                    let mut finish = None;
                    while let Some(chunk) = stream.next().await {
                        for ch in chunk.expect("chunk").choices {
                            finish = finish.or(ch.finish_reason);
                        }
                    }
                    finish
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("task"), Some(FinishReason::Length));
        }
        let health = c.health().await.expect("health");
        assert_eq!(health.slots.total, 8);
        assert_eq!(health.slots.busy, 0);
        assert!(
            health.decode.max_sequences >= 2,
            "the server decoded at most {} sequences in one step",
            health.decode.max_sequences
        );
    });
}
