"""Event-loop lag and blocking episodes.

Each running loop schedules a heartbeat on itself every few milliseconds; how late each beat runs
is the loop's delay. A watchdog thread watches the beats: when none has run for longer than the
threshold, it reads the loop thread's stack (sys._current_frames) while the loop is still stuck,
and when the loop turns again the episode becomes one span naming the blocking line. A C call
that holds the GIL keeps the watchdog thread from running at all: its episode is reported
without a stack, unless STALLSCOPE_GIL_STACKS=true arms faulthandler's own C-level timer at each
check, which writes the stacks to a file when the watchdog misses its deadline (the watchdog reads
it once it runs again). That timer dumps the threads' frames without the GIL while they run, which
can crash CPython, so it is off by default.
"""

import asyncio
import faulthandler
import os
import re
import sys
import tempfile
import threading
import time

from . import safety, spans
from .conventions import (
    BLOCK_CAPTURE_ERROR,
    BLOCK_CAPTURED,
    BLOCK_ORIGIN,
    BLOCK_REPORTED,
    BLOCK_THRESHOLD_MS,
    KIND,
    KINDS_LOOP_BLOCK,
    LOOP_STATE,
    LOOP_DELAY_STATS,
    METRICS_BLOCK_DURATION,
    METRICS_BLOCKS,
    METRICS_LOOP_DELAY_PREFIX,
    METRICS_LOOP_TIME,
    METRICS_LOOP_UTILIZATION,
    SPAN_NAMES_LOOP_BLOCK,
)
from .stack import code_attributes, frames_of, origin

_TRACEBACK_LINE = re.compile(r'^\s+File "(.+)", line (\d+) in (.+)$')


class LoopState:
    """One running loop: its thread, its beats, the delays seen since the last export."""

    def __init__(self, loop, interval_s, threshold_ns):
        self.loop = loop
        self.thread_id = threading.get_ident()
        self.interval_s = interval_s
        self.threshold_ns = threshold_ns
        self.last_beat = time.perf_counter_ns()
        self.beats = 0
        self.delays = []
        self.idle_ns = 0
        # Never reset (idle_ns is, at each export), and whether the loop waits in select now:
        # None until select has been seen (a loop without a selector is never sampled).
        self.idle_total_ns = 0
        self.selecting = None
        self.handle = None
        self.running = True
        # What the watchdog saw while the loop was stuck: (beats then, frames, active span).
        self.capture = None
        # Episodes the loop has come out of, for the watchdog to report: (start, end, capture).
        self.finished = []

    def beat(self):
        now = time.perf_counter_ns()
        gap = now - self.last_beat
        # Late beyond the interval it was scheduled for: the loop was busy that long.
        self.delays.append(max(0, gap - int(self.interval_s * 1e9)))
        if gap > self.threshold_ns:
            capture = self.capture if self.capture is not None and self.capture[0] == self.beats else None
            self.finished.append((self.last_beat, now, capture))
        self.capture = None
        self.last_beat = now
        self.beats += 1
        if self.running:
            self.handle = self.loop.call_later(self.interval_s, self.beat)


def _wrap_select(state, select):
    """Time spent waiting in select is the loop's idle time (for utilization)."""

    def timed(timeout=None):
        start = time.perf_counter_ns()
        state.selecting = True
        try:
            return select(timeout)
        finally:
            state.selecting = False
            waited = time.perf_counter_ns() - start
            state.idle_ns += waited
            state.idle_total_ns += waited

    return timed


class LoopMonitor:
    def __init__(self, config, registry):
        self.config = config
        self.registry = registry
        self.threshold_ns = int(config.block_threshold_ms * 1e6)
        # Beats often enough to bound the error, rarely enough to cost nothing measurable.
        self.interval_s = min(0.01, config.block_threshold_ms / 10_000)
        self.loops = {}
        self.tick_hooks = []
        # The loop profiler (profiler.py), when sampling is on: it samples from this thread.
        self.profiler = None
        self.block_hist = registry.histogram(METRICS_BLOCK_DURATION)
        # Spans per minute are capped (the episodes are all counted) so a pathological app
        # cannot flood the collector.
        self.minute = 0
        self.reported_this_minute = 0
        self.stop = threading.Event()
        self.dump = tempfile.TemporaryFile(mode="w+") if config.gil_stacks else None
        self.window_start = time.perf_counter_ns()
        registry.gauge(METRICS_LOOP_UTILIZATION, self._utilization)
        self.loop_time = {
            state: registry.counter(METRICS_LOOP_TIME, ((LOOP_STATE, state),), unit="s", double=True)
            for state in ("active", "idle")
        }
        for stat in LOOP_DELAY_STATS:
            registry.gauge(METRICS_LOOP_DELAY_PREFIX + stat, lambda stat=stat: self._delay_stat(stat), unit="s")
        self._stats = {}
        self._util = None
        self.thread = threading.Thread(target=self._run, name="stallscope-watchdog", daemon=True)

    # -- loops -----------------------------------------------------------------------------
    def attach(self, loop):
        """Called on the loop's thread as it starts running."""
        state = LoopState(loop, self.interval_s, self.threshold_ns)
        self.loops[id(loop)] = state
        try:
            selector = getattr(loop, "_selector", None)
            if selector is not None and not getattr(selector.select, "_stallscope", False):
                timed = _wrap_select(state, selector.select)
                timed._stallscope = True
                selector.select = timed
        except Exception as err:
            safety.report("loop utilization", err)
        state.handle = loop.call_later(self.interval_s, state.beat)
        return state

    def detach(self, state):
        state.running = False
        if state.handle is not None:
            state.handle.cancel()
        self.loops.pop(id(state.loop), None)

    # -- metrics ---------------------------------------------------------------------------
    def collect(self):
        """Called by the exporter before it reads the gauges: folds the delays since the last export."""
        now = time.perf_counter_ns()
        delays = []
        idle = 0
        for state in list(self.loops.values()):
            delays.extend(state.delays)
            state.delays = []
            idle += state.idle_ns
            state.idle_ns = 0
        span = max(1, now - self.window_start)
        self.window_start = now
        loops = max(1, len(self.loops))
        self._util = max(0.0, min(1.0, 1 - idle / (span * loops))) if self.loops else None
        if self.loops:
            idle = min(idle, span * loops)
            self.loop_time["idle"].n += idle / 1e9
            self.loop_time["active"].n += (span * loops - idle) / 1e9
        if not delays:
            self._stats = {}
            return
        delays.sort()
        n = len(delays)
        mean = sum(delays) / n
        pick = lambda q: delays[min(n - 1, int(q * n))]
        self._stats = {
            "min": delays[0],
            "max": delays[-1],
            "mean": mean,
            "stddev": (sum((d - mean) ** 2 for d in delays) / n) ** 0.5,
            "p50": pick(0.5),
            "p90": pick(0.9),
            "p99": pick(0.99),
        }

    def _delay_stat(self, stat):
        v = self._stats.get(stat)
        return [] if v is None else [((), v / 1e9)]

    def _utilization(self):
        return [] if self._util is None else [((), self._util)]

    # -- the watchdog ----------------------------------------------------------------------
    def start(self):
        self.thread.start()

    def _arm(self):
        # If this thread cannot run for a while (a C call holds the GIL), faulthandler's own C
        # thread writes every thread's stack to the file at the deadline. Re-arming starts a new
        # C thread, so it is done every half threshold, not at every check.
        self.dump.seek(0)
        self.dump.truncate()
        faulthandler.dump_traceback_later(self.config.block_threshold_ms / 1000 * 1.5, repeat=False, file=self.dump)

    def _read_dump(self):
        """{thread id: frames} and when it was written, if faulthandler wrote anything."""
        self.dump.flush()
        self.dump.seek(0)
        text = self.dump.read()
        if not text:
            return None
        written = os.fstat(self.dump.fileno()).st_mtime_ns - spans.wall_ns(0)
        stacks = {}
        frames = None
        for line in text.splitlines():
            m = re.match(r"^(?:Current thread|Thread) (0x[0-9a-f]+)", line)
            if m:
                frames = stacks.setdefault(int(m.group(1), 16), [])
                continue
            m = _TRACEBACK_LINE.match(line)
            if m and frames is not None:
                frames.append((m.group(3).strip(), m.group(1), int(m.group(2))))
        return written, stacks

    def _run(self):
        last_check = time.perf_counter_ns()
        last_arm = 0
        dump = None
        while not self.stop.wait(self.profiler.wait_s(self.interval_s) if self.profiler else self.interval_s):
            try:
                now = time.perf_counter_ns()
                late = now - last_check > self.threshold_ns
                if late and self.dump is not None:
                    # This thread could not run: the GIL was held. Did faulthandler see by whom?
                    dump = self._read_dump() or dump
                    last_arm = 0
                last_check = now
                if self.dump is not None and now - last_arm > self.threshold_ns // 2:
                    self._arm()
                    last_arm = now
                for state in list(self.loops.values()):
                    if state.capture is None and now - state.last_beat > self.threshold_ns:
                        # After a held GIL the stack now is what ran after the block: the dump
                        # written during it is the one that names the blocking line.
                        dumped = dump[1].get(state.thread_id) if late and dump and dump[0] >= state.last_beat else None
                        state.capture = self._capture(state, dumped)
                    while state.finished:
                        self._report(state, *state.finished.pop(0), dump)
                for hook in self.tick_hooks:
                    hook()
            except Exception as err:
                safety.report("watchdog", err)
            if self.profiler is not None:
                try:
                    self.profiler.tick(time.perf_counter_ns(), list(self.loops.values()))
                except Exception as err:
                    safety.report("loop profiler", err)

    def _capture(self, state, frames=None):
        """The stuck loop thread's stack (unless given) and active span, read from this thread."""
        beats = state.beats
        try:
            if frames is None:
                frame = sys._current_frames().get(state.thread_id)
                frames = frames_of(frame) if frame is not None else None
            return (beats, frames, spans.active_in(asyncio.current_task(state.loop)))
        except Exception as err:
            safety.report("watchdog capture", err)
            return (beats, None, None)

    def _report(self, state, start, end, capture, dump):
        self.block_hist.record((end - start) / 1e9)
        minute = int(time.monotonic() // 60)
        if minute != self.minute:
            self.minute, self.reported_this_minute = minute, 0
        reported = self.reported_this_minute < self.config.max_blocks_per_minute
        self.registry.add(METRICS_BLOCKS, ((BLOCK_REPORTED, reported),), unit="{episode}")
        if not reported:
            return
        self.reported_this_minute += 1
        frames, parent, error = None, None, None
        if capture is not None:
            _, frames, parent = capture
        if not frames and dump is not None and start <= dump[0] <= end:
            frames = dump[1].get(state.thread_id)
        if not frames:
            error = "the loop turned before the stack could be read"
        attrs = {KIND: KINDS_LOOP_BLOCK, BLOCK_THRESHOLD_MS: self.config.block_threshold_ms, BLOCK_CAPTURED: bool(frames)}
        if frames:
            attrs.update(code_attributes(frames))
            attrs[BLOCK_ORIGIN] = origin(frames)
        else:
            attrs[BLOCK_CAPTURE_ERROR] = error
        spans.record(spans.Span(SPAN_NAMES_LOOP_BLOCK, spans.wall_ns(start), spans.wall_ns(end), attrs, parent=parent))

    def close(self):
        self.stop.set()
        if self.dump is None:
            return
        try:
            faulthandler.cancel_dump_traceback_later()
        except Exception:
            pass
