//! The event bus: every session event is appended to the [`Store`]'s log (which
//! gives it its id) and then broadcast to live subscribers, in one order for
//! everyone. A subscriber that names the last id it saw gets exactly what it
//! missed from the log, then the live tail, with no gap and no repeat.

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

/// Appends events to the log and fans them out. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    store: Arc<dyn Store>,
    live: broadcast::Sender<Arc<StoredEvent>>,
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
    fn matches(&self, event: &StoredEvent) -> bool {
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

    /// Append events (durably, in one transaction) and broadcast them.
    ///
    /// # Errors
    /// The store's error; nothing was broadcast then.
    pub async fn publish(&self, events: Vec<Event>) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let new: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent {
                session_id: Some(SessionId::from_string(e.session_id())),
                kind: e.kind().to_owned(),
                data: serde_json::to_string(e).unwrap_or_else(|_| "{}".to_owned()),
            })
            .collect();
        let _order = self.publish.lock().await;
        let stored = self.store.append_events(new).await?;
        let stored: Vec<Arc<StoredEvent>> = stored.into_iter().map(Arc::new).collect();
        for event in &stored {
            self.last_id.store(event.id, Ordering::Release);
            // No receivers is fine: the log keeps it.
            let _ = self.live.send(event.clone());
        }
        Ok(stored)
    }

    /// Publish one event, logging (not returning) a store failure: for events
    /// whose loss must not fail the operation that caused them.
    pub async fn emit(&self, event: Event) {
        if let Err(e) = self.publish(vec![event]).await {
            tracing::error!(error = %e, "cannot record an event");
        }
    }

    /// Events matching `filter`: those logged after `after` first (when given),
    /// then live ones as they are published (`after: None` means live only).
    /// Ends only when dropped, or with one error if the log cannot be read.
    pub fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<i64>,
    ) -> impl Stream<Item = Result<Arc<StoredEvent>, StoreError>> + Send + 'static {
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
                        for event in page {
                            cursor = event.id;
                            yield Arc::new(event);
                        }
                        if n < PAGE as usize {
                            break;
                        }
                    }
                    last = last.max(cursor);
                }
                match live.recv().await {
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
