// Shared by the tests: a real collector on free loopback ports over a fresh SQLite file, or a fresh
// database of the test file's own PostgreSQL server (test/postgres.ts).
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Running, type ServeOptions } from '../cli/serve';
import { packageRoot } from '../common/package-root';
import Database from 'better-sqlite3';
import pg from 'pg';
import { sharedPostgres } from './postgres';

/** The test fixtures: plain JavaScript apps and workers, run as they are (not compiled). */
export const FIXTURES = join(packageRoot(), 'test', 'fixtures');

export type Engine = 'sqlite' | 'postgres';

/**
 * The engines the suites that cover storage and reads run on: both, unless STALLSCOPE_TEST_ENGINES
 * names fewer (comma-separated).
 */
export const ENGINES: Engine[] = (process.env.STALLSCOPE_TEST_ENGINES ?? 'sqlite,postgres')
  .split(',')
  .map((e) => e.trim())
  .filter((e): e is Engine => e === 'sqlite' || e === 'postgres');

/** Where a new test server keeps its data: a file in `dir`, or a new PostgreSQL database. */
export async function newDatabase(engine: Engine, dir: string): Promise<string> {
  return engine === 'sqlite' ? join(dir, 'test.db') : (await sharedPostgres()).createDatabase();
}

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
  /** Where a new database is made when no dbPath is given (default sqlite). */
  engine?: Engine;
  store?: Partial<ServeOptions['store']>;
};

export async function startServer(overrides: ServerOverrides = {}): Promise<TestServer> {
  const dir = tempDir();
  const { engine = 'sqlite', store, ...rest } = overrides;
  const dbPath = overrides.dbPath ?? (await newDatabase(engine, dir));
  delete (rest as ServerOverrides).dbPath;
  // Rules beside a SQLite file, as by default; a database URL would put them in the working folder.
  const rulesFile = engine === 'postgres' ? join(dir, 'test.rules.yaml') : undefined;
  if (rulesFile && !rest.rulesFile) writeFileSync(rulesFile, '');
  const running = await serve({
    ...(rulesFile ? { rulesFile } : {}),
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

/** Rows read straight from a test server's database (a SQLite file or a PostgreSQL URL). */
export async function queryDb<T = Record<string, unknown>>(db: string, sql: string): Promise<T[]> {
  if (!/^postgres(ql)?:/.test(db)) {
    const file = new Database(db, { readonly: true });
    try {
      return file.prepare(sql).all() as T[];
    } finally {
      file.close();
    }
  }
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

/**
 * Takes the lock that writing spans needs, from another connection, until the returned function
 * is called: SQLite's write lock, or PostgreSQL's EXCLUSIVE lock on spans (reads go on).
 */
export async function holdWriteLock(db: string): Promise<() => Promise<void>> {
  if (!/^postgres(ql)?:/.test(db)) {
    const file = new Database(db);
    file.exec('BEGIN IMMEDIATE');
    return async () => {
      file.exec('COMMIT');
      file.close();
    };
  }
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE spans IN EXCLUSIVE MODE');
  return async () => {
    await c.query('COMMIT');
    await c.end();
  };
}
