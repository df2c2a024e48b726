// The storage boundary: the receiver, the APIs, findings and alerts see only this module: writes
// go through `write`, every read through the read model. Another engine fits behind the same
// Store by providing a writer and an SqlReader.
import type Database from 'better-sqlite3';
import { openReadConnection } from './connection';
import { ReadModel } from './read-model';
import { SqliteReader } from './sql';
import { WriterClient, type WriterHealth } from './writer-client';
import type { AlertWrite, WriteBatch } from '../common/types';

export { QueueFull, WriteFailed, WriteRejected, type RetentionEvent, type WriterHealth } from './writer-client';
export type { ReadModel } from './read-model';

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
  /** Every read: traces, metrics, the agent's spans and rollups, locks, alert state. */
  readonly read: ReadModel;
  /** Alert state and history (the writer thread commits the changes). */
  writeAlerts(write: AlertWrite): Promise<void>;
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
  return {
    write: (batch) => writer.write(batch),
    read: new ReadModel(new SqliteReader(reader)),
    writeAlerts: (w) => writer.writeAlerts(w),
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
