// Shared by the tests: a real collector on free loopback ports over a fresh SQLite file.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Running, type ServeOptions } from '../cli/serve';
import { packageRoot } from '../common/package-root';

/** The test fixtures: plain JavaScript apps and workers, run as they are (not compiled). */
export const FIXTURES = join(packageRoot(), 'test', 'fixtures');

export interface TestServer {
  running: Running;
  otlp: string;
  api: string;
  dbPath: string;
  dir: string;
  close(): Promise<void>;
}

export function tempDir(prefix = 'stallscope-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export type ServerOverrides = Partial<Omit<ServeOptions, 'store'>> & {
  dbPath?: string;
  store?: Partial<ServeOptions['store']>;
};

export async function startServer(overrides: ServerOverrides = {}): Promise<TestServer> {
  const dir = tempDir();
  const { dbPath = join(dir, 'test.db'), store, ...rest } = overrides;
  const running = await serve({
    store: { path: dbPath, retentionMs: 0, ...store },
    host: '127.0.0.1',
    otlpPort: 0,
    port: 0,
    ...rest,
  });
  return {
    running,
    dbPath,
    dir,
    otlp: `http://127.0.0.1:${running.collector.otlpPort}`,
    api: `http://127.0.0.1:${running.dashboard.port}`,
    async close() {
      await running.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function getJson<T = any>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

/** Polls until `check` returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves with the first match of `pattern` in a child's stdout; rejects if it exits first. */
export function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`the process exited (${code}) before printing ${pattern}`)));
  });
}
