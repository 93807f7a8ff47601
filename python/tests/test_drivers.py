"""Tests of the peer-pool drivers (python/drivers): the protocol loop and the worker watcher on
their own, with fakes; both real drivers, and the planted-case drivers of
tests/harness/planted/drivers, spoken to over their stdin and stdout.

Run from python/: ``python3 -m unittest discover -s tests -v``.

Each real driver runs in its own process group (its pool's processes stay in that group).
After each test the group is killed and reaped, failed test or not, and the test checks that
nothing it started is still alive; the stop tests check that the driver left nothing behind
on its own, before that clean-up.
"""

import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

PYTHON_DIR = Path(__file__).resolve().parent.parent
DRIVERS_DIR = PYTHON_DIR / "drivers"
DRIVERS = ("process_pool_executor.py", "multiprocessing_pool.py")
PLANTED_DRIVERS_DIR = PYTHON_DIR.parent / "tests" / "harness" / "planted" / "drivers"
UNSOLICITED = ("worker", "pool")  # events a driver sends on its own initiative

sys.path.insert(0, str(DRIVERS_DIR))
import driver_common  # noqa: E402

# Generous, so that a loaded CI machine does not fail a correct driver.
TIMEOUT = 20.0


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def group_members(pgid: int) -> List[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- the protocol loop, with a fake pool ---------------------------------------------------


class FakePool(driver_common.PoolAdapter):
    """Runs tasks inline (or holds them for the test to complete), records calls."""

    def __init__(self, hold: bool = False, refuse: Optional[BaseException] = None,
                 emit_at_stop: bool = False):
        self.hold = hold
        self.refuse = refuse
        self.emit_at_stop = emit_at_stop
        self.held: List[Callable[[Any], None]] = []
        self.started_with = None
        self.stopped = False

    def start(self, size, init):
        self.started_with = (size, init)
        return {"pids": [1, 2]}

    def submit(self, command, args, complete):
        if self.refuse is not None:
            raise self.refuse
        if self.hold:
            self.held.append(complete)
        else:
            complete(driver_common.run_task(command, args))

    def stop(self):
        self.stopped = True
        if self.emit_at_stop:  # a pool's last words, before "stopped"
            self.events.emit({"event": "worker", "pid": 9, "state": "exited", "t_ns": 1})


class ColdFakePool(FakePool):
    honours_cold_start = True
    warm = None

    def start(self, size, init, warm=True):
        self.warm = warm
        return {}


class ProtocolLoopTest(unittest.TestCase):
    def run_loop(self, lines: List[Any], pool: FakePool) -> tuple:
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        text = b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                        for line in lines)
        loop = driver_common.ProtocolLoop(pool, driver_common.Output(write_fd))
        status = loop.run(io.BytesIO(text))
        os.close(write_fd)
        with os.fdopen(os.dup(read_fd), "rb") as out:
            events = [json.loads(line) for line in out.read().splitlines()]
        return status, events, loop

    def test_start_submit_stats_stop(self):
        pool = FakePool()
        status, events, _ = self.run_loop([
            {"op": "start", "config": {"size": 2, "init": {"init_ms": 0}}},
            {"op": "submit", "id": 7, "command": "echo", "args": {"a": [1]},
             "t_intended_ns": 123},
            {"op": "submit", "id": 8, "command": "nope"},
            {"op": "submit", "id": 9, "command": "sleep", "args": "soon"},
            {"op": "stats"},
            {"op": "stop"},
        ], pool)
        self.assertEqual(status, 0)
        self.assertEqual(pool.started_with, (2, {"init_ms": 0}))
        self.assertTrue(pool.stopped)
        self.assertEqual([e["event"] for e in events],
                         ["started", "done", "done", "done", "stats", "stopped"])
        self.assertEqual(events[0]["pids"], [1, 2])
        echo = events[1]
        self.assertEqual((echo["id"], echo["ok"], echo["result"]), (7, True, {"a": [1]}))
        self.assertEqual(echo["t_intended_ns"], 123)
        self.assertLessEqual(echo["t_start_ns"], echo["t_worker_recv_ns"])
        self.assertLessEqual(echo["t_worker_recv_ns"], echo["t_worker_done_ns"])
        self.assertLessEqual(echo["t_worker_done_ns"], echo["t_done_ns"])
        self.assertEqual(echo["worker_pid"], os.getpid())
        self.assertEqual(events[2]["error"]["type"], "unknown_command")
        self.assertNotIn("t_intended_ns", events[2])
        self.assertEqual(events[3]["error"]["type"], "ValueError")
        self.assertEqual(events[4], {"event": "stats", "size": 2, "busy": 0, "queued": 0,
                                     "completed": 3})

    def test_outstanding_tasks_count_as_busy_then_queued(self):
        pool = FakePool(hold=True)
        submits = [{"op": "submit", "id": i, "command": "echo"} for i in range(1, 4)]
        status, events, _ = self.run_loop(
            [{"op": "start", "config": {"size": 2}}] + submits + [{"op": "stats"}], pool)
        self.assertEqual(status, 0)  # end of input is stop
        self.assertEqual(events[1], {"event": "stats", "size": 2, "busy": 2, "queued": 1,
                                     "completed": 0})
        self.assertEqual(events[-1], {"event": "stopped"})

    def test_completions_after_stop_are_not_written(self):
        pool = FakePool(hold=True)
        status, events, _ = self.run_loop([
            {"op": "start", "config": {"size": 1}},
            {"op": "submit", "id": 1, "command": "echo"},
            {"op": "stop"},
        ], pool)
        pool.held[0](driver_common.run_task("echo", None))  # a late completion
        self.assertEqual(status, 0)
        self.assertEqual([e["event"] for e in events], ["started", "stopped"])

    def test_a_refused_or_broken_pool_reports_the_task(self):
        from concurrent.futures.process import BrokenProcessPool

        for refusal, expected in ((BrokenProcessPool("a child died"), "worker_crashed"),
                                  (RuntimeError("shut down"), "RuntimeError")):
            with self.subTest(expected=expected):
                _, events, _ = self.run_loop([
                    {"op": "start", "config": {"size": 1}},
                    {"op": "submit", "id": 1, "command": "echo"},
                ], FakePool(refuse=refusal))
                done = events[1]
                self.assertEqual((done["ok"], done["error"]["type"]), (False, expected))
                self.assertEqual((done["t_worker_recv_ns"], done["worker_pid"]), (0, 0))

    def test_protocol_errors_exit_65(self):
        cases = {
            "not JSON": [b"{nope"],
            "not an object": [b"[1, 2]"],
            "unknown op": [{"op": "dance"}],
            "submit before start": [{"op": "submit", "id": 1, "command": "echo"}],
            "second start": [{"op": "start", "config": {"size": 1}},
                             {"op": "start", "config": {"size": 1}}],
            "id zero": [{"op": "start", "config": {"size": 1}},
                        {"op": "submit", "id": 0, "command": "echo"}],
            "id not an integer": [{"op": "start", "config": {"size": 1}},
                                  {"op": "submit", "id": "1", "command": "echo"}],
            "command not a string": [{"op": "start", "config": {"size": 1}},
                                     {"op": "submit", "id": 1, "command": 5}],
        }
        for name, lines in cases.items():
            with self.subTest(name):
                status, events, _ = self.run_loop(lines, FakePool())
                self.assertEqual(status, driver_common.EXIT_PROTOCOL_ERROR)
                self.assertEqual(events[-1]["event"], "error")

    def test_bad_config_is_an_error_and_exit_1(self):
        for config in ({"size": 0}, {"size": True}, {}, {"size": 1, "colour": "red"},
                       {"size": 1, "init": {"init_ms": -1}}, {"size": 1, "init": {"x": 1}},
                       "big"):
            with self.subTest(config=config):
                status, events, _ = self.run_loop([{"op": "start", "config": config}],
                                                  FakePool())
                self.assertEqual(status, driver_common.EXIT_BAD_START)
                self.assertEqual([e["event"] for e in events], ["error"])

    def test_warm_false_reaches_an_adapter_that_honours_it(self):
        for warm, expected in ((False, {"event": "started", "warm": False}),
                               (True, {"event": "started"})):
            with self.subTest(warm=warm):
                pool = ColdFakePool()
                _, events, _ = self.run_loop(
                    [{"op": "start", "warm": warm, "config": {"size": 2}}], pool)
                self.assertEqual(pool.warm, warm)
                started = dict(events[0])
                self.assertIsInstance(started.pop("t_ns"), int)
                self.assertEqual(started, expected)

    def test_warm_false_is_ignored_by_an_adapter_that_cannot_start_cold(self):
        pool = FakePool()  # an adapter written before cold starts: start(size, init)
        status, events, _ = self.run_loop(
            [{"op": "start", "warm": False, "config": {"size": 2}}], pool)
        self.assertEqual(status, 0)
        self.assertEqual(pool.started_with, (2, {}))
        self.assertEqual(events[0]["event"], "started")
        self.assertNotIn("warm", events[0])  # it started warm, and says so by not echoing

    def test_warm_must_be_a_boolean(self):
        pool = ColdFakePool()
        status, events, _ = self.run_loop(
            [{"op": "start", "warm": "no", "config": {"size": 1}}], pool)
        self.assertEqual(status, driver_common.EXIT_PROTOCOL_ERROR)
        self.assertEqual([e["event"] for e in events], ["error"])
        self.assertIsNone(pool.warm)
        self.assertFalse(pool.stopped)

    def test_events_go_out_until_the_last_line_and_never_after(self):
        for last_op, last_event in (({"op": "stop"}, "stopped"), (b"nope", "error")):
            with self.subTest(last_event):
                pool = FakePool(emit_at_stop=True)
                _, events, _ = self.run_loop([{"op": "start", "config": {"size": 1}}, last_op],
                                             pool)
                pool.events.emit({"event": "worker", "pid": 9, "state": "spawned", "t_ns": 2})
                expected = ["started", "worker", "stopped"] if last_event == "stopped" else \
                    ["started", "error"]
                self.assertEqual([e["event"] for e in events], expected)


class RecordedEvents(driver_common.Events):
    def __init__(self):
        super().__init__()
        self.closed = False
        self.log: List[Dict[str, Any]] = []

    def emit(self, event):
        with self._lock:
            self.log.append(event)


class FakePopen:
    def __init__(self):
        self.returncode = None
        self.sentinel = -1


class FakeProcess:
    """What the watcher reads of a multiprocessing.Process."""

    def __init__(self, pid: int, t_spawn_ns: int = 0):
        self.pid = pid
        self.t_spawn_ns = t_spawn_ns
        self._popen = FakePopen()


class WorkerWatcherTest(unittest.TestCase):
    def setUp(self):
        self.events = RecordedEvents()
        self.pool: List[FakeProcess] = []
        self.watcher = self.watch(lambda: list(self.pool))

    def watch(self, processes, **options) -> driver_common.WorkerWatcher:
        watcher = driver_common.WorkerWatcher(self.events, processes, **options)

        def stop():
            if not watcher.reports.closed:  # the test failed before it stopped the watcher
                with watcher.stopping():
                    pass

        self.addCleanup(stop)
        return watcher

    def states(self, pid: int) -> List[str]:
        return [e["state"] for e in self.events.log
                if e["event"] == "worker" and e["pid"] == pid]

    def await_states(self, pid: int, states: List[str]) -> None:
        self.assertTrue(wait_until(lambda: self.states(pid) == states, 5),
                        f"pid {pid}: {self.events.log}")

    def test_a_worker_s_story_in_order(self):
        self.watcher.start()
        first = FakeProcess(101, t_spawn_ns=5)
        self.pool.append(first)
        self.await_states(101, ["spawned"])
        self.assertEqual(self.events.log[0],
                         {"event": "worker", "pid": 101, "state": "spawned", "t_ns": 5,
                          "t_spawn_ns": 5})
        # A ready report: init_worker in this process stands in for the worker's.
        driver_common.init_worker({}, self.watcher.reports)
        time.sleep(3 * driver_common.WorkerWatcher.PERIOD_S)  # an absence takes time to see
        self.assertEqual(self.states(os.getpid()), [])  # not among the pool's: held back
        self.pool.append(FakeProcess(os.getpid()))
        self.await_states(os.getpid(), ["spawned", "ready"])
        ready = self.events.log[-1]
        self.assertLessEqual(ready["t_main_ns"], ready["t_init_done_ns"])
        self.assertEqual(ready["t_ns"], ready["t_init_done_ns"])
        # The pool collects the exit status of a process that died, then drops it.
        first._popen.returncode = 1
        self.await_states(101, ["spawned", "exited"])
        self.assertEqual((self.events.log[-1]["cause"], self.events.log[-1]["planned"]),
                         ("exit code 1", False))
        self.pool.remove(first)
        # The pid is reused by a new worker: a story of its own.
        self.pool.append(FakeProcess(101))
        self.await_states(101, ["spawned", "exited", "spawned"])
        with self.watcher.stopping():
            for process in self.pool:
                process._popen.returncode = -signal.SIGTERM
        self.assertEqual(self.states(101), ["spawned", "exited", "spawned", "exited"])
        self.assertEqual(self.states(os.getpid()), ["spawned", "ready", "exited"])
        for event in self.events.log[-2:]:
            self.assertEqual((event["cause"], event["planned"]), ("killed by SIGTERM", True))
        self.assertNotIn("pool", [e["event"] for e in self.events.log])

    def test_pool_samples_only_on_change_at_most_one_per_period(self):
        counts = [(0, 0)]
        process = FakeProcess(7)
        watcher = self.watch(lambda: [process], sample=lambda: counts[-1])
        watcher.start()
        samples = lambda: [e for e in self.events.log if e["event"] == "pool"]  # noqa: E731
        self.assertTrue(wait_until(lambda: len(samples()) == 1, 5))
        counts.append((3, 1))
        self.assertTrue(wait_until(lambda: len(samples()) == 2, 5))
        time.sleep(3 * driver_common.WorkerWatcher.PERIOD_S)  # no change, so no sample
        with watcher.stopping():
            process._popen.returncode = 0
        self.assertEqual([(e["queued"], e["busy"], e["alive"]) for e in samples()],
                         [(0, 0, 1), (3, 1, 1)])
        self.assertGreaterEqual(samples()[1]["t_ns"] - samples()[0]["t_ns"],
                                driver_common.WorkerWatcher.PERIOD_S * 1e9 * 0.9)


# --- the real drivers -------------------------------------------------------------------------


def check_worker_event(test: unittest.TestCase, event: Dict[str, Any]) -> None:
    """The shape of a "worker" event (harness/subjects/DRIVERS.md)."""
    test.assertEqual(event["event"], "worker")
    test.assertIsInstance(event["pid"], int)
    test.assertGreaterEqual(event["pid"], 1)
    test.assertIn(event["state"], ("spawned", "ready", "exited"))
    for key, value in event.items():
        if key.endswith("_ns"):
            test.assertIsInstance(value, int, key)
    if event["state"] == "ready":
        test.assertLessEqual(event["t_main_ns"], event["t_init_done_ns"])
        if event["t_spawn_ns"]:
            test.assertLessEqual(event["t_spawn_ns"], event["t_main_ns"])
    if event["state"] == "exited":
        test.assertIsInstance(event["cause"], str)
        test.assertIsInstance(event["planned"], bool)


class DriverProcess:
    """A driver under test: JSON lines with deadlines, stderr drained concurrently. Every
    event is kept in ``log``, in order; ``receive`` returns the answers and completions one
    by one, skipping the events a driver sends on its own initiative, which ``await_event``
    finds (reading ahead never makes ``receive`` miss a line)."""

    def __init__(self, test: unittest.TestCase, script: Any, *args: str):
        path = script if isinstance(script, Path) else DRIVERS_DIR / script
        self.proc = subprocess.Popen(
            [sys.executable, str(path), *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        test.addCleanup(self.close, test)
        self.pid = self.proc.pid
        self._pending = b""
        self.log: List[Dict[str, Any]] = []
        self._cursor = 0  # log[:_cursor] has been through receive
        self.stderr = bytearray()
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()

    def _drain_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(1 << 16), b""):
            self.stderr += chunk

    def send(self, message: Dict[str, Any]) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def _read_event(self, deadline: float) -> None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            readable, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not readable:
                raise AssertionError(f"no event in time; stderr: {self.stderr!r}")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise AssertionError(f"stdout closed; stderr: {self.stderr!r}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        self.log.append(json.loads(line))

    def receive(self, timeout: float = TIMEOUT) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.log):
                event = self.log[self._cursor]
                self._cursor += 1
                if event.get("event") not in UNSOLICITED:
                    return event
            self._read_event(deadline)

    def await_event(self, predicate: Callable[[Dict[str, Any]], bool],
                    timeout: float = TIMEOUT) -> Dict[str, Any]:
        """The first event, received or not yet, that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for event in self.log[checked:]:
                if predicate(event):
                    return event
            checked = len(self.log)
            self._read_event(deadline)

    def worker_events(self, pid: Optional[int] = None) -> List[Dict[str, Any]]:
        return [e for e in self.log
                if e.get("event") == "worker" and (pid is None or e["pid"] == pid)]

    def read_to_end(self) -> List[Dict[str, Any]]:
        """After "stopped": whatever else the driver wrote before it closed stdout."""
        rest = self._pending + self.proc.stdout.read()
        return [json.loads(line) for line in rest.splitlines()]

    def start(self, size: int, warm: Optional[bool] = None, **init: Any) -> Dict[str, Any]:
        message: Dict[str, Any] = {"op": "start", "config": {"size": size, "init": init}}
        if warm is not None:
            message["warm"] = warm
        self.send(message)
        started = self.receive()
        if started.get("event") != "started":
            raise AssertionError(f"start failed: {started}; stderr: {self.stderr!r}")
        return started

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def close(self, test: unittest.TestCase) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc.wait()
        self._drain.join(TIMEOUT)
        self.proc.stderr.close()
        test.assertTrue(wait_until(lambda: not group_members(self.pid)),
                        f"processes left in group {self.pid}: {group_members(self.pid)}")


class DriverTests:
    """Run against each real driver by the subclasses below."""

    script = ""

    def driver(self) -> DriverProcess:
        return DriverProcess(self, self.script)

    def test_started_means_every_worker_exists(self):
        d = self.driver()
        t0 = now_ns()
        started = d.start(3, init_ms=50)
        self.assertGreater(started["t_ns"], t0)
        self.assertNotIn("warm", started)  # asked for nothing: started warm, as always
        pids = started["pids"]
        self.assertEqual(len(set(pids)), 3)
        stderr_pipe = os.readlink(f"/proc/{d.pid}/fd/2")
        for pid in pids:
            self.assertEqual(os.getpgid(pid), d.pid)  # in the driver's group: one kill ends all
        for pid in [d.pid] + pids:
            # stdout discipline: a print anywhere lands on stderr, never in a protocol line.
            self.assertEqual(os.readlink(f"/proc/{pid}/fd/1"), stderr_pipe)

    def test_echo_sleep_burn_and_errors(self):
        d = self.driver()
        d.start(2)
        d.send({"op": "submit", "id": 1, "command": "echo", "args": {"x": [1, "é", None]},
                "t_intended_ns": 42})
        d.send({"op": "submit", "id": 2, "command": "burn", "args": {"ms": 10}})
        d.send({"op": "submit", "id": 3, "command": "nope", "args": None})
        d.send({"op": "submit", "id": 4, "command": "sleep", "args": {"ms": -1}})
        done = {}
        for _ in range(4):
            event = d.receive()
            self.assertEqual(event["event"], "done")
            done[event["id"]] = event
        self.assertEqual(done[1]["result"], {"x": [1, "é", None]})
        self.assertEqual(done[1]["t_intended_ns"], 42)
        self.assertGreaterEqual(done[2]["result"]["burned_ms"], 10)
        self.assertEqual(done[3]["error"]["type"], "unknown_command")
        self.assertEqual(done[4]["error"]["type"], "ValueError")
        for event in done.values():
            self.assertLessEqual(event["t_start_ns"], event["t_worker_recv_ns"])
            self.assertLessEqual(event["t_worker_recv_ns"], event["t_worker_done_ns"])
            self.assertLessEqual(event["t_worker_done_ns"], event["t_done_ns"])
            self.assertNotEqual(event["worker_pid"], d.pid)

    def test_sleeps_run_in_parallel_and_complete_out_of_order(self):
        d = self.driver()
        d.start(2)
        d.send({"op": "submit", "id": 1, "command": "sleep", "args": {"ms": 400}})
        d.send({"op": "submit", "id": 2, "command": "sleep", "args": {"ms": 100}})
        first, second = d.receive(), d.receive()
        self.assertEqual((first["id"], second["id"]), (2, 1))
        self.assertLess(first["t_worker_recv_ns"], second["t_worker_done_ns"])
        self.assertLess(second["t_worker_recv_ns"], first["t_worker_done_ns"])
        self.assertNotEqual(first["worker_pid"], second["worker_pid"])

    def test_stats_counts_outstanding_tasks(self):
        d = self.driver()
        d.start(1)
        for i in (1, 2):
            d.send({"op": "submit", "id": i, "command": "sleep", "args": {"ms": 300}})
        d.send({"op": "stats"})
        self.assertEqual(d.receive(), {"event": "stats", "size": 1, "busy": 1, "queued": 1,
                                       "completed": 0})

    def test_stop_abandons_running_tasks_and_leaves_nothing(self):
        d = self.driver()
        started = d.start(2)
        d.send({"op": "submit", "id": 1, "command": "sleep", "args": {"ms": 60_000}})
        time.sleep(0.2)
        t0 = time.monotonic()
        d.send({"op": "stop"})
        self.assertEqual(d.receive(), {"event": "stopped"})
        self.assertEqual(d.wait(), 0)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(d.read_to_end(), [])  # nothing after "stopped"
        # The driver's own clean-up, before the test's group kill: no worker outlives it.
        self.assertTrue(wait_until(lambda: not group_members(d.pid), 5),
                        f"left behind: {group_members(d.pid)}; workers were {started['pids']}")

    def test_cold_start_answers_before_any_worker_is_ready(self):
        d = self.driver()
        started = d.start(2, warm=False, init_ms=500)
        self.assertEqual(started["warm"], False)
        self.assertNotIn("ready", [e["state"] for e in d.worker_events()])
        d.send({"op": "submit", "id": 1, "command": "echo", "args": "cold"})
        done = d.receive()
        self.assertEqual((done["id"], done["result"]), (1, "cold"))
        pid = done["worker_pid"]
        ready = d.await_event(lambda e: e.get("state") == "ready" and e["pid"] == pid)
        check_worker_event(self, ready)
        # The worker was still in its initializer when the driver said "started".
        self.assertLess(started["t_ns"], ready["t_init_done_ns"])
        self.assertGreaterEqual(ready["t_init_done_ns"] - ready["t_main_ns"], 500_000_000)
        self.assertLessEqual(ready["t_init_done_ns"], done["t_worker_recv_ns"])

    def test_lifecycle_events_are_well_formed_and_end_before_stopped(self):
        d = self.driver()
        started = d.start(2, init_ms=20)
        pids = set(started["pids"])
        for i in range(1, 5):
            d.send({"op": "submit", "id": i, "command": "echo", "args": i})
        done_pids = {d.receive()["worker_pid"] for _ in range(4)}
        for pid in pids:
            d.await_event(lambda e: e.get("state") == "ready" and e["pid"] == pid)
        ready_pids = {e["pid"] for e in d.worker_events() if e["state"] == "ready"}
        self.assertEqual(ready_pids, pids)
        self.assertLessEqual(done_pids, ready_pids)
        d.send({"op": "stop"})
        self.assertEqual(d.receive(), {"event": "stopped"})
        self.assertEqual(d.wait(), 0)
        self.assertEqual(d.read_to_end(), [])  # no event follows "stopped"
        for pid in pids:
            events = d.worker_events(pid)
            for event in events:
                check_worker_event(self, event)
            self.assertEqual([e["state"] for e in events], ["spawned", "ready", "exited"])
            self.assertEqual(events[-1]["planned"], True)  # the driver stopped its pool
        self.assertNotIn("pool", [e["event"] for e in d.log])  # busy is not known here

    def test_end_of_input_is_stop(self):
        d = self.driver()
        d.start(1)
        d.proc.stdin.close()
        self.assertEqual(d.receive(), {"event": "stopped"})
        self.assertEqual(d.wait(), 0)
        self.assertTrue(wait_until(lambda: not group_members(d.pid), 5))

    def test_malformed_line_is_an_error_and_exit_65(self):
        d = self.driver()
        d.start(1)
        d.proc.stdin.write(b"this is not json\n")
        d.proc.stdin.flush()
        event = d.receive()
        self.assertEqual(event["event"], "error")
        self.assertIn("not JSON", event["message"])
        self.assertEqual(d.wait(), 65)

    def test_bad_config_is_an_error_and_exit_1(self):
        d = self.driver()
        d.send({"op": "start", "config": {"size": 0}})
        event = d.receive()
        self.assertEqual(event["event"], "error")
        self.assertIn("size", event["message"])
        self.assertEqual(d.wait(), 1)


class ProcessPoolExecutorDriverTest(DriverTests, unittest.TestCase):
    script = "process_pool_executor.py"

    def test_a_dead_worker_breaks_the_executor(self):
        d = self.driver()
        started = d.start(1)
        d.send({"op": "submit", "id": 1, "command": "sleep", "args": {"ms": 60_000}})
        time.sleep(0.3)
        os.kill(started["pids"][0], signal.SIGKILL)
        event = d.receive()
        self.assertEqual((event["id"], event["ok"], event["error"]["type"]),
                         (1, False, "worker_crashed"))
        d.send({"op": "submit", "id": 2, "command": "echo"})
        self.assertEqual(d.receive()["error"]["type"], "worker_crashed")
        exited = d.await_event(lambda e: e.get("state") == "exited")
        self.assertEqual((exited["pid"], exited["cause"], exited["planned"]),
                         (started["pids"][0], "killed by SIGKILL", False))


class MultiprocessingPoolDriverTest(DriverTests, unittest.TestCase):
    script = "multiprocessing_pool.py"

    def test_a_dead_worker_is_replaced_and_its_task_never_completes(self):
        d = self.driver()
        started = d.start(1)
        d.send({"op": "submit", "id": 1, "command": "sleep", "args": {"ms": 60_000}})
        time.sleep(0.3)
        os.kill(started["pids"][0], signal.SIGKILL)
        d.send({"op": "submit", "id": 2, "command": "echo", "args": "after"})
        event = d.receive()
        self.assertEqual((event["id"], event["result"]), (2, "after"))
        self.assertNotEqual(event["worker_pid"], started["pids"][0])
        exited = d.await_event(lambda e: e.get("state") == "exited")
        self.assertEqual((exited["pid"], exited["cause"], exited["planned"]),
                         (started["pids"][0], "killed by SIGKILL", False))
        d.await_event(lambda e: e.get("state") == "ready" and e["pid"] == event["worker_pid"])


# --- the planted-case drivers ------------------------------------------------------------


class FaultyPoolDriverTest(unittest.TestCase):
    def driver(self, *args: str) -> DriverProcess:
        return DriverProcess(self, PLANTED_DRIVERS_DIR / "faulty_pool.py", *args)

    def test_a_crashing_task_ends_its_worker_unplanned_and_never_completes(self):
        d = self.driver("--crash-every", "2")
        started = d.start(1)
        d.send({"op": "submit", "id": 1, "command": "echo", "args": 1})
        self.assertEqual(d.receive()["worker_pid"], started["pids"][0])
        d.send({"op": "submit", "id": 2, "command": "echo", "args": 2})  # the crash
        exited = d.await_event(lambda e: e.get("state") == "exited")
        check_worker_event(self, exited)
        self.assertEqual((exited["pid"], exited["cause"], exited["planned"]),
                         (started["pids"][0], "exit code 1", False))
        replacement = d.await_event(
            lambda e: e.get("state") == "ready" and e["pid"] != exited["pid"])
        d.send({"op": "submit", "id": 3, "command": "echo", "args": 3})
        done = d.receive()
        self.assertEqual((done["id"], done["worker_pid"]), (3, replacement["pid"]))
        d.send({"op": "stop"})
        self.assertEqual(d.receive(), {"event": "stopped"})  # id 2 never came
        self.assertEqual(d.wait(), 0)

    def test_a_hanging_task_never_completes_and_stop_is_prompt(self):
        d = self.driver("--hang-every", "2")
        d.start(2)
        for i in (1, 2, 3):
            d.send({"op": "submit", "id": i, "command": "echo", "args": i})
        self.assertEqual({d.receive()["id"], d.receive()["id"]}, {1, 3})
        d.send({"op": "stats"})
        self.assertEqual(d.receive()["busy"], 1)  # id 2, asleep for an hour
        t0 = time.monotonic()
        d.send({"op": "stop"})
        self.assertEqual(d.receive(), {"event": "stopped"})
        self.assertEqual(d.wait(), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertTrue(wait_until(lambda: not group_members(d.pid), 5))


class SerialDispatchPoolDriverTest(unittest.TestCase):
    def driver(self) -> DriverProcess:
        return DriverProcess(self, PLANTED_DRIVERS_DIR / "serial_dispatch_pool.py")

    def test_one_task_at_a_time_while_the_other_workers_idle(self):
        d = self.driver()
        started = d.start(3)
        for i in range(1, 7):
            d.send({"op": "submit", "id": i, "command": "sleep", "args": {"ms": 30}})
        done = sorted((d.receive() for _ in range(6)), key=lambda e: e["t_worker_recv_ns"])
        for before, after in zip(done, done[1:]):
            self.assertLessEqual(before["t_worker_done_ns"], after["t_worker_recv_ns"])
        self.assertEqual({e["worker_pid"] for e in done}, set(started["pids"]))
        d.await_event(lambda e: e.get("event") == "pool" and e["busy"] == 0
                      and e["t_ns"] > done[-1]["t_worker_done_ns"])
        samples = [e for e in d.log if e.get("event") == "pool"]
        self.assertTrue(all(e["busy"] <= 1 and e["alive"] == 3 for e in samples), samples)
        self.assertTrue(any(e["queued"] > 0 and e["busy"] == 1 for e in samples), samples)
        for before, after in zip(samples, samples[1:]):
            self.assertGreaterEqual(after["t_ns"] - before["t_ns"], 45_000_000)
        d.send({"op": "stop"})
        self.assertEqual(d.receive(), {"event": "stopped"})
        self.assertEqual(d.wait(), 0)
        self.assertEqual(d.read_to_end(), [])
        self.assertTrue(wait_until(lambda: not group_members(d.pid), 5))
        for pid in started["pids"]:
            self.assertEqual([e["state"] for e in d.worker_events(pid)],
                             ["spawned", "ready", "exited"])

    def test_a_queued_task_completes_late_behind_a_slow_one(self):
        d = self.driver()
        started = d.start(2, warm=False)
        self.assertEqual(started["warm"], False)
        d.send({"op": "submit", "id": 1, "command": "sleep", "args": {"ms": 300}})
        d.send({"op": "submit", "id": 2, "command": "echo", "args": "late"})
        slow, late = d.receive(), d.receive()
        self.assertEqual((slow["id"], late["id"], late["result"]), (1, 2, "late"))
        self.assertNotEqual(slow["worker_pid"], late["worker_pid"])  # an idle worker waited
        self.assertGreaterEqual(late["t_worker_recv_ns"], slow["t_worker_done_ns"])
        self.assertGreaterEqual(late["t_done_ns"] - late["t_start_ns"], 300_000_000)
        d.proc.stdin.close()  # end of input is stop
        self.assertEqual(d.receive(), {"event": "stopped"})
        self.assertEqual(d.wait(), 0)


if __name__ == "__main__":
    unittest.main()
