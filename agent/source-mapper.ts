// The main thread's side of source maps: a bounded cache of decoded maps, one per generated file,
// each asked once of the watchdog thread, which reads and decodes it (source-maps.ts) off the
// app's thread. Looking a frame up is then a binary search. A span whose frames are in a file not
// looked at yet waits for that answer before it is recorded; everything else is mapped at once.
import { findSourceMap } from 'node:module';
import { fileOf, framesOf, isMappable, type Frame } from './stack';
import { lookup, tableBytes, type MapLoad, type MapProblem, type MapTable, type OriginalPosition } from './source-maps';

interface Locator {
  find(line: number, column: number): OriginalPosition | undefined;
  bytes: number;
}

export interface SourceMapperOptions {
  /** Asks for the map of `file`; the answer comes back through `loaded()`. */
  ask: (file: string) => void;
  /** A map that cannot be used, told once per file. */
  unusable: (file: string, problem: MapProblem, detail: string) => void;
  /** Decoded maps kept at most, in bytes. */
  maxBytes?: number;
}

/** 64 MiB of decoded maps: a 5 MB bundle map takes about 6. */
const MAX_BYTES = 64 * 1024 * 1024;
/** Files remembered at most (with a map or without). */
const MAX_FILES = 10_000;
/** An answer this late counts as no map: a span is never held back longer. */
const ANSWER_TIMEOUT_MS = 10_000;
/** Spans held back at most while their maps load; past this they are recorded unmapped. */
const MAX_WAITING = 1000;
/** Lock creation stacks whose files are looked at ahead of their first use (see prefetch). */
const PREFETCH_STACKS = 200;

const tableLocator = (t: MapTable): Locator => ({ find: (l, c) => lookup(t, l, c), bytes: tableBytes(t) });

/**
 * Node's own map of a file, which it keeps, when source maps are on, for code a loader produced
 * in memory (tsx): asked at each lookup until there is one, since a file can be looked at before
 * its module is loaded (its map known to Node only then).
 */
function nodeLocator(file: string): Locator {
  let map: ReturnType<typeof findSourceMap> | undefined;
  return {
    find(line, column) {
      if (!map) {
        if ((process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled === false) return undefined;
        map = findSourceMap(file);
        if (!map) return undefined;
      }
      const e = map.findEntry(line - 1, column - 1) as {
        originalSource?: string;
        originalLine?: number;
        originalColumn?: number;
      };
      if (!e?.originalSource || e.originalLine === undefined || e.originalColumn === undefined) return undefined;
      return { file: fileOf(e.originalSource), line: e.originalLine + 1, column: e.originalColumn + 1 };
    },
    bytes: 0, // kept by Node whatever happens here
  };
}

export class SourceMapper {
  /** Oldest use first; null: the file has no usable map. */
  private readonly known = new Map<string, Locator | null>();
  private bytes = 0;
  private readonly asked = new Map<string, NodeJS.Timeout>();
  private waiters: Array<{ files: Set<string>; done: () => void }> = [];
  private prefetchLeft = PREFETCH_STACKS;
  private readonly prefetching: Array<{ stack?: string }> = [];

  constructor(private readonly options: SourceMapperOptions) {}

  /** The frames at their source positions, as far as the maps are known now; the rest are asked for. */
  map(frames: Frame[]): Frame[] {
    return frames.map((f) => {
      if (f.generated || !isMappable(f.file)) return f;
      const loc = this.locator(f.file);
      const pos = loc?.find(f.line, f.column);
      if (!pos?.file) return f;
      return {
        function: f.function,
        file: pos.file,
        line: pos.line,
        column: pos.column,
        generated: { file: f.file, line: f.line, column: f.column },
      };
    });
  }

  /** Calls `done` once the maps of every file in `frames` are known: at once when they are. */
  whenReady(frames: Frame[], done: () => void): void {
    const files = new Set<string>();
    for (const f of frames) if (!f.generated && isMappable(f.file) && !this.known.has(f.file)) files.add(f.file);
    if (files.size === 0 || this.waiters.length >= MAX_WAITING) return done();
    for (const file of files) this.ask(file);
    this.waiters.push({ files, done });
  }

  /** The answer about `file`'s map. */
  loaded(file: string, load: MapLoad): void {
    const timer = this.asked.get(file);
    if (!timer) return; // given up on already
    clearTimeout(timer);
    this.asked.delete(file);
    let loc: Locator | null = null;
    if ('table' in load) loc = tableLocator(load.table);
    else if ('problem' in load) this.options.unusable(file, load.problem, load.detail);
    // No map on disk: the code may have come from a loader (tsx) that gave Node the map.
    else loc = nodeLocator(file);
    this.remember(file, loc);
    this.release(file);
  }

  /**
   * Looks at the file of a lock's creation site ahead of its first use, which names the lock
   * synchronously: by then its map is usually known. Done a turn later, off the caller's path,
   * and for the first few hundred locks only (locks made per request share a few sites).
   */
  prefetch(holder: { stack?: string }): void {
    if (this.prefetchLeft <= 0) return;
    this.prefetchLeft--;
    if (this.prefetching.push(holder) > 1) return;
    setImmediate(() => {
      const holders = this.prefetching.splice(0);
      for (const h of holders)
        for (const f of framesOf(h)) if (isMappable(f.file) && !this.known.has(f.file)) this.ask(f.file);
    }).unref();
  }

  /** Asks for the map of a file expected on the app's stacks, ahead of the first one. */
  lookAt(file: string): void {
    if (!this.known.has(file)) this.ask(file);
  }

  /** Resolves once no span waits for a map, or after `ms`, when those left are recorded unmapped. */
  async settle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.waiters.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const file of [...this.asked.keys()]) this.giveUp(file);
  }

  private locator(file: string): Locator | null | undefined {
    const loc = this.known.get(file);
    if (loc === undefined) {
      this.ask(file);
      return undefined;
    }
    // Most recently used last, so that the bound drops the maps not used for longest.
    this.known.delete(file);
    this.known.set(file, loc);
    return loc;
  }

  private ask(file: string): void {
    if (this.asked.has(file)) return;
    const timer = setTimeout(() => this.giveUp(file), ANSWER_TIMEOUT_MS);
    timer.unref();
    this.asked.set(file, timer);
    this.options.ask(file);
  }

  private giveUp(file: string): void {
    clearTimeout(this.asked.get(file));
    this.asked.delete(file);
    this.remember(file, null);
    this.release(file);
  }

  private remember(file: string, loc: Locator | null): void {
    this.known.set(file, loc);
    this.bytes += loc?.bytes ?? 0;
    const max = this.options.maxBytes ?? MAX_BYTES;
    for (const [f, l] of this.known) {
      if (this.bytes <= max && this.known.size <= MAX_FILES) break;
      if (f === file) continue;
      this.known.delete(f);
      this.bytes -= l?.bytes ?? 0;
    }
  }

  private release(file: string): void {
    const ready: Array<() => void> = [];
    this.waiters = this.waiters.filter((w) => {
      w.files.delete(file);
      if (w.files.size > 0) return true;
      ready.push(w.done);
      return false;
    });
    for (const done of ready) done();
  }
}

let active: SourceMapper | undefined;

/** The running agent's mapper; none when it is off (then positions stay as generated). */
export function activeSourceMapper(): SourceMapper | undefined {
  return active;
}

export function setActiveSourceMapper(mapper: SourceMapper | undefined): void {
  active = mapper;
}
