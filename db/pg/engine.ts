// PostgreSQL behind the writer thread: one connection for ingest and alert state (used by one
// transaction at a time, in arrival order), and a short-lived one per retention run.
import type pg from 'pg';
import type { AlertWrite, WriteBatch } from '../../common/types';
import { NS_PER_HOUR, NS_PER_MINUTE, NS_PER_MS } from '../../common/time';
import { noneRetained, type FailureKind, type RetentionResult, type WriteEngine } from '../engine';
import type { DatabaseLocation } from '../location';
import { classifyPg, connect, isConnectionError, type PgLocation } from './connect';
import { DAY_NS, PARTITIONED, Partitions } from './partitions';
import { migratePg, streamsSincePg } from './schema';
import { PgBatchWriter, writeAlertsPg } from './writer';

/** One retention run at a time over all collectors (any constant unique to stallscope). */
const RETENTION_LOCK = 7_301_117_003n;
/** A dropped partition's rows are counted up to this many; past it, the planner's estimate. */
const COUNT_ROWS_UP_TO = 1_000_000;
/** Tries of a transaction that lost a deadlock or serialization conflict before it fails. */
const CONFLICT_TRIES = 4;

const FIELD = { spans: 'spans', metric_points: 'points', logs: 'logs' } as const;

const isConflict = (err: unknown) => ['40P01', '40001'].includes(String((err as { code?: string })?.code));

export async function openPgEngine(
  location: Extract<DatabaseLocation, { engine: 'postgres' }>,
  retentionMs: number,
): Promise<PgEngine> {
  const engine = new PgEngine(location, new Partitions(retentionMs));
  await engine.start();
  return engine;
}

export class PgEngine implements WriteEngine {
  private client: pg.Client | undefined;
  private writer: PgBatchWriter | undefined;
  private aheadAtMs = 0;

  constructor(
    private readonly location: PgLocation,
    private readonly partitions: Partitions,
  ) {}

  /** Connects, migrates and makes today's partitions; throws one line naming what failed. */
  async start(): Promise<void> {
    const c = await this.conn();
    try {
      await migratePg(c);
    } catch (err) {
      throw new Error(
        `cannot use PostgreSQL at ${this.location.host}:${this.location.port} (database "${this.location.database}"): ${(err as Error).message}`,
      );
    }
    this.writer = new PgBatchWriter(await streamsSincePg(c), this.partitions);
    await this.ahead(c);
  }

  private async conn(): Promise<pg.Client> {
    if (this.client) return this.client;
    const c = await connect(this.location, () => this.drop(c));
    // A writer stopped mid-transaction (SIGSTOP, a hung host) must not hold its locks for long.
    await c.query("SET statement_timeout = '120s'; SET idle_in_transaction_session_timeout = '60s'");
    this.client = c;
    return c;
  }

  private drop(c: pg.Client): void {
    if (this.client !== c) return;
    this.client = undefined;
    c.end().catch(() => undefined);
  }

  /** Today's and tomorrow's partitions, checked once an hour. */
  private async ahead(c: pg.Client): Promise<void> {
    if (Date.now() - this.aheadAtMs < 3_600_000) return;
    await this.partitions.makeAhead(c);
    this.aheadAtMs = Date.now();
  }

  async write(batches: WriteBatch[]): Promise<void> {
    const c = await this.conn();
    try {
      try {
        await this.ahead(c);
        await this.writer!.preparePartitions(c, batches);
      } catch (err) {
        // The rows go to the default partition meanwhile; the next batch tries again.
        if (isConnectionError(err)) throw err;
        process.emitWarning(`stallscope: a partition could not be made: ${(err as Error).message}`);
      }
      for (let attempt = 1; ; attempt++) {
        await c.query('BEGIN');
        try {
          await this.writer!.write(c, batches);
          await c.query('COMMIT');
          return;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          this.writer!.reset();
          if (attempt < CONFLICT_TRIES && isConflict(err)) continue;
          throw err;
        }
      }
    } catch (err) {
      if (isConnectionError(err)) this.drop(c);
      throw err;
    }
  }

  async writeAlerts(w: AlertWrite): Promise<void> {
    const c = await this.conn();
    try {
      await writeAlertsPg(c, w);
    } catch (err) {
      if (isConnectionError(err)) this.drop(c);
      throw err;
    }
  }

  /**
   * Whole days are dropped; the day that holds the cutoff, and the default partition, lose their
   * older rows a batch at a time. One collector at a time does this; the others skip their turn.
   */
  async retain(cutoffNs: bigint, batchSize: number, stopping: () => boolean): Promise<RetentionResult> {
    const total = noneRetained();
    const c = await connect(this.location);
    try {
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [RETENTION_LOCK]);
      if (!got.rows[0].ok) return total;
      // Dropping a partition waits for the parent's readers: rather give up and try next time.
      await c.query("SET lock_timeout = '5s'");
      for (const p of await this.partitions.list(c)) {
        if (stopping()) return total;
        const column = PARTITIONED[p.table];
        if (p.day !== null && (p.day + 1n) * DAY_NS <= cutoffNs) {
          const rows = await countRows(c, p.name);
          try {
            await c.query(`DROP TABLE IF EXISTS ${p.name}`);
          } catch (err) {
            if ((err as { code?: string }).code === '55P03') continue;
            throw err;
          }
          this.partitions.forget(p);
          total[FIELD[p.table]] += rows;
        } else if (p.day === null || p.day * DAY_NS < cutoffNs) {
          for (;;) {
            const r = await c.query(
              `DELETE FROM ${p.name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${p.name} WHERE ${column} < $1 LIMIT $2))`,
              [cutoffNs, batchSize],
            );
            total[FIELD[p.table]] += r.rowCount ?? 0;
            if ((r.rowCount ?? 0) < batchSize || stopping()) break;
          }
        }
      }
      await c.query('BEGIN');
      const run = async (sql: string, ...params: unknown[]) => (await c.query(sql, params)).rowCount ?? 0;
      const [minute, hour] = [cutoffNs / NS_PER_MINUTE, cutoffNs / NS_PER_HOUR];
      total.services += await run('DELETE FROM services WHERE last_seen_ns < $1', cutoffNs);
      total.rollups +=
        (await run(
          'DELETE FROM span_rollup WHERE (size = 1 AND bucket < $1) OR (size = 60 AND bucket < $2)',
          minute,
          hour,
        )) +
        (await run(
          'DELETE FROM lock_blame_rollup WHERE (size = 1 AND bucket < $1) OR (size = 60 AND bucket < $2)',
          minute,
          hour,
        )) +
        (await run(
          'DELETE FROM lock_rollup WHERE (size = 1 AND bucket < $1) OR (size = 60 AND bucket < $2)',
          minute,
          hour,
        )) +
        (await run(
          'DELETE FROM profile_rollup WHERE (size = 1 AND bucket < $1) OR (size = 60 AND bucket < $2)',
          minute,
          hour,
        )) +
        (await run('DELETE FROM profiles WHERE start_ns < $1', cutoffNs)) +
        (await run('DELETE FROM request_breakdown WHERE start_ns < $1', cutoffNs)) +
        (await run(
          'DELETE FROM route_rollup WHERE (size = 1 AND bucket < $1) OR (size = 60 AND bucket < $2)',
          minute,
          hour,
        )) +
        (await run(
          `DELETE FROM profile_stacks WHERE id NOT IN (SELECT stack_id FROM profile_rollup)
             AND id NOT IN (SELECT stack_id FROM profile_samples)`,
        ));
      total.alertHistory += await run('DELETE FROM alert_history WHERE time_ms < $1', cutoffNs / NS_PER_MS);
      await c.query('COMMIT');
      return total;
    } finally {
      // Ending the session releases the retention lock.
      await c.end().catch(() => undefined);
    }
  }

  classify(err: unknown): FailureKind {
    return classifyPg(err);
  }

  async probe(): Promise<boolean> {
    try {
      const c = await this.conn();
      await c.query('SELECT 1');
      return true;
    } catch (err) {
      if (this.client && isConnectionError(err)) this.drop(this.client);
      return false;
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }
}

/** A partition's rows: counted when few, else the planner's estimate (counting a big day would scan it). */
async function countRows(c: pg.Client, table: string): Promise<number> {
  const est = await c.query<{ n: number }>('SELECT reltuples AS n FROM pg_class WHERE relname = $1', [table]);
  const estimate = Number(est.rows[0]?.n ?? -1);
  if (estimate >= 0 && estimate > COUNT_ROWS_UP_TO) return Math.round(estimate);
  const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0].n);
}
