//! The tests both databases must pass.

use chorus_engine::Role;
use chorus_engine::store::{
    CharacterState, MemoryRecord, NewEvent, NewMessage, NewSession, SessionId, SessionStatus, SessionUpdate, Snapshot,
    Store, StoreError, TokenUsage, ToolCall, VitalChange,
};

use crate::TestDb;

fn new_session(title: &str) -> NewSession {
    NewSession {
        id: None,
        title: title.into(),
        work_dir: "/tmp/work".into(),
        agent: "build".into(),
        model: None,
        character: None,
    }
}

pub(crate) async fn session_lifecycle(db: &TestDb) {
    let store = db.open().await;
    let a = store.create_session(new_session("first")).await.unwrap();
    assert!(a.id.as_str().starts_with("ses_"), "{}", a.id);
    assert_eq!(a.status, SessionStatus::Idle);
    assert_eq!(a.message_count, 0);
    assert_eq!(a.created_at, a.updated_at);
    assert_eq!(
        (a.title.as_str(), a.work_dir.as_str(), a.agent.as_str(), a.model.as_deref()),
        ("first", "/tmp/work", "build", None)
    );

    let b = store.create_session(NewSession { model: Some("tiny".into()), ..new_session("second") }).await.unwrap();
    assert_eq!(b.model.as_deref(), Some("tiny"));
    assert_eq!(store.session(&a.id).await.unwrap().as_ref(), Some(&a));

    // A change moves a session to the front of the list.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let busy = store.update_session(&a.id, SessionUpdate::Status(SessionStatus::Busy)).await.unwrap();
    assert_eq!(busy.status, SessionStatus::Busy);
    assert!(busy.updated_at > a.updated_at);
    let titled = store.update_session(&a.id, SessionUpdate::Title("renamed".into())).await.unwrap();
    let modeled = store.update_session(&a.id, SessionUpdate::Model(Some("qwen".into()))).await.unwrap();
    assert_eq!(modeled.model.as_deref(), Some("qwen"));
    assert_eq!(modeled.title, "renamed");
    let unmodeled = store.update_session(&a.id, SessionUpdate::Model(None)).await.unwrap();
    assert_eq!(unmodeled.model, None);
    assert_eq!((titled.title.as_str(), titled.status), ("renamed", SessionStatus::Busy));
    let ids: Vec<SessionId> = store.list_sessions().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![a.id.clone(), b.id.clone()]);

    // A fixed id is kept, and taken only once.
    let fixed = SessionId::from_string("ses_default");
    let d = store.create_session(NewSession { id: Some(fixed.clone()), ..new_session("d") }).await.unwrap();
    assert_eq!(d.id, fixed);
    let again = store.create_session(NewSession { id: Some(fixed.clone()), ..new_session("d") }).await;
    assert!(matches!(&again, Err(StoreError::SessionExists(id)) if *id == fixed), "{again:?}");
    assert!(store.delete_session(&fixed).await.unwrap());

    assert!(store.delete_session(&a.id).await.unwrap());
    assert!(!store.delete_session(&a.id).await.unwrap());
    assert_eq!(store.session(&a.id).await.unwrap(), None);
    assert_eq!(store.list_sessions().await.unwrap().len(), 1);
}

pub(crate) async fn messages_in_order_with_usage_and_tool_calls(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(new_session("t")).await.unwrap();
    let user = store.append_message(&s.id, NewMessage::text(Role::User, "héllo ✓")).await.unwrap();
    assert_eq!((user.seq, user.role, user.content.as_str()), (1, Role::User, "héllo ✓"));
    let call = ToolCall { id: "call_1".into(), name: "read_file".into(), arguments: r#"{"path":"a.txt"}"#.into() };
    let assistant = store
        .append_message(
            &s.id,
            NewMessage {
                tool_calls: vec![call.clone()],
                usage: Some(TokenUsage { prompt_tokens: 12, completion_tokens: 5, cached_tokens: 10 }),
                finish_reason: Some("tool_calls".into()),
                ..NewMessage::text(Role::Assistant, "")
            },
        )
        .await
        .unwrap();
    let tool = store
        .append_message(
            &s.id,
            NewMessage { tool_call_id: Some("call_1".into()), ..NewMessage::text(Role::Tool, "data") },
        )
        .await
        .unwrap();
    let last = store
        .append_message(
            &s.id,
            NewMessage {
                usage: Some(TokenUsage { prompt_tokens: 30, completion_tokens: 7, cached_tokens: 25 }),
                finish_reason: Some("stop".into()),
                metadata: Some(r#"{"model":"m"}"#.into()),
                ..NewMessage::text(Role::Assistant, "done")
            },
        )
        .await
        .unwrap();

    let messages = store.messages(&s.id).await.unwrap();
    assert_eq!(messages, vec![user, assistant.clone(), tool, last]);
    assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(assistant.tool_calls, vec![call]);
    assert_eq!(messages[2].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(messages[0].usage, None);
    assert_eq!(assistant.usage.map(|u| u.cached_tokens), Some(10), "cached_tokens round-trips");
    assert_eq!(messages[3].metadata.as_deref(), Some(r#"{"model":"m"}"#), "metadata round-trips");
    assert_eq!(messages[0].metadata, None);

    let s = store.session(&s.id).await.unwrap().unwrap();
    assert_eq!(s.message_count, 4);
    assert_eq!(s.token_usage, TokenUsage { prompt_tokens: 42, completion_tokens: 12, cached_tokens: 35 });
}

pub(crate) async fn unknown_session_is_not_found(db: &TestDb) {
    let store = db.open().await;
    let ghost = SessionId::from_string("ses_nope");
    assert!(matches!(
        store.append_message(&ghost, NewMessage::text(Role::User, "x")).await,
        Err(StoreError::SessionNotFound(id)) if id == ghost
    ));
    assert!(matches!(
        store.update_session(&ghost, SessionUpdate::Title("x".into())).await,
        Err(StoreError::SessionNotFound(_))
    ));
    assert!(matches!(store.clear_messages(&ghost).await, Err(StoreError::SessionNotFound(_))));
    assert_eq!(store.session(&ghost).await.unwrap(), None);
    assert!(store.messages(&ghost).await.unwrap().is_empty());
}

pub(crate) async fn concurrent_appends_get_distinct_seqs(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(new_session("busy")).await.unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            let id = s.id.clone();
            tokio::spawn(async move { store.append_message(&id, NewMessage::text(Role::User, format!("m{i}"))).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().expect("every concurrent append succeeds").seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=24).collect::<Vec<u64>>());
    assert_eq!(store.session(&s.id).await.unwrap().unwrap().message_count, 24);
}

pub(crate) async fn clear_keeps_numbering(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(new_session("c")).await.unwrap();
    for text in ["a", "b"] {
        store.append_message(&s.id, NewMessage::text(Role::User, text)).await.unwrap();
    }
    let cleared = store.clear_messages(&s.id).await.unwrap();
    assert_eq!(cleared.message_count, 0);
    assert!(store.messages(&s.id).await.unwrap().is_empty());
    let next = store.append_message(&s.id, NewMessage::text(Role::User, "c")).await.unwrap();
    assert_eq!(next.seq, 3, "sequence numbers are never reused");
    assert_eq!(store.session(&s.id).await.unwrap().unwrap().message_count, 1);
}

pub(crate) async fn delete_removes_messages_keeps_events(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(new_session("d")).await.unwrap();
    store.append_message(&s.id, NewMessage::text(Role::User, "a")).await.unwrap();
    store
        .append_events(vec![NewEvent {
            session_id: Some(s.id.clone()),
            kind: "session.created".into(),
            data: "{}".into(),
        }])
        .await
        .unwrap();
    assert!(store.delete_session(&s.id).await.unwrap());
    assert!(store.messages(&s.id).await.unwrap().is_empty());
    assert_eq!(store.events_after(Some(&s.id), 0, 10).await.unwrap().len(), 1);
}

pub(crate) async fn events_resume_after_an_id(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.last_event_id().await.unwrap(), 0);
    let a = SessionId::from_string("ses_a");
    let b = SessionId::from_string("ses_b");
    let event = |session: Option<&SessionId>, kind: &str, n: u32| NewEvent {
        session_id: session.cloned(),
        kind: kind.into(),
        data: format!(r#"{{"n":{n}}}"#),
    };
    let first = store
        .append_events(vec![
            event(Some(&a), "message.start", 1),
            event(Some(&b), "message.start", 2),
            event(None, "session.created", 3),
        ])
        .await
        .unwrap();
    let second = store
        .append_events(vec![event(Some(&a), "message.chunk", 4), event(Some(&a), "message.complete", 5)])
        .await
        .unwrap();
    let ids: Vec<i64> = first.iter().chain(&second).map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase in append order: {ids:?}");
    assert!(store.append_events(Vec::new()).await.unwrap().is_empty());
    assert_eq!(store.last_event_id().await.unwrap(), ids[4]);

    let all = store.events_after(None, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[2].session_id, None);
    assert_eq!(all[4].data, r#"{"n":5}"#);

    // Resume session a after its first event: exactly the two it missed.
    let missed = store.events_after(Some(&a), first[0].id, 100).await.unwrap();
    assert_eq!(missed, second);
    let limited = store.events_after(None, ids[0], 2).await.unwrap();
    assert_eq!(limited.iter().map(|e| e.id).collect::<Vec<_>>(), ids[1..3].to_vec());
    assert!(store.events_after(None, ids[4], 10).await.unwrap().is_empty());
}

pub(crate) async fn writes_survive_reopen(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(new_session("kept")).await.unwrap();
    let m = store.append_message(&s.id, NewMessage::text(Role::User, "remember me")).await.unwrap();
    let e =
        store.append_events(vec![NewEvent { session_id: None, kind: "x".into(), data: "{}".into() }]).await.unwrap();
    store.close().await;

    // A second open runs the migrations again (a no-op) and sees everything.
    let store = db.open().await;
    assert_eq!(store.session(&s.id).await.unwrap().unwrap().message_count, 1);
    assert_eq!(store.messages(&s.id).await.unwrap(), vec![m]);
    assert_eq!(store.events_after(None, 0, 10).await.unwrap(), e);
    let next =
        store.append_events(vec![NewEvent { session_id: None, kind: "y".into(), data: "{}".into() }]).await.unwrap();
    assert!(next[0].id > e[0].id, "event ids are not reused after a restart");
}

fn change(name: &str, old: Option<&str>, new: &str, turn: u64) -> VitalChange {
    VitalChange {
        id: 0,
        user: Some("sam".into()),
        name: name.into(),
        old_value: old.map(str::to_owned),
        new_value: new.into(),
        source: "turn".into(),
        turn,
        created_at: 1_000 + turn as i64,
    }
}

fn memory(id: &str, content: &str, embedding: Vec<f32>) -> MemoryRecord {
    MemoryRecord {
        id: id.into(),
        user: Some("sam".into()),
        content: content.into(),
        importance: 7,
        embedding,
        created_at: 10,
        accessed_at: 10,
        turn: 2,
        merged: Vec::new(),
    }
}

pub(crate) async fn character_state_vitals_history_and_memories(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(NewSession { character: Some("aria".into()), ..new_session("Aria") }).await.unwrap();
    assert_eq!(s.character.as_deref(), Some("aria"));
    assert_eq!(store.character_state(&s.id).await.unwrap(), None);
    let state = CharacterState {
        vitals: r#"{"character":{"mood":"calm"}}"#.into(),
        summary: String::new(),
        summarized_seq: 0,
        turns: 1,
        updated_at: 5,
    };
    store.put_character_state(&s.id, &state, &[change("trust", Some("50"), "55", 1)]).await.unwrap();
    let next = CharacterState { turns: 2, summary: "they met".into(), summarized_seq: 4, ..state.clone() };
    store.put_character_state(&s.id, &next, &[change("trust", Some("55"), "60", 2)]).await.unwrap();
    assert_eq!(store.character_state(&s.id).await.unwrap(), Some(next));
    let history = store.vital_changes(&s.id, 10).await.unwrap();
    assert_eq!(history.iter().map(|c| c.new_value.as_str()).collect::<Vec<_>>(), ["60", "55"], "newest first");
    assert!(history[0].id > history[1].id);
    assert_eq!(store.vital_changes(&s.id, 1).await.unwrap().len(), 1);

    let embedding = vec![0.25f32, -1.5, 3.0e-7];
    store.put_memory(&s.id, &memory("mem_1", "Sam's dog is Biscuit", embedding.clone())).await.unwrap();
    store.put_memory(&s.id, &memory("mem_2", "Sam likes tea", vec![1.0])).await.unwrap();
    let mut merged = memory("mem_1", "Sam's dog Biscuit is old", embedding.clone());
    merged.merged = vec!["Sam's dog is Biscuit".into()];
    store.put_memory(&s.id, &merged).await.unwrap();
    store.touch_memories(&s.id, &["mem_2".into()], 99).await.unwrap();
    let all = store.memories(&s.id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], merged, "a merge replaces the memory and keeps the old text; embeddings round-trip exactly");
    assert_eq!(all[1].accessed_at, 99);
    assert!(store.delete_memory(&s.id, "mem_2").await.unwrap());
    assert!(!store.delete_memory(&s.id, "mem_2").await.unwrap());
    let unknown = SessionId::from_string("ses_nope");
    assert!(matches!(store.put_memory(&unknown, &merged).await, Err(StoreError::SessionNotFound(_))));
    assert!(matches!(store.put_character_state(&unknown, &state, &[]).await, Err(StoreError::SessionNotFound(_))));

    // Deleting the session deletes what it owned.
    assert!(store.delete_session(&s.id).await.unwrap());
    assert_eq!(store.character_state(&s.id).await.unwrap(), None);
    assert!(store.memories(&s.id).await.unwrap().is_empty());
    assert!(store.vital_changes(&s.id, 10).await.unwrap().is_empty());
}

pub(crate) async fn snapshots_and_restore_replace_the_transcript(db: &TestDb) {
    let store = db.open().await;
    let s = store.create_session(NewSession { character: Some("aria".into()), ..new_session("Aria") }).await.unwrap();
    for text in ["hello", "hi there", "how are you"] {
        store.append_message(&s.id, NewMessage::text(Role::User, text)).await.unwrap();
    }
    let saved = store.messages(&s.id).await.unwrap();
    let snap = Snapshot { name: "before".into(), data: r#"{"x":1}"#.into(), created_at: 7 };
    store.put_snapshot(&s.id, &snap).await.unwrap();
    store.put_snapshot(&s.id, &Snapshot { data: r#"{"x":2}"#.into(), ..snap.clone() }).await.unwrap();
    assert_eq!(store.snapshot(&s.id, "before").await.unwrap().unwrap().data, r#"{"x":2}"#, "same name replaces");
    assert_eq!(store.snapshots(&s.id).await.unwrap().len(), 1);
    assert_eq!(store.snapshot(&s.id, "nope").await.unwrap(), None);

    store.append_message(&s.id, NewMessage::text(Role::User, "later")).await.unwrap();
    store.put_memory(&s.id, &memory("mem_9", "later", vec![1.0])).await.unwrap();
    let state = CharacterState { vitals: "{}".into(), turns: 1, updated_at: 3, ..CharacterState::default() };
    store
        .restore_character(
            &s.id,
            &state,
            &[memory("mem_1", "old", vec![0.5])],
            &saved[..2],
            &[change("mood", None, "\"calm\"", 1)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.messages(&s.id).await.unwrap(),
        saved[..2].to_vec(),
        "the transcript as saved, ids and times kept"
    );
    assert_eq!(store.session(&s.id).await.unwrap().unwrap().message_count, 2);
    let next = store.append_message(&s.id, NewMessage::text(Role::User, "after")).await.unwrap();
    assert_eq!(next.seq, 3, "numbering continues after the restored messages");
    let memories = store.memories(&s.id).await.unwrap();
    assert_eq!(memories.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["mem_1"]);
    assert_eq!(store.character_state(&s.id).await.unwrap(), Some(state));
    assert_eq!(store.vital_changes(&s.id, 5).await.unwrap().len(), 1);
}
