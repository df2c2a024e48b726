// The collector's JSON query API, mounted on the dashboard port. Every bad parameter is a 400
// whose message names the parameter and what it accepts.
import express, { type Request, type Response, type Router } from 'express';
import type { Store } from '../db/index';
import type { TraceSearch } from '../common/types';
import { msToNs, parseDuration } from '../common/duration';

class BadParam extends Error {}

const TRACE_ID = /^[0-9a-fA-F]{32}$/;
const MAX_STEPS = 2_000;

function one(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadParam(`${name}: give it once, as a plain value`);
  return v;
}

function durationParam(req: Request, name: string): number | undefined {
  const v = one(req, name);
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms instanceof Error) throw new BadParam(`${name}: ${ms.message}`);
  return ms;
}

/** A point in time: ISO 8601, or milliseconds since the epoch. */
function timeParam(req: Request, name: string): number | undefined {
  const v = one(req, name);
  if (v === undefined) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) throw new BadParam(`${name}: "${v}" is not a time; use ISO 8601 (2026-01-31T12:00:00Z) or milliseconds since the epoch`);
  return ms;
}

function intParam(req: Request, name: string, min: number, max: number, fallback: number): number {
  const v = one(req, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new BadParam(`${name}: must be a whole number from ${min} to ${max}`);
  return n;
}

/** The time range of a request: `since` (a duration back from now) or `from`/`to`. */
function range(req: Request, defaultSinceMs: number | undefined): { fromMs?: number; toMs?: number } {
  const since = durationParam(req, 'since');
  const from = timeParam(req, 'from');
  const to = timeParam(req, 'to');
  if (since !== undefined && from !== undefined) throw new BadParam('since and from: give one or the other');
  const toMs = to ?? (since !== undefined || defaultSinceMs !== undefined ? Date.now() : undefined);
  const fromMs = from ?? (since !== undefined ? toMs! - since : defaultSinceMs !== undefined ? toMs! - defaultSinceMs : undefined);
  if (fromMs !== undefined && toMs !== undefined && fromMs >= toMs) throw new BadParam('from: must be before to');
  return { fromMs, toMs };
}

function handler(fn: (req: Request) => unknown) {
  return (req: Request, res: Response) => {
    try {
      res.json(fn(req));
    } catch (err) {
      if (err instanceof BadParam) res.status(400).json({ error: err.message });
      else res.status(500).json({ error: `internal error: ${(err as Error).message}` });
    }
  };
}

export function queryApi(store: Store): Router {
  const api = express.Router();

  api.get('/services', handler(() => store.queries.listServices()));

  api.get(
    '/traces',
    handler((req) => {
      const { fromMs, toMs } = range(req, undefined);
      const search: TraceSearch = { limit: intParam(req, 'limit', 1, 1000, 20) };
      search.service = one(req, 'service');
      search.name = one(req, 'name');
      const minDuration = durationParam(req, 'minDuration');
      if (minDuration !== undefined) search.minDurationNs = msToNs(minDuration);
      if (fromMs !== undefined) search.fromNs = msToNs(fromMs);
      if (toMs !== undefined) search.toNs = msToNs(toMs);
      const attr = one(req, 'attribute');
      if (attr !== undefined) {
        const eq = attr.indexOf('=');
        const key = attr.slice(0, eq);
        if (eq <= 0 || key.includes('"')) throw new BadParam('attribute: use key=value, e.g. attribute=http.route=/orders');
        search.attribute = { key, value: attr.slice(eq + 1) };
      }
      return store.queries.searchTraces(search);
    }),
  );

  api.get('/traces/:traceId', (req, res) => {
    const id = req.params.traceId;
    if (!TRACE_ID.test(id)) {
      res.status(400).json({ error: `traceId: "${id}" is not 32 hex characters` });
      return;
    }
    const spans = store.queries.getTrace(id);
    if (spans.length === 0) res.status(404).json({ error: `no trace ${id.toLowerCase()}` });
    else res.json({ traceId: id.toLowerCase(), spans });
  });

  api.get(
    '/metrics',
    handler((req) => {
      const name = one(req, 'name');
      if (!name) throw new BadParam('name: required, the metric name (e.g. nodejs.eventloop.delay.p99)');
      const { fromMs, toMs } = range(req, 3_600_000);
      const spanMs = toMs! - fromMs!;
      const stepMs = durationParam(req, 'step') ?? Math.max(1000, Math.ceil(spanMs / 60 / 1000) * 1000);
      if (stepMs <= 0) throw new BadParam('step: must be greater than zero');
      if (spanMs / stepMs > MAX_STEPS) throw new BadParam(`step: too small for the range; at most ${MAX_STEPS} steps`);
      return store.queries.queryMetric({
        name,
        service: one(req, 'service'),
        fromNs: msToNs(fromMs!),
        toNs: msToNs(toMs!),
        stepNs: msToNs(stepMs),
      });
    }),
  );

  api.use((req, res) => {
    res.status(404).json({ error: `no API endpoint ${req.method} ${req.path}` });
  });
  return api;
}
