// The page's controller: start-up (the key from `#key=`, `GET /api/v1/info`, the key dialog on
// a 401), hash routing (`#/s/ID`), the transport and its events, the sessions list, the model
// list, and every action the components call (send, stop, permissions, rename, delete, model
// choice). It owns the signals in `state.ts` that mirror the server.

import { batch } from '@preact/signals';
import { api, ApiError, getKey, setKey, setUnauthorizedHandler } from './api';
import {
  addPending,
  addWaiting,
  applyEvent,
  emptyConversation,
  removePending,
  setPermission,
  shownUserMessages,
  withHistory,
} from './conversation';
import {
  conversation,
  creating,
  currentId,
  currentSession,
  defaultPick,
  dialog,
  draftModel,
  info,
  keyDialog,
  link,
  models,
  notices,
  search,
  sessions,
  sessionsLoaded,
  sidebarOpen,
  theme,
  transport as transportKind,
} from './state';
import { applyTheme } from './theme';
import { connect, type Transport, type TransportKind } from './transport';
import type { ChorusEvent, Session } from './types';

const MODELS_EVERY_MS = 5000;
const SESSIONS_EVERY_MS = 15000;
const TITLE_CHARS = 48;

let transport: Transport | null = null;
let started = false;
let noticeId = 0;
let pendingId = 0;

// ---------------------------------------------------------------------------------------------
// Notices

export function notify(message: string): void {
  const last = notices.value[notices.value.length - 1];
  if (last?.message === message) return;
  notices.value = [...notices.value, { id: ++noticeId, message }];
}

export function dismissNotice(id: number): void {
  notices.value = notices.value.filter((n) => n.id !== id);
}

function report(e: unknown): void {
  if (e instanceof ApiError) {
    if (e.unauthorized) return; // The key dialog says it.
    notify(e.message);
  } else if (e instanceof Error && e.name !== 'AbortError') {
    notify(e.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Run `f` at most once per `ms`, after the last call. */
function debounce(f: () => void, ms: number): () => void {
  let timer = 0;
  return () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(f, ms);
  };
}

/** A session's title from its first prompt: one line, about 48 characters. */
export function titleFrom(prompt: string): string {
  const line = prompt.replace(/\s+/g, ' ').trim();
  if (line.length <= TITLE_CHARS) return line;
  const cut = line.slice(0, TITLE_CHARS);
  const space = cut.lastIndexOf(' ');
  return `${(space > TITLE_CHARS / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

function sessionFromHash(): string | null {
  const m = /^#\/s\/([^/?&#]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

function setHash(id: string | null, replace = false): void {
  const hash = id ? `#/s/${encodeURIComponent(id)}` : '#/';
  if (location.hash === hash) return;
  if (replace) history.replaceState(null, '', hash);
  else history.pushState(null, '', hash);
}

/** A key in the URL fragment (`#key=KEY`, as a QR code may carry): stored, then removed. */
function takeKeyFromUrl(): void {
  const m = /(?:^#|[&?#])key=([^&]+)/.exec(location.hash);
  if (!m) return;
  setKey(decodeURIComponent(m[1]!));
  const rest = location.hash.replace(/[&?]?key=[^&]+/, '').replace(/^#&/, '#');
  history.replaceState(null, '', `${location.pathname}${location.search}${rest === '#' ? '' : rest}`);
}

function preferredTransport(): TransportKind | undefined {
  const t = new URLSearchParams(location.search).get('transport');
  return t === 'ws' || t === 'sse' || t === 'rest' ? t : undefined;
}

function replaceSession(session: Session): void {
  sessions.value = sessions.value.map((s) => (s.id === session.id ? session : s));
  if (currentId.value === session.id) currentSession.value = session;
}

// ---------------------------------------------------------------------------------------------
// Start-up and the key

export async function start(): Promise<void> {
  applyTheme(theme.value);
  setUnauthorizedHandler((e) => {
    keyDialog.value = { open: true, error: getKey() ? e.message : null };
  });
  takeKeyFromUrl();
  window.addEventListener('hashchange', () => void route());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !started) return;
    transport?.wake();
    void refreshModels();
    void refreshSessions();
  });
  window.addEventListener('online', () => transport?.wake());
  window.setInterval(() => {
    if (started && document.visibilityState === 'visible') void refreshModels();
  }, MODELS_EVERY_MS);
  window.setInterval(() => {
    if (started && document.visibilityState === 'visible') void refreshSessions();
  }, SESSIONS_EVERY_MS);
  await boot();
}

/** Learn what the server is, then load everything and connect; a 401 waits for the key. */
async function boot(): Promise<void> {
  try {
    info.value = await api.info({ quiet401: true });
  } catch (e) {
    if (e instanceof ApiError && e.unauthorized) {
      keyDialog.value = { open: true, error: getKey() ? e.message : null };
      return;
    }
    report(e);
    window.setTimeout(() => void boot(), 3000);
    return;
  }
  started = true;
  await Promise.all([refreshModels(), refreshSessions()]);
  // Connect watching the session the page will open, then open it (live first, then history).
  await reconnect(sessionFromHash() ?? (search.value ? null : (sessions.value[0]?.id ?? null)));
  await route();
}

/** Check a key the user typed; on success keep it and (re)start. Returns the server's complaint. */
export async function submitKey(key: string): Promise<string | null> {
  const trimmed = key.trim();
  if (!trimmed) return 'enter the API key';
  try {
    info.value = await api.info({ key: trimmed, quiet401: true });
  } catch (e) {
    if (e instanceof ApiError) return e.message;
    return String(e);
  }
  setKey(trimmed);
  keyDialog.value = { open: false, error: null };
  if (!started) {
    await boot();
  } else {
    await Promise.all([refreshModels(), refreshSessions(), reconnect(currentId.value)]);
    if (currentId.value) await openSession(currentId.value, true);
  }
  return null;
}

/** Drop the stored key; the dialog asks again if the server needs one. */
export async function forgetKey(): Promise<void> {
  setKey(null);
  transport?.close();
  transport = null;
  try {
    info.value = await api.info({ quiet401: true });
    await reconnect(currentId.value);
  } catch (e) {
    if (e instanceof ApiError && e.unauthorized) keyDialog.value = { open: true, error: null };
    else report(e);
  }
}

export function toggleTheme(): void {
  theme.value = theme.value === 'dark' ? 'light' : 'dark';
  applyTheme(theme.value, true);
}

// ---------------------------------------------------------------------------------------------
// The transport and its events

let connecting = false;
/** The transport being chosen now (resolved when none is). */
let choosing: Promise<void> = Promise.resolve();

/** Pick the best transport that works now, watching `session`. */
function reconnect(session: string | null): Promise<void> {
  choosing = choose(session);
  return choosing;
}

async function choose(session: string | null): Promise<void> {
  transport?.close();
  transport = null;
  connecting = true;
  const t = await connect(
    {
      event: onEvent,
      error: (e) => {
        if (e.unauthorized) keyDialog.value = { open: true, error: e.message };
        // A session that is gone is reported once, by the history load.
        else if (e.code !== 'session_not_found') notify(e.message);
      },
      status: (kind, state) => {
        batch(() => {
          transportKind.value = kind;
          link.value = state;
        });
        // A refused WebSocket handshake does not say why: a plain request tells a bad key.
        if (state === 'reconnecting') checkKeySoon();
      },
      resync: () => {
        void loadHistory();
        if (transport?.kind === 'rest') void refreshCurrent();
      },
      // The WebSocket keeps failing while the API answers: choose again (SSE, if it works).
      unstable: () => {
        if (connecting) return;
        void api
          .info()
          .then(() => reconnect(currentId.value))
          .catch(() => undefined);
      },
    },
    session,
    preferredTransport(),
  ).finally(() => (connecting = false));
  transport = t;
  transportKind.value = t.kind;
  t.watch(currentId.value);
}

const checkKeySoon = debounce(() => void api.info().catch(() => undefined), 2000);
const refreshModelsSoon = debounce(() => void refreshModels(), 300);
const refreshSessionsSoon = debounce(() => void refreshSessions(), 300);
const loadHistorySoon = debounce(() => void loadHistory(), 250);

function onEvent(event: ChorusEvent): void {
  if (event.type.startsWith('model.')) {
    refreshModelsSoon();
    return;
  }
  const sessionId = 'session_id' in event ? event.session_id : null;
  if (sessionId !== currentId.value) {
    if (event.type.startsWith('session.')) refreshSessionsSoon();
    return;
  }
  conversation.value = applyEvent(conversation.value, event);
  switch (event.type) {
    case 'session.status_changed': {
      const s = currentSession.value;
      if (s) replaceSession({ ...s, status: event.status });
      refreshSessionsSoon();
      break;
    }
    case 'session.created':
    case 'session.updated':
      replaceSession(event.session);
      refreshSessionsSoon();
      break;
    case 'session.deleted':
      refreshSessionsSoon();
      void leaveDeleted(event.session_id);
      break;
    case 'message.start':
      refreshSessionsSoon();
      break;
    case 'message.complete':
      refreshModelsSoon();
      refreshSessionsSoon();
      loadHistorySoon();
      break;
    case 'message.error':
      if (event.error.code !== 'cancelled') notify(event.error.message);
      refreshModelsSoon();
      refreshSessionsSoon();
      loadHistorySoon();
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Loading

export async function refreshModels(): Promise<void> {
  try {
    models.value = (await api.models()).data;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 0)) report(e);
  }
}

let sessionsRequest = 0;
export async function refreshSessions(): Promise<void> {
  const n = ++sessionsRequest;
  try {
    const list = (await api.sessions(search.value.trim())).data;
    if (n !== sessionsRequest) return;
    batch(() => {
      sessions.value = list;
      sessionsLoaded.value = true;
      const current = list.find((s) => s.id === currentId.value);
      if (current) currentSession.value = current;
    });
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 0)) report(e);
  }
}

export const searchSoon = debounce(() => void refreshSessions(), 250);

async function refreshCurrent(): Promise<void> {
  const id = currentId.value;
  if (!id) return;
  try {
    const s = await api.session(id);
    if (currentId.value === id) replaceSession(s);
  } catch {
    // The next refresh tries again.
  }
}

let historyRequest = 0;
/** Load the open session's stored messages into its conversation. */
async function loadHistory(): Promise<void> {
  const id = currentId.value;
  if (!id) return;
  const n = ++historyRequest;
  const endedBefore = conversation.value.finished.slice();
  try {
    const list = (await api.messages(id)).data;
    if (n !== historyRequest || currentId.value !== id) return;
    conversation.value = withHistory(conversation.value, list, endedBefore);
  } catch (e) {
    if (currentId.value !== id) return;
    if (e instanceof ApiError && e.status === 404) {
      notify('This chat no longer exists.');
      await leaveDeleted(id);
      return;
    }
    if (!(e instanceof ApiError && e.status === 0)) report(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Routing and sessions

/** Open what the URL names; with nothing named, the most recent session or the empty state. */
async function route(): Promise<void> {
  if (!started) return;
  const id = sessionFromHash();
  if (id) {
    if (id !== currentId.value) await openSession(id);
    return;
  }
  if (!sessionsLoaded.value) await refreshSessions();
  const recent = search.value ? undefined : sessions.value[0];
  if (recent) {
    setHash(recent.id, true);
    await openSession(recent.id);
  } else {
    showEmpty();
  }
}

function showEmpty(): void {
  batch(() => {
    currentId.value = null;
    currentSession.value = null;
    conversation.value = emptyConversation(null);
  });
  transport?.watch(null);
}

export async function openSession(id: string, force = false): Promise<void> {
  if (id === currentId.value && !force) return;
  batch(() => {
    currentId.value = id;
    currentSession.value = sessions.value.find((s) => s.id === id) ?? null;
    conversation.value = emptyConversation(id);
    sidebarOpen.value = false;
  });
  transport?.watch(id);
  await Promise.all([loadHistory(), refreshCurrent()]);
}

async function leaveDeleted(id: string): Promise<void> {
  sessions.value = sessions.value.filter((s) => s.id !== id);
  if (currentId.value !== id) return;
  const next = sessions.value[0];
  if (next) {
    setHash(next.id, true);
    await openSession(next.id);
  } else {
    setHash(null, true);
    showEmpty();
  }
}

function modelForNew(): string | null {
  const pick = draftModel.value ?? currentSession.value?.model ?? defaultPick.value;
  return !pick || pick === 'auto' ? null : pick;
}

/** "New chat": a session now, with the model the picker shows. */
export async function newChat(): Promise<void> {
  if (creating.value) return;
  creating.value = true;
  try {
    const model = modelForNew();
    const session = await api.createSession(model ? { model } : {});
    sessions.value = [session, ...sessions.value.filter((s) => s.id !== session.id)];
    draftModel.value = null;
    setHash(session.id);
    await openSession(session.id);
    refreshSessionsSoon();
  } catch (e) {
    report(e);
  } finally {
    creating.value = false;
  }
}

export async function renameSession(session: Session, title: string): Promise<boolean> {
  try {
    replaceSession(await api.updateSession(session.id, { title: title.trim() }));
    refreshSessionsSoon();
    return true;
  } catch (e) {
    report(e);
    return false;
  }
}

export async function deleteSession(session: Session): Promise<boolean> {
  try {
    await api.deleteSession(session.id);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) {
      report(e);
      return false;
    }
  }
  await leaveDeleted(session.id);
  refreshSessionsSoon();
  return true;
}

/** The picker changed: the open session's model (PATCH), or the next new chat's. */
export async function pickModel(value: string): Promise<void> {
  const session = currentSession.value;
  if (!session || currentId.value !== session.id) {
    draftModel.value = value;
    return;
  }
  const model = value === 'auto' ? null : value;
  const before = session;
  replaceSession({ ...session, model });
  try {
    replaceSession(await api.updateSession(session.id, { model }));
  } catch (e) {
    replaceSession(before);
    report(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Prompts

/** Send a prompt from the composer; false when it was not taken (the text goes back). */
export async function send(content: string): Promise<boolean> {
  const text = content.trim();
  if (!text) return false;
  // Right after sign-in or a reconnect the transport may still be choosing itself.
  if (!transport) await choosing.catch(() => undefined);
  if (!transport) return false;
  let id = currentId.value;
  if (!id) {
    // The empty state: the first send creates the session, titled after the prompt.
    try {
      const model = modelForNew();
      const session = await api.createSession({ title: titleFrom(text), ...(model ? { model } : {}) });
      sessions.value = [session, ...sessions.value];
      draftModel.value = null;
      setHash(session.id);
      await openSession(session.id);
      id = session.id;
    } catch (e) {
      report(e);
      return false;
    }
  } else {
    const session = currentSession.value;
    if (session && !session.title.trim() && session.message_count === 0) void nameAfter(session, text);
  }
  const sessionId = id;
  const localId = `local_${++pendingId}`;
  conversation.value = addPending(conversation.value, {
    localId,
    content: text,
    seenBefore: shownUserMessages(conversation.value, text),
  });
  const rest = transport.kind === 'rest';
  if (rest) conversation.value = addWaiting(conversation.value, 1);
  try {
    await transport.prompt(sessionId, text);
    refreshSessionsSoon();
    return true;
  } catch (e) {
    if (currentId.value === sessionId) conversation.value = removePending(conversation.value, localId);
    // A REST prompt that was stopped ends with the cancel's error: the partial answer shows it.
    if (e instanceof ApiError && e.code === 'cancelled') return true;
    report(e);
    return false;
  } finally {
    if (rest && currentId.value === sessionId) {
      conversation.value = removePending(addWaiting(conversation.value, -1), localId);
      await loadHistory();
      void refreshCurrent();
      void refreshModels();
    }
  }
}

/** Title an untitled session after its first prompt. */
async function nameAfter(session: Session, prompt: string): Promise<void> {
  const title = titleFrom(prompt);
  replaceSession({ ...session, title });
  try {
    replaceSession(await api.updateSession(session.id, { title }));
  } catch {
    // A server without PATCH keeps the session untitled.
  }
  refreshSessionsSoon();
}

export async function stop(): Promise<void> {
  const id = currentId.value;
  if (!id || !transport) return;
  try {
    await transport.cancel(id);
  } catch (e) {
    report(e);
  }
}

export async function answerPermission(requestId: string, allow: boolean): Promise<void> {
  const id = currentId.value;
  if (!id || !transport) return;
  conversation.value = setPermission(conversation.value, requestId, 'sending');
  try {
    await transport.permission(id, requestId, allow);
    conversation.value = setPermission(conversation.value, requestId, allow ? 'allowed' : 'denied');
  } catch (e) {
    conversation.value = setPermission(conversation.value, requestId, 'pending');
    report(e);
  }
}

export function openDialog(d: typeof dialog.value): void {
  dialog.value = d;
}
