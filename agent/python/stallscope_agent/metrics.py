"""Cumulative metrics kept in plain Python objects and read by the exporter thread.

Updates happen on the app's threads without a lock: single list-item and attribute assignments
are atomic under the GIL, and the exporter only reads, so a point may miss an update in flight,
never corrupt one.
"""

import bisect
import math
import time

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
        key = (name, attrs)
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = (unit, Histogram(bounds))
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
