// Building pprof files as the agents send them, for the tests of the collector and the pages.
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
