// Main-thread side of the writer thread: hands batches over and resolves once they are committed.
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { AlertWrite, WriteBatch } from '../common/types';
import type { FromWriter, ToWriter, WriterOptions } from './writer-protocol';
import type { RetentionResult } from './writer';

/** The write queue is full: the caller should answer 503 with Retry-After. */
export class QueueFull extends Error {}

/** The write failed (disk full, database locked for too long); retrying later may succeed. */
export class WriteFailed extends Error {}

/** The data could not be stored and retrying the same request will not help. */
export class WriteRejected extends Error {}

/** Whether the writer can store data now, and if not, why. */
export interface WriterHealth {
  state: 'ok' | 'degraded';
  /** Short and stable: 'disk full', 'database locked', 'backlog over the limit'... */
  reason?: string;
  /** The error as SQLite or the queue put it. */
  error?: string;
  /** When writes started failing (ISO 8601). */
  since?: string;
  backlogRows: number;
  maxBacklogRows: number;
}

/** A refusal for a full queue keeps the health degraded this long (exporters retry sooner). */
const QUEUE_FULL_WINDOW_MS = 5000;

function reasonFor(code: string): string {
  if (code.startsWith('SQLITE_FULL')) return 'disk full';
  if (/^SQLITE_(BUSY|LOCKED|PROTOCOL)/.test(code)) return 'database locked';
  if (code.startsWith('SQLITE_IOERR')) return 'disk I/O error';
  if (code.startsWith('SQLITE_NOMEM')) return 'out of memory';
  if (code.startsWith('SQLITE_CANTOPEN')) return 'cannot open the database file';
  return 'write failed';
}

export interface RetentionEvent {
  deleted: RetentionResult;
  cutoffNs: bigint;
}

export class WriterClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { rows: number; resolve: () => void; reject: (e: Error) => void }>();
  private queuedRows = 0;
  private dead: Error | undefined;
  private closed: Promise<void> | undefined;
  private readonly retentionListeners = new Set<(e: RetentionEvent) => void>();
  private failing: { reason: string; error: string; since: number } | undefined;
  private lastQueueFull: { at: number; message: string } | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly maxQueuedRows: number,
  ) {
    worker.on('message', (m: FromWriter) => this.onMessage(m));
    worker.on('error', (err) => this.fail(new WriteFailed(`writer thread crashed: ${err.message}`)));
    worker.on('exit', (code) => this.fail(new WriteFailed(`writer thread exited (code ${code})`)));
  }

  static start(options: WriterOptions, maxQueuedRows: number): Promise<WriterClient> {
    const worker = new Worker(join(__dirname, 'writer-worker.js'), { workerData: options });
    return new Promise((resolve, reject) => {
      const onFirst = (m: FromWriter) => {
        worker.off('error', onError);
        if (m.type === 'ready') resolve(new WriterClient(worker, maxQueuedRows));
        else if (m.type === 'fatal') reject(new Error(m.error));
      };
      const onError = (err: Error) => reject(err);
      worker.once('message', onFirst);
      worker.once('error', onError);
    });
  }

  /** Rows handed to the writer and not yet committed. */
  get backlog(): number {
    return this.queuedRows;
  }

  /** Resolves when the batch is committed; rejects with QueueFull or WriteFailed. */
  write(batch: WriteBatch): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    const rows =
      batch.spans.length +
      batch.points.length +
      batch.logs.length +
      (batch.profiles ?? []).reduce((n, p) => n + p.samples.length, 0) +
      (batch.requests?.length ?? 0);
    if (rows === 0) return Promise.resolve();
    // One oversized request is still admitted into an empty queue, so it can never starve.
    if (this.queuedRows > 0 && this.queuedRows + rows > this.maxQueuedRows) {
      const message = `the write queue is full (${this.queuedRows} rows waiting to be committed)`;
      this.lastQueueFull = { at: Date.now(), message };
      return Promise.reject(new QueueFull(message));
    }
    const id = this.nextId++;
    this.queuedRows += rows;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { rows, resolve, reject });
      this.post({ type: 'write', id, batch });
    });
  }

  /** Degraded while writes fail for a passing reason, or were refused for a full queue just now. */
  health(): WriterHealth {
    const base = { backlogRows: this.queuedRows, maxBacklogRows: this.maxQueuedRows };
    if (this.dead) return { ...base, state: 'degraded', reason: 'writer stopped', error: this.dead.message };
    if (this.failing) {
      const { reason, error, since } = this.failing;
      return { ...base, state: 'degraded', reason, error, since: new Date(since).toISOString() };
    }
    const full = this.lastQueueFull;
    if (full && Date.now() - full.at < QUEUE_FULL_WINDOW_MS) {
      return {
        ...base,
        state: 'degraded',
        reason: 'backlog over the limit',
        error: full.message,
        since: new Date(full.at).toISOString(),
      };
    }
    return { ...base, state: 'ok' };
  }

  /** Resolves when the alert changes are committed. */
  writeAlerts(write: AlertWrite): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { rows: 0, resolve, reject });
      this.post({ type: 'alerts', id, write });
    });
  }

  /** Runs a retention pass now instead of waiting for the interval. */
  retainNow(): void {
    this.post({ type: 'retain-now' });
  }

  onRetention(listener: (e: RetentionEvent) => void): () => void {
    this.retentionListeners.add(listener);
    return () => this.retentionListeners.delete(listener);
  }

  /** Commits everything queued, checkpoints and closes the database. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = this.dead
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.worker.once('exit', () => resolve());
            this.post({ type: 'close' });
          });
    }
    return this.closed;
  }

  private post(m: ToWriter): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWriter): void {
    if (m.type === 'committed') {
      this.failing = undefined;
      for (const w of this.settle(m.ids)) w.resolve();
    } else if (m.type === 'failed') {
      if (m.transient)
        this.failing = { reason: reasonFor(m.code), error: m.error, since: this.failing?.since ?? Date.now() };
      for (const w of this.settle(m.ids))
        w.reject(
          m.transient
            ? new WriteFailed(`could not store the data for now: ${m.error}`)
            : new WriteRejected(`could not store the data: ${m.error}`),
        );
    } else if (m.type === 'writable') {
      this.failing = undefined;
    } else if (m.type === 'retention') {
      for (const l of this.retentionListeners) l({ deleted: m.deleted, cutoffNs: m.cutoffNs });
    }
  }

  /** The writes with these ids, no longer waiting. */
  private settle(ids: number[]): Array<{ resolve: () => void; reject: (e: Error) => void }> {
    const out = [];
    for (const id of ids) {
      const w = this.waiting.get(id);
      if (!w) continue;
      this.waiting.delete(id);
      this.queuedRows -= w.rows;
      out.push(w);
    }
    return out;
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    this.queuedRows = 0;
  }
}
