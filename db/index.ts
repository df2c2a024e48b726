// The storage boundary: the receiver and the API see only this module. Another engine can be
// added later by providing the same Store.
import type Database from 'better-sqlite3';
import { openReadConnection } from './connection';
import { Queries } from './queries';
import { DashboardQueries } from './dashboard';
import { WriterClient, type WriterHealth } from './writer-client';
import { AlertReads } from './alerts';
import type { AlertWrite, WriteBatch } from '../common/types';

export { QueueFull, WriteFailed, WriteRejected, type RetentionEvent, type WriterHealth } from './writer-client';
export type { Queries } from './queries';
export type { AgentSpanRow, DashboardQueries, Window } from './dashboard';
export { poolLabel } from './dashboard';

export interface StoreOptions {
  path: string;
  /** Delete data older than this many milliseconds; 0 keeps everything. */
  retentionMs: number;
  retentionIntervalMs?: number;
  retentionBatchSize?: number;
  /** Rows accepted but not yet committed before writes are refused with QueueFull. */
  maxQueuedRows?: number;
}

export interface Store {
  /** Resolves once the batch is committed to disk. */
  write(batch: WriteBatch): Promise<void>;
  readonly queries: Queries;
  /** The dashboard's aggregations (rollups, agent spans, agent metrics). */
  readonly dashboard: DashboardQueries;
  /** Alert state and history (the writer thread commits the changes). */
  writeAlerts(write: AlertWrite): Promise<void>;
  readonly alerts: AlertReads;
  /** Rows waiting to be committed. */
  readonly backlog: number;
  /** Whether data can be written now, and if not, why. */
  health(): WriterHealth;
  runRetention(): void;
  onRetention: WriterClient['onRetention'];
  close(): Promise<void>;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  const writer = await WriterClient.start(
    {
      path: options.path,
      retentionMs: options.retentionMs,
      retentionIntervalMs: options.retentionIntervalMs ?? 60_000,
      retentionBatchSize: options.retentionBatchSize ?? 2_000,
    },
    options.maxQueuedRows ?? 200_000,
  );
  let reader: Database.Database;
  try {
    reader = openReadConnection(options.path);
  } catch (err) {
    await writer.close();
    throw err;
  }
  const queries = new Queries(reader);
  return {
    write: (batch) => writer.write(batch),
    queries,
    dashboard: new DashboardQueries(reader, queries),
    writeAlerts: (w) => writer.writeAlerts(w),
    alerts: new AlertReads(reader),
    get backlog() {
      return writer.backlog;
    },
    health: () => writer.health(),
    runRetention: () => writer.retainNow(),
    onRetention: (l) => writer.onRetention(l),
    async close() {
      // The reader goes first so that the writer, closing last, can fold the WAL into the file.
      reader.close();
      await writer.close();
    },
  };
}
