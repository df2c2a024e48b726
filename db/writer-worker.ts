// The writer thread: owns the engine's write connection, so that storing never blocks the HTTP
// event loop. Batches that arrive while a transaction runs are committed together in the next
// one; each request is acknowledged only after its transaction has committed.
import { parentPort, workerData } from 'node:worker_threads';
import type { FromWriter, ToWriter, WriterOptions } from './writer-protocol';
import type { AlertWrite, WriteBatch } from '../common/types';
import { msToNs } from '../common/time';
import type { WriteEngine } from './engine';
import { SqliteEngine } from './sqlite-engine';
import { openPgEngine } from './pg/engine';

const options = workerData as WriterOptions;
const port = parentPort!;
const send = (m: FromWriter) => port.postMessage(m);

/** Rows per transaction: large enough to amortise the commit, small enough to ack promptly. */
const MAX_ROWS_PER_COMMIT = 50_000;
/** How often, while writes fail for a passing reason, the writer checks whether they would work. */
const PROBE_INTERVAL_MS = 1000;

type Job = { id: number; type: 'write'; batch: WriteBatch } | { id: number; type: 'alerts'; write: AlertWrite };

const queue: Job[] = [];
let engine: WriteEngine;
let draining = false;
let closing = false;
let finished = false;
let retentionTimer: NodeJS.Timeout | undefined;
let retention: Promise<void> | undefined;
let failing: string | undefined;
let probeTimer: NodeJS.Timeout | undefined;
let probing = false;

function rows(b: WriteBatch): number {
  return b.spans.length + b.points.length + b.logs.length;
}

/** Reports a group's outcome, and watches for recovery when it failed for a passing reason. */
function report(ids: number[], err?: unknown): void {
  if (err === undefined) {
    send({ type: 'committed', ids });
    recovered();
    return;
  }
  const kind = engine.classify(err);
  send({ type: 'failed', ids, error: (err as Error).message, ...kind });
  if (kind.transient) {
    failing = kind.code;
    if (!probeTimer) {
      probeTimer = setInterval(() => void probe(), PROBE_INTERVAL_MS);
      probeTimer.unref();
    }
  }
}

function recovered(): void {
  if (probeTimer) clearInterval(probeTimer);
  probeTimer = undefined;
  failing = undefined;
}

/** With no data to write, the health would otherwise stay failed until the next request. */
async function probe(): Promise<void> {
  if (queue.length > 0 || draining || closing || probing || failing === undefined) return;
  probing = true;
  try {
    if (!(await engine.probe(failing))) return;
  } finally {
    probing = false;
  }
  recovered();
  send({ type: 'writable' });
}

async function writeGroup(group: Array<{ id: number; batch: WriteBatch }>): Promise<void> {
  try {
    await engine.write(group.map((g) => g.batch));
    report(group.map((g) => g.id));
  } catch (err) {
    if (group.length === 1 || engine.classify(err).transient) {
      report(
        group.map((g) => g.id),
        err,
      );
      return;
    }
    // One bad batch must not fail the others it was grouped with: commit them one by one.
    for (const g of group) {
      try {
        await engine.write([g.batch]);
        report([g.id]);
      } catch (e) {
        report([g.id], e);
      }
    }
  }
}

/** Commits what is queued, a group per transaction, in arrival order. */
async function drain(): Promise<void> {
  if (draining) return;
  draining = true;
  try {
    while (queue.length > 0) {
      const first = queue[0];
      if (first.type === 'alerts') {
        queue.shift();
        try {
          await engine.writeAlerts(first.write);
          report([first.id]);
        } catch (err) {
          report([first.id], err);
        }
        continue;
      }
      const group: Array<{ id: number; batch: WriteBatch }> = [];
      let n = 0;
      for (let head = queue[0]; head?.type === 'write'; head = queue[0]) {
        if (group.length > 0 && n + rows(head.batch) > MAX_ROWS_PER_COMMIT) break;
        queue.shift();
        n += rows(head.batch);
        group.push(head);
      }
      await writeGroup(group);
      // Give new messages (and retention) a turn between transactions.
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    draining = false;
  }
  if (closing) void finish();
}

/** Deletes expired rows a little at a time, yielding to ingest in between. */
function runRetention(): void {
  if (retention || options.retentionMs <= 0 || closing) return;
  const cutoffNs = msToNs(Date.now() - options.retentionMs);
  retention = engine
    .retain(cutoffNs, options.retentionBatchSize, () => closing)
    .then(
      (deleted) => send({ type: 'retention', deleted, cutoffNs }),
      // A busy or failing delete is retried at the next interval; ingest matters more.
      (err: Error) => process.emitWarning(`stallscope retention: ${err.message}`),
    )
    .finally(() => (retention = undefined));
}

async function finish(): Promise<void> {
  if (finished) return;
  finished = true;
  if (retentionTimer) clearInterval(retentionTimer);
  if (probeTimer) clearInterval(probeTimer);
  await retention;
  await engine.close().catch(() => undefined);
  send({ type: 'closed' });
  port.close();
}

async function main(): Promise<void> {
  try {
    engine =
      options.location.engine === 'sqlite'
        ? new SqliteEngine(options.location.path)
        : await openPgEngine(options.location, options.retentionMs);
  } catch (err) {
    send({ type: 'fatal', error: (err as Error).message });
    process.exit(1);
  }
  port.on('message', (m: ToWriter) => {
    if (m.type === 'write' || m.type === 'alerts') {
      queue.push(m);
      void drain();
    } else if (m.type === 'retain-now') {
      runRetention();
    } else if (m.type === 'close') {
      closing = true;
      if (!draining && queue.length === 0) void finish();
    }
  });
  if (options.retentionMs > 0) {
    retentionTimer = setInterval(runRetention, options.retentionIntervalMs);
    retentionTimer.unref();
  }
  send({ type: 'ready' });
}

void main();
