// Vite configuration of chorus's web UI: Preact JSX, the bundle built into the server crate
// (which embeds it), and a dev server that proxies the API to a running `chorus serve`.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Node's `process`, declared here so the config needs no @types/node.
declare const process: { env: Record<string, string | undefined> };

const server = process.env.CHORUS_URL ?? 'http://127.0.0.1:4096';
const proxied = ['/api', '/v1', '/qr', '/health', '/info'];

export default defineConfig({
  base: '/',
  plugins: [preact({ prerender: { enabled: false } })],
  build: {
    outDir: '../crates/chorus-server/webui',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    proxy: {
      ...Object.fromEntries(proxied.map((path) => [path, { target: server, changeOrigin: false }])),
      '/ws': { target: server, ws: true },
    },
  },
});
