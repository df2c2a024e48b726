// Blocking synchronous calls: fs.*Sync, child_process.*Sync, zlib.*Sync, the crypto key
// derivations and generators, and JSON.parse/stringify of large payloads. Each is wrapped so
// that a call made while the loop serves work is timed and counted per API and call site (every
// call: many short calls add up); a slow one also becomes a span (child of the active span) with
// its call site. Wrappers keep the original's behaviour exactly: same `this`, arguments, return
// value, exception, `length` and `name`.
import fs from 'node:fs';
import childProcess from 'node:child_process';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import Module, { syncBuiltinESMExports } from 'node:module';
import { context, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { KINDS, METRICS, SYNC_API, SYNC_BYTES, SYNC_SITE, SYNC_SITES } from '../common/conventions';
import { captureStack } from './stack';
import { codeSiteOf } from './sites';
import { recordSpan } from './spans';
import { report } from './safety';
import { whenStarted } from './startup';
import { Patches, type AnyFn } from './patch';
import { SYNC_BUCKETS_S } from '../common/buckets';

const STACK_FRAMES = 30;
/** Enough frames to climb out of Node's own into the caller, for a site alone. */
const SITE_FRAMES = 12;
/** Calls shorter than this are counted together: a stack (several us) would cost more than they do. */
const FAST_MS = 1;
/** Call sites counted at most (over all APIs); later ones are `(other)`. */
const MAX_SITES = 200;

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
  /** Sites counted so far, over all APIs (bounded by MAX_SITES). */
  private siteCount = 0;
  private readonly apis: WatchedApi[] = [];

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
    // Totals kept in plain numbers and read at each export: a metrics-SDK add() per call costs more.
    const time = this.meter.createObservableCounter(METRICS.syncTime, {
      description: 'Time in watched synchronous calls made while serving, per API and call site',
      unit: 's',
    });
    const calls = this.meter.createObservableCounter(METRICS.syncCalls, {
      description: 'Watched synchronous calls made while serving, per API and call site',
      unit: '{call}',
    });
    this.meter.addBatchObservableCallback(
      (result) => {
        for (const api of this.apis)
          for (const t of api.sites.values()) {
            result.observe(time, t.ms / 1000, t.attributes);
            result.observe(calls, t.calls, t.attributes);
          }
      },
      [time, calls],
    );
    for (const key of Object.keys(fs)) if (key.endsWith('Sync')) this.wrapTimed(fs, key, `fs.${key}`);
    for (const key of Object.keys(zlib)) if (key.endsWith('Sync')) this.wrapTimed(zlib, key, `zlib.${key}`);
    for (const key of CHILD_PROCESS_SYNC) this.wrapTimed(childProcess, key, `child_process.${key}`);
    for (const key of CRYPTO_SYNC) this.wrapTimed(crypto, key, `crypto.${key}`);
    // A sync wait on the main thread (the wrong kind of lock between callbacks).
    this.wrapTimed(Atomics, 'wait', 'Atomics.wait');
    this.wrapJson();
    this.wrapRequire();
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
    const api = this.watched(name);
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

  /**
   * Loading code does its sync I/O by nature, also when it runs late (a require() in a handler,
   * a library loading a part on first use): the reads and the module's own top-level calls are
   * the loading's, as at start-up, and a long one still shows as a blocked loop.
   */
  private wrapRequire(): void {
    const self = this;
    this.patches.wrap(
      Module.prototype,
      'require',
      (original: AnyFn) =>
        function (this: unknown, ...args: unknown[]): unknown {
          self.depth++;
          try {
            return Reflect.apply(original, this, args);
          } finally {
            self.depth--;
          }
        },
    );
  }

  private wrapJson(): void {
    const self = this;
    const size = this.options.jsonSizeThreshold;
    const parseApi = this.watched('JSON.parse');
    const stringifyApi = this.watched('JSON.stringify');
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
      const slow = ms >= this.options.thresholdMs;
      // The stack names the call site in the user's code; taken after the call, still in its wrapper.
      const stack = slow || ms >= FAST_MS ? captureStack(this.record, slow ? STACK_FRAMES : SITE_FRAMES) : undefined;
      const total = this.siteTotal(api, stack ? codeSiteOf(stack) : SYNC_SITES.fast);
      total.ms += ms;
      total.calls++;
      if (!slow) return;
      const attributes: Record<string, string | number> = { ...api.attributes };
      if (bytes !== undefined) attributes[SYNC_BYTES] = bytes;
      recordSpan(this.tracer, { name: api.name, kind: KINDS.syncCall, from: start, to: end, stack, attributes });
    } catch (err) {
      report('sync-call recording', err);
    } finally {
      this.depth--;
    }
  }

  private siteTotal(api: WatchedApi, site: string): SiteTotal {
    let t = api.sites.get(site);
    if (t) return t;
    if (site !== SYNC_SITES.fast && this.siteCount >= MAX_SITES) return this.siteTotal(api, SYNC_SITES.other);
    if (site !== SYNC_SITES.fast && site !== SYNC_SITES.other) this.siteCount++;
    api.sites.set(site, (t = { ms: 0, calls: 0, attributes: { ...api.attributes, [SYNC_SITE]: site } }));
    return t;
  }

  /** A watched API with its metric attributes built once: a fresh object per call costs ~0.5 us. */
  private watched(name: string): WatchedApi {
    const api: WatchedApi = { name, attributes: { [SYNC_API]: name }, sites: new Map() };
    this.apis.push(api);
    return api;
  }
}

interface WatchedApi {
  name: string;
  attributes: Record<string, string>;
  /** Time and calls per call site (`fn (file:line)`, or one of SYNC_SITES). */
  sites: Map<string, SiteTotal>;
}

interface SiteTotal {
  ms: number;
  calls: number;
  attributes: Record<string, string>;
}
