// Shared by the tests: a real collector on free loopback ports over a fresh SQLite file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Running, type ServeOptions } from '../cli/serve';

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

export async function startServer(overrides: Partial<ServeOptions> = {}): Promise<TestServer> {
  const dir = tempDir();
  const dbPath = overrides.dbPath ?? join(dir, 'test.db');
  const running = await serve({ dbPath, host: '127.0.0.1', otlpPort: 0, port: 0, retentionMs: 0, ...overrides });
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
