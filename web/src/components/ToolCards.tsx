// The cards of an agent's tool calls: one per call (name, pretty-printed arguments, status,
// collapsible output), and one per permission request (the call, Allow / Deny, a countdown to
// the server's automatic refusal, then the decision).

import { useEffect, useState } from 'preact/hooks';
import { answerPermission } from '../app';
import type { PermissionEntry, ToolEntry } from '../conversation';
import { WrenchIcon } from './Icons';

/** Arguments as indented JSON (as written when they are not JSON). */
export function prettyArgs(args: string): string {
  if (!args.trim()) return '';
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

const STATUS_TEXT: Record<ToolEntry['status'], string> = {
  running: 'running…',
  done: 'done',
  error: 'failed',
  denied: 'denied',
};

export function ToolCard({ tool }: { tool: ToolEntry }) {
  const args = prettyArgs(tool.args);
  const lines = tool.output ? tool.output.split('\n').length : 0;
  return (
    <div role="group" class={`tool tool-${tool.status}`} data-testid="tool-call" data-name={tool.name} data-status={tool.status} aria-label={`Tool call ${tool.name}`}>
      <div class="tool-head">
        <WrenchIcon />
        <span class="tool-name">{tool.name}</span>
        <span class={`tool-status ${tool.status}`}>{STATUS_TEXT[tool.status]}</span>
      </div>
      {args && (
        <pre class="tool-args" tabIndex={0}>
          {args}
        </pre>
      )}
      {tool.output !== undefined && (
        <details class="tool-output" open={tool.status === 'error' || tool.status === 'denied'}>
          <summary>
            {tool.status === 'done' ? 'Output' : 'Error'}
            {lines > 1 ? ` (${lines} lines)` : ''}
          </summary>
          <pre tabIndex={0}>{tool.output || '(empty)'}</pre>
        </details>
      )}
    </div>
  );
}

function useCountdown(entry: PermissionEntry): number {
  const left = () => Math.max(0, Math.ceil((entry.receivedAt + entry.timeoutMs - Date.now()) / 1000));
  const [seconds, setSeconds] = useState(left);
  useEffect(() => {
    if (entry.decision !== 'pending') return;
    const timer = window.setInterval(() => setSeconds(left()), 1000);
    return () => window.clearInterval(timer);
  }, [entry.decision, entry.receivedAt]);
  return seconds;
}

const DECISION_TEXT: Record<PermissionEntry['decision'], string> = {
  pending: '',
  sending: 'Sending your answer…',
  allowed: 'Allowed',
  denied: 'Denied',
  expired: 'No answer in time: denied',
};

export function PermissionCard({ entry }: { entry: PermissionEntry }) {
  const seconds = useCountdown(entry);
  const args = prettyArgs(entry.call.function.arguments);
  const name = entry.call.function.name;
  const open = entry.decision === 'pending' || entry.decision === 'sending';
  return (
    <div role="group" class="permission" data-testid="permission-request" data-decision={entry.decision} aria-label={`Permission request for ${name}`}>
      <p class="permission-text">
        The assistant wants to run <code>{name}</code>.
      </p>
      {args && (
        <pre class="tool-args" tabIndex={0}>
          {args}
        </pre>
      )}
      {open ? (
        <div class="permission-actions">
          <button
            type="button"
            class="button primary"
            data-testid="permission-allow"
            disabled={entry.decision === 'sending'}
            onClick={() => void answerPermission(entry.requestId, true)}
          >
            Allow
          </button>
          <button
            type="button"
            class="button"
            data-testid="permission-deny"
            disabled={entry.decision === 'sending'}
            onClick={() => void answerPermission(entry.requestId, false)}
          >
            Deny
          </button>
          {entry.decision === 'pending' && seconds > 0 && (
            <span class="permission-timer">Denied automatically in {seconds} s</span>
          )}
          {entry.decision === 'sending' && <span class="permission-timer">{DECISION_TEXT.sending}</span>}
        </div>
      ) : (
        <p class={`permission-decision ${entry.decision}`} data-testid="permission-decision">
          {DECISION_TEXT[entry.decision]}
        </p>
      )}
    </div>
  );
}
