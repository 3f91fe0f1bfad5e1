// The conversation (`role="log"`): history and live entries merged, prompts waiting to start,
// and an empty state that says what to do. It follows the end while an answer streams unless
// the reader scrolled up; then a button jumps back to the latest message.

import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { displayEntries, visiblePending, type Entry } from '../conversation';
import { conversation, currentId, link, transport } from '../state';
import { ArrowDownIcon } from './Icons';
import { Bubble } from './Message';
import { PermissionCard, ToolCard } from './ToolCards';

/** Pixels from the bottom that still count as "at the end". */
const STICK_PX = 80;

function EntryView({ entry, routes }: { entry: Entry; routes: Record<string, import('../types').Route> }) {
  switch (entry.kind) {
    case 'message': {
      const m = entry.message;
      if (m.role !== 'user' && m.role !== 'assistant') return null;
      // A round that only called tools shows as its cards.
      if (m.role === 'assistant' && !m.content.trim() && (m.tool_calls?.length ?? 0) > 0) return null;
      return (
        <Bubble
          role={m.role}
          content={m.content}
          finish={m.finish_reason}
          model={m.metadata?.model}
          route={m.metadata?.route ?? (entry.promptId ? routes[entry.promptId] : undefined)}
          placeholder={m.role === 'assistant' ? '(empty answer)' : undefined}
        />
      );
    }
    case 'stream':
      if (entry.done && !entry.text) return null;
      return (
        <Bubble
          role="assistant"
          content={entry.text}
          streaming={!entry.done}
          finish={entry.done ? entry.finish : undefined}
          route={routes[entry.promptId]}
          placeholder="Thinking"
        />
      );
    case 'tool':
      return <ToolCard tool={entry} />;
    case 'permission':
      return <PermissionCard entry={entry} />;
    case 'note':
      return <p class="note">{entry.text}</p>;
  }
}

function EmptyState({ hasSession }: { hasSession: boolean }) {
  return (
    <div class="empty">
      <p class="empty-title">{hasSession ? 'This chat is empty' : 'Start a new chat'}</p>
      <p class="empty-text">
        Type a message below and press Send. Enter sends; Shift+Enter starts a new line. Pick the model at the top.
      </p>
    </div>
  );
}

export function MessageList() {
  const c = conversation.value;
  const entries = displayEntries(c);
  const pending = visiblePending(c);
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [away, setAway] = useState(false);

  // A newly opened session starts at its end.
  useLayoutEffect(() => {
    stick.current = true;
    setAway(false);
  }, [currentId.value]);

  // Follow the end as content grows, unless the reader scrolled up.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  });

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
    stick.current = atEnd;
    if (away === atEnd) setAway(!atEnd);
  };

  const jump = () => {
    const el = box.current;
    if (!el) return;
    stick.current = true;
    setAway(false);
    el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
  };

  const empty = entries.length === 0 && pending.length === 0 && c.waiting === 0;
  const loading = !c.historyLoaded && c.sessionId !== null;
  return (
    <div class="messages-wrap">
      <div
        ref={box}
        class="messages"
        data-testid="messages"
        role="log"
        aria-live="polite"
        aria-label="Conversation"
        aria-busy={loading ? 'true' : undefined}
        tabIndex={0}
        onScroll={onScroll}
      >
        <div class="messages-inner">
          {empty && !loading && <EmptyState hasSession={c.sessionId !== null} />}
          {entries.map((e) => (
            <EntryView key={e.key} entry={e} routes={c.routes} />
          ))}
          {pending.map((p) => (
            <Bubble key={p.localId} role="user" content={p.content} />
          ))}
          {(c.waiting > 0 || pending.length > 0) && !entries.some((e) => e.kind === 'stream' && !e.done) && (
            <Bubble
              key="waiting"
              role="assistant"
              content=""
              streaming
              placeholder={transport.value === 'rest' ? 'Waiting for the answer' : 'Waiting for the model'}
            />
          )}
          {link.value === 'reconnecting' && <p class="note">Connection lost; reconnecting…</p>}
        </div>
      </div>
      {away && (
        <button type="button" class="icon-button jump" aria-label="Scroll to the latest message" onClick={jump}>
          <ArrowDownIcon />
        </button>
      )}
    </div>
  );
}
