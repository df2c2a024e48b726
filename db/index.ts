// The storage boundary: the receiver, the APIs, findings and alerts see only this module: writes
// go through `write`, every read through the read model, and which engine holds the data (a
// SQLite file, or a PostgreSQL database shared by several collectors) is decided here alone.
import { openReadConnection } from './connection';
import { ReadModel } from './read-model';
import { SqliteReader } from './sql';
import { WriterClient } from './writer-client';
import type { WriterHealth } from '../common/types';
import { describeLocation, parseLocation, type DatabaseLocation } from './location';
import { PgReader } from './pg/reader';
import { Lease } from './pg/lease';
import { DEFAULT_LEASE_INTERVAL_MS, DEFAULT_READ_POOL_SIZE, type PgOptions } from './pg/options';
import type { AlertWrite, WriteBatch } from '../common/types';

export { QueueFull, WriteFailed, WriteRejected, type RetentionEvent } from './writer-client';
export type { ReadModel } from './read-model';
export type { PgOptions } from './pg/options';
export { describeLocation, parseLocation, redact, type DatabaseLocation } from './location';

export interface StoreOptions {
  /** A SQLite file, or a PostgreSQL URL (postgres://user@host:port/database). */
  path: string;
  /** Delete data older than this many milliseconds; 0 keeps everything. */
  retentionMs: number;
  retentionIntervalMs?: number;
  retentionBatchSize?: number;
  /** Rows accepted but not yet committed before writes are refused with QueueFull. */
  maxQueuedRows?: number;
  pg?: PgOptions;
}

export interface Store {
  /** 'sqlite' or 'postgres'. */
  readonly engine: DatabaseLocation['engine'];
  /** Where the data is, fit to print (a URL without its password). */
  readonly description: string;
  /** Resolves once the batch is committed to disk. */
  write(batch: WriteBatch): Promise<void>;
  /** Every read: traces, metrics, the agent's spans and rollups, locks, alert state. */
  readonly read: ReadModel;
  /** Alert state and history (the writer thread commits the changes). */
  writeAlerts(write: AlertWrite): Promise<void>;
  /**
   * Whether this collector is the one that runs what must run once per database (alert
   * evaluation and notification, the routes job), confirmed just now. Always, on SQLite.
   */
  leader(): Promise<boolean>;
  /** Rows waiting to be committed. */
  readonly backlog: number;
  /** Whether data can be written now, and if not, why. */
  health(): WriterHealth;
  runRetention(): void;
  onRetention: WriterClient['onRetention'];
  close(): Promise<void>;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  const location = parseLocation(options.path);
  const writer = await WriterClient.start(
    {
      location,
      retentionMs: options.retentionMs,
      retentionIntervalMs: options.retentionIntervalMs ?? 60_000,
      retentionBatchSize: options.retentionBatchSize ?? 2_000,
    },
    options.maxQueuedRows ?? 200_000,
  );
  const common = {
    engine: location.engine,
    description: describeLocation(location),
    write: (batch: WriteBatch) => writer.write(batch),
    writeAlerts: (w: AlertWrite) => writer.writeAlerts(w),
    get backlog() {
      return writer.backlog;
    },
    runRetention: () => writer.retainNow(),
    onRetention: writer.onRetention.bind(writer),
  };
  if (location.engine === 'sqlite') {
    let reader;
    try {
      reader = openReadConnection(location.path);
    } catch (err) {
      await writer.close();
      throw err;
    }
    return {
      ...common,
      read: new ReadModel(new SqliteReader(reader)),
      leader: async () => true,
      health: () => writer.health(),
      async close() {
        // The reader goes first so that the writer, closing last, can fold the WAL into the file.
        reader.close();
        await writer.close();
      },
    };
  }
  const pg = options.pg ?? {};
  const reader = new PgReader(location, pg.readPoolSize ?? DEFAULT_READ_POOL_SIZE);
  const lease = new Lease(location, pg.leaseIntervalMs ?? DEFAULT_LEASE_INTERVAL_MS);
  await lease.start();
  return {
    ...common,
    read: new ReadModel(reader),
    leader: () => lease.confirm(),
    health() {
      const h = writer.health();
      const down = lease.unreachable;
      // With nothing to write, the lease's connection is what notices the database is gone.
      if (h.state === 'ok' && down)
        return {
          ...h,
          state: 'degraded',
          reason: 'database unreachable',
          error: down.error,
          since: new Date(down.since).toISOString(),
        };
      return h;
    },
    async close() {
      await lease.close();
      await reader.close();
      await writer.close();
    },
  };
}
