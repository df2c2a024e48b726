"""Lock blame in real programs: every wait charged to the holds that ran during it, on the wait's
span and in the wait_caused counter, adding up to the wait."""

import http.client
import json
import subprocess
import textwrap
import threading
import time

from conftest import PYTHON, agent_env, line_of, run_program

SITES = "stallscope.lock.holder_sites"
HOLDER_MS = "stallscope.lock.holder_ms"
HANDOFF = "stallscope.lock.handoff_ms"
CAUSED = "stallscope.lock.wait_caused"


def values(v):
    """An OTLP arrayValue as a Python list."""
    return [next(iter(e.values())) for e in v["values"]]


def waits_on(sink, lock):
    out = []
    for s in sink.spans():
        a = s["attrs"]
        if a.get("stallscope.kind") == "lock-wait" and a["stallscope.lock.name"] == lock:
            a["ms"] = (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6
            a["sites"] = values(a[SITES])
            a["charged"] = dict(zip(a["sites"], values(a[HOLDER_MS])))
            out.append(a)
    return out


def assert_adds_up(wait):
    """The charges of one wait add up to the wait, to a microsecond."""
    total = sum(wait["charged"].values()) + float(wait[HANDOFF])
    assert abs(total - wait["ms"]) < 0.001, (total, wait["ms"], wait["charged"], wait[HANDOFF])


def caused(sink, lock):
    """The latest (cumulative) wait_caused value per (holder site, acquire site), in seconds."""
    out = {}
    for p in sink.metrics(CAUSED):
        a = p["attrs"]
        if a["stallscope.lock.name"] == lock:
            out[(a["stallscope.lock.holder_site"], a["stallscope.lock.acquire_site"])] = p["asDouble"]
    return out


def wait_time_sum(sink, lock):
    latest = {}
    for p in sink.metrics("stallscope.lock.wait_time"):
        if p["attrs"]["stallscope.lock.name"] == lock:
            latest[p["attrs"]["stallscope.lock.outcome"]] = p["sum"]
    return sum(latest.values())


def test_a_wait_behind_two_holders_is_charged_to_each_for_its_part(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio, json, time
        import stallscope_agent

        # The app's own clock readings, to check the charges against.
        seen = {}

        def now():
            return time.perf_counter_ns() / 1e6

        async def warm_up(lock):
            async with lock:  # MARK:warm
                await asyncio.sleep(0.005)

        async def settle_invoice(lock, started):
            async with lock:  # MARK:x
                started.set()
                await asyncio.sleep(0.05)
                seen["x released"] = now()

        async def post_ledger(lock):
            async with lock:  # MARK:y
                seen["y granted"] = now()
                await asyncio.sleep(0.03)
                seen["y released"] = now()

        async def read_total(lock):
            seen["c queued"] = now()
            async with lock:  # MARK:c
                pass

        async def main():
            lock = asyncio.Lock()  # MARK:lock
            # A first contended round makes the lock hot: from then on holders' sites are taken.
            await asyncio.gather(warm_up(lock), warm_up(lock))
            started = asyncio.Event()
            with stallscope_agent.span("job A"):
                a = asyncio.create_task(settle_invoice(lock, started))
            await started.wait()
            b = asyncio.create_task(post_ledger(lock))
            await asyncio.sleep(0)  # B queues first, then C
            await asyncio.gather(a, b, read_total(lock))
            print(json.dumps(seen))

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    lock = f"app.py:{line_of(tmp_path, 'lock')}"
    x = f"settle_invoice (app.py:{line_of(tmp_path, 'x')})"
    y = f"post_ledger (app.py:{line_of(tmp_path, 'y')})"
    c = f"read_total (app.py:{line_of(tmp_path, 'c')})"
    warm = f"warm_up (app.py:{line_of(tmp_path, 'warm')})"
    waits = {w["stallscope.lock.acquire_site"]: w for w in waits_on(sink, lock)}
    assert set(waits) == {warm, y, c}, list(waits)
    for w in waits.values():
        assert_adds_up(w)
    # The first holder took a cold lock: no site was taken for it.
    assert waits[warm]["sites"] == ["(unknown)"]

    cw = waits[c]
    assert cw["sites"] == [x, y], cw["charged"]
    # C is charged what remained of A's hold when it queued, then all of B's hold (the app's
    # own readings, a few microseconds off the agent's), and the handoffs between them.
    seen = json.loads(r.stdout)
    assert abs(cw["charged"][x] - (seen["x released"] - seen["c queued"])) < 2, (cw["charged"], seen)
    assert abs(cw["charged"][y] - (seen["y released"] - seen["y granted"])) < 2, (cw["charged"], seen)
    assert cw["charged"][x] >= 45 and cw["charged"][y] >= 28, cw["charged"]
    assert 0 <= float(cw[HANDOFF]) < cw["charged"][y]
    assert cw["stallscope.lock.holder_site"] == x
    job = [s for s in sink.spans() if s["name"] == "job A"][0]
    assert (cw["stallscope.lock.holder_trace_id"], cw["stallscope.lock.holder_span_id"]) == (job["traceId"], job["spanId"])
    # B waited for A alone.
    assert waits[y]["sites"] == [x] and waits[y]["stallscope.lock.holder_site"] == x

    # The counter holds the same charges, by holder and waiter, and the handoff part.
    got = caused(sink, lock)
    assert abs(got[(x, c)] * 1e3 - cw["charged"][x]) < 0.001
    assert abs(got[(y, c)] * 1e3 - cw["charged"][y]) < 0.001
    assert abs(got[("(handoff)", c)] * 1e3 - float(cw[HANDOFF])) < 0.001
    assert abs(got[(x, y)] * 1e3 - waits[y]["charged"][x]) < 0.001
    assert ("(unknown)", warm) in got
    # Every wait's charges, summed: the total wait time.
    assert abs(sum(got.values()) - wait_time_sum(sink, lock)) < 1e-6


def test_a_semaphore_splits_each_instant_among_the_holders_of_its_slots(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio

        async def warm_up(pool):
            async with pool:  # MARK:warm
                await asyncio.sleep(0.005)

        async def short_job(pool):
            async with pool:  # MARK:p
                await asyncio.sleep(0.04)

        async def long_job(pool):
            async with pool:  # MARK:q
                await asyncio.sleep(0.1)

        async def follow_up(pool):
            async with pool:  # MARK:r
                await asyncio.sleep(0.04)

        async def last(pool):
            async with pool:  # MARK:d
                pass

        async def main():
            pool = asyncio.Semaphore(2)  # MARK:pool
            await asyncio.gather(*(warm_up(pool) for _ in range(3)))  # hot from now on
            jobs = [asyncio.create_task(short_job(pool)), asyncio.create_task(long_job(pool))]
            await asyncio.sleep(0.005)  # both slots taken
            await asyncio.gather(*jobs, follow_up(pool), last(pool))

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    lock = f"app.py:{line_of(tmp_path, 'pool')}"
    p, q, rr, d = (f"{fn} (app.py:{line_of(tmp_path, m)})" for fn, m in (("short_job", "p"), ("long_job", "q"), ("follow_up", "r"), ("last", "d")))
    warm = f"warm_up (app.py:{line_of(tmp_path, 'warm')})"
    waits = {w["stallscope.lock.acquire_site"]: w for w in waits_on(sink, lock)}
    assert set(waits) == {warm, rr, d}, list(waits)
    for w in waits.values():
        assert w["stallscope.lock.type"] == "asyncio.Semaphore"
        assert_adds_up(w)
    # The follow-up waited while both slots were held: half to each holder; then, from
    # short_job's release until the follow-up resumed, long_job alone held and took it all.
    first = waits[rr]["charged"]
    assert set(first) == {p, q} and first[p] >= 12 and first[q] >= first[p], first
    # The last waited behind short_job + long_job, then long_job + follow_up: long_job held
    # throughout, half of both stretches and the whole of the moments it held alone.
    second = waits[d]["charged"]
    assert set(second) == {p, q, rr}, second
    assert second[q] >= second[p] + second[rr], second
    assert waits[d]["sites"][0] == q and waits[d]["stallscope.lock.holder_site"] == q
    assert second[rr] >= 12, second
    got = caused(sink, lock)
    assert abs(sum(got.values()) - wait_time_sum(sink, lock)) < 1e-6
    assert abs(got[(q, d)] * 1e3 - second[q]) < 0.001


def test_a_condition_is_blamed_through_its_lock(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio

        async def warm_up(cond):
            async with cond:  # MARK:warm
                await asyncio.sleep(0.005)

        async def consumer(cond):
            async with cond:
                await cond.wait()  # MARK:wait

        async def producer(cond):
            async with cond:  # MARK:producer
                cond.notify()
                await asyncio.sleep(0.03)  # still holding the lock the consumer needs back

        async def main():
            cond = asyncio.Condition()  # MARK:cond
            await asyncio.gather(warm_up(cond), warm_up(cond))  # hot from now on
            task = asyncio.create_task(consumer(cond))
            await asyncio.sleep(0.005)
            await asyncio.gather(task, producer(cond))

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    lock = f"app.py:{line_of(tmp_path, 'cond')}"
    wait = f"consumer (app.py:{line_of(tmp_path, 'wait')})"
    producer = f"producer (app.py:{line_of(tmp_path, 'producer')})"
    waits = {w["stallscope.lock.acquire_site"]: w for w in waits_on(sink, lock)}
    # Taking the lock back after wait() is a wait on it, charged to the notifier still holding it.
    w = waits[wait]
    assert w["stallscope.lock.type"] == "asyncio.Condition"
    assert w["sites"] == [producer] and w["charged"][producer] >= 25, w["charged"]
    assert_adds_up(w)


SERVICE = """
import asyncio, json

lock = None
balance = 10 ** 9
last_order = 0


async def debit(amount):
    global balance
    async with lock:  # MARK:debit
        current = balance
        await asyncio.sleep(0.002)  # the ledger write
        balance = current - amount


async def next_order_id():
    global last_order
    async with lock:  # MARK:order
        await asyncio.sleep(0.001)
        last_order += 1
        return last_order


async def handle(reader, writer, done):
    try:
        while True:
            request = await reader.readline()
            if not request:
                break
            while (await reader.readline()) not in (b"\\r\\n", b""):
                pass
            path = request.split()[1]
            if path == b"/pay":
                await debit(1)
                body = b"ok"
            elif path == b"/order":
                body = str(await next_order_id()).encode()
            else:
                body = b"bye"
                done.set()
            writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-type: text/plain\\r\\ncontent-length: %d\\r\\n\\r\\n%s" % (len(body), body))
            await writer.drain()
            if done.is_set():
                break
    finally:
        writer.close()


async def main():
    global lock
    lock = asyncio.Lock()  # one lock for two unrelated things MARK:lock
    done = asyncio.Event()
    server = await asyncio.start_server(lambda r, w: handle(r, w, done), "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await done.wait()
    server.close()
    await server.wait_closed()


asyncio.run(main())
"""


def test_one_lock_for_a_balance_and_an_order_counter_shows_each_waiting_on_the_other(sink, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(SERVICE))
    service = subprocess.Popen([PYTHON, "-m", "stallscope_agent", str(app)], cwd=tmp_path, env=agent_env(sink.endpoint), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = json.loads(service.stdout.readline())["port"]
        stop = time.monotonic() + 3
        served = []

        def client():
            # Keep-alive, no think time: /pay, /order, /pay...
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            n = 0
            while time.monotonic() < stop:
                conn.request("GET", "/pay" if n % 2 == 0 else "/order")
                res = conn.getresponse()
                assert res.status == 200
                res.read()
                n += 1
            conn.close()
            served.append(n)

        clients = [threading.Thread(target=client) for _ in range(12)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/quit")
        conn.getresponse().read()
        conn.close()
        out, err = service.communicate(timeout=30)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, err
    assert len(served) == 12 and sum(served) > 200, served

    lock = f"app.py:{line_of(tmp_path, 'lock')}"
    debit = f"debit (app.py:{line_of(tmp_path, 'debit')})"
    order = f"next_order_id (app.py:{line_of(tmp_path, 'order')})"
    waits = waits_on(sink, lock)
    assert len(waits) > 100, len(waits)
    for w in waits:
        assert_adds_up(w)
    # A waiter queues behind requests of both kinds: its span names both functions.
    both = [w for w in waits if debit in w["sites"] and order in w["sites"]]
    assert len(both) > len(waits) / 2, [w["charged"] for w in waits[:5]]
    assert {w["stallscope.lock.holder_site"] for w in waits} >= {debit, order}
    # The matrix: paying waits on order numbers and the reverse, each a good share of the total.
    got = caused(sink, lock)
    total = sum(got.values())
    assert abs(total - wait_time_sum(sink, lock)) < 1e-5
    assert got[(order, debit)] > 0.1 * total and got[(debit, order)] > 0.1 * total, got
    assert got[(debit, debit)] > 0.1 * total and got[(order, order)] > 0.05 * total, got
    # Debit holds twice as long: it caused more of the waiting, on both sides.
    assert got[(debit, order)] > got[(order, order)] and got[(debit, debit)] > got[(order, debit)], got


def test_the_bounds_fold_what_is_past_them_into_other(sink, tmp_path):
    # Functions of their own lines, as sites are: 7 holders of 5..35 ms, 25 waiters.
    holders = "".join(f"\nasync def hold_{i}(lock):\n    async with lock:  # MARK:h{i}\n        await asyncio.sleep({(i + 1) * 0.005})\n" for i in range(7))
    waiters = "".join(f"\nasync def wait_{i}(lock):\n    async with lock:  # MARK:w{i}\n        await asyncio.sleep(0.001)\n" for i in range(25))
    source = (
        "import asyncio\n"
        + holders
        + waiters
        + """
async def quick(lock):
    async with lock:  # MARK:quick
        await asyncio.sleep(0)

async def last(lock):
    async with lock:  # MARK:last
        pass

async def main():
    lock = asyncio.Lock()  # MARK:lock
    await asyncio.gather(quick(lock), quick(lock))  # hot from now on
    # Behind 7 holders: the top 5, then (other) for the 2 least charged.
    await asyncio.gather(*(globals()[f"hold_{i}"](lock) for i in range(7)), last(lock))
    # Behind 300 holds: each charged, however many.
    await asyncio.gather(*(quick(lock) for _ in range(300)), last(lock))
    # 25 waiting sites: 20 counted, the rest as (other).
    await asyncio.gather(*(globals()[f"wait_{i}"](lock) for i in range(25)))

asyncio.run(main())
"""
    )
    r = run_program(tmp_path, source, sink.endpoint)
    assert r.returncode == 0, r.stderr
    lock = f"app.py:{line_of(tmp_path, 'lock')}"
    last = f"last (app.py:{line_of(tmp_path, 'last')})"
    hold = [f"hold_{i} (app.py:{line_of(tmp_path, f'h{i}')})" for i in range(7)]
    quick = f"quick (app.py:{line_of(tmp_path, 'quick')})"
    waits = waits_on(sink, lock)
    for w in waits:
        assert_adds_up(w)
    got = caused(sink, lock)
    behind_seven, behind_many = [w for w in waits if w["stallscope.lock.acquire_site"] == last]
    # The counter has each holder's charge for that wait (last waited behind no other hold_*).
    charge = {h: got[(h, last)] * 1e3 for h in hold}
    ranked = sorted(hold, key=charge.get, reverse=True)
    assert behind_seven["sites"] == ranked[:5] + ["(other)"], (behind_seven["sites"], charge)
    ms = values(behind_seven[HOLDER_MS])
    assert all(abs(ms[i] - charge[h]) < 0.001 for i, h in enumerate(ranked[:5])), (ms, charge)
    assert abs(ms[5] - charge[ranked[5]] - charge[ranked[6]]) < 0.001, (ms, charge)
    assert behind_many["sites"] == [quick], behind_many["sites"]
    assert abs(values(behind_many[HOLDER_MS])[0] - got[(quick, last)] * 1e3) < 0.001
    acquire_sites = {a for _, a in got}
    assert len(acquire_sites - {"(other)"}) == 20 and "(other)" in acquire_sites, sorted(acquire_sites)
    assert len({h for h, _ in got} - {"(other)", "(handoff)", "(unknown)"}) <= 20
    assert abs(sum(got.values()) - wait_time_sum(sink, lock)) < 1e-6
