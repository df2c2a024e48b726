"""Exponential histograms: the bucket index at every scale, downscaling, the same buckets as
OpenTelemetry's own SDK, and a real program's lock waits as the receiver decodes them."""

import json
import math
import random
import subprocess
import threading
import time
from fractions import Fraction

import pytest

from conftest import REPO, line_of, run_program
from stallscope_agent.metrics import MAX_BUCKETS, ExpHistogram


def index_at(scale, v):
    """The bucket a lone value gets in a histogram held at `scale`."""
    h = ExpHistogram(scale)
    h.record(v)
    got_scale, _, offset, counts = h.snapshot()
    assert got_scale == scale and counts == [1]
    return offset


# (scale, value, index): bucket i holds (2^(i·2^-scale), 2^((i+1)·2^-scale)].
KNOWN = [
    (0, 1.0, -1),
    (0, 2.0, 0),
    (0, 3.0, 1),
    (0, 4.0, 1),
    (0, 0.5, -2),
    (0, 0.75, -1),
    (0, 1024.0, 9),
    (0, 1025.0, 10),
    (1, 1.0, -1),
    (1, 1.2, 0),  # (1, 1.414]
    (1, 1.5, 1),  # (1.414, 2]
    (1, 4.0, 3),
    (1, 0.6, -2),  # (0.5, 0.707]
    (3, 1.5, 4),  # (2^(4/8), 2^(5/8)] = (1.414, 1.542]
    (3, 0.001, -80),
    (3, 2.0**-10, -81),
    (20, 1.0, -1),
    (20, 2.0, 2**20 - 1),
    (20, 1.0000001, 0),
    (-1, 1.0, -1),  # base 4
    (-1, 4.0, 0),
    (-1, 4.5, 1),
    (-1, 16.0, 1),
    (-1, 17.0, 2),
    (-1, 0.3, -1),
    (-1, 0.25, -2),
    (-2, 16.0, 0),  # base 16
    (-2, 17.0, 1),
    (-2, 256.0, 1),
    (-2, 0.0625, -2),
    (-10, 1e300, 0),  # base 2^1024
    (-10, 1e-300, -1),
]


@pytest.mark.parametrize("scale,value,index", KNOWN)
def test_the_bucket_index_of_known_values(scale, value, index):
    assert index_at(scale, value) == index


def in_bucket(v, scale, i):
    """Exactly, in rationals: 2^(i·2^-scale) < v <= 2^((i+1)·2^-scale)."""
    x = Fraction(v)
    if scale >= 0:
        p = x ** (2**scale)
        return Fraction(2) ** i < p <= Fraction(2) ** (i + 1)
    k = 2**-scale
    return Fraction(2) ** (i * k) < x <= Fraction(2) ** ((i + 1) * k)


def test_every_value_lands_in_the_bucket_whose_bounds_hold_it():
    rng = random.Random(19)
    values = [rng.lognormvariate(-6, 4) for _ in range(300)] + [2.0**k for k in range(-30, 31, 3)]
    for scale in (-3, -1, 0, 1, 2, 3, 5):
        for v in values:
            assert in_bucket(v, scale, index_at(scale, v)), (scale, v)
    # Read off the exponent, a float one step either side of a power of two is exact as well.
    for scale in (-2, 0):
        for k in (-20, 1, 2, 7, 40):
            for v in (math.nextafter(2.0**k, 0), math.nextafter(2.0**k, math.inf)):
                assert in_bucket(v, scale, index_at(scale, v)), (scale, v)


def test_a_value_out_of_range_halves_the_resolution_until_the_buckets_fit():
    h = ExpHistogram()
    h.record(1.0)
    h.record(2.0)
    # At scale 20 these are indexes -1 and 2^20 - 1; at 7 they are -1 and 127: 129 buckets.
    scale, zeros, offset, counts = h.snapshot()
    assert (scale, zeros, offset, len(counts)) == (7, 0, -1, 129)
    assert counts[0] == counts[-1] == 1 and sum(counts) == 2
    # Waits from 1 us to 10 s: the finest scale at which they fit in 160 buckets.
    rng = random.Random(3)
    values = [10 ** rng.uniform(-6, 1) for _ in range(5000)] + [1e-6, 10.0]
    h = ExpHistogram()
    for v in values:
        h.record(v)
    scale, _, offset, counts = h.snapshot()
    assert len(counts) <= MAX_BUCKETS and sum(counts) == len(values) and h.count == len(values)
    finer = [math.ceil(math.log2(v) * 2 ** (scale + 1)) - 1 for v in (1e-6, 10.0)]
    assert finer[1] - finer[0] + 1 > MAX_BUCKETS
    by_index = {}
    for v in values:
        i = math.ceil(math.log2(v) * 2**scale) - 1
        by_index[i] = by_index.get(i, 0) + 1
    assert {offset + j: c for j, c in enumerate(counts) if c} == by_index
    assert (h.min, h.max) == (1e-6, 10.0) and abs(h.sum - sum(values)) < 1e-9


def test_zeros_are_counted_apart_and_what_is_no_duration_is_dropped():
    h = ExpHistogram()
    for v in (0.0, 0.0, -1.0, math.nan, math.inf, 0.5):
        h.record(v)
    assert h.snapshot() == (20, 2, -2**20 - 1, [1])
    assert (h.count, h.sum, h.min, h.max) == (3, 0.5, 0.0, 0.5)


SDK_HISTOGRAM = """
const { MeterProvider, MetricReader, AggregationType } = require('@opentelemetry/sdk-metrics');
class Reader extends MetricReader { async onShutdown() {} async onForceFlush() {} }
(async () => {
  const sets = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const out = [];
  for (const values of sets) {
    const reader = new Reader();
    const aggregation = { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } };
    const provider = new MeterProvider({ readers: [reader], views: [{ instrumentName: 'h', aggregation }] });
    const h = provider.getMeter('t').createHistogram('h');
    for (const v of values) h.record(v);
    const p = (await reader.collect()).resourceMetrics.scopeMetrics[0].metrics[0].dataPoints[0].value;
    out.push([p.scale, p.zeroCount, p.positive.offset, p.positive.bucketCounts]);
  }
  console.log(JSON.stringify(out));
})();
"""


def test_the_buckets_are_those_of_the_opentelemetry_sdk():
    rng = random.Random(7)
    sets = [
        [rng.lognormvariate(-7, 1) for _ in range(2000)],  # lock waits around a ms
        [rng.lognormvariate(-5, 4) for _ in range(2000)],  # far apart: downscaled
        sorted(rng.uniform(1e-5, 1e-2) for _ in range(500)),  # rising: the window moves up
        sorted((rng.uniform(1e-5, 1e-2) for _ in range(500)), reverse=True),  # and down
        [0.0, 0.003, 0.0, 0.25, 2.0**-7, 1.0, 2.0],
        [0.004] * 50,
    ]
    r = subprocess.run(["node", "-e", SDK_HISTOGRAM], cwd=REPO, input=json.dumps(sets), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for values, (scale, zeros, offset, counts) in zip(sets, json.loads(r.stdout)):
        h = ExpHistogram()
        for v in values:
            h.record(v)
        assert h.snapshot() == (scale, zeros, offset, counts)


def test_a_reader_on_another_thread_sees_consistent_buckets_while_values_come_in():
    h = ExpHistogram()
    lo, hi = 1e-6, 10.0
    stop = threading.Event()
    seen = []

    def read():
        while not stop.is_set():
            seen.append(h.snapshot())

    def write(seed):
        rng = random.Random(seed)
        for _ in range(20000):
            h.record(10 ** rng.uniform(-6, 1))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(s,)) for s in range(3)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert len(seen) > 10
    for scale, _, offset, counts in seen:
        # Counts read at the scale they were counted at: within the buckets of the range.
        first, last = (math.ceil(math.log2(v) * 2.0**scale) - 1 for v in (lo, hi))
        assert len(counts) <= MAX_BUCKETS
        assert not counts or (first <= offset and offset + len(counts) - 1 <= last), (scale, offset, len(counts))
    total = sum(h.snapshot()[3])
    assert 0.99 * 60000 <= total <= 60000 and h.snapshot()[0] <= 4


def quantile(point, q):
    """The geometric middle of the bucket the q-th value falls in (as the collector reads it)."""
    counts = [int(c) for c in point["positive"]["bucketCounts"]]
    target = q * (int(point["zeroCount"]) + sum(counts))
    seen = int(point["zeroCount"])
    base = 2.0 ** (2.0 ** -point["scale"])
    for j, c in enumerate(counts):
        seen += c
        if seen >= target:
            i = point["positive"]["offset"] + j
            return math.sqrt(base**i * base ** (i + 1))


def exact(values, q):
    values = sorted(values)
    return values[math.ceil(q * len(values)) - 1]


def test_a_programs_contended_lock_waits_arrive_as_cumulative_exponential_histograms(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio, json, random, time

        rng = random.Random(5)
        waits, holds = [], []

        async def worker(lock):
            for _ in range(40):
                contended = lock.locked() or bool(lock._waiters)  # this acquisition will queue
                asked = time.perf_counter()
                async with lock:
                    got = time.perf_counter()
                    if contended:
                        waits.append((got - asked, time.time_ns()))
                    await asyncio.sleep(rng.uniform(0.0005, 0.004))
                    done = time.perf_counter()
                    holds.append((done - got, done - asked))

        async def main():
            lock = asyncio.Lock()  # MARK:lock
            await asyncio.gather(*(worker(lock) for _ in range(4)))

        began = time.time_ns()
        asyncio.run(main())
        print(json.dumps({"began": began, "waits": waits, "holds": holds}))
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    waits = [w for w, _ in seen["waits"]]
    assert len(waits) > 100
    lock = f"app.py:{line_of(tmp_path, 'lock')}"
    assert sink.metric_types("stallscope.lock.wait_time") == sink.metric_types("stallscope.lock.hold_time") == {"exponentialHistogram"}
    with sink.lock:
        units = {m["name"]: (m["unit"], m["exponentialHistogram"]["aggregationTemporality"]) for _, b in sink.requests if "resourceMetrics" in b for rm in b["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"] if "exponentialHistogram" in m}
    assert units == {"stallscope.lock.wait_time": ("s", 2), "stallscope.lock.hold_time": ("s", 2)}
    points = [p for p in sink.metrics("stallscope.lock.wait_time") if p["attrs"]["stallscope.lock.name"] == lock]
    assert {p["attrs"]["stallscope.lock.outcome"] for p in points} == {"granted"}
    # Cumulative from the first wait: one start time, counts that only grow.
    assert len({p["startTimeUnixNano"] for p in points}) == 1
    assert seen["began"] <= int(points[0]["startTimeUnixNano"]) <= seen["waits"][0][1]
    assert [int(p["count"]) for p in points] == sorted(int(p["count"]) for p in points)
    last = points[-1]
    counts = [int(c) for c in last["positive"]["bucketCounts"]]
    assert int(last["count"]) == len(waits) == sum(counts) and int(last["zeroCount"]) == 0
    assert -10 <= last["scale"] <= 20 and len(counts) <= MAX_BUCKETS and counts[0] and counts[-1]
    # The agent measures inside the app's own readings: a little less, never more.
    assert 0 < last["min"] <= min(waits) and last["max"] <= max(waits)
    assert 0.95 * sum(waits) <= last["sum"] <= sum(waits)
    for q in (0.5, 0.95):
        assert abs(quantile(last, q) - exact(waits, q)) <= 0.06 * exact(waits, q), (q, quantile(last, q), exact(waits, q))
    hold = [p for p in sink.metrics("stallscope.lock.hold_time") if p["attrs"]["stallscope.lock.name"] == lock][-1]
    assert int(hold["count"]) == len(seen["holds"]) == 160
    # The agent's hold begins at its grant, before its own bookkeeping of the wait and before the
    # app's reading after `async with`: within the app's acquire-to-end, never shorter than its body.
    inner, outer = [h for h, _ in seen["holds"]], [o for _, o in seen["holds"]]
    assert 0.94 * exact(inner, 0.95) <= quantile(hold, 0.95) <= 1.06 * exact(outer, 0.95)
