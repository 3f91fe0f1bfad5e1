// The browser's speech APIs, where they exist: dictation (`SpeechRecognition`, prefixed
// `webkitSpeechRecognition` in Chromium and Safari) and read-aloud (`speechSynthesis`). The
// buttons that use them are not rendered where the API is missing.

/** The part of the Web Speech API recognizer the composer uses. */
export interface Recognizer {
  lang: string;
  continuous: boolean;
  interimResults: boolean;
  onresult: ((event: RecognitionResultEvent) => void) | null;
  onend: (() => void) | null;
  onerror: ((event: { error: string }) => void) | null;
  start(): void;
  stop(): void;
}

export interface RecognitionResultEvent {
  resultIndex: number;
  results: ArrayLike<{ isFinal: boolean; 0: { transcript: string } }>;
}

type RecognizerClass = new () => Recognizer;

function recognizerClass(): RecognizerClass | null {
  const w = window as unknown as { SpeechRecognition?: RecognizerClass; webkitSpeechRecognition?: RecognizerClass };
  return w.SpeechRecognition ?? w.webkitSpeechRecognition ?? null;
}

export const canDictate = recognizerClass() !== null;
export const canSpeak = typeof window !== 'undefined' && 'speechSynthesis' in window && 'SpeechSynthesisUtterance' in window;

export function createRecognizer(): Recognizer | null {
  const Class = recognizerClass();
  if (!Class) return null;
  const r = new Class();
  r.lang = navigator.language || 'en-US';
  r.continuous = false;
  r.interimResults = true;
  return r;
}

let speaking: SpeechSynthesisUtterance | null = null;

/** Read `text` aloud, stopping whatever was being read; `onEnd` runs when it stops. */
export function speak(text: string, onEnd: () => void): void {
  window.speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(text);
  u.lang = navigator.language || 'en-US';
  u.onend = () => {
    if (speaking === u) speaking = null;
    onEnd();
  };
  u.onerror = u.onend;
  speaking = u;
  window.speechSynthesis.speak(u);
}

export function stopSpeaking(): void {
  speaking = null;
  window.speechSynthesis.cancel();
}
