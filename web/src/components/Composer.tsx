// The composer at the bottom: a growing textarea (Enter sends, Shift+Enter a new line; on
// touch screens Enter is a new line and the Send button sends), dictation into it where the
// browser has speech recognition, Send, which becomes Stop while an answer runs, and a status
// line with the transport in use.

import { useEffect, useRef, useState } from 'preact/hooks';
import { send, stop } from '../app';
import { busy, creating, link, transport } from '../state';
import type { TransportKind } from '../transport';
import { canDictate, createRecognizer, type Recognizer } from '../voice';
import { MicIcon, SendIcon, StopIcon } from './Icons';

const TRANSPORT_NAME: Record<TransportKind, string> = { ws: 'WebSocket', sse: 'SSE', rest: 'REST' };
const coarse = typeof matchMedia === 'function' && matchMedia('(pointer: coarse)').matches;

function TransportStatus() {
  const kind = transport.value;
  const state = link.value;
  let text = 'connecting…';
  if (kind === 'rest') text = 'REST · polling';
  else if (kind && state === 'live') text = `live · ${TRANSPORT_NAME[kind]}`;
  else if (kind && state === 'reconnecting') text = `reconnecting · ${TRANSPORT_NAME[kind]}`;
  else if (kind && state === 'offline') text = `offline · ${TRANSPORT_NAME[kind]}`;
  return (
    <span class={`transport ${state}`} data-testid="transport" data-transport={kind ?? undefined} data-state={state}>
      <span class="transport-dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function useDictation(setText: (f: (text: string) => string) => void) {
  const [listening, setListening] = useState(false);
  const recognizer = useRef<Recognizer | null>(null);
  const base = useRef('');

  const toggle = (current: string) => {
    if (listening) {
      recognizer.current?.stop();
      return;
    }
    const r = createRecognizer();
    if (!r) return;
    base.current = current && !/\s$/.test(current) ? `${current} ` : current;
    r.onresult = (event) => {
      let heard = '';
      for (let i = 0; i < event.results.length; i++) heard += event.results[i]![0].transcript;
      setText(() => base.current + heard);
    };
    r.onend = () => {
      setListening(false);
      recognizer.current = null;
    };
    r.onerror = () => {
      setListening(false);
      recognizer.current = null;
    };
    recognizer.current = r;
    try {
      r.start();
      setListening(true);
    } catch {
      recognizer.current = null;
    }
  };

  useEffect(() => () => recognizer.current?.stop(), []);
  return { listening, toggle };
}

export function Composer() {
  const [text, setText] = useState('');
  const area = useRef<HTMLTextAreaElement>(null);
  const running = busy.value;
  const dictation = useDictation((f) => setText(f));

  // Grow with the text, up to the CSS max-height.
  useEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  const submit = async () => {
    const content = text;
    if (!content.trim()) return;
    setText('');
    const taken = await send(content);
    if (!taken) setText((now) => (now ? now : content));
    area.current?.focus();
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || coarse) return;
    e.preventDefault();
    if (!running && !creating.value) void submit();
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        if (!running && !creating.value) void submit();
      }}
    >
      <div class="composer-row">
        <label for="composer-input" class="sr-only">
          Message
        </label>
        <textarea
          id="composer-input"
          ref={area}
          data-testid="composer-input"
          class="composer-input"
          rows={1}
          placeholder="Message chorus…"
          value={text}
          enterkeyhint={coarse ? 'enter' : 'send'}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={onKeyDown}
        />
        {canDictate && (
          <button
            type="button"
            class={dictation.listening ? 'icon-button mic listening' : 'icon-button mic'}
            data-testid="mic"
            aria-label={dictation.listening ? 'Stop dictation' : 'Dictate'}
            aria-pressed={dictation.listening ? 'true' : 'false'}
            onClick={() => dictation.toggle(text)}
          >
            <MicIcon />
          </button>
        )}
        {running ? (
          <button type="button" class="icon-button send stop" data-testid="stop" aria-label="Stop the answer" onClick={() => void stop()}>
            <StopIcon />
          </button>
        ) : (
          <button type="submit" class="icon-button send" data-testid="send" aria-label="Send" disabled={!text.trim() || creating.value}>
            <SendIcon />
          </button>
        )}
      </div>
      <div class="composer-foot">
        <TransportStatus />
        {!coarse && <span class="composer-hint">Enter to send · Shift+Enter for a new line</span>}
      </div>
    </form>
  );
}
