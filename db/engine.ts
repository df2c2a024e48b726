// What the writer thread needs of an engine (SQLite: sqlite-engine.ts, PostgreSQL: pg/engine.ts):
// one transaction per group of batches, alert state, retention, and what a failure means.
import type { AlertWrite, WriteBatch } from '../common/types';

export interface RetentionResult {
  spans: number;
  points: number;
  logs: number;
  services: number;
  rollups: number;
  alertHistory: number;
}

export const noneRetained = (): RetentionResult => ({
  spans: 0,
  points: 0,
  logs: 0,
  services: 0,
  rollups: 0,
  alertHistory: 0,
});

/** A failed write as the client reports it. */
export interface FailureKind {
  /** It goes away by itself (a lock, a full disk being cleared, a database coming back). */
  transient: boolean;
  /** The engine's code: SQLITE_FULL, PostgreSQL's SQLSTATE, ECONNREFUSED... */
  code: string;
  /** Short and stable, for health: 'disk full', 'database locked', 'database unreachable'... */
  reason: string;
}

export interface WriteEngine {
  /** Writes the batches in one transaction: all of them are committed, or none. */
  write(batches: WriteBatch[]): Promise<void>;
  /** Applies one evaluation's alert changes in one transaction. */
  writeAlerts(w: AlertWrite): Promise<void>;
  /** Deletes what is older than the cutoff, a little at a time, until done or `stopping()`. */
  retain(cutoffNs: bigint, batchSize: number, stopping: () => boolean): Promise<RetentionResult>;
  classify(err: unknown): FailureKind;
  /** After a transient failure with this code: whether a write would work now. */
  probe(code: string): Promise<boolean>;
  close(): Promise<void>;
}
