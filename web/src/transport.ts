// How the page talks live to the server: a WebSocket (`/ws`, the `chorus` subprotocol with the
// key), else SSE (`GET …/events` read with fetch, prompts as `POST …/prompt {async: true}`),
// else plain REST (`POST …/prompt` that waits, and polling). Each transport delivers the watched
// session's events with their log ids, remembers the last id per session, and reconnects with
// backoff (0.5 s doubling to 10 s) resuming after that id, so no event is lost or repeated.

import { createParser } from 'eventsource-parser';
import { api, ApiError, authHeaders, errorOf, getKey } from './api';
import type { ChorusEvent, Envelope, EventError, WsRequest, WsResponse } from './types';

export type TransportKind = 'ws' | 'sse' | 'rest';
/** `live`: connected; `connecting`/`reconnecting`: trying; `offline`: given up on this stream. */
export type LinkState = 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface TransportHandlers {
  /** An event of the watched session (or a server event such as `model.loaded`). */
  event(event: ChorusEvent, logId: number | null): void;
  /** Something failed that no caller awaits: show it. */
  error(error: ApiError): void;
  status(kind: TransportKind, state: LinkState): void;
  /** Events may have been missed (or this transport has none): reload the history. */
  resync(): void;
  /** The WebSocket keeps failing to connect: the caller may pick a transport again. */
  unstable(): void;
}

export interface Transport {
  readonly kind: TransportKind;
  /** Watch this session from now on (live; the caller loads the history). */
  watch(sessionId: string | null): void;
  /** Send a prompt; resolves once the server took it (REST: once it is answered). */
  prompt(sessionId: string, content: string): Promise<void>;
  cancel(sessionId: string): Promise<void>;
  permission(sessionId: string, requestId: string, allow: boolean): Promise<void>;
  /** Reconnect now if waiting to (the page became visible, the network came back). */
  wake(): void;
  close(): void;
}

const OPEN_TIMEOUT_MS = 3000;
/** With no session to subscribe to, a socket open this long counts as working. */
const STEADY_MS = 500;
/** Failed connections in a row after which the transport reports itself unstable. */
const UNSTABLE_AFTER = 3;
const REQUEST_TIMEOUT_MS = 20000;
const POLL_MS = 2000;

/** 0.5 s, 1 s, 2 s, … at most 10 s. */
export function backoffDelay(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 10000);
}

/** The base64url (no padding) of a text's UTF-8 bytes: the key's WebSocket subprotocol. */
export function base64url(text: string): string {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The last event id seen per session: where a reconnect resumes. */
class ResumePoints {
  private ids = new Map<string, number>();

  get(sessionId: string): number | undefined {
    return this.ids.get(sessionId);
  }

  /** Record an event id; false for one already seen (a duplicate to drop). */
  see(sessionId: string, id: number | null): boolean {
    if (id === null || !Number.isFinite(id)) return true;
    const last = this.ids.get(sessionId);
    if (last !== undefined && id <= last) return false;
    this.ids.set(sessionId, id);
    return true;
  }
}

function eventSession(event: ChorusEvent): string | null {
  return 'session_id' in event ? event.session_id : null;
}

function parseEvent(text: string): ChorusEvent | null {
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string') {
      return value as ChorusEvent;
    }
  } catch {
    // Not JSON: ignored.
  }
  return null;
}

function wsErrorToApi(payload: EventError | null | undefined): ApiError {
  return new ApiError(payload?.message ?? 'request failed', 400, payload?.type ?? 'server_error', payload?.code ?? null);
}

// ---------------------------------------------------------------------------------------------
// WebSocket

interface Pending {
  action: WsRequest['action'];
  resolve: (response: WsResponse) => void;
  reject: (error: ApiError) => void;
  timer: number;
}

class WsTransport implements Transport {
  readonly kind = 'ws';
  private socket: WebSocket | null = null;
  private watched: string | null = null;
  private resume = new ResumePoints();
  private pending = new Map<string, Pending>();
  /** Request ids of prompts the server queued: their failure arrives as `message.error` too. */
  private queuedPrompts = new Set<string>();
  private nextId = 1;
  /** Reconnect attempts since the last good connection: the backoff's exponent. */
  private attempt = 0;
  /** Connections in a row that opened (or not) but never proved to work. */
  private failures = 0;
  private retryTimer = 0;
  private closed = false;
  /** A connection worked before: a new one is a reconnect. */
  private wasConnected = false;

  constructor(
    private readonly handlers: TransportHandlers,
    initialSession: string | null,
  ) {
    this.watched = initialSession;
  }

  /**
   * Open a socket; resolves true once it proved to work, false when refused, closed first, or
   * not working within 3 s. Working means: the server answered the `subscribe` of the watched
   * session (any envelope will do), or, with no session to watch, the socket stayed open a
   * moment (a proxy that accepts the upgrade and hangs up at once does not count).
   */
  open(): Promise<boolean> {
    return new Promise((resolve) => {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const key = getKey();
      const protocols = key ? ['chorus', `bearer.${base64url(key)}`] : ['chorus'];
      let socket: WebSocket;
      try {
        socket = new WebSocket(`${scheme}://${location.host}/ws`, protocols);
      } catch {
        resolve(false);
        return;
      }
      this.socket = socket;
      let working = false;
      let settled = false;
      const settle = (ok: boolean) => {
        window.clearTimeout(timer);
        window.clearTimeout(steady);
        if (settled) return;
        settled = true;
        resolve(ok);
      };
      const timer = window.setTimeout(() => {
        if (!working) socket.close();
      }, OPEN_TIMEOUT_MS);
      let steady = 0;
      const works = () => {
        if (working) return;
        working = true;
        const reconnected = this.wasConnected;
        this.wasConnected = true;
        this.attempt = 0;
        this.failures = 0;
        this.handlers.status('ws', 'live');
        if (reconnected && this.watched && this.resume.get(this.watched) === undefined) this.handlers.resync();
        settle(true);
      };
      socket.onopen = () => {
        if (this.watched) this.subscribe(this.watched);
        else steady = window.setTimeout(works, STEADY_MS);
      };
      socket.onmessage = (message) => {
        works();
        if (typeof message.data === 'string') this.onMessage(message.data);
      };
      socket.onclose = () => {
        if (this.socket === socket) this.socket = null;
        const worked = working;
        settle(false);
        this.onDrop();
        if (this.closed) return;
        if (!worked) {
          this.failures += 1;
          // The first try's failure is the caller's to handle (it falls back).
          if (!this.wasConnected && this.attempt === 0) return;
          if (this.failures >= UNSTABLE_AFTER) this.handlers.unstable();
        }
        this.scheduleReconnect();
      };
    });
  }

  /** Watch a session, resuming after the last event seen of it (a reconnect) when there is one. */
  private subscribe(sessionId: string): void {
    const last = this.resume.get(sessionId);
    const resumeFrom = last !== undefined ? { last_event_id: last } : {};
    this.request({ action: 'subscribe', session_id: sessionId, ...resumeFrom }).catch((e: ApiError) => {
      if (e.type !== 'network_error') this.handlers.error(e);
    });
  }

  private onDrop(): void {
    for (const [, p] of this.pending) {
      window.clearTimeout(p.timer);
      p.reject(new ApiError('the connection to the server dropped', 0, 'network_error'));
    }
    this.pending.clear();
    this.queuedPrompts.clear();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.handlers.status('ws', 'reconnecting');
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => void this.open(), delay);
  }

  wake(): void {
    if (this.closed || this.socket) return;
    window.clearTimeout(this.retryTimer);
    this.attempt = Math.max(this.attempt, 1);
    void this.open();
  }

  private onMessage(text: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      return;
    }
    switch (envelope.type) {
      case 'event': {
        const event = envelope.payload as ChorusEvent;
        const session = eventSession(event);
        if (session !== null && session !== this.watched) return;
        const id = envelope.id !== null ? Number(envelope.id) : null;
        if (session !== null && !this.resume.see(session, id)) return;
        this.handlers.event(event, id);
        return;
      }
      case 'response': {
        const response = envelope.payload as WsResponse;
        const pending = envelope.id ? this.pending.get(envelope.id) : undefined;
        if (!pending || !envelope.id) return;
        // A prompt's first answer is `queued`; the rest of its responses repeat its events.
        this.pending.delete(envelope.id);
        window.clearTimeout(pending.timer);
        if (pending.action === 'prompt') this.queuedPrompts.add(envelope.id);
        pending.resolve(response);
        return;
      }
      case 'error': {
        const error = wsErrorToApi(envelope.payload as EventError);
        const pending = envelope.id ? this.pending.get(envelope.id) : undefined;
        if (pending && envelope.id) {
          this.pending.delete(envelope.id);
          window.clearTimeout(pending.timer);
          pending.reject(error);
          return;
        }
        // A queued prompt's failure is also its `message.error` event, which is shown.
        if (envelope.id && this.queuedPrompts.delete(envelope.id)) return;
        this.handlers.error(error);
        return;
      }
      default:
        return;
    }
  }

  private request(payload: WsRequest): Promise<WsResponse> {
    return new Promise((resolve, reject) => {
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        reject(new ApiError('not connected to the server', 0, 'network_error'));
        return;
      }
      const id = `req_${this.nextId++}`;
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError('the server did not answer in time', 0, 'timeout'));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { action: payload.action, resolve, reject, timer });
      const envelope: Envelope<WsRequest> = { type: 'request', id, timestamp: new Date().toISOString(), payload };
      socket.send(JSON.stringify(envelope));
    });
  }

  private get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  watch(sessionId: string | null): void {
    if (sessionId === this.watched) return;
    this.watched = sessionId;
    // Live from now on: the caller loads the history.
    if (sessionId && this.isOpen) {
      this.request({ action: 'subscribe', session_id: sessionId }).catch((e: ApiError) => {
        if (e.type !== 'network_error') this.handlers.error(e);
      });
    }
  }

  async prompt(sessionId: string, content: string): Promise<void> {
    // While reconnecting, the REST endpoint takes it; its events arrive once resumed.
    if (!this.isOpen) {
      await api.promptAsync(sessionId, content);
      return;
    }
    await this.request({ action: 'prompt', content, session_id: sessionId });
  }

  async cancel(sessionId: string): Promise<void> {
    if (!this.isOpen) {
      await api.cancel(sessionId);
      return;
    }
    await this.request({ action: 'cancel', session_id: sessionId });
  }

  async permission(sessionId: string, requestId: string, allow: boolean): Promise<void> {
    if (!this.isOpen) {
      await api.permission(sessionId, requestId, allow);
      return;
    }
    await this.request({ action: 'permission_reply', request_id: requestId, allow, session_id: sessionId });
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.retryTimer);
    this.socket?.close();
    this.socket = null;
  }
}

// ---------------------------------------------------------------------------------------------
// SSE

class SseTransport implements Transport {
  readonly kind = 'sse';
  private watched: string | null = null;
  private resume = new ResumePoints();
  private abort: AbortController | null = null;
  private attempt = 0;
  private retryTimer = 0;
  private waking: (() => void) | null = null;

  constructor(private readonly handlers: TransportHandlers) {
    // The probe reached the server's stream; each session's own stream reports from here on.
    handlers.status('sse', 'live');
  }

  watch(sessionId: string | null): void {
    if (sessionId === this.watched) return;
    this.watched = sessionId;
    this.stop();
    if (sessionId) void this.run(sessionId);
    else this.handlers.status('sse', 'live');
  }

  private stop(): void {
    this.abort?.abort();
    this.abort = null;
    window.clearTimeout(this.retryTimer);
    this.attempt = 0;
  }

  /** Read the session's stream until it is no longer watched, reconnecting as it drops. */
  private async run(sessionId: string): Promise<void> {
    const controller = new AbortController();
    this.abort = controller;
    let connectedBefore = false;
    while (!controller.signal.aborted && this.watched === sessionId) {
      this.handlers.status('sse', connectedBefore || this.attempt > 0 ? 'reconnecting' : 'connecting');
      const last = this.resume.get(sessionId);
      try {
        const response = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}/events`, {
          headers: {
            Accept: 'text/event-stream',
            ...authHeaders(),
            ...(last !== undefined ? { 'Last-Event-ID': String(last) } : {}),
          },
          signal: controller.signal,
          cache: 'no-store',
        });
        if (!response.ok) {
          const error = await errorOf(response);
          // A missing session or a refused key does not get better by retrying.
          if (response.status === 401 || response.status === 404) {
            this.handlers.status('sse', 'offline');
            this.handlers.error(error);
            return;
          }
          throw error;
        }
        if (!response.body) throw new ApiError('the event stream has no body', 0, 'network_error');
        this.attempt = 0;
        this.handlers.status('sse', 'live');
        if (connectedBefore && last === undefined) this.handlers.resync();
        connectedBefore = true;
        await this.read(sessionId, response.body);
      } catch {
        // A network failure or a dropped stream: retried below.
      }
      if (controller.signal.aborted || this.watched !== sessionId) return;
      this.handlers.status('sse', 'reconnecting');
      await new Promise<void>((resolve) => {
        this.waking = resolve;
        this.retryTimer = window.setTimeout(resolve, backoffDelay(this.attempt));
      });
      this.waking = null;
      this.attempt += 1;
    }
  }

  private async read(sessionId: string, body: ReadableStream<Uint8Array>): Promise<void> {
    const parser = createParser({
      onEvent: (message) => {
        const event = parseEvent(message.data);
        if (!event) return;
        const id = message.id !== undefined && message.id !== '' ? Number(message.id) : null;
        if (this.watched !== sessionId || !this.resume.see(sessionId, id)) return;
        this.handlers.event(event, id);
      },
    });
    const reader = body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
    }
  }

  wake(): void {
    if (this.waking) {
      window.clearTimeout(this.retryTimer);
      this.waking();
    }
  }

  async prompt(sessionId: string, content: string): Promise<void> {
    await api.promptAsync(sessionId, content);
  }

  async cancel(sessionId: string): Promise<void> {
    await api.cancel(sessionId);
  }

  async permission(sessionId: string, requestId: string, allow: boolean): Promise<void> {
    await api.permission(sessionId, requestId, allow);
  }

  close(): void {
    this.watched = null;
    this.stop();
  }
}

/** Whether the server streams SSE to this page: the all-events stream answers with one. */
async function probeSse(): Promise<boolean> {
  const controller = new AbortController();
  const timer = window.setTimeout(() => controller.abort(), OPEN_TIMEOUT_MS);
  try {
    const response = await fetch('/api/v1/events', {
      headers: { Accept: 'text/event-stream', ...authHeaders() },
      signal: controller.signal,
      cache: 'no-store',
    });
    return response.ok && (response.headers.get('content-type') ?? '').includes('text/event-stream');
  } catch {
    return false;
  } finally {
    window.clearTimeout(timer);
    controller.abort();
  }
}

// ---------------------------------------------------------------------------------------------
// REST

class RestTransport implements Transport {
  readonly kind = 'rest';
  private timer = 0;

  constructor(private readonly handlers: TransportHandlers) {
    handlers.status('rest', 'live');
  }

  watch(sessionId: string | null): void {
    window.clearInterval(this.timer);
    if (sessionId) this.timer = window.setInterval(() => this.handlers.resync(), POLL_MS);
  }

  async prompt(sessionId: string, content: string): Promise<void> {
    await api.promptWait(sessionId, content);
  }

  async cancel(sessionId: string): Promise<void> {
    await api.cancel(sessionId);
  }

  async permission(sessionId: string, requestId: string, allow: boolean): Promise<void> {
    await api.permission(sessionId, requestId, allow);
  }

  wake(): void {
    this.handlers.resync();
  }

  close(): void {
    window.clearInterval(this.timer);
  }
}

/**
 * The best transport that works: WebSocket, else SSE, else REST, watching `session` (the
 * WebSocket's first `subscribe` is also its proof of working). `prefer` (the page's
 * `?transport=`, for testing) skips the better ones.
 */
export async function connect(
  handlers: TransportHandlers,
  session: string | null,
  prefer?: TransportKind,
): Promise<Transport> {
  if (!prefer || prefer === 'ws') {
    handlers.status('ws', 'connecting');
    const ws = new WsTransport(handlers, session);
    if (await ws.open()) return ws;
    ws.close();
  }
  if (!prefer || prefer === 'ws' || prefer === 'sse') {
    handlers.status('sse', 'connecting');
    if (await probeSse()) return new SseTransport(handlers);
  }
  return new RestTransport(handlers);
}
