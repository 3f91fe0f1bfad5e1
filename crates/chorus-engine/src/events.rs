//! The event bus: every session event is appended to the [`Store`]'s log (which
//! gives it its id) and then broadcast to live subscribers, in one order for
//! everyone. A subscriber that names the last id it saw gets exactly what it
//! missed from the log, then the live tail, with no gap and no repeat.
//!
//! Events travel as typed values ([`LoggedEvent`], shared behind an `Arc`):
//! the bus serializes each one once, for the log, when it is published; events
//! replayed from the log are parsed once as they are read; each transport
//! (SSE, WebSocket) serializes what it sends in its own framing. A logged
//! event that no longer parses (written by another version, or by hand) is
//! skipped with an error in the server's log, so it cannot stall every resume
//! past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chorus_proto::native::Event;
use futures::Stream;
use tokio::sync::{Mutex, broadcast};

use crate::store::{NewEvent, SessionId, Store, StoreError, StoredEvent};

/// Live events buffered per subscriber before a slow one falls back to the log.
const LIVE_BUFFER: usize = 1024;
/// Events read from the log per query while catching up.
const PAGE: u32 = 256;

/// The id of an event broadcast without being logged (see [`EventBus::emit`]):
/// transports send it without an event id, so no client resumes from it.
pub const UNLOGGED: i64 = 0;

/// An event as the bus delivers it: the typed [`Event`] with what the log
/// gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Its log id: increasing in the order events were published, never
    /// reused; SSE's `id:` line and `Last-Event-ID`, the WebSocket's event `id`.
    pub id: i64,
    /// Unix time in milliseconds when it was appended to the log.
    pub created_at: i64,
    /// The session it concerns.
    pub session_id: Option<SessionId>,
    /// The event itself.
    pub event: Event,
}

impl LoggedEvent {
    /// A log record read back: its JSON `data` parsed into the [`Event`].
    ///
    /// # Errors
    /// `data` is not an [`Event`] as this version writes them.
    pub fn from_stored(stored: StoredEvent) -> Result<Self, serde_json::Error> {
        let event = serde_json::from_str(&stored.data)?;
        Ok(Self { id: stored.id, created_at: stored.created_at, session_id: stored.session_id, event })
    }
}

/// Appends events to the log and fans them out. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    store: Arc<dyn Store>,
    live: broadcast::Sender<Arc<LoggedEvent>>,
    /// Held across append + broadcast, so broadcast order is id order.
    publish: Arc<Mutex<()>>,
    /// The id of the newest event in the log: where a live-only subscriber starts.
    last_id: Arc<AtomicI64>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("store", &self.store.kind()).finish()
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event.
    All,
    /// One session's events.
    Session(SessionId),
}

impl EventFilter {
    fn matches(&self, event: &LoggedEvent) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Session(id) => event.session_id.as_ref() == Some(id),
        }
    }

    fn session(&self) -> Option<&SessionId> {
        match self {
            EventFilter::All => None,
            EventFilter::Session(id) => Some(id),
        }
    }
}

impl EventBus {
    /// A bus over a store's event log.
    ///
    /// # Errors
    /// The store's error reading the newest event id.
    pub async fn open(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let last_id = store.last_event_id().await?;
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Ok(Self { store, live, publish: Arc::new(Mutex::new(())), last_id: Arc::new(AtomicI64::new(last_id)) })
    }

    /// The id of the newest event published.
    pub fn last_id(&self) -> i64 {
        self.last_id.load(Ordering::Acquire)
    }

    /// Append events (durably, in one transaction, each serialized once) and
    /// broadcast them; they are returned as subscribers get them.
    ///
    /// # Errors
    /// The store's error; nothing was broadcast then.
    pub async fn publish(&self, events: Vec<Event>) -> Result<Vec<Arc<LoggedEvent>>, StoreError> {
        let new: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent {
                session_id: e.session_id().map(SessionId::from_string),
                kind: e.kind().to_owned(),
                data: serde_json::to_string(e).unwrap_or_else(|_| "{}".to_owned()),
            })
            .collect();
        let _order = self.publish.lock().await;
        let stored = self.store.append_events(new).await?;
        if stored.len() != events.len() {
            return Err(StoreError::Database(format!(
                "{} events appended, {} ids returned",
                events.len(),
                stored.len()
            )));
        }
        let logged: Vec<Arc<LoggedEvent>> = stored
            .into_iter()
            .zip(events)
            .map(|(stored, event)| {
                Arc::new(LoggedEvent {
                    id: stored.id,
                    created_at: stored.created_at,
                    session_id: stored.session_id,
                    event,
                })
            })
            .collect();
        for event in &logged {
            self.last_id.store(event.id, Ordering::Release);
            // No receivers is fine: the log keeps it.
            let _ = self.live.send(event.clone());
        }
        Ok(logged)
    }

    /// Publish one event, logging (not returning) a store failure: for events
    /// whose loss must not fail the operation that caused them.
    ///
    /// When the log cannot be written, a prompt's `message.error` is still
    /// broadcast, unlogged (id [`UNLOGGED`]), so the clients waiting on that
    /// prompt (its SSE answer, a WebSocket request) learn that it ended instead
    /// of waiting forever; it cannot be replayed.
    pub async fn emit(&self, event: Event) {
        let terminal = matches!(event, Event::MessageError { .. }).then(|| event.clone());
        if let Err(e) = self.publish(vec![event]).await {
            tracing::error!(error = %e, "cannot record an event");
            if let Some(event) = terminal {
                let _order = self.publish.lock().await;
                let created_at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let session_id = event.session_id().map(SessionId::from_string);
                let _ = self.live.send(Arc::new(LoggedEvent { id: UNLOGGED, created_at, session_id, event }));
            }
        }
    }

    /// Events matching `filter`: those logged after `after` first (when given),
    /// then live ones as they are published (`after: None` means live only).
    /// Ends only when dropped, or with one error if the log cannot be read.
    pub fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<i64>,
    ) -> impl Stream<Item = Result<Arc<LoggedEvent>, StoreError>> + Send + 'static {
        // Subscribe before reading the log, so nothing published meanwhile is lost.
        let mut live = self.live.subscribe();
        let store = self.store.clone();
        let live_from = self.last_id();
        async_stream::try_stream! {
            // The newest id this subscriber has seen or skipped.
            let mut last = live_from;
            // Where to read the log from before going on live: the resume
            // point at first, then wherever a lag left off.
            let mut catch_up = after;
            loop {
                if let Some(mut cursor) = catch_up.take() {
                    loop {
                        let page = store.events_after(filter.session(), cursor, PAGE).await?;
                        let n = page.len();
                        for stored in page {
                            cursor = stored.id;
                            match LoggedEvent::from_stored(stored) {
                                Ok(event) => yield Arc::new(event),
                                Err(e) => tracing::error!(id = cursor, error = %e, "skipping an unreadable logged event"),
                            }
                        }
                        if n < PAGE as usize {
                            break;
                        }
                    }
                    last = last.max(cursor);
                }
                match live.recv().await {
                    // Never in the log, so never replayed: delivered as it comes.
                    Ok(event) if event.id == UNLOGGED => {
                        if filter.matches(&event) {
                            yield event;
                        }
                    }
                    Ok(event) => {
                        if event.id <= last {
                            continue;
                        }
                        last = event.id;
                        if filter.matches(&event) {
                            yield event;
                        }
                    }
                    // Too slow for the live buffer: catch up from the log.
                    Err(broadcast::error::RecvError::Lagged(_)) => catch_up = Some(last),
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use futures::StreamExt;

    use super::*;
    use crate::store::{
        CharacterState, MemoryRecord, Message, NewMessage, NewSession, Session, SessionUpdate, Snapshot, VitalChange,
    };

    /// An event log in memory; it keeps no sessions.
    #[derive(Default)]
    struct Log {
        events: StdMutex<Vec<StoredEvent>>,
    }

    fn no_sessions<T>() -> Result<T, StoreError> {
        Err(StoreError::Database("this test store keeps events only".into()))
    }

    #[async_trait::async_trait]
    impl Store for Log {
        fn kind(&self) -> &'static str {
            "memory"
        }
        async fn create_session(&self, _: NewSession) -> Result<Session, StoreError> {
            no_sessions()
        }
        async fn session(&self, _: &SessionId) -> Result<Option<Session>, StoreError> {
            no_sessions()
        }
        async fn list_sessions(&self) -> Result<Vec<Session>, StoreError> {
            no_sessions()
        }
        async fn update_session(&self, _: &SessionId, _: SessionUpdate) -> Result<Session, StoreError> {
            no_sessions()
        }
        async fn delete_session(&self, _: &SessionId) -> Result<bool, StoreError> {
            no_sessions()
        }
        async fn append_message(&self, _: &SessionId, _: NewMessage) -> Result<Message, StoreError> {
            no_sessions()
        }
        async fn messages(&self, _: &SessionId) -> Result<Vec<Message>, StoreError> {
            no_sessions()
        }
        async fn clear_messages(&self, _: &SessionId) -> Result<Session, StoreError> {
            no_sessions()
        }
        async fn append_events(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>, StoreError> {
            let mut log = self.events.lock().unwrap();
            let mut stored = Vec::new();
            for e in events {
                let id = log.len() as i64 + 1;
                let event =
                    StoredEvent { id, created_at: 1000 + id, session_id: e.session_id, kind: e.kind, data: e.data };
                log.push(event.clone());
                stored.push(event);
            }
            Ok(stored)
        }
        async fn last_event_id(&self) -> Result<i64, StoreError> {
            Ok(self.events.lock().unwrap().len() as i64)
        }
        async fn events_after(
            &self,
            session: Option<&SessionId>,
            after: i64,
            limit: u32,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let log = self.events.lock().unwrap();
            let wanted = log.iter().filter(|e| e.id > after && (session.is_none() || e.session_id.as_ref() == session));
            Ok(wanted.take(limit as usize).cloned().collect())
        }
        async fn character_state(&self, _: &SessionId) -> Result<Option<CharacterState>, StoreError> {
            no_sessions()
        }
        async fn put_character_state(
            &self,
            _: &SessionId,
            _: &CharacterState,
            _: &[VitalChange],
        ) -> Result<(), StoreError> {
            no_sessions()
        }
        async fn vital_changes(&self, _: &SessionId, _: u32) -> Result<Vec<VitalChange>, StoreError> {
            no_sessions()
        }
        async fn put_memory(&self, _: &SessionId, _: &MemoryRecord) -> Result<(), StoreError> {
            no_sessions()
        }
        async fn memories(&self, _: &SessionId) -> Result<Vec<MemoryRecord>, StoreError> {
            no_sessions()
        }
        async fn touch_memories(&self, _: &SessionId, _: &[String], _: i64) -> Result<(), StoreError> {
            no_sessions()
        }
        async fn delete_memory(&self, _: &SessionId, _: &str) -> Result<bool, StoreError> {
            no_sessions()
        }
        async fn put_snapshot(&self, _: &SessionId, _: &Snapshot) -> Result<(), StoreError> {
            no_sessions()
        }
        async fn snapshot(&self, _: &SessionId, _: &str) -> Result<Option<Snapshot>, StoreError> {
            no_sessions()
        }
        async fn snapshots(&self, _: &SessionId) -> Result<Vec<Snapshot>, StoreError> {
            no_sessions()
        }
        async fn restore_character(
            &self,
            _: &SessionId,
            _: &CharacterState,
            _: &[MemoryRecord],
            _: &[Message],
            _: &[VitalChange],
        ) -> Result<(), StoreError> {
            no_sessions()
        }
    }

    fn chunk(session: &str, n: usize) -> Event {
        Event::MessageChunk { session_id: session.into(), prompt_id: "prm_1".into(), content: format!("{n} ") }
    }

    async fn bus() -> (Arc<Log>, EventBus) {
        let log = Arc::new(Log::default());
        let bus = EventBus::open(log.clone()).await.unwrap();
        (log, bus)
    }

    /// The next `n` events of a subscription.
    async fn take(
        events: &mut (impl Stream<Item = Result<Arc<LoggedEvent>, StoreError>> + Unpin),
        n: usize,
    ) -> Vec<Arc<LoggedEvent>> {
        let mut seen = Vec::new();
        while seen.len() < n {
            seen.push(events.next().await.unwrap().unwrap());
        }
        seen
    }

    #[tokio::test]
    async fn the_log_holds_the_wire_json_and_subscribers_get_typed_events() {
        let (log, bus) = bus().await;
        let mut live = Box::pin(bus.subscribe(EventFilter::All, None));
        let event = chunk("ses_a", 1);
        let published = bus.publish(vec![event.clone()]).await.unwrap();
        assert_eq!(published[0].event, event);
        assert_eq!(published[0].session_id, Some(SessionId::from_string("ses_a")));

        let stored = log.events.lock().unwrap()[0].clone();
        assert_eq!((stored.kind.as_str(), stored.data), ("message.chunk", serde_json::to_string(&event).unwrap()));
        // Live: the very value the bus published, not a copy parsed back.
        let got = take(&mut live, 1).await;
        assert!(Arc::ptr_eq(&got[0], &published[0]));
        // Replayed: parsed from the log into the same event.
        let mut replay = Box::pin(bus.subscribe(EventFilter::All, Some(0)));
        assert_eq!(*take(&mut replay, 1).await[0], *published[0]);
    }

    #[tokio::test]
    async fn resume_after_an_id_replays_exactly_the_rest_then_goes_live() {
        let (_, bus) = bus().await;
        let first = bus.publish((0..5).map(|n| chunk(if n % 2 == 0 { "ses_a" } else { "ses_b" }, n)).collect()).await;
        let first = first.unwrap();
        let mut a = Box::pin(bus.subscribe(EventFilter::Session(SessionId::from_string("ses_a")), Some(first[0].id)));
        let later = bus.publish(vec![chunk("ses_b", 5), chunk("ses_a", 6)]).await.unwrap();
        let seen = take(&mut a, 3).await;
        let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
        assert_eq!(ids, [first[2].id, first[4].id, later[1].id]);
        assert!(seen.iter().all(|e| e.event.session_id() == Some("ses_a")));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_catches_up_from_the_log_without_a_gap() {
        let (_, bus) = bus().await;
        let mut slow = Box::pin(bus.subscribe(EventFilter::All, None));
        let total = LIVE_BUFFER + PAGE as usize + 10;
        for n in 0..total {
            bus.emit(chunk("ses_a", n)).await;
        }
        let seen = take(&mut slow, total).await;
        let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=total as i64).collect::<Vec<_>>());
        assert_eq!(seen[total - 1].event, chunk("ses_a", total - 1));
    }

    #[tokio::test]
    async fn an_unreadable_logged_event_is_skipped() {
        let (log, bus) = bus().await;
        bus.emit(chunk("ses_a", 0)).await;
        let bad = NewEvent { session_id: Some(SessionId::from_string("ses_a")), kind: "x".into(), data: "{}".into() };
        log.append_events(vec![bad]).await.unwrap();
        bus.emit(chunk("ses_a", 2)).await;
        let mut replay = Box::pin(bus.subscribe(EventFilter::All, Some(0)));
        let ids: Vec<i64> = take(&mut replay, 2).await.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 3]);
    }
}
