// The sessions sidebar (`nav`): "New chat", a search box that filters by title on the server
// (`?q=`, debounced), and the list, most recent first, with the open one highlighted and a
// rename and a delete button per row. On narrow screens it is a drawer behind the header's
// hamburger button.

import { newChat, openDialog, searchSoon } from '../app';
import { currentId, search, sessions, sessionsLoaded, sidebarOpen } from '../state';
import type { Session } from '../types';
import { CloseIcon, PencilIcon, PlusIcon, TrashIcon } from './Icons';

const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function when(ms: number): string {
  const d = new Date(ms);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFormat.format(d) : dayFormat.format(d);
}

export function sessionTitle(s: Session | null): string {
  return s?.title.trim() || 'New chat';
}

function Row({ session, current }: { session: Session; current: boolean }) {
  const title = sessionTitle(session);
  return (
    <li
      class={current ? 'session current' : 'session'}
      data-testid="session-item"
      data-session-id={session.id}
      aria-current={current ? 'true' : undefined}
    >
      <a class="session-link" href={`#/s/${encodeURIComponent(session.id)}`} onClick={() => (sidebarOpen.value = false)}>
        <span class="session-title">{title}</span>
        <span class="session-meta">
          {session.status === 'busy' && <span class="session-busy">answering · </span>}
          {when(session.updated_at)}
        </span>
      </a>
      <button
        type="button"
        class="icon-button subtle"
        data-testid="session-rename"
        aria-label={`Rename “${title}”`}
        title="Rename"
        onClick={() => openDialog({ kind: 'rename', session })}
      >
        <PencilIcon />
      </button>
      <button
        type="button"
        class="icon-button subtle"
        data-testid="session-delete"
        aria-label={`Delete “${title}”`}
        title="Delete"
        onClick={() => openDialog({ kind: 'delete', session })}
      >
        <TrashIcon />
      </button>
    </li>
  );
}

export function Sidebar() {
  const list = sessions.value;
  const q = search.value;
  return (
    <nav id="sidebar" class={sidebarOpen.value ? 'sidebar open' : 'sidebar'} data-testid="sidebar" aria-label="Chats">
      <div class="sidebar-head">
        <span class="brand">chorus</span>
        <button
          type="button"
          class="icon-button sidebar-close"
          aria-label="Close chats"
          onClick={() => (sidebarOpen.value = false)}
        >
          <CloseIcon />
        </button>
      </div>
      <button type="button" class="button primary new-chat" data-testid="new-session" onClick={() => void newChat()}>
        <PlusIcon />
        <span>New chat</span>
      </button>
      <div class="search">
        <label for="session-search" class="sr-only">
          Search chats
        </label>
        <input
          id="session-search"
          data-testid="session-search"
          class="field"
          type="search"
          placeholder="Search chats"
          autoComplete="off"
          value={q}
          onInput={(e) => {
            search.value = e.currentTarget.value;
            searchSoon();
          }}
        />
      </div>
      <div class="sessions-scroll">
        <ul class="sessions" aria-label="Chats, most recent first">
          {list.map((s) => (
            <Row key={s.id} session={s} current={s.id === currentId.value} />
          ))}
        </ul>
        {sessionsLoaded.value && list.length === 0 && (
          <p class="sessions-empty">
            {q.trim() ? `No chat titled like “${q.trim()}”.` : 'No chats yet. Start one with “New chat”.'}
          </p>
        )}
      </div>
    </nav>
  );
}
