"""The loop's CPU profile. The watchdog thread, which already wakes every few milliseconds, reads
each running loop's thread frame (sys._current_frames) at the sampling rate, but only while that
loop is busy (not waiting in select), and keeps the stacks of one window; each window is handed to
the exporter thread, which encodes it as pprof and posts it. Nothing runs on the loop's thread.

The back-off follows the Node agent's: a window with no headroom (busy throughout and held up for
half the blocking threshold) is followed by one at a quarter of the rate; sampling that took more
than 2% of a window (this thread's CPU time, while it holds the GIL) lowers the rate, then stops
sampling for a while; a calm window brings the full rate back.

CPython hands the GIL over every 5 ms (sys.getswitchinterval()): the sampler, which needs it, runs
when the loop thread lets go, so a burst of Python code shorter than that often ends (and the loop
goes back to select) before it is sampled. Long callbacks, blocks and busy loops, what saturates a
loop, are sampled at the rate."""

import os
import sys
import time

from .conventions import (
    PROFILE_REQUESTED_HZ,
    PROFILER_METRICS_BACKOFFS,
    PROFILER_METRICS_RATE,
    PROFILER_METRICS_STATE,
    PROFILER_REASON,
    PROFILER_REASON_COST,
    PROFILER_REASON_SATURATED,
    PROFILER_STATE,
    PROFILER_STATE_IDLE,
    PROFILER_STATE_PAUSED,
    PROFILER_STATE_REDUCED,
    PROFILER_STATE_SAMPLING,
    PROFILER_STATES,
)
from .stack import file_origin

# Under this a window is idle (the agent's own heartbeat keeps an idle loop 1-3% busy).
IDLE_BUSY = 0.05
SATURATED_BUSY = 0.9
CALM_BUSY = 0.7
REDUCE_BY = 4
# Sampling may use this share of a window (this thread's CPU time, which holds the GIL): about
# 80 us a sample here, so under 1% at 100 Hz.
COST_SHARE = 0.02
MAX_PAUSED_WINDOWS = 16
MAX_DEPTH = 128


class Policy:
    def __init__(self, hz, window_ms, threshold_ms):
        self.requested_hz = hz
        self.reduced_hz = max(1.0, round(hz / REDUCE_BY))
        self.cost_budget_ns = int(window_ms * 1e6 * COST_SHARE)
        self.saturated_gap_ns = int(threshold_ms * 1e6 / 2)


def next_window(policy, hz, state, reason, busy, max_gap_ns, sampling_ns):
    """(hz, state, reason, backoff) for the next window, from the one that just ended."""
    full = hz == policy.requested_hz
    can_reduce = full and policy.reduced_hz < hz
    if sampling_ns >= policy.cost_budget_ns:
        if can_reduce:
            return policy.reduced_hz, PROFILER_STATE_REDUCED, PROFILER_REASON_COST, PROFILER_REASON_COST
        return 0, PROFILER_STATE_PAUSED, PROFILER_REASON_COST, PROFILER_REASON_COST
    if busy >= SATURATED_BUSY and max_gap_ns >= policy.saturated_gap_ns and can_reduce:
        return policy.reduced_hz, PROFILER_STATE_REDUCED, PROFILER_REASON_SATURATED, PROFILER_REASON_SATURATED
    if busy < IDLE_BUSY:
        # Nothing is sampled while the loop waits: the state says so, and costs nothing.
        return policy.requested_hz, PROFILER_STATE_IDLE, None, None
    if full or busy < CALM_BUSY:
        return policy.requested_hz, PROFILER_STATE_SAMPLING, None, None
    return hz, state, reason, None


class Window:
    """One window's samples: (epoch ns, stack id) each, stacks as location ids leaf first."""

    __slots__ = ("start_ns", "end_ns", "hz", "samples", "stacks", "stack_ids", "locations", "codes", "attempts", "first_attempt", "last_attempt", "comments", "period_ns")

    def __init__(self, hz):
        self.start_ns = time.time_ns()
        self.end_ns = self.start_ns
        self.hz = hz
        self.samples = []
        self.stacks = []
        self.stack_ids = {}
        # (id(code), line) -> location id: hashing a code object hashes its bytecode and
        # constants, ids do not; `codes` keeps them alive (so their ids stay theirs) as (code, line).
        self.locations = {}
        self.codes = []
        self.attempts = 0
        self.first_attempt = 0
        self.last_attempt = 0
        self.comments = ()
        self.period_ns = 0.0

    def add(self, frame, ts):
        ids = []
        locations = self.locations
        while frame is not None and len(ids) < MAX_DEPTH:
            code = frame.f_code
            key = (id(code), frame.f_lineno)
            loc = locations.get(key)
            if loc is None:
                loc = locations[key] = len(locations) + 1
                self.codes.append((code, key[1]))
            ids.append(loc)
            frame = frame.f_back
        stack = tuple(ids)
        sid = self.stack_ids.get(stack)
        if sid is None:
            sid = self.stack_ids[stack] = len(self.stacks)
            self.stacks.append(ids)
        self.samples.append((ts, sid))


def describe(code, line):
    """(function, path, line, first line, origin) of a location: done when a window is encoded."""
    name = code.co_filename
    path = name if name.startswith("<") else os.path.abspath(name)
    return (code.co_name, path, line or 0, code.co_firstlineno, file_origin(name))


class LoopProfiler:
    def __init__(self, config, registry, submit, resource):
        self.policy = Policy(config.profile_hz, config.profile_window_ms, config.block_threshold_ms)
        self.window_ns = int(config.profile_window_ms * 1e6)
        self.submit = submit
        self.resource = resource
        self.hz = config.profile_hz
        self.state = PROFILER_STATE_IDLE
        self.reason = None
        self.registry = registry
        self.paused_windows = 0
        self.pause_for = 0
        self.window = None
        self.window_started = 0
        self.next_sample = 0
        self.max_gap_ns = 0
        self.sampling_ns = 0
        self.idle_at_start = {}
        registry.gauge(PROFILER_METRICS_RATE, self._rate, unit="{sample}/s")
        registry.gauge(PROFILER_METRICS_STATE, self._state, unit="1")

    def _rate(self):
        sampling = self.state in (PROFILER_STATE_SAMPLING, PROFILER_STATE_REDUCED)
        return [((), float(self.hz) if sampling else 0.0)]

    def _state(self):
        # Every state, 1 for the one in force: a series per state that never goes stale.
        return [(((PROFILER_STATE, s),), 1.0 if s == self.state else 0.0) for s in PROFILER_STATES]

    def wait_s(self, default):
        """How long the watchdog may sleep before the next sample is due."""
        if not self.hz:
            return default
        return max(0.0, min(default, (self.next_sample - time.perf_counter_ns()) / 1e9))

    def tick(self, now, loops):
        """Called by the watchdog thread on every wake."""
        if self.window is None:
            self._open(now, loops)
        for state in loops:
            gap = now - state.last_beat
            if gap > self.max_gap_ns:
                self.max_gap_ns = gap
        if self.hz and now >= self.next_sample:
            self._sample(now, loops)
        if now - self.window_started >= self.window_ns:
            self._close(now, loops)

    def _sample(self, now, loops):
        w = self.window
        w.attempts += 1
        if not w.first_attempt:
            w.first_attempt = now
        w.last_attempt = now
        interval = int(1e9 / self.hz)
        # Keep the cadence; after a stall, start again from now rather than catching up.
        self.next_sample = self.next_sample + interval if now - self.next_sample < interval else now + interval
        busy = [s for s in loops if s.selecting is False]
        if not busy:
            return
        # This thread's own CPU time: waiting for the GIL or the CPU is not sampling's cost.
        t0 = time.thread_time_ns()
        frames = sys._current_frames()
        ts = time.time_ns()
        for state in busy:
            frame = frames.get(state.thread_id)
            if frame is not None:
                w.add(frame, ts)
        del frames
        self.sampling_ns += time.thread_time_ns() - t0

    def _open(self, now, loops):
        self.window = Window(self.hz)
        self.window_started = now
        self.max_gap_ns = 0
        self.sampling_ns = 0
        self.idle_at_start = {id(s): s.idle_total_ns for s in loops}

    def _close(self, now, loops):
        w = self.window
        wall = max(1, now - self.window_started)
        # A loop that started during the window counts from its start.
        idle = sum(s.idle_total_ns - self.idle_at_start.get(id(s), 0) for s in loops if s.selecting is not None)
        watched = max(1, sum(1 for s in loops if s.selecting is not None))
        busy = max(0.0, min(1.0, 1 - idle / (wall * watched))) if watched and loops else 0.0
        if w.samples:
            self.submit(self._finish(w))
        if self.state == PROFILER_STATE_PAUSED:
            self.paused_windows -= 1
            if self.paused_windows <= 0:
                self.hz, self.state = self.policy.reduced_hz, PROFILER_STATE_REDUCED
        else:
            hz, state, reason, backoff = next_window(self.policy, self.hz, self.state, self.reason, busy, self.max_gap_ns, self.sampling_ns)
            if backoff:
                self.registry.add(PROFILER_METRICS_BACKOFFS, ((PROFILER_REASON, backoff),), unit="{backoff}")
            if state == PROFILER_STATE_PAUSED:
                self.pause_for = self.paused_windows = min(MAX_PAUSED_WINDOWS, max(1, self.pause_for * 2))
            elif state == PROFILER_STATE_SAMPLING:
                self.pause_for = 0
            self.hz, self.state, self.reason = hz, state, reason
        self._open(now, loops)

    def _finish(self, w):
        w.end_ns = time.time_ns()
        # The interval the sampler really kept (it runs late, as V8's does), not the one asked.
        w.period_ns = (w.last_attempt - w.first_attempt) / (w.attempts - 1) if w.attempts > 1 else 1e9 / w.hz
        w.comments = tuple(f"{k}={v}" for k, v in self.resource.items()) + (f"{PROFILE_REQUESTED_HZ}={w.hz:g}",)
        return w

    def take_window(self):
        """The window in progress, ended now (at exit), or None when it has no sample."""
        w, self.window = self.window, None
        return self._finish(w) if w is not None and w.samples else None
