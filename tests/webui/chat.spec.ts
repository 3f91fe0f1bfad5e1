// A person chatting in the web UI with the real qwen-coder model: signing in (a wrong key
// first), a streamed answer that survives a reload, Stop, a tool call allowed from the page,
// two browsers on one session, and the SSE fallback when WebSockets are blocked.
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { answer, api, assistants, key, newChat, send, sessionId, signedInContext, url, users } from './ui';

test('a wrong API key is refused with a message, the right one signs in, and an answer streams and survives a reload', async ({ page }) => {
  await page.goto(url() + '/');
  const dialog = page.getByTestId('key-dialog');
  await expect(dialog).toBeVisible();
  await page.getByTestId('key-input').fill('sk-wrong');
  await page.getByTestId('key-submit').click();
  await expect(page.getByTestId('key-error')).toContainText(/incorrect API key/i);
  await expect(dialog).toBeVisible();
  await page.getByTestId('key-input').fill(key());
  await page.getByTestId('key-submit').click();
  await expect(dialog).toBeHidden();
  expect(await page.evaluate(() => localStorage.getItem('chorus.apiKey'))).toBe(key());

  const button = page.getByTestId('new-session');
  if (!(await button.isVisible())) await page.getByTestId('sidebar-toggle').click();
  await button.click();
  await send(page, 'Write a four-line poem about the sea.');
  await expect(users(page).last()).toContainText('four-line poem');
  await expect(page.getByTestId('transport')).toHaveAttribute('data-transport', 'ws');

  // The answer grows while it streams, and ends complete.
  const bubble = assistants(page).first();
  await expect(bubble).toHaveAttribute('data-streaming', 'true');
  await expect(bubble.getByTestId('message-content')).not.toBeEmpty();
  const early = (await bubble.getByTestId('message-content').innerText()).trim();
  const whole = await answer(page, 1);
  expect(whole.length).toBeGreaterThan(early.length);
  const id = await sessionId(page);

  // The server stored it, and a reload shows the same conversation.
  const messages = (await api(`/api/v1/sessions/${id}/messages`)).data;
  expect(messages.map((m: any) => m.role)).toEqual(['user', 'assistant']);
  await page.reload();
  await expect(users(page)).toHaveCount(1);
  await expect(users(page).first()).toContainText('four-line poem');
  await expect(assistants(page)).toHaveCount(1);
  const again = (await assistants(page).first().getByTestId('message-content').innerText()).trim();
  expect(again.replace(/\s+/g, ' ')).toBe(whole.replace(/\s+/g, ' '));
  await expect(page.getByTestId('key-dialog')).toBeHidden();
});

test('Stop cancels an answer mid-stream and keeps what was written', async ({ browser }) => {
  const page = await (await signedInContext(browser)).newPage();
  await newChat(page);
  await send(page, 'Write a long essay, at least 800 words, on the history of computing, from the abacus to smartphones.');
  const bubble = assistants(page).first();
  await expect(bubble).toHaveAttribute('data-streaming', 'true');
  await expect(bubble.getByTestId('message-content')).not.toBeEmpty();
  await page.getByTestId('stop').click();
  await expect(bubble).toHaveAttribute('data-finish', 'cancelled');
  await expect(page.getByTestId('stop')).toHaveCount(0);
  await expect(page.getByTestId('send')).toBeVisible();
  const id = await sessionId(page);
  const stored = (await api(`/api/v1/sessions/${id}/messages`)).data.at(-1);
  expect(stored.finish_reason).toBe('cancelled');
  expect(stored.content.length).toBeGreaterThan(0);
  expect(stored.content.length).toBeLessThan(3000);
});

test('a tool call asks for permission, is allowed from the page, and runs', async ({ browser }) => {
  const page = await (await signedInContext(browser)).newPage();
  await newChat(page);
  await send(page, 'Use the write_file tool to create the file hello.txt with the content "hi from the browser".');
  const request = page.getByTestId('permission-request');
  await expect(request).toBeVisible();
  await expect(request).toContainText('write_file');
  await expect(request).toContainText('hello.txt');
  await request.getByTestId('permission-allow').click();
  await expect(page.getByTestId('permission-allow')).toHaveCount(0);
  const call = page.locator('[data-testid="tool-call"][data-name="write_file"]').first();
  await expect(call).toHaveAttribute('data-status', 'done');
  await answer(page, 1);
  const written = readFileSync(join(process.env.CHORUS_TEST_WORK_DIR!, 'hello.txt'), 'utf8');
  expect(written).toContain('hi from the browser');
});

test('two browsers on one session see each other\'s turns live', async ({ browser }) => {
  const a = await (await signedInContext(browser)).newPage();
  await newChat(a);
  await send(a, 'What is 2 + 3? Answer with the number only.');
  const id = await sessionId(a);
  await answer(a, 1);

  // A second browser (its own storage, as a phone would be) opens the same session.
  const b = await (await signedInContext(browser, { viewport: { width: 360, height: 640 }, isMobile: true, hasTouch: true })).newPage();
  await b.goto(`${url()}/#/s/${id}`);
  await expect(users(b).first()).toContainText('2 + 3');
  await expect(assistants(b)).toHaveCount(1);

  await send(b, 'What is 4 + 4? Answer with the number only.');
  await expect(users(a)).toHaveCount(2);
  await expect(users(a).nth(1)).toContainText('4 + 4');
  const fromA = await answer(a, 2);
  const fromB = await answer(b, 2);
  expect(fromA).toBe(fromB);
  expect(fromA).toContain('8');
  // Each turn shows once on the page that sent it too.
  await expect(users(b)).toHaveCount(2);
});

test('with WebSockets blocked, the page falls back to server-sent events and answers', async ({ browser }) => {
  const context = await signedInContext(browser);
  let refused = 0;
  await context.routeWebSocket(/\/ws/, (ws) => {
    refused += 1;
    ws.close({ code: 1011, reason: 'blocked by the test' });
  });
  const page = await context.newPage();
  await newChat(page);
  await send(page, 'What is the capital of France? Answer in one word.');
  await expect(page.getByTestId('transport')).toHaveAttribute('data-transport', 'sse');
  const text = await answer(page, 1);
  expect(text).toMatch(/paris/i);
  expect(refused).toBeGreaterThan(0);
});
