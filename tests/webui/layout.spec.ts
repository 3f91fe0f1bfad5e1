// The page's layout and accessibility at a phone's 360×640 and a laptop's 1280×800, in a
// conversation with a code block: no horizontal overflow, touch targets of at least 44 px on
// the phone, the composer in view, screenshots kept as CI artifacts, and axe-core finding no
// serious or critical violation in either theme.
import { expect, test, type Page } from '@playwright/test';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { answer, artifacts, send, sessionId, signedInContext, url } from './ui';

const require = createRequire(import.meta.url);
const axeSource: string = require('axe-core').source;

let session = '';

/** Elements that stick out of the viewport sideways and are not clipped by a box inside it
 * (a code block scrolls in its own box; a closed drawer is hidden or clipped). */
async function overflow(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out: string[] = [];
    if (document.documentElement.scrollWidth > width) out.push(`the document is ${document.documentElement.scrollWidth} px wide in ${width}`);
    const clipped = (el: Element): boolean => {
      for (let p = el.parentElement; p; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') {
          const r = p.getBoundingClientRect();
          return r.left >= -1 && r.right <= width + 1;
        }
      }
      return false;
    };
    for (const el of Array.from(document.querySelectorAll<HTMLElement>('body *'))) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
      if ((r.right > width + 1 || r.left < -1) && !clipped(el)) {
        out.push(`${el.tagName.toLowerCase()}[${el.getAttribute('data-testid') ?? el.className}] spans ${Math.round(r.left)}..${Math.round(r.right)}`);
      }
    }
    return out;
  });
}

/** Visible controls smaller than 44×44 CSS px. */
async function smallTargets(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    for (const el of Array.from(document.querySelectorAll<HTMLElement>('button, a[href], select, input, textarea, [role="button"]'))) {
      const r = el.getBoundingClientRect();
      const s = getComputedStyle(el);
      if (r.width === 0 || r.height === 0 || s.visibility === 'hidden' || s.display === 'none') continue;
      if (r.bottom < 0 || r.top > window.innerHeight || r.right < 0 || r.left > window.innerWidth) continue;
      if (r.width < 44 - 0.5 || r.height < 44 - 0.5) {
        out.push(`${el.tagName.toLowerCase()}[${el.getAttribute('data-testid') ?? el.getAttribute('aria-label') ?? el.textContent?.trim().slice(0, 20)}] ${Math.round(r.width)}×${Math.round(r.height)}`);
      }
    }
    return out;
  });
}

async function axe(page: Page): Promise<string[]> {
  await page.evaluate(axeSource);
  const results: any = await page.evaluate(() => (window as any).axe.run(document, { resultTypes: ['violations'] }));
  return results.violations
    .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
    .map((v: any) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`);
}

test.beforeAll(async ({ browser }) => {
  const page = await (await signedInContext(browser)).newPage();
  await page.goto(url() + '/');
  await page.getByTestId('new-session').click();
  await send(page, 'Write a Python function that returns the squares of a list of numbers, in a code block, then one sentence about it.');
  await answer(page, 1);
  session = await sessionId(page);
  await page.context().close();
});

for (const [name, viewport, phone] of [
  ['phone-360x640', { width: 360, height: 640 }, true],
  ['desktop-1280x800', { width: 1280, height: 800 }, false],
] as const) {
  test(`at ${name} nothing overflows, controls are reachable, and axe finds no serious violation`, async ({ browser }) => {
    const context = await signedInContext(browser, { viewport, isMobile: phone, hasTouch: phone, deviceScaleFactor: phone ? 2 : 1, bypassCSP: true });
    const page = await context.newPage();
    await page.goto(`${url()}/#/s/${session}`);
    await expect(page.locator('[data-testid="message"][data-role="assistant"]')).toHaveCount(1);
    await expect(page.locator('pre code').first()).toBeVisible();
    await expect(page.getByTestId('copy-code').first()).toBeVisible();
    const input = page.getByTestId('composer-input');
    await expect(input).toBeInViewport();
    await expect(page.getByTestId('send')).toBeInViewport();

    mkdirSync(artifacts(), { recursive: true });
    await page.screenshot({ path: join(artifacts(), `webui-${name}.png`) });
    expect(await overflow(page), 'elements outside the viewport').toEqual([]);
    if (phone) expect(await smallTargets(page), 'touch targets under 44 px').toEqual([]);
    expect(await axe(page), 'axe-core, dark theme').toEqual([]);

    // The light theme, the same checks.
    await page.getByTestId('theme-toggle').click();
    await page.screenshot({ path: join(artifacts(), `webui-${name}-light.png`) });
    expect(await overflow(page)).toEqual([]);
    expect(await axe(page), 'axe-core, light theme').toEqual([]);

    if (phone) {
      // The sidebar is a drawer on a phone: it opens over the chat, with targets as big.
      await page.getByTestId('sidebar-toggle').click();
      await expect(page.getByTestId('new-session')).toBeInViewport();
      await page.screenshot({ path: join(artifacts(), `webui-${name}-sidebar.png`) });
      expect(await smallTargets(page), 'touch targets under 44 px in the drawer').toEqual([]);
      expect(await axe(page), 'axe-core, drawer open').toEqual([]);
    }
    await context.close();
  });
}

test('the page carries a PWA manifest and works without any other origin', async ({ browser }) => {
  const context = await signedInContext(browser);
  const page = await context.newPage();
  const foreign: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(url()) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) foreign.push(r.url());
  });
  await page.goto(url() + '/');
  const href = await page.locator('link[rel="manifest"]').getAttribute('href');
  const manifest = await (await page.request.get(new URL(href!, url() + '/').href)).json();
  expect(manifest.display).toBe('standalone');
  expect(manifest.icons.length).toBeGreaterThan(0);
  await expect(page.getByTestId('composer-input')).toBeVisible();
  expect(foreign).toEqual([]);
  await context.close();
});
