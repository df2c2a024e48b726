// Recognises the spans the stallscope agent makes (by `stallscope.kind`) and says what each is
// about, so that ingest can index and roll them up for the dashboard: a blocking episode groups
// by the function that blocked, a sync call by its API and call site, a lock wait by its lock.
import {
  CODE_FILE,
  CODE_FUNCTION,
  CODE_LINE,
  KIND,
  KINDS,
  LOCK_NAME,
  POOL_NAME,
  SYNC_API,
  THREADPOOL_OP,
} from './conventions';
import type { AgentSpan, Attributes } from './types';

const text = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : '';

/** `fn (file:line)`, the way a blocking function or call site is shown and grouped. */
export function codeKey(attrs: Attributes): string {
  const file = text(attrs[CODE_FILE]);
  const where = file ? `${file}:${text(attrs[CODE_LINE])}` : 'unknown location';
  return `${text(attrs[CODE_FUNCTION]) || '<anonymous>'} (${where})`;
}

export function agentSpan(attrs: Attributes): AgentSpan | null {
  const kind = attrs[KIND];
  if (typeof kind !== 'string') return null;
  switch (kind) {
    case KINDS.loopBlock:
    case KINDS.nestedLoop:
      return { kind, key: codeKey(attrs) };
    case KINDS.syncCall:
      return { kind, key: `${text(attrs[SYNC_API])} at ${codeKey(attrs)}` };
    case KINDS.lockWait:
    case KINDS.lockHeld:
      return { kind, key: text(attrs[LOCK_NAME]) };
    case KINDS.threadpoolWait:
      return { kind, key: text(attrs[THREADPOOL_OP]) };
    case KINDS.poolTask:
      return { kind, key: text(attrs[POOL_NAME]) };
    default:
      return { kind, key: '' };
  }
}
