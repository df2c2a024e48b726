// The OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs, protobuf or JSON, optionally
// gzipped, answered in the request's own content type as the OTLP specification requires.
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type protobuf from 'protobufjs';
import { LogsRequest, MetricsRequest, TraceRequest, encodeExportResponse, encodeRpcStatus } from './otlp/proto';
import { BadRequest, normalizeLogs, normalizeMetrics, normalizeTraces, type Normalized } from './otlp/normalize';
import { QueueFull, WriteFailed, WriteRejected, type Store } from '../db/index';
import { PROFILE_PATH } from '../common/conventions';
import type { ProfileWrite } from '../common/types';
import { BadProfile, decodeProfile } from './profiles';

const gunzip = promisify(zlib.gunzip);

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
const GRPC_CODE: Record<number, number> = { 400: 3, 401: 16, 404: 12, 405: 12, 413: 8, 415: 3, 500: 13, 503: 14 };

export interface ReceiverOptions {
  /** Largest body accepted, measured after decompression. */
  maxBodyBytes: number;
  /** Seconds a client is told to wait when the write queue is full. */
  retryAfterSeconds: number;
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  token?: string;
}

export interface ReceiverStats {
  requests: number;
  accepted: { spans: number; points: number; logs: number; profileSamples: number };
  rejectedItems: number;
  refused: Record<string, number>;
}

function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7).trim());
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
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

export class OtlpReceiver {
  readonly stats: ReceiverStats = {
    requests: 0,
    accepted: { spans: 0, points: 0, logs: 0, profileSamples: 0 },
    rejectedItems: 0,
    refused: {},
  };
  readonly server: http.Server;

  constructor(
    private readonly store: Store,
    private readonly options: ReceiverOptions,
  ) {
    // Errors are answered in the request's content type: `handle` throws, this catches.
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => this.fail(res, formatOf(req.headers['content-type']), err));
    });
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
    try {
      const raw = await readBody(req, this.options.maxBodyBytes);
      const body = encoding === 'gzip' ? await this.decompress(raw) : raw;
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
      if (err instanceof QueueFull || err instanceof WriteFailed) {
        res.setHeader('Retry-After', String(this.options.retryAfterSeconds));
        throw new HttpError(503, err.message);
      }
      // Not retryable (OTLP retries 429, 502, 503 and 504 only).
      if (err instanceof WriteRejected) throw new HttpError(500, err.message);
      throw err;
    }
  }

  /** A loop CPU profile: a pprof file (docs/conventions.md), stored like any batch. */
  private async profile(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, this.options.maxBodyBytes);
    let profile: ProfileWrite;
    try {
      profile = decodeProfile(body);
    } catch (err) {
      if (err instanceof BadProfile) throw new HttpError(400, `invalid profile: ${err.message}`);
      throw err;
    }
    try {
      await this.store.write({ resources: [], spans: [], points: [], logs: [], profiles: [profile] });
    } catch (err) {
      if (err instanceof QueueFull || err instanceof WriteFailed) {
        res.setHeader('Retry-After', String(this.options.retryAfterSeconds));
        throw new HttpError(503, err.message);
      }
      if (err instanceof WriteRejected) throw new HttpError(500, err.message);
      throw err;
    }
    this.stats.accepted.profileSamples += profile.samples.length;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ samples: profile.samples.length }));
  }

  private async decompress(raw: Buffer): Promise<Buffer> {
    try {
      // maxOutputLength stops inflating as soon as the limit is passed: a gzip bomb costs at
      // most the limit in memory, never its full expansion.
      return await gunzip(raw, { maxOutputLength: this.options.maxBodyBytes });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new HttpError(413, `the decompressed body exceeds the limit of ${this.options.maxBodyBytes} bytes`);
      }
      throw new HttpError(400, `the body is not valid gzip: ${(err as Error).message}`);
    }
  }

  private fail(res: http.ServerResponse, format: Format | null, err: unknown): void {
    const e =
      err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`);
    this.stats.refused[e.status] = (this.stats.refused[e.status] ?? 0) + 1;
    if (e.status === 500) process.emitWarning(`stallscope collector: ${(err as Error)?.stack ?? String(err)}`);
    if (res.headersSent) {
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

/** Reads the body, refusing it as soon as it passes the limit. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new HttpError(413, `the body (${declared} bytes) exceeds the limit of ${limit} bytes`, true));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, `the body exceeds the limit of ${limit} bytes`, true));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.on('error', (err) => reject(new HttpError(400, `could not read the body: ${err.message}`, true)));
  });
}

function decode(body: Buffer, format: Format, signal: Signal, path: string): unknown {
  if (format === 'protobuf') {
    try {
      return signal.request.decode(body);
    } catch (err) {
      throw new HttpError(400, `invalid protobuf ${requestName(path)}: ${(err as Error).message}`);
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
