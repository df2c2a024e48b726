// Connections to PostgreSQL and what their failures mean. Messages name the host, the port, the
// database and the user, never the password.
import pg from 'pg';
import type { DatabaseLocation } from '../location';
import type { FailureKind } from '../engine';

export type PgLocation = Extract<DatabaseLocation, { engine: 'postgres' }>;

/** How long a connection attempt may take. */
const CONNECT_TIMEOUT_MS = 10_000;

export function clientConfig(l: PgLocation): pg.ClientConfig {
  return {
    connectionString: l.url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    application_name: 'stallscope',
  };
}

/** A connected client whose connection errors are reported to `onLost` instead of thrown. */
export async function connect(l: PgLocation, onLost: (err: Error) => void = () => undefined): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(l));
  client.on('error', onLost);
  try {
    await client.connect();
  } catch (err) {
    client.end().catch(() => undefined);
    throw new Error(connectError(l, err));
  }
  // A dead peer (a host gone without closing its connections) is noticed within a minute, and
  // a session lock it held (the leader lease) is released.
  await client.query('SET tcp_keepalives_idle = 20; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4');
  return client;
}

/** One line: where, and why it could not connect. */
export function connectError(l: PgLocation, err: unknown): string {
  return `cannot connect to PostgreSQL at ${l.host}:${l.port} (database "${l.database}", user "${l.user}"): ${reasonOf(err)}`;
}

function reasonOf(err: unknown): string {
  const e = err as { code?: string; message?: string };
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is the server running and listening on that port?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ETIMEDOUT':
      return 'timed out';
    case '3D000':
      return `${e.message} (create it, e.g. createdb)`;
    default:
      return /timeout/i.test(e.message ?? '') ? 'timed out' : (e.message ?? String(err)).split('\n')[0];
  }
}

/** Errors of a connection that went away (the server stopped, the network failed). */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? '';
  return (
    /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)/.test(code) ||
    /^08/.test(code) ||
    /^57P0[123]$/.test(code) ||
    /Connection terminated|not queryable|connection error|timeout|cannot connect to PostgreSQL/i.test(e?.message ?? '')
  );
}

/** What a failed write means, for the writer's report and the collector's health. */
export function classifyPg(err: unknown): FailureKind {
  const code = String((err as { code?: unknown })?.code ?? '');
  if (isConnectionError(err))
    return { transient: true, code: code || 'CONNECTION_LOST', reason: 'database unreachable' };
  if (code === '53100') return { transient: true, code, reason: 'disk full' };
  if (code === '53200') return { transient: true, code, reason: 'out of memory' };
  if (code === '53300') return { transient: true, code, reason: 'too many connections' };
  if (code === '40P01' || code === '40001' || code === '55P03')
    return { transient: true, code, reason: 'database locked' };
  if (code === '57014') return { transient: true, code, reason: 'database too slow (statement timeout)' };
  if (code === '25006') return { transient: true, code, reason: 'database read-only' };
  return { transient: false, code, reason: 'write failed' };
}
