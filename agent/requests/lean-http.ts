// Lean request tracing (STALLSCOPE_REQUESTS=lean): stallscope's own HTTP server instrumentation,
// in place of OpenTelemetry's HTTP and express ones. Per request it keeps a record (lean-request.ts)
// in the request's context, and at the response's end() it counts the request in
// `http.server.request.duration` and its time by cause in `stallscope.request.time`, per method
// and route. Only a request that stalled (an agent span inside it, the loop blocked while it was
// in flight) or was slow is exported as a server span. Routes come from the framework: express
// (`req.route`), fastify (its `fastify.request.handler` diagnostics channel), koa with
// @koa/router (`ctx._matchedRoute`); for plain node:http, the path with its ids folded.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InstrumentationBase, InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import { ROOT_CONTEXT, SpanStatusCode, context, type Attributes, type Histogram } from '@opentelemetry/api';
import {
  CAUSE_KIND,
  CAUSE_WHAT,
  ERROR_TYPE,
  HTTP_METHOD,
  HTTP_METRICS,
  HTTP_PATH_ROUTE,
  HTTP_ROUTE,
  HTTP_STATUS,
  REQUEST_EXPORTED,
  REQUEST_EXPORT_REASONS,
  REQUEST_METRICS,
  URL_SCHEME,
} from '../../common/conventions';
import { HTTP_DURATION_BUCKETS_S } from '../../common/buckets';
import { foldPath, routeName } from '../../common/routes';
import type { RouteCauseKind } from '../../common/types';
import { STARVED, blockedSince, caughtBlocking, loopClock } from '../loop-clock';
import { Patches, type AnyFn } from '../patch';
import { report } from '../safety';
import { LeanRequest } from './lean-request';

const VERSION = '0.1.0';
const RECORD = Symbol('stallscope.leanRequest');
const FASTIFY_ROUTE = Symbol('stallscope.fastifyRoute');
const KOA_CONTEXT = Symbol('stallscope.koaContext');
const FASTIFY_HANDLER_START = 'tracing:fastify.request.handler:start';
/** Attribute sets kept per route, status and cause; past this they are built per request. */
const MAX_ATTRIBUTE_SETS = 2000;
/** Where the routes past MAX_ATTRIBUTE_SETS are counted. */
const OTHER_ROUTE = '(other)';
/** Folded paths kept per raw path (plain node:http); past this they are folded per request. */
const MAX_FOLDED = 2000;

type Req = IncomingMessage & {
  route?: { path?: unknown };
  baseUrl?: unknown;
  [FASTIFY_ROUTE]?: string;
  [KOA_CONTEXT]?: { _matchedRoute?: unknown };
};
type Res = ServerResponse & { [RECORD]?: LeanRequest };

export interface LeanHttpOptions {
  /** A request that took this long is exported even if nothing stalled it. */
  slowRequestMs: number;
}

/** A route of a request, as the metrics name it. */
interface Route {
  method: string;
  /** The framework's template, or the folded path. */
  path: string;
  templated: boolean;
}

function onFastifyHandler(message: unknown): void {
  const m = message as { request?: { raw?: Req }; route?: { url?: unknown } };
  if (m.request?.raw && typeof m.route?.url === 'string') m.request.raw[FASTIFY_ROUTE] = m.route.url;
}

export class LeanHttpInstrumentation extends InstrumentationBase {
  private readonly patches = new Patches('lean HTTP instrumentation');
  // Made by the base class's constructor (through _updateMetricInstruments) before fields are set.
  declare private duration: Histogram;
  private readonly durationAttrs = new Map<string, Attributes>();
  /** Seconds by route and cause, in plain numbers behind an observable counter (no SDK call per request). */
  private readonly times = new Map<string, { attributes: Attributes; seconds: number }>();
  private readonly folded = new Map<string, string>();

  constructor(private readonly options: LeanHttpOptions) {
    super('@stallscope/instrumentation-http-lean', VERSION, {});
  }

  protected init() {
    const server = (name: 'http' | 'https') =>
      new InstrumentationNodeModuleDefinition(
        name,
        ['*'],
        (exports: { Server: { prototype: object }; ServerResponse?: { prototype: object } }) => {
          this.patches.wrap(exports.Server.prototype as Record<string, AnyFn>, 'emit', (original) =>
            this.emit(original),
          );
          // https answers with http's ServerResponse.
          if (exports.ServerResponse)
            this.patches.wrap(exports.ServerResponse.prototype as Record<string, AnyFn>, 'end', (original) =>
              this.end(original),
            );
          return exports;
        },
        (exports: { Server: { prototype: object }; ServerResponse?: { prototype: object } }) => {
          this.patches.unwrap(exports.Server.prototype as Record<string, AnyFn>, 'emit');
          if (exports.ServerResponse)
            this.patches.unwrap(exports.ServerResponse.prototype as Record<string, AnyFn>, 'end');
          return exports;
        },
      );
    // Koa keeps the matched route on its context, not on the request: the request is given its context.
    const koa = new InstrumentationNodeModuleDefinition(
      'koa',
      ['>=2 <4'],
      (exports: { prototype?: object; default?: { prototype: object } }) => {
        const app = (exports.default ?? exports) as { prototype: Record<string, AnyFn> };
        this.patches.wrap(
          app.prototype,
          'createContext',
          (original) =>
            function (this: unknown, req: Req) {
              const ctx = original.apply(this, arguments as unknown as unknown[]);
              req[KOA_CONTEXT] = ctx;
              return ctx;
            },
        );
        return exports;
      },
      (exports: { prototype?: object; default?: { prototype: object } }) => {
        const app = (exports.default ?? exports) as { prototype: Record<string, AnyFn> };
        this.patches.unwrap(app.prototype, 'createContext');
        return exports;
      },
    );
    return [server('http'), server('https'), koa];
  }

  override enable(): void {
    super.enable();
    subscribe(FASTIFY_HANDLER_START, onFastifyHandler);
  }

  override disable(): void {
    super.disable();
    unsubscribe(FASTIFY_HANDLER_START, onFastifyHandler);
  }

  protected override _updateMetricInstruments(): void {
    this.duration = this.meter.createHistogram(HTTP_METRICS.serverDuration, {
      description: 'Duration of HTTP server requests',
      unit: 's',
      advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS_S },
    });
    this.meter
      .createObservableCounter(REQUEST_METRICS.time, {
        description: 'HTTP server request time by cause: the stalls inside requests, the rest unattributed',
        unit: 's',
      })
      .addCallback((result) => {
        for (const t of this.times.values()) result.observe(t.seconds, t.attributes);
      });
  }

  /** Server#emit: each 'request' runs its listeners in a context that carries its record. */
  private emit(original: AnyFn): AnyFn {
    const self = this;
    return function (this: unknown, event: string, req: Req, res: Res) {
      if (event !== 'request') return original.apply(this, arguments as unknown as unknown[]);
      let rec: LeanRequest;
      try {
        rec = new LeanRequest(self.tracer, req, context.active(), performance.now());
        res[RECORD] = rec;
      } catch (err) {
        report('lean HTTP instrumentation', err);
        return original.apply(this, arguments as unknown as unknown[]);
      }
      const out = context.with(rec.ctx, original, this, event, req, res);
      // Listeners that ran this long before they first yielded blocked the loop themselves.
      if (performance.now() - rec.startMs >= loopClock.thresholdMs) caughtBlocking(rec);
      return out;
    };
  }

  /** ServerResponse#end: the request is over (for its server; the bytes may still be in flight). */
  private end(original: AnyFn): AnyFn {
    const self = this;
    return function (this: Res) {
      const rec = this[RECORD];
      if (rec === undefined) return original.apply(this, arguments as unknown as unknown[]);
      this[RECORD] = undefined;
      const out = original.apply(this, arguments as unknown as unknown[]);
      try {
        self.finish(rec, this);
      } catch (err) {
        report('lean HTTP instrumentation', err);
      }
      return out;
    };
  }

  private routeOf(req: Req): Route {
    const method = req.method ?? 'GET';
    let template: unknown;
    if (req.route && typeof req.route.path === 'string')
      template = (typeof req.baseUrl === 'string' ? req.baseUrl : '') + req.route.path; // express
    else template = req[FASTIFY_ROUTE] ?? req[KOA_CONTEXT]?._matchedRoute;
    if (typeof template === 'string' && template) return { method, path: template, templated: true };
    const url = req.url ?? '';
    let path = this.folded.get(url);
    if (path === undefined) {
      path = foldPath(url) || '/';
      if (this.folded.size < MAX_FOLDED) this.folded.set(url, path);
    }
    return { method, path, templated: false };
  }

  private routeAttributes(route: Route): Attributes {
    return route.templated
      ? { [HTTP_METHOD]: route.method, [HTTP_ROUTE]: route.path }
      : { [HTTP_METHOD]: route.method, [HTTP_PATH_ROUTE]: route.path };
  }

  private cached(map: Map<string, Attributes>, id: string, make: () => Attributes): Attributes {
    let a = map.get(id);
    if (a === undefined) {
      a = make();
      if (map.size < MAX_ATTRIBUTE_SETS) map.set(id, a);
    }
    return a;
  }

  /** Who held the loop while a request waited, as its loop-wait cause says it. */
  private blockerName(by: object | undefined): string {
    if (by === STARVED) return 'the machine (the process hardly ran: CPU starvation)';
    if (!(by instanceof LeanRequest)) return 'the loop blocked (by no request seen)';
    const r = this.routeOf(by.req);
    return `the loop blocked, in ${routeName(r.method, r.path)}`;
  }

  private finish(rec: LeanRequest, res: Res): void {
    const now = performance.now();
    const ms = now - rec.startMs;
    const route = this.routeOf(rec.req);
    const status = res.statusCode;
    const scheme = (rec.req.socket as { encrypted?: boolean } | null)?.encrypted ? 'https' : 'http';
    const routeId = `${route.method} ${route.templated ? '' : '~'}${route.path}`;
    this.duration.record(
      ms / 1000,
      this.cached(this.durationAttrs, `${status} ${scheme} ${routeId}`, () => {
        const a: Attributes = { ...this.routeAttributes(route), [HTTP_STATUS]: status, [URL_SCHEME]: scheme };
        if (status >= 500) a[ERROR_TYPE] = String(status);
        return a;
      }),
      // A context given is one the SDK need not look up (it uses none: no exemplars).
      ROOT_CONTEXT,
    );
    // Time by cause, each capped at what is left of the request, so that they add up to it.
    let left = ms;
    const add = (kind: RouteCauseKind, what: string, x: number) => {
      const v = Math.min(x, left);
      if (v <= 0) return;
      left -= v;
      const id = `${kind}\u0000${what}\u0000${routeId}`;
      let t = this.times.get(id);
      if (t === undefined) {
        // Past the bound, one line per cause for every further route.
        const full = this.times.size >= MAX_ATTRIBUTE_SETS;
        const other = `${kind}\u0000${what}\u0000${OTHER_ROUTE}`;
        t = full ? this.times.get(other) : undefined;
        if (t === undefined) {
          const where = full
            ? { [HTTP_METHOD]: route.method, [HTTP_PATH_ROUTE]: OTHER_ROUTE }
            : this.routeAttributes(route);
          t = { attributes: { ...where, [CAUSE_KIND]: kind, [CAUSE_WHAT]: what }, seconds: 0 };
          this.times.set(full ? other : id, t);
        }
      }
      t.seconds += v / 1000;
    };
    let ownSyncMs = 0;
    if (rec.charges) {
      for (const c of rec.charges) {
        add(c.kind, c.what, c.ms);
        if (c.kind === 'own-sync') ownSyncMs += c.ms;
      }
    }
    let ownBlockedMs = 0;
    let blocked = false;
    blockedSince(rec.startMs, now, (x, by) => {
      blocked = true;
      if (by === rec) ownBlockedMs += x;
      else add('loop-wait', this.blockerName(by), x);
    });
    // A blocking sync call is both a sync call and a blocked loop: counted once, as the call.
    add('own-blocking', 'the loop blocked by this request', ownBlockedMs - ownSyncMs);
    add('unattributed', 'outside the stalls the agent saw', left);

    let reason = rec.reason;
    if (reason === undefined && blocked) reason = REQUEST_EXPORT_REASONS.loopBlocked;
    if (reason === undefined && ms >= this.options.slowRequestMs) reason = REQUEST_EXPORT_REASONS.slow;
    if (reason === undefined) {
      rec.endMs = now;
      return;
    }
    const span = rec.materialize(reason);
    rec.endMs = now;
    span.updateName(routeName(route.method, route.path));
    span.setAttribute(route.templated ? HTTP_ROUTE : HTTP_PATH_ROUTE, route.path);
    span.setAttribute(HTTP_STATUS, status);
    span.setAttribute(REQUEST_EXPORTED, rec.reason ?? reason);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(performance.timeOrigin + now);
  }
}
