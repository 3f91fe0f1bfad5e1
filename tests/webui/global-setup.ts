// Starts the real server for the browser tests: `chorus serve` (CHORUS_BIN) on the real
// qwen-coder model (CHORUS_QWEN_CODER) at default flags, with an API key, on a free loopback
// port, its store and work dir in a temporary directory; stopped when the run ends. Its URL,
// key and work dir reach the tests through the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const KEY = 'sk-chorus-webui-test';

/** `chorus serve ARGS` in a fresh directory; resolves with its URL once it listens. */
export async function startServer(model: string, args: string[]): Promise<{ url: string; dir: string; child: ChildProcess }> {
  const bin = resolve(process.env.CHORUS_BIN ?? '../../target/debug/chorus');
  const dir = mkdtempSync(join(tmpdir(), 'chorus-webui-'));
  const work = join(dir, 'work');
  mkdirSync(work);
  const stderr = openSync(join(dir, 'stderr.log'), 'w');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CHORUS_DATA_DIR: dir,
    XDG_RUNTIME_DIR: dir,
    CHORUS_DATABASE_URL: `sqlite://${join(dir, 'chorus.db')}?mode=rwc`,
  };
  delete env.CHORUS_API_KEY;
  delete env.CHORUS_URL;
  const child = spawn(bin, ['serve', '--port', '0', '--no-control-socket', '--model', model, ...args], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', stderr],
  });
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`chorus serve did not start in 120 s:\n${log(dir)}`)), 120_000);
    child.on('exit', (code) => fail(new Error(`chorus serve exited (${code}):\n${log(dir)}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^chorus listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
  });
  return { url, dir, child };
}

function log(dir: string): string {
  try {
    return readFileSync(join(dir, 'stderr.log'), 'utf8');
  } catch {
    return '';
  }
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((ok) => child.once('exit', ok));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((ok) => setTimeout(ok, 15_000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const model = process.env.CHORUS_QWEN_CODER;
  if (!model) throw new Error('CHORUS_QWEN_CODER must name the qwen-coder GGUF fixture (scripts/models.sh qwen-coder)');
  const server = await startServer(model, ['--api-key', KEY]);
  process.env.CHORUS_TEST_URL = server.url;
  process.env.CHORUS_TEST_KEY = KEY;
  process.env.CHORUS_TEST_WORK_DIR = join(server.dir, 'work');
  return () => stop(server.child);
}
