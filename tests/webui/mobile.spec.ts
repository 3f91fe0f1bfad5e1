// The mobile API on the real model, as two phones use it: each device keeps its own
// conversation, so what one phone told the model never reaches the other's answers.
import { expect, test } from '@playwright/test';

import { api } from './ui';

const chat = (device_id: string, text: string) =>
  api('/api/v1/mobile/chat', { method: 'POST', body: JSON.stringify({ device_id, text }) });

test('two devices keep their contexts apart', async () => {
  const a = `phone-a-${Date.now()}`;
  const b = `phone-b-${Date.now()}`;
  await chat(a, 'Remember this: my secret word is "banana". Reply with OK.');
  await chat(b, 'Remember this: my secret word is "cherry". Reply with OK.');
  const askA = await chat(a, 'What is my secret word? Answer with the word only.');
  const askB = await chat(b, 'What is my secret word? Answer with the word only.');
  expect(askA.text.toLowerCase()).toContain('banana');
  expect(askA.text.toLowerCase()).not.toContain('cherry');
  expect(askB.text.toLowerCase()).toContain('cherry');
  expect(askB.text.toLowerCase()).not.toContain('banana');
  expect(askA.session_id).not.toBe(askB.session_id);

  const history = await api(`/api/v1/mobile/history?device_id=${a}`);
  expect(history.session_id).toBe(askA.session_id);
  expect(history.messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  expect(history.messages[2].text).toContain('secret word');
});
