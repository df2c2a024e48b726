"""asyncio.run() or loop.run_until_complete() called while a loop already runs on this thread:
asyncio raises RuntimeError, which the app still gets unchanged; the agent also records it as a
span with the caller's stack, inside the span that made the call."""

import asyncio
import sys
import time

from . import safety, spans
from .conventions import KIND, KINDS_NESTED_LOOP, NESTED_API, SPAN_NAMES_NESTED_LOOP
from .stack import code_attributes, frames_of

_get_running_loop = asyncio.events._get_running_loop


class NestedRuns:
    def __init__(self):
        self.patched = []

    def _record(self, api, err):
        try:
            now = time.perf_counter_ns()
            attrs = {KIND: KINDS_NESTED_LOOP, NESTED_API: api, **code_attributes(frames_of(sys._getframe(2)))}
            s = spans.Span(SPAN_NAMES_NESTED_LOOP, spans.wall_ns(now), spans.wall_ns(now), attrs, parent=spans.active())
            s.status = (spans.STATUS_ERROR, f"RuntimeError: {err}")
            s.events.append(("exception", spans.wall_ns(now), {"exception.type": "RuntimeError", "exception.message": str(err)}))
            spans.record(s)
        except Exception as e:
            safety.report("nested loop", e)

    def install(self):
        agent = self
        original_run = asyncio.run
        original_ruc = asyncio.BaseEventLoop.run_until_complete

        def run(main, *args, **kwargs):
            if _get_running_loop() is not None:
                try:
                    return original_run(main, *args, **kwargs)
                except RuntimeError as err:
                    agent._record("asyncio.run", err)
                    raise
            return original_run(main, *args, **kwargs)

        def run_until_complete(self, future):
            if _get_running_loop() is not None:
                try:
                    return original_ruc(self, future)
                except RuntimeError as err:
                    agent._record("loop.run_until_complete", err)
                    raise
            return original_ruc(self, future)

        for fn, original in ((run, original_run), (run_until_complete, original_ruc)):
            fn.__name__, fn.__qualname__, fn.__doc__, fn.__wrapped__ = original.__name__, original.__qualname__, original.__doc__, original
        asyncio.run = run
        asyncio.runners.run = run
        asyncio.BaseEventLoop.run_until_complete = run_until_complete
        self.patched += [(asyncio, "run", original_run), (asyncio.runners, "run", original_run), (asyncio.BaseEventLoop, "run_until_complete", original_ruc)]

    def uninstall(self):
        for owner, attr, original in reversed(self.patched):
            setattr(owner, attr, original)
        self.patched.clear()
