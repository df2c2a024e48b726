"""Cumulative metrics kept in plain Python objects and read by the exporter thread.

Updates happen on the app's threads without a lock: single list-item and attribute assignments
are atomic under the GIL, and the exporter only reads, so a point may miss an update in flight,
never corrupt one.
"""

import bisect
import math
import time

from .conventions import LOCK_METRICS_HOLD_TIME, LOCK_METRICS_WAIT_TIME, POOL_METRICS_QUEUE_WAIT, POOL_METRICS_RUN_TIME

_ceil = math.ceil
_log2 = math.log2
_frexp = math.frexp
_INF = math.inf
_time_ns = time.time_ns

# Seconds, as OpenTelemetry recommends for durations; fine at the low end for lock waits.
DURATION_BOUNDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


class Histogram:
    __slots__ = ("bounds", "counts", "count", "sum", "min", "max")

    def __init__(self, bounds=DURATION_BOUNDS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        # Infinite until the first value, which spares a None check on every record.
        self.min = math.inf
        self.max = -math.inf

    def record(self, v):
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.count += 1
        self.sum += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v


# Waits, holds, queue waits and run times, as the Node agent's views send them: exponential
# histograms, whose percentiles are within a few percent of exact at any range.
EXPONENTIAL = frozenset((LOCK_METRICS_WAIT_TIME, LOCK_METRICS_HOLD_TIME, POOL_METRICS_QUEUE_WAIT, POOL_METRICS_RUN_TIME))

# OpenTelemetry's defaults: the SDK starts at the finest scale and halves the resolution while
# the buckets in use span more than MAX_BUCKETS.
MAX_SCALE = 20
MIN_SCALE = -10
MAX_BUCKETS = 160


def _exponent_index(v, scale):
    """The bucket of v at scale 0 or below, read off its binary exponent alone (exact)."""
    m, e = _frexp(v)  # v = m·2^e, 0.5 <= m < 1; an exact power of two is in the bucket below
    return (e - 2 if m == 0.5 else e - 1) >> -scale


class _Buckets:
    """The positive buckets: a window of MAX_BUCKETS counts from index `base` at one scale (the
    SDK's backing array). Replaced whole when the window moves or the scale drops, so that a
    reader always sees counts of the base and scale it reads."""

    __slots__ = ("scale", "factor", "base", "counts")

    def __init__(self, scale, base, counts):
        self.scale = scale
        self.factor = float(1 << scale) if scale > 0 else 0.0  # 2^scale; 0: use the exponent
        self.base = base
        self.counts = counts


# No index at any scale is this far up: every value is out of an empty histogram's window.
_NO_WINDOW = 1 << 62


class ExpHistogram:
    """A base-2 exponential histogram (OpenTelemetry's EXPONENTIAL_HISTOGRAM: zero count, positive
    buckets, at most MAX_BUCKETS of them). Negative values and NaN, which no duration is, are
    dropped. Its start is the time of its first value, as the SDK has it."""

    __slots__ = ("count", "sum", "min", "max", "zero_count", "start_ns", "buckets")

    def __init__(self, scale=MAX_SCALE):
        self.count = 0
        self.sum = 0.0
        self.min = _INF
        self.max = -_INF
        self.zero_count = 0
        self.start_ns = 0
        self.buckets = _Buckets(scale, _NO_WINDOW, [0] * MAX_BUCKETS)

    def record(self, v):
        if 0.0 < v < _INF:
            b = self.buckets
            # Bucket i holds (2^(i·2^-scale), 2^((i+1)·2^-scale)]. log2 of a power of two (the
            # one boundary a float can sit on exactly at scale > 0) is exact: it lands in the
            # bucket it closes.
            f = b.factor
            i = _ceil(_log2(v) * f) - 1 if f else _exponent_index(v, b.scale)
            j = i - b.base
            if 0 <= j < MAX_BUCKETS:
                b.counts[j] += 1
            else:
                self._widen(i, b)
        elif v == 0.0:
            self.zero_count += 1
        else:
            return
        self.count += 1
        self.sum += v
        if v < self.min:
            if self.min == _INF:
                self.start_ns = _time_ns()
            self.min = v
        if v > self.max:
            self.max = v

    def _widen(self, i, seen):
        """Counts index i of the buckets `seen`, outside their window: the window moves to take it
        in, at a smaller scale if the buckets in use and i span more than MAX_BUCKETS."""
        b = self.buckets
        if b is not seen:  # another thread moved the window meanwhile (the scale only drops)
            i >>= seen.scale - b.scale
            if 0 <= i - b.base < MAX_BUCKETS:
                b.counts[i - b.base] += 1
                return
        used = [(b.base + j, c) for j, c in enumerate(b.counts) if c]
        lo = min(i, used[0][0]) if used else i
        hi = max(i, used[-1][0]) if used else i
        change = 0
        while (hi >> change) - (lo >> change) >= MAX_BUCKETS and b.scale - change > MIN_SCALE:
            change += 1
        # Bucket k at scale s - c is buckets k·2^c .. (k+1)·2^c - 1 at scale s.
        lo >>= change
        hi >>= change
        # The buckets in use in the middle of the window, with room to grow either way.
        base = lo - (MAX_BUCKETS - (hi - lo + 1)) // 2
        counts = [0] * MAX_BUCKETS
        for k, c in used:
            counts[(k >> change) - base] += c
        counts[(i >> change) - base] += 1
        self.buckets = _Buckets(b.scale - change, base, counts)

    def snapshot(self):
        """(scale, zero count, offset, bucket counts) as of now: the buckets as of one scale and offset."""
        b = self.buckets
        counts = b.counts[:]  # one C call: atomic under the GIL
        zeros = self.zero_count
        used = [j for j, c in enumerate(counts) if c]
        if not used:
            return b.scale, zeros, 0, []
        return b.scale, zeros, b.base + used[0], counts[used[0] : used[-1] + 1]


class Counter:
    """A count, or a sum of seconds when it starts as 0.0 (exported as a double then)."""

    __slots__ = ("n",)

    def __init__(self, n=0):
        self.n = n


class Registry:
    """Instruments by (name, attributes); the exporter turns them into OTLP points."""

    def __init__(self):
        self.start_ns = time.time_ns()
        self.histograms = {}
        self.counters = {}
        # name -> callable returning [(attributes dict, value)]
        self.gauges = {}

    def histogram(self, name, attrs=(), unit="s", bounds=DURATION_BOUNDS):
        """Exponential for the names in EXPONENTIAL, else explicit buckets at `bounds`."""
        key = (name, attrs)
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = (unit, ExpHistogram() if name in EXPONENTIAL else Histogram(bounds))
        return h[1]

    def counter(self, name, attrs=(), unit="1", double=False):
        key = (name, attrs)
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = (unit, Counter(0.0 if double else 0))
        return c[1]

    def add(self, name, attrs=(), n=1, unit="1"):
        self.counter(name, attrs, unit).n += n

    def gauge(self, name, read, unit="1"):
        self.gauges[name] = (unit, read)
