// Blocking synchronous calls: fs.*Sync, child_process.*Sync, zlib.*Sync, the crypto key
// derivations and generators, and JSON.parse/stringify of large payloads. Each is wrapped so
// that a call made while the loop serves work is timed; a slow one becomes a span (child of
// the active span) with its call site. Wrappers keep the original's behaviour exactly: same
// `this`, arguments, return value, exception, `length` and `name`.
import fs from 'node:fs';
import childProcess from 'node:child_process';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { context, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { KINDS, METRICS, SYNC_API, SYNC_BYTES } from '../common/conventions';
import { captureStack } from './stack';
import { recordSpan } from './spans';
import { report } from './safety';
import { whenStarted } from './startup';
import { Patches, type AnyFn } from './patch';
import { SYNC_BUCKETS_S } from '../common/buckets';

const STACK_FRAMES = 30;

export interface SyncCallOptions {
  thresholdMs: number;
  jsonSizeThreshold: number;
}

const CRYPTO_SYNC = [
  'pbkdf2Sync',
  'scryptSync',
  'randomFillSync',
  'generateKeyPairSync',
  'generateKeySync',
  'generatePrimeSync',
  'hkdfSync',
];
const CHILD_PROCESS_SYNC = ['execSync', 'execFileSync', 'spawnSync'];

export class SyncCallWatcher {
  private readonly patches = new Patches('sync-call watcher');
  /** Off until the app has started: loading it does its sync I/O legitimately. */
  private serving = false;
  /**
   * Watched calls in progress. Only the outermost is timed: readFileSync calls openSync,
   * readSync and closeSync through the same module object, and that time is one call's.
   */
  private depth = 0;
  private histogram!: Histogram;

  constructor(
    private readonly options: SyncCallOptions,
    private readonly tracer: Tracer,
    private readonly meter: Meter,
  ) {}

  start(): void {
    this.histogram = this.meter.createHistogram(METRICS.syncDuration, {
      description: 'Duration of blocking synchronous calls made while serving',
      unit: 's',
      advice: { explicitBucketBoundaries: SYNC_BUCKETS_S },
    });
    for (const key of Object.keys(fs)) if (key.endsWith('Sync')) this.wrapTimed(fs, key, `fs.${key}`);
    for (const key of Object.keys(zlib)) if (key.endsWith('Sync')) this.wrapTimed(zlib, key, `zlib.${key}`);
    for (const key of CHILD_PROCESS_SYNC) this.wrapTimed(childProcess, key, `child_process.${key}`);
    for (const key of CRYPTO_SYNC) this.wrapTimed(crypto, key, `crypto.${key}`);
    // A sync wait on the main thread (the wrong kind of lock between callbacks).
    this.wrapTimed(Atomics, 'wait', 'Atomics.wait');
    this.wrapJson();
    // ESM named imports of builtins (import { readFileSync } from 'node:fs') see the wrappers too.
    syncBuiltinESMExports();
    whenStarted(() => {
      this.serving = this.patches.size > 0;
    });
  }

  stop(): void {
    this.patches.restore();
    syncBuiltinESMExports();
  }

  private wrapTimed(target: object, key: string, name: string): void {
    const self = this;
    const api = watched(name);
    // Properties hung on the function (fs.realpathSync.native) stay reachable.
    this.patches.wrap(
      target,
      key,
      (original: AnyFn) =>
        function (this: unknown, ...args: unknown[]): unknown {
          if (!self.serving || self.depth > 0) return Reflect.apply(original, this, args);
          self.depth++;
          const start = performance.now();
          try {
            return Reflect.apply(original, this, args);
          } finally {
            self.depth--;
            self.record(api, start, undefined);
          }
        },
      { copyProperties: true },
    );
  }

  private wrapJson(): void {
    const self = this;
    const size = this.options.jsonSizeThreshold;
    const parseApi = watched('JSON.parse');
    const stringifyApi = watched('JSON.stringify');
    // JSON.parse and JSON.stringify ignore `this` and read exactly their declared parameters,
    // so fixed parameters call them identically, without the cost of rest arguments.
    this.patches.wrap(
      JSON,
      'parse',
      (parse: typeof JSON.parse) =>
        function (text: unknown, reviver?: unknown): unknown {
          if (!self.serving || self.depth > 0 || typeof text !== 'string' || text.length < size) {
            return parse(text as string, reviver as Parameters<typeof JSON.parse>[1]);
          }
          self.depth++;
          const start = performance.now();
          try {
            return parse(text, reviver as Parameters<typeof JSON.parse>[1]);
          } finally {
            self.depth--;
            self.record(parseApi, start, text.length);
          }
        },
    );
    this.patches.wrap(
      JSON,
      'stringify',
      (stringify: typeof JSON.stringify) =>
        function (value: unknown, replacer?: unknown, space?: unknown): unknown {
          if (!self.serving || self.depth > 0)
            return stringify(value, replacer as (number | string)[], space as string);
          self.depth++;
          const start = performance.now();
          let out: string | undefined;
          try {
            out = stringify(value, replacer as (number | string)[], space as string) as string | undefined;
          } finally {
            self.depth--;
          }
          // The size is known only afterwards; small results cost one clock read and a length check.
          if (typeof out === 'string' && out.length >= size) self.record(stringifyApi, start, out.length);
          return out;
        },
    );
  }

  private record(api: WatchedApi, start: number, bytes: number | undefined): void {
    const end = performance.now();
    // The SDK's own work (an exporter serializing a batch) runs with tracing suppressed.
    if (isTracingSuppressed(context.active())) return;
    this.depth++;
    try {
      const ms = end - start;
      this.histogram.record(ms / 1000, api.attributes);
      if (ms < this.options.thresholdMs) return;
      // The stack is taken only for slow calls: it names the call site in the user's code.
      const attributes: Record<string, string | number> = { ...api.attributes };
      if (bytes !== undefined) attributes[SYNC_BYTES] = bytes;
      recordSpan(this.tracer, {
        name: api.name,
        kind: KINDS.syncCall,
        from: start,
        to: end,
        stack: captureStack(this.record, STACK_FRAMES),
        attributes,
      });
    } catch (err) {
      report('sync-call recording', err);
    } finally {
      this.depth--;
    }
  }
}

/** A watched API with its metric attributes built once: a fresh object per call costs ~0.5 us. */
interface WatchedApi {
  name: string;
  attributes: Record<string, string>;
}

function watched(name: string): WatchedApi {
  return { name, attributes: { [SYNC_API]: name } };
}
