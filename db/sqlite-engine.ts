// SQLite behind the writer thread: better-sqlite3 is synchronous, so each call runs to its end
// on the thread that owns the only write connection.
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import type { AlertWrite, WriteBatch } from '../common/types';
import { NS_PER_MS } from '../common/time';
import { openWriteConnection } from './connection';
import { BatchWriter } from './writer';
import { AlertWriter } from './alerts';
import { noneRetained, type FailureKind, type RetentionResult, type WriteEngine } from './engine';

/** Free space a full disk must have again before the writer says it can write. */
const PROBE_FREE_BYTES = 1024 * 1024;

function reasonFor(code: string): string {
  if (code.startsWith('SQLITE_FULL')) return 'disk full';
  if (/^SQLITE_(BUSY|LOCKED|PROTOCOL)/.test(code)) return 'database locked';
  if (code.startsWith('SQLITE_IOERR')) return 'disk I/O error';
  if (code.startsWith('SQLITE_NOMEM')) return 'out of memory';
  if (code.startsWith('SQLITE_CANTOPEN')) return 'cannot open the database file';
  return 'write failed';
}

export class SqliteEngine implements WriteEngine {
  private readonly db: Database.Database;
  private readonly writer: BatchWriter;
  private readonly alerts: AlertWriter;

  constructor(private readonly path: string) {
    this.db = openWriteConnection(path);
    this.writer = new BatchWriter(this.db);
    this.alerts = new AlertWriter(this.db);
  }

  async write(batches: WriteBatch[]): Promise<void> {
    this.writer.write(batches);
  }

  async writeAlerts(w: AlertWrite): Promise<void> {
    this.alerts.write(w);
  }

  /** rowid-batched deletes, yielding to ingest between batches. */
  async retain(cutoffNs: bigint, batchSize: number, stopping: () => boolean): Promise<RetentionResult> {
    const total = noneRetained();
    for (;;) {
      if (stopping()) return total;
      const d = this.writer.deleteOlderThan(cutoffNs, batchSize);
      total.spans += d.spans;
      total.points += d.points;
      total.logs += d.logs;
      total.services += d.services;
      if (Math.max(d.spans, d.points, d.logs) < batchSize) break;
      await new Promise((r) => setImmediate(r));
    }
    // The rollups are small, but reaching their old rows scans them: once per run.
    total.rollups += this.writer.deleteRollupsOlderThan(cutoffNs);
    total.alertHistory += this.alerts.deleteHistoryOlderThan(Number(cutoffNs / NS_PER_MS));
    return total;
  }

  classify(err: unknown): FailureKind {
    const code = String((err as { code?: unknown })?.code ?? '');
    const transient = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|NOMEM|CANTOPEN|PROTOCOL)/.test(code);
    return { transient, code, reason: reasonFor(code) };
  }

  /**
   * Takes the write lock (a locked database refuses it) and, for a full disk, looks for free
   * space first.
   */
  async probe(code: string): Promise<boolean> {
    try {
      if (code.startsWith('SQLITE_FULL')) {
        const fs = statfsSync(dirname(resolve(this.path)));
        if (fs.bavail * fs.bsize < PROBE_FREE_BYTES) return false;
      }
      this.db.exec('BEGIN IMMEDIATE');
      this.db.exec('ROLLBACK');
      return true;
    } catch {
      if (this.db.inTransaction) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // The next batch's transaction finds out.
        }
      }
      return false;
    }
  }

  async close(): Promise<void> {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // A reader holding the WAL only delays the checkpoint to the next open.
    }
    this.db.close();
  }
}
