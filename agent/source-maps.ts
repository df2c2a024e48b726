// Source maps, read by the agent itself. Node maps Error.stack only under --enable-source-maps
// and never the inspector's frames, and its SourceMap keeps one object per mapping (about 40 MB
// of heap and 150 ms or more on the asking thread for a 5 MB map, bench:agent). Here a map is decoded once
// into two typed arrays, in slices that let the thread doing it (the watchdog's) keep polling,
// and handed to the main thread, where looking a position up is a binary search.
import { open, readFile, stat } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** A decoded map: what each generated position came from. */
export interface MapTable {
  /** Segments of generated line i (0-based) are lines[i] up to lines[i + 1]. */
  lines: Int32Array;
  /** Four numbers per segment: generated column, source index (-1: maps to nothing), original line, original column; 0-based. */
  segs: Int32Array;
  /** Absolute paths of the original files (a source that is not a file keeps its name as written). */
  sources: string[];
}

/** `missing`: the map named cannot be read; `invalid`: it is not a usable source map; `too-large`: over MAX_MAP_BYTES. */
export type MapProblem = 'missing' | 'invalid' | 'too-large';

export type MapLoad = { table: MapTable } | { problem: MapProblem; detail: string } | { none: true };

/** Maps (and generated files searched for one) beyond this are not read: 64 MiB. */
export const MAX_MAP_BYTES = 64 * 1024 * 1024;
/** The end of a generated file that is searched first for its sourceMappingURL comment. */
const TAIL_BYTES = 64 * 1024;
/** Work between two yields of the decoding thread, in milliseconds (the code runs cold: once per map). */
const SLICE_MS = 3;
/** Bytes of a map scanned between two yields. */
const SLICE_BYTES = 256 * 1024;

const BASE64 = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries())
  BASE64[c.charCodeAt(0)] = i;

export class InvalidMapError extends Error {}

/**
 * Decodes a v3 `mappings` string (base64 VLQ: fields relative to the previous segment, the
 * generated column restarting on every line). A generator so that a caller can yield between
 * slices of work; returns the table's arrays.
 */
export function* decodeMappings(
  mappings: string,
  sourceCount: number,
): Generator<void, { lines: Int32Array; segs: Int32Array }> {
  const len = mappings.length;
  let maxSegs = 1;
  let lineCount = 1;
  let sliceStart = performance.now();
  for (let i = 0; i < len; i++) {
    if ((i & 0xffff) === 0 && performance.now() - sliceStart > SLICE_MS) {
      yield;
      sliceStart = performance.now();
    }
    const c = mappings.charCodeAt(i);
    if (c === 44 /* , */) maxSegs++;
    else if (c === 59 /* ; */) {
      maxSegs++;
      lineCount++;
    }
  }
  const segs = new Int32Array(maxSegs * 4);
  const lines = new Int32Array(lineCount + 1);
  const fields = [0, 0, 0, 0, 0];
  let n = 0;
  let line = 0;
  let lineStart = 0;
  let unsorted = false;
  let col = 0;
  let src = 0;
  let origLine = 0;
  let origCol = 0;
  let i = 0;
  let work = 0;
  while (i < len) {
    if ((++work & 1023) === 0 && performance.now() - sliceStart > SLICE_MS) {
      yield;
      sliceStart = performance.now();
    }
    const c = mappings.charCodeAt(i);
    if (c === 59) {
      if (unsorted) sortLine(segs, lineStart, n);
      unsorted = false;
      lines[++line] = n;
      lineStart = n;
      col = 0;
      i++;
      continue;
    }
    if (c === 44) {
      i++;
      continue;
    }
    let count = 0;
    while (i < len) {
      const d = mappings.charCodeAt(i);
      if (d === 44 || d === 59) break;
      if (count === 5) throw new InvalidMapError(`a segment of line ${line + 1} has more than 5 fields`);
      let value = 0;
      let shift = 0;
      let digit: number;
      do {
        if (i >= len) throw new InvalidMapError('the mappings end inside a number');
        const ch = mappings.charCodeAt(i++);
        digit = ch < 128 ? BASE64[ch] : -1;
        if (digit < 0) throw new InvalidMapError(`"${mappings[i - 1]}" in the mappings is not base64`);
        if (shift > 25) throw new InvalidMapError('a number in the mappings is too large');
        value |= (digit & 31) << shift;
        shift += 5;
      } while (digit & 32);
      fields[count++] = value & 1 ? -(value >>> 1) : value >>> 1;
    }
    if (count !== 1 && count !== 4 && count !== 5)
      throw new InvalidMapError(`a segment of line ${line + 1} has ${count} fields`);
    const prevCol = col;
    col += fields[0];
    if (col < 0) throw new InvalidMapError('a position in the mappings is negative');
    if (col < prevCol) unsorted = true;
    const at = n * 4;
    segs[at] = col;
    if (count === 1) {
      segs[at + 1] = -1;
    } else {
      src += fields[1];
      origLine += fields[2];
      origCol += fields[3];
      if (src < 0 || src >= sourceCount) throw new InvalidMapError(`source index ${src} is out of range`);
      if (origLine < 0 || origCol < 0) throw new InvalidMapError('a position in the mappings is negative');
      segs[at + 1] = src;
      segs[at + 2] = origLine;
      segs[at + 3] = origCol;
    }
    n++;
  }
  if (unsorted) sortLine(segs, lineStart, n);
  lines[line + 1] = n;
  // Trailing lines without segments (a file ending in ';;') start where the last one ended.
  for (let l = line + 2; l < lines.length; l++) lines[l] = n;
  return { lines, segs: n * 4 === segs.length ? segs : segs.slice(0, n * 4) };
}

/** Generators may emit a line's segments out of column order; lookups need them in order. */
function sortLine(segs: Int32Array, from: number, to: number): void {
  const rows: number[][] = [];
  for (let k = from; k < to; k++) rows.push([segs[k * 4], segs[k * 4 + 1], segs[k * 4 + 2], segs[k * 4 + 3]]);
  rows.sort((a, b) => a[0] - b[0]);
  rows.forEach((r, k) => segs.set(r, (from + k) * 4));
}

export interface OriginalPosition {
  file: string;
  /** 1-based, as stack traces show them. */
  line: number;
  column: number;
}

/**
 * The original position of a generated one (1-based line and column): the last segment of that
 * line starting at or before the column, or its first when the column comes before any.
 */
export function lookup(t: MapTable, line: number, column: number): OriginalPosition | undefined {
  const l = line - 1;
  if (l < 0 || l + 1 >= t.lines.length) return undefined;
  let lo = t.lines[l];
  let hi = t.lines[l + 1] - 1;
  if (lo > hi) return undefined;
  const c = column - 1;
  let found = lo;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (t.segs[mid * 4] <= c) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  const src = t.segs[found * 4 + 1];
  if (src < 0) return undefined;
  return { file: t.sources[src], line: t.segs[found * 4 + 2] + 1, column: t.segs[found * 4 + 3] + 1 };
}

export function tableBytes(t: MapTable): number {
  return t.lines.byteLength + t.segs.byteLength + t.sources.reduce((sum, s) => sum + 2 * s.length + 32, 0);
}

const COMMENT = /(?:\/\/|\/\*)[#@][ \t]+sourceMappingURL=([^\s'"*]+)/g;

/** The URL of the last sourceMappingURL comment in `code`, as Node reads it. */
export function mapUrlOf(code: string): string | undefined {
  let url: string | undefined;
  for (const m of code.matchAll(COMMENT)) url = m[1];
  return url;
}

/**
 * Where an original file is, from a map's `sources` entry: relative to `sourceRoot`, then to the
 * map's own location. Webpack's `webpack://<name>/./src/x.ts` is taken relative to the working
 * directory (webpack's usual context).
 */
export function resolveSource(source: string, sourceRoot: string | undefined, mapUrl: string): string {
  const webpack = /^webpack:\/\/[^/]*\/(.*)$/.exec(source);
  if (webpack)
    return webpack[1].startsWith('/')
      ? webpack[1]
      : fileURLToPath(new URL(webpack[1], pathToFileURL(process.cwd() + '/')));
  let s = source;
  if (sourceRoot) s = sourceRoot.endsWith('/') || s.startsWith('/') ? sourceRoot + s : `${sourceRoot}/${s}`;
  try {
    const url = new URL(s, mapUrl);
    return url.protocol === 'file:' ? fileURLToPath(url) : source;
  } catch {
    return source;
  }
}

interface MapFields {
  version?: unknown;
  sources?: unknown;
  sourceRoot?: unknown;
  mappings?: unknown;
  sections?: unknown;
}
const WANTED = new Set(['version', 'sources', 'sourceRoot', 'mappings', 'sections']);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The top-level fields of a map that locating positions needs, read from its bytes. A map's bulk
 * is usually `sourcesContent` (the original code); skipping it rather than JSON.parse-ing the
 * whole text saves most of the time and all of that memory. Yields between slices of the scan.
 */
export function* mapFields(buf: Buffer): Generator<void, MapFields> {
  let i = 0;
  const fail = (what: string): never => {
    throw new InvalidMapError(`not JSON: ${what} at byte ${i}`);
  };
  const ws = () => {
    while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i++;
  };
  /** From the opening quote to just past the closing one. */
  const skipString = () => {
    for (let from = i + 1; ;) {
      const q = buf.indexOf(QUOTE, from);
      if (q < 0) fail('an unterminated string');
      let slashes = 0;
      while (buf[q - 1 - slashes] === BACKSLASH) slashes++;
      from = q + 1;
      if (slashes % 2 === 0) {
        i = from;
        return;
      }
    }
  };
  let scanned = 0;
  const out: MapFields = {};
  if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) i = 3; // a byte-order mark
  ws();
  if (buf[i++] !== 0x7b /* { */) fail('no object');
  for (;;) {
    ws();
    if (i >= buf.length) fail('the end');
    if (buf[i] === 0x7d /* } */) return out;
    if (buf[i] !== QUOTE) fail('no key');
    const keyStart = i;
    skipString();
    const key = JSON.parse(buf.toString('utf8', keyStart, i)) as string;
    ws();
    if (buf[i++] !== 0x3a /* : */) fail('no colon');
    ws();
    const start = i;
    if (buf[i] === QUOTE) skipString();
    else if (buf[i] === 0x5b /* [ */ || buf[i] === 0x7b) {
      let depth = 0;
      do {
        const c = buf[i];
        if (c === undefined) fail('the end');
        if (c === QUOTE) {
          skipString();
          // sourcesContent is one value holding most of the map: yield inside it too.
          if (i - scanned > SLICE_BYTES) {
            scanned = i;
            yield;
          }
          continue;
        }
        if (c === 0x5b || c === 0x7b) depth++;
        else if (c === 0x5d || c === 0x7d) depth--;
        i++;
      } while (depth > 0);
    } else {
      while (i < buf.length && buf[i] !== 0x2c && buf[i] !== 0x7d && buf[i] > 0x20) i++;
      if (i === start) fail('no value');
    }
    if (WANTED.has(key)) out[key as keyof MapFields] = valueOf(key, buf, start, i);
    ws();
    if (i >= buf.length) fail('the end');
    if (buf[i] === 0x2c) i++;
    else if (buf[i] !== 0x7d) fail('no comma');
    if (i - scanned > SLICE_BYTES) {
      scanned = i;
      yield;
    }
  }
}

function valueOf(key: string, buf: Buffer, start: number, end: number): unknown {
  // Mappings are base64 and punctuation: read as bytes, unless a serializer escaped its slashes.
  if (key === 'mappings' && buf[start] === QUOTE && !buf.subarray(start, end).includes(BACKSLASH))
    return buf.toString('latin1', start + 1, end - 1);
  try {
    return JSON.parse(buf.toString('utf8', start, end));
  } catch (err) {
    throw new InvalidMapError(`"${key}" is not JSON (${(err as Error).message})`);
  }
}

/** Decodes a map's fields into a table, yielding between slices of the work. */
export function* tableOf(buf: Buffer, mapUrl: string): Generator<void, MapTable> {
  const m = yield* mapFields(buf);
  if (m.sections !== undefined) throw new InvalidMapError('an index map (sections), which stallscope does not read');
  if (m.version !== 3) throw new InvalidMapError(`version ${JSON.stringify(m.version)}, not 3`);
  if (typeof m.mappings !== 'string') throw new InvalidMapError('no "mappings" string');
  if (!Array.isArray(m.sources)) throw new InvalidMapError('no "sources" list');
  const root = typeof m.sourceRoot === 'string' ? m.sourceRoot : undefined;
  const sources: string[] = [];
  let sliceStart = performance.now();
  for (const src of m.sources) {
    sources.push(typeof src === 'string' ? resolveSource(src, root, mapUrl) : '');
    if (performance.now() - sliceStart > SLICE_MS) {
      yield;
      sliceStart = performance.now();
    }
  }
  const { lines, segs } = yield* decodeMappings(m.mappings, sources.length);
  return { lines, segs, sources };
}

/** The end of a file, where generators put the comment; the whole file when its last line is longer. */
async function mapUrlOfFile(file: string, size: number): Promise<string | undefined> {
  if (size <= TAIL_BYTES) return mapUrlOf(await readFile(file, 'utf8'));
  const fh = await open(file, 'r');
  let tail: string;
  try {
    const buf = Buffer.alloc(TAIL_BYTES);
    const { bytesRead } = await fh.read(buf, 0, TAIL_BYTES, size - TAIL_BYTES);
    tail = buf.toString('utf8', 0, bytesRead);
  } finally {
    await fh.close();
  }
  const url = mapUrlOf(tail);
  if (url !== undefined) return url;
  // One line longer than the tail: an inline map that starts before it.
  if (!/[\r\n]/.test(tail.trimEnd())) return mapUrlOf(await readFile(file, 'utf8'));
  return undefined;
}

function dataUrlPayload(url: string): Buffer {
  const comma = url.indexOf(',');
  if (comma < 0) throw new InvalidMapError('a data: URL without a comma');
  const meta = url.slice(5, comma);
  const data = url.slice(comma + 1);
  return /;base64$/i.test(meta) ? Buffer.from(data, 'base64') : Buffer.from(decodeURIComponent(data));
}

/**
 * The map of a generated file: named by its sourceMappingURL comment, inline (data: URL) or a
 * file beside it. A file without a comment has none; one whose map cannot be used says why.
 */
export async function loadMap(file: string): Promise<MapLoad> {
  let url: string | undefined;
  try {
    const size = (await stat(file)).size;
    if (size > MAX_MAP_BYTES) return { none: true };
    url = await mapUrlOfFile(file, size);
  } catch {
    return { none: true }; // not a file stallscope can read: nothing to map
  }
  if (url === undefined) return { none: true };
  const fileUrl = pathToFileURL(file).href;
  let bytes: Buffer;
  let mapUrl = fileUrl;
  try {
    if (url.startsWith('data:')) {
      bytes = dataUrlPayload(url);
    } else {
      const target = new URL(url, fileUrl);
      if (target.protocol !== 'file:') return { problem: 'missing', detail: `${url} is not a file` };
      const path = fileURLToPath(target);
      mapUrl = target.href;
      let size: number;
      try {
        size = (await stat(path)).size;
      } catch (err) {
        return {
          problem: 'missing',
          detail: `${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        };
      }
      if (size > MAX_MAP_BYTES) return { problem: 'too-large', detail: `${path} has ${size} bytes` };
      bytes = await readFile(path);
    }
  } catch (err) {
    return { problem: 'invalid', detail: `${url.slice(0, 80)}: ${(err as Error).message}` };
  }
  try {
    const decoding = tableOf(bytes, mapUrl);
    for (;;) {
      const step = decoding.next();
      if (step.done) return { table: step.value };
      await nextTurn();
    }
  } catch (err) {
    if (err instanceof InvalidMapError) return { problem: 'invalid', detail: err.message };
    throw err;
  }
}
