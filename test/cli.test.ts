// The stallscope command: help, exit codes and one-line errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { existsSync, rmSync, statSync } from 'node:fs';
import { tempDir, waitForOutput } from './helpers';

const CLI = join(__dirname, '..', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('stallscope CLI', () => {
  it('prints help for the program and for serve', () => {
    const main = run('--help');
    assert.equal(main.status, 0);
    assert.match(main.stdout, /Usage: stallscope <command>/);
    const serve = run('serve', '--help');
    assert.equal(serve.status, 0);
    assert.match(serve.stdout, /--otlp-port PORT/);
    assert.match(serve.stdout, /--retention DUR/);
  });

  it('exits 2 with one line for a bad flag, a bad value or an unknown command', () => {
    for (const [args, message] of [
      [['serve', '--bogus'], /Unknown option '--bogus'/],
      [['serve', '--port', 'abc'], /--port: "abc" is not a port number/],
      [['serve', '--retention', '7x'], /--retention: "7x" is not a duration/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ] as const) {
      const r = run(...args);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  it('exits 1 naming the problem for an unusable database path', () => {
    const r = run('serve', '--db', '/nonexistent-folder/x.db', '--otlp-port', '0', '--port', '0');
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /cannot open database \/nonexistent-folder\/x\.db: the folder \/nonexistent-folder does not exist/,
    );
  });

  it('exits 1 naming the flag when a port is in use', async () => {
    const dir = tempDir();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = run('serve', '--db', join(dir, 'a.db'), '--otlp-port', String(port), '--port', '0');
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use \\(--otlp-port\\)`));
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves until SIGTERM, then exits 0 with the database checkpointed', async () => {
    const dir = tempDir();
    const db = join(dir, 's.db');
    const child = spawn(process.execPath, [CLI, 'serve', '--db', db, '--otlp-port', '0', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const api = (await waitForOutput(child, /dashboard on (http:\/\/[\d.:]+)/))[1];
    const health = await fetch(`${api}/healthz`);
    assert.equal(health.status, 200);
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
    assert.ok(existsSync(db));
    assert.ok(!existsSync(`${db}-wal`) || statSync(`${db}-wal`).size === 0, 'the WAL was not checkpointed');
    rmSync(dir, { recursive: true, force: true });
  });
});
