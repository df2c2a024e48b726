// Inserts decoded batches into SQLite. Runs on the writer thread, which owns the only write
// connection; several batches are committed in one transaction (group commit).
import type Database from 'better-sqlite3';
import type { WriteBatch } from '../common/types';
import { NS_PER_HOUR, NS_PER_MINUTE } from '../common/time';
import { isLockPoint, type LockPoint } from './lock-rollup';
import { SqliteLockRollup } from './lock-rollup-sqlite';
import { streamsSince } from './schema';
import { ProfileStore } from './profile-store';
import { RouteStore } from './route-store';
import { key } from '../common/keys';
import type { RetentionResult } from './engine';

export class BatchWriter {
  private readonly resourceIds = new Map<string, number>();
  private readonly insertResource: Database.Statement;
  private readonly findResource: Database.Statement;
  private readonly insertSpan: Database.Statement;
  private readonly insertPoint: Database.Statement;
  private readonly insertLog: Database.Statement;
  private readonly upsertService: Database.Statement;
  private readonly upsertRollup: Database.Statement;
  private readonly deleteRollups: Database.Statement;
  private readonly deleteLockBlame: Database.Statement;
  private readonly deleteProfileRollup: Database.Statement;
  private readonly deleteProfiles: Database.Statement;
  private readonly deleteOrphanStacks: Database.Statement;
  private readonly profiles: ProfileStore;
  private readonly routes: RouteStore;
  private readonly deleteRequests: Database.Statement;
  private readonly deleteRouteRollup: Database.Statement;
  private readonly deleteLockRollup: Database.Statement;
  private readonly lockRollup: SqliteLockRollup;
  private readonly deleteSpans: Database.Statement;
  private readonly deletePoints: Database.Statement;
  private readonly deleteLogs: Database.Statement;
  private readonly deleteServices: Database.Statement;
  private readonly writeMany: Database.Transaction<(batches: WriteBatch[]) => void>;

  constructor(private readonly db: Database.Database) {
    this.insertResource = db.prepare(
      'INSERT INTO resources (service, attributes) VALUES (?, ?) ON CONFLICT DO NOTHING',
    );
    this.findResource = db.prepare('SELECT id FROM resources WHERE service = ? AND attributes = ?').pluck();
    this.insertSpan = db.prepare(
      `INSERT INTO spans (trace_id, span_id, parent_span_id, trace_state, flags, service, name, kind, start_ns, end_ns,
         duration_ns, status_code, status_message, attributes, events, links, resource_id, scope_name, scope_version,
         agent_kind, agent_key)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.upsertRollup = db.prepare(
      `INSERT INTO span_rollup (kind, size, bucket, service, key, count, total_ns, max_ns) VALUES (?, ?, ?, ?, ?, 1, ?, ?)
       ON CONFLICT DO UPDATE SET count = count + 1, total_ns = total_ns + excluded.total_ns, max_ns = max(max_ns, excluded.max_ns)`,
    );
    this.insertPoint = db.prepare(
      `INSERT INTO metric_points (name, service, type, unit, description, temporality, monotonic, start_ns, time_ns,
         value, count, sum, min, max, buckets, attributes, resource_id, scope_name)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertLog = db.prepare(
      `INSERT INTO logs (time_ns, observed_ns, service, severity_number, severity_text, body, attributes, trace_id,
         span_id, event_name, resource_id, scope_name)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.upsertService = db.prepare(
      `INSERT INTO services (service, first_seen_ns, last_seen_ns, span_count) VALUES (?, ?, ?, ?)
       ON CONFLICT (service) DO UPDATE SET
         first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
         last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
         span_count = span_count + excluded.span_count`,
    );
    // rowid batches keep each delete short, so ingest never waits long for the write lock.
    this.deleteSpans = db.prepare(
      'DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans WHERE start_ns < ? LIMIT ?)',
    );
    this.deletePoints = db.prepare(
      'DELETE FROM metric_points WHERE rowid IN (SELECT rowid FROM metric_points WHERE time_ns < ? LIMIT ?)',
    );
    this.deleteLogs = db.prepare('DELETE FROM logs WHERE rowid IN (SELECT rowid FROM logs WHERE time_ns < ? LIMIT ?)');
    this.deleteServices = db.prepare('DELETE FROM services WHERE last_seen_ns < ?');
    this.deleteRollups = db.prepare(
      'DELETE FROM span_rollup WHERE (size = 1 AND bucket < ?) OR (size = 60 AND bucket < ?)',
    );
    this.profiles = new ProfileStore(db);
    this.routes = new RouteStore(db);
    this.deleteRequests = db.prepare('DELETE FROM request_breakdown WHERE start_ns < ?');
    this.deleteRouteRollup = db.prepare(
      'DELETE FROM route_rollup WHERE (size = 1 AND bucket < ?) OR (size = 60 AND bucket < ?)',
    );
    this.deleteProfileRollup = db.prepare(
      'DELETE FROM profile_rollup WHERE (size = 1 AND bucket < ?) OR (size = 60 AND bucket < ?)',
    );
    this.deleteProfiles = db.prepare('DELETE FROM profiles WHERE start_ns < ?');
    this.deleteOrphanStacks = db.prepare(
      'DELETE FROM profile_stacks WHERE id NOT IN (SELECT stack_id FROM profile_rollup) AND id NOT IN (SELECT stack_id FROM profile_samples)',
    );
    this.deleteLockBlame = db.prepare(
      'DELETE FROM lock_blame_rollup WHERE (size = 1 AND bucket < ?) OR (size = 60 AND bucket < ?)',
    );
    this.deleteLockRollup = db.prepare(
      'DELETE FROM lock_rollup WHERE (size = 1 AND bucket < ?) OR (size = 60 AND bucket < ?)',
    );
    this.lockRollup = new SqliteLockRollup(db, streamsSince(db), 'stored');
    this.writeMany = db.transaction((batches: WriteBatch[]) => {
      const lockPoints: LockPoint[] = [];
      for (const b of batches) this.writeOne(b, lockPoints);
      this.lockRollup.write(lockPoints);
    });
  }

  /** Writes the batches in one transaction: all of them are committed, or none. */
  write(batches: WriteBatch[]): void {
    try {
      this.writeMany.immediate(batches);
    } catch (err) {
      // Resources and stacks first seen in the rolled-back transaction are gone again.
      this.resourceIds.clear();
      this.profiles.reset();
      throw err;
    }
  }

  private resourceId(service: string, attributes: string): number {
    const k = key(service, attributes);
    let id = this.resourceIds.get(k);
    if (id === undefined) {
      this.insertResource.run(service, attributes);
      id = Number(this.findResource.get(service, attributes));
      // Bounded: a sender that puts a timestamp in its resource must not grow this forever.
      if (this.resourceIds.size > 10_000) this.resourceIds.clear();
      this.resourceIds.set(k, id);
    }
    return id;
  }

  private writeOne(batch: WriteBatch, lockPoints: LockPoint[]): void {
    const ids = batch.resources.map((r) => this.resourceId(r.service, r.attributes));
    const seen = new Map<string, { first: bigint; last: bigint; count: number }>();
    for (const s of batch.spans) {
      const service = batch.resources[s.resource].service;
      const duration = s.endNs - s.startNs;
      const agent = s.agent;
      this.insertSpan.run(
        s.traceId,
        s.spanId,
        s.parentSpanId,
        s.traceState,
        s.flags,
        service,
        s.name,
        s.kind,
        s.startNs,
        s.endNs,
        duration,
        s.statusCode,
        s.statusMessage,
        s.attributes,
        s.events,
        s.links,
        ids[s.resource],
        s.scopeName,
        s.scopeVersion,
        agent?.kind ?? null,
        agent?.key ?? null,
      );
      if (agent) {
        const minute = s.startNs / NS_PER_MINUTE;
        this.upsertRollup.run(agent.kind, 1, minute, service, agent.key, duration, duration);
        this.upsertRollup.run(agent.kind, 60, minute / 60n, service, agent.key, duration, duration);
      }
      const agg = seen.get(service);
      if (!agg) seen.set(service, { first: s.startNs, last: s.startNs, count: 1 });
      else {
        if (s.startNs < agg.first) agg.first = s.startNs;
        if (s.startNs > agg.last) agg.last = s.startNs;
        agg.count++;
      }
    }
    for (const p of batch.points) {
      const service = batch.resources[p.resource].service;
      this.insertPoint.run(
        p.name,
        service,
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
        ids[p.resource],
        p.scopeName,
      );
      if (isLockPoint(p)) lockPoints.push({ point: p, service, resourceId: ids[p.resource] });
      if (!seen.has(service)) seen.set(service, { first: p.timeNs, last: p.timeNs, count: 0 });
    }
    for (const l of batch.logs) {
      const service = batch.resources[l.resource].service;
      this.insertLog.run(
        l.timeNs,
        l.observedNs,
        service,
        l.severityNumber,
        l.severityText,
        l.body,
        l.attributes,
        l.traceId,
        l.spanId,
        l.eventName,
        ids[l.resource],
        l.scopeName,
      );
      if (!seen.has(service)) seen.set(service, { first: l.timeNs, last: l.timeNs, count: 0 });
    }
    for (const p of batch.profiles ?? []) this.profiles.write(p);
    if (batch.requests?.length) this.routes.write(batch.requests);
    for (const [service, agg] of seen) this.upsertService.run(service, agg.first, agg.last, agg.count);
  }

  /**
   * Deletes up to `limit` rows of each kind older than the cutoff, in one short transaction.
   * Callers repeat it until it returns fewer than `limit` of each.
   */
  deleteOlderThan(cutoffNs: bigint, limit: number): RetentionResult {
    return this.db
      .transaction(() => ({
        spans: this.deleteSpans.run(cutoffNs, limit).changes,
        points: this.deletePoints.run(cutoffNs, limit).changes,
        logs: this.deleteLogs.run(cutoffNs, limit).changes,
        services: this.deleteServices.run(cutoffNs).changes,
        rollups: 0,
        alertHistory: 0,
      }))
      .immediate();
  }

  /** Deletes the rollup rows older than the cutoff (a row per minute and key: one statement each). */
  deleteRollupsOlderThan(cutoffNs: bigint): number {
    // Stacks no longer referenced are deleted: their cached ids must not be handed out again.
    this.profiles.reset();
    return this.db
      .transaction(
        () =>
          this.deleteRollups.run(cutoffNs / NS_PER_MINUTE, cutoffNs / NS_PER_HOUR).changes +
          this.deleteLockBlame.run(cutoffNs / NS_PER_MINUTE, cutoffNs / NS_PER_HOUR).changes +
          this.deleteLockRollup.run(cutoffNs / NS_PER_MINUTE, cutoffNs / NS_PER_HOUR).changes +
          this.deleteProfileRollup.run(cutoffNs / NS_PER_MINUTE, cutoffNs / NS_PER_HOUR).changes +
          this.deleteProfiles.run(cutoffNs).changes +
          this.deleteRequests.run(cutoffNs).changes +
          this.deleteRouteRollup.run(cutoffNs / NS_PER_MINUTE, cutoffNs / NS_PER_HOUR).changes +
          this.deleteOrphanStacks.run().changes,
      )
      .immediate();
  }
}
