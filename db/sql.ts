// How the read model talks to an engine: SQL text with named parameters (`@name`), rows back as
// plain objects, asynchronously, so that an engine with a network round trip fits behind the same
// interface as SQLite's in-process reads. Integer columns may arrive as bigint, number or string
// depending on the engine: readers convert them with `int()` and `big()`, never by assumption.
import type Database from 'better-sqlite3';

export type Params = Record<string, unknown>;

/** What differs between engines in the SQL the read model writes. */
export interface Dialect {
  readonly engine: 'sqlite' | 'postgres';
  /** A column that orders a table's rows as they were inserted (ties of equal times). */
  readonly rowId: string;
  /** A planner hint to read `table` through `index`, where the engine takes one ('' elsewhere). */
  indexedBy(index: string): string;
  /** Boolean `cond` as 1 or 0, for sums. */
  count(cond: string): string;
  /** Distinct values of `col` joined by commas. */
  joinDistinct(col: string): string;
  /** The JSON type (`text`, `integer`, `real`, `true`, `false`...) of `key` in the JSON text column `col`. */
  jsonType(col: string, keyParam: string): string;
  /** The value of `key` in the JSON text column `col`, as SQL text or number. */
  jsonValue(col: string, keyParam: string): string;
}

export interface SqlReader {
  readonly dialect: Dialect;
  all<T>(sql: string, params?: Params): Promise<T[]>;
}

/** An integer column's value as a number (null as 0). */
export const int = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
/** An integer column's value as a bigint, exact beyond 2^53. */
export const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as bigint | string | number));

/** `@name0, @name1, ...` for a list, and the parameters that bind them. */
export function inList(name: string, values: readonly unknown[]): { sql: string; params: Params } {
  const params: Params = {};
  values.forEach((v, i) => (params[`${name}${i}`] = v));
  return { sql: values.map((_, i) => `@${name}${i}`).join(', ') || 'NULL', params };
}

const SQLITE: Dialect = {
  engine: 'sqlite',
  rowId: 'rowid',
  indexedBy: (index) => `INDEXED BY ${index}`,
  count: (cond) => `sum(CASE WHEN ${cond} THEN 1 ELSE 0 END)`,
  joinDistinct: (col) => `group_concat(DISTINCT ${col})`,
  jsonType: (col, p) => `json_type(${col}, '$."' || ${p} || '"')`,
  jsonValue: (col, p) => `json_extract(${col}, '$."' || ${p} || '"')`,
};

/** Statements kept prepared at most: queries built from lists vary in their text. */
const MAX_STATEMENTS = 500;

/**
 * Reads on SQLite's read-only connection. better-sqlite3 is synchronous, so a read runs to its
 * end before the promise resolves; integers come back as bigint (nanosecond times exceed 2^53).
 */
export class SqliteReader implements SqlReader {
  readonly dialect = SQLITE;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  private statement(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      if (this.statements.size >= MAX_STATEMENTS) this.statements.delete(this.statements.keys().next().value!);
      s = this.db.prepare(sql).safeIntegers(true);
      this.statements.set(sql, s);
    }
    return s;
  }

  all<T>(sql: string, params: Params = {}): Promise<T[]> {
    try {
      return Promise.resolve(this.statement(sql).all(params) as T[]);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}
