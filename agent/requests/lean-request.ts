// One HTTP request as lean request tracing keeps it: what stall attribution needs and no span
// until one is needed. Its record rides in the request's context, so every detector that records
// a span (recordSpan, the watchdog, lock blame) finds it there: the stall is charged to the
// request, and the request's server span is started then (back-dated to the request's start) to
// be the stall span's parent. A request nothing stalled never makes a span.
import type { IncomingMessage } from 'node:http';
import {
  SpanKind,
  createContextKey,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import {
  HTTP_METHOD,
  KINDS,
  LOCK_HANDOFF_MS,
  LOCK_HOLDER_MS,
  LOCK_HOLDER_SITES,
  LOCK_NAME,
  POOL_NAME,
  POOL_QUEUE_WAIT_MS,
  POOL_RUN_MS,
  REQUEST_EXPORT_REASONS,
  SYNC_API,
  THREADPOOL_OP,
  URL_PATH,
  URL_SCHEME,
  type RequestExportReason,
} from '../../common/conventions';
import type { RouteCauseKind } from '../../common/types';

const LEAN = createContextKey('stallscope lean request');

export interface Charge {
  kind: RouteCauseKind;
  what: string;
  ms: number;
}

export class LeanRequest {
  /** The server span, once something made it needed. */
  span: Span | undefined;
  /** Why it is exported; the first reason stays. */
  reason: RequestExportReason | undefined;
  /** Stall time charged by the agent's spans inside it. */
  charges: Charge[] | undefined;
  /** performance.now() at its end; 0 while in flight. */
  endMs = 0;
  /** The context its handlers run in. */
  readonly ctx: Context;

  constructor(
    private readonly tracer: Tracer,
    readonly req: IncomingMessage,
    /** The context the request arrived in (before any incoming traceparent). */
    private readonly outer: Context,
    readonly startMs: number,
  ) {
    this.ctx = outer.setValue(LEAN, this);
  }

  /** The server span (started now if it was not), marked with why it is exported. */
  materialize(reason: RequestExportReason): Span {
    this.reason ??= reason;
    if (this.span) return this.span;
    const req = this.req;
    // An incoming traceparent is honoured: the request joins the caller's trace.
    const parent = req.headers.traceparent ? propagation.extract(this.outer, req.headers) : this.outer;
    const target = req.url ?? '';
    const q = target.indexOf('?');
    const attributes: Attributes = {
      [HTTP_METHOD]: req.method ?? 'GET',
      [URL_PATH]: q >= 0 ? target.slice(0, q) : target,
      [URL_SCHEME]: (req.socket as { encrypted?: boolean } | null)?.encrypted ? 'https' : 'http',
    };
    const origin = performance.timeOrigin;
    this.span = this.tracer.startSpan(
      req.method ?? 'GET',
      { kind: SpanKind.SERVER, startTime: origin + this.startMs, attributes },
      parent,
    );
    // Needed only after the request ended (a pool task it left running): its span ends as it did.
    if (this.endMs > 0) this.span.end(origin + this.endMs);
    return this.span;
  }

  charge(kind: RouteCauseKind, what: string, ms: number): void {
    if (this.endMs > 0 || ms <= 0) return;
    (this.charges ??= []).push({ kind, what, ms });
  }
}

export function leanRequestOf(ctx: Context): LeanRequest | undefined {
  return ctx.getValue(LEAN) as LeanRequest | undefined;
}

/** The context to parent a span on: a lean request's server span (started if needed), else `ctx` as it is. */
export function parentContext(ctx: Context, reason: RequestExportReason): Context {
  const r = leanRequestOf(ctx);
  return r ? trace.setSpan(ctx, r.materialize(reason)) : ctx;
}

/** The span context a span in `ctx` belongs to, a lean request's included. */
export function spanContextOf(ctx: Context, reason: RequestExportReason): SpanContext | undefined {
  const r = leanRequestOf(ctx);
  return (r ? r.materialize(reason) : trace.getSpan(ctx))?.spanContext();
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));

/**
 * Charges an agent span's time to the lean request it happened in, by what it was (the causes
 * the routes breakdown names), and returns the context to record it in. Outside a lean request:
 * `ctx` as it is.
 */
export function chargeSpan(ctx: Context, kind: string, attributes: Attributes, ms: number): Context {
  const r = leanRequestOf(ctx);
  if (!r) return ctx;
  switch (kind) {
    case KINDS.lockWait: {
      // Split by holder, as the routes breakdown splits a traced wait.
      const lock = `lock ${str(attributes[LOCK_NAME])}`;
      const sites = attributes[LOCK_HOLDER_SITES];
      const held = attributes[LOCK_HOLDER_MS];
      const handoff = Number(attributes[LOCK_HANDOFF_MS]) || 0;
      const whole = (Array.isArray(held) ? held.reduce((a: number, x) => a + Number(x), 0) : 0) + handoff;
      if (whole <= 0 || !Array.isArray(sites) || !Array.isArray(held)) r.charge('lock-wait', lock, ms);
      else {
        sites.forEach((site, i) =>
          r.charge('lock-wait', `${lock}, held by ${str(site)}`, (ms * Number(held[i])) / whole),
        );
        r.charge('lock-wait', `${lock}, handoff`, (ms * handoff) / whole);
      }
      break;
    }
    case KINDS.threadpoolWait:
      r.charge('threadpool-wait', `libuv threadpool (${str(attributes[THREADPOOL_OP])})`, ms);
      break;
    case KINDS.poolTask: {
      const pool = `worker pool ${str(attributes[POOL_NAME])}`;
      const queued = Number(attributes[POOL_QUEUE_WAIT_MS]) || 0;
      const ran = Number(attributes[POOL_RUN_MS]) || 0;
      const both = queued + ran;
      r.charge('pool-queue', pool, both > 0 ? (ms * queued) / both : ms);
      if (both > 0) r.charge('pool-run', pool, (ms * ran) / both);
      break;
    }
    case KINDS.syncCall:
      r.charge('own-sync', str(attributes[SYNC_API]), ms);
      break;
    case KINDS.lockHeld:
      return trace.setSpan(ctx, r.materialize(REQUEST_EXPORT_REASONS.lockHolder));
  }
  return trace.setSpan(ctx, r.materialize(REQUEST_EXPORT_REASONS.stalled));
}
