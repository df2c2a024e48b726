// The package as a user gets it: `npm pack`, installed from the tarball into an empty app with
// npm (its dependencies from the registry, better-sqlite3 built as npm builds it), the agent
// attached with `--require stallscope/agent`, `stallscope serve` and `stallscope findings` run
// from the app's node_modules/.bin. Nothing of the repository's own node_modules is used.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, tempDir, waitForOutput } from './helpers';

const ROOT = join(__dirname, '..', '..');
const APP = `'use strict';
const http = require('node:http');
function renderInvoice(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {} // the blocking line
}
http
  .createServer((req, res) => {
    if (req.url === '/invoice') renderInvoice(300);
    res.end('ok');
  })
  .listen(0, '127.0.0.1', function () {
    console.log('listening on ' + this.address().port);
  });
`;

interface Packed {
  filename: string;
  files: Array<{ path: string }>;
}

describe('the packed package, installed into an empty app', { timeout: 900_000 }, () => {
  const dir = tempDir('stallscope-pack-');
  const app = join(dir, 'app');
  let packed: Packed;
  const children: ChildProcess[] = [];

  before(() => {
    // Scripts off: `prepare` would rebuild dist/ under the tests that run from it.
    const pack = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(pack.status, 0, pack.stderr);
    packed = (JSON.parse(pack.stdout) as Packed[])[0];
  });
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('holds what an installed agent, collector and dashboard need, and no tests or benches', () => {
    const paths = packed.files.map((f) => f.path);
    for (const needed of [
      'package.json',
      'README.md',
      'dist/agent/register.js',
      'dist/agent/index.d.ts',
      'dist/cli/main.js',
      'dashboard/public/app.js',
      'collector/proto/otlp.proto',
      'collector/proto/pprof.proto',
      'agent/python/stallscope_agent/__init__.py',
    ])
      assert.ok(paths.includes(needed), `${needed} is missing from the package`);
    const extra = paths.filter((p) => /^dist\/(test|bench|examples)\/|\.ts$(?<!\.d\.ts)|(^|\/)tests?\//.test(p));
    assert.deepEqual(extra, [], 'tests, benches or sources in the package');
    const meta = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    for (const field of ['repository', 'homepage', 'keywords', 'bugs']) assert.ok(meta[field], `no ${field}`);
  });

  it('installs with npm, attaches with --require stallscope/agent and names the blocking line', async () => {
    spawnSync('mkdir', ['-p', app]);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'invoice-app', private: true, allowScripts: { 'better-sqlite3': true } }),
    );
    writeFileSync(join(app, 'app.js'), APP);
    const install = spawnSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, packed.filename)],
      { cwd: app, encoding: 'utf8' },
    );
    assert.equal(install.status, 0, install.stderr);
    const bin = join(app, 'node_modules', '.bin', 'stallscope');
    const serve = spawn(bin, ['serve', '--db', join(dir, 'app.db'), '--otlp-port', '0', '--port', '0'], {
      cwd: app,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(serve);
    const [, otlp, dashboard] = await waitForOutput(
      serve,
      /collecting OTLP on (http:\/\/[\d.:]+), dashboard on (http:\/\/[\d.:]+)/,
    );
    const page = await fetch(dashboard);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);

    const service = spawn(process.execPath, ['--require', 'stallscope/agent', 'app.js'], {
      cwd: app,
      env: {
        ...process.env,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
        OTEL_SERVICE_NAME: 'invoice',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(service);
    const port = (await waitForOutput(service, /listening on (\d+)/))[1];
    // Requests until the finding shows: the agent arms once the app has started (its loop idle
    // for a moment), so the first requests may come before it watches.
    const printed = await eventually(
      async () => {
        for (let i = 0; i < 3; i++) await (await fetch(`http://127.0.0.1:${port}/invoice`)).text();
        const r = spawnSync(bin, ['findings', '--url', dashboard, '--service', 'invoice'], {
          cwd: app,
          encoding: 'utf8',
        });
        return /renderInvoice/.test(r.stdout) ? r.stdout : undefined;
      },
      60_000,
      'a finding for the blocking handler',
    );
    assert.match(printed, /app\.js:5/);
  });
});
