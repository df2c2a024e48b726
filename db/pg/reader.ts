// Reads on PostgreSQL: the read model's SQL with its `@name` parameters numbered ($1, $2...),
// over a small pool. int8 and numeric columns come back as decimal strings, which the read
// model converts with int() and big().
import pg from 'pg';
import type { Dialect, Params, SqlReader } from '../sql';
import { clientConfig, isConnectionError, type PgLocation } from './connect';

/** JSON text columns as `json` (not jsonb): ->> gives a number back exactly as it was written. */
const json = (col: string, p: string) => `(${col}::json -> ${p})`;

export const POSTGRES: Dialect = {
  engine: 'postgres',
  rowId: 'seq',
  indexedBy: () => '',
  count: (cond) => `sum(CASE WHEN ${cond} THEN 1 ELSE 0 END)`,
  joinDistinct: (col) => `string_agg(DISTINCT ${col}, ',')`,
  // SQLite's names for the types: text, integer or real, true, false, null, object, array.
  jsonType: (col, p) =>
    `(CASE json_typeof(${json(col, p)}) WHEN 'string' THEN 'text' WHEN 'number' THEN 'real'
      WHEN 'boolean' THEN (${col}::json ->> ${p}) ELSE json_typeof(${json(col, p)}) END)`,
  jsonValue: (col, p) => `(${col}::json ->> ${p})`,
};

/** Translations kept at most: queries built from lists vary in their text. */
const MAX_TRANSLATIONS = 500;

/** `@name` → `$n` outside string literals, and the order the values go in. */
export function numberParams(sql: string): { text: string; names: string[] } {
  const names: string[] = [];
  const index = new Map<string, number>();
  let text = '';
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (ch === "'") {
      const end = sql.indexOf("'", i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      text += sql.slice(i, stop);
      i = stop - 1;
    } else if (ch === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      const m = /^[A-Za-z_]\w*/.exec(sql.slice(i + 1))!;
      let n = index.get(m[0]);
      if (n === undefined) {
        names.push(m[0]);
        index.set(m[0], (n = names.length));
      }
      text += `$${n}`;
      i += m[0].length;
    } else text += ch;
  }
  return { text, names };
}

export class PgReader implements SqlReader {
  readonly dialect = POSTGRES;
  private readonly pool: pg.Pool;
  private readonly translations = new Map<string, { text: string; names: string[] }>();

  constructor(location: PgLocation, size: number) {
    this.pool = new pg.Pool({
      ...clientConfig(location),
      max: size,
      idleTimeoutMillis: 30_000,
      statement_timeout: 30_000,
    });
    // An idle connection the server dropped: the pool replaces it at the next read.
    this.pool.on('error', () => undefined);
  }

  async all<T>(sql: string, params: Params = {}): Promise<T[]> {
    let t = this.translations.get(sql);
    if (!t) {
      if (this.translations.size >= MAX_TRANSLATIONS) this.translations.delete(this.translations.keys().next().value!);
      this.translations.set(sql, (t = numberParams(sql)));
    }
    try {
      const r = await this.pool.query(
        t.text,
        t.names.map((n) => params[n] ?? null),
      );
      return r.rows as T[];
    } catch (err) {
      if (isConnectionError(err)) throw new Error(`database unreachable: ${(err as Error).message}`);
      throw err;
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
