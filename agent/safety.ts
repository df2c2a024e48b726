// The agent runs inside other people's processes: nothing it does may throw into the host.
// Every failure is counted and named once on stderr (as a process warning), then ignored.
import type { Counter } from '@opentelemetry/api';
import { AGENT_COMPONENT } from '../common/conventions';

let errors: Counter | undefined;
const warned = new Set<string>();

export function setErrorCounter(counter: Counter): void {
  errors = counter;
}

/** Prints one warning line per distinct message. */
export function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  try {
    process.emitWarning(`stallscope: ${message}`, { code: 'STALLSCOPE' });
  } catch {
    // stderr itself failing leaves nothing to tell
  }
}

/** Records an internal failure in `where`, without ever throwing. */
export function report(where: string, err: unknown): void {
  try {
    errors?.add(1, { [AGENT_COMPONENT]: where });
  } catch {
    // the metrics SDK failing must not take the host with it
  }
  warnOnce(`${where} failed and was skipped: ${(err as Error)?.message ?? String(err)}`);
}
