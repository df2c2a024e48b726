// `stallscope findings`: a running dashboard's findings in a terminal, or as JSON for scripts,
// with an exit status a CI pipeline can gate on.
import type { Finding, Severity } from '../common/types';
import { formatMs } from '../collector/findings/wording';

export interface FindingsOptions {
  url: string;
  service?: string;
  since: string;
  json: boolean;
  failOn?: Severity;
  token?: string;
}

/** Exit status when a finding reaches the --fail-on level. */
export const FAIL_EXIT = 3;
const RANK: Record<Severity, number> = { warning: 1, critical: 2 };
const WIDTH = 100;

function wrap(text: string, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > WIDTH) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

export function formatFinding(f: Finding): string {
  const where = f.location
    ? `${f.location.function ? `${f.location.function} ` : ''}${f.location.file}:${f.location.line}`
    : '';
  const head = `${f.severity.toUpperCase().padEnd(8)} ${f.service}  ${f.title}  [${f.kind}, ${formatMs(f.impactMs)} lost]`;
  const lines = [head];
  if (f.resource) lines.push(`         resource: ${f.resource}`);
  if (where) lines.push(`         at ${where}`);
  lines.push(wrap(f.detail, '         '));
  if (f.traceIds.length) lines.push(`         traces: ${f.traceIds.join(' ')}`);
  return lines.join('\n');
}

/** GET a JSON API of a running stallscope; errors say what to check. */
export async function getDashboardJson<T>(
  base: string,
  path: string,
  query: Record<string, string | undefined>,
  token?: string,
): Promise<T> {
  const url = new URL(path, base);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new Error(
      `cannot reach ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}; is 'stallscope serve' running there?`,
    );
  }
  const body = (await res.json().catch(() => undefined)) as T | { error?: string } | undefined;
  if (!res.ok || body === undefined)
    throw new Error(`${url.href}: ${res.status} ${(body as { error?: string } | undefined)?.error ?? res.statusText}`);
  return body as T;
}

/** Fetches and prints the findings; resolves with the exit status. */
export async function printFindings(o: FindingsOptions, write: (text: string) => void): Promise<number> {
  const body = await getDashboardJson<Finding[]>(
    o.url,
    '/api/findings',
    { since: o.since, service: o.service },
    o.token,
  );
  if (o.json) write(`${JSON.stringify(body, null, 2)}\n`);
  else if (body.length === 0) write(`No findings${o.service ? ` for ${o.service}` : ''} in the last ${o.since}.\n`);
  else write(`${body.map(formatFinding).join('\n\n')}\n`);
  const worst = Math.max(0, ...body.map((f) => RANK[f.severity] ?? 0));
  return o.failOn && worst >= RANK[o.failOn] ? FAIL_EXIT : 0;
}
