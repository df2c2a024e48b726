// Turns a decoded OTLP export request into storage rows. Protobuf (decoded by protobufjs) and
// JSON (parsed by JSON.parse) share the same field names in lowerCamelCase, so one walker serves
// both; they differ only in how ids, 64-bit integers and bytes are written, which `Encoding`
// hides. A request whose shape is wrong is rejected whole (BadRequest, HTTP 400); an item with a
// bad value (an invalid id, a missing timestamp) is dropped and counted, and the rest is stored.
import { agentSpan } from '../../common/agent-spans';
import type {
  AttrValue,
  Attributes,
  LogRow,
  MetricPointRow,
  MetricType,
  ResourceRow,
  SpanRow,
  WriteBatch,
} from '../../common/types';
import { key } from '../../common/keys';

export class BadRequest extends Error {}

/** Raised for one item's bad value; the item is rejected, the request goes on. */
class BadItem extends Error {}

type Obj = Record<string, unknown>;

interface Encoding {
  /** Lowercase hex of an id, '' when absent; throws BadItem when malformed. */
  id(value: unknown, bytes: 8 | 16, what: string): string;
  /** A 64-bit integer field; absent means 0. Throws BadItem when malformed. */
  int64(value: unknown, what: string): bigint;
  bytesToBase64(value: unknown): string;
}

interface LongLike {
  low: number;
  high: number;
}

function isLongLike(v: unknown): v is LongLike {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as LongLike).low === 'number' &&
    typeof (v as LongLike).high === 'number'
  );
}

function longToBigInt(v: LongLike, signed: boolean): bigint {
  const unsigned = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return signed ? BigInt.asIntN(64, unsigned) : unsigned;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** SQLite stores signed 64-bit integers: anything outside is refused as the item's fault. */
function inInt64(n: bigint, what: string): bigint {
  if (n < INT64_MIN || n > INT64_MAX) throw new BadItem(`${what} (${n}) is outside the 64-bit range`);
  return n;
}

const protoEncoding: Encoding = {
  id(value, bytes, what) {
    if (value === undefined || value === null) return '';
    const u8 = value as Uint8Array;
    if (u8.length === 0) return '';
    if (u8.length !== bytes) throw new BadItem(`${what} must be ${bytes} bytes, got ${u8.length}`);
    const hex = Buffer.from(u8.buffer, u8.byteOffset, u8.length).toString('hex');
    if (/^0+$/.test(hex)) throw new BadItem(`${what} is all zeros`);
    return hex;
  },
  int64(value, what) {
    if (value === undefined || value === null) return 0n;
    if (typeof value === 'number') return BigInt(value);
    if (isLongLike(value)) return inInt64(longToBigInt(value, !(value as { unsigned?: boolean }).unsigned), what);
    throw new BadItem(`${what} is not an integer`);
  },
  bytesToBase64(value) {
    const u8 = value as Uint8Array;
    return Buffer.from(u8.buffer, u8.byteOffset, u8.length).toString('base64');
  },
};

const HEX = /^[0-9a-fA-F]*$/;
const INT = /^-?\d+$/;

const jsonEncoding: Encoding = {
  id(value, bytes, what) {
    if (value === undefined || value === null || value === '') return '';
    if (typeof value !== 'string') throw new BadItem(`${what} must be a hex string`);
    if (value.length !== bytes * 2 || !HEX.test(value)) {
      throw new BadItem(`${what} must be ${bytes * 2} hex characters, got "${value.slice(0, 40)}"`);
    }
    if (/^0+$/.test(value)) throw new BadItem(`${what} is all zeros`);
    return value.toLowerCase();
  },
  int64(value, what) {
    if (value === undefined || value === null) return 0n;
    if (typeof value === 'string' && INT.test(value)) return inInt64(BigInt(value), what);
    if (typeof value === 'number' && Number.isInteger(value)) return inInt64(BigInt(value), what);
    throw new BadItem(`${what} must be an integer (a string or a number), got ${JSON.stringify(value)}`);
  },
  bytesToBase64(value) {
    return typeof value === 'string' ? value : '';
  },
};

// ---- small readers that name the path of whatever is wrong ----

function field(o: Obj, camel: string, snake: string): unknown {
  const v = o[camel];
  return v === undefined ? o[snake] : v;
}

/**
 * A oneof member or proto3 optional field. protobufjs puts defaults on the message prototype,
 * so only an own property tells that the field was actually sent.
 */
function present(o: Obj, camel: string, snake: string): unknown {
  if (Object.prototype.hasOwnProperty.call(o, camel)) return o[camel];
  if (Object.prototype.hasOwnProperty.call(o, snake)) return o[snake];
  return undefined;
}

/** An array of messages: every element must be an object. */
function arrayAt(o: Obj, camel: string, snake: string, path: string): Obj[] {
  const v = field(o, camel, snake);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new BadRequest(`${path}.${camel}: expected an array`);
  v.forEach((e, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e))
      throw new BadRequest(`${path}.${camel}[${i}]: expected an object`);
  });
  return v as Obj[];
}

/** An array of scalars (bucket counts, bounds). */
function scalarsAt(o: Obj, camel: string, snake: string, path: string): unknown[] {
  const v = field(o, camel, snake);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new BadRequest(`${path}.${camel}: expected an array`);
  return v;
}

function objectAt(o: Obj, camel: string, snake: string, path: string): Obj | undefined {
  const v = field(o, camel, snake);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new BadRequest(`${path}.${camel}: expected an object`);
  return v as Obj;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

/** Doubles in OTLP/JSON may also be the strings "NaN", "Infinity", "-Infinity". */
function double(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

const SPAN_KINDS: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
};
const STATUS_CODES: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };
const TEMPORALITIES: Record<string, number> = {
  AGGREGATION_TEMPORALITY_UNSPECIFIED: 0,
  AGGREGATION_TEMPORALITY_DELTA: 1,
  AGGREGATION_TEMPORALITY_CUMULATIVE: 2,
};

/** Enums are integers in OTLP/JSON; names are accepted too, as proto3 JSON allows. */
function enumValue(v: unknown, names: Record<string, number>): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v in names) return names[v];
  return 0;
}

// ---- attributes ----

/**
 * How deep AnyValues may nest (arrays and kvlists inside each other). Deeper values reject their
 * item, in both encodings: protobuf decodes messages up to 100 levels, which is more than 30
 * AnyValue levels anywhere in a request, so up to well past this limit both answer alike.
 */
export const MAX_ANY_VALUE_DEPTH = 20;

/** A value nested too deeply; the path to it is filled in on the way out. */
class TooDeep extends BadItem {
  readonly at: string[] = [];
}

function segment(key: string): string {
  return /^[\w.-]{1,40}$/.test(key)
    ? `.${key}`
    : `[${JSON.stringify(key.slice(0, 40))}${key.length > 40 ? '...' : ''}]`;
}

function tooDeep(err: unknown, at: string): never {
  if (err instanceof TooDeep) err.at.unshift(at);
  throw err;
}

/** The message of a value nested too deeply, naming where (under `root`). */
function deepMessage(err: TooDeep, root: string): string {
  return `${root}${err.at.join('')}: AnyValue nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`;
}

function anyValue(v: unknown, enc: Encoding, depth: number): AttrValue {
  if (v === undefined || v === null || typeof v !== 'object') return null;
  const o = v as Obj;
  let x: unknown;
  if ((x = present(o, 'stringValue', 'string_value')) !== undefined && x !== null) return String(x);
  if ((x = present(o, 'boolValue', 'bool_value')) !== undefined && x !== null) return Boolean(x);
  if ((x = present(o, 'intValue', 'int_value')) !== undefined && x !== null) {
    const n = enc.int64(x, 'intValue');
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
  }
  if ((x = present(o, 'doubleValue', 'double_value')) !== undefined && x !== null) {
    const d = double(x);
    return d === null || !Number.isFinite(d) ? String(x) : d;
  }
  const array = present(o, 'arrayValue', 'array_value');
  const kvlist = present(o, 'kvlistValue', 'kvlist_value');
  if ((array !== undefined && array !== null) || (kvlist !== undefined && kvlist !== null)) {
    if (depth >= MAX_ANY_VALUE_DEPTH) throw new TooDeep('too deep');
    if (array !== undefined && array !== null) {
      const values = (array as Obj).values;
      if (!Array.isArray(values)) return [];
      return values.map((e, i) => {
        try {
          return anyValue(e, enc, depth + 1);
        } catch (err) {
          return tooDeep(err, `[${i}]`);
        }
      });
    }
    const values = (kvlist as Obj).values;
    return Array.isArray(values) ? attributes(values as Obj[], enc, false, depth + 1) : {};
  }
  if ((x = present(o, 'bytesValue', 'bytes_value')) !== undefined && x !== null) return enc.bytesToBase64(x);
  return null;
}

function attributes(list: unknown, enc: Encoding, sorted: boolean, depth = 0): Attributes {
  const out: Attributes = {};
  if (!Array.isArray(list)) return out;
  // Entries that are not {key, value} objects carry nothing to keep.
  const valid = (list as unknown[]).filter(
    (kv): kv is Obj => typeof kv === 'object' && kv !== null && typeof (kv as Obj).key === 'string',
  );
  const kvs = sorted ? valid.sort((a, b) => ((a.key as string) < (b.key as string) ? -1 : 1)) : valid;
  for (const kv of kvs) {
    try {
      out[kv.key as string] = anyValue(kv.value, enc, depth);
    } catch (err) {
      tooDeep(err, segment(kv.key as string));
    }
  }
  return out;
}

/** Attributes of an item or a resource, a value nested too deeply named from `root`. */
function attributesAt(list: unknown, enc: Encoding, sorted: boolean, root: string): Attributes {
  try {
    return attributes(list, enc, sorted);
  } catch (err) {
    if (err instanceof TooDeep) throw new BadItem(deepMessage(err, root));
    throw err;
  }
}

// ---- resources and scopes ----

class ResourceTable {
  readonly rows: ResourceRow[] = [];
  private readonly index = new Map<string, number>();

  add(resource: Obj | undefined, enc: Encoding, path: string): number {
    const attrs = attributesAt(resource?.attributes, enc, true, `${path}.resource.attributes`);
    const name = attrs['service.name'];
    const service = typeof name === 'string' && name !== '' ? name : 'unknown_service';
    const json = JSON.stringify(attrs);
    const id = key(service, json);
    let i = this.index.get(id);
    if (i === undefined) {
      i = this.rows.push({ service, attributes: json }) - 1;
      this.index.set(id, i);
    }
    return i;
  }
}

function scopeOf(o: Obj, path: string): { name: string | null; version: string | null } {
  const scope = objectAt(o, 'scope', 'scope', path);
  return { name: str(scope?.name), version: str(scope?.version) };
}

/** The outcome of normalizing one request: rows to store plus what was rejected and why. */
export interface Normalized {
  batch: WriteBatch;
  rejected: number;
  /** The first few rejection reasons, joined; empty when nothing was rejected. */
  errorMessage: string;
}

class Rejections {
  count = 0;
  private readonly messages: string[] = [];

  add(path: string, err: unknown): void {
    if (!(err instanceof BadItem)) throw err;
    this.count++;
    if (this.messages.length < 5) this.messages.push(`${path}: ${err.message}`);
  }

  message(noun: string): string {
    if (this.count === 0) return '';
    const more = this.count > this.messages.length ? ` (and ${this.count - this.messages.length} more)` : '';
    return `${this.count} ${noun} rejected: ${this.messages.join('; ')}${more}`;
  }
}

/** A bad value outside any single item (a resource attribute, say) spoils the whole request. */
function whole<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BadItem) throw new BadRequest(err.message);
    throw err;
  }
}

function rootOf(body: unknown): Obj {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BadRequest('the request body must be an object');
  }
  return body as Obj;
}

// ---- traces ----

export function normalizeTraces(body: unknown, format: 'json' | 'protobuf'): Normalized {
  const enc = format === 'json' ? jsonEncoding : protoEncoding;
  const resources = new ResourceTable();
  const spans: SpanRow[] = [];
  const rejections = new Rejections();
  const rss = arrayAt(rootOf(body), 'resourceSpans', 'resource_spans', 'request');
  rss.forEach((rs, i) => {
    const rsPath = `resourceSpans[${i}]`;
    const resource = whole(() => resources.add(objectAt(rs, 'resource', 'resource', rsPath), enc, rsPath));
    arrayAt(rs, 'scopeSpans', 'scope_spans', rsPath).forEach((ss, j) => {
      const ssPath = `${rsPath}.scopeSpans[${j}]`;
      const scope = scopeOf(ss, ssPath);
      arrayAt(ss, 'spans', 'spans', ssPath).forEach((span, k) => {
        const path = `${ssPath}.spans[${k}]`;
        try {
          spans.push(spanRow(span, enc, resource, scope, path));
        } catch (err) {
          rejections.add(path, err);
        }
      });
    });
  });
  return {
    batch: { resources: resources.rows, spans, points: [], logs: [] },
    rejected: rejections.count,
    errorMessage: rejections.message('spans'),
  };
}

function spanRow(
  s: Obj,
  enc: Encoding,
  resource: number,
  scope: { name: string | null; version: string | null },
  path: string,
): SpanRow {
  const traceId = enc.id(field(s, 'traceId', 'trace_id'), 16, 'traceId');
  const spanId = enc.id(field(s, 'spanId', 'span_id'), 8, 'spanId');
  if (!traceId) throw new BadItem('traceId is missing');
  if (!spanId) throw new BadItem('spanId is missing');
  const parent = enc.id(field(s, 'parentSpanId', 'parent_span_id'), 8, 'parentSpanId');
  const startNs = enc.int64(field(s, 'startTimeUnixNano', 'start_time_unix_nano'), 'startTimeUnixNano');
  const endNs = enc.int64(field(s, 'endTimeUnixNano', 'end_time_unix_nano'), 'endTimeUnixNano');
  if (startNs < 0n) throw new BadItem(`startTimeUnixNano is negative (${startNs})`);
  if (startNs === 0n) throw new BadItem('startTimeUnixNano is missing');
  if (endNs < startNs) throw new BadItem('endTimeUnixNano is before startTimeUnixNano');
  const status = objectAt(s, 'status', 'status', path);
  const events = arrayAt(s, 'events', 'events', path);
  const links = arrayAt(s, 'links', 'links', path);
  const attrs = attributesAt(s.attributes, enc, false, 'attributes');
  return {
    traceId,
    spanId,
    parentSpanId: parent || null,
    traceState: str(field(s, 'traceState', 'trace_state')),
    flags: typeof s.flags === 'number' ? s.flags : 0,
    name: typeof s.name === 'string' ? s.name : '',
    kind: enumValue(s.kind, SPAN_KINDS),
    startNs,
    endNs,
    statusCode: status ? enumValue(status.code, STATUS_CODES) : 0,
    statusMessage: status ? str(status.message) : null,
    attributes: JSON.stringify(attrs),
    events: events.length
      ? JSON.stringify(
          events.map((e, i) => ({
            timeUnixNano: enc.int64(field(e, 'timeUnixNano', 'time_unix_nano'), 'event timeUnixNano').toString(),
            name: typeof e.name === 'string' ? e.name : '',
            attributes: attributesAt(e.attributes, enc, false, `events[${i}].attributes`),
          })),
        )
      : null,
    links: links.length
      ? JSON.stringify(
          links.map((l, i) => ({
            traceId: enc.id(field(l, 'traceId', 'trace_id'), 16, 'link traceId'),
            spanId: enc.id(field(l, 'spanId', 'span_id'), 8, 'link spanId'),
            traceState: str(field(l, 'traceState', 'trace_state')),
            attributes: attributesAt(l.attributes, enc, false, `links[${i}].attributes`),
          })),
        )
      : null,
    resource,
    scopeName: scope.name,
    scopeVersion: scope.version,
    agent: agentSpan(attrs),
  };
}

// ---- metrics ----

const METRIC_TYPES: Array<[MetricType, string, string]> = [
  ['gauge', 'gauge', 'gauge'],
  ['sum', 'sum', 'sum'],
  ['histogram', 'histogram', 'histogram'],
  ['exponential_histogram', 'exponentialHistogram', 'exponential_histogram'],
  ['summary', 'summary', 'summary'],
];

export function normalizeMetrics(body: unknown, format: 'json' | 'protobuf'): Normalized {
  const enc = format === 'json' ? jsonEncoding : protoEncoding;
  const resources = new ResourceTable();
  const points: MetricPointRow[] = [];
  const rejections = new Rejections();
  arrayAt(rootOf(body), 'resourceMetrics', 'resource_metrics', 'request').forEach((rm, i) => {
    const rmPath = `resourceMetrics[${i}]`;
    const resource = whole(() => resources.add(objectAt(rm, 'resource', 'resource', rmPath), enc, rmPath));
    arrayAt(rm, 'scopeMetrics', 'scope_metrics', rmPath).forEach((sm, j) => {
      const smPath = `${rmPath}.scopeMetrics[${j}]`;
      const scope = scopeOf(sm, smPath);
      arrayAt(sm, 'metrics', 'metrics', smPath).forEach((metric, k) => {
        const path = `${smPath}.metrics[${k}]`;
        const name = str(metric?.name);
        const found = METRIC_TYPES.map(([t, camel, snake]) => [t, objectAt(metric, camel, snake, path)] as const).find(
          ([, d]) => d,
        );
        if (!name || !found) {
          // A metric with no name or no data cannot be stored; count its points as rejected.
          rejections.add(
            path,
            new BadItem(name ? 'metric has no data (gauge, sum, histogram...)' : 'metric name is missing'),
          );
          return;
        }
        const [type, data] = found;
        const base = {
          name,
          description: str(metric.description),
          unit: str(metric.unit),
          type,
          temporality: enumValue(field(data!, 'aggregationTemporality', 'aggregation_temporality'), TEMPORALITIES),
          monotonic: field(data!, 'isMonotonic', 'is_monotonic') === true,
          resource,
          scopeName: scope.name,
        };
        arrayAt(data!, 'dataPoints', 'data_points', `${path}.${type}`).forEach((dp, n) => {
          const dpPath = `${path}.${type}.dataPoints[${n}]`;
          try {
            points.push(pointRow(base, dp, enc, dpPath));
          } catch (err) {
            rejections.add(dpPath, err);
          }
        });
      });
    });
  });
  return {
    batch: { resources: resources.rows, spans: [], points, logs: [] },
    rejected: rejections.count,
    errorMessage: rejections.message('data points'),
  };
}

type PointBase = Pick<
  MetricPointRow,
  'name' | 'description' | 'unit' | 'type' | 'temporality' | 'monotonic' | 'resource' | 'scopeName'
>;

function optionalDouble(o: Obj, camel: string, snake = camel): number | null {
  const v = present(o, camel, snake);
  return v === undefined || v === null ? null : double(v);
}

function countOf(v: unknown, enc: Encoding, what: string): number {
  return Number(enc.int64(v, what));
}

function pointRow(base: PointBase, dp: Obj, enc: Encoding, path: string): MetricPointRow {
  const timeNs = enc.int64(field(dp, 'timeUnixNano', 'time_unix_nano'), 'timeUnixNano');
  if (timeNs < 0n) throw new BadItem(`timeUnixNano is negative (${timeNs})`);
  if (timeNs === 0n) throw new BadItem('timeUnixNano is missing');
  const start = enc.int64(field(dp, 'startTimeUnixNano', 'start_time_unix_nano'), 'startTimeUnixNano');
  if (start < 0n) throw new BadItem(`startTimeUnixNano is negative (${start})`);
  const row: MetricPointRow = {
    ...base,
    startNs: start > 0n ? start : null,
    timeNs,
    value: null,
    count: null,
    sum: null,
    min: null,
    max: null,
    buckets: null,
    attributes: JSON.stringify(attributesAt(dp.attributes, enc, true, 'attributes')),
  };
  switch (base.type) {
    case 'gauge':
    case 'sum': {
      const asInt = present(dp, 'asInt', 'as_int');
      const asDouble = present(dp, 'asDouble', 'as_double');
      if (asInt !== undefined && asInt !== null) row.value = enc.int64(asInt, 'asInt');
      else if (asDouble !== undefined && asDouble !== null) row.value = double(asDouble);
      else throw new BadItem('the point has neither asInt nor asDouble');
      break;
    }
    case 'histogram': {
      const counts = scalarsAt(dp, 'bucketCounts', 'bucket_counts', path).map((c) => countOf(c, enc, 'bucketCounts'));
      const bounds = scalarsAt(dp, 'explicitBounds', 'explicit_bounds', path).map((b) => double(b) ?? NaN);
      if (counts.length > 0 && counts.length !== bounds.length + 1) {
        throw new BadItem(
          `bucketCounts has ${counts.length} entries; explicitBounds has ${bounds.length} (needs one fewer)`,
        );
      }
      row.count = countOf(dp.count, enc, 'count');
      row.sum = optionalDouble(dp, 'sum');
      row.min = optionalDouble(dp, 'min');
      row.max = optionalDouble(dp, 'max');
      row.buckets = JSON.stringify({ bounds, counts });
      break;
    }
    case 'exponential_histogram': {
      const side = (name: 'positive' | 'negative') => {
        const o = objectAt(dp, name, name, path) ?? {};
        return {
          offset: typeof o.offset === 'number' ? o.offset : 0,
          counts: scalarsAt(o, 'bucketCounts', 'bucket_counts', `${path}.${name}`).map((c) =>
            countOf(c, enc, 'bucketCounts'),
          ),
        };
      };
      row.count = countOf(dp.count, enc, 'count');
      row.sum = optionalDouble(dp, 'sum');
      row.min = optionalDouble(dp, 'min');
      row.max = optionalDouble(dp, 'max');
      row.buckets = JSON.stringify({
        scale: typeof dp.scale === 'number' ? dp.scale : 0,
        zeroCount: countOf(field(dp, 'zeroCount', 'zero_count'), enc, 'zeroCount'),
        zeroThreshold: optionalDouble(dp, 'zeroThreshold', 'zero_threshold') ?? 0,
        positive: side('positive'),
        negative: side('negative'),
      });
      break;
    }
    case 'summary': {
      const quantiles = arrayAt(dp, 'quantileValues', 'quantile_values', path).map((q) => [
        double(q.quantile),
        double(q.value),
      ]);
      row.count = countOf(dp.count, enc, 'count');
      row.sum = optionalDouble(dp, 'sum');
      row.buckets = JSON.stringify({ quantiles });
      break;
    }
  }
  return row;
}

// ---- logs ----

function bodyValue(v: unknown, enc: Encoding): AttrValue {
  try {
    return anyValue(v, enc, 0);
  } catch (err) {
    if (err instanceof TooDeep) throw new BadItem(deepMessage(err, 'body'));
    throw err;
  }
}

export function normalizeLogs(body: unknown, format: 'json' | 'protobuf'): Normalized {
  const enc = format === 'json' ? jsonEncoding : protoEncoding;
  const resources = new ResourceTable();
  const logs: LogRow[] = [];
  const rejections = new Rejections();
  arrayAt(rootOf(body), 'resourceLogs', 'resource_logs', 'request').forEach((rl, i) => {
    const rlPath = `resourceLogs[${i}]`;
    const resource = whole(() => resources.add(objectAt(rl, 'resource', 'resource', rlPath), enc, rlPath));
    arrayAt(rl, 'scopeLogs', 'scope_logs', rlPath).forEach((sl, j) => {
      const slPath = `${rlPath}.scopeLogs[${j}]`;
      const scope = scopeOf(sl, slPath);
      arrayAt(sl, 'logRecords', 'log_records', slPath).forEach((lr, k) => {
        const path = `${slPath}.logRecords[${k}]`;
        try {
          const time = enc.int64(field(lr, 'timeUnixNano', 'time_unix_nano'), 'timeUnixNano');
          const observed = enc.int64(
            field(lr, 'observedTimeUnixNano', 'observed_time_unix_nano'),
            'observedTimeUnixNano',
          );
          if (time < 0n) throw new BadItem(`timeUnixNano is negative (${time})`);
          if (observed < 0n) throw new BadItem(`observedTimeUnixNano is negative (${observed})`);
          if (time === 0n && observed === 0n) {
            throw new BadItem('neither timeUnixNano nor observedTimeUnixNano is set');
          }
          const body = lr.body === undefined || lr.body === null ? null : bodyValue(lr.body, enc);
          logs.push({
            timeNs: time > 0n ? time : observed,
            observedNs: observed > 0n ? observed : null,
            severityNumber:
              typeof field(lr, 'severityNumber', 'severity_number') === 'number'
                ? (field(lr, 'severityNumber', 'severity_number') as number)
                : 0,
            severityText: str(field(lr, 'severityText', 'severity_text')),
            body: body === null ? null : JSON.stringify(body),
            attributes: JSON.stringify(attributesAt(lr.attributes, enc, false, 'attributes')),
            traceId: enc.id(field(lr, 'traceId', 'trace_id'), 16, 'traceId') || null,
            spanId: enc.id(field(lr, 'spanId', 'span_id'), 8, 'spanId') || null,
            eventName: str(field(lr, 'eventName', 'event_name')),
            resource,
            scopeName: scope.name,
          });
        } catch (err) {
          rejections.add(path, err);
        }
      });
    });
  });
  return {
    batch: { resources: resources.rows, spans: [], points: [], logs },
    rejected: rejections.count,
    errorMessage: rejections.message('log records'),
  };
}
