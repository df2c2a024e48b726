// Messages between the agent's main-thread side and the watchdog thread.
import type { ProfilerCommand, ProfilerOutcome, ProfilerReason, ProfilerState } from '../common/conventions';
import type { OtlpTarget } from './config';
import type { Frame } from './stack';
import type { MapLoad } from './source-maps';

/** Slots of the shared heartbeat (a BigInt64Array). */
export const BEAT = {
  /** process.hrtime.bigint() of the last heartbeat (0 until the app has started). */
  time: 0,
  /** Heartbeats so far. */
  count: 1,
  /** The loop's active time (event-loop utilization), in microseconds, at the last heartbeat; profiling only. */
  active: 2,
  /** 1 while the profiler's inspector session is connected to the main thread. */
  profilerConnected: 3,
} as const;
export const BEAT_SLOTS = 4;

export interface ProfilerSettings {
  hz: number;
  windowMs: number;
  target: OtlpTarget;
}

export interface WatchdogData {
  heartbeat: SharedArrayBuffer;
  /** false: blocking episodes are not watched (the thread only reads source maps, or profiles). */
  watch: boolean;
  thresholdMs: number;
  pollMs: number;
  maxPerMinute: number;
  /** Evaluated on the paused main thread; returns "traceId:spanId:flags" of the active span, or ''. */
  activeSpanExpression: string;
  profile?: ProfilerSettings;
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

/** The profiler asks the main thread to start and/or end profiles (by title), in that order. */
export interface ProfilerCommandMessage {
  type: 'profiler-command';
  id: number;
  command: ProfilerCommand;
  start?: string;
  end?: string;
}

/** The main thread's answer: how long the command held it. */
export interface ProfilerDone {
  type: 'profiler-done';
  id: number;
  ms: number;
  error?: string;
}

/** What the profiler says: its commands, its state, its back-offs, its profiles, its failures. */
export type ProfilerMessage =
  | ProfilerCommandMessage
  | { type: 'profiler-state'; state: ProfilerState; hz: number; reason?: ProfilerReason }
  | { type: 'profiler-backoff'; reason: ProfilerReason }
  | { type: 'profile'; outcome: ProfilerOutcome; error?: string }
  /** A window's share of samples taken while the loop was not waiting in its poll, and its length. */
  | { type: 'profile-utilization'; busy: number; seconds: number }
  | { type: 'profiler-error'; error: string };

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

export type FromWatchdog =
  EpisodeMessage | MapMessage | ProfilerMessage | { type: 'ready' } | { type: 'unavailable'; reason: string };

export type ToWatchdog =
  | LoadMapMessage
  | ProfilerDone
  /** The resource the profiles describe, once the SDK has it. */
  | { type: 'resource'; attributes: Record<string, string> }
  /** The main thread is exiting (or the agent stopping): let go of the main thread now. */
  | { type: 'release' };
