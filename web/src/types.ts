// Wire types of chorus's native API, mirroring the Rust ones: `chorus-proto/src/native.rs`
// (sessions, messages, events, info), `models.rs` (the model pool), `route.rs` (the router's
// decision) and `ws.rs` (the WebSocket envelope). Times are Unix milliseconds.

/** OpenAI's error object, the body of every failed request. */
export interface ErrorBody {
  error: { message: string; type: string; param?: string | null; code?: string | null };
}

/** `GET /api/v1/info`. `router` and `url` come with newer servers. */
export interface Info {
  version: string;
  uptime_s: number;
  models: string[];
  store: string;
  agents: string[];
  router?: boolean;
  url?: string | null;
}

export type ModelStatus = 'unloaded' | 'loading' | 'loaded' | 'failed';

/** One registered model (`GET /api/v1/models`). */
export interface ModelEntry {
  id: string;
  aliases: string[];
  source?: string;
  capabilities: string[];
  status: ModelStatus;
  bytes: number;
  pinned: boolean;
  in_flight: number;
  slots?: { total: number; busy: number } | null;
  n_ctx?: number | null;
  expires_at: string | null;
  last_error: string | null;
}

export interface ModelList {
  object: 'list';
  data: ModelEntry[];
  memory_budget: number;
  memory_used: number;
}

export type SessionStatus = 'idle' | 'busy' | 'cancelled' | 'error';

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
}

export interface Session {
  id: string;
  created_at: number;
  updated_at: number;
  title: string;
  work_dir: string;
  agent: string;
  model: string | null;
  status: SessionStatus;
  message_count: number;
  token_usage: TokenUsage;
  queue_length: number;
}

export interface List<T> {
  object: 'list';
  data: T[];
}

/** OpenAI's tool call: `arguments` is a JSON object as text. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** What the router decided for one prompt. */
export interface Route {
  category: string;
  stage: string;
  score: number | null;
  margin?: number | null;
  model: string | null;
}

export type Role = 'user' | 'assistant' | 'tool' | 'system';

export interface Message {
  id: string;
  session_id: string;
  seq: number;
  created_at: number;
  role: Role;
  content: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  usage?: TokenUsage;
  finish_reason?: string;
  metadata?: { model?: string; route?: Route };
}

/** Answer to an `async` prompt. */
export interface PromptAccepted {
  prompt_id: string;
  session_id: string;
  status: string;
  queue_position: number;
}

export interface CancelResult {
  session_id: string;
  cancelled: boolean;
  dropped: number;
}

export interface Deleted {
  id: string;
  object: string;
  deleted: boolean;
}

/** The error part of `message.error` (and of a WebSocket `error` envelope). */
export interface EventError {
  message: string;
  type: string;
  code: string | null;
}

/** An event (SSE `data:`, a WebSocket `event` envelope's payload); `enum Event` in Rust. */
export type ChorusEvent =
  | { type: 'session.created'; session_id: string; session: Session }
  | { type: 'session.updated'; session_id: string; session: Session }
  | { type: 'session.deleted'; session_id: string }
  | { type: 'session.status_changed'; session_id: string; status: SessionStatus }
  | { type: 'message.start'; session_id: string; prompt_id: string; user_message: Message }
  | { type: 'message.chunk'; session_id: string; prompt_id: string; content: string }
  | { type: 'message.complete'; session_id: string; prompt_id: string; message: Message }
  | { type: 'message.error'; session_id: string; prompt_id: string; error: EventError; message?: Message }
  | { type: 'agent.idle'; session_id: string }
  | { type: 'agent.thinking'; session_id: string; prompt_id: string; round: number }
  | { type: 'tool.call_start'; session_id: string; prompt_id: string; call: ToolCall }
  | {
      type: 'tool.call_complete';
      session_id: string;
      prompt_id: string;
      call_id: string;
      name: string;
      output: string;
    }
  | {
      type: 'tool.call_error';
      session_id: string;
      prompt_id: string;
      call_id: string;
      name: string;
      error: string;
      code: string;
    }
  | {
      type: 'tool.permission_request';
      session_id: string;
      prompt_id: string;
      request_id: string;
      call: ToolCall;
      timeout_ms: number;
    }
  | {
      type: 'session.compacted';
      session_id: string;
      prompt_id: string;
      messages_dropped: number;
      messages_out_of_window: number;
      first_message_id: string;
      prompt_tokens_before: number;
      prompt_tokens_after: number;
      budget_tokens: number;
    }
  | { type: 'route.decided'; session_id: string; prompt_id: string; route: Route }
  | { type: 'model.loading'; model: string }
  | { type: 'model.loaded'; model: string; bytes: number; load_ms: number; error?: string }
  | { type: 'model.unloaded'; model: string; reason: string };

export type EventType = ChorusEvent['type'];

/** A WebSocket message, both ways (`chorus_proto::ws::Envelope`). */
export interface Envelope<P = unknown> {
  type: 'request' | 'response' | 'event' | 'error';
  id: string | null;
  timestamp?: string | number;
  payload: P;
}

/** A client's request (`chorus_proto::ws::Request`). */
export type WsRequest =
  | { action: 'prompt'; content: string; session_id?: string }
  | { action: 'cancel'; session_id?: string }
  | { action: 'subscribe'; session_id: string; last_event_id?: number }
  | { action: 'permission_reply'; request_id: string; allow: boolean; session_id?: string };

/** The server's answer to a request (`chorus_proto::ws::Response`). */
export type WsResponse =
  | { kind: 'queued'; prompt_id: string; queue_position: number; done: boolean }
  | { kind: 'text'; content: string; done: boolean }
  | { kind: 'tool_call'; tool_name: string; arguments: unknown; session_id: string; call_id: string }
  | { kind: 'tool_result'; tool_name: string; result: string; success: boolean; call_id: string }
  | { kind: 'complete'; message: Message; usage: TokenUsage; done: boolean }
  | { kind: 'cancelled'; cancelled: boolean; dropped: number }
  | { kind: 'subscribed'; session_id: string }
  | { kind: 'permission_recorded'; request_id: string; allow: boolean };
