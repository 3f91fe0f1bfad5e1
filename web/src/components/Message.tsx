// One chat bubble: the user's text as typed, or the assistant's Markdown (rendered, sanitized,
// code highlighted, copy buttons), with its model/route, a "Stopped" mark on a cancelled
// answer, and buttons to copy the whole answer and to read it aloud (where the browser can).

import { useMemo, useState } from 'preact/hooks';
import { copyText } from '../clipboard';
import { handleCopyClick, renderMarkdown, speakableText } from '../markdown';
import type { Route } from '../types';
import { canSpeak, speak, stopSpeaking } from '../voice';
import { CopyIcon, SpeakerIcon } from './Icons';

export interface BubbleProps {
  role: 'user' | 'assistant';
  content: string;
  streaming?: boolean;
  /** The finish reason: `stop`, `length`, `tool_calls`, `cancelled`, `error`. */
  finish?: string;
  model?: string;
  route?: Route;
  /** Shown instead of empty content (a prompt waiting, an answer starting). */
  placeholder?: string;
}

function routeLabel(route: Route | undefined, model: string | undefined): string | null {
  if (route) return `auto → ${route.category}${route.model ? ` · ${route.model}` : ''}`;
  return model ?? null;
}

function AssistantActions({ content }: { content: string }) {
  const [copied, setCopied] = useState(false);
  const [speaking, setSpeaking] = useState(false);
  return (
    <div class="msg-actions">
      <button
        type="button"
        class="icon-button subtle"
        aria-label={copied ? 'Copied' : 'Copy answer'}
        title="Copy answer"
        onClick={() =>
          void copyText(content).then((ok) => {
            if (!ok) return;
            setCopied(true);
            window.setTimeout(() => setCopied(false), 1500);
          })
        }
      >
        <CopyIcon />
      </button>
      {canSpeak && (
        <button
          type="button"
          class="icon-button subtle"
          data-testid="speak"
          aria-label={speaking ? 'Stop reading aloud' : 'Read aloud'}
          aria-pressed={speaking ? 'true' : 'false'}
          title={speaking ? 'Stop reading' : 'Read aloud'}
          onClick={() => {
            if (speaking) {
              stopSpeaking();
              setSpeaking(false);
            } else {
              setSpeaking(true);
              speak(speakableText(content), () => setSpeaking(false));
            }
          }}
        >
          <SpeakerIcon />
        </button>
      )}
    </div>
  );
}

export function Bubble({ role, content, streaming, finish, model, route, placeholder }: BubbleProps) {
  const html = useMemo(() => (role === 'assistant' && content ? renderMarkdown(content) : ''), [role, content]);
  const stopped = finish === 'cancelled';
  const label = role === 'assistant' ? routeLabel(route, model) : null;
  return (
    <article
      class={`msg msg-${role}`}
      data-testid="message"
      data-role={role}
      data-streaming={streaming ? 'true' : undefined}
      data-finish={!streaming && finish ? finish : undefined}
      aria-busy={streaming ? 'true' : undefined}
    >
      <h2 class="sr-only">{role === 'user' ? 'You said' : 'Assistant'}</h2>
      {role === 'user' ? (
        <div class="msg-content plain" data-testid="message-content">
          {content || placeholder}
        </div>
      ) : content ? (
        <div
          class="msg-content markdown"
          data-testid="message-content"
          onClick={handleCopyClick}
          dangerouslySetInnerHTML={{ __html: html }}
        />
      ) : (
        <div class="msg-content placeholder" data-testid="message-content">
          {streaming ? <span class="typing" aria-label={placeholder ?? 'Thinking'} role="img" /> : placeholder}
        </div>
      )}
      {role === 'assistant' && (label || stopped || finish === 'length' || finish === 'error' || (!streaming && content)) && (
        <footer class="msg-foot">
          {label && <span class="msg-model">{label}</span>}
          {stopped && <span class="msg-flag">Stopped</span>}
          {finish === 'length' && <span class="msg-flag">Cut off at the length limit</span>}
          {finish === 'error' && <span class="msg-flag">Failed</span>}
          {!streaming && content && <AssistantActions content={content} />}
        </footer>
      )}
    </article>
  );
}
