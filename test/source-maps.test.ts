// Source maps as the agent reads them: tables decoded from real tsc and esbuild output agree with
// Node's own SourceMap; maps that cannot be used say why and leave positions as generated; the
// main thread's cache keeps to its bound; stacks are read at their generated positions whatever
// formats Error.stack in the process.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  decodeMappings,
  loadMap,
  lookup,
  mapUrlOf,
  resolveSource,
  type MapLoad,
  type MapTable,
} from '../agent/source-maps';
import { SourceMapper } from '../agent/source-mapper';
import { captureStack, framesOf } from '../agent/stack';
import { FIXTURES, tempDir } from './helpers';
import { buildService, markLine } from './agent-apps';

const SERVICE = join(FIXTURES, 'ts-service');
const BROKEN = join(FIXTURES, 'broken-maps');

function table(load: MapLoad): MapTable {
  assert.ok('table' in load, `expected a table, got ${JSON.stringify(load)}`);
  return load.table;
}

/** Node's reading of a position, where it falls on the same generated line (see lookup). */
function nodeReading(map: SourceMap, base: string, line: number, column: number): string | undefined {
  const e = map.findEntry(line - 1, column - 1) as { generatedLine?: number; originalSource?: string };
  if (e.generatedLine !== line - 1 || !e.originalSource) return undefined;
  const { originalLine, originalColumn } = e as { originalLine: number; originalColumn: number };
  const file = e.originalSource.startsWith('file:') ? fileURLToPath(e.originalSource) : resolve(base, e.originalSource);
  return `${file}:${originalLine + 1}:${originalColumn + 1}`;
}

describe('source maps as the agent decodes them', () => {
  let built: { dist: string; bundle: string };
  before(() => {
    built = buildService(tempDir('stallscope-maps-'));
  });

  it("reads tsc's external maps and esbuild's inline one exactly as Node's SourceMap does", async () => {
    const cases: Array<[string, () => unknown]> = [
      [join(built.dist, 'rank.js'), () => JSON.parse(readFileSync(join(built.dist, 'rank.js.map'), 'utf8'))],
      [join(built.dist, 'server.js'), () => JSON.parse(readFileSync(join(built.dist, 'server.js.map'), 'utf8'))],
      [
        built.bundle,
        () => {
          const url = mapUrlOf(readFileSync(built.bundle, 'utf8'))!;
          return JSON.parse(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64').toString('utf8'));
        },
      ],
    ];
    for (const [file, payload] of cases) {
      const t = table(await loadMap(file));
      const node = new SourceMap(payload() as ConstructorParameters<typeof SourceMap>[0]);
      const lines = readFileSync(file, 'utf8').split('\n');
      let compared = 0;
      for (let l = 1; l <= lines.length; l++) {
        for (let c = 1; c <= lines[l - 1].length; c += l % 7 === 0 ? 1 : 9) {
          const theirs = nodeReading(node, join(file, '..'), l, c);
          if (theirs === undefined) continue;
          const mine = lookup(t, l, c);
          assert.equal(mine && `${mine.file}:${mine.line}:${mine.column}`, theirs, `${file}:${l}:${c}`);
          compared++;
        }
      }
      assert.ok(compared > 100, `${compared} positions compared in ${file}`);
    }
  });

  it('maps the compiled and the bundled loop to the line written in rank.ts, and a bundled package to its own file', async () => {
    const spin = markLine('ts-service/src/rank.ts', 'spin');
    const compiled = readFileSync(join(built.dist, 'rank.js'), 'utf8').split('\n');
    const at = compiled.findIndex((l) => l.includes('MARK:spin'));
    assert.notEqual(at + 1, spin, 'the fixture must move lines when compiled');
    const tsc = lookup(table(await loadMap(join(built.dist, 'rank.js'))), at + 1, compiled[at].indexOf('while') + 1);
    assert.deepEqual(tsc && { file: tsc.file, line: tsc.line }, { file: join(SERVICE, 'src', 'rank.ts'), line: spin });

    const bundled = readFileSync(built.bundle, 'utf8').split('\n');
    const b = table(await loadMap(built.bundle));
    const find = (needle: string) => {
      const i = bundled.findIndex((l) => l.includes(needle));
      assert.ok(i >= 0, needle);
      return lookup(b, i + 1, bundled[i].indexOf(needle) + 1);
    };
    assert.deepEqual(find('b.score - a.score'), {
      file: join(SERVICE, 'src', 'rank.ts'),
      line: spin + 1,
      column:
        readFileSync(join(SERVICE, 'src', 'rank.ts'), 'utf8')
          .split('\n')
          [spin].indexOf('b.score') + 1,
    });
    assert.equal(
      find('compressAll = function')?.file,
      join(FIXTURES, 'node_modules', 'slow-dependency', 'index.js'),
      'a package inside the bundle maps to its file under node_modules',
    );
    assert.ok(
      b.sources.some((s) => /[\\/]node_modules[\\/]express[\\/]/.test(s)),
      'express is inside the bundle',
    );
  });

  it('says why a map cannot be used, and finds none where there is no comment', async () => {
    const load = (name: string) => loadMap(join(BROKEN, name));
    const nowhere = await load('nowhere.js');
    assert.equal('problem' in nowhere && nowhere.problem, 'missing');
    assert.match('detail' in nowhere ? nowhere.detail : '', /nowhere\.js\.map: ENOENT/);
    for (const [name, reason] of [
      ['garbage.js', /^not JSON: no object at byte 1$/],
      ['invalid.js', /^"!" in the mappings is not base64$/],
      ['inline.js', /^not JSON: no object at byte 1$/],
    ] as const) {
      const r = await load(name);
      assert.ok('problem' in r && r.problem === 'invalid', `${name}: ${JSON.stringify(r)}`);
      assert.match(r.detail, reason, name);
    }
    // A map that covers only its first line maps nothing else.
    const uncovered = table(await load('uncovered.js'));
    assert.equal(lookup(uncovered, 1, 1)?.file, join(BROKEN, 'uncovered.ts'));
    assert.equal(lookup(uncovered, markLine('broken-maps/uncovered.js', 'spin'), 3), undefined);
    assert.deepEqual(await load('app.js'), { none: true });
    assert.deepEqual(await load('no-such-file.js'), { none: true });
  });

  it('refuses maps it cannot read correctly rather than guessing', async () => {
    const dir = tempDir('stallscope-maps-');
    const withMap = (name: string, map: string) => {
      writeFileSync(join(dir, `${name}.js`), `x();\n//# sourceMappingURL=${name}.js.map\n`);
      writeFileSync(join(dir, `${name}.js.map`), map);
      return loadMap(join(dir, `${name}.js`));
    };
    const cases: Array<[string, string, RegExp]> = [
      ['v2', '{"version":2,"sources":[],"mappings":""}', /^version 2, not 3$/],
      ['sections', '{"version":3,"sections":[]}', /index map/],
      ['nosources', '{"version":3,"mappings":"AAAA"}', /no "sources" list/],
      ['range', '{"version":3,"sources":["a.ts"],"mappings":"ACAA"}', /source index 1 is out of range/],
      ['fields', '{"version":3,"sources":["a.ts"],"mappings":"AAA"}', /has 3 fields/],
      ['cut', '{"version":3,"sources":["a.ts"],"mappings":"AAAg"}', /end inside a number/],
      ['negative', '{"version":3,"sources":["a.ts"],"mappings":"AADA"}', /negative/],
      ['truncated', '{"version":3,"sources":["a.ts"],"mappings":"AAAA"', /^not JSON: the end at byte 49$/],
    ];
    for (const [name, map, reason] of cases) {
      const r = await withMap(name, map);
      assert.ok('problem' in r && r.problem === 'invalid', `${name}: ${JSON.stringify(r)}`);
      assert.match(r.detail, reason, name);
    }
    // An escaped slash (JSON allows "\/") and a sourceRoot are read as JSON says.
    const ok = table(
      await withMap('escaped', '{"version":3,"sourceRoot":"src","sources":["a.ts"],"mappings":"AAAA,GAAg\\/B"}'),
    );
    assert.deepEqual(lookup(ok, 1, 1), { file: join(dir, 'src', 'a.ts'), line: 1, column: 1 });
    assert.deepEqual(lookup(ok, 1, 4), { file: join(dir, 'src', 'a.ts'), line: 1, column: 1009 });
  });

  it('sorts segments written out of column order, and keeps lines without any', () => {
    const gen = decodeMappings('CAAA,DAAC;;AACA', 1);
    let step = gen.next();
    while (!step.done) step = gen.next();
    const t = { ...step.value, sources: ['/a.ts'] };
    assert.deepEqual(lookup(t, 1, 1), { file: '/a.ts', line: 1, column: 2 });
    assert.deepEqual(lookup(t, 1, 2), { file: '/a.ts', line: 1, column: 1 });
    assert.equal(lookup(t, 2, 1), undefined);
    // Fields run on in the order written, not the sorted one.
    assert.deepEqual(lookup(t, 3, 1), { file: '/a.ts', line: 2, column: 2 });
    assert.equal(lookup(t, 4, 1), undefined);
  });

  it("resolves sources against the map, its sourceRoot, and webpack's names against the working directory", () => {
    assert.equal(resolveSource('../src/a.ts', undefined, 'file:///app/dist/a.js.map'), '/app/src/a.ts');
    assert.equal(resolveSource('a.ts', '../lib', 'file:///app/dist/a.js.map'), '/app/lib/a.ts');
    assert.equal(resolveSource('/abs/b.ts', undefined, 'file:///app/dist/a.js.map'), '/abs/b.ts');
    assert.equal(
      resolveSource('webpack://shop/./src/c.ts', undefined, 'file:///x/y.map'),
      join(process.cwd(), 'src/c.ts'),
    );
    assert.equal(
      resolveSource('webpack://shop/webpack/bootstrap', undefined, 'file:///x/y.map'),
      join(process.cwd(), 'webpack/bootstrap'),
    );
  });

  it('keeps its cache of decoded maps within its bound, and tells each unusable map once', async () => {
    const asked: string[] = [];
    const unusable: string[] = [];
    const files = ['rank.js', 'server.js'].map((f) => join(built.dist, f));
    const rankBytes = ((await loadMap(files[0])) as { table: MapTable }).table;
    const mapper: SourceMapper = new SourceMapper({
      ask: (file) => {
        asked.push(file);
        void loadMap(file).then((l) => mapper.loaded(file, l));
      },
      unusable: (file, problem) => unusable.push(`${problem} ${file}`),
      // Room for one of the two tables only.
      maxBytes: rankBytes.lines.byteLength + rankBytes.segs.byteLength + 500,
    });
    // Lines the maps cover: the loop in rank.js, the lock in server.js.
    const frame = (file: string) => ({ function: 'f', file, line: file.endsWith('rank.js') ? 6 : 14, column: 7 });
    const ready = (file: string) => new Promise<void>((r) => mapper.whenReady([frame(file)], r));
    await ready(files[0]);
    assert.equal(mapper.map([frame(files[0])])[0].file, join(SERVICE, 'src', 'rank.ts'));
    await ready(files[1]);
    assert.ok(mapper.map([frame(files[1])])[0].generated);
    // The first table was dropped for the second: asking for it again reads it again.
    assert.equal(mapper.map([frame(files[0])])[0].generated, undefined);
    await ready(files[0]);
    assert.deepEqual(asked, [files[0], files[1], files[0]]);

    for (const name of ['nowhere.js', 'garbage.js', 'nowhere.js', 'garbage.js']) await ready(join(BROKEN, name));
    assert.deepEqual(unusable, [`missing ${join(BROKEN, 'nowhere.js')}`, `invalid ${join(BROKEN, 'garbage.js')}`]);
    // Node's frames, dependencies' and the agent's own are never looked at.
    const before = asked.length;
    const skipped = [frame('node:fs'), frame(join(FIXTURES, 'node_modules', 'slow-dependency', 'index.js'))];
    let now = false;
    mapper.whenReady(skipped, () => (now = true));
    assert.ok(now, 'nothing to wait for');
    assert.equal(asked.length, before);
  });

  it('holds a span back at most until settle(), when it is recorded unmapped', async () => {
    const mapper = new SourceMapper({ ask: () => undefined, unusable: () => undefined });
    let done = false;
    mapper.whenReady([{ function: 'f', file: join(built.dist, 'rank.js'), line: 1, column: 1 }], () => (done = true));
    assert.equal(done, false);
    await mapper.settle(30);
    assert.equal(done, true);
  });

  it('reads a stack at its generated positions when something else formats Error.stack', () => {
    const saved = Error.prepareStackTrace;
    // What --enable-source-maps and source-map-support do: their own text for every stack.
    Error.prepareStackTrace = () => 'formatted elsewhere';
    let frames;
    try {
      const here = () => captureStack(here, 5);
      frames = framesOf(here());
      assert.equal(new Error('x').stack, 'formatted elsewhere', 'the app keeps its formatter');
    } finally {
      Error.prepareStackTrace = saved;
    }
    assert.equal(frames[0].file, __filename);
    assert.ok(frames[0].line > 1 && frames[0].generated === undefined);
  });
});
