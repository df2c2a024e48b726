"""OTLP/JSON over HTTP with urllib, from one background thread: spans are batched and the queue is
bounded, so recording never blocks the event loop and a collector that is down costs memory only
up to the bound. Loop profiles go from the same thread, one at a time, as gzipped pprof."""

import atexit
import collections
import gzip
import json
import os
import platform
import sys
import threading
import time
import urllib.request
import uuid

from . import pprof, safety
from .conventions import (
    PROFILE_PATH,
    PROFILER_METRICS_PROFILES,
    PROFILER_OUTCOME,
    PROFILER_OUTCOME_DROPPED,
    PROFILER_OUTCOME_FAILED,
    PROFILER_OUTCOME_SENT,
    SERVICE_INSTANCE_ID,
)
from .metrics import ExpHistogram, Registry

_VERSION = "0.1.0"


def _value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(e) for e in v]}}
    return {"stringValue": str(v)}


def attributes(d):
    return [{"key": k, "value": _value(v)} for k, v in (d.items() if isinstance(d, dict) else d)]


def span_json(s):
    out = {
        "traceId": s.trace_id,
        "spanId": s.span_id,
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": str(s.start_ns),
        "endTimeUnixNano": str(s.end_ns),
        "attributes": attributes(s.attributes),
    }
    if s.parent_id:
        out["parentSpanId"] = s.parent_id
    if s.status:
        out["status"] = {"code": s.status[0], "message": s.status[1]}
    if s.events:
        out["events"] = [{"name": n, "timeUnixNano": str(t), "attributes": attributes(a)} for n, t, a in s.events]
    return out


def exp_point(h, now):
    """An exponential histogram's cumulative point, as the OpenTelemetry SDK sends it: from the
    stream's first value (None before it); the count is what the buckets hold."""
    start = h.start_ns
    if not start:
        return None
    scale, zeros, offset, counts = h.snapshot()
    return {
        "startTimeUnixNano": str(start),
        "timeUnixNano": now,
        "count": str(zeros + sum(counts)),
        "sum": h.sum,
        "scale": scale,
        "zeroCount": str(zeros),
        "positive": {"offset": offset, "bucketCounts": [str(c) for c in counts]},
    }


def metrics_json(reg, now_ns):
    out = []
    start = str(reg.start_ns)
    now = str(now_ns)
    by_name = collections.defaultdict(list)
    for (name, attrs), (unit, h) in list(reg.histograms.items()):
        if isinstance(h, ExpHistogram):
            point = exp_point(h, now)
            if point is None:
                continue
            kind = "exponentialHistogram"
        else:
            point = {
                "startTimeUnixNano": start,
                "timeUnixNano": now,
                "count": str(h.count),
                "sum": h.sum,
                "bucketCounts": [str(c) for c in list(h.counts)],
                "explicitBounds": h.bounds,
            }
            kind = "histogram"
        point["attributes"] = attributes(attrs)
        if h.min <= h.max:  # both set (infinite before the first value, never exported)
            point["min"] = h.min
            point["max"] = h.max
        by_name[(name, unit, kind)].append(point)
    for (name, attrs), (unit, c) in list(reg.counters.items()):
        n = c.n
        value = {"asDouble": n} if isinstance(n, float) else {"asInt": str(int(n))}
        by_name[(name, unit, "sum")].append({"attributes": attributes(attrs), "startTimeUnixNano": start, "timeUnixNano": now, **value})
    for name, (unit, read) in list(reg.gauges.items()):
        try:
            values = read()
        except Exception as err:
            safety.report(f"metric {name}", err)
            continue
        for attrs, v in values:
            by_name[(name, unit, "gauge")].append({"attributes": attributes(attrs), "timeUnixNano": now, "asDouble": float(v)})
    for (name, unit, kind), points in by_name.items():
        if kind in ("histogram", "exponentialHistogram"):
            out.append({"name": name, "unit": unit, kind: {"aggregationTemporality": 2, "dataPoints": points}})
        elif kind == "sum":
            out.append({"name": name, "unit": unit, "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": points}})
        else:
            out.append({"name": name, "unit": unit, "gauge": {"dataPoints": points}})
    return out


class Exporter:
    def __init__(self, config, registry: Registry, before_metrics=None):
        self.config = config
        self.registry = registry
        self.before_metrics = before_metrics
        self.queue = collections.deque()
        self.dropped = 0
        self.wake = threading.Event()
        self.stopped = False
        resource = dict(config.resource_attributes)
        # Tells this process's telemetry from its replicas' (OTEL_RESOURCE_ATTRIBUTES may set it).
        resource.setdefault(SERVICE_INSTANCE_ID, str(uuid.uuid4()))
        resource.update(
            {
                "service.name": config.service_name,
                "telemetry.sdk.name": "stallscope",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.version": _VERSION,
                "process.pid": os.getpid(),
                "process.runtime.name": sys.implementation.name,
                "process.runtime.version": platform.python_version(),
            }
        )
        self.resource_attributes = resource
        self.resource = {"attributes": attributes(resource)}
        # At most one loop profile waits to be sent; `final_profile` gives the last one at exit.
        self.pending_profile = None
        self.final_profile = None
        self.scope = {"name": "stallscope", "version": _VERSION}
        self.thread = threading.Thread(target=self._run, name="stallscope-exporter", daemon=True)

    def start(self):
        self.thread.start()
        atexit.register(self.shutdown)

    def add(self, span):
        if len(self.queue) >= self.config.max_queued_spans:
            self.dropped += 1
            return
        self.queue.append(span)
        if len(self.queue) >= 512:
            self.wake.set()

    def _post(self, path, body, content_type="application/json"):
        req = urllib.request.Request(
            self.config.endpoint + path,
            data=body if isinstance(body, bytes) else json.dumps(body).encode(),
            headers={**self.config.headers, "content-type": content_type},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.config.export_timeout_s) as res:
            res.read()

    def add_profile(self, window):
        """From the watchdog thread: a window to send. A collector that is slow costs windows, not memory."""
        if self.pending_profile is not None:
            self.registry.add(PROFILER_METRICS_PROFILES, ((PROFILER_OUTCOME, PROFILER_OUTCOME_DROPPED),), unit="{profile}")
            return
        self.pending_profile = window
        self.wake.set()

    def flush_profile(self):
        window, self.pending_profile = self.pending_profile, None
        if window is None:
            return
        try:
            self._post(PROFILE_PATH, gzip.compress(pprof.encode(window)), "application/octet-stream")
            outcome = PROFILER_OUTCOME_SENT
        except Exception as err:
            outcome = PROFILER_OUTCOME_FAILED
            safety.report(f"loop profile export to {self.config.endpoint}{PROFILE_PATH}", err)
        self.registry.add(PROFILER_METRICS_PROFILES, ((PROFILER_OUTCOME, outcome),), unit="{profile}")

    def flush_spans(self):
        while self.queue:
            batch = []
            while self.queue and len(batch) < 512:
                batch.append(self.queue.popleft())
            body = {"resourceSpans": [{"resource": self.resource, "scopeSpans": [{"scope": self.scope, "spans": [span_json(s) for s in batch]}]}]}
            try:
                self._post("/v1/traces", body)
            except Exception as err:
                safety.report(f"exporting spans to {self.config.endpoint}", err)
                return

    def flush_metrics(self):
        if self.before_metrics:
            self.before_metrics()
        metrics = metrics_json(self.registry, time.time_ns())
        if not metrics:
            return
        body = {"resourceMetrics": [{"resource": self.resource, "scopeMetrics": [{"scope": self.scope, "metrics": metrics}]}]}
        try:
            self._post("/v1/metrics", body)
        except Exception as err:
            safety.report(f"exporting metrics to {self.config.endpoint}", err)

    def _run(self):
        next_metrics = time.monotonic() + self.config.metric_interval_s
        while not self.stopped:
            self.wake.wait(min(self.config.span_delay_s, max(0.0, next_metrics - time.monotonic())))
            self.wake.clear()
            if self.stopped:
                break
            try:
                self.flush_spans()
                self.flush_profile()
                if time.monotonic() >= next_metrics:
                    next_metrics = time.monotonic() + self.config.metric_interval_s
                    self.flush_metrics()
            except Exception as err:
                safety.report("exporter", err)

    def shutdown(self):
        """At exit: what is queued, and the metrics, sent once (each request bounded by its timeout)."""
        if self.stopped:
            return
        self.stopped = True
        self.wake.set()
        self.thread.join(2)
        try:
            self.flush_spans()
            if self.pending_profile is None and self.final_profile is not None:
                self.pending_profile = self.final_profile()
            self.flush_profile()
            self.flush_metrics()
        except Exception as err:
            safety.report("exporter", err)
