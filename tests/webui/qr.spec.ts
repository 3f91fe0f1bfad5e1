// `GET /qr` as a phone's camera sees it: the SVG rendered by the browser, screenshotted, and
// decoded with jsQR back to the URL phones open; without `--qr-with-key` it holds no key, with
// it the key rides in the fragment and the page signs in from it.
import { expect, test, type Page } from '@playwright/test';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';

import { startServer, stop } from './global-setup';
import { api, key, url } from './ui';

async function decode(page: Page, server: string, apiKey: string): Promise<string> {
  const svg = await (await page.request.get(`${server}/qr`, { headers: { authorization: `Bearer ${apiKey}` } })).text();
  expect(svg).toContain('<svg');
  await page.setContent(`<body style="margin:0;background:#fff">${svg}</body>`);
  const png = PNG.sync.read(await page.locator('svg').screenshot());
  const code = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height);
  expect(code, 'a QR code jsQR can read').not.toBeNull();
  return code!.data;
}

test('/qr decodes to the server URL, without the API key', async ({ page }) => {
  const text = await decode(page, url(), key());
  const info = await api('/api/v1/info');
  expect(text).toBe(info.url);
  expect(text).toBe(url() + '/');
  expect(text).not.toContain(key());
  const refused = await page.request.get(`${url()}/qr`);
  expect(refused.status()).toBe(401);
});

test('with --qr-with-key the code carries the key, and the page it opens is signed in', async ({ page }) => {
  const model = process.env.CHORUS_TEST_MODEL ?? process.env.CHORUS_QWEN_CODER!;
  const secret = 'sk-qr/with key';
  const server = await startServer(model, ['--api-key', secret, '--qr-with-key']);
  try {
    const text = await decode(page, server.url, secret);
    expect(text).toBe(`${server.url}/#key=${encodeURIComponent(secret)}`);
    await page.goto(text);
    await expect(page.getByTestId('key-dialog')).toBeHidden();
    await expect(page.getByTestId('composer-input')).toBeVisible();
    expect(await page.evaluate(() => localStorage.getItem('chorus.apiKey'))).toBe(secret);
    expect(page.url()).not.toContain('key=');
  } finally {
    await stop(server.child);
  }
});
