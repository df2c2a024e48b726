"""asyncio.Lock, Semaphore, BoundedSemaphore and Condition: wait and hold times per lock resource,
with the waiting site, the holds each wait was charged to, the queue depth, and locks held too
long while others wait. And threading.Lock taken on a loop's thread while another thread holds
it, which stops the whole loop.

A resource is named by name_lock(lock, "orders"), else by the file:line that created it. Locks
sharing a name share their statistics. The uncontended path does no more than count and time:
sites and stacks are taken only for requests that wait, and for holders of a lock that made
someone wait in the last 10 s.

Lock blame: each wait is charged, exactly, to the holds that ran during it (see Contention); the
span of a wait over the threshold lists them, and every wait adds its charges to the
wait_caused counter by holder site and waiter site. Nothing is kept for it while nobody waits."""

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
    LOCK_HANDOFF_MS,
    LOCK_HELD_MS,
    LOCK_HOLDER_MS,
    LOCK_HOLDER_SITE,
    LOCK_HOLDER_SITES,
    LOCK_HOLDER_SPAN,
    LOCK_HOLDER_TRACE,
    KINDS_LOCK_HELD,
    KINDS_LOCK_WAIT,
    LOCK_METRICS_ACQUISITIONS,
    LOCK_METRICS_HOLD_TIME,
    LOCK_METRICS_PENDING,
    LOCK_METRICS_WAIT_CAUSED,
    LOCK_METRICS_WAIT_TIME,
    LOCK_NAME,
    LOCK_OUTCOME,
    LOCK_QUEUE_DEPTH,
    LOCK_SITES_HANDOFF,
    LOCK_SITES_OTHER,
    LOCK_SITES_UNKNOWN,
    SPAN_NAMES_LOCK_HELD,
    SPAN_NAMES_LOCK_WAIT,
    LOCK_TYPE,
    LOCK_WAITERS,
)
from .stack import caller_frame, caller_site, code_attributes, frames_of, site_of

_perf = time.perf_counter_ns
HOT_NS = 10_000_000_000
_get_running_loop = asyncio.events._get_running_loop
_current_task = asyncio.current_task
# Holder sites listed on a wait's span; holder and acquire sites counted per lock name in wait_caused.
TOP_SITES = 5
MAX_SITES = 20
_NOT_CODE = (LOCK_SITES_HANDOFF, LOCK_SITES_UNKNOWN, LOCK_SITES_OTHER)


def _task():
    try:
        return _current_task()
    except RuntimeError:  # no running loop: released from plain code
        return None


class LockStats:
    """Everything kept for one lock resource (a name and a type)."""

    __slots__ = ("name", "type", "registry", "uncontended", "contended", "hold", "waits", "max_pending", "last_contended", "caused", "holder_sites", "acquire_sites")

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
        self.caused = {}
        self.holder_sites = set()
        self.acquire_sites = set()

    def wait(self, outcome):
        h = self.waits.get(outcome)
        if h is None:
            h = self.waits[outcome] = self.registry.histogram(LOCK_METRICS_WAIT_TIME, ((LOCK_NAME, self.name), (LOCK_TYPE, self.type), (LOCK_OUTCOME, outcome)))
        return h

    def wait_caused(self, holder_site, acquire_site):
        """The counter of wait charged to holder_site while acquire_site waited."""
        c = self.caused.get((holder_site, acquire_site))
        if c is None:
            key = (_bounded(self.holder_sites, holder_site), _bounded(self.acquire_sites, acquire_site))
            c = self.caused.get(key)
            if c is None:
                attrs = ((LOCK_NAME, self.name), (LOCK_TYPE, self.type), (LOCK_HOLDER_SITE, key[0]), (LOCK_ACQUIRE_SITE, key[1]))
                c = self.caused[key] = self.registry.counter(LOCK_METRICS_WAIT_CAUSED, attrs, unit="s", double=True)
        return c


def _bounded(seen, site):
    """The site, or (other) past the first MAX_SITES of a lock name."""
    if site in seen or site in _NOT_CODE:
        return site
    if len(seen) < MAX_SITES:
        seen.add(site)
        return site
    return LOCK_SITES_OTHER


class Contention(list):
    """A lock's open grants while someone waits for it, in place of the plain list kept
    otherwise, with the ledger its waits are charged from (the Node agent's agent/locks/blame.ts):
    running integrals over time, p = the integral of dt / (holds in progress) while something is
    held and free = the integral of dt while nothing is, and per holder site the sum over its
    holds of p at release minus p at grant (holds in progress: up to now). A wait's charge to a
    site is that sum at its end minus at its start, its handoff the same of free: the charges add
    up to the wait, exactly, and each grant and release costs the same however deep the queue.
    Its append and pop, called by grants and releases, keep the ledger, so the uncontended path
    is untouched; the plain list comes back when the last waiter is done."""

    __slots__ = ("waiting", "p", "free", "last", "sites", "opened")

    def __init__(self, grants, now):
        list.__init__(self, grants)
        self.waiting = 0
        self.p = 0.0
        self.free = 0
        self.last = now
        # site -> [p summed over its ended holds, its holds in progress, their p at grant summed, latest span]
        self.sites = {}
        # id(grant) -> (site, p at grant); the holds in progress when the ledger opened count from then.
        self.opened = {}
        for g in grants:
            self._open(g)

    def _advance(self, now):
        dt = now - self.last
        if dt > 0:
            n = len(self)
            if n:
                self.p += dt / n
            else:
                self.free += dt
            self.last = now

    def _open(self, g):
        site = g[1] or LOCK_SITES_UNKNOWN
        s = self.sites.get(site)
        if s is None:
            s = self.sites[site] = [0.0, 0, 0.0, g[2]]
        s[1] += 1
        s[2] += self.p
        s[3] = g[2]
        self.opened[id(g)] = (site, self.p)

    def append(self, g):
        self._advance(g[0])
        list.append(self, g)
        self._open(g)

    def pop(self, i=-1):
        self._advance(_perf())
        g = list.pop(self, i)
        t = self.opened.pop(id(g), None)
        if t is not None:
            s = self.sites[t[0]]
            s[0] += self.p - t[1]
            s[1] -= 1
            s[2] -= t[1]
        return g

    def _charged(self):
        p = self.p
        return {site: s[0] + s[1] * p - s[2] for site, s in self.sites.items()}

    def wait_starts(self, now):
        self._advance(now)
        return self.free, self._charged()

    def wait_ends(self, start, now):
        """The wait from `start` to now: {site: (ns, the site's latest hold's span)} and the
        handoff ns."""
        self._advance(now)
        free, before = start
        by_site = {}
        for site, c in self._charged().items():
            ns = c - before.get(site, 0.0)
            if ns > 1e-3:  # float residue of a site that held nothing meanwhile
                by_site[site] = (ns, self.sites[site][3])
        return by_site, self.free - free


def _holder_attributes(attrs, by_site, handoff):
    """holder_sites (most charged first, then (other)), holder_ms, handoff_ms, and the most
    charged holder's site and span."""
    ranked = sorted(((c[0], site, c) for site, c in by_site.items()), key=lambda x: -x[0])
    rest = sum(x[0] for x in ranked[TOP_SITES:])
    sites = [x[1] for x in ranked[:TOP_SITES]]
    ms = [x[0] / 1e6 for x in ranked[:TOP_SITES]]
    if rest:
        sites.append(LOCK_SITES_OTHER)
        ms.append(rest / 1e6)
    attrs[LOCK_HOLDER_SITES] = sites
    attrs[LOCK_HOLDER_MS] = ms
    attrs[LOCK_HANDOFF_MS] = handoff / 1e6
    if sites:
        attrs[LOCK_HOLDER_SITE] = sites[0]
    if ranked and ranked[0][2][1]:
        attrs[LOCK_HOLDER_TRACE], attrs[LOCK_HOLDER_SPAN] = ranked[0][2][1]


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
    def granted(self, lock, st, now, task=()):
        """A grant without waiting: who holds it, in enough detail for those who will wait (and,
        for a semaphore, `(task,)`, to tell which grant a release ends)."""
        site = None
        if now - st.last_contended < HOT_NS:
            frame = caller_frame(3)
            if frame is not None:
                site = site_of(frame)
        grants = lock.__dict__.get("_ss_grants")
        entry = (now, site, spans.active()) + task
        if grants is None:
            lock._ss_grants = [entry]
        else:
            grants.append(entry)

    async def contended(self, lock, st, original):
        start = _perf()
        d = lock.__dict__
        waiters = lock._waiters
        depth = len(waiters) if waiters else 0
        frame = caller_frame(3)
        site = site_of(frame) if frame is not None else None
        parent = spans.active()
        semaphore = isinstance(lock, asyncio.Semaphore)
        grants = d.get("_ss_grants")
        if type(grants) is not Contention:
            grants = d["_ss_grants"] = Contention(grants or (), start)
        grants.waiting += 1
        opened = grants.wait_starts(start)
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
                by_site, handoff = grants.wait_ends(opened, end)
                # The grant before anything can fail, so that its release is tracked.
                grants.waiting -= 1
                if outcome == "granted":
                    st.contended.n += 1
                    grants.append((end, site, parent, _task()) if semaphore else (end, site, parent))
                if not grants.waiting:
                    d["_ss_grants"] = list(grants)
                st.wait(outcome).record((end - start) / 1e9)
                acquire_site = site or LOCK_SITES_UNKNOWN
                for holder_site, c in by_site.items():
                    st.wait_caused(holder_site, acquire_site).n += c[0] / 1e9
                if handoff:
                    st.wait_caused(LOCK_SITES_HANDOFF, acquire_site).n += handoff / 1e9
                if end - start >= self.wait_threshold_ns:
                    attrs = {KIND: KINDS_LOCK_WAIT, LOCK_NAME: st.name, LOCK_TYPE: st.type, LOCK_OUTCOME: outcome, LOCK_QUEUE_DEPTH: depth}
                    if site:
                        attrs[LOCK_ACQUIRE_SITE] = site
                        attrs.update(code_attributes(frames_of(frame)))
                    _holder_attributes(attrs, by_site, handoff)
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
                granted_at, site, holder = grants[0][:3]
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
                    if isinstance(self, asyncio.Semaphore):
                        # Its slots, for blame: releases beyond acquisitions change _value later.
                        self._ss_slots = self._value
                except Exception as err:
                    safety.report("lock naming", err)

            return __init__

        active = spans.fast_active
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
                    granted(self, st, _perf(), (_task(),))
                    return True
                return await tracker.contended(self, st, original)

            return acquire

        def lock_release(original):
            def release(self):
                # The library's own release when nobody waits (it would only clear the flag),
                # taken here to spare two calls; anything else goes through it.
                if self._locked and not self._waiters:
                    self._locked = False
                else:
                    original(self)
                grants = self.__dict__.get("_ss_grants")
                if grants:
                    self._ss_stats.hold.record((_perf() - grants.pop(0)[0]) / 1e9)

            return release

        def semaphore_release(original):
            def release(self):
                original(self)
                grants = self.__dict__.get("_ss_grants")
                if grants:
                    # A semaphore does not say which holder releases: the grant of the releasing
                    # task, else the oldest.
                    i = 0
                    if len(grants) > 1:
                        task = _task()
                        for j, g in enumerate(grants):
                            if g[3] is task:
                                i = j
                                break
                    self._ss_stats.hold.record((_perf() - grants.pop(i)[0]) / 1e9)

            return release

        patch(asyncio.Lock, "__init__", named_init)
        patch(asyncio.Lock, "acquire", lock_acquire)
        patch(asyncio.Lock, "release", lock_release)
        # BoundedSemaphore goes through these: its __init__ and release call Semaphore's.
        patch(asyncio.Semaphore, "__init__", named_init)
        patch(asyncio.Semaphore, "acquire", semaphore_acquire)
        patch(asyncio.Semaphore, "release", semaphore_release)

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
