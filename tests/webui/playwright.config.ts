// Playwright's configuration for the web UI's browser tests: Debian's chromium (never a
// downloaded browser), headless, one worker (one real model on a small machine), a real
// `chorus serve` started by global-setup.ts on a free loopback port.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  globalSetup: './global-setup.ts',
  // The real 0.5B model on 2 cores: a turn with the agent's tools takes seconds to a minute.
  timeout: 300_000,
  expect: { timeout: 180_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [['list']],
  outputDir: process.env.CHORUS_ARTIFACTS ? `${process.env.CHORUS_ARTIFACTS}/test-results` : 'test-results',
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // The machine's network is closed: without these, chromium's background connections
      // fail by the dozen (see the environment notes).
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
