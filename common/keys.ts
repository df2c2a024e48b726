// Composite keys for maps and sets: one separator that no name, site or attribute JSON contains,
// so that ("a b", "c") and ("a", "b c") never collide, and one place that builds and splits them.
const SEP = '\u0000';

/** A key made of its parts, in order. */
export function key(...parts: Array<string | number | bigint>): string {
  return parts.join(SEP);
}

/** The parts of a key made by `key`. */
export function splitKey(k: string): string[] {
  return k.split(SEP);
}
