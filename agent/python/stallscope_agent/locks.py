"""asyncio.Lock, Semaphore, BoundedSemaphore and Condition: wait and hold times per lock resource,
with the waiting site, the holder it queued behind, the queue depth, and locks held too long while
others wait. And threading.Lock taken on a loop's thread while another thread holds it, which
stops the whole loop.

A resource is named by name_lock(lock, "orders"), else by the file:line that created it. Locks
sharing a name share their statistics. The uncontended path does no more than count and time:
sites and stacks are taken only for requests that wait, and for holders of a lock that made
someone wait in the last 10 s."""

import _thread
import asyncio
import threading
import time
import weakref

from . import safety, spans
from .conventions import (
    KIND,
    LOCK_ACQUIRE_SITE,
    LOCK_CONTENDED,
    LOCK_HELD_MS,
    LOCK_HOLDER_SITE,
    LOCK_HOLDER_SPAN,
    LOCK_HOLDER_TRACE,
    KINDS_LOCK_HELD,
    KINDS_LOCK_WAIT,
    LOCK_METRICS_ACQUISITIONS,
    LOCK_METRICS_HOLD_TIME,
    LOCK_METRICS_PENDING,
    LOCK_METRICS_WAIT_TIME,
    LOCK_NAME,
    LOCK_OUTCOME,
    LOCK_QUEUE_DEPTH,
    SPAN_NAMES_LOCK_HELD,
    SPAN_NAMES_LOCK_WAIT,
    LOCK_TYPE,
    LOCK_WAITERS,
)
from .stack import caller_site, code_attributes, frames_of

_perf = time.perf_counter_ns
HOT_NS = 10_000_000_000
_get_running_loop = asyncio.events._get_running_loop


class LockStats:
    """Everything kept for one lock resource (a name and a type)."""

    __slots__ = ("name", "type", "registry", "uncontended", "contended", "hold", "waits", "max_pending", "last_contended")

    def __init__(self, registry, name, type_):
        self.name = name
        self.type = type_
        self.registry = registry
        base = ((LOCK_NAME, name), (LOCK_TYPE, type_))
        self.uncontended = registry.counter(LOCK_METRICS_ACQUISITIONS, base + ((LOCK_CONTENDED, False),), unit="{acquisition}")
        self.contended = registry.counter(LOCK_METRICS_ACQUISITIONS, base + ((LOCK_CONTENDED, True),), unit="{acquisition}")
        self.hold = registry.histogram(LOCK_METRICS_HOLD_TIME, base)
        self.waits = {}
        self.max_pending = 0
        self.last_contended = -HOT_NS

    def wait(self, outcome):
        h = self.waits.get(outcome)
        if h is None:
            h = self.waits[outcome] = self.registry.histogram(LOCK_METRICS_WAIT_TIME, ((LOCK_NAME, self.name), (LOCK_TYPE, self.type), (LOCK_OUTCOME, outcome)))
        return h


class LockTracker:
    def __init__(self, config, registry):
        self.config = config
        self.registry = registry
        self.stats = {}
        self.wait_threshold_ns = int(config.lock_wait_threshold_ms * 1e6)
        self.held_threshold_ns = int(config.lock_held_threshold_ms * 1e6)
        # Locks someone waited for: checked for being held too long.
        self.watched = weakref.WeakSet()
        self._watched_lock = _thread.allocate_lock()
        self.last_scan = 0
        self.patched = []
        registry.gauge(LOCK_METRICS_PENDING, self._pending, unit="{request}")

    # -- resources -------------------------------------------------------------------------
    def stats_for(self, lock):
        st = lock.__dict__.get("_ss_stats")
        if st is None:
            name = lock.__dict__.get("_ss_name") or "unknown site"
            type_ = lock.__dict__.get("_ss_type") or f"asyncio.{type(lock).__name__}"
            key = (name, type_)
            st = self.stats.get(key)
            if st is None:
                st = self.stats[key] = LockStats(self.registry, name, type_)
            lock._ss_stats = st
        return st

    def _pending(self):
        out = []
        for st in list(self.stats.values()):
            out.append((((LOCK_NAME, st.name), (LOCK_TYPE, st.type)), st.max_pending))
            st.max_pending = 0
        return out

    # -- acquisitions ----------------------------------------------------------------------
    def granted(self, lock, st, now):
        """A grant without waiting: who holds it, in enough detail for those who will wait."""
        holder = None
        if now - st.last_contended < HOT_NS:
            site, _ = caller_site(3)
            holder = site
        grants = lock.__dict__.get("_ss_grants")
        entry = (now, holder, spans.active())
        if grants is None:
            lock._ss_grants = [entry]
        else:
            grants.append(entry)

    async def contended(self, lock, st, original):
        start = _perf()
        waiters = lock._waiters
        depth = len(waiters) if waiters else 0
        site, frame = caller_site(3)
        parent = spans.active()
        grants = lock.__dict__.get("_ss_grants") or ()
        holder = grants[0] if grants else None
        st.last_contended = start
        if depth + 1 > st.max_pending:
            st.max_pending = depth + 1
        with self._watched_lock:
            self.watched.add(lock)
        outcome = "granted"
        try:
            return await original(lock)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            end = _perf()
            try:
                st.wait(outcome).record((end - start) / 1e9)
                if outcome == "granted":
                    st.contended.n += 1
                    entry = (end, site, parent)
                    if "_ss_grants" in lock.__dict__:
                        lock._ss_grants.append(entry)
                    else:
                        lock._ss_grants = [entry]
                if end - start >= self.wait_threshold_ns:
                    attrs = {KIND: KINDS_LOCK_WAIT, LOCK_NAME: st.name, LOCK_TYPE: st.type, LOCK_OUTCOME: outcome, LOCK_QUEUE_DEPTH: depth}
                    if site:
                        attrs[LOCK_ACQUIRE_SITE] = site
                        attrs.update(code_attributes(frames_of(frame)))
                    if holder is not None:
                        if holder[1]:
                            attrs[LOCK_HOLDER_SITE] = holder[1]
                        if holder[2]:
                            attrs[LOCK_HOLDER_TRACE], attrs[LOCK_HOLDER_SPAN] = holder[2]
                    spans.record(spans.Span(SPAN_NAMES_LOCK_WAIT, spans.wall_ns(start), spans.wall_ns(end), attrs, parent=parent))
            except Exception as err:
                safety.report("lock tracking", err)

    # -- held too long ---------------------------------------------------------------------
    def scan(self):
        """From the watchdog thread: report locks held past the threshold while others wait."""
        now = _perf()
        if now - self.last_scan < 200_000_000:
            return
        self.last_scan = now
        with self._watched_lock:
            watched = list(self.watched)
        for lock in watched:
            try:
                waiters = [w for w in list(lock._waiters or ()) if not w.done()]
                grants = lock.__dict__.get("_ss_grants") or ()
                if not waiters or not grants:
                    if not waiters:
                        with self._watched_lock:
                            self.watched.discard(lock)
                    continue
                granted_at, site, holder = grants[0]
                # Reported at the threshold, again at twice the age, then every minute.
                due = lock.__dict__.get("_ss_held_next")
                age = now - granted_at
                if age < (due[1] if due and due[0] == granted_at else self.held_threshold_ns):
                    continue
                lock._ss_held_next = (granted_at, age + min(age, 60_000_000_000))
                st = lock._ss_stats
                attrs = {KIND: KINDS_LOCK_HELD, LOCK_NAME: st.name, LOCK_TYPE: st.type, LOCK_HELD_MS: (now - granted_at) / 1e6, LOCK_WAITERS: len(waiters)}
                if site:
                    attrs[LOCK_HOLDER_SITE] = site
                spans.record(spans.Span(SPAN_NAMES_LOCK_HELD, spans.wall_ns(granted_at), spans.wall_ns(now), attrs, parent=holder))
            except Exception as err:
                safety.report("held-lock check", err)

    # -- patches ---------------------------------------------------------------------------
    def install(self, sync_calls):
        tracker = self

        def patch(cls, attr, make):
            original = cls.__dict__[attr]
            wrapped = make(original)
            wrapped.__name__, wrapped.__qualname__, wrapped.__doc__ = original.__name__, original.__qualname__, original.__doc__
            wrapped.__wrapped__ = original
            setattr(cls, attr, wrapped)
            self.patched.append((cls, attr, original))

        def named_init(original):
            def __init__(self, *args, **kwargs):
                original(self, *args, **kwargs)
                try:
                    if "_ss_name" not in self.__dict__:
                        site, _ = caller_site(2)
                        self._ss_name = site or "unknown site"
                except Exception as err:
                    safety.report("lock naming", err)

            return __init__

        active = spans.active
        granted = tracker.granted

        # The uncontended paths are inlined: each call saved is about 0.1 us per acquisition.
        def lock_acquire(original):
            async def acquire(self):
                d = self.__dict__
                st = d.get("_ss_stats") or tracker.stats_for(self)
                # The library's own fast path, taken here to spare a coroutine: free and nobody queued.
                if not self._locked and not self._waiters:
                    self._locked = True
                    st.uncontended.n += 1
                    now = _perf()
                    if now - st.last_contended < HOT_NS:
                        granted(self, st, now)
                    else:
                        d["_ss_grants"] = [(now, None, active())]
                    return True
                return await tracker.contended(self, st, original)

            return acquire

        def semaphore_acquire(original):
            async def acquire(self):
                st = self.__dict__.get("_ss_stats") or tracker.stats_for(self)
                if self._value > 0 and not self._waiters:
                    self._value -= 1
                    st.uncontended.n += 1
                    granted(self, st, _perf())
                    return True
                return await tracker.contended(self, st, original)

            return acquire

        def release(original):
            def release(self):
                original(self)
                grants = self.__dict__.get("_ss_grants")
                if grants:
                    # Semaphores do not say which holder releases: the oldest grant is taken as it.
                    self._ss_stats.hold.record((_perf() - grants.pop(0)[0]) / 1e9)

            return release

        patch(asyncio.Lock, "__init__", named_init)
        patch(asyncio.Lock, "acquire", lock_acquire)
        patch(asyncio.Lock, "release", release)
        # BoundedSemaphore goes through these: its __init__ and release call Semaphore's.
        patch(asyncio.Semaphore, "__init__", named_init)
        patch(asyncio.Semaphore, "acquire", semaphore_acquire)
        patch(asyncio.Semaphore, "release", release)

        def condition_init(original):
            def __init__(self, lock=None, *args, **kwargs):
                own = lock is None
                original(self, lock, *args, **kwargs)
                try:
                    if own:
                        # The lock it made inside asyncio: named and typed as the Condition.
                        site, _ = caller_site(2)
                        self._lock._ss_name = site or "unknown site"
                        self._lock._ss_type = "asyncio.Condition"
                except Exception as err:
                    safety.report("lock naming", err)

            return __init__

        patch(asyncio.Condition, "__init__", condition_init)
        self._install_threading(sync_calls)

    def _install_threading(self, sync_calls):
        allocate = _thread.allocate_lock

        class Lock:
            """threading.Lock, watched when a loop's thread blocks on it."""

            __slots__ = ("_lock", "__weakref__")

            def __init__(self):
                self._lock = allocate()

            def acquire(self, blocking=True, timeout=-1):
                if blocking and _get_running_loop() is not None:
                    if self._lock.acquire(False):
                        return True
                    # Taken by another thread: this loop's thread, and every task on it, waits.
                    start = _perf()
                    try:
                        return self._lock.acquire(True, timeout)
                    finally:
                        sync_calls.record("threading.Lock.acquire", start, _perf())
                return self._lock.acquire(blocking, timeout)

            def __enter__(self):
                return self.acquire()

            def __exit__(self, *exc):
                self._lock.release()

            def release(self):
                self._lock.release()

            def locked(self):
                return self._lock.locked()

            def _at_fork_reinit(self):
                self._lock._at_fork_reinit()

            def __repr__(self):
                return f"<stallscope-watched {self._lock!r}>"

        original = threading.Lock
        threading.Lock = Lock
        self.patched.append((threading, "Lock", original))

    def uninstall(self):
        for owner, attr, original in reversed(self.patched):
            setattr(owner, attr, original)
        self.patched.clear()


def name_lock(lock, name):
    """Names an asyncio lock resource (before its first use); returns the lock."""
    lock.__dict__["_ss_name"] = str(name)
    lock.__dict__.pop("_ss_stats", None)
    return lock
