#!/usr/bin/env node
// `npm test`: every suite, one after the other: the Node suites on this Node, the agent's
// in-process suites on Node 24 (Web Locks), the Python agent's. It first checks what they need
// from the machine and, when something is missing, says what and how to get it, before running
// anything. Every suite runs even when one before it fails; the summary says which failed.
// Plain JavaScript: it runs before anything is built.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** What the suites need from the machine, each with how to get it when it is missing. */
const prerequisites = [
  {
    what: `Chromium at ${chromium} (the dashboard's browser tests)`,
    ok: () => existsSync(chromium),
    fix: 'apt-get update && apt-get install -y chromium   (or set CHROMIUM_PATH to a Chromium binary)',
  },
  {
    what: 'python3 with pytest (the Python agent)',
    ok: () => run('python3', ['-m', 'pytest', '--version'], { quiet: true }) === 0,
    fix: 'apt-get install -y python3-pytest   (or: python3 -m pip install pytest)',
  },
  {
    what: "PostgreSQL's server binaries, initdb and pg_ctl (the suites that also run on PostgreSQL)",
    ok: () =>
      Boolean(process.env.STALLSCOPE_PG_BIN) ||
      (existsSync('/usr/lib/postgresql') &&
        readdirSync('/usr/lib/postgresql').some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))),
    fix: 'apt-get install -y postgresql   (or set STALLSCOPE_PG_BIN to the folder holding initdb and pg_ctl)',
  },
  {
    what: 'mkfifo (the blocked-read test)',
    ok: () => run('sh', ['-c', 'command -v mkfifo'], { quiet: true }) === 0,
    fix: 'apt-get install -y coreutils',
  },
];

const suites = [
  { name: 'build (and the dashboard pages type-checked)', cmd: 'npm', args: () => ['run', 'build'] },
  { name: 'format (prettier --check)', cmd: 'npm', args: () => ['run', 'format:check'] },
  // The file list is read after the build, which makes it.
  {
    name: `Node ${process.versions.node}: every suite`,
    cmd: process.execPath,
    args: () => ['--test', '--test-reporter=spec', ...testFiles()],
  },
  { name: 'Node 24: the agent in-process', cmd: 'npm', args: () => ['run', 'test:node24'] },
  { name: 'Python agent', cmd: 'npm', args: () => ['run', 'test:python'] },
];

function testFiles() {
  const dir = join(root, 'dist', 'test');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => join('dist', 'test', f));
}

function run(cmd, args, { quiet = false } = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: quiet ? 'ignore' : 'inherit' });
  return r.error ? 127 : (r.status ?? 1);
}

const missing = prerequisites.filter((p) => !p.ok());
if (missing.length) {
  console.error('npm test: the tests need what this machine lacks:');
  for (const p of missing) console.error(`  - ${p.what}\n      get it with: ${p.fix}`);
  process.exit(1);
}

const results = [];
for (const s of suites) {
  console.log(`\n=== ${s.name}`);
  const started = Date.now();
  const status = run(s.cmd, s.args());
  results.push({ name: s.name, status, seconds: Math.round((Date.now() - started) / 1000) });
  if (s === suites[0] && status !== 0) break;
}
console.log('\n=== npm test: summary');
for (const r of results) console.log(`  ${r.status === 0 ? 'pass' : 'FAIL'}  ${r.name} (${r.seconds} s)`);
process.exit(results.every((r) => r.status === 0) && results.length === suites.length ? 0 : 1);
