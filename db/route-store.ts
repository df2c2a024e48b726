// Request breakdowns as stored: one row per request (its route, duration and causes), and per
// route per minute and per hour the request count, a duration histogram and the causes summed,
// so that the Routes page over a day reads a few thousand rows.
import type Database from 'better-sqlite3';
import type { RequestBreakdown } from '../common/types';
import { key } from '../common/keys';
import { NS_PER_HOUR, NS_PER_MINUTE } from '../common/time';
import { durationBucket, emptyRouteBucket, mergeRouteBucket, type RouteBucket } from './route-bucket';

export class RouteStore {
  private readonly insert: Database.Statement;
  private readonly read: Database.Statement;
  private readonly upsert: Database.Statement;

  constructor(db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO request_breakdown (trace_id, span_id, service, instance, route, start_ns, duration_ns, causes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    this.read = db.prepare('SELECT data FROM route_rollup WHERE size = ? AND bucket = ? AND service = ? AND route = ?');
    this.upsert = db.prepare(
      `INSERT INTO route_rollup (size, bucket, service, route, data) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET data = excluded.data`,
    );
  }

  /** Stores the breakdowns not stored yet (the job may offer one twice) and folds them in. */
  write(requests: RequestBreakdown[]): void {
    const pending = new Map<string, { size: number; bucket: bigint; service: string; route: string; b: RouteBucket }>();
    for (const r of requests) {
      const added = this.insert.run(
        r.traceId,
        r.spanId,
        r.service,
        r.instance,
        r.route,
        r.startNs,
        r.durationNs,
        JSON.stringify(r.causes),
      ).changes;
      if (!added) continue;
      const one = emptyRouteBucket();
      one.requests = 1;
      one.totalMs = Number(r.durationNs) / 1e6;
      one.durations[durationBucket(one.totalMs)] = 1;
      for (const c of r.causes) one.causes[key(c.kind, c.what)] = c.ms;
      for (const [size, width] of [
        [1, NS_PER_MINUTE],
        [60, NS_PER_HOUR],
      ] as const) {
        const bucket = r.startNs / width;
        const id = key(size, bucket, r.service, r.route);
        let e = pending.get(id);
        if (!e) pending.set(id, (e = { size, bucket, service: r.service, route: r.route, b: emptyRouteBucket() }));
        mergeRouteBucket(e.b, one);
      }
    }
    for (const e of pending.values()) {
      const row = this.read.get(e.size, e.bucket, e.service, e.route) as { data: string } | undefined;
      const merged = row ? (JSON.parse(row.data) as RouteBucket) : emptyRouteBucket();
      mergeRouteBucket(merged, e.b);
      this.upsert.run(e.size, e.bucket, e.service, e.route, JSON.stringify(merged));
    }
  }
}
