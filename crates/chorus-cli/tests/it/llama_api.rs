//! llama-server's native endpoints and its unprefixed OpenAI routes, on the tiny model: what
//! llama-server's own clients and server tests send (llama.cpp `tools/server/README.md`).

use serde_json::{Value, json};

use crate::server;

async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{url}{path}")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{url}{path}")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn tokenize_detokenize_and_pieces() {
    let srv = server(&[]);
    let url = &srv.url;
    let content = "What is the capital of France ?";
    let (status, tok) = post(url, "/tokenize", json!({"content": content})).await;
    assert_eq!(status, 200, "{tok}");
    let ids: Vec<i64> = tok["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
    assert!(ids.len() > 5, "{tok}");
    let (status, detok) = post(url, "/detokenize", json!({"tokens": ids})).await;
    assert_eq!(status, 200);
    assert_eq!(detok["content"].as_str().unwrap().trim(), content);

    // A character of three bytes is split into byte tokens: their pieces are bytes, not text.
    let (_, pieces) = post(url, "/tokenize", json!({"content": "a 媽", "with_pieces": true})).await;
    let pieces = pieces["tokens"].as_array().unwrap().clone();
    assert_eq!(pieces[0]["piece"], "a", "{pieces:?}");
    let bytes: Vec<u8> = pieces[2..]
        .iter()
        .flat_map(|p| p["piece"].as_array().unwrap().clone())
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, "媽".as_bytes(), "{pieces:?}");
    assert!(pieces.iter().all(|p| p["id"].as_i64().unwrap() > 0));

    // Special tokens written in the text are parsed unless parse_special is false.
    let (_, special) = post(url, "/tokenize", json!({"content": "<|im_start|>"})).await;
    let (_, plain) = post(url, "/tokenize", json!({"content": "<|im_start|>", "parse_special": false})).await;
    assert_eq!(special["tokens"].as_array().unwrap().len(), 1, "{special}");
    assert!(plain["tokens"].as_array().unwrap().len() > 1, "{plain}");

    // Bad input: a 400 in OpenAI's error shape naming the field.
    let (status, err) = post(url, "/detokenize", json!({"tokens": [1, 99_999_999]})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "tokens", "{err}");
    let (status, err) = post(url, "/tokenize", json!({})).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("content"), "{err}");
    let (status, _) = post(url, "/tokenize", json!({"content": "x", "model": "nope"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn props_apply_template_and_routes_without_v1() {
    let srv = server(&["--ctx-size", "512", "--parallel", "2", "--no-kv-unified"]);
    let url = &srv.url;
    let (status, props) = get(url, "/props").await;
    assert_eq!(status, 200, "{props}");
    assert_eq!(props["total_slots"], 2);
    assert_eq!(props["default_generation_settings"]["n_ctx"], 256, "512 tokens over 2 slots: {props}");
    assert!(props["model_path"].as_str().unwrap().ends_with(".gguf"));
    assert_eq!(props["model_alias"], "tiny");
    assert!(props["chat_template"].as_str().unwrap().contains("im_start"));
    assert_eq!(props["default_generation_settings"]["params"]["seed"], u64::from(u32::MAX));

    let (status, rendered) =
        post(url, "/apply-template", json!({"messages": [{"role": "user", "content": "Hello there"}]})).await;
    assert_eq!(status, 200, "{rendered}");
    assert_eq!(rendered["prompt"], "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n");
    // The count is the rendered prompt's tokens.
    let (_, rendered_ids) = post(url, "/tokenize", json!({"content": rendered["prompt"]})).await;
    for path in ["/v1/chat/completions/input_tokens", "/chat/completions/input_tokens"] {
        let (status, count) = post(url, path, json!({"messages": [{"role": "user", "content": "Hello there"}]})).await;
        assert_eq!(status, 200, "{count}");
        assert_eq!(count["object"], "response.input_tokens");
        assert_eq!(count["input_tokens"].as_u64().unwrap() as usize, rendered_ids["tokens"].as_array().unwrap().len());
    }
    let (status, err) = post(url, "/apply-template", json!({"messages": []})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "messages");

    // llama-server serves the OpenAI routes without /v1 too.
    let (status, models) = get(url, "/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "tiny");
    let (status, chat) =
        post(url, "/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})).await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["object"], "chat.completion");
    // llama-server's timings beside OpenAI's usage.
    let t = &chat["timings"];
    assert_eq!(t["predicted_n"], chat["usage"]["completion_tokens"], "{chat}");
    assert_eq!(
        t["prompt_n"].as_u64().unwrap() + t["cache_n"].as_u64().unwrap(),
        chat["usage"]["prompt_tokens"].as_u64().unwrap(),
        "{chat}"
    );
    assert!(t["prompt_ms"].as_f64().unwrap() > 0.0 && t["predicted_per_second"].as_f64().unwrap() > 0.0, "{chat}");
    // Streamed, on the chunk with finish_reason and on the usage chunk.
    let body = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": true,
            "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let with_timings: Vec<&Value> = chunks.iter().filter(|c| c.get("timings").is_some()).collect();
    assert_eq!(with_timings.len(), 2, "{body}");
    assert!(with_timings[0]["choices"][0]["finish_reason"].is_string(), "{body}");
    assert!(with_timings[1]["usage"].is_object(), "{body}");
    let (status, text) = post(url, "/completions", json!({"prompt": "Once upon", "max_tokens": 4})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text["object"], "text_completion");
}

#[tokio::test]
async fn native_completion_with_tokens_stop_words_and_the_servers_defaults() {
    let srv = server(&["--ctx-size", "512", "--parallel", "2", "--no-kv-unified", "--seed", "42", "--n-predict", "8"]);
    let url = &srv.url;
    // --n-predict and --seed are the defaults: the same request twice answers the same 8 tokens.
    let body = json!({"prompt": "Once upon a time", "return_tokens": true});
    let (status, a) = post(url, "/completion", body.clone()).await;
    assert_eq!(status, 200, "{a}");
    let (_, b) = post(url, "/completion", body).await;
    assert_eq!(a["content"], b["content"], "--seed 42 makes it repeatable");
    assert_eq!(a["stop"], true);
    assert_eq!(a["stop_type"], "limit");
    assert_eq!(a["tokens_predicted"], 8);
    assert_eq!(a["timings"]["predicted_n"], 8);
    assert_eq!(a["generation_settings"]["n_predict"], 8);
    assert_eq!(a["generation_settings"]["seed"], 42);
    assert_eq!(a["model"], "tiny");
    assert_eq!(a["prompt"], "Once upon a time");
    let tokens: Vec<i64> = a["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
    assert_eq!(tokens.len(), 8);
    let (_, text) = post(url, "/detokenize", json!({"tokens": tokens})).await;
    assert_eq!(text["content"], a["content"], "the tokens spell the content");

    // The prompt as token ids, as both mixed, and as two prompts answered as an array.
    let (_, ids) = post(url, "/tokenize", json!({"content": "Once upon a time", "add_special": true})).await;
    let ids = ids["tokens"].clone();
    let (status, by_ids) = post(url, "/completion", json!({"prompt": ids, "temperature": 0})).await;
    assert_eq!(status, 200, "{by_ids}");
    let (_, by_text) = post(url, "/completion", json!({"prompt": "Once upon a time", "temperature": 0})).await;
    assert_eq!(by_ids["content"], by_text["content"], "token ids and text are the same prompt");
    assert_eq!(by_ids["tokens"], json!([]), "no tokens without return_tokens");
    let (status, both) = post(url, "/completion", json!({"prompt": [ids, "Once upon a time"], "temperature": 0})).await;
    assert_eq!(status, 200, "{both}");
    assert_eq!(both.as_array().unwrap().len(), 2);
    assert_eq!(both[0]["content"], both[1]["content"]);
    assert_eq!(both[1]["index"], 1);
    let (status, mixed) = post(url, "/completion", json!({"prompt": [1, 2, "Once upon", 3]})).await;
    assert_eq!(status, 200, "{mixed}");

    // A stop word ends it and is named; greedy, so the first 8 tokens are known.
    let (_, greedy) = post(url, "/completion", json!({"prompt": "Once upon a time", "temperature": 0})).await;
    let content = greedy["content"].as_str().unwrap();
    let word: String = content.chars().skip(2).take(2).collect();
    assert_eq!(word.chars().count(), 2, "{greedy}");
    let (_, stopped) =
        post(url, "/completion", json!({"prompt": "Once upon a time", "temperature": 0, "stop": [word]})).await;
    assert_eq!(stopped["stop_type"], "word", "{stopped}");
    assert_eq!(stopped["stopping_word"], word);
    assert!(!stopped["content"].as_str().unwrap().contains(&word));

    // Streamed: each piece with the ids that made it, the last event with stop: true.
    let events = reqwest::Client::new()
        .post(format!("{url}/completion"))
        .json(&json!({"prompt": "Once upon a time", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Value> =
        events.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let (last, pieces) = events.split_last().unwrap();
    assert!(pieces.iter().all(|e| e["stop"] == false && !e["tokens"].as_array().unwrap().is_empty()), "{events:?}");
    let streamed: String = pieces.iter().map(|e| e["content"].as_str().unwrap()).collect();
    assert_eq!(streamed, a["content"].as_str().unwrap(), "the same seed streams the same text");
    assert_eq!(last["stop"], true);
    assert_eq!(last["timings"]["predicted_n"], 8);

    // Bad input: 400s naming the field.
    for (body, param) in [
        (json!({"prompt": 12.5}), "prompt"),
        (json!({"prompt": [1, 99_999_999]}), "prompt"),
        (json!({"prompt": {"prompt_string": "x", "multimodal_data": ["AAAA"]}}), "prompt"),
        (json!({"prompt": "x", "seed": -5}), "seed"),
        (json!({"prompt": "x", "logit_bias": 3}), "logit_bias"),
        (json!({"prompt": []}), "prompt"),
    ] {
        let (status, err) = post(url, "/completion", body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    // A prompt longer than a slot's 256 tokens.
    let (status, err) =
        post(url, "/completion", json!({"prompt": "I believe the meaning of life is ".repeat(60)})).await;
    assert_eq!(status, 400, "{err}");
}

#[tokio::test]
async fn slots_are_listed_unless_no_slots() {
    let srv = server(&["--ctx-size", "512", "--parallel", "2", "--no-kv-unified"]);
    let (status, slots) = get(&srv.url, "/slots").await;
    assert_eq!(status, 200, "{slots}");
    let slots = slots.as_array().unwrap();
    assert_eq!(slots.len(), 2);
    assert_eq!(slots[1]["id"], 1);
    assert_eq!(slots[0]["n_ctx"], 256);
    assert_eq!(slots[0]["is_processing"], false);
    let off = server(&["--no-slots"]);
    let (status, err) = get(&off.url, "/slots").await;
    assert_eq!(status, 501, "{err}");
    assert_eq!(err["error"]["type"], "not_supported_error");
}

/// The SSE `data:` objects of a streamed response, without `[DONE]`.
async fn stream_chunks(url: &str, path: &str, body: Value) -> Vec<Value> {
    let text =
        reqwest::Client::new().post(format!("{url}{path}")).json(&body).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn llama_server_fields_of_chat_infill_slots_samplers_and_aliases() {
    let slots = tempfile::tempdir().unwrap();
    let srv = server(&[
        "--ctx-size",
        "512",
        "--parallel",
        "2",
        "--no-kv-unified",
        "--alias",
        "gpt-4o-mini,davinci-002",
        "--slot-save-path",
        slots.path().to_str().unwrap(),
    ]);
    let url = &srv.url;
    let hi = json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]);

    // --alias with several names: the first is the id, the others answer too.
    let (_, models) = get(url, "/v1/models").await;
    assert_eq!(models["data"][0]["id"], "tiny", "{models}");
    assert_eq!(models["data"][0]["aliases"], json!(["gpt-4o-mini", "davinci-002"]), "{models}");
    let (status, chat) =
        post(url, "/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": hi, "max_tokens": 2})).await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["model"], "tiny");

    // vLLM's continue_final_message leaves the assistant's message open; add_generation_prompt
    // false ends after the last message; both true is refused.
    let (_, open) = post(url, "/apply-template", json!({"messages": hi, "continue_final_message": true})).await;
    assert!(open["prompt"].as_str().unwrap().ends_with("<|im_start|>assistant\nHel"), "{open}");
    let (_, closed) = post(url, "/apply-template", json!({"messages": hi, "add_generation_prompt": false})).await;
    assert!(closed["prompt"].as_str().unwrap().ends_with("Hel<|im_end|>\n"), "{closed}");
    let both = json!({"messages": hi, "continue_final_message": true, "add_generation_prompt": true});
    let (status, err) = post(url, "/chat/completions", both).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("continue_final_message")), "{err}");
    let user_last = json!({"messages": [{"role": "user", "content": "Hi"}], "continue_final_message": true});
    let (status, err) = post(url, "/chat/completions", user_last).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("continue_final_message")), "{err}");

    // timings_per_token: every chunk with text has its timings so far; the first chunk is the
    // role with content null, as llama-server sends it.
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": true,
        "timings_per_token": true, "ignore_eos": true});
    let chunks = stream_chunks(url, "/v1/chat/completions", body).await;
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": null}), "{chunks:?}");
    let texts: Vec<&Value> = chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].is_string()).collect();
    assert!(!texts.is_empty(), "{chunks:?}");
    let predicted: Vec<u64> = texts.iter().map(|c| c["timings"]["predicted_n"].as_u64().unwrap()).collect();
    assert!(predicted.windows(2).all(|w| w[0] < w[1]) && predicted[0] >= 1, "{predicted:?}");

    // A prompt over a slot's context: OpenAI's code, llama-server's type and counts.
    let long = "word ".repeat(600);
    let (status, err) =
        post(url, "/v1/chat/completions", json!({"messages": [{"role": "user", "content": long}]})).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["type"], "exceed_context_size_error");
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    assert_eq!(err["error"]["n_ctx"], 256);
    assert!(err["error"]["n_prompt_tokens"].as_u64().unwrap() > 256, "{err}");

    // /completion's id_slot (the cells are in that slot, which is all a save writes) and samplers.
    for id in [0, 1] {
        post(url, &format!("/slots/{id}?action=erase"), json!({})).await;
    }
    let (status, done) =
        post(url, "/completion", json!({"prompt": "Once upon", "n_predict": 3, "id_slot": 1, "samplers": "kt"})).await;
    assert_eq!(status, 200, "{done}");
    let (_, saved0) = post(url, "/slots/0?action=save", json!({"filename": "zero.bin"})).await;
    let (_, saved1) = post(url, "/slots/1?action=save", json!({"filename": "one.bin"})).await;
    assert_eq!(saved0["n_saved"], 0, "{saved0}");
    assert!(saved1["n_saved"].as_u64().unwrap() > 0, "{saved1}");
    // The same prompt again would go to slot 1, which holds it; id_slot 0 sends it to slot 0.
    let (status, _) = post(url, "/completion", json!({"prompt": "Once upon", "n_predict": 3, "id_slot": 0})).await;
    assert_eq!(status, 200);
    let (_, saved0) = post(url, "/slots/0?action=save", json!({"filename": "zero.bin"})).await;
    assert!(saved0["n_saved"].as_u64().unwrap() > 0, "{saved0}");
    let (status, err) = post(url, "/completion", json!({"prompt": "x", "id_slot": 2})).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("id_slot")), "{err}");
    let (status, err) = post(url, "/completion", json!({"prompt": "x", "samplers": 3})).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("samplers")), "{err}");
    let (status, err) = post(url, "/completion", json!({"n_predict": 3})).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("prompt")), "{err}");

    // llama-server's embedding input shapes: strings mixed with token ids are one input.
    let (status, mixed) = post(url, "/v1/embeddings", json!({"input": [12, "text", 34]})).await;
    assert_eq!((status, mixed["data"].as_array().map(Vec::len)), (200, Some(1)), "{mixed}");
    let shapes = json!({"input": ["a", {"prompt_string": "b"}, {"content": [{"type": "text", "text": "c"}]}]});
    let (status, three) = post(url, "/v1/embeddings", shapes).await;
    assert_eq!((status, three["data"].as_array().map(Vec::len)), (200, Some(3)), "{three}");
    for bad in [json!(5), json!([{}]), json!([[1, {}]])] {
        let (status, err) = post(url, "/v1/embeddings", json!({"input": bad})).await;
        assert_eq!((status, err["error"]["param"].as_str()), (400, Some("input")), "{bad}: {err}");
    }

    // /infill: a malformed input_extra item, then a model without fill-in-the-middle tokens.
    let infill = json!({"input_prefix": "def f():\n", "prompt": "    return ", "input_suffix": "\n"});
    let (status, err) =
        post(url, "/infill", json!({"input_extra": [{"filename": 1, "text": "a"}], "input_prefix": "x"})).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("input_extra[0].filename")), "{err}");
    let (status, err) = post(url, "/infill", infill).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("model")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("fill-in-the-middle"), "{err}");
}
