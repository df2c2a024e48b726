// Inserts decoded batches into PostgreSQL, one transaction per group of batches (group commit),
// rows by COPY. Several collectors may write one database at once, so what is read, changed and
// written back in one transaction (the lock and route rollups' JSON rows, the streams' last
// points) is taken under advisory locks per lock and per route, and every row that transactions
// may share is written in one order (sorted), so that they wait for each other but never
// deadlock. Counters that only add (span and profile rollups, services) are upserts that add.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { AlertWrite, RequestBreakdown, WriteBatch } from '../../common/types';
import { key } from '../../common/keys';
import { NS_PER_MINUTE, nowNs } from '../../common/time';
import {
  EXACT_HORIZON_NS,
  STREAM_HORIZON_NS,
  decodeStream,
  encodeStream,
  foldLockPoints,
  isLockPoint,
  lockOf,
  mergeBucket,
  streamOf,
  type LockBucket,
  type LockPoint,
  type StreamState,
} from '../lock-rollup';
import { SAMPLE_HORIZON_NS, foldProfile, stackHash, type ProfileRollupRow } from '../profile-store';
import { foldRequests } from '../route-store';
import { mergeRouteBucket, type RouteBucket } from '../route-bucket';
import { copyRow, pgText } from './copy';
import { dayOf, PARTITIONED, type PartitionedTable, type Partitions } from './partitions';

const SPAN_COLUMNS = `trace_id, span_id, parent_span_id, trace_state, flags, service, name, kind, start_ns, end_ns,
  duration_ns, status_code, status_message, attributes, events, links, resource_id, scope_name, scope_version,
  agent_kind, agent_key`;
const POINT_COLUMNS = `name, service, type, unit, description, temporality, monotonic, start_ns, time_ns, value, count,
  sum, min, max, buckets, attributes, resource_id, scope_name`;
const LOG_COLUMNS = `time_ns, observed_ns, service, severity_number, severity_text, body, attributes, trace_id, span_id,
  event_name, resource_id, scope_name`;

/** Resource ids remembered; past this the memory starts over. */
const MAX_CACHED_RESOURCES = 10_000;
/** Bytes of COPY text sent per chunk. */
const COPY_CHUNK = 1 << 20;

/** A 64-bit advisory lock key for a name: the first 8 bytes of its SHA-1, signed. */
export function lockKey(name: string): bigint {
  return createHash('sha1').update(name).digest().readBigInt64BE(0);
}

const byKey = <T>(rows: T[], k: (r: T) => string): T[] => rows.sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));

export class PgBatchWriter {
  private readonly resourceIds = new Map<string, number>();
  private prunedAtNs = 0n;

  constructor(
    private readonly sinceNs: bigint,
    private readonly partitions: Partitions,
  ) {}

  /** Forgets ids of rows a rolled-back transaction may have made. */
  reset(): void {
    this.resourceIds.clear();
  }

  /** The partitions the batches' rows need, made before the transaction that writes them. */
  async preparePartitions(c: pg.Client, batches: WriteBatch[]): Promise<void> {
    const days: Record<PartitionedTable, Set<bigint>> = { spans: new Set(), metric_points: new Set(), logs: new Set() };
    for (const b of batches) {
      for (const s of b.spans) days.spans.add(dayOf(s.startNs));
      for (const p of b.points) days.metric_points.add(dayOf(p.timeNs));
      for (const l of b.logs) days.logs.add(dayOf(l.timeNs));
    }
    for (const table of Object.keys(PARTITIONED) as PartitionedTable[])
      if (days[table].size) await this.partitions.ensure(c, table, days[table]);
  }

  /** Writes the batches inside the caller's transaction. */
  async write(c: pg.Client, batches: WriteBatch[]): Promise<void> {
    const ids = await this.resources(c, batches);
    const stacks = await this.stacks(c, batches);
    const lockPoints: LockPoint[] = [];
    for (const [i, b] of batches.entries())
      for (const p of b.points)
        if (isLockPoint(p))
          lockPoints.push({ point: p, service: b.resources[p.resource].service, resourceId: ids[i][p.resource] });
    const requests = batches.flatMap((b) => b.requests ?? []);
    await this.advisoryLocks(c, lockPoints, requests);
    await this.copyRows(c, batches, ids);
    await this.lockRollup(c, lockPoints);
    await this.profiles(c, batches, stacks);
    if (requests.length) await this.routes(c, requests);
    await this.spanRollup(c, batches);
    await this.services(c, batches);
  }

  /** Each batch's resource ids, inserting the resources not stored yet. */
  private async resources(c: pg.Client, batches: WriteBatch[]): Promise<number[][]> {
    const missing = new Map<string, { hash: string; service: string; attributes: string }>();
    for (const b of batches)
      for (const r of b.resources) {
        const k = key(r.service, r.attributes);
        if (!this.resourceIds.has(k) && !missing.has(k))
          missing.set(k, { hash: createHash('sha1').update(k).digest('hex'), ...r });
      }
    if (missing.size) {
      const rows = byKey([...missing.values()], (r) => r.hash);
      await c.query(
        `INSERT INTO resources (hash, service, attributes) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (hash) DO NOTHING`,
        [rows.map((r) => r.hash), rows.map((r) => pgText(r.service)), rows.map((r) => pgText(r.attributes))],
      );
      const found = await c.query<{ id: string; hash: string }>(
        'SELECT id, hash FROM resources WHERE hash = ANY($1::text[])',
        [rows.map((r) => r.hash)],
      );
      const byHash = new Map(found.rows.map((r) => [r.hash, Number(r.id)]));
      if (this.resourceIds.size + missing.size > MAX_CACHED_RESOURCES) this.resourceIds.clear();
      for (const [k, r] of missing) this.resourceIds.set(k, byHash.get(r.hash)!);
    }
    return batches.map((b) => b.resources.map((r) => this.resourceIds.get(key(r.service, r.attributes))!));
  }

  /** Stack ids by frames JSON (no cache: retention deletes stacks nothing refers to any more). */
  private async stacks(c: pg.Client, batches: WriteBatch[]): Promise<Map<string, number>> {
    const frames = new Map<string, string>();
    for (const b of batches)
      for (const p of b.profiles ?? [])
        for (const s of p.stacks) {
          const json = JSON.stringify(s);
          if (!frames.has(json)) frames.set(json, stackHash(json));
        }
    const out = new Map<string, number>();
    if (frames.size === 0) return out;
    const rows = byKey([...frames], ([, hash]) => hash);
    await c.query(
      `INSERT INTO profile_stacks (hash, frames) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (hash) DO NOTHING`,
      [rows.map(([, h]) => h), rows.map(([f]) => pgText(f))],
    );
    const found = await c.query<{ id: string; hash: string }>(
      'SELECT id, hash FROM profile_stacks WHERE hash = ANY($1::text[])',
      [rows.map(([, h]) => h)],
    );
    const byHash = new Map(found.rows.map((r) => [r.hash, Number(r.id)]));
    for (const [json, hash] of frames) out.set(json, byHash.get(hash)!);
    return out;
  }

  /**
   * The locks and routes whose rows this transaction reads and writes back: taken in one order,
   * held to the commit, so a concurrent transaction on the same lock or route waits and then sees
   * this one's rows.
   */
  private async advisoryLocks(c: pg.Client, lockPoints: LockPoint[], requests: RequestBreakdown[]): Promise<void> {
    const keys = new Set<bigint>();
    for (const p of lockPoints) {
      const { lock, type } = lockOf(p);
      keys.add(lockKey(key('lock', p.service, lock, type)));
    }
    for (const r of requests) keys.add(lockKey(key('route', r.service, r.route)));
    if (keys.size === 0) return;
    const sorted = [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    await c.query('SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k', [sorted]);
  }

  private async copyRows(c: pg.Client, batches: WriteBatch[], ids: number[][]): Promise<void> {
    const spans: string[] = [];
    const points: string[] = [];
    const logs: string[] = [];
    for (const [i, b] of batches.entries()) {
      const service = (r: number) => b.resources[r].service;
      for (const s of b.spans)
        spans.push(
          copyRow([
            s.traceId,
            s.spanId,
            s.parentSpanId,
            s.traceState,
            s.flags,
            service(s.resource),
            s.name,
            s.kind,
            s.startNs,
            s.endNs,
            s.endNs - s.startNs,
            s.statusCode,
            s.statusMessage,
            s.attributes,
            s.events,
            s.links,
            ids[i][s.resource],
            s.scopeName,
            s.scopeVersion,
            s.agent?.kind ?? null,
            s.agent?.key ?? null,
          ]),
        );
      for (const p of b.points)
        points.push(
          copyRow([
            p.name,
            service(p.resource),
            p.type,
            p.unit,
            p.description,
            p.temporality,
            p.monotonic ? 1 : 0,
            p.startNs,
            p.timeNs,
            p.value,
            p.count,
            p.sum,
            p.min,
            p.max,
            p.buckets,
            p.attributes,
            ids[i][p.resource],
            p.scopeName,
          ]),
        );
      for (const l of b.logs)
        logs.push(
          copyRow([
            l.timeNs,
            l.observedNs,
            service(l.resource),
            l.severityNumber,
            l.severityText,
            l.body,
            l.attributes,
            l.traceId,
            l.spanId,
            l.eventName,
            ids[i][l.resource],
            l.scopeName,
          ]),
        );
    }
    if (spans.length) await copy(c, 'spans', SPAN_COLUMNS, spans);
    if (points.length) await copy(c, 'metric_points', POINT_COLUMNS, points);
    if (logs.length) await copy(c, 'logs', LOG_COLUMNS, logs);
  }

  /** The lock metrics folded against the streams' stored last points (under the locks' advisory locks). */
  private async lockRollup(c: pg.Client, points: LockPoint[]): Promise<void> {
    if (points.length) {
      const streamIds = [...new Set(points.map(streamOf).filter((s): s is string => s !== null))];
      const previous = new Map<string, StreamState>();
      if (streamIds.length) {
        const { rows } = await c.query<{ stream: string; data: string }>(
          'SELECT stream, data FROM lock_streams WHERE stream = ANY($1::text[])',
          [streamIds],
        );
        for (const r of rows) previous.set(r.stream, decodeStream(r.data));
      }
      const changes = foldLockPoints(points, previous, this.sinceNs);
      const buckets = byKey(changes.buckets, (b) => key(b.size, b.bucket, b.service, b.lock, b.type));
      if (buckets.length) {
        const cols = [
          buckets.map((b) => b.size),
          buckets.map((b) => b.bucket),
          buckets.map((b) => pgText(b.service)),
          buckets.map((b) => pgText(b.lock)),
          buckets.map((b) => pgText(b.type)),
        ];
        const { rows } = await c.query<{
          size: number;
          bucket: string;
          service: string;
          lock: string;
          type: string;
          data: string;
        }>(
          `SELECT r.size, r.bucket, r.service, r.lock, r.type, r.data FROM lock_rollup r
           JOIN unnest($1::int[], $2::int8[], $3::text[], $4::text[], $5::text[]) AS k(size, bucket, service, lock, type)
             USING (size, bucket, service, lock, type)`,
          cols,
        );
        const stored = new Map(rows.map((r) => [key(r.size, r.bucket, r.service, r.lock, r.type), r.data]));
        const data = buckets.map((b) => {
          const before = stored.get(key(b.size, b.bucket, pgText(b.service), pgText(b.lock), pgText(b.type)));
          if (before === undefined) return JSON.stringify(b.b);
          const merged = JSON.parse(before) as LockBucket;
          mergeBucket(merged, b.b);
          return JSON.stringify(merged);
        });
        await c.query(
          `INSERT INTO lock_rollup (size, bucket, service, lock, type, data)
           SELECT * FROM unnest($1::int[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[])
           ON CONFLICT (size, bucket, service, lock, type) DO UPDATE SET data = excluded.data`,
          [...cols, data],
        );
      }
      const blame = byKey(changes.blame, (b) => key(b.size, b.bucket, b.service, b.lock, b.waiter, b.holder));
      if (blame.length)
        await c.query(
          `INSERT INTO lock_blame_rollup (size, bucket, service, lock, waiter_site, holder_site, charged_ns)
           SELECT * FROM unnest($1::int[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[])
           ON CONFLICT (size, bucket, service, lock, waiter_site, holder_site)
             DO UPDATE SET charged_ns = lock_blame_rollup.charged_ns + excluded.charged_ns`,
          [
            blame.map((b) => b.size),
            blame.map((b) => b.bucket),
            blame.map((b) => pgText(b.service)),
            blame.map((b) => pgText(b.lock)),
            blame.map((b) => pgText(b.waiter)),
            blame.map((b) => pgText(b.holder)),
            blame.map((b) => b.ns),
          ],
        );
      const streams = byKey([...changes.streams], ([id]) => id);
      if (streams.length)
        await c.query(
          `INSERT INTO lock_streams (stream, time_ns, data) SELECT * FROM unnest($1::text[], $2::int8[], $3::text[])
           ON CONFLICT (stream) DO UPDATE SET time_ns = excluded.time_ns, data = excluded.data`,
          [streams.map(([id]) => id), streams.map(([, s]) => s.timeNs), streams.map(([, s]) => encodeStream(s))],
        );
    }
    // Single exports, silent streams and old timed samples age out here, whatever the retention.
    const now = nowNs();
    if (now - this.prunedAtNs >= NS_PER_MINUTE) {
      this.prunedAtNs = now;
      await c.query('DELETE FROM lock_rollup WHERE size = 0 AND bucket < $1', [now - EXACT_HORIZON_NS]);
      await c.query('DELETE FROM lock_streams WHERE time_ns < $1', [now - STREAM_HORIZON_NS]);
      await c.query('DELETE FROM profile_samples WHERE time_ns < $1', [now - SAMPLE_HORIZON_NS]);
    }
  }

  private async profiles(c: pg.Client, batches: WriteBatch[], stacks: Map<string, number>): Promise<void> {
    const profiles = batches.flatMap((b) => b.profiles ?? []);
    if (profiles.length === 0) return;
    await c.query(
      `INSERT INTO profiles (service, instance, start_ns, duration_ns, period_ns, samples, requested_hz, resource)
       SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int[], $7::float8[], $8::text[])`,
      [
        profiles.map((p) => pgText(p.service)),
        profiles.map((p) => pgText(p.instance)),
        profiles.map((p) => p.startNs),
        profiles.map((p) => p.durationNs),
        profiles.map((p) => p.periodNs),
        profiles.map((p) => p.samples.length),
        profiles.map((p) => p.requestedHz),
        profiles.map((p) => pgText(JSON.stringify(p.resource))),
      ],
    );
    const samples: string[] = [];
    const rollup = new Map<string, ProfileRollupRow & { service: string }>();
    for (const p of profiles) {
      const folded = foldProfile(
        p,
        p.stacks.map((s) => stacks.get(JSON.stringify(s))!),
      );
      for (const s of folded.samples) samples.push(copyRow([p.service, p.instance, s.timeNs, s.stack, s.weightNs]));
      for (const r of folded.rollup) {
        const id = key(r.size, r.bucket, p.service, r.stack);
        const e = rollup.get(id);
        if (e) {
          e.samples += r.samples;
          e.ns += r.ns;
        } else rollup.set(id, { ...r, service: p.service });
      }
    }
    if (samples.length) await copy(c, 'profile_samples', 'service, instance, time_ns, stack_id, weight_ns', samples);
    const rows = byKey([...rollup], ([id]) => id).map(([, r]) => r);
    await c.query(
      `INSERT INTO profile_rollup (size, bucket, service, stack_id, samples, weight_ns)
       SELECT * FROM unnest($1::int[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
       ON CONFLICT (size, bucket, service, stack_id) DO UPDATE SET
         samples = profile_rollup.samples + excluded.samples, weight_ns = profile_rollup.weight_ns + excluded.weight_ns`,
      [
        rows.map((r) => r.size),
        rows.map((r) => r.bucket),
        rows.map((r) => pgText(r.service)),
        rows.map((r) => r.stack),
        rows.map((r) => r.samples),
        rows.map((r) => r.ns),
      ],
    );
  }

  /** Breakdowns not stored yet (the job may offer one twice), folded into the route rollup. */
  private async routes(c: pg.Client, requests: RequestBreakdown[]): Promise<void> {
    const unique = new Map(requests.map((r) => [key(r.traceId, r.spanId), r]));
    const list = byKey([...unique], ([k]) => k).map(([, r]) => r);
    const { rows } = await c.query<{ trace_id: string; span_id: string }>(
      `INSERT INTO request_breakdown (trace_id, span_id, service, instance, route, start_ns, duration_ns, causes)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[])
       ON CONFLICT DO NOTHING RETURNING trace_id, span_id`,
      [
        list.map((r) => pgText(r.traceId)),
        list.map((r) => pgText(r.spanId)),
        list.map((r) => pgText(r.service)),
        list.map((r) => pgText(r.instance)),
        list.map((r) => pgText(r.route)),
        list.map((r) => r.startNs),
        list.map((r) => r.durationNs),
        list.map((r) => pgText(JSON.stringify(r.causes))),
      ],
    );
    const added = new Set(rows.map((r) => key(r.trace_id, r.span_id)));
    const increments = byKey(
      foldRequests(list.filter((r) => added.has(key(pgText(r.traceId), pgText(r.spanId))))),
      (e) => key(e.size, e.bucket, e.service, e.route),
    );
    if (increments.length === 0) return;
    const cols = [
      increments.map((e) => e.size),
      increments.map((e) => e.bucket),
      increments.map((e) => pgText(e.service)),
      increments.map((e) => pgText(e.route)),
    ];
    const stored = await c.query<{ size: number; bucket: string; service: string; route: string; data: string }>(
      `SELECT r.size, r.bucket, r.service, r.route, r.data FROM route_rollup r
       JOIN unnest($1::int[], $2::int8[], $3::text[], $4::text[]) AS k(size, bucket, service, route)
         USING (size, bucket, service, route)`,
      cols,
    );
    const before = new Map(stored.rows.map((r) => [key(r.size, r.bucket, r.service, r.route), r.data]));
    const data = increments.map((e) => {
      const b = before.get(key(e.size, e.bucket, pgText(e.service), pgText(e.route)));
      if (b === undefined) return JSON.stringify(e.b);
      const merged = JSON.parse(b) as RouteBucket;
      mergeRouteBucket(merged, e.b);
      return JSON.stringify(merged);
    });
    await c.query(
      `INSERT INTO route_rollup (size, bucket, service, route, data)
       SELECT * FROM unnest($1::int[], $2::int8[], $3::text[], $4::text[], $5::text[])
       ON CONFLICT (size, bucket, service, route) DO UPDATE SET data = excluded.data`,
      [...cols, data],
    );
  }

  /** The agent spans' rollup per minute and per hour: added up in the group first, then one upsert that adds. */
  private async spanRollup(c: pg.Client, batches: WriteBatch[]): Promise<void> {
    const rollup = new Map<
      string,
      {
        kind: string;
        size: number;
        bucket: bigint;
        service: string;
        key: string;
        count: number;
        total: bigint;
        max: bigint;
      }
    >();
    for (const b of batches)
      for (const s of b.spans) {
        if (!s.agent) continue;
        const service = pgText(b.resources[s.resource].service);
        const minute = s.startNs / NS_PER_MINUTE;
        const duration = s.endNs - s.startNs;
        for (const [size, bucket] of [
          [1, minute],
          [60, minute / 60n],
        ] as const) {
          const k = key(pgText(s.agent.kind), size, bucket, service, pgText(s.agent.key));
          const e = rollup.get(k);
          if (e) {
            e.count++;
            e.total += duration;
            if (duration > e.max) e.max = duration;
          } else
            rollup.set(k, {
              kind: pgText(s.agent.kind),
              size,
              bucket,
              service,
              key: pgText(s.agent.key),
              count: 1,
              total: duration,
              max: duration,
            });
        }
      }
    if (rollup.size === 0) return;
    const rows = byKey([...rollup], ([k]) => k).map(([, r]) => r);
    await c.query(
      `INSERT INTO span_rollup (kind, size, bucket, service, key, count, total_ns, max_ns)
       SELECT * FROM unnest($1::text[], $2::int[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[])
       ON CONFLICT (kind, size, bucket, service, key) DO UPDATE SET count = span_rollup.count + excluded.count,
         total_ns = span_rollup.total_ns + excluded.total_ns, max_ns = greatest(span_rollup.max_ns, excluded.max_ns)`,
      [
        rows.map((r) => r.kind),
        rows.map((r) => r.size),
        rows.map((r) => r.bucket),
        rows.map((r) => r.service),
        rows.map((r) => r.key),
        rows.map((r) => r.count),
        rows.map((r) => r.total),
        rows.map((r) => r.max),
      ],
    );
  }

  private async services(c: pg.Client, batches: WriteBatch[]): Promise<void> {
    const seen = new Map<string, { first: bigint; last: bigint; count: number }>();
    const see = (service: string, t: bigint, spans: number) => {
      const e = seen.get(service);
      if (!e) seen.set(service, { first: t, last: t, count: spans });
      else {
        if (t < e.first) e.first = t;
        if (t > e.last) e.last = t;
        e.count += spans;
      }
    };
    for (const b of batches) {
      for (const s of b.spans) see(pgText(b.resources[s.resource].service), s.startNs, 1);
      // Points and logs make a service known, without moving its span times (as on SQLite).
      for (const p of b.points) {
        const service = pgText(b.resources[p.resource].service);
        if (!seen.has(service)) see(service, p.timeNs, 0);
      }
      for (const l of b.logs) {
        const service = pgText(b.resources[l.resource].service);
        if (!seen.has(service)) see(service, l.timeNs, 0);
      }
    }
    if (seen.size === 0) return;
    const rows = byKey([...seen], ([s]) => s);
    await c.query(
      `INSERT INTO services (service, first_seen_ns, last_seen_ns, span_count)
       SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
       ON CONFLICT (service) DO UPDATE SET first_seen_ns = least(services.first_seen_ns, excluded.first_seen_ns),
         last_seen_ns = greatest(services.last_seen_ns, excluded.last_seen_ns),
         span_count = services.span_count + excluded.span_count`,
      [rows.map(([s]) => s), rows.map(([, e]) => e.first), rows.map(([, e]) => e.last), rows.map(([, e]) => e.count)],
    );
  }
}

/** COPY rows (text format, newline-terminated) into a table. */
export async function copy(c: pg.Client, table: string, columns: string, rows: string[]): Promise<void> {
  const chunks = function* () {
    let buf = '';
    for (const r of rows) {
      buf += r;
      if (buf.length >= COPY_CHUNK) {
        yield Buffer.from(buf);
        buf = '';
      }
    }
    if (buf) yield Buffer.from(buf);
  };
  await pipeline(Readable.from(chunks()), c.query(copyFrom(`COPY ${table} (${columns}) FROM STDIN`)));
}

/** Alert state and history, one evaluation per transaction (db/alerts.ts on SQLite). */
export async function writeAlertsPg(c: pg.Client, w: AlertWrite): Promise<void> {
  await c.query('BEGIN');
  try {
    if (w.keepRules) await c.query('DELETE FROM alert_instances WHERE rule <> ALL($1::text[])', [w.keepRules]);
    for (const r of w.remove)
      await c.query('DELETE FROM alert_instances WHERE rule = $1 AND fingerprint = $2', [r.rule, r.fingerprint]);
    for (const i of w.upsert)
      await c.query(
        `INSERT INTO alert_instances (rule, fingerprint, labels, annotations, state, value, active_since_ms, fired_at_ms,
           resolved_at_ms, last_eval_ms, notified_state, notified_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (rule, fingerprint) DO UPDATE SET labels = excluded.labels, annotations = excluded.annotations,
           state = excluded.state, value = excluded.value, active_since_ms = excluded.active_since_ms,
           fired_at_ms = excluded.fired_at_ms, resolved_at_ms = excluded.resolved_at_ms,
           last_eval_ms = excluded.last_eval_ms, notified_state = excluded.notified_state,
           notified_at_ms = excluded.notified_at_ms`,
        [
          i.rule,
          i.fingerprint,
          JSON.stringify(i.labels),
          JSON.stringify(i.annotations),
          i.state,
          i.value,
          i.activeSinceMs,
          i.firedAtMs,
          i.resolvedAtMs,
          i.lastEvalMs,
          i.notifiedState,
          i.notifiedAtMs,
        ].map((v) => (typeof v === 'string' ? pgText(v) : v)),
      );
    for (const h of w.history)
      await c.query(
        `INSERT INTO alert_history (time_ms, rule, fingerprint, labels, from_state, to_state, value)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [h.timeMs, pgText(h.rule), h.fingerprint, pgText(JSON.stringify(h.labels)), h.from, h.to, h.value],
      );
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
