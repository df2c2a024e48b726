// The lock rollup's reads and writes on SQLite (the arithmetic is lock-rollup.ts): the streams'
// last points and the rollup rows a group of points changes, in the writer's transaction.
import type Database from 'better-sqlite3';
import { NS_PER_MINUTE, nowNs } from '../common/time';
import {
  EXACT_HORIZON_NS,
  STREAM_HORIZON_NS,
  decodeStream,
  encodeStream,
  foldLockPoints,
  mergeBucket,
  streamOf,
  type LockBucket,
  type LockPoint,
  type StreamState,
} from './lock-rollup';

export class SqliteLockRollup {
  private readonly readStream: Database.Statement;
  private readonly writeStream: Database.Statement;
  private readonly read: Database.Statement;
  private readonly upsert: Database.Statement;
  private readonly upsertBlame: Database.Statement;
  private readonly prune: Database.Statement;
  private readonly pruneStreams: Database.Statement | undefined;
  private prunedAtNs = 0n;

  /**
   * `streams`: 'stored' keeps the streams' last points in lock_streams; a map keeps them there
   * instead (an upgrade's backfill, which runs before that table exists).
   */
  constructor(
    db: Database.Database,
    private readonly sinceNs: bigint,
    private readonly streams: 'stored' | Map<string, StreamState>,
  ) {
    const stored = streams === 'stored';
    this.readStream = db.prepare(stored ? 'SELECT data FROM lock_streams WHERE stream = ?' : 'SELECT NULL');
    this.writeStream = db.prepare(
      stored
        ? `INSERT INTO lock_streams (stream, time_ns, data) VALUES (?, ?, ?)
           ON CONFLICT DO UPDATE SET time_ns = excluded.time_ns, data = excluded.data`
        : 'SELECT NULL',
    );
    this.pruneStreams = stored ? db.prepare('DELETE FROM lock_streams WHERE time_ns < ?') : undefined;
    this.read = db.prepare(
      'SELECT data FROM lock_rollup WHERE service = ? AND lock = ? AND type = ? AND size = ? AND bucket = ?',
    );
    this.upsert = db.prepare(
      `INSERT INTO lock_rollup (service, lock, type, size, bucket, data) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET data = excluded.data`,
    );
    this.prune = db.prepare('DELETE FROM lock_rollup WHERE size = 0 AND bucket < ?');
    this.upsertBlame = db.prepare(
      `INSERT INTO lock_blame_rollup (size, bucket, service, lock, waiter_site, holder_site, charged_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET charged_ns = charged_ns + excluded.charged_ns`,
    );
  }

  /** Folds the points (in the order received) into the rollup: one read and one write per row. */
  write(points: LockPoint[]): void {
    if (points.length > 0) {
      const previous = new Map<string, StreamState>();
      for (const p of points) {
        const id = streamOf(p);
        if (id === null || previous.has(id)) continue;
        const known = this.streams === 'stored' ? this.storedStream(id) : this.streams.get(id);
        if (known) previous.set(id, known);
      }
      const changes = foldLockPoints(points, previous, this.sinceNs);
      for (const { service, lock, type, size, bucket, b } of changes.buckets) {
        const row = this.read.get(service, lock, type, size, bucket) as { data: string } | undefined;
        const merged = row ? (JSON.parse(row.data) as LockBucket) : b;
        if (row) mergeBucket(merged, b);
        this.upsert.run(service, lock, type, size, bucket, JSON.stringify(merged));
      }
      for (const b of changes.blame)
        this.upsertBlame.run(b.size, b.bucket, b.service, b.lock, b.waiter, b.holder, b.ns);
      for (const [id, s] of changes.streams) {
        if (this.streams === 'stored') this.writeStream.run(id, s.timeNs, encodeStream(s));
        else this.streams.set(id, s);
      }
    }
    // Single exports and silent streams age out here, whatever the retention.
    const now = nowNs();
    if (now - this.prunedAtNs >= NS_PER_MINUTE) {
      this.prune.run(now - EXACT_HORIZON_NS);
      this.pruneStreams?.run(now - STREAM_HORIZON_NS);
      this.prunedAtNs = now;
    }
  }

  private storedStream(id: string): StreamState | undefined {
    const row = this.readStream.get(id) as { data: string } | undefined;
    return row ? decodeStream(row.data) : undefined;
  }
}
