"""Loop CPU profiles from the Python agent: programs run with `python -m stallscope_agent` post
gzipped pprof to a real receiver; each profile is decoded by protobufjs from the collector's own
collector/proto/pprof.proto (the Node agent's tests decode theirs the same way)."""

import collections
import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO, line_of, run_program

NODE = shutil.which("node")
# Decodes a gzipped pprof from stdin and prints it resolved through its string table.
DECODE = r"""
const zlib = require('node:zlib');
const path = require('node:path');
const protobuf = require(path.join(process.argv[1], 'node_modules', 'protobufjs'));
const Profile = protobuf.loadSync(path.join(process.argv[1], 'collector', 'proto', 'pprof.proto')).lookupType('stallscope.pprof.Profile');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const p = Profile.toObject(Profile.decode(zlib.gunzipSync(Buffer.concat(chunks))), { longs: String, defaults: true });
  const s = p.stringTable;
  const fns = new Map(p.function.map((f) => [String(f.id), f]));
  const maps = new Map(p.mapping.map((m) => [String(m.id), s[m.filename]]));
  const locs = new Map(p.location.map((l) => {
    const f = fns.get(String(l.line[0].functionId));
    return [String(l.id), { function: s[f.name], file: s[f.filename], line: Number(l.line[0].line), startLine: Number(f.startLine), origin: maps.get(String(l.mappingId)) }];
  }));
  process.stdout.write(JSON.stringify({
    sampleTypes: p.sampleType.map((t) => `${s[t.type]}/${s[t.unit]}`),
    periodType: `${s[p.periodType.type]}/${s[p.periodType.unit]}`,
    period: Number(p.period),
    time: p.timeNanos,
    duration: p.durationNanos,
    comments: p.comment.map((i) => s[i]),
    mappings: p.mapping.map((m) => s[m.filename]),
    samples: p.sample.map((x) => ({ stack: x.locationId.map((id) => locs.get(String(id))), values: x.value.map(Number), ts: x.label[0].num, label: s[x.label[0].key], unit: s[x.label[0].numUnit] })),
  }));
});
"""


def decode(body):
    r = subprocess.run([NODE, "-e", DECODE, REPO], input=body, capture_output=True, check=True, timeout=30)
    return json.loads(r.stdout)


def profiles(sink):
    with sink.lock:
        return [(h, decode(b)) for h, b in sink.profiles]


def top_app(stack):
    f = next((f for f in stack if f["origin"] == "app"), None)
    return f and (f["function"], f["file"], f["line"])


BUSY = """
    import asyncio, math, time

    def crunch(n):
        x = 0.0
        for i in range(n):
            x += math.sqrt(i) * math.sin(i)  # MARK:hot
        return x

    async def handler():
        crunch(40000)
        await asyncio.sleep(0.002)

    async def main():
        end = time.monotonic() + 3
        while time.monotonic() < end:
            await asyncio.gather(*(handler() for _ in range(2)))
        print("done")

    asyncio.run(main())
"""

pytestmark = pytest.mark.skipif(NODE is None or not os.path.exists(os.path.join(REPO, "node_modules", "protobufjs")), reason="node and protobufjs decode the profiles")


def test_a_busy_loop_is_sampled_into_pprof_naming_the_hot_line(sink, tmp_path):
    r = run_program(tmp_path, BUSY, sink.endpoint, STALLSCOPE_PROFILE_WINDOW_MS="1000", OTEL_EXPORTER_OTLP_HEADERS="x-test=profiles%20ok", OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n" and r.stderr == ""
    got = profiles(sink)
    assert len(got) >= 2, len(got)
    headers, first = got[0]
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-test"] == "profiles ok"
    app = str(tmp_path / "app.py")
    tally = {}
    for _, p in got:
        for s in p["samples"]:
            top = top_app(s["stack"])
            if top:
                tally[top] = tally.get(top, 0) + 1
    hottest = max(tally, key=tally.get)
    assert hottest == ("crunch", app, line_of(tmp_path, "hot")), tally
    for _, p in got:
        assert p["sampleTypes"] == ["samples/count", "cpu/nanoseconds"]
        assert p["periodType"] == "cpu/nanoseconds"
        assert sorted(p["mappings"]) == sorted(["app", "dependency", "telemetry", "runtime"])
        assert "service.name=py-test" in p["comments"] and "deployment.environment.name=test" in p["comments"]
        assert any(c.startswith("service.instance.id=") and len(c) == len("service.instance.id=") + 36 for c in p["comments"])
        start, end = int(p["time"]), int(p["time"]) + int(p["duration"])
        assert p["period"] >= 9_000_000, p["period"]
        for s in p["samples"]:
            assert s["label"] == "timestamp" and s["unit"] == "nanoseconds"
            assert start <= int(s["ts"]) <= end
            assert s["values"] == [1, p["period"]]
            # The stdlib's asyncio is the runtime's, the agent's own wrapper the telemetry's.
            for f in s["stack"]:
                if "/asyncio/" in f["file"]:
                    assert f["origin"] == "runtime", f
                if "stallscope_agent" in f["file"]:
                    assert f["origin"] == "telemetry", f
    crunch = next(f for _, p in got for s in p["samples"] for f in s["stack"] if f["function"] == "crunch")
    assert crunch["startLine"] == line_of(tmp_path, "hot") - 3
    assert "stallscope.profile.requested_hz=100" in got[0][1]["comments"]


def test_an_idle_loop_sends_no_profile_and_profiling_off_sends_none(sink, tmp_path):
    idle = """
        import asyncio
        async def main():
            for _ in range(30):
                await asyncio.sleep(0.1)
        asyncio.run(main())
    """
    r = run_program(tmp_path, idle, sink.endpoint, STALLSCOPE_PROFILE_WINDOW_MS="1000")
    assert r.returncode == 0, r.stderr
    for _, p in profiles(sink):
        assert len(p["samples"]) < 10, len(p["samples"])
        assert not any(top_app(s["stack"]) for s in p["samples"])
    rate = [p for p in sink.metrics("stallscope.profiler.rate")]
    assert rate and rate[-1]["attrs"] == {} and rate[-1]["asDouble"] == 0
    states = sink.metrics("stallscope.profiler.state")[-4:]
    assert [p["attrs"]["stallscope.profiler.state"] for p in states if p["asDouble"] == 1] == ["idle"], states

    sink.profiles.clear()
    r = run_program(tmp_path, BUSY, sink.endpoint, STALLSCOPE_PROFILE_HZ="0", STALLSCOPE_PROFILE_WINDOW_MS="1000")
    assert r.returncode == 0 and r.stdout == "done\n", r.stderr
    assert sink.profiles == []


def test_a_saturated_loop_is_sampled_at_a_quarter_of_the_rate_and_says_so(sink, tmp_path):
    saturated = """
        import asyncio, time

        def spin(s):
            end = time.perf_counter() + s
            while time.perf_counter() < end:
                pass

        async def main():
            end = time.monotonic() + 4
            while time.monotonic() < end:
                spin(0.1)
                await asyncio.sleep(0)

        asyncio.run(main())
    """
    r = run_program(tmp_path, saturated, sink.endpoint, STALLSCOPE_PROFILE_WINDOW_MS="1000")
    assert r.returncode == 0, r.stderr
    got = [p for _, p in profiles(sink)]
    assert "stallscope.profile.requested_hz=100" in got[0]["comments"]
    # The interval kept, not the one asked: a loop busy throughout is sampled that often.
    first = got[0]
    ts = sorted(int(s["ts"]) for s in first["samples"])
    gaps = sorted(b - a for a, b in zip(ts, ts[1:]))
    assert abs(gaps[len(gaps) // 2] - first["period"]) / first["period"] < 0.35, (gaps[len(gaps) // 2], first["period"])
    assert first["period"] >= 9_000_000
    tops = collections.Counter(top_app(s["stack"]) for s in first["samples"])
    assert tops.most_common(1)[0][0][0] == "spin", tops
    assert any("stallscope.profile.requested_hz=25" in p["comments"] for p in got), [p["comments"][-1] for p in got]
    backoffs = sink.metrics("stallscope.profiler.backoffs")
    assert any(p["attrs"]["stallscope.profiler.reason"] == "saturated" and int(p["asInt"]) >= 1 for p in backoffs), backoffs
    assert any(p["asDouble"] == 25 for p in sink.metrics("stallscope.profiler.rate"))
    states = sink.metrics("stallscope.profiler.state")
    assert any(p["attrs"]["stallscope.profiler.state"] == "reduced" and p["asDouble"] == 1 for p in states), states


def test_a_collector_that_is_down_changes_nothing_for_the_program(tmp_path):
    r = run_program(tmp_path, BUSY, "http://127.0.0.1:9", STALLSCOPE_PROFILE_WINDOW_MS="1000")
    assert r.returncode == 0
    assert r.stdout == "done\n"
    assert r.stderr.count("loop profile export") == 1, r.stderr
