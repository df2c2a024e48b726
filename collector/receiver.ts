// The OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs, protobuf or JSON, optionally
// gzipped, answered in the request's own content type as the OTLP specification requires.
import http from 'node:http';
import type protobuf from 'protobufjs';
import {
  LogsRequest,
  MetricsRequest,
  PROTOBUF_DEPTH,
  TraceRequest,
  encodeExportResponse,
  encodeRpcStatus,
} from './otlp/proto';
import {
  BadRequest,
  MAX_ANY_VALUE_DEPTH,
  normalizeLogs,
  normalizeMetrics,
  normalizeTraces,
  type Normalized,
} from './otlp/normalize';
import { QueueFull, WriteFailed, WriteRejected, type Store } from '../db/index';
import { PROFILE_PATH } from '../common/conventions';
import { BadProfile, decodeProfile } from './profiles';
import { BodyTooLarge, BodyUnreadable, gunzipBody, readBody } from './body';
import { MemoryBudget, OverBudget } from './memory-budget';
import { hostHeaderIsLoopback } from '../common/listen';
import { RateLimitedLog } from '../common/rate-limited-log';
import { sameSecret } from '../common/secret';
import { formatSize } from '../common/size';

type Format = 'json' | 'protobuf';

interface Signal {
  request: protobuf.Type;
  normalize: (body: unknown, format: Format) => Normalized;
  /** Name of the rejected-count field in the JSON partial-success response. */
  rejectedField: string;
}

const SIGNALS: Record<string, Signal> = {
  '/v1/traces': { request: TraceRequest, normalize: normalizeTraces, rejectedField: 'rejectedSpans' },
  '/v1/metrics': { request: MetricsRequest, normalize: normalizeMetrics, rejectedField: 'rejectedDataPoints' },
  '/v1/logs': { request: LogsRequest, normalize: normalizeLogs, rejectedField: 'rejectedLogRecords' },
};

// gRPC status codes carried in the google.rpc.Status body of error responses.
const GRPC_CODE: Record<number, number> = {
  400: 3,
  401: 16,
  403: 7,
  404: 12,
  405: 12,
  408: 4,
  413: 8,
  415: 3,
  500: 13,
  503: 14,
};

export interface ReceiverOptions {
  /** Largest body accepted, measured after decompression. */
  maxBodyBytes: number;
  /** Bytes all requests in flight may hold together (see memory-budget.ts). */
  memoryBudgetBytes: number;
  /** Seconds a client is told to wait when the write queue or the memory budget is full. */
  retryAfterSeconds: number;
  /** Time a client has to send a request's headers and body; past it the connection is closed. */
  requestTimeoutMs: number;
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Only requests whose Host header names this machine (bound to loopback without a token). */
  loopbackHostsOnly: boolean;
}

export interface ReceiverStats {
  requests: number;
  accepted: { spans: number; points: number; logs: number; profileSamples: number };
  rejectedItems: number;
  refused: Record<string, number>;
  /** Internal errors (500s), each one also a rate-limited line on stderr. */
  internalErrors: number;
}

function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  return sameSecret(header.slice(7).trim(), token);
}

/** An error answer: the HTTP status and the message the client sees. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly closeConnection = false,
  ) {
    super(message);
  }
}

/** Headers may take at most this long even when the request timeout is longer. */
const HEADERS_TIMEOUT_MS = 10_000;

export class OtlpReceiver {
  readonly stats: ReceiverStats = {
    requests: 0,
    accepted: { spans: 0, points: 0, logs: 0, profileSamples: 0 },
    rejectedItems: 0,
    refused: {},
    internalErrors: 0,
  };
  readonly server: http.Server;
  readonly budget: MemoryBudget;
  /** When a request was last refused because the memory budget was spent. */
  lastBudgetRefusal = -Infinity;
  private readonly internal: RateLimitedLog;

  constructor(
    private readonly store: Store,
    private readonly options: ReceiverOptions,
  ) {
    this.budget = new MemoryBudget(options.memoryBudgetBytes);
    this.internal = new RateLimitedLog((line) => process.stderr.write(`${line}\n`));
    const requestTimeout = options.requestTimeoutMs;
    this.server = http.createServer(
      {
        requestTimeout,
        headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout),
        // How often Node looks for connections past those timeouts (its default is 30 s).
        connectionsCheckingInterval: Math.min(1000, Math.max(100, requestTimeout / 4)),
      },
      (req, res) => {
        // Errors are answered in the request's content type: `handle` throws, this catches.
        this.handle(req, res).catch((err) => this.fail(req, res, formatOf(req.headers['content-type']), err));
      },
    );
    this.server.keepAliveTimeout = 65_000;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.stats.requests++;
    const path = (req.url ?? '/').split('?')[0];
    const signal = SIGNALS[path];
    const format = formatOf(req.headers['content-type']);
    if (!signal && path !== PROFILE_PATH)
      throw new HttpError(404, `no OTLP endpoint at ${path}; use POST /v1/traces, /v1/metrics or /v1/logs`);
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed on ${path}; use POST`);
    if (this.options.loopbackHostsOnly && !hostHeaderIsLoopback(req.headers.host)) {
      throw new HttpError(
        403,
        `host "${req.headers.host ?? ''}" is not this machine; the OTLP port on loopback takes requests addressed to localhost, 127.0.0.1 or [::1]`,
        true,
      );
    }
    if (this.options.token !== undefined && !bearerMatches(req.headers.authorization, this.options.token)) {
      throw new HttpError(
        401,
        'a token is required: send Authorization: Bearer <STALLSCOPE_TOKEN> (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>)',
      );
    }
    if (!signal) return this.profile(req, res);
    if (!format) {
      throw new HttpError(
        415,
        `unsupported Content-Type "${req.headers['content-type'] ?? ''}"; use application/x-protobuf or application/json`,
      );
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
    if (encoding !== 'gzip' && encoding !== 'identity') {
      throw new HttpError(415, `unsupported Content-Encoding "${encoding}"; use gzip or none`);
    }
    // Everything this request holds is given back once it is answered, or its connection dies.
    const claim = this.budget.claim();
    res.once('close', () => claim.release());
    try {
      if (this.budget.exhausted) {
        this.budget.refusals++;
        throw new OverBudget(
          `the collector's memory budget (${formatSize(this.budget.limit)}) is in use by the requests in flight; retry later`,
        );
      }
      const limit = this.options.maxBodyBytes;
      const raw = await readBody(req, limit, claim, encoding === 'identity');
      const body = encoding === 'gzip' ? await gunzipBody(raw, limit, claim) : raw;
      claim.reserveDecode(body.length, 'decoding it');
      const decoded = decode(body, format, signal, path);
      let normalized: Normalized;
      try {
        normalized = signal.normalize(decoded, format);
      } catch (err) {
        if (err instanceof BadRequest) throw new HttpError(400, `invalid ${requestName(path)}: ${err.message}`);
        throw err;
      }
      const b = normalized.batch;
      await this.store.write(b);
      this.stats.accepted.spans += b.spans.length;
      this.stats.accepted.points += b.points.length;
      this.stats.accepted.logs += b.logs.length;
      this.stats.rejectedItems += normalized.rejected;
      respondOk(res, format, signal, normalized);
    } catch (err) {
      throw this.answerFor(req, res, err);
    }
  }

  /**
   * A loop CPU profile: a pprof file (docs/conventions.md), held to the same budget and limits as
   * an OTLP request and stored like any batch.
   */
  private async profile(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const claim = this.budget.claim();
    res.once('close', () => claim.release());
    try {
      if (this.budget.exhausted) {
        this.budget.refusals++;
        throw new OverBudget(
          `the collector's memory budget (${formatSize(this.budget.limit)}) is in use by the requests in flight; retry later`,
        );
      }
      const limit = this.options.maxBodyBytes;
      const raw = await readBody(req, limit, claim, false);
      const body = raw[0] === 0x1f && raw[1] === 0x8b ? await gunzipBody(raw, limit, claim) : raw;
      claim.reserveDecode(body.length, 'decoding it');
      let profile;
      try {
        profile = decodeProfile(body);
      } catch (err) {
        if (err instanceof BadProfile) throw new HttpError(400, `invalid profile: ${err.message}`);
        throw err;
      }
      await this.store.write({ resources: [], spans: [], points: [], logs: [], profiles: [profile] });
      this.stats.accepted.profileSamples += profile.samples.length;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ samples: profile.samples.length }));
    } catch (err) {
      throw this.answerFor(req, res, err);
    }
  }

  /** The HTTP answer for a failure while taking a request in (the error to throw). */
  private answerFor(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): unknown {
    if (err instanceof QueueFull || err instanceof WriteFailed) {
      res.setHeader('Retry-After', String(this.options.retryAfterSeconds));
      return new HttpError(503, err.message);
    }
    if (err instanceof OverBudget && err.alone) return new HttpError(413, err.message, !req.complete);
    if (err instanceof OverBudget) {
      this.lastBudgetRefusal = Date.now();
      res.setHeader('Retry-After', String(this.options.retryAfterSeconds));
      // The rest of the body is not read: the connection cannot be reused.
      return new HttpError(503, err.message, !req.complete);
    }
    if (err instanceof BodyTooLarge) return new HttpError(413, err.message, !req.complete);
    if (err instanceof BodyUnreadable) return new HttpError(400, err.message, !req.complete);
    // Not retryable (OTLP retries 429, 502, 503 and 504 only).
    if (err instanceof WriteRejected) return new HttpError(500, err.message);
    return err;
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, format: Format | null, err: unknown): void {
    const e =
      err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`);
    this.stats.refused[e.status] = (this.stats.refused[e.status] ?? 0) + 1;
    if (e.status === 500) {
      this.stats.internalErrors++;
      const where = (err as Error)?.stack?.split('\n')[1]?.trim() ?? '';
      this.internal.log(
        `stallscope collector: ${req.method} ${req.url}: ${e.message}${where ? ` (${where})` : ''}; ${this.stats.internalErrors} internal errors so far`,
      );
    }
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    res.statusCode = e.status;
    if (e.closeConnection) res.setHeader('Connection', 'close');
    const code = GRPC_CODE[e.status] ?? 2;
    if (format === 'protobuf') {
      res.setHeader('Content-Type', 'application/x-protobuf');
      res.end(encodeRpcStatus(code, e.message));
    } else {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ code, message: e.message }));
    }
  }
}

function requestName(path: string): string {
  return path === '/v1/traces'
    ? 'ExportTraceServiceRequest'
    : path === '/v1/metrics'
      ? 'ExportMetricsServiceRequest'
      : 'ExportLogsServiceRequest';
}

function formatOf(contentType: string | undefined): Format | null {
  const media = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (media === 'application/x-protobuf' || media === 'application/protobuf') return 'protobuf';
  if (media === 'application/json') return 'json';
  return null;
}

function decode(body: Buffer, format: Format, signal: Signal, path: string): unknown {
  if (format === 'protobuf') {
    try {
      return signal.request.decode(body);
    } catch (err) {
      const message = (err as Error).message;
      if (message === 'max depth exceeded') {
        throw new HttpError(
          400,
          `invalid protobuf ${requestName(path)}: messages nested deeper than ${PROTOBUF_DEPTH} levels (an AnyValue more than ${MAX_ANY_VALUE_DEPTH} levels deep is rejected as an item before that)`,
        );
      }
      throw new HttpError(400, `invalid protobuf ${requestName(path)}: ${message}`);
    }
  }
  if (body.length === 0) throw new HttpError(400, `the body is empty; expected a JSON ${requestName(path)}`);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `invalid JSON: ${(err as Error).message}`);
  }
}

function respondOk(res: http.ServerResponse, format: Format, signal: Signal, n: Normalized): void {
  res.statusCode = 200;
  if (format === 'protobuf') {
    res.setHeader('Content-Type', 'application/x-protobuf');
    res.end(encodeExportResponse(n.rejected, n.errorMessage));
    return;
  }
  res.setHeader('Content-Type', 'application/json');
  // proto3 JSON writes int64 as a decimal string.
  const body =
    n.rejected > 0
      ? { partialSuccess: { [signal.rejectedField]: String(n.rejected), errorMessage: n.errorMessage } }
      : {};
  res.end(JSON.stringify(body));
}
