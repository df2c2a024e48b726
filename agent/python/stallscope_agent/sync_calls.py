"""Blocking synchronous calls made on a running event loop's thread: time.sleep, blocking socket
I/O, subprocess, file reads through os.read and pathlib, json.loads of a large string. Each is
wrapped so that a call made while a loop runs on this thread is timed; one over the threshold
becomes a span (child of the active span) naming the API and the call site. Elsewhere (worker
threads, start-up code) the wrappers only pass the call through."""

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

from . import safety, spans
from .conventions import KIND, KINDS_SYNC_CALL, METRICS_SYNC_DURATION, SYNC_API, SYNC_BYTES
from .stack import code_attributes, frames_of

_get_running_loop = asyncio.events._get_running_loop
_perf = time.perf_counter_ns


class SyncCalls:
    def __init__(self, config, registry):
        self.config = config
        self.registry = registry
        self.threshold_ns = int(config.sync_threshold_ms * 1e6)
        self.patched = []
        # Per thread: several threads may each run a loop.
        self.local = threading.local()

    def record(self, api, start, end, extra=None):
        """A watched call that blocked the loop from start to end (perf_counter_ns)."""
        try:
            self.registry.histogram(METRICS_SYNC_DURATION, ((SYNC_API, api),)).record((end - start) / 1e9)
            if end - start < self.threshold_ns:
                return
            # The wrapper and this method sit above the caller.
            attrs = {KIND: KINDS_SYNC_CALL, SYNC_API: api, **code_attributes(frames_of(sys._getframe(2)))}
            if extra:
                attrs.update(extra)
            spans.record(spans.Span(api, spans.wall_ns(start), spans.wall_ns(end), attrs, parent=spans.active()))
        except Exception as err:
            safety.report("sync calls", err)

    def _wrap(self, owner, attr, api, watch=None):
        original = getattr(owner, attr)
        agent = self
        local = self.local

        def wrapper(*args, **kwargs):
            # Only the outermost watched call on a loop's thread is timed.
            if _get_running_loop() is None or getattr(local, "busy", False) or (watch is not None and not watch(args, kwargs)):
                return original(*args, **kwargs)
            local.busy = True
            start = _perf()
            try:
                return original(*args, **kwargs)
            finally:
                local.busy = False
                agent.record(api, start, _perf(), _json_size(args) if api == "json.loads" else None)

        wrapper.__name__ = getattr(original, "__name__", attr)
        wrapper.__qualname__ = getattr(original, "__qualname__", attr)
        wrapper.__doc__ = getattr(original, "__doc__", None)
        wrapper.__wrapped__ = original
        setattr(owner, attr, wrapper)
        self.patched.append((owner, attr, original))

    def install(self):
        blocking_socket = lambda args, kwargs: args[0].gettimeout() != 0.0  # asyncio's own sockets are non-blocking
        large = lambda args, kwargs: bool(args) and isinstance(args[0], (str, bytes, bytearray)) and len(args[0]) >= self.config.json_size_threshold
        self._wrap(time, "sleep", "time.sleep")
        for name in ("recv", "recv_into", "recvfrom", "sendall", "connect", "accept"):
            self._wrap(socket.socket, name, f"socket.{name}", blocking_socket)
        for name in ("run", "call", "check_call", "check_output"):
            self._wrap(subprocess, name, f"subprocess.{name}")
        self._wrap(os, "read", "os.read")
        for name in ("read_text", "read_bytes", "write_text", "write_bytes"):
            self._wrap(pathlib.Path, name, f"pathlib.Path.{name}")
        self._wrap(json, "loads", "json.loads", large)

    def uninstall(self):
        for owner, attr, original in reversed(self.patched):
            setattr(owner, attr, original)
        self.patched.clear()


def _json_size(args):
    return {SYNC_BYTES: len(args[0])} if args and isinstance(args[0], (str, bytes, bytearray)) else None
