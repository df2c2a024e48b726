"""Spans and the trace context they join.

With the opentelemetry package importable, the active OpenTelemetry span is the parent, so the
agent's spans sit inside the app's traces. Without it the agent keeps its own context per task
(a context variable): `span()` opens one, and everything recorded inside it, including in tasks
started from it, is its child.
"""

import contextvars
import gc
import os
import time
from contextlib import contextmanager

try:  # the app's own OpenTelemetry, if it has one
    from opentelemetry import trace as _otel_trace
except Exception:  # pragma: no cover - not installable here
    _otel_trace = None

# (trace_id, span_id) of the agent's own active span.
_current = contextvars.ContextVar("stallscope_span", default=None)

SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2


def new_trace_id():
    return os.urandom(16).hex()


def new_span_id():
    return os.urandom(8).hex()


def _otel_parent(span):
    ctx = span.get_span_context()
    if ctx is None or not ctx.is_valid:
        return None
    return (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))


def active():
    """(trace_id, span_id) of the active span, or None."""
    if _otel_trace is not None:
        try:
            found = _otel_parent(_otel_trace.get_current_span())
            if found:
                return found
        except Exception:
            pass
    return _current.get()


# Without OpenTelemetry, the context variable's own getter: one Python call less on hot paths.
fast_active = active if _otel_trace is not None else _current.get


def active_in(task):
    """The active span of another task (read from the watchdog thread while the task runs)."""
    if task is None:
        return None
    try:
        for ref in gc.get_referents(task):
            if isinstance(ref, contextvars.Context):
                return ref.get(_current)
    except Exception:
        return None
    return None


class Span:
    __slots__ = ("name", "trace_id", "span_id", "parent_id", "start_ns", "end_ns", "kind", "attributes", "status", "events")

    def __init__(self, name, start_ns, end_ns, attributes, parent=None, kind=SPAN_KIND_INTERNAL, trace_id=None, span_id=None):
        self.name = name
        if parent:
            self.trace_id, self.parent_id = parent
        else:
            self.trace_id, self.parent_id = trace_id or new_trace_id(), None
        self.span_id = span_id or new_span_id()
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.kind = kind
        self.attributes = attributes
        self.status = None
        self.events = []


def wall_ns(perf_ns):
    """Epoch nanoseconds for a perf_counter_ns() reading."""
    return perf_ns + _OFFSET


_OFFSET = time.time_ns() - time.perf_counter_ns()

_sink = None


def set_sink(sink):
    global _sink
    _sink = sink


def record(span):
    if _sink is not None:
        _sink(span)


@contextmanager
def span(name, attributes=None, kind=SPAN_KIND_SERVER):
    """A span of the app's own (a request, a job): the agent's spans inside it are its children."""
    parent = active()
    s = Span(name, 0, 0, dict(attributes or {}), parent=parent, kind=kind)
    token = _current.set((s.trace_id, s.span_id))
    start = time.perf_counter_ns()
    try:
        yield s
    except BaseException as err:
        s.status = (STATUS_ERROR, f"{type(err).__name__}: {err}")
        raise
    finally:
        _current.reset(token)
        s.start_ns = wall_ns(start)
        s.end_ns = wall_ns(time.perf_counter_ns())
        record(s)
