// A throwaway PostgreSQL server for a test file (or a benchmark): initdb into a temp folder, then
// pg_ctl on a free loopback port, stopped when the process exits. Debian's binaries are used
// (/usr/lib/postgresql/<version>/bin, or STALLSCOPE_PG_BIN); initdb refuses to run as root, so
// as root both run as the `postgres` user.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PgServer {
  port: number;
  /** A URL for one database of this server. */
  url(database: string): string;
  /** A new, empty database; its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server, keeping its data (a database lost mid-run). */
  down(): void;
  /** Starts it again after down(). */
  up(): void;
  /** Stops it for good and removes its folder. */
  stop(): void;
}

export interface PgServerOptions {
  /** fsync as in production (benchmarks); tests run without it. */
  durable?: boolean;
}

const OWNER = 'postgres';

function binDir(): string {
  const given = process.env.STALLSCOPE_PG_BIN;
  if (given) {
    if (!existsSync(join(given, 'initdb'))) throw new Error(`STALLSCOPE_PG_BIN=${given} holds no initdb`);
    return given;
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      `PostgreSQL server binaries not found: no initdb and pg_ctl under ${root}/<version>/bin. ` +
        'Install them (apt-get install -y postgresql) or set STALLSCOPE_PG_BIN to the folder that holds them.',
    );
  return join(root, versions.includes('15') ? '15' : versions[0], 'bin');
}

/** A loopback port free at the moment of asking, for a server that cannot listen on port 0. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function startPostgres(options: PgServerOptions = {}): Promise<PgServer> {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  if (asRoot && spawnSync('id', ['-u', OWNER]).status !== 0)
    throw new Error(
      `running as root, initdb needs the '${OWNER}' user, which does not exist (apt-get install postgresql makes it)`,
    );
  const run = (cmd: string, args: string[]) =>
    execFileSync(asRoot ? 'runuser' : join(bin, cmd), asRoot ? ['-u', OWNER, '--', join(bin, cmd), ...args] : args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-pg-'));
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', OWNER]).toString());
    const gid = Number(execFileSync('id', ['-g', OWNER]).toString());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const data = join(dir, 'data');
  const port = await freePort();
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c max_connections=200',
    // Without fsync a commit still reaches the OS before it returns, so it survives the server's
    // process being killed (tests stop it so), not the machine's power.
    ...(options.durable ? [] : ['-c fsync=off', '-c full_page_writes=off']),
  ].join(' ');
  let running = false;
  const up = () => {
    run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', settings, '-w', '-t', '60', 'start']);
    running = true;
  };
  const down = () => {
    run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    running = false;
  };
  try {
    run('initdb', ['-D', data, '-U', OWNER, '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C']);
    up();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`could not start PostgreSQL from ${bin}: ${e.stderr?.toString().trim() || e.message}`);
  }
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stop);
    try {
      if (running) down();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.on('exit', stop);
  const url = (database: string) => `postgres://${OWNER}@127.0.0.1:${port}/${database}`;
  let made = 0;
  return {
    port,
    url,
    async createDatabase() {
      const name = `t${process.pid}_${++made}`;
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    down,
    up,
    stop,
  };
}

let shared: Promise<PgServer> | undefined;

/** One server for the whole test file, started at first use, stopped when the process exits. */
export function sharedPostgres(): Promise<PgServer> {
  shared ??= startPostgres();
  return shared;
}
