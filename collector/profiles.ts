// Loop CPU profiles in pprof form: decoded from what the agents post (docs/conventions.md, Loop
// CPU profiles) into stacks and timed samples for the store, and encoded again for download.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import zlib from 'node:zlib';
import protobuf from 'protobufjs';
import { PROFILE_ORIGINS, PROFILE_REQUESTED_HZ, PROFILE_TIMESTAMP_LABEL } from '../common/conventions';
import { packageRoot } from '../common/package-root';
import type { ProfileFrame, ProfileWrite } from '../common/types';

const root = protobuf.parse(readFileSync(join(packageRoot(), 'collector', 'proto', 'pprof.proto'), 'utf8'), {
  keepCase: false,
}).root;
const Profile = root.lookupType('stallscope.pprof.Profile');

/** Bounds on one profile: an agent sends a window of ~100 samples a second. */
export const PROFILE_LIMITS = { samples: 200_000, stacks: 20_000, depth: 512, stringBytes: 4096 };

/** A profile the collector cannot take: answered 400 with this message. */
export class BadProfile extends Error {}

type Long = { toNumber(): number; toString(): string } | number;
const num = (v: Long | undefined | null): number => (v === undefined || v === null ? 0 : Number(v.toString()));
const big = (v: Long | undefined | null): bigint => (v === undefined || v === null ? 0n : BigInt(v.toString()));

interface Decoded {
  sampleType?: Array<{ type?: Long; unit?: Long }>;
  sample?: Array<{ locationId?: Long[]; value?: Long[]; label?: Array<{ key?: Long; num?: Long }> }>;
  mapping?: Array<{ id?: Long; filename?: Long }>;
  location?: Array<{ id?: Long; mappingId?: Long; line?: Array<{ functionId?: Long; line?: Long }> }>;
  function?: Array<{ id?: Long; name?: Long; filename?: Long }>;
  stringTable?: string[];
  timeNanos?: Long;
  durationNanos?: Long;
  period?: Long;
  comment?: Long[];
}

/** A posted pprof file (gzip-compressed, or not) as stacks and timed samples. */
export function decodeProfile(body: Buffer): ProfileWrite {
  let raw = body;
  if (body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b) {
    try {
      raw = zlib.gunzipSync(body, { maxOutputLength: 64 * 1024 * 1024 });
    } catch (err) {
      throw new BadProfile(`the body is not a valid gzip stream: ${(err as Error).message}`);
    }
  }
  let p: Decoded;
  try {
    p = Profile.toObject(Profile.decode(raw), { defaults: false }) as Decoded;
  } catch (err) {
    throw new BadProfile(`the body is not a pprof profile (profile.proto): ${(err as Error).message}`);
  }
  const strings = p.stringTable ?? [];
  const str = (i: Long | undefined, what: string): string => {
    const n = num(i);
    if (n < 0 || n >= Math.max(strings.length, 1)) throw new BadProfile(`${what}: string index ${n} is out of range`);
    const s = strings[n] ?? '';
    return s.length > PROFILE_LIMITS.stringBytes ? s.slice(0, PROFILE_LIMITS.stringBytes) : s;
  };
  const resource: Record<string, string> = {};
  let requestedHz: number | null = null;
  for (const c of p.comment ?? []) {
    const text = str(c, 'comment');
    const eq = text.indexOf('=');
    if (eq <= 0) continue;
    const [k, v] = [text.slice(0, eq), text.slice(eq + 1)];
    if (k === PROFILE_REQUESTED_HZ) requestedHz = Number(v) || null;
    else resource[k] = v;
  }
  const service = resource['service.name'];
  if (!service) throw new BadProfile('comment: no service.name=<name> comment names the service');
  const cpuIndex = (p.sampleType ?? []).findIndex((t) => str(t.unit, 'sample_type.unit') === 'nanoseconds');
  if (cpuIndex < 0) throw new BadProfile('sample_type: no value in nanoseconds (cpu/nanoseconds)');

  const origins = new Set<string>(Object.values(PROFILE_ORIGINS));
  const mappings = new Map<number, string>();
  for (const m of p.mapping ?? []) {
    const o = str(m.filename, 'mapping.filename');
    mappings.set(num(m.id), origins.has(o) ? o : PROFILE_ORIGINS.app);
  }
  const functions = new Map<number, { fn: string; file: string }>();
  for (const f of p.function ?? [])
    functions.set(num(f.id), {
      fn: str(f.name, 'function.name') || '(anonymous)',
      file: str(f.filename, 'function.filename'),
    });
  const locations = new Map<number, ProfileFrame[]>();
  for (const l of p.location ?? []) {
    const origin = mappings.get(num(l.mappingId)) ?? PROFILE_ORIGINS.app;
    // A location's lines run from the innermost inlined function to the one it was inlined into.
    const frames = (l.line ?? []).map((line): ProfileFrame => {
      const f = functions.get(num(line.functionId));
      if (!f) throw new BadProfile(`location ${num(l.id)}: no function ${num(line.functionId)}`);
      return { fn: f.fn, file: f.file, line: num(line.line), origin };
    });
    locations.set(num(l.id), frames);
  }
  const timestampKey = strings.indexOf(PROFILE_TIMESTAMP_LABEL);
  const startNs = big(p.timeNanos);
  const durationNs = big(p.durationNanos);
  const samples = p.sample ?? [];
  if (samples.length > PROFILE_LIMITS.samples)
    throw new BadProfile(
      `sample: ${samples.length} samples, more than the ${PROFILE_LIMITS.samples} one profile may hold`,
    );
  const stackIndex = new Map<string, number>();
  const out: ProfileWrite = {
    service,
    instance: resource['service.instance.id'] ?? '',
    resource,
    startNs,
    durationNs,
    periodNs: big(p.period),
    requestedHz,
    stacks: [],
    samples: [],
  };
  samples.forEach((s, i) => {
    const ids = s.locationId ?? [];
    if (ids.length > PROFILE_LIMITS.depth)
      throw new BadProfile(`sample ${i}: ${ids.length} frames, more than ${PROFILE_LIMITS.depth}`);
    // Leaf first in pprof; stored root first, as flame graphs draw them.
    const frames: ProfileFrame[] = [];
    for (let j = ids.length - 1; j >= 0; j--) {
      const loc = locations.get(num(ids[j]));
      if (!loc) throw new BadProfile(`sample ${i}: no location ${num(ids[j])}`);
      for (let k = loc.length - 1; k >= 0; k--) frames.push(loc[k]);
    }
    const weightNs = big(s.value?.[cpuIndex]);
    if (weightNs <= 0n) return;
    const ts = (s.label ?? []).find((l) => timestampKey > 0 && num(l.key) === timestampKey);
    const timeNs = ts ? big(ts.num) : startNs;
    const id = JSON.stringify(frames.map((f) => [f.fn, f.file, f.line, f.origin]));
    let stack = stackIndex.get(id);
    if (stack === undefined) {
      if (stackIndex.size >= PROFILE_LIMITS.stacks)
        throw new BadProfile(`sample ${i}: more than ${PROFILE_LIMITS.stacks} distinct stacks in one profile`);
      stack = out.stacks.push(frames) - 1;
      stackIndex.set(id, stack);
    }
    out.samples.push({ timeNs, stack, weightNs });
  });
  return out;
}

/** Stacks with their weight over a window as a gzipped pprof file, for `go tool pprof` and speedscope. */
export function encodeProfile(
  stacks: Array<{ frames: ProfileFrame[]; samples: number; weightNs: bigint }>,
  meta: { service: string; startNs: bigint; durationNs: bigint; periodNs: bigint },
): Buffer {
  const strings = [''];
  const index = new Map<string, number>([['', 0]]);
  const s = (text: string) => {
    let i = index.get(text);
    if (i === undefined) index.set(text, (i = strings.push(text) - 1));
    return i;
  };
  const mappings = new Map<string, number>();
  const functions = new Map<string, number>();
  const locations = new Map<string, number>();
  const fnList: object[] = [];
  const locList: object[] = [];
  const mapList: object[] = [];
  const locationOf = (f: ProfileFrame) => {
    const id = JSON.stringify([f.fn, f.file, f.line, f.origin]);
    let l = locations.get(id);
    if (l !== undefined) return l;
    let m = mappings.get(f.origin);
    if (m === undefined) {
      mappings.set(f.origin, (m = mappings.size + 1));
      mapList.push({ id: m, filename: s(f.origin), hasFunctions: true, hasFilenames: true, hasLineNumbers: true });
    }
    const fnKey = `${f.fn}\n${f.file}`;
    let fid = functions.get(fnKey);
    if (fid === undefined) {
      functions.set(fnKey, (fid = functions.size + 1));
      fnList.push({ id: fid, name: s(f.fn), systemName: s(f.fn), filename: s(f.file) });
    }
    locations.set(id, (l = locations.size + 1));
    locList.push({ id: l, mappingId: m, line: [{ functionId: fid, line: f.line }] });
    return l;
  };
  const sample = stacks.map((st) => ({
    locationId: [...st.frames].reverse().map(locationOf),
    value: [st.samples, Number(st.weightNs)],
  }));
  const message = Profile.fromObject({
    sampleType: [
      { type: s('samples'), unit: s('count') },
      { type: s('cpu'), unit: s('nanoseconds') },
    ],
    sample,
    mapping: mapList,
    location: locList,
    function: fnList,
    timeNanos: meta.startNs.toString(),
    durationNanos: meta.durationNs.toString(),
    periodType: { type: s('cpu'), unit: s('nanoseconds') },
    period: meta.periodNs.toString(),
    comment: [s(`service.name=${meta.service}`)],
    stringTable: strings,
  });
  return zlib.gzipSync(Profile.encode(message).finish());
}
