// The leader lease: a session-level advisory lock on a connection of its own. PostgreSQL lets one
// session hold it; it is released when that session ends (the process died, its connection was
// cut, or TCP keepalives found the host gone), and another collector takes it at its next try.
// The connection is also how the main thread knows whether the database is reachable at all.
import type pg from 'pg';
import { connect, type PgLocation } from './connect';

/** The lock's key (any constant unique to stallscope; advisory locks are per database). */
const LEADER_LOCK = 7_301_117_000n;
/** A check of the connection that takes longer than this counts as lost. */
const CHECK_TIMEOUT_MS = 5000;

export class Lease {
  private client: pg.Client | undefined;
  private held = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  /** Since when, and why, the database could not be reached (undefined: it can). */
  unreachable: { since: number; error: string } | undefined;

  constructor(
    private readonly location: PgLocation,
    private readonly intervalMs: number,
  ) {}

  /** Tries at once, then every interval. */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    return this.tick();
  }

  /** Whether this collector holds the lease, confirmed with the database now. */
  async confirm(): Promise<boolean> {
    await this.ticking;
    if (!this.held || !this.client) return false;
    try {
      await withTimeout(this.client.query('SELECT 1'));
      return this.held;
    } catch (err) {
      this.lost(err as Error);
      return false;
    }
  }

  private tick(): Promise<void> {
    this.ticking ??= this.try().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async try(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.client) {
        const c = await connect(this.location, (err) => this.lost(err, c));
        if (this.closed) {
          await c.end().catch(() => undefined);
          return;
        }
        this.client = c;
      }
      if (this.held) await withTimeout(this.client.query('SELECT 1'));
      else {
        const { rows } = await withTimeout(
          this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK]),
        );
        this.held = rows[0].ok;
      }
      this.unreachable = undefined;
    } catch (err) {
      this.lost(err as Error);
    }
  }

  private lost(err: Error, from?: pg.Client): void {
    if (from && from !== this.client) return;
    this.held = false;
    this.unreachable ??= { since: Date.now(), error: err.message };
    const c = this.client;
    this.client = undefined;
    c?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    const c = this.client;
    this.client = undefined;
    this.held = false;
    // Ending the session releases the lock at once, so another collector takes over at its next try.
    await c?.end().catch(() => undefined);
  }
}

function withTimeout<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from the database within ${CHECK_TIMEOUT_MS} ms`)),
        CHECK_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
