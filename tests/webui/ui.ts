// What the browser tests share: the server's URL and key (global-setup.ts), a page signed in
// with the key, and the steps a person takes in the UI (new chat, send, wait for the answer),
// through the data-testid hooks the web UI keeps stable for them.
import { expect, type Browser, type BrowserContext, type Locator, type Page } from '@playwright/test';

export const url = (): string => process.env.CHORUS_TEST_URL!;
export const key = (): string => process.env.CHORUS_TEST_KEY!;

/** A browser context whose pages already hold the API key, as after signing in once. */
export async function signedInContext(browser: Browser, options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  const context = await browser.newContext(options);
  await context.addInitScript((k) => window.localStorage.setItem('chorus.apiKey', k), key());
  return context;
}

/** Open the UI and start a new chat (narrow screens open the sidebar drawer first). */
export async function newChat(page: Page): Promise<void> {
  await page.goto(url() + '/');
  const button = page.getByTestId('new-session');
  if (!(await button.isVisible())) await page.getByTestId('sidebar-toggle').click();
  await button.click();
  await expect(page.getByTestId('composer-input')).toBeVisible();
}

/** The session the page shows, from its `#/s/ID` address (set once the session exists). */
export async function sessionId(page: Page): Promise<string> {
  await expect(page).toHaveURL(/#\/s\/ses_[0-9a-f]{32}/);
  return /#\/s\/(ses_[0-9a-f]{32})/.exec(page.url())![1];
}

/** Type a prompt and send it. */
export async function send(page: Page, text: string): Promise<void> {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await page.getByTestId('send').click();
}

export const assistants = (page: Page): Locator => page.locator('[data-testid="message"][data-role="assistant"]');
export const users = (page: Page): Locator => page.locator('[data-testid="message"][data-role="user"]');

/** Wait until the `n`th assistant message (1-based) is complete; resolves with its text. */
export async function answer(page: Page, n: number): Promise<string> {
  const bubble = assistants(page).nth(n - 1);
  await expect(bubble).toBeVisible();
  await expect(bubble).not.toHaveAttribute('data-streaming', 'true');
  await expect(page.getByTestId('stop')).toHaveCount(0);
  return (await bubble.getByTestId('message-content').innerText()).trim();
}

/** GET an API path with the key, as JSON. */
export async function api(path: string, init: RequestInit = {}): Promise<any> {
  const r = await fetch(url() + path, {
    ...init,
    headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  const body = await r.json();
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

/** Where screenshots go: kept as CI artifacts, never committed. */
export const artifacts = (): string => process.env.CHORUS_ARTIFACTS ?? 'test-results';
