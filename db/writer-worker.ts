// The writer thread: owns the only write connection, so SQLite work never blocks the HTTP
// event loop. Batches that arrive while a transaction runs are committed together in the next
// one; each request is acknowledged only after its transaction has committed.
import { parentPort, workerData } from 'node:worker_threads';
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { openWriteConnection } from './connection';
import { BatchWriter, type RetentionResult } from './writer';
import { AlertWriter } from './alerts';
import type { FromWriter, ToWriter, WriterOptions } from './writer-protocol';
import type { WriteBatch } from '../common/types';
import { NS_PER_MS, msToNs } from '../common/time';

const options = workerData as WriterOptions;
const port = parentPort!;
const send = (m: FromWriter) => port.postMessage(m);

/** Rows per transaction: large enough to amortise the commit, small enough to ack promptly. */
const MAX_ROWS_PER_COMMIT = 50_000;

let writer: BatchWriter;
let alerts: AlertWriter;
let db: ReturnType<typeof openWriteConnection>;
try {
  db = openWriteConnection(options.path);
  writer = new BatchWriter(db);
  alerts = new AlertWriter(db);
} catch (err) {
  send({ type: 'fatal', error: (err as Error).message });
  process.exit(1);
}

const pending: Array<{ id: number; batch: WriteBatch }> = [];
let flushScheduled = false;
let closing = false;
let retentionTimer: NodeJS.Timeout | undefined;
let retentionRunning = false;

function rows(b: WriteBatch): number {
  return b.spans.length + b.points.length + b.logs.length;
}

function codeOf(err: unknown): string {
  return String((err as { code?: unknown })?.code ?? '');
}

/** Errors that go away by themselves (a lock, a full disk being cleared); the client may retry. */
function isTransient(err: unknown): boolean {
  return /^SQLITE_(BUSY|LOCKED|FULL|IOERR|NOMEM|CANTOPEN|PROTOCOL)/.test(codeOf(err));
}

/** How often, while writes fail for a passing reason, the writer checks whether they would work. */
const PROBE_INTERVAL_MS = 1000;
/** Free space a full disk must have again before the writer says it can write. */
const PROBE_FREE_BYTES = 1024 * 1024;
let failing: string | undefined;
let probeTimer: NodeJS.Timeout | undefined;

/** Reports a group's outcome, and watches for recovery when it failed for a passing reason. */
function report(ids: number[], err?: unknown): void {
  if (err === undefined) {
    send({ type: 'committed', ids });
    recovered();
    return;
  }
  const transient = isTransient(err);
  send({ type: 'failed', ids, error: (err as Error).message, transient, code: codeOf(err) });
  if (transient) {
    failing = codeOf(err);
    if (!probeTimer) {
      probeTimer = setInterval(probe, PROBE_INTERVAL_MS);
      probeTimer.unref();
    }
  }
}

function recovered(): void {
  if (probeTimer) clearInterval(probeTimer);
  probeTimer = undefined;
  failing = undefined;
}

/**
 * With no data to write, the health would otherwise stay failed until the next request: take the
 * write lock (a locked database refuses it) and, for a full disk, look for free space again.
 */
function probe(): void {
  if (pending.length > 0 || closing) return;
  try {
    if (failing?.startsWith('SQLITE_FULL')) {
      const fs = statfsSync(dirname(resolve(options.path)));
      if (fs.bavail * fs.bsize < PROBE_FREE_BYTES) return;
    }
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
  } catch {
    if (db.inTransaction) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // The next batch's transaction finds out.
      }
    }
    return;
  }
  recovered();
  send({ type: 'writable' });
}

function flush(): void {
  flushScheduled = false;
  while (pending.length > 0) {
    const group: typeof pending = [];
    let n = 0;
    while (pending.length > 0 && (group.length === 0 || n + rows(pending[0].batch) <= MAX_ROWS_PER_COMMIT)) {
      const item = pending.shift()!;
      n += rows(item.batch);
      group.push(item);
    }
    try {
      writer.write(group.map((g) => g.batch));
      report(group.map((g) => g.id));
    } catch (err) {
      if (group.length === 1 || isTransient(err)) {
        report(
          group.map((g) => g.id),
          err,
        );
      } else {
        // One bad batch must not fail the others it was grouped with: commit them one by one.
        for (const g of group) {
          try {
            writer.write([g.batch]);
            report([g.id]);
          } catch (e) {
            report([g.id], e);
          }
        }
      }
    }
    // Give new messages (and retention) a turn between transactions.
    if (pending.length > 0) {
      schedule();
      return;
    }
  }
  if (closing) finish();
}

function schedule(): void {
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

/** Deletes expired rows a small batch at a time, yielding to ingest between batches. */
function runRetention(): void {
  if (retentionRunning || options.retentionMs <= 0) return;
  retentionRunning = true;
  const cutoffNs = msToNs(Date.now() - options.retentionMs);
  const total: RetentionResult = { spans: 0, points: 0, logs: 0, services: 0, rollups: 0, alertHistory: 0 };
  const step = () => {
    if (closing) {
      retentionRunning = false;
      return;
    }
    try {
      const d = writer.deleteOlderThan(cutoffNs, options.retentionBatchSize);
      total.spans += d.spans;
      total.points += d.points;
      total.logs += d.logs;
      total.services += d.services;
      const more = Math.max(d.spans, d.points, d.logs) >= options.retentionBatchSize;
      if (more) {
        setImmediate(step);
        return;
      }
      // The rollups are small, but reaching their old rows scans them: once per run.
      total.rollups += writer.deleteRollupsOlderThan(cutoffNs);
      total.alertHistory += alerts.deleteHistoryOlderThan(Number(cutoffNs / NS_PER_MS));
      send({ type: 'retention', deleted: total, cutoffNs });
    } catch (err) {
      // A busy or failing delete is retried at the next interval; ingest matters more.
      send({ type: 'retention', deleted: total, cutoffNs });
      process.emitWarning(`stallscope retention: ${(err as Error).message}`);
    }
    retentionRunning = false;
  };
  step();
}

function finish(): void {
  if (retentionTimer) clearInterval(retentionTimer);
  if (probeTimer) clearInterval(probeTimer);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // A reader holding the WAL only delays the checkpoint to the next open.
  }
  db.close();
  send({ type: 'closed' });
  port.close();
}

port.on('message', (m: ToWriter) => {
  if (m.type === 'write') {
    pending.push({ id: m.id, batch: m.batch });
    schedule();
  } else if (m.type === 'alerts') {
    try {
      alerts.write(m.write);
      report([m.id]);
    } catch (err) {
      report([m.id], err);
    }
  } else if (m.type === 'retain-now') {
    runRetention();
  } else if (m.type === 'close') {
    closing = true;
    if (!flushScheduled && pending.length === 0) finish();
  }
});

if (options.retentionMs > 0) {
  retentionTimer = setInterval(runRetention, options.retentionIntervalMs);
  retentionTimer.unref();
}
send({ type: 'ready' });
