// A V8 CPU profile (the inspector's Profiler.Profile) as a pprof profile.proto, encoded here
// without a protobuf library: the message is small and only written, never read. Runs on the
// watchdog thread. The shape follows docs/conventions.md ("Loop CPU profiles").
import { PROFILE_ORIGINS, PROFILE_TIMESTAMP_LABEL, type BlockOrigin } from '../common/conventions';
import { fileOf, frameOrigin, type Frame } from './stack';

export interface V8CallFrame {
  functionName: string;
  url: string;
  /** 0-based, as the inspector gives them. */
  lineNumber: number;
  columnNumber: number;
}

export interface V8Profile {
  nodes: Array<{ id: number; callFrame: V8CallFrame; children?: number[] }>;
  /** Microseconds on the monotonic clock (process.hrtime's). */
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface PprofOptions {
  /** Added to a monotonic time in nanoseconds, gives nanoseconds since the epoch. */
  epochOffsetNs: bigint;
  comments: string[];
}

export interface Pprof {
  /** The uncompressed profile.proto. */
  bytes: Uint8Array;
  /** Samples kept (the loop was busy). */
  samples: number;
  /** The mean interval between V8's samples, idle ones included. */
  periodNs: number;
}

/** V8's pseudo-frames for time outside JavaScript that is not the loop's work. */
const LEFT_OUT = new Set(['(idle)', '(program)']);
const ROOT = '(root)';

/** A growable buffer of protobuf wire format. */
class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** A non-negative integer below 2^53. */
  varint(v: number): void {
    this.room(10);
    while (v > 127) {
      this.buf[this.len++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  bigVarint(v: bigint): void {
    this.room(10);
    while (v > 127n) {
      this.buf[this.len++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  /** A varint field, left out when 0 as proto3 does. */
  uint(field: number, v: number | bigint): void {
    if (v === 0 || v === 0n) return;
    this.varint(field * 8);
    if (typeof v === 'bigint') this.bigVarint(v);
    else this.varint(v);
  }

  bytes(field: number, b: Uint8Array): void {
    this.varint(field * 8 + 2);
    this.varint(b.length);
    this.raw(b);
  }

  /** Fields already encoded. */
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  message(field: number, w: Writer): void {
    this.bytes(field, w.finish());
  }

  packed(field: number, values: number[]): void {
    if (!values.length) return;
    const w = new Writer();
    for (const v of values) w.varint(v);
    this.message(field, w);
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

const utf8 = new TextEncoder();

/**
 * The profile's busy samples, leaf first, each with its time; undefined when V8 recorded no
 * samples at all.
 */
export function toPprof(profile: V8Profile, options: PprofOptions): Pprof | undefined {
  const ids = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (!ids.length || deltas.length !== ids.length) return undefined;

  const strings = new Map<string, number>([['', 0]]);
  const str = (s: string) => {
    let i = strings.get(s);
    if (i === undefined) strings.set(s, (i = strings.size));
    return i;
  };
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const origins = Object.values(PROFILE_ORIGINS);
  const mappingIds = new Map<BlockOrigin, number>(origins.map((o, i) => [o, i + 1]));
  const functions = new Writer();
  const locations = new Writer();
  const locationIds = new Map<string, number>();

  /**
   * One call frame's location: V8's tree has a node per function and call path, and its line is
   * where the function starts (see docs/conventions.md), so a function has one location.
   */
  const locationOf = (cf: V8CallFrame): number => {
    const frame: Frame = {
      function: cf.functionName || '(anonymous)',
      file: fileOf(cf.url),
      line: Math.max(0, cf.lineNumber + 1),
      column: Math.max(0, cf.columnNumber + 1),
    };
    const key = `${frame.function}\0${frame.file}\0${frame.line}\0${frame.column}`;
    let id = locationIds.get(key);
    if (id !== undefined) return id;
    id = locationIds.size + 1;
    locationIds.set(key, id);
    const f = new Writer();
    f.uint(1, id);
    f.uint(2, str(frame.function));
    f.uint(3, str(frame.function));
    f.uint(4, str(frame.file));
    f.uint(5, frame.line);
    functions.message(5, f);
    const line = new Writer();
    line.uint(1, id);
    line.uint(2, frame.line);
    line.uint(3, frame.column);
    const l = new Writer();
    l.uint(1, id);
    l.uint(2, mappingIds.get(frameOrigin(frame))!);
    l.message(4, line);
    locations.message(4, l);
    return id;
  };

  // One stack per profile node, leaf first; nodes are shared by many samples.
  const stacks = new Map<number, number[] | null>();
  const stackOf = (id: number): number[] | null => {
    let s = stacks.get(id);
    if (s !== undefined) return s;
    const leaf = nodes.get(id);
    if (!leaf || LEFT_OUT.has(leaf.callFrame.functionName) || leaf.callFrame.functionName === ROOT) s = null;
    else {
      s = [];
      for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
        const cf = nodes.get(n)?.callFrame;
        if (!cf || (cf.functionName === ROOT && !parent.has(n))) break;
        s.push(locationOf(cf));
      }
    }
    stacks.set(id, s);
    return s;
  };

  // Times: V8 gives each sample's distance from the previous one (the first from startTime).
  const times = new Array<number>(ids.length);
  let t = profile.startTime;
  for (let i = 0; i < ids.length; i++) times[i] = t += deltas[i];
  const periodUs = ids.length > 1 ? (times[ids.length - 1] - times[0]) / (ids.length - 1) : deltas[0];
  const periodNs = Math.max(1, Math.round(periodUs * 1000));

  const samples = new Writer();
  const timestampKey = str(PROFILE_TIMESTAMP_LABEL);
  const nanoseconds = str('nanoseconds');
  let kept = 0;
  for (let i = 0; i < ids.length; i++) {
    const stack = stackOf(ids[i]);
    if (!stack) continue;
    kept++;
    const label = new Writer();
    label.uint(1, timestampKey);
    label.uint(3, BigInt(Math.round(times[i] * 1000)) + options.epochOffsetNs);
    label.uint(4, nanoseconds);
    const s = new Writer();
    s.packed(1, stack);
    s.packed(2, [1, periodNs]);
    s.message(3, label);
    samples.message(2, s);
  }

  const valueType = (type: string, unit: string) => {
    const w = new Writer();
    w.uint(1, str(type));
    w.uint(2, str(unit));
    return w;
  };
  const out = new Writer();
  out.message(1, valueType('samples', 'count'));
  out.message(1, valueType('cpu', 'nanoseconds'));
  out.raw(samples.finish());
  for (const origin of origins) {
    const m = new Writer();
    m.uint(1, mappingIds.get(origin)!);
    m.uint(5, str(origin));
    m.uint(7, 1); // has_functions
    m.uint(8, 1); // has_filenames
    m.uint(9, 1); // has_line_numbers
    out.message(3, m);
  }
  out.raw(locations.finish());
  out.raw(functions.finish());
  out.uint(9, BigInt(Math.round(profile.startTime * 1000)) + options.epochOffsetNs);
  out.uint(10, Math.round((profile.endTime - profile.startTime) * 1000));
  out.message(11, valueType('cpu', 'nanoseconds'));
  out.uint(12, periodNs);
  out.packed(13, options.comments.map(str));
  out.uint(14, str('cpu'));
  // Last, once every string is in it; the first entry is "".
  for (const text of strings.keys()) out.bytes(6, utf8.encode(text));
  return { bytes: out.finish(), samples: kept, periodNs };
}
