// The conversation model of the open session, built from two sources and merged for display:
// the stored history (`GET …/messages`) and the live events since the page started watching
// (`applyEvent`, a pure reducer). A turn renders as the user's message, a streaming assistant
// bubble fed by chunks, tool-call and permission cards between rounds, and the stored final
// message; every entry has a stable key (message id, call id) so history and live entries of
// the same thing dedupe, and a second tab renders the very same conversation from the events.

import type { ChorusEvent, Message, Route, ToolCall } from './types';

export type ToolStatus = 'running' | 'done' | 'error' | 'denied';
export type PermissionDecision = 'pending' | 'sending' | 'allowed' | 'denied' | 'expired';

export interface MessageEntry {
  kind: 'message';
  key: string;
  message: Message;
  promptId?: string;
}

/** The assistant's text of one round while it streams (and after, until the history has it). */
export interface StreamEntry {
  kind: 'stream';
  key: string;
  promptId: string;
  text: string;
  done: boolean;
  /** How it ended when it is not replaced by a stored message: `cancelled`, `error`, `tool_calls`. */
  finish?: string;
}

export interface ToolEntry {
  kind: 'tool';
  key: string;
  callId: string;
  name: string;
  /** The arguments as the model wrote them (JSON text). */
  args: string;
  status: ToolStatus;
  output?: string;
  promptId?: string;
}

export interface PermissionEntry {
  kind: 'permission';
  key: string;
  requestId: string;
  promptId: string;
  call: ToolCall;
  timeoutMs: number;
  /** `Date.now()` when the request arrived: the countdown's start. */
  receivedAt: number;
  decision: PermissionDecision;
}

export interface NoteEntry {
  kind: 'note';
  key: string;
  text: string;
}

export type Entry = MessageEntry | StreamEntry | ToolEntry | PermissionEntry | NoteEntry;

/** A prompt this page sent that has not started yet (no `message.start`). */
export interface PendingPrompt {
  localId: string;
  content: string;
  /** User messages with this text already shown when it was sent (REST dedupe). */
  seenBefore: number;
}

export interface Conversation {
  sessionId: string | null;
  history: Entry[];
  historyLoaded: boolean;
  live: Entry[];
  /** Prompts started and not ended. */
  running: string[];
  /** Prompts ended: their live entries give way to the history once it is reloaded. */
  finished: string[];
  routes: Record<string, Route>;
  pending: PendingPrompt[];
  /** REST prompts waiting for their answer. */
  waiting: number;
  notes: number;
  /** Answered permission requests of ended prompts, by call id: shown before their tool cards. */
  permissions: Record<string, PermissionEntry>;
}

export function emptyConversation(sessionId: string | null): Conversation {
  return {
    sessionId,
    history: [],
    historyLoaded: sessionId === null,
    live: [],
    running: [],
    finished: [],
    routes: {},
    pending: [],
    waiting: 0,
    notes: 0,
    permissions: {},
  };
}

const messageKey = (id: string) => `msg:${id}`;
const toolKey = (callId: string) => `tool:${callId}`;
const permissionKey = (requestId: string) => `perm:${requestId}`;

/** A tool's status as its stored result tells it (`run_call` writes failures as `error: …`). */
export function statusOfOutput(output: string | undefined): ToolStatus {
  if (output === undefined) return 'error';
  if (!output.startsWith('error: ')) return 'done';
  return /^error: permission denied/.test(output) ? 'denied' : 'error';
}

/** The entries a stored transcript shows: tool results join the cards of their calls. */
export function historyEntries(messages: Message[]): Entry[] {
  const results = new Map<string, Message>();
  for (const m of messages) if (m.role === 'tool' && m.tool_call_id) results.set(m.tool_call_id, m);
  const called = new Set<string>();
  const entries: Entry[] = [];
  for (const m of messages) {
    if (m.role === 'system') continue;
    if (m.role === 'tool') {
      if (m.tool_call_id && called.has(m.tool_call_id)) continue;
      const callId = m.tool_call_id ?? m.id;
      entries.push({ kind: 'tool', key: toolKey(callId), callId, name: 'tool', args: '', status: statusOfOutput(m.content), output: m.content });
      continue;
    }
    entries.push({ kind: 'message', key: messageKey(m.id), message: m });
    for (const call of m.tool_calls ?? []) {
      called.add(call.id);
      const output = results.get(call.id)?.content;
      entries.push({
        kind: 'tool',
        key: toolKey(call.id),
        callId: call.id,
        name: call.function.name,
        args: call.function.arguments,
        status: statusOfOutput(output),
        output,
      });
    }
  }
  return entries;
}

function userCount(entries: Entry[], content: string): number {
  let n = 0;
  for (const e of entries) if (e.kind === 'message' && e.message.role === 'user' && e.message.content === content) n++;
  return n;
}

/** How many user messages with this text the conversation shows now (for `PendingPrompt`). */
export function shownUserMessages(c: Conversation, content: string): number {
  return userCount(displayEntries(c), content);
}

/**
 * The history loaded: it replaces the previous one, and the live entries of the prompts that
 * had ended when the request was made (`endedBefore`) give way to it.
 */
export function withHistory(c: Conversation, messages: Message[], endedBefore: string[]): Conversation {
  const history = historyEntries(messages);
  const keys = new Set(history.map((e) => e.key));
  const ended = new Set(endedBefore);
  const permissions = { ...c.permissions };
  for (const e of c.live) if (e.kind === 'permission' && ended.has(e.promptId)) permissions[e.requestId] = e;
  const live = c.live.filter((e) => {
    if (keys.has(e.key)) return e.kind === 'tool' && !ended.has(e.promptId ?? '');
    if ('promptId' in e && e.promptId && ended.has(e.promptId)) return false;
    return true;
  });
  const pending = c.pending.filter((p) => userCount(history, p.content) <= p.seenBefore);
  return {
    ...c,
    history,
    historyLoaded: true,
    live,
    pending,
    permissions,
    finished: c.finished.filter((id) => !ended.has(id)),
  };
}

/** What the page shows, in order: the history, then the live entries it does not have yet. */
export function displayEntries(c: Conversation): Entry[] {
  const liveTools = new Map<string, ToolEntry>();
  for (const e of c.live) if (e.kind === 'tool') liveTools.set(e.key, e);
  const shown = new Set<string>();
  const out: Entry[] = [];
  for (const e of c.history) {
    const asked = e.kind === 'tool' ? c.permissions[e.callId] : undefined;
    if (asked && !c.live.some((x) => x.key === asked.key)) {
      out.push(asked);
      shown.add(asked.key);
    }
    const live = e.kind === 'tool' ? liveTools.get(e.key) : undefined;
    out.push(live && e.kind === 'tool' ? { ...e, status: live.status, output: live.output ?? e.output } : e);
    shown.add(e.key);
  }
  for (const e of c.live) if (!shown.has(e.key)) out.push(e);
  return out;
}

/** Pending prompts the transcript does not show yet. */
export function visiblePending(c: Conversation): PendingPrompt[] {
  if (c.pending.length === 0) return c.pending;
  const entries = displayEntries(c);
  return c.pending.filter((p) => userCount(entries, p.content) <= p.seenBefore);
}

export function isBusy(c: Conversation): boolean {
  return c.running.length > 0 || c.pending.length > 0 || c.waiting > 0;
}

// ---------------------------------------------------------------------------------------------
// The reducer

function hasKey(c: Conversation, key: string): boolean {
  return c.history.some((e) => e.key === key) || c.live.some((e) => e.key === key);
}

function replaceLive(c: Conversation, index: number, entry: Entry | null): Entry[] {
  const live = c.live.slice();
  if (entry) live[index] = entry;
  else live.splice(index, 1);
  return live;
}

function openStreamIndex(c: Conversation, promptId: string): number {
  for (let i = c.live.length - 1; i >= 0; i--) {
    const e = c.live[i]!;
    if (e.kind === 'stream' && e.promptId === promptId && !e.done) return i;
  }
  return -1;
}

function newStream(c: Conversation, promptId: string): StreamEntry {
  const n = c.live.filter((e) => e.kind === 'stream' && e.promptId === promptId).length + 1;
  return { kind: 'stream', key: `stream:${promptId}:${n}`, promptId, text: '', done: false };
}

/** End the prompt's streaming bubble: a finished round (kept when it has text). */
function closeStream(c: Conversation, promptId: string, finish: string): Conversation {
  const i = openStreamIndex(c, promptId);
  if (i < 0) return c;
  const e = c.live[i] as StreamEntry;
  return { ...c, live: replaceLive(c, i, e.text ? { ...e, done: true, finish } : null) };
}

function markRunning(c: Conversation, promptId: string): Conversation {
  if (c.running.includes(promptId) || c.finished.includes(promptId)) return c;
  return { ...c, running: [...c.running, promptId] };
}

function markEnded(c: Conversation, promptId: string): Conversation {
  return {
    ...c,
    running: c.running.filter((id) => id !== promptId),
    finished: c.finished.includes(promptId) ? c.finished : [...c.finished, promptId],
  };
}

function updateLive<E extends Entry>(c: Conversation, key: string, f: (e: E) => E): Conversation {
  const i = c.live.findIndex((e) => e.key === key);
  if (i < 0) return c;
  return { ...c, live: replaceLive(c, i, f(c.live[i] as E)) };
}

function upsertTool(c: Conversation, tool: ToolEntry): Conversation {
  const i = c.live.findIndex((e) => e.key === tool.key);
  if (i < 0) return { ...c, live: [...c.live, tool] };
  const old = c.live[i] as ToolEntry;
  return { ...c, live: replaceLive(c, i, { ...old, ...tool, args: tool.args || old.args, name: tool.name || old.name }) };
}

/** The prompt's answer is stored: it takes the place of its streaming bubble. */
function finalMessage(c: Conversation, promptId: string, message: Message): Conversation {
  const key = messageKey(message.id);
  const i = openStreamIndex(c, promptId);
  if (hasKey(c, key)) return i < 0 ? c : { ...c, live: replaceLive(c, i, null) };
  const entry: MessageEntry = { kind: 'message', key, message, promptId };
  if (i < 0) return { ...c, live: [...c.live, entry] };
  return { ...c, live: replaceLive(c, i, entry) };
}

/** Tool calls of an ended prompt that were still running did not finish. */
function endTools(c: Conversation, promptId: string): Conversation {
  let changed = false;
  const live = c.live.map((e) => {
    if (e.kind === 'tool' && e.promptId === promptId && e.status === 'running') {
      changed = true;
      return { ...e, status: 'error' as const, output: e.output ?? 'the prompt ended before the tool finished' };
    }
    if (e.kind === 'permission' && e.promptId === promptId && (e.decision === 'pending' || e.decision === 'sending')) {
      changed = true;
      return { ...e, decision: 'expired' as const };
    }
    return e;
  });
  return changed ? { ...c, live } : c;
}

function setPermissionIf(c: Conversation, requestId: string, decision: PermissionDecision): Conversation {
  return updateLive<PermissionEntry>(c, permissionKey(requestId), (e) =>
    e.decision === 'pending' || e.decision === 'sending' ? { ...e, decision } : e,
  );
}

/** Record the page's own answer to a permission request (`sending`, then the decision). */
export function setPermission(c: Conversation, requestId: string, decision: PermissionDecision): Conversation {
  return updateLive<PermissionEntry>(c, permissionKey(requestId), (e) => ({ ...e, decision }));
}

export function addPending(c: Conversation, p: PendingPrompt): Conversation {
  return { ...c, pending: [...c.pending, p] };
}

export function removePending(c: Conversation, localId: string): Conversation {
  return { ...c, pending: c.pending.filter((p) => p.localId !== localId) };
}

export function addWaiting(c: Conversation, delta: number): Conversation {
  return { ...c, waiting: Math.max(0, c.waiting + delta) };
}

/** Apply one event of this conversation's session. */
export function applyEvent(c: Conversation, event: ChorusEvent, now = Date.now()): Conversation {
  switch (event.type) {
    case 'message.start': {
      let next = markRunning(c, event.prompt_id);
      const user = event.user_message;
      const p = next.pending.find((x) => x.content === user.content);
      if (p) next = removePending(next, p.localId);
      const key = messageKey(user.id);
      if (!hasKey(next, key)) next = { ...next, live: [...next.live, { kind: 'message', key, message: user, promptId: event.prompt_id }] };
      if (openStreamIndex(next, event.prompt_id) < 0) next = { ...next, live: [...next.live, newStream(next, event.prompt_id)] };
      return next;
    }
    case 'agent.thinking': {
      let next = markRunning(c, event.prompt_id);
      const i = openStreamIndex(next, event.prompt_id);
      if (i >= 0 && (next.live[i] as StreamEntry).text === '') return next;
      next = closeStream(next, event.prompt_id, 'tool_calls');
      return { ...next, live: [...next.live, newStream(next, event.prompt_id)] };
    }
    case 'message.chunk': {
      let next = markRunning(c, event.prompt_id);
      let i = openStreamIndex(next, event.prompt_id);
      if (i < 0) {
        next = { ...next, live: [...next.live, newStream(next, event.prompt_id)] };
        i = next.live.length - 1;
      }
      const e = next.live[i] as StreamEntry;
      return { ...next, live: replaceLive(next, i, { ...e, text: e.text + event.content }) };
    }
    case 'tool.permission_request': {
      const next = closeStream(markRunning(c, event.prompt_id), event.prompt_id, 'tool_calls');
      const key = permissionKey(event.request_id);
      if (hasKey(next, key)) return next;
      const entry: PermissionEntry = {
        kind: 'permission',
        key,
        requestId: event.request_id,
        promptId: event.prompt_id,
        call: event.call,
        timeoutMs: event.timeout_ms,
        receivedAt: now,
        decision: 'pending',
      };
      return { ...next, live: [...next.live, entry] };
    }
    case 'tool.call_start': {
      let next = closeStream(markRunning(c, event.prompt_id), event.prompt_id, 'tool_calls');
      next = setPermissionIf(next, event.call.id, 'allowed');
      return upsertTool(next, {
        kind: 'tool',
        key: toolKey(event.call.id),
        callId: event.call.id,
        name: event.call.function.name,
        args: event.call.function.arguments,
        status: 'running',
        promptId: event.prompt_id,
      });
    }
    case 'tool.call_complete':
      return upsertTool(closeStream(c, event.prompt_id, 'tool_calls'), {
        kind: 'tool',
        key: toolKey(event.call_id),
        callId: event.call_id,
        name: event.name,
        args: '',
        status: 'done',
        output: event.output,
        promptId: event.prompt_id,
      });
    case 'tool.call_error': {
      const denied = event.code === 'permission_denied' || event.code === 'permission_timeout';
      let next = closeStream(c, event.prompt_id, 'tool_calls');
      if (denied) next = setPermissionIf(next, event.call_id, event.code === 'permission_timeout' ? 'expired' : 'denied');
      return upsertTool(next, {
        kind: 'tool',
        key: toolKey(event.call_id),
        callId: event.call_id,
        name: event.name,
        args: '',
        status: denied ? 'denied' : 'error',
        output: event.error,
        promptId: event.prompt_id,
      });
    }
    case 'message.complete':
      return markEnded(endTools(finalMessage(c, event.prompt_id, event.message), event.prompt_id), event.prompt_id);
    case 'message.error': {
      // A prompt that fails before it starts was one of the pending ones.
      const unstarted = !c.running.includes(event.prompt_id) && !c.finished.includes(event.prompt_id);
      let next = unstarted && c.pending[0] ? removePending(c, c.pending[0].localId) : c;
      next = event.message
        ? finalMessage(next, event.prompt_id, event.message)
        : closeStream(next, event.prompt_id, event.error.code === 'cancelled' ? 'cancelled' : 'error');
      next = endTools(next, event.prompt_id);
      return markEnded(next, event.prompt_id);
    }
    case 'agent.idle': {
      let next = c;
      for (const id of c.running) next = markEnded(endTools(closeStream(next, id, 'stop'), id), id);
      return next;
    }
    case 'route.decided':
      return { ...c, routes: { ...c.routes, [event.prompt_id]: event.route } };
    case 'session.compacted': {
      // One note says where the window stands now: the newest replaces the one before.
      const n = c.notes + 1;
      const text =
        `${event.messages_out_of_window} older message${event.messages_out_of_window === 1 ? '' : 's'} ` +
        `left the model's context window (${event.prompt_tokens_before} → ${event.prompt_tokens_after} tokens).`;
      const live = c.live.filter((e) => e.kind !== 'note');
      return { ...c, notes: n, live: [...live, { kind: 'note', key: `note:${n}`, text }] };
    }
    default:
      return c;
  }
}
