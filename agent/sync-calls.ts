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
import { SYNC_BUCKETS_S } from '../common/buckets';

const ORIGINAL = Symbol.for('stallscope.original');
const STACK_FRAMES = 30;

export interface SyncCallOptions {
  thresholdMs: number;
  jsonSizeThreshold: number;
}

type AnyFn = (...args: unknown[]) => unknown;

interface Patched {
  target: Record<string, unknown>;
  key: string;
  original: AnyFn;
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
  private readonly patched: Patched[] = [];
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
    const fsApi = fs as unknown as Record<string, unknown>;
    for (const key of Object.keys(fsApi)) if (key.endsWith('Sync')) this.wrapTimed(fsApi, key, `fs.${key}`);
    const zlibApi = zlib as unknown as Record<string, unknown>;
    for (const key of Object.keys(zlibApi)) if (key.endsWith('Sync')) this.wrapTimed(zlibApi, key, `zlib.${key}`);
    for (const key of CHILD_PROCESS_SYNC)
      this.wrapTimed(childProcess as unknown as Record<string, unknown>, key, `child_process.${key}`);
    for (const key of CRYPTO_SYNC) this.wrapTimed(crypto as unknown as Record<string, unknown>, key, `crypto.${key}`);
    // A sync wait on the main thread (the wrong kind of lock between callbacks).
    this.wrapTimed(Atomics as unknown as Record<string, unknown>, 'wait', 'Atomics.wait');
    this.wrapJson();
    // ESM named imports of builtins (import { readFileSync } from 'node:fs') see the wrappers too.
    syncBuiltinESMExports();
    whenStarted(() => {
      this.serving = this.patched.length > 0;
    });
  }

  stop(): void {
    for (const p of this.patched.reverse()) {
      if ((p.target[p.key] as { [ORIGINAL]?: AnyFn })?.[ORIGINAL] === p.original) p.target[p.key] = p.original;
    }
    this.patched.length = 0;
    syncBuiltinESMExports();
  }

  private install(target: Record<string, unknown>, key: string, original: AnyFn, wrapper: AnyFn): void {
    Object.defineProperty(wrapper, 'length', { value: original.length });
    Object.defineProperty(wrapper, 'name', { value: original.name });
    // Properties hung on the function (fs.realpathSync.native) stay reachable.
    for (const k of Object.keys(original))
      (wrapper as unknown as Record<string, unknown>)[k] = (original as unknown as Record<string, unknown>)[k];
    Object.defineProperty(wrapper, ORIGINAL, { value: original });
    target[key] = wrapper;
    this.patched.push({ target, key, original });
  }

  private wrapTimed(target: Record<string, unknown>, key: string, name: string): void {
    const original = target[key];
    if (typeof original !== 'function' || (original as { [ORIGINAL]?: AnyFn })[ORIGINAL]) return;
    const self = this;
    const api = watched(name);
    const wrapper = function (this: unknown, ...args: unknown[]): unknown {
      if (!self.serving || self.depth > 0) return Reflect.apply(original as AnyFn, this, args);
      self.depth++;
      const start = performance.now();
      try {
        return Reflect.apply(original as AnyFn, this, args);
      } finally {
        self.depth--;
        self.record(api, start, undefined);
      }
    };
    this.install(target, key, original as AnyFn, wrapper);
  }

  private wrapJson(): void {
    const json = JSON as unknown as Record<string, unknown>;
    const parse = JSON.parse;
    const stringify = JSON.stringify;
    if ((parse as { [ORIGINAL]?: AnyFn })[ORIGINAL]) return;
    const self = this;
    const size = this.options.jsonSizeThreshold;
    const parseApi = watched('JSON.parse');
    const stringifyApi = watched('JSON.stringify');
    // JSON.parse and JSON.stringify ignore `this` and read exactly their declared parameters,
    // so fixed parameters call them identically, without the cost of rest arguments.
    this.install(
      json,
      'parse',
      parse as AnyFn,
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
      } as AnyFn,
    );
    this.install(
      json,
      'stringify',
      stringify as AnyFn,
      function (value: unknown, replacer?: unknown, space?: unknown): unknown {
        if (!self.serving || self.depth > 0) return stringify(value, replacer as (number | string)[], space as string);
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
      } as AnyFn,
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
