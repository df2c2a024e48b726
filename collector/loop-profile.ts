// What kept an event loop busy, from its CPU profile: the flame graph the dashboard draws, and the
// culprits a finding names. A culprit is the innermost frame of code someone can change (the
// app's or a dependency's) with what it called below it (JSON.stringify, a builtin) and the
// callers above it that lead to it from other code (lowdb's FileSync.write, json-server's router).
import { PROFILE_ORIGINS } from '../common/conventions';
import type { FlameNode, ProfileFrame } from '../common/types';
import { key } from '../common/keys';

/**
 * The stacks as one tree (root first), frames merged by function and file. Nodes under
 * `1/maxNodes` of the total are folded into their parent's self time, so that ten thousand
 * distinct stacks still draw as a readable graph and a small answer.
 */
export function flameTree(stacks: Array<{ frames: ProfileFrame[]; weightMs: number }>, maxNodes = 5000): FlameNode {
  const root: FlameNode = { name: 'all', file: '', line: 0, origin: '', totalMs: 0, selfMs: 0, children: [] };
  const index = new Map<FlameNode, Map<string, FlameNode>>();
  for (const s of stacks) {
    root.totalMs += s.weightMs;
    let node = root;
    for (const f of s.frames) {
      let kids = index.get(node);
      if (!kids) index.set(node, (kids = new Map()));
      const id = key(f.fn, f.file);
      let child = kids.get(id);
      if (!child) {
        child = { name: f.fn, file: f.file, line: f.line, origin: f.origin, totalMs: 0, selfMs: 0, children: [] };
        kids.set(id, child);
        node.children.push(child);
      }
      child.totalMs += s.weightMs;
      node = child;
    }
    node.selfMs += s.weightMs;
  }
  const min = root.totalMs / maxNodes;
  const prune = (n: FlameNode) => {
    const kept: FlameNode[] = [];
    for (const c of n.children) {
      if (c.totalMs < min) n.selfMs += c.totalMs;
      else {
        prune(c);
        kept.push(c);
      }
    }
    n.children = kept.sort((a, b) => b.totalMs - a.totalMs);
  };
  prune(root);
  return root;
}

const blamable = (f: ProfileFrame) => f.origin === PROFILE_ORIGINS.app || f.origin === PROFILE_ORIGINS.dependency;

/** The innermost frame of the app's or a dependency's code in a stack (root first), or -1. */
function culpritIndex(frames: readonly ProfileFrame[]): number {
  let i = frames.length - 1;
  while (i >= 0 && !blamable(frames[i])) i--;
  return i;
}

/** How a sampled stack is named where it is charged: `fn (file:line)` of its culprit, or null (telemetry, runtime). */
export function culpritOf(frames: readonly ProfileFrame[]): string | null {
  const i = culpritIndex(frames);
  return i < 0 ? null : `${frames[i].fn} (${frames[i].file}:${frames[i].line})`;
}

export interface Culprit {
  /** The innermost frame of the app's or a dependency's code. */
  frame: ProfileFrame;
  /** The runtime function it was in when sampled (JSON.stringify, a builtin), if any. */
  calls?: string;
  /** Up to two callers above it, in other files: how it was reached. */
  via: ProfileFrame[];
  ms: number;
  /** Of the sampled loop time. */
  share: number;
  /** Of `ms`, what a loop-blocked or sync-call finding at the same function counts already. */
  countedMs?: number;
}

/**
 * The functions that kept the loop busy, most time first. Stacks of only the agent's or
 * OpenTelemetry's own frames (and the runtime under them) are not the app's: they count in the
 * total, under nobody. Runtime-only stacks (garbage collection, Node's internals) likewise.
 */
export function loopCulprits(stacks: Array<{ frames: ProfileFrame[]; weightMs: number }>): {
  totalMs: number;
  telemetryMs: number;
  culprits: Culprit[];
} {
  let totalMs = 0;
  let telemetryMs = 0;
  const by = new Map<string, Culprit & { lines: Map<number, number>; callsMs: Map<string, number>; viaMs: number }>();
  for (const s of stacks) {
    totalMs += s.weightMs;
    const i = culpritIndex(s.frames);
    if (i < 0) {
      if (s.frames.some((f) => f.origin === PROFILE_ORIGINS.telemetry)) telemetryMs += s.weightMs;
      continue;
    }
    const frame = s.frames[i];
    // The runtime frame it was in: the next one in, if that is the runtime's (a builtin).
    const inner = s.frames[i + 1];
    const calls = inner && inner.origin === PROFILE_ORIGINS.runtime ? inner.fn : undefined;
    const via: ProfileFrame[] = [];
    for (let j = i - 1; j >= 0 && via.length < 2; j--) {
      const f = s.frames[j];
      if (!blamable(f)) continue;
      if (f.file !== (via[via.length - 1] ?? frame).file) via.push(f);
    }
    const id = key(frame.fn, frame.file);
    let c = by.get(id);
    if (!c) {
      c = { frame, via, ms: 0, share: 0, lines: new Map(), callsMs: new Map(), viaMs: 0 };
      by.set(id, c);
    }
    c.ms += s.weightMs;
    c.lines.set(frame.line, (c.lines.get(frame.line) ?? 0) + s.weightMs);
    if (calls) c.callsMs.set(calls, (c.callsMs.get(calls) ?? 0) + s.weightMs);
    // The path of the heaviest stack names how it is reached.
    if (s.weightMs > c.viaMs) [c.viaMs, c.via] = [s.weightMs, via];
  }
  const culprits = [...by.values()]
    .map((c): Culprit => {
      const line = [...c.lines].sort((a, b) => b[1] - a[1])[0][0];
      const calls = [...c.callsMs].sort((a, b) => b[1] - a[1])[0];
      return {
        frame: { ...c.frame, line },
        // Named only when most of the function's time was in that one runtime call.
        calls: calls && calls[1] >= c.ms / 2 ? calls[0] : undefined,
        via: c.via,
        ms: c.ms,
        share: totalMs ? c.ms / totalMs : 0,
      };
    })
    .sort((a, b) => b.ms - a.ms);
  return { totalMs, telemetryMs, culprits };
}

// `at async ...`: the frame of an async function awaiting, named as any other.
const STACK_LINE = /^\s*at (?:async )?(?:(.*?) \()?(.+?):(\d+)(?::\d+)?\)?$/;

/** Whose code a frame is, from its path alone (the agents say so themselves in profiles). */
function originOfPath(file: string): string {
  if (file === '' || file.startsWith('node:') || file === 'native' || !/[\\/]/.test(file))
    return PROFILE_ORIGINS.runtime;
  if (/[\\/]node_modules[\\/](@opentelemetry|@?protobufjs|stallscope)[\\/]/.test(file))
    return PROFILE_ORIGINS.telemetry;
  if (/[\\/](node_modules|site-packages)[\\/]/.test(file)) return PROFILE_ORIGINS.dependency;
  if (/[\\/]lib[\\/]python3\.\d+[\\/]/.test(file)) return PROFILE_ORIGINS.runtime;
  return PROFILE_ORIGINS.app;
}

/** A `code.stacktrace` (innermost first, `    at fn (file:line:col)`) as frames, root first. */
export function stackFrames(stacktrace: string): ProfileFrame[] {
  const frames: ProfileFrame[] = [];
  for (const line of stacktrace.split('\n')) {
    const m = STACK_LINE.exec(line);
    if (m) frames.push({ fn: m[1] || '(anonymous)', file: m[2], line: Number(m[3]), origin: originOfPath(m[2]) });
  }
  return frames.reverse();
}
