// Rows in COPY's text format: columns separated by tabs, rows by newlines, NULL as \N, and
// backslash, tab, newline and carriage return escaped. PostgreSQL's text cannot hold NUL, which
// SQLite's can: a NUL in a value is stored as U+FFFD.

const SPECIAL = /[\\\t\n\r\0]/;
const SPECIALS = /[\\\t\n\r\0]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\uFFFD' };

export type CopyValue = string | number | bigint | boolean | null | undefined;

export function copyField(v: CopyValue): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'string') return SPECIAL.test(v) ? v.replace(SPECIALS, (c) => ESCAPES[c]) : v;
  if (typeof v === 'boolean') return v ? 't' : 'f';
  return String(v);
}

/** One row, newline included. */
export function copyRow(values: CopyValue[]): string {
  let out = copyField(values[0]);
  for (let i = 1; i < values.length; i++) out += '\t' + copyField(values[i]);
  return out + '\n';
}

/** Text for a text[] parameter: NUL is stored as U+FFFD, as in COPY. */
export const pgText = (v: string): string => (v.includes('\0') ? v.replace(/\0/g, '\uFFFD') : v);
