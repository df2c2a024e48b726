// Versioned schema migrations. PRAGMA user_version records the last one applied; each runs in
// its own transaction, so a database is never left between two versions.
import type Database from 'better-sqlite3';

interface Migration {
  version: number;
  description: string;
  sql: string;
}

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'spans, metric points, logs, resources, services',
    sql: `
      CREATE TABLE resources (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        attributes TEXT NOT NULL,
        UNIQUE (service, attributes)
      );

      -- Times are exact nanoseconds since the epoch (they exceed 2^53: read with safeIntegers).
      CREATE TABLE spans (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT,
        trace_state TEXT,
        flags INTEGER NOT NULL DEFAULT 0,
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        status_message TEXT,
        attributes TEXT NOT NULL,
        events TEXT,
        links TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id),
        scope_name TEXT,
        scope_version TEXT
      );
      CREATE INDEX spans_trace ON spans (trace_id);
      CREATE INDEX spans_service_start ON spans (service, start_ns);
      CREATE INDEX spans_start ON spans (start_ns);

      -- value has no declared type so int64 points stay INTEGER and doubles stay REAL.
      CREATE TABLE metric_points (
        name TEXT NOT NULL,
        service TEXT NOT NULL,
        type TEXT NOT NULL,
        unit TEXT,
        description TEXT,
        temporality INTEGER NOT NULL,
        monotonic INTEGER NOT NULL,
        start_ns INTEGER,
        time_ns INTEGER NOT NULL,
        value,
        count INTEGER,
        sum REAL,
        min REAL,
        max REAL,
        buckets TEXT,
        attributes TEXT NOT NULL,
        resource_id INTEGER NOT NULL REFERENCES resources (id),
        scope_name TEXT
      );
      CREATE INDEX metric_points_name ON metric_points (name, service, time_ns);
      CREATE INDEX metric_points_time ON metric_points (time_ns);

      CREATE TABLE logs (
        time_ns INTEGER NOT NULL,
        observed_ns INTEGER,
        service TEXT NOT NULL,
        severity_number INTEGER NOT NULL,
        severity_text TEXT,
        body TEXT,
        attributes TEXT NOT NULL,
        trace_id TEXT,
        span_id TEXT,
        event_name TEXT,
        resource_id INTEGER NOT NULL REFERENCES resources (id),
        scope_name TEXT
      );
      CREATE INDEX logs_time ON logs (time_ns);
      CREATE INDEX logs_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;

      -- Kept at ingest so listing services never scans the spans.
      CREATE TABLE services (
        service TEXT PRIMARY KEY,
        first_seen_ns INTEGER NOT NULL,
        last_seen_ns INTEGER NOT NULL,
        span_count INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Brings the database up to SCHEMA_VERSION; refuses one written by a newer stallscope. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(`the database has schema version ${current}, newer than this stallscope understands (${SCHEMA_VERSION}); upgrade stallscope`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
}
