// Spans, metric points and logs are partitioned by day (range partitions on their time in ns):
// retention drops whole days, and a day's indexes stay the size of a day. Partitions are made
// ahead (today's and tomorrow's) and on demand for the days a batch holds within the kept window;
// anything outside it (a clock years off, a negative time) lands in the default partition.
import type pg from 'pg';

export const PARTITIONED = { spans: 'start_ns', metric_points: 'time_ns', logs: 'time_ns' } as const;
export type PartitionedTable = keyof typeof PARTITIONED;

export const DAY_NS = 86_400_000_000_000n;
/** Days kept in partitions of their own when nothing is ever deleted. */
const DAYS_WITHOUT_RETENTION = 31n;
/** Serialises partition changes between collectors (any constant unique to stallscope). */
const PARTITION_LOCK = 7_301_117_002n;

/** The day (since the epoch, UTC) a time in ns falls in. */
export const dayOf = (ns: bigint): bigint => (ns >= 0n ? ns / DAY_NS : -((-ns + DAY_NS - 1n) / DAY_NS));

export function partitionName(table: PartitionedTable, day: bigint): string {
  const date = new Date(Number(day) * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
  return `${table}_p${date}`;
}

/** The day a partition's name says, or null (the default partition, or not ours). */
function dayOfName(table: string, name: string): bigint | null {
  const m = new RegExp(`^${table}_p(\\d{4})(\\d{2})(\\d{2})$`).exec(name);
  return m ? BigInt(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / 86_400_000) : null;
}

export interface Partition {
  table: PartitionedTable;
  name: string;
  /** Null for the default partition. */
  day: bigint | null;
}

export class Partitions {
  private readonly known = new Set<string>();

  /** `retentionMs`: how far back partitions are made (0: keep everything). */
  constructor(private readonly retentionMs: number) {}

  /** The days that get partitions of their own, around now: [first, last]. */
  window(nowMs = Date.now()): [bigint, bigint] {
    const today = BigInt(Math.floor(nowMs / 86_400_000));
    const back = this.retentionMs > 0 ? BigInt(Math.ceil(this.retentionMs / 86_400_000)) + 1n : DAYS_WITHOUT_RETENTION;
    return [today - back, today + 1n];
  }

  async list(c: pg.Client): Promise<Partition[]> {
    const { rows } = await c.query<{ parent: string; name: string }>(
      `SELECT p.relname AS parent, k.relname AS name FROM pg_inherits i
       JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class k ON k.oid = i.inhrelid
       WHERE p.relname = ANY($1) AND p.relnamespace = current_schema()::regnamespace`,
      [Object.keys(PARTITIONED)],
    );
    const out: Partition[] = [];
    for (const r of rows) {
      const table = r.parent as PartitionedTable;
      out.push({ table, name: r.name, day: dayOfName(table, r.name) });
      const day = dayOfName(table, r.name);
      if (day !== null) this.known.add(`${table}:${day}`);
    }
    return out;
  }

  /** Today's and tomorrow's partitions of every table. */
  async makeAhead(c: pg.Client): Promise<void> {
    await this.list(c);
    const [, last] = this.window();
    for (const table of Object.keys(PARTITIONED) as PartitionedTable[]) await this.ensure(c, table, [last - 1n, last]);
  }

  /** Makes the partitions missing for these days, within the window (outside a transaction). */
  async ensure(c: pg.Client, table: PartitionedTable, days: Iterable<bigint>): Promise<void> {
    const [first, last] = this.window();
    for (const day of days) {
      if (day < first || day > last || this.known.has(`${table}:${day}`)) continue;
      await this.create(c, table, day);
      this.known.add(`${table}:${day}`);
    }
  }

  forget(p: Partition): void {
    if (p.day !== null) this.known.delete(`${p.table}:${p.day}`);
  }

  /**
   * A day's partition: made on its own, given the rows the default partition already holds for
   * that day, then attached (which, unlike CREATE ... PARTITION OF, leaves the parent readable
   * and writable meanwhile).
   */
  private async create(c: pg.Client, table: PartitionedTable, day: bigint): Promise<void> {
    const name = partitionName(table, day);
    const column = PARTITIONED[table];
    const [lo, hi] = [day * DAY_NS, (day + 1n) * DAY_NS];
    await c.query('BEGIN');
    try {
      await c.query("SET LOCAL lock_timeout = '10s'");
      await c.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      const exists = await c.query(
        'SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace',
        [name],
      );
      if (exists.rowCount === 0) {
        await c.query(`CREATE TABLE ${name} (LIKE ${table} INCLUDING DEFAULTS)`);
        await c.query(
          `WITH moved AS (DELETE FROM ${table}_default WHERE ${column} >= ${lo} AND ${column} < ${hi} RETURNING *)
           INSERT INTO ${name} SELECT * FROM moved`,
        );
        await c.query(`ALTER TABLE ${table} ATTACH PARTITION ${name} FOR VALUES FROM (${lo}) TO (${hi})`);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }
}
