// Configuration files (findings thresholds, alert rules) in YAML or JSON, read so that every
// mistake is reported with the file and the line it is on, and nothing half-read is ever used.
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { parseDuration } from '../common/time';

/** A mistake in a configuration file; the message starts with `file:line:`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read it: ${(err as Error).message}`);
  }
}

/** One parsed file: its root node, and errors that name a node's line. */
export class ConfigDoc {
  readonly root: Node | null;
  private readonly lines = new LineCounter();

  constructor(
    text: string,
    readonly file: string,
  ) {
    const doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true });
    if (doc.errors.length) {
      const e = doc.errors[0];
      throw new ConfigError(`${file}:${e.linePos?.[0].line ?? 1}: ${e.message.split('\n')[0]}`);
    }
    const root = doc.contents as Node | null;
    this.root = root === null || (isScalar(root) && root.value === null) ? null : root;
  }

  /** 1-based line where a node starts. */
  line(node: Node | null | undefined): number {
    return node?.range ? this.lines.linePos(node.range[0]).line : 1;
  }

  error(node: Node | null | undefined, reason: string): ConfigError {
    return new ConfigError(`${this.file}:${this.line(node)}: ${reason}`);
  }

  /** A mapping's entries as [key, key node, value node]; anything else is an error naming `what`. */
  entries(node: Node | null | undefined, what: string): Array<[string, Node, Node | null]> {
    if (!isMap(node)) throw this.error(node, `${what}: expected a mapping`);
    return node.items.map((pair) => {
      const key = pair.key as Node;
      return [isScalar(key) ? String(key.value) : '', key, (pair.value as Node | null) ?? null];
    });
  }

  items(node: Node | null | undefined, what: string): Node[] {
    if (!isSeq(node)) throw this.error(node, `${what}: expected a list`);
    return node.items as Node[];
  }

  scalar(node: Node | null | undefined): unknown {
    return isScalar(node) ? node.value : undefined;
  }

  string(node: Node | null, what: string): string {
    const v = this.scalar(node);
    if (typeof v !== 'string' || !v.trim()) throw this.error(node, `${what}: expected text`);
    return v;
  }

  /** Milliseconds from a duration with a unit. */
  duration(node: Node | null, what: string): number {
    const v = this.scalar(node);
    if (typeof v !== 'string') throw this.error(node, `${what}: expected a duration with a unit, e.g. 250ms or 2s`);
    const ms = parseDuration(v);
    if (ms instanceof Error) throw this.error(node, `${what}: ${ms.message}`);
    return ms;
  }

  /** Rejects keys not in `allowed`, naming the ones that are. */
  only(entries: Array<[string, Node, Node | null]>, allowed: readonly string[], what: string): void {
    for (const [key, keyNode] of entries) {
      if (!allowed.includes(key))
        throw this.error(keyNode, `${what}: unknown setting "${key}"; it takes ${allowed.join(', ')}`);
    }
  }
}
