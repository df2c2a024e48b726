// Stack frames: from the inspector (blocking episodes) or from V8's Error.stack (sync calls),
// and the choice of the frame that belongs to the user's own code. Frames are read at their
// generated positions and mapped to the source the user wrote by source-mapper.ts; whose code a
// frame is (the app's, a dependency's) is decided by its original path.
import { fileURLToPath } from 'node:url';
import { dirname, isAbsolute, relative } from 'node:path';
import {
  BLOCK_ORIGINS,
  CODE_COLUMN,
  CODE_FILE,
  CODE_FUNCTION,
  CODE_GENERATED_COLUMN,
  CODE_GENERATED_FILE,
  CODE_GENERATED_LINE,
  CODE_GENERATED_STACKTRACE,
  CODE_LINE,
  CODE_STACKTRACE,
  type BlockOrigin,
} from '../common/conventions';

export interface Position {
  file: string;
  /** 1-based, as editors and stack traces show them. */
  line: number;
  column: number;
}

export interface Frame extends Position {
  function: string;
  /** Where it ran, when a source map moved `file`, `line` and `column` to the original source. */
  generated?: Position;
}

const AGENT_DIR = dirname(__filename);
const MAX_FRAMES = 30;

export function fileOf(url: string): string {
  if (url.startsWith('file://')) {
    try {
      return fileURLToPath(url);
    } catch {
      return url;
    }
  }
  return url;
}

const isNodeFrame = (f: Frame) => f.file === '' || f.file.startsWith('node:') || f.file === 'native';
const isDependencyFrame = (f: Frame) => /[\\/]node_modules[\\/]/.test(f.file);
const isAgentFrame = (f: Frame) => f.file.startsWith(AGENT_DIR);
const isTelemetryFrame = (f: Frame) => isAgentFrame(f) || /[\\/]node_modules[\\/]@opentelemetry[\\/]/.test(f.file);
/** Used by OpenTelemetry's exporters, and on their stacks. */
const isSerializerFrame = (f: Frame) => /[\\/]node_modules[\\/]@?protobufjs[\\/]/.test(f.file);

/**
 * Worth looking for a source map: the app's own files. Node's, the agent's, and dependencies'
 * (their maps point into sources npm packages rarely ship) keep their positions; a bundle of the
 * app and its dependencies is the app's file, and its map says which parts came from packages.
 */
export function isMappable(file: string): boolean {
  return isAbsolute(file) && !file.startsWith(AGENT_DIR) && !/[\\/]node_modules[\\/]/.test(file);
}

/** User code: not Node's own, not a dependency, not the agent. */
export function isUserFrame(f: Frame): boolean {
  return !isNodeFrame(f) && !isDependencyFrame(f) && !isAgentFrame(f);
}

/**
 * Whose code a stack shows. User code anywhere makes it the app's. Without any, it is the
 * telemetry's own (an exporter serialising a batch on its timer) only if nothing but the agent
 * and OpenTelemetry is there: instrumentations and the agent's wrappers also sit on the stacks of
 * the dependencies they wrap.
 */
export function originOf(frames: Frame[]): BlockOrigin {
  if (frames.some(isUserFrame)) return BLOCK_ORIGINS.app;
  const code = frames.filter((f) => !isNodeFrame(f));
  if (code.some(isTelemetryFrame) && code.every((f) => isTelemetryFrame(f) || isSerializerFrame(f)))
    return BLOCK_ORIGINS.telemetry;
  return code.length ? BLOCK_ORIGINS.dependency : BLOCK_ORIGINS.runtime;
}

/** Whose code one frame is (a loop profile's locations); the same rules as originOf, frame by frame. */
export function frameOrigin(f: Frame): BlockOrigin {
  if (isNodeFrame(f)) return BLOCK_ORIGINS.runtime;
  if (isTelemetryFrame(f) || isSerializerFrame(f)) return BLOCK_ORIGINS.telemetry;
  return isDependencyFrame(f) ? BLOCK_ORIGINS.dependency : BLOCK_ORIGINS.app;
}

// An awaiting async function's frame reads `at async fn (file:l:c)`, or `at async file:l:c`.
const V8_FRAME = /^\s*at (?:async )?(?:(.+?) \()?(.+?):(\d+):(\d+)\)?$/;

/** V8's own format, which Node (under --enable-source-maps) and packages such as source-map-support replace. */
const generatedFormat = (_err: Error, sites: NodeJS.CallSite[]) => sites.map((s) => `    at ${String(s)}`).join('\n');

/**
 * The frames of a captured stack, at their generated positions whatever formats Error.stack in
 * this process: V8 formats a captured stack when it is first read, through the
 * Error.prepareStackTrace in place then.
 */
export function framesOf(holder: { stack?: string }): Frame[] {
  const saved = Error.prepareStackTrace;
  let stack: string | undefined;
  try {
    Error.prepareStackTrace = generatedFormat;
    stack = holder.stack;
  } catch {
    stack = holder.stack; // an app that froze Error: its own format, parsed as far as it goes
  } finally {
    if (Error.prepareStackTrace !== saved) Error.prepareStackTrace = saved;
  }
  return parseV8Stack(stack ?? '');
}

/** Parses `err.stack` lines ("    at fn (file:line:col)"). */
export function parseV8Stack(stack: string): Frame[] {
  const frames: Frame[] = [];
  for (const line of stack.split('\n')) {
    const m = V8_FRAME.exec(line);
    if (!m) continue;
    frames.push({ function: m[1] ?? '', file: fileOf(m[2]), line: Number(m[3]), column: Number(m[4]) });
    if (frames.length >= MAX_FRAMES) break;
  }
  return frames;
}

export function formatStack(frames: Frame[]): string {
  return frames.map((f) => `    at ${f.function || '<anonymous>'} (${f.file}:${f.line}:${f.column})`).join('\n');
}

/**
 * The first frame of user code; without one, the first of a dependency (so that where a package
 * blocks does not depend on which builtin it was in at the pause), else the innermost.
 */
export function topUserFrame(frames: Frame[]): Frame | undefined {
  return frames.find(isUserFrame) ?? frames.find((f) => !isNodeFrame(f) && !isAgentFrame(f)) ?? frames[0];
}

/**
 * The caller's stack, above `skip`, captured but not formatted: V8 formats `stack` only when it
 * is read, so a stack that is never reported costs the capture alone.
 */
export function captureStack(skip: Function, limit: number): { stack?: string } {
  const holder: { stack?: string } = {};
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = limit;
  try {
    Error.captureStackTrace(holder, skip);
  } finally {
    Error.stackTraceLimit = saved;
  }
  return holder;
}

/**
 * code.* attributes for the top user frame (see topUserFrame), at its source position; where a
 * map moved it, the generated position alongside, so that a wrong map loses nothing.
 */
export function codeAttributes(frames: Frame[]): Record<string, string | number> {
  const top = topUserFrame(frames);
  const shown = frames.slice(0, MAX_FRAMES);
  const attrs: Record<string, string | number> = { [CODE_STACKTRACE]: formatStack(shown) };
  if (shown.some((f) => f.generated))
    attrs[CODE_GENERATED_STACKTRACE] = formatStack(shown.map((f) => ({ ...f, ...f.generated })));
  if (top) {
    attrs[CODE_FUNCTION] = top.function || '<anonymous>';
    attrs[CODE_FILE] = top.file;
    attrs[CODE_LINE] = top.line;
    attrs[CODE_COLUMN] = top.column;
    if (top.generated) {
      attrs[CODE_GENERATED_FILE] = top.generated.file;
      attrs[CODE_GENERATED_LINE] = top.generated.line;
      attrs[CODE_GENERATED_COLUMN] = top.generated.column;
    }
  }
  return attrs;
}

/** A position as `file:line`, the file relative to the working directory when inside it. */
export function siteName(p: Position): string {
  const file = isAbsolute(p.file) && p.file.startsWith(process.cwd()) ? relative(process.cwd(), p.file) : p.file;
  return `${file}:${p.line}`;
}
