"""Blocking episodes and blocking sync calls, in real asyncio programs."""


from conftest import line_of, run_program

LOOP_BLOCKS = "event loop blocked"


def episodes(sink):
    return [s for s in sink.spans() if s["name"] == LOOP_BLOCKS]


def test_a_cpu_loop_in_a_coroutine_is_one_episode_naming_the_line(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio, time

        def rank(n):
            end = time.perf_counter() + n
            x = 0
            while time.perf_counter() < end:  # MARK:spin
                x += 1
            return x

        async def handler():
            await asyncio.sleep(0.05)
            rank(0.3)
            await asyncio.sleep(0.05)

        asyncio.run(handler())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    found = episodes(sink)
    assert len(found) == 1, found
    a = found[0]["attrs"]
    assert a["stallscope.kind"] == "loop-block"
    assert a["code.function.name"] == "rank"
    assert a["code.file.path"] == str(tmp_path / "app.py")
    assert int(a["code.line.number"]) in (line_of(tmp_path, "spin"), line_of(tmp_path, "spin") + 1)
    assert a["stallscope.block.origin"] == "app"
    duration_ms = (int(found[0]["endTimeUnixNano"]) - int(found[0]["startTimeUnixNano"])) / 1e6
    assert 280 <= duration_ms < 450, duration_ms
    assert "handler" in a["code.stacktrace"]


GIL_PROGRAM = """
        import asyncio, json

        BIG = json.dumps([{"id": i, "name": "item-%d" % i, "tags": ["a", "b"]} for i in range(1_500_000)])

        def parse(text):
            return json.loads(text)  # MARK:parse

        async def handler():
            await asyncio.sleep(0.1)
            parse(BIG)
            await asyncio.sleep(0.1)

        asyncio.run(handler())
        """


def test_a_gil_holding_c_call_is_caught_with_its_line_when_gil_stacks_are_on(sink, tmp_path):
    # json.loads of a large document runs in C and never lets another thread run.
    r = run_program(
        tmp_path,
        GIL_PROGRAM,
        sink.endpoint,
        STALLSCOPE_JSON_SIZE_THRESHOLD="1000",
        STALLSCOPE_GIL_STACKS="true",
    )
    assert r.returncode == 0, r.stderr
    found = episodes(sink)
    assert len(found) == 1, [s["attrs"] for s in found]
    a = found[0]["attrs"]
    assert a["stallscope.block.stack_captured"] is True, a
    assert a["code.function.name"] == "parse"
    assert int(a["code.line.number"]) == line_of(tmp_path, "parse")
    sync = [s for s in sink.spans() if s["attrs"].get("stallscope.kind") == "sync-call"]
    assert [s["attrs"]["stallscope.sync.api"] for s in sync] == ["json.loads"]
    assert int(sync[0]["attrs"]["stallscope.sync.bytes"]) > 1000



def test_leaves_the_apps_own_faulthandler_timer_alone_by_default(sink, tmp_path):
    # faulthandler's timer is one per process: the agent arms it only with STALLSCOPE_GIL_STACKS.
    # The app counts the calls made to it while the agent watches a blocked loop. (An app's own
    # timer that fires is not run here: its dump reads the other threads' frames without the GIL,
    # and with the agent's watchdog thread running it crashed CPython in 1 run of 5 under load.)
    r = run_program(
        tmp_path,
        """
        import asyncio, faulthandler, time

        calls = []
        for name in ("dump_traceback_later", "cancel_dump_traceback_later"):
            original = getattr(faulthandler, name)
            setattr(faulthandler, name, lambda *a, _name=name, _f=original, **k: (calls.append(_name), _f(*a, **k))[1])

        import stallscope_agent
        stallscope_agent.install()

        async def main():
            await asyncio.sleep(0.3)
            time.sleep(0.4)  # the loop blocked: a watchdog that armed faulthandler would do it now
            await asyncio.sleep(0.3)
            print("calls", calls)

        asyncio.run(main())
        """,
        sink.endpoint,
        agent=False,
    )
    assert r.returncode == 0, r.stderr
    assert "calls []" in r.stdout, r.stdout
    assert episodes(sink), "the watchdog saw no block"
    # Asked to, the agent does arm it: the count sees it.
    r = run_program(tmp_path, (tmp_path / "app.py").read_text(), sink.endpoint, agent=False, STALLSCOPE_GIL_STACKS="true")
    assert r.returncode == 0, r.stderr
    assert "dump_traceback_later" in r.stdout, r.stdout


def test_time_sleep_socket_and_subprocess_in_coroutines_are_sync_calls_with_their_site(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio, socket, subprocess, sys, time

        async def handler():
            time.sleep(0.08)  # MARK:sleep
            a, b = socket.socketpair()
            async def later():
                await asyncio.sleep(0)
            b.settimeout(5)
            loop = asyncio.get_running_loop()
            loop.call_later(0.06, a.send, b"x")
            # A blocking recv on the loop's thread: the call_later above cannot even run until
            # recv returns, so a thread answers instead.
            import threading
            threading.Timer(0.06, a.send, args=(b"x",)).start()
            b.recv(1)  # MARK:recv
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.05)"])  # MARK:subprocess

        async def main():
            await handler()
            await asyncio.to_thread(time.sleep, 0.05)  # on a worker thread: not a sync call

        asyncio.run(main())
        time.sleep(0.05)  # no loop running: not watched
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    sync = {s["attrs"]["stallscope.sync.api"]: s["attrs"] for s in sink.spans() if s["attrs"].get("stallscope.kind") == "sync-call"}
    assert set(sync) == {"time.sleep", "socket.recv", "subprocess.run"}, sync
    for api, mark in (("time.sleep", "sleep"), ("socket.recv", "recv"), ("subprocess.run", "subprocess")):
        assert sync[api]["code.function.name"] == "handler"
        assert int(sync[api]["code.line.number"]) == line_of(tmp_path, mark)
    # Sync-call durations as a histogram per API (explicit buckets, as the Node agent's).
    assert sink.metric_types("stallscope.sync.duration") == {"histogram"}
    points = sink.metrics("stallscope.sync.duration")
    assert {p["attrs"]["stallscope.sync.api"] for p in points} >= {"time.sleep", "socket.recv", "subprocess.run"}


def test_a_healthy_program_reports_no_episode_and_exports_loop_lag(sink, tmp_path):
    r = run_program(
        tmp_path,
        """
        import asyncio

        async def tick(i):
            await asyncio.sleep(0.001)
            return i

        async def main():
            for _ in range(40):
                await asyncio.gather(*(tick(i) for i in range(50)))
                await asyncio.sleep(0.01)

        asyncio.run(main())
        """,
        sink.endpoint,
    )
    assert r.returncode == 0, r.stderr
    assert episodes(sink) == []
    assert [s for s in sink.spans() if s["attrs"].get("stallscope.kind") == "sync-call"] == []
    p99 = sink.metrics("nodejs.eventloop.delay.p99")
    assert p99 and all(p["asDouble"] < 0.05 for p in p99)
    util = sink.metrics("nodejs.eventloop.utilization")
    assert util and all(0 <= p["asDouble"] <= 1 for p in util)
    # The loop's time by state, as the Node agent counts it: this loop mostly waits for its sleeps.
    time_by_state = {p["attrs"]["nodejs.eventloop.state"]: p["asDouble"] for p in sink.metrics("nodejs.eventloop.time")}
    assert set(time_by_state) == {"active", "idle"}
    assert 0 < time_by_state["active"] < time_by_state["idle"]
    res = sink.resources()[0]
    assert res["service.name"] == "py-test" and res["telemetry.sdk.language"] == "python"
    assert r.stderr == ""
