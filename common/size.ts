// Byte sizes as people write them ("256MiB", "1GiB", "512M"): binary units either way, since
// memory is counted in them.

const UNIT_BYTES: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i;

/** Bytes for a size string, or an Error whose message says what is accepted. */
export function parseSize(text: string): number | Error {
  const match = SIZE_RE.exec(text.trim());
  if (!match) return new Error(`"${text}" is not a size; use a number and a unit (KiB, MiB, GiB), e.g. 256MiB`);
  return Math.floor(Number(match[1]) * UNIT_BYTES[(match[2] || 'b').toLowerCase()]);
}

/** A byte count for messages: whole or one-decimal MiB from 1 MiB up, bytes below. */
export function formatSize(n: number): string {
  const mib = n / 1024 ** 2;
  if (mib < 1) return `${n} bytes`;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}
