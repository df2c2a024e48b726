// Request parameters shared by the JSON APIs: every bad one is a 400 whose message names the
// parameter and what it accepts.
import type { Request, Response } from 'express';
import { parseDuration } from '../common/time';

/** A request parameter that is missing or malformed: answered with 400 and this message. */
export class BadParam extends Error {}

export const TRACE_ID = /^[0-9a-fA-F]{32}$/;
const MAX_STEPS = 2_000;
const MAX_DURATION_MS = 100 * 365 * 86_400_000;

export function one(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadParam(`${name}: give it once, as a plain value`);
  return v;
}

export function durationParam(req: Request, name: string): number | undefined {
  const v = one(req, name);
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms instanceof Error) throw new BadParam(`${name}: ${ms.message}`);
  if (ms > MAX_DURATION_MS) throw new BadParam(`${name}: at most 100 years`);
  return ms;
}

/** A point in time: ISO 8601, or milliseconds since the epoch. */
export function timeParam(req: Request, name: string): number | undefined {
  const v = one(req, name);
  if (v === undefined) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  // Date's own range, which also keeps nanoseconds within 64 bits.
  if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15)
    throw new BadParam(
      `${name}: "${v}" is not a time; use ISO 8601 (2026-01-31T12:00:00Z) or milliseconds since the epoch`,
    );
  return ms;
}

export function intParam(req: Request, name: string, min: number, max: number, fallback: number): number {
  const v = one(req, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new BadParam(`${name}: must be a whole number from ${min} to ${max}`);
  return n;
}

/** The time range of a request: `since` (a duration back from now) or `from`/`to`. */
export function range(req: Request, defaultSinceMs: number | undefined): { fromMs?: number; toMs?: number } {
  const since = durationParam(req, 'since');
  const from = timeParam(req, 'from');
  const to = timeParam(req, 'to');
  if (since !== undefined && from !== undefined) throw new BadParam('since and from: give one or the other');
  const toMs = to ?? (since !== undefined || defaultSinceMs !== undefined ? Date.now() : undefined);
  const fromMs =
    from ?? (since !== undefined ? toMs! - since : defaultSinceMs !== undefined ? toMs! - defaultSinceMs : undefined);
  if (fromMs !== undefined && toMs !== undefined && fromMs >= toMs) throw new BadParam('from: must be before to');
  return { fromMs, toMs };
}

/** A JSON endpoint: what `fn` returns (or resolves to), a 400 for a BadParam, a 500 otherwise. */
export function handler(fn: (req: Request) => unknown) {
  return async (req: Request, res: Response) => {
    try {
      res.json(await fn(req));
    } catch (err) {
      if (err instanceof BadParam) res.status(400).json({ error: err.message });
      else res.status(500).json({ error: `internal error: ${(err as Error).message}` });
    }
  };
}

/** A chart step: `step`, or about 60 steps over the range; at most MAX_STEPS. */
export function stepParam(req: Request, spanMs: number): number {
  const stepMs = durationParam(req, 'step') ?? Math.max(1000, Math.ceil(spanMs / 60 / 1000) * 1000);
  if (stepMs <= 0) throw new BadParam('step: must be greater than zero');
  if (spanMs / stepMs > MAX_STEPS) throw new BadParam(`step: too small for the range; at most ${MAX_STEPS} steps`);
  return stepMs;
}
