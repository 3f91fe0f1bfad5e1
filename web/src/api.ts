// The HTTP client of chorus's API: the stored API key (sent as `Authorization: Bearer`),
// JSON requests, OpenAI error objects turned into `ApiError`, and one hook that a 401 calls
// (it reopens the key dialog). Every REST call the page makes goes through here.

import type {
  CancelResult,
  Deleted,
  ErrorBody,
  Info,
  List,
  Message,
  ModelList,
  PromptAccepted,
  Session,
} from './types';

const KEY_STORAGE = 'chorus.apiKey';

/** A failed request: the server's error object, or a network failure (`status` 0). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get unauthorized(): boolean {
    return this.status === 401 || this.type === 'authentication_error';
  }
}

let apiKey: string | null = readStoredKey();
let onUnauthorized: (error: ApiError) => void = () => {};

function readStoredKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function getKey(): string | null {
  return apiKey;
}

/** Use `key` from now on; `persist` also stores it for the next visit. */
export function setKey(key: string | null, persist = true): void {
  apiKey = key;
  if (!persist) return;
  try {
    if (key === null) localStorage.removeItem(KEY_STORAGE);
    else localStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Storage may be off (private mode): the key still works for this page.
  }
}

/** Called on every 401, after the request's promise rejects. */
export function setUnauthorizedHandler(handler: (error: ApiError) => void): void {
  onUnauthorized = handler;
}

/** Headers every request carries: the key when there is one. */
export function authHeaders(key: string | null = apiKey): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The error a response carries: its OpenAI error object when it has one. */
export async function errorOf(response: Response): Promise<ApiError> {
  let body: Partial<ErrorBody> | null = null;
  try {
    body = (await response.json()) as Partial<ErrorBody>;
  } catch {
    body = null;
  }
  const e = body?.error;
  const message = e?.message || `${response.status} ${response.statusText || 'request failed'}`;
  return new ApiError(message, response.status, e?.type ?? 'http_error', e?.code ?? null);
}

export function networkError(cause: unknown): ApiError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ApiError(`cannot reach the server (${detail})`, 0, 'network_error');
}

interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** Use this key instead of the stored one (checking a key the user typed). */
  key?: string | null;
  /** Do not call the 401 hook (the key dialog handles its own check). */
  quiet401?: boolean;
}

/** Fetch with the key; rejects with `ApiError` for network failures and non-2xx answers. */
export async function send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(options.key ?? apiKey) };
  let body: string | undefined;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body, signal: options.signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw networkError(e);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (error.unauthorized && !options.quiet401) queueMicrotask(() => onUnauthorized(error));
    throw error;
  }
  return response;
}

async function json<T>(method: string, path: string, options?: RequestOptions): Promise<T> {
  const response = await send(method, path, options);
  return (await response.json()) as T;
}

const enc = encodeURIComponent;

/** The endpoints the page uses. */
export const api = {
  info: (options?: RequestOptions) => json<Info>('GET', '/api/v1/info', options),
  models: () => json<ModelList>('GET', '/api/v1/models'),
  sessions: (q = '') => json<List<Session>>('GET', `/api/v1/sessions${q ? `?q=${enc(q)}` : ''}`),
  session: (id: string) => json<Session>('GET', `/api/v1/sessions/${enc(id)}`),
  createSession: (body: { title?: string; model?: string | null }) =>
    json<Session>('POST', '/api/v1/sessions', { body }),
  updateSession: (id: string, body: { title?: string; model?: string | null }) =>
    json<Session>('PATCH', `/api/v1/sessions/${enc(id)}`, { body }),
  deleteSession: (id: string) => json<Deleted>('DELETE', `/api/v1/sessions/${enc(id)}`),
  messages: (id: string, signal?: AbortSignal) =>
    json<List<Message>>('GET', `/api/v1/sessions/${enc(id)}/messages`, { signal }),
  promptAsync: (id: string, content: string) =>
    json<PromptAccepted>('POST', `/api/v1/sessions/${enc(id)}/prompt`, { body: { content, async: true } }),
  /** Waits for the answer: the stored assistant message. */
  promptWait: (id: string, content: string) =>
    json<Message>('POST', `/api/v1/sessions/${enc(id)}/prompt`, { body: { content } }),
  cancel: (id: string) => json<CancelResult>('POST', `/api/v1/sessions/${enc(id)}/cancel`),
  permission: (id: string, requestId: string, allow: boolean) =>
    send('POST', `/api/v1/sessions/${enc(id)}/permissions/${enc(requestId)}`, { body: { allow } }),
  /** The QR code of the server's LAN URL, as an SVG blob. */
  qr: async () => (await send('GET', '/qr')).blob(),
};
