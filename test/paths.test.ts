// Every file of the repository that a doc or a comment names exists: the docs and the code's
// notes point at the code as it is, not as it was.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from '../common/package-root';

const ROOT = packageRoot();
const TOP = ['agent', 'bench', 'cli', 'collector', 'common', 'dashboard', 'db', 'docs', 'examples', 'test'];
/** A repository path as docs and comments write them: from a top folder, with an extension. */
const PATH = new RegExp(
  `(?<![\\w./-])((?:${TOP.join('|')})/[\\w@./-]*\\.(?:ts|js|mjs|md|proto|py|json|yaml|css))\\b`,
  'g',
);
const SKIP = new Set(['node_modules', 'dist', '.node24', '.git', 'fixtures']);

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name) || name.startsWith('.')) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) yield* files(full);
    else if (/\.(ts|js|mjs|md|py)$/.test(name)) yield full;
  }
}

describe('paths named in docs and comments', () => {
  it('all exist', () => {
    const missing: string[] = [];
    const sources = [
      join(ROOT, 'README.md'),
      ...TOP.filter((t) => existsSync(join(ROOT, t))).flatMap((t) => [...files(join(ROOT, t))]),
    ];
    for (const file of sources) {
      const text = readFileSync(file, 'utf8');
      // In code, only comments count (strings name files the code makes, e.g. in temp folders).
      const notes = /\.md$/.test(file)
        ? text
        : (text.match(/\/\/[^\n]*|\/\*[\s\S]*?\*\/|^\s*#[^\n]*|"""[\s\S]*?"""/gm) ?? []).join('\n');
      for (const m of notes.matchAll(PATH)) {
        const named = m[1].replace(/[.,:;)]+$/, '');
        if (!existsSync(join(ROOT, named))) missing.push(`${relative(ROOT, file)}: ${named}`);
      }
    }
    assert.deepEqual(missing, []);
  });
});
