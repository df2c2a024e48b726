// Messages between the agent's main-thread side and the watchdog thread.
import type { Frame } from './stack';
import type { MapLoad } from './source-maps';

export interface WatchdogData {
  /** BigInt64Array[2]: [0] hrtime (ns) of the last heartbeat, [1] heartbeat count. */
  heartbeat: SharedArrayBuffer;
  thresholdMs: number;
  pollMs: number;
  maxPerMinute: number;
  /** Evaluated on the paused main thread; returns "traceId:spanId:flags" of the active span, or ''. */
  activeSpanExpression: string;
  /** Whether to watch the heartbeat; without, the thread only reads source maps. */
  watch: boolean;
}

export interface EpisodeMessage {
  type: 'episode';
  /** process.hrtime.bigint() values: the last heartbeat before the block and the first after it. */
  startHr: bigint;
  endHr: bigint;
  /** false when the rate limit skipped the capture. */
  reported: boolean;
  capturedHr?: bigint;
  frames?: Frame[];
  activeSpan?: string;
  error?: string;
  /**
   * Process CPU time over wall time from the detection to the end, when that lasted long enough
   * to tell: near 0 means nothing in the process ran (descheduled, or waiting in a syscall).
   */
  cpuRatio?: number;
}

/** The thread also reads and decodes source maps for the main thread, one file at a time. */
export interface LoadMapMessage {
  type: 'load-map';
  file: string;
}

/** A decoded table's arrays arrive transferred, not copied. */
export interface MapMessage {
  type: 'map';
  file: string;
  load: MapLoad;
}

export type ToWatchdog = LoadMapMessage;

export type FromWatchdog = EpisodeMessage | MapMessage | { type: 'ready' } | { type: 'unavailable'; reason: string };
