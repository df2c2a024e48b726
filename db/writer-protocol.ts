// Messages between the collector's main thread and the writer thread.
import type { RetentionResult } from './writer';
import type { AlertWrite, WriteBatch } from '../common/types';

export interface WriterOptions {
  path: string;
  /** Data older than this is deleted; 0 keeps everything. */
  retentionMs: number;
  retentionIntervalMs: number;
  retentionBatchSize: number;
}

export type ToWriter =
  | { type: 'write'; id: number; batch: WriteBatch }
  | { type: 'alerts'; id: number; write: AlertWrite }
  | { type: 'retain-now' }
  | { type: 'close' };

export type FromWriter =
  | { type: 'ready' }
  | { type: 'fatal'; error: string }
  | { type: 'committed'; ids: number[] }
  /** Not stored; `transient`: for a passing reason (busy, disk full), worth retrying. */
  | { type: 'failed'; ids: number[]; error: string; transient: boolean; code: string }
  /** After a failure that goes away by itself: the database can be written again. */
  | { type: 'writable' }
  | { type: 'retention'; deleted: RetentionResult; cutoffNs: bigint }
  | { type: 'closed' };
