// Versioned schema migrations. PRAGMA user_version records the last one applied; each runs in
// its own transaction, so a database is never left between two versions.
import type Database from 'better-sqlite3';
import { agentSpan } from '../common/agent-spans';
import type { Attributes, MetricPointRow } from '../common/types';
import { isLockPoint, type LockPoint, type StreamState } from './lock-rollup';
import { SqliteLockRollup } from './lock-rollup-sqlite';
import { NS_PER_MINUTE, nowNs } from '../common/time';

interface Migration {
  version: number;
  description: string;
  sql: string;
  /** Data work after the SQL, in the same transaction. */
  then?: (db: Database.Database) => void;
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
  {
    version: 2,
    description: 'agent spans indexed and rolled up per minute for the dashboard',
    sql: `
      -- stallscope.kind of an agent span, and what it is about (its lock, its blocking function...).
      ALTER TABLE spans ADD COLUMN agent_kind TEXT;
      ALTER TABLE spans ADD COLUMN agent_key TEXT;
      CREATE INDEX spans_agent ON spans (agent_kind, start_ns) WHERE agent_kind IS NOT NULL;
      CREATE INDEX spans_agent_key ON spans (agent_kind, agent_key, start_ns) WHERE agent_kind IS NOT NULL;

      -- Per minute (start_ns / 60e9), kept at ingest: dashboards read these, not the spans.
      CREATE TABLE span_rollup (
        kind TEXT NOT NULL,
        service TEXT NOT NULL,
        minute INTEGER NOT NULL,
        key TEXT NOT NULL,
        count INTEGER NOT NULL,
        total_ns INTEGER NOT NULL,
        max_ns INTEGER NOT NULL,
        PRIMARY KEY (kind, minute, service, key)
      ) WITHOUT ROWID;
      -- Lock waits by who waited (the acquire site) on whom (the holder's site); replaced in version 5.
      CREATE TABLE lock_pair_rollup (
        service TEXT NOT NULL,
        lock TEXT NOT NULL,
        minute INTEGER NOT NULL,
        waiter_site TEXT NOT NULL,
        holder_site TEXT NOT NULL,
        count INTEGER NOT NULL,
        total_ns INTEGER NOT NULL,
        max_ns INTEGER NOT NULL,
        PRIMARY KEY (lock, minute, service, waiter_site, holder_site)
      ) WITHOUT ROWID;
    `,
    then: backfillAgentSpans,
  },
  {
    version: 3,
    description: 'lock metrics rolled up per lock per minute and per hour',
    sql: `
      -- A gauge over all services within a window (the loop-delay charts).
      CREATE INDEX metric_points_name_time ON metric_points (name, time_ns);
      -- The slowest agent spans of one key (a lock's slowest waits) without sorting them all.
      CREATE INDEX spans_agent_slow ON spans (agent_kind, agent_key, duration_ns) WHERE agent_kind IS NOT NULL;
      -- size 1: a minute (bucket = time_ns / 60e9); size 60: an hour; size 0 (from version 5):
      -- one export (bucket = time_ns), kept two hours. data: a LockBucket (JSON).
      CREATE TABLE lock_rollup (
        size INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        service TEXT NOT NULL,
        lock TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (size, bucket, service, lock, type)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 4,
    description: 'alert state and history; agent spans by service',
    sql: `
      -- One row per alert (a rule and a label set) that is pending, firing or recently resolved.
      CREATE TABLE alert_instances (
        rule TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        state TEXT NOT NULL,
        value REAL,
        active_since_ms INTEGER NOT NULL,
        fired_at_ms INTEGER,
        resolved_at_ms INTEGER,
        last_eval_ms INTEGER NOT NULL,
        -- The last state a receiver was told of, and when: a restart does not tell it again.
        notified_state TEXT,
        notified_at_ms INTEGER,
        PRIMARY KEY (rule, fingerprint)
      ) WITHOUT ROWID;
      CREATE TABLE alert_history (
        time_ms INTEGER NOT NULL,
        rule TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        labels TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        value REAL
      );
      CREATE INDEX alert_history_time ON alert_history (time_ms);
      -- One service's latest agent spans of a kind, without walking every other service's.
      CREATE INDEX spans_agent_service ON spans (agent_kind, service, start_ns) WHERE agent_kind IS NOT NULL;
    `,
  },
  {
    version: 5,
    description: 'lock blame rolled up from wait_caused; lock rollup with single exports (size 0)',
    // The lock rollup is folded (again) from the points, so that the last two hours get their
    // single exports too. Who waited on whom now comes from the agents' charges (wait_caused),
    // not from the holder a waiter first queued behind: the old pairs are dropped.
    sql: `
      DELETE FROM lock_rollup;
      DROP TABLE lock_pair_rollup;
      -- Wait charged to holds, per lock, waiter site and holder site; sizes 1 (minute) and 60 (hour).
      CREATE TABLE lock_blame_rollup (
        size INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        service TEXT NOT NULL,
        lock TEXT NOT NULL,
        waiter_site TEXT NOT NULL,
        holder_site TEXT NOT NULL,
        charged_ns INTEGER NOT NULL,
        PRIMARY KEY (size, bucket, service, lock, waiter_site, holder_site)
      ) WITHOUT ROWID;
    `,
    then: backfillLockRollup,
  },
  {
    version: 6,
    description: 'loop CPU profiles: windows, stacks, timed samples, rollup',
    sql: `
      -- One row per posted profile window.
      CREATE TABLE profiles (
        service TEXT NOT NULL,
        instance TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        period_ns INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        requested_hz REAL,
        resource TEXT NOT NULL
      );
      CREATE INDEX profiles_start ON profiles (start_ns);
      -- Each distinct stack once: frames is a JSON array, root first, of {fn, file, line, origin}.
      CREATE TABLE profile_stacks (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        frames TEXT NOT NULL
      );
      -- Every sample with its time, kept two hours.
      CREATE TABLE profile_samples (
        service TEXT NOT NULL,
        instance TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        stack_id INTEGER NOT NULL,
        weight_ns INTEGER NOT NULL
      );
      CREATE INDEX profile_samples_time ON profile_samples (service, time_ns);
      CREATE INDEX profile_samples_age ON profile_samples (time_ns);
      -- Weight per stack; size 1: a minute (bucket = time_ns / 60e9), size 60: an hour.
      CREATE TABLE profile_rollup (
        size INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        service TEXT NOT NULL,
        stack_id INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        weight_ns INTEGER NOT NULL,
        PRIMARY KEY (size, bucket, service, stack_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 7,
    description: 'request breakdowns per request and per route; server spans by end',
    sql: `
      -- One row per request (HTTP server span): where its time went (causes: JSON array).
      CREATE TABLE request_breakdown (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        service TEXT NOT NULL,
        instance TEXT NOT NULL,
        route TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        causes TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id)
      ) WITHOUT ROWID;
      CREATE INDEX request_breakdown_route ON request_breakdown (service, route, start_ns);
      CREATE INDEX request_breakdown_start ON request_breakdown (start_ns);
      -- size 1: a minute (bucket = start_ns / 60e9), size 60: an hour. data: a RouteBucket (JSON).
      CREATE TABLE route_rollup (
        size INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        service TEXT NOT NULL,
        route TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (size, bucket, service, route)
      ) WITHOUT ROWID;
      -- The routes job reads the server spans that ended in its window.
      CREATE INDEX spans_server_end ON spans (end_ns) WHERE kind = 2;
    `,
  },
  {
    version: 8,
    description: "lock streams' last points kept in the database",
    sql: `
      -- Settings of the database itself: streams_since_ns, when it began keeping lock streams.
      CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
      -- The last point of each cumulative lock metric stream (stream: a hash of resource, metric
      -- and attributes; data: a StreamState as JSON), which the next point is differenced against.
      CREATE TABLE lock_streams (
        stream TEXT PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        data TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX lock_streams_time ON lock_streams (time_ns);
    `,
    then: (db) => {
      db.prepare("INSERT INTO settings (name, value) VALUES ('streams_since_ns', ?)").run(String(nowNs()));
    },
  },
  {
    version: 9,
    description: "a route's slowest requests by duration",
    sql: `
      -- Read in duration order until enough fall in the window: a day of a busy route is
      -- otherwise sorted whole for its ten slowest. It holds the key (trace_id, span_id) too.
      CREATE INDEX request_breakdown_slowest ON request_breakdown (service, route, duration_ns, start_ns);
    `,
  },
  {
    version: 10,
    description: 'the agent spans rolled up per hour too',
    sql: `
      -- As the other rollups: size 1, a minute (bucket = start_ns / 60e9); size 60, an hour. A day
      -- of a key is 24 hourly rows, not 1,440.
      CREATE TABLE span_rollup_sized (
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        service TEXT NOT NULL,
        key TEXT NOT NULL,
        count INTEGER NOT NULL,
        total_ns INTEGER NOT NULL,
        max_ns INTEGER NOT NULL,
        PRIMARY KEY (kind, size, bucket, service, key)
      ) WITHOUT ROWID;
      INSERT INTO span_rollup_sized SELECT kind, 1, minute, service, key, count, total_ns, max_ns FROM span_rollup;
      INSERT INTO span_rollup_sized
        SELECT kind, 60, minute / 60, service, key, sum(count), sum(total_ns), max(max_ns) FROM span_rollup
        GROUP BY kind, minute / 60, service, key;
      DROP TABLE span_rollup;
      ALTER TABLE span_rollup_sized RENAME TO span_rollup;
    `,
  },
];

/** When the database began keeping lock streams (a stream that started later is whole in it). */
export function streamsSince(db: Database.Database): bigint {
  const v = db.prepare("SELECT value FROM settings WHERE name = 'streams_since_ns'").pluck().get() as string;
  return BigInt(v);
}

/** Folds the lock metrics a database already holds, oldest first (one pass, at upgrade). */
function backfillLockRollup(db: Database.Database): void {
  // As at ingest: a stream that began after the database's first point is whole in it (its
  // first point counts in full); one that began before has only a baseline there.
  const first = db.prepare('SELECT min(time_ns) FROM metric_points').pluck().safeIntegers(true).get() as bigint | null;
  const rollup = new SqliteLockRollup(db, first ?? 0n, new Map<string, StreamState>());
  // In pages (time, rowid): a statement being read cannot share its connection with writes,
  // and a large database must not be loaded at once.
  const page = db
    .prepare(
      `SELECT rowid, name, service, type, temporality, monotonic, start_ns, time_ns, value, count, sum, min, max, buckets, attributes, resource_id
       FROM metric_points WHERE name LIKE 'stallscope.lock.%' AND (time_ns > ? OR (time_ns = ? AND rowid > ?)) ORDER BY time_ns, rowid LIMIT 10000`,
    )
    .safeIntegers(true);
  let [time, rowid] = [-1n, -1n];
  for (;;) {
    const rows = page.all(time, time, rowid) as Array<Record<string, unknown>>;
    if (rows.length === 0) break;
    const points: LockPoint[] = [];
    for (const r of rows) {
      const num = (v: unknown) => (v === null ? null : Number(v));
      const point: MetricPointRow = {
        name: r.name as string,
        description: null,
        unit: null,
        type: r.type as MetricPointRow['type'],
        temporality: Number(r.temporality),
        monotonic: Number(r.monotonic) === 1,
        startNs: r.start_ns as bigint | null,
        timeNs: r.time_ns as bigint,
        value: num(r.value),
        count: num(r.count),
        sum: num(r.sum),
        min: num(r.min),
        max: num(r.max),
        buckets: r.buckets as string | null,
        attributes: r.attributes as string,
        resource: 0,
        scopeName: null,
      };
      if (isLockPoint(point)) points.push({ point, service: r.service as string, resourceId: Number(r.resource_id) });
    }
    rollup.write(points);
    const last = rows[rows.length - 1];
    [time, rowid] = [last.time_ns as bigint, last.rowid as bigint];
  }
}

/** Classifies and rolls up the agent spans a database already holds (one pass, at upgrade). */
function backfillAgentSpans(db: Database.Database): void {
  const page = db
    .prepare(
      `SELECT rowid, service, start_ns, duration_ns, attributes FROM spans WHERE rowid > ? AND json_type(attributes, '$."stallscope.kind"') = 'text' ORDER BY rowid LIMIT 10000`,
    )
    .safeIntegers(true);
  const update = db.prepare('UPDATE spans SET agent_kind = ?, agent_key = ? WHERE rowid = ?');
  const rollup = db.prepare(
    `INSERT INTO span_rollup (kind, service, minute, key, count, total_ns, max_ns) VALUES (?, ?, ?, ?, 1, ?, ?)
     ON CONFLICT DO UPDATE SET count = count + 1, total_ns = total_ns + excluded.total_ns, max_ns = max(max_ns, excluded.max_ns)`,
  );
  // In pages by rowid: a statement being iterated cannot share its connection with writes.
  for (let after = 0n; ;) {
    const rows = page.all(after) as Array<{
      rowid: bigint;
      service: string;
      start_ns: bigint;
      duration_ns: bigint;
      attributes: string;
    }>;
    if (rows.length === 0) break;
    for (const r of rows) {
      const agent = agentSpan(JSON.parse(r.attributes) as Attributes);
      if (!agent) continue;
      update.run(agent.kind, agent.key, r.rowid);
      const minute = r.start_ns / NS_PER_MINUTE;
      rollup.run(agent.kind, r.service, minute, agent.key, r.duration_ns, r.duration_ns);
    }
    after = rows[rows.length - 1].rowid;
  }
}

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Brings the database up to SCHEMA_VERSION; refuses one written by a newer stallscope. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `the database has schema version ${current}, newer than this stallscope understands (${SCHEMA_VERSION}); upgrade stallscope`,
    );
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      m.then?.(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
}
