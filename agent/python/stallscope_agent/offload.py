"""Thread offload: every ThreadPoolExecutor task, which also covers loop.run_in_executor and
asyncio.to_thread (both submit to an executor). Queue wait (submitted until a worker starts it)
is kept apart from run time, per pool, with the pool's size; each task is a span, child of the
span that submitted it."""

import _thread
import contextvars
import functools
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import safety, spans
from .conventions import (
    KIND,
    KINDS_POOL_TASK,
    POOL_METRICS_MAX_THREADS,
    POOL_METRICS_QUEUE_SIZE,
    POOL_METRICS_QUEUE_WAIT,
    POOL_METRICS_RUN_TIME,
    POOL_METRICS_THREADS,
    POOL_NAME,
    POOL_OUTCOME,
    POOL_QUEUE_WAIT_MS,
    POOL_RUN_MS,
    SPAN_NAMES_POOL_TASK,
    POOL_TASK,
    POOL_TYPE,
)
from .stack import caller_site

_perf = time.perf_counter_ns
POOL_TYPE_NAME = "ThreadPoolExecutor"
DEFAULT_EXECUTOR = "asyncio default executor"


def _task_name(fn):
    # to_thread submits functools.partial(context.run, func, ...): name the func.
    if isinstance(fn, functools.partial):
        inner = fn.func
        if getattr(inner, "__self__", None) is not None and isinstance(inner.__self__, contextvars.Context) and fn.args:
            return _task_name(fn.args[0])
        return _task_name(inner)
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class Offload:
    def __init__(self, config, registry):
        self.registry = registry
        # Tasks finish on worker threads: their metrics are updated under this lock.
        self.lock = _thread.allocate_lock()
        self.pools = {}
        self.patched = []
        registry.gauge(POOL_METRICS_QUEUE_SIZE, lambda: self._gauge("max_queue", reset=True), unit="{task}")
        registry.gauge(POOL_METRICS_THREADS, lambda: self._gauge("threads"), unit="{thread}")
        registry.gauge(POOL_METRICS_MAX_THREADS, lambda: self._gauge("max_workers"), unit="{thread}")

    def _pool(self, executor):
        p = executor.__dict__.get("_ss_pool")
        if p is None:
            name = executor.__dict__.get("_ss_name") or DEFAULT_EXECUTOR
            p = self.pools.get(name)
            if p is None:
                attrs = ((POOL_NAME, name), (POOL_TYPE, POOL_TYPE_NAME))
                p = self.pools[name] = {
                    "attrs": attrs,
                    "wait": self.registry.histogram(POOL_METRICS_QUEUE_WAIT, attrs),
                    "run": self.registry.histogram(POOL_METRICS_RUN_TIME, attrs),
                    "executors": [],
                    "max_queue": 0,
                    "max_workers": executor._max_workers,
                }
            p["executors"].append(executor)
            executor._ss_pool = p
        return p

    def _gauge(self, key, reset=False):
        out = []
        for p in list(self.pools.values()):
            live = [e for e in p["executors"] if not getattr(e, "_shutdown", False)]
            p["executors"] = live
            if key == "threads":
                value = sum(len(e._threads) for e in live)
            else:
                value = p[key]
                if reset:
                    p[key] = max((e._work_queue.qsize() for e in live), default=0)
            out.append((p["attrs"], value))
        return out

    def install(self):
        agent = self
        original_init = ThreadPoolExecutor.__init__
        original_submit = ThreadPoolExecutor.submit

        def __init__(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            try:
                # The one asyncio makes for run_in_executor(None, ...) and to_thread.
                made_by_asyncio = sys._getframe(1).f_code.co_filename.endswith(os.path.join("asyncio", "base_events.py"))
                site, _ = (None, None) if made_by_asyncio else caller_site(2)
                self._ss_name = site or DEFAULT_EXECUTOR
            except Exception as err:
                safety.report("pool naming", err)

        def submit(self, fn, /, *args, **kwargs):
            try:
                pool = agent._pool(self)
                submitted = _perf()
                parent = spans.active()
                queued = self._work_queue.qsize() + 1
                if queued > pool["max_queue"]:
                    pool["max_queue"] = queued
            except Exception as err:
                safety.report("pool tracking", err)
                return original_submit(self, fn, *args, **kwargs)

            def task(*a, **k):
                started = _perf()
                outcome = "completed"
                try:
                    return fn(*a, **k)
                except BaseException:
                    outcome = "error"
                    raise
                finally:
                    agent._finished(pool, fn, parent, submitted, started, _perf(), outcome)

            return original_submit(self, task, *args, **kwargs)

        ThreadPoolExecutor.__init__ = __init__
        ThreadPoolExecutor.submit = submit
        self.patched += [(ThreadPoolExecutor, "__init__", original_init), (ThreadPoolExecutor, "submit", original_submit)]

    def _finished(self, pool, fn, parent, submitted, started, ended, outcome):
        try:
            with self.lock:
                pool["wait"].record((started - submitted) / 1e9)
                pool["run"].record((ended - started) / 1e9)
            attrs = {
                KIND: KINDS_POOL_TASK,
                POOL_NAME: pool["attrs"][0][1],
                POOL_TYPE: POOL_TYPE_NAME,
                POOL_TASK: _task_name(fn),
                POOL_OUTCOME: outcome,
                POOL_QUEUE_WAIT_MS: (started - submitted) / 1e6,
                POOL_RUN_MS: (ended - started) / 1e6,
                POOL_METRICS_MAX_THREADS: pool["max_workers"],
            }
            s = spans.Span(SPAN_NAMES_POOL_TASK, spans.wall_ns(submitted), spans.wall_ns(ended), attrs, parent=parent)
            if outcome != "completed":
                s.status = (spans.STATUS_ERROR, outcome)
            spans.record(s)
        except Exception as err:
            safety.report("pool tracking", err)

    def uninstall(self):
        for owner, attr, original in reversed(self.patched):
            setattr(owner, attr, original)
        self.patched.clear()
