// Stack frames: from the inspector (blocking episodes) or from V8's Error.stack (sync calls),
// and the choice of the frame that belongs to the user's own code.
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { BLOCK_ORIGINS, CODE_COLUMN, CODE_FILE, CODE_FUNCTION, CODE_LINE, CODE_STACKTRACE, type BlockOrigin } from '../common/conventions';

export interface Frame {
  function: string;
  file: string;
  /** 1-based, as editors and stack traces show them. */
  line: number;
  column: number;
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

/** User code: not Node's own, not a dependency, not the agent. */
export function isUserFrame(f: Frame): boolean {
  return (
    f.file !== '' &&
    !f.file.startsWith('node:') &&
    !f.file.includes('/node_modules/') &&
    !f.file.includes('\\node_modules\\') &&
    !f.file.startsWith(AGENT_DIR) &&
    f.file !== 'native'
  );
}

const isTelemetryFrame = (f: Frame) => f.file.startsWith(AGENT_DIR) || /[\\/]node_modules[\\/]@opentelemetry[\\/]/.test(f.file);
const isDependencyFrame = (f: Frame) => /[\\/]node_modules[\\/]/.test(f.file);

/**
 * Whose code a stack shows. User code anywhere makes it the app's; without any, the agent's or
 * OpenTelemetry's frames (an exporter serialising a batch on a timer) make it the telemetry's own.
 */
export function originOf(frames: Frame[]): BlockOrigin {
  if (frames.some(isUserFrame)) return BLOCK_ORIGINS.app;
  if (frames.some(isTelemetryFrame)) return BLOCK_ORIGINS.telemetry;
  if (frames.some(isDependencyFrame)) return BLOCK_ORIGINS.dependency;
  return BLOCK_ORIGINS.runtime;
}

const V8_FRAME = /^\s*at (?:(.+?) \()?(.+?):(\d+):(\d+)\)?$/;

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

/** The first frame of user code, or the innermost frame when no user code is on the stack. */
export function topUserFrame(frames: Frame[]): Frame | undefined {
  return frames.find(isUserFrame) ?? frames[0];
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

/** code.* attributes for the top user frame (or the top frame when no user code is on the stack). */
export function codeAttributes(frames: Frame[]): Record<string, string | number> {
  const top = topUserFrame(frames);
  const attrs: Record<string, string | number> = { [CODE_STACKTRACE]: formatStack(frames.slice(0, MAX_FRAMES)) };
  if (top) {
    attrs[CODE_FUNCTION] = top.function || '<anonymous>';
    attrs[CODE_FILE] = top.file;
    attrs[CODE_LINE] = top.line;
    attrs[CODE_COLUMN] = top.column;
  }
  return attrs;
}
