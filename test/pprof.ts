// pprof files in tests: built as the agents send them (for the tests of the collector and the
// pages), and those the agents sent, decoded field by field (for the agents' tests).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import zlib from 'node:zlib';
import protobuf from 'protobufjs';
import { packageRoot } from '../common/package-root';

export const Profile = protobuf
  .parse(readFileSync(join(packageRoot(), 'collector', 'proto', 'pprof.proto'), 'utf8'))
  .root.lookupType('stallscope.pprof.Profile');

export type Frame = [fn: string, file: string, line: number, origin: string];

/** A pprof file as the agents write it: one sample per tick, leaf first, with its timestamp. */
export function pprof(
  service: string,
  startNs: bigint,
  ticks: Array<{ stack: Frame[]; count: number }>,
  periodMs = 10,
): Buffer {
  const strings = [''];
  const s = (t: string) => {
    const i = strings.indexOf(t);
    return i >= 0 ? i : strings.push(t) - 1;
  };
  const mappings = ['app', 'dependency', 'telemetry', 'runtime'];
  const functions: object[] = [];
  const locations: object[] = [];
  const locationOf = (f: Frame) => {
    functions.push({ id: functions.length + 1, name: s(f[0]), filename: s(f[1]) });
    locations.push({
      id: locations.length + 1,
      mappingId: mappings.indexOf(f[3]) + 1,
      line: [{ functionId: functions.length, line: f[2] }],
    });
    return locations.length;
  };
  const sample: object[] = [];
  let t = startNs;
  for (const tick of ticks) {
    const ids = [...tick.stack].reverse().map(locationOf);
    for (let i = 0; i < tick.count; i++) {
      t += BigInt(periodMs) * 1_000_000n;
      sample.push({
        locationId: ids,
        value: [1, periodMs * 1_000_000],
        label: [{ key: s('timestamp'), num: t.toString(), numUnit: s('nanoseconds') }],
      });
    }
  }
  const message = Profile.fromObject({
    sampleType: [
      { type: s('samples'), unit: s('count') },
      { type: s('cpu'), unit: s('nanoseconds') },
    ],
    sample,
    mapping: mappings.map((m, i) => ({ id: i + 1, filename: s(m) })),
    location: locations,
    function: functions,
    timeNanos: startNs.toString(),
    durationNanos: (t - startNs).toString(),
    periodType: { type: s('cpu'), unit: s('nanoseconds') },
    period: String(periodMs * 1_000_000),
    comment: [s(`service.name=${service}`), s('service.instance.id=i-1'), s('stallscope.profile.requested_hz=100')],
    stringTable: strings,
  });
  return zlib.gzipSync(Profile.encode(message).finish());
}

export interface AgentFrame {
  function: string;
  file: string;
  line: number;
  startLine: number;
  origin: string;
}

export interface AgentProfile {
  sampleTypes: string[];
  periodType: string;
  periodNs: number;
  timeNs: bigint;
  durationNs: bigint;
  comments: string[];
  mappings: string[];
  functions: string[];
  samples: Array<{ stack: AgentFrame[]; values: number[]; timestampNs: bigint; label: string; unit: string }>;
}

/** A pprof an agent posted, gunzipped, decoded field by field and resolved through its string table. */
export function decodeAgentProfile(body: Buffer): AgentProfile {
  const p = Profile.toObject(Profile.decode(zlib.gunzipSync(body)), { longs: String, defaults: true }) as any;
  const s: string[] = p.stringTable;
  const fns = new Map<string, any>(p.function.map((f: any) => [String(f.id), f]));
  const maps = new Map<string, string>(p.mapping.map((m: any) => [String(m.id), s[Number(m.filename)]]));
  const locs = new Map<string, AgentFrame>(
    p.location.map((l: any) => {
      const line = l.line[0];
      const f = fns.get(String(line.functionId));
      return [
        String(l.id),
        {
          function: s[Number(f.name)],
          file: s[Number(f.filename)],
          line: Number(line.line),
          startLine: Number(f.startLine),
          origin: maps.get(String(l.mappingId))!,
        },
      ];
    }),
  );
  return {
    sampleTypes: p.sampleType.map((t: any) => `${s[Number(t.type)]}/${s[Number(t.unit)]}`),
    periodType: `${s[Number(p.periodType.type)]}/${s[Number(p.periodType.unit)]}`,
    periodNs: Number(p.period),
    timeNs: BigInt(p.timeNanos),
    durationNs: BigInt(p.durationNanos),
    comments: p.comment.map((i: string) => s[Number(i)]),
    mappings: p.mapping.map((m: any) => s[Number(m.filename)]),
    functions: p.function.map((f: any) => s[Number(f.name)]),
    samples: p.sample.map((x: any) => ({
      stack: x.locationId.map((id: string) => locs.get(String(id))!),
      values: x.value.map(Number),
      timestampNs: BigInt(x.label[0].num),
      label: s[Number(x.label[0].key)],
      unit: s[Number(x.label[0].numUnit)],
    })),
  };
}
