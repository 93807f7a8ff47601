"""Tests of procpool_worker: each spawns real worker processes and speaks the wire protocol.

Run from python/: ``python3 -m unittest discover -s tests -v``.

Every worker runs in its own process group, which is killed and reaped after each test,
failed or not; the test then checks that nothing it started is still alive.
"""

import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

PYTHON_DIR = Path(__file__).resolve().parent.parent
PROBE_WORKER = Path(__file__).resolve().parent / "probe_worker.py"

# Generous, so that a loaded CI machine does not fail a correct worker.
REPLY_TIMEOUT = 10.0
# How long a test watches for a reply that must not come.
SILENCE_TIMEOUT = 0.3

MIB = 2**20

# The spec's knobs, spelled out here so that a rename in the worker fails a test.
SPEC_KNOBS = (
    "startup_ms", "init_ms", "service_dist", "service_ms", "service_min_ms", "service_max_ms",
    "service_sigma", "service_cpu", "seed", "crash_after", "crash_probability", "crash_mode",
    "crash_exit_code", "hang_probability", "hang_mode", "slow_probability", "slow_ms",
    "garbage_probability", "truncated_probability", "oversize_probability",
    "wrong_id_probability", "exit_during_init", "never_ready", "stderr_flood_mb",
    "memory_growth_kb", "ignore_sigterm", "grandchild",
)


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Silence(Exception):
    """Nothing arrived before the deadline."""


class EndOfStream(EOFError):
    """The worker's stdout closed; ``partial`` holds the bytes read before that."""

    def __init__(self, partial: bytes):
        super().__init__(f"stdout closed after {len(partial)} bytes")
        self.partial = partial


def proc_stat(pid: int) -> Optional[Dict[str, Any]]:
    """State, parent and process group of ``pid`` from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = text[text.rindex(")") + 2:].split()
    return {"state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2]),
            "cpu_ticks": int(fields[11]) + int(fields[12])}


def live_processes(predicate: Callable[[Dict[str, Any]], bool]) -> List[int]:
    """Pids of processes, zombies excepted, whose /proc stat satisfies ``predicate``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat["state"] != "Z" and predicate(stat):
                pids.append(int(entry))
    return pids


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited; True if it did within ``timeout`` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(pidfd)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class WorkerProcess:
    """A worker under test: frames with deadlines, and stderr drained concurrently."""

    def __init__(self, test: unittest.TestCase, args: Sequence[str] = (), *,
                 script: Optional[Path] = None, env: Optional[Dict[str, str]] = None):
        program = [sys.executable, str(script)] if script else [sys.executable, "-m",
                                                                "procpool_worker"]
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PYTHON_DIR), environment.get("PYTHONPATH")]))
        environment.update(env or {})
        self.t_spawn_ns = now_ns()
        self.proc = subprocess.Popen(
            program + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, env=environment, cwd=PYTHON_DIR)
        test.addCleanup(self.close, test)
        self.pid = self.proc.pid
        self._next_id = 1
        self._stderr = bytearray()
        self._stderr_closed = False
        self._stderr_changed = threading.Condition()
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()

    # -- frames ------------------------------------------------------------------------

    def send_payload(self, payload: bytes) -> None:
        self.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
        self.proc.stdin.flush()

    def send(self, message: Dict[str, Any]) -> None:
        self.send_payload(json.dumps(message).encode())

    def read_exactly(self, size: int, timeout: float = REPLY_TIMEOUT) -> bytes:
        """Read ``size`` bytes of stdout; Silence at the deadline, EndOfStream at EOF."""
        deadline = time.monotonic() + timeout
        data = bytearray()
        while len(data) < size:
            chunk = self._read_some(size - len(data), deadline)
            if not chunk:
                raise EndOfStream(bytes(data))
            data += chunk
        return bytes(data)

    def read_to_end(self, timeout: float = REPLY_TIMEOUT) -> bytes:
        """Read stdout until end of file; Silence at the deadline."""
        deadline = time.monotonic() + timeout
        data = bytearray()
        while True:
            chunk = self._read_some(1 << 16, deadline)
            if not chunk:
                return bytes(data)
            data += chunk

    def _read_some(self, limit: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not readable:
            raise Silence("no output before the deadline")
        return os.read(fd, min(limit, 1 << 16))

    def read_payload(self, timeout: float = REPLY_TIMEOUT) -> bytes:
        (length,) = struct.unpack(">I", self.read_exactly(4, timeout))
        return self.read_exactly(length, timeout)

    def receive(self, timeout: float = REPLY_TIMEOUT) -> Dict[str, Any]:
        return json.loads(self.read_payload(timeout))

    def request(self, command: str, args: Any = None) -> Dict[str, Any]:
        """Send one request and return its reply, stamped with the client's send and
        receive times as ``client_send_ns`` and ``client_reply_ns``."""
        request_id = self._next_id
        self._next_id += 1
        t_send_ns = now_ns()
        self.send({"id": request_id, "command": command, "args": args})
        reply = self.receive()
        reply["client_send_ns"] = t_send_ns
        reply["client_reply_ns"] = now_ns()
        return reply

    def init(self, **knobs: Any) -> Dict[str, Any]:
        """Send the init request; return the reply with the client's stamps added."""
        t_send_ns = now_ns()
        self.send({"id": 0, "command": "init", "args": knobs})
        reply = self.receive()
        reply["client_send_ns"] = t_send_ns
        reply["client_reply_ns"] = now_ns()
        return reply

    def handshake(self, **knobs: Any) -> Dict[str, Any]:
        reply = self.init(**knobs)
        if not reply.get("ok"):
            raise AssertionError(f"handshake failed: {reply}")
        return reply

    # -- process -----------------------------------------------------------------------

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait_exit(self, timeout: float = REPLY_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> bytes:
        with self._stderr_changed:
            return bytes(self._stderr)

    def wait_stderr(self, predicate: Callable[[bytearray], bool],
                    timeout: float = REPLY_TIMEOUT) -> bool:
        """Wait until ``predicate(stderr so far)`` holds; False if it never did."""
        with self._stderr_changed:
            self._stderr_changed.wait_for(
                lambda: predicate(self._stderr) or self._stderr_closed, timeout)
            return predicate(self._stderr)

    def wait_stderr_closed(self, timeout: float = REPLY_TIMEOUT) -> bytes:
        with self._stderr_changed:
            if not self._stderr_changed.wait_for(lambda: self._stderr_closed, timeout):
                raise AssertionError("stderr still open")
            return bytes(self._stderr)

    def _drain_stderr(self) -> None:
        fd = self.proc.stderr.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            with self._stderr_changed:
                if chunk:
                    self._stderr += chunk
                else:
                    self._stderr_closed = True
                self._stderr_changed.notify_all()
            if not chunk:
                return

    def close(self, test: unittest.TestCase) -> None:
        """Kill the process group, reap the worker, and check that none of it survives."""
        group = live_processes(lambda stat: stat["pgrp"] == self.pid)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(REPLY_TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self._drain.join(REPLY_TIMEOUT)
        self.proc.stderr.close()
        survivors = [pid for pid in group if not wait_gone(pid, REPLY_TIMEOUT)]
        test.assertEqual(survivors, [], "processes of the worker's group survived killpg")
        test.assertFalse(self._drain.is_alive(), "stderr never reached end of file")


class WorkerTestCase(unittest.TestCase):
    def setUp(self) -> None:
        # Registered first, so it runs after every worker's own cleanup.
        self.addCleanup(self.assert_no_children)

    def assert_no_children(self) -> None:
        children = live_processes(lambda stat: stat["ppid"] == os.getpid())
        self.assertEqual(children, [], "the test left child processes behind")

    def spawn(self, *args: str, **options: Any) -> WorkerProcess:
        return WorkerProcess(self, args, **options)

    def spawn_probe(self, *args: str, **options: Any) -> WorkerProcess:
        return WorkerProcess(self, args, script=PROBE_WORKER, **options)

    def assert_ok(self, reply: Dict[str, Any], result: Any) -> None:
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["result"], result)

    def assert_error(self, reply: Dict[str, Any], error_type: str) -> None:
        self.assertFalse(reply["ok"], reply)
        self.assertEqual(reply["error"]["type"], error_type, reply)
        self.assertIsInstance(reply["error"]["message"], str)
        self.assertIsInstance(reply["t_recv_ns"], int)
        self.assertIsInstance(reply["t_done_ns"], int)

    def assert_silent(self, worker: WorkerProcess) -> None:
        """No reply within the silence window, and the worker still runs."""
        with self.assertRaises(Silence):
            worker.read_exactly(1, SILENCE_TIMEOUT)
        self.assertIsNone(worker.proc.poll())

    def assert_crashed(self, worker: WorkerProcess, returncode: int) -> None:
        with self.assertRaises(EndOfStream):
            worker.read_exactly(1)
        self.assertEqual(worker.wait_exit(), returncode)


class HandshakeTest(WorkerTestCase):
    def test_reply_carries_pid_and_ordered_stamps(self):
        worker = self.spawn()
        reply = worker.handshake()
        self.assertEqual(reply["id"], 0)
        self.assertEqual(reply["result"], {"pid": worker.pid})
        self.assertEqual(reply["pid"], worker.pid)
        # The init request may be sent before the worker reaches main: the pipe holds it.
        stamps = [worker.t_spawn_ns, reply["t_main_ns"], reply["t_recv_ns"],
                  reply["t_init_done_ns"], reply["t_done_ns"], reply["client_reply_ns"]]
        self.assertEqual(stamps, sorted(stamps), reply)
        self.assertLessEqual(reply["client_send_ns"], reply["t_recv_ns"])

    def test_init_ms_delays_the_reply(self):
        reply = self.spawn().handshake(init_ms=100)
        self.assertGreaterEqual(reply["t_init_done_ns"] - reply["t_recv_ns"], 100e6)

    def test_init_args_override_command_line(self):
        worker = self.spawn("--crash-after", "1")
        worker.handshake(crash_after=0)
        for _ in range(3):
            self.assert_ok(worker.request("echo", 1), 1)

    def test_requests_before_init_are_refused(self):
        worker = self.spawn()
        self.assert_error(worker.request("echo", 1), "not_initialised")
        self.assert_error(worker.request("ping"), "not_initialised")
        worker.handshake()
        self.assert_ok(worker.request("ping"), "pong")

    def test_second_init_is_refused(self):
        worker = self.spawn()
        worker.handshake()
        self.assert_error(worker.init(), "already_initialised")

    def test_bad_init_keeps_the_worker_running(self):
        worker = self.spawn()
        reply = worker.init(xyz=1)
        self.assert_error(reply, "bad_init")
        self.assertEqual(reply["error"]["message"], "unknown knob 'xyz'")
        bad_values = {
            "crash_probability": 2, "slow_probability": -0.1, "init_ms": -1,
            "service_ms": "5", "service_cpu": "yes", "crash_exit_code": 256, "seed": -1,
            "crash_after": 1.5, "crash_mode": "explode", "hang_mode": None,
            "stderr_flood_mb": True,
        }
        for name, value in bad_values.items():
            with self.subTest(knob=name, value=value):
                self.assert_error(worker.init(**{name: value}), "bad_init")
        self.assert_error(worker.init(service_min_ms=5, service_max_ms=1), "bad_init")
        worker.send({"id": 0, "command": "init", "args": [1]})
        self.assert_error(worker.receive(), "bad_init")
        self.assert_error(worker.request("ping"), "not_initialised")
        worker.handshake(crash_probability=0.5, service_ms=0)

    def test_startup_ms_is_accepted_in_init_args(self):
        self.spawn().handshake(startup_ms=5)

    def test_preload_imports_modules_during_init(self):
        self.spawn("--preload", "json").handshake()
        worker = self.spawn_probe("--preload", "json,colorsys", "--preload", "wave")
        worker.handshake()
        self.assert_ok(worker.request("loaded", ["json", "colorsys", "wave"]),
                       {"json": True, "colorsys": True, "wave": True})
        worker = self.spawn_probe()
        worker.handshake()
        self.assert_ok(worker.request("loaded", ["colorsys"]), {"colorsys": False})

    def test_failed_preload_fails_the_handshake(self):
        self.assert_error(self.spawn("--preload", "no_such_module_xyz").init(),
                          "ModuleNotFoundError")

    def test_init_hook_receives_args(self):
        worker = self.spawn_probe()
        worker.handshake(seed=9)
        self.assert_ok(worker.request("init_calls"), [{"seed": 9}])

    def test_failing_init_hook_fails_the_handshake(self):
        worker = self.spawn_probe(env={"PROBE_FAIL_INIT": "1"})
        self.assert_error(worker.init(), "RuntimeError")

    def test_thread_limits_default_to_one(self):
        names = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]
        worker = self.spawn_probe(env={"OMP_NUM_THREADS": "4"})
        worker.handshake()
        self.assert_ok(worker.request("env", names), {
            "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


class CommandTest(WorkerTestCase):
    def test_echo_round_trips(self):
        worker = self.spawn()
        worker.handshake()
        for i in range(200):
            payload = {"i": i, "text": "é" * (i % 7), "list": list(range(i % 5)),
                       "nested": {"null": None, "float": i / 3}}
            reply = worker.request("echo", payload)
            self.assertEqual(reply["id"], i + 1)
            self.assert_ok(reply, payload)
            stamps = [reply["client_send_ns"], reply["t_recv_ns"], reply["t_done_ns"],
                      reply["client_reply_ns"]]
            self.assertEqual(stamps, sorted(stamps), reply)

    def test_sleep_and_burn(self):
        worker = self.spawn()
        worker.handshake()
        reply = worker.request("sleep", {"ms": 30})
        self.assertTrue(reply["ok"], reply)
        self.assertGreaterEqual(reply["result"]["slept_ms"], 30)
        self.assertGreaterEqual(reply["t_done_ns"] - reply["t_recv_ns"], 30e6)
        reply = worker.request("burn", {"ms": 30})
        self.assertTrue(reply["ok"], reply)
        self.assertGreaterEqual(reply["result"]["burned_ms"], 30)
        self.assertGreaterEqual(reply["t_done_ns"] - reply["t_recv_ns"], 30e6)
        self.assert_error(worker.request("sleep", {"ms": -1}), "ValueError")

    def test_unknown_command(self):
        worker = self.spawn()
        worker.handshake()
        self.assert_error(worker.request("frobnicate"), "unknown_command")
        self.assert_ok(worker.request("ping"), "pong")

    def test_handler_exception_becomes_error_reply(self):
        worker = self.spawn_probe()
        worker.handshake()
        reply = worker.request("fail", 7)
        self.assert_error(reply, "ValueError")
        self.assertEqual(reply["error"]["message"], "failed on purpose: 7")
        self.assertTrue(worker.wait_stderr(lambda err: b"ValueError: failed on purpose" in err))
        self.assert_error(worker.request("unserialisable"), "TypeError")
        self.assert_ok(worker.request("ping"), "pong")

    def test_handler_output_does_not_corrupt_frames(self):
        worker = self.spawn_probe()
        worker.handshake()
        self.assert_ok(worker.request("noisy"), "quiet")
        self.assert_ok(worker.request("loaded", ["sys"]), {"sys": True})
        for marker in (b"probe: print", b"probe: sys.stdout.write", b"probe: os.write(1)",
                       b"probe: subprocess"):
            with self.subTest(marker=marker):
                self.assertTrue(worker.wait_stderr(lambda err, m=marker: m in err))

    def test_service_time(self):
        cases = [
            ({"service_ms": 40}, 40),
            ({"service_ms": 40, "service_cpu": True}, 40),
            ({"service_dist": "uniform", "service_min_ms": 40, "service_max_ms": 40}, 40),
            ({"service_dist": "exponential", "service_ms": 1}, 0),
            ({"service_dist": "lognormal", "service_ms": 1, "service_sigma": 0.2}, 0),
        ]
        for knobs, minimum_ms in cases:
            with self.subTest(**knobs):
                worker = self.spawn()
                worker.handshake(**knobs)
                reply = worker.request("echo", "x")
                self.assert_ok(reply, "x")
                self.assertGreaterEqual(reply["t_done_ns"] - reply["t_recv_ns"], minimum_ms * 1e6)

    def test_end_of_input_exits_quietly(self):
        worker = self.spawn()
        worker.close_stdin()
        self.assertEqual(worker.wait_exit(), 0)
        self.assertEqual(worker.wait_stderr_closed(), b"")
        worker = self.spawn()
        worker.handshake()
        worker.close_stdin()
        self.assertEqual(worker.wait_exit(), 0)

    def test_malformed_requests_exit_65(self):
        payloads = [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"command": "echo"}',
                    b'{"id": -1, "command": "echo"}', b'{"id": 1, "command": 5}']
        for payload in payloads:
            with self.subTest(payload=payload):
                worker = self.spawn()
                worker.send_payload(payload)
                self.assertEqual(worker.wait_exit(), 65)
                self.assertIn(b"protocol error", worker.wait_stderr_closed())


class CommandLineTest(WorkerTestCase):
    def test_help_documents_every_knob(self):
        worker = self.spawn("--help")
        help_text = worker.read_to_end().decode()
        self.assertEqual(worker.wait_exit(), 0)
        self.assertIn("--preload", help_text)
        for name in SPEC_KNOBS:
            with self.subTest(knob=name):
                if name == "startup_ms":
                    self.assertIn("startup_ms: not applicable", help_text)
                else:
                    self.assertIn("--" + name.replace("_", "-"), help_text)

    def test_bad_flags_exit_2(self):
        cases = [["--no-such-flag"], ["--crash-probability", "2"], ["--service-cpu", "maybe"],
                 ["--crash-mode", "explode"], ["--seed", "x"], ["--startup-ms", "1"],
                 ["--service-min-ms", "5", "--service-max-ms", "1"]]
        for args in cases:
            with self.subTest(args=args):
                worker = self.spawn(*args)
                self.assertEqual(worker.wait_exit(), 2)
                self.assertIn(b"usage:", worker.wait_stderr_closed())


class FaultTest(WorkerTestCase):
    def test_crash_after_counts_requests_but_not_pings(self):
        worker = self.spawn("--crash-after", "3", "--crash-exit-code", "7")
        worker.handshake()
        for i in range(3):
            self.assert_ok(worker.request("echo", i), i)
            self.assert_ok(worker.request("ping"), "pong")
        worker.send({"id": 99, "command": "echo", "args": 3})
        self.assert_crashed(worker, 7)

    def test_crash_modes(self):
        for mode, returncode in (("exit", 3), ("segv", -signal.SIGSEGV),
                                 ("kill", -signal.SIGKILL)):
            with self.subTest(mode=mode):
                worker = self.spawn()
                worker.handshake(crash_probability=1, crash_mode=mode)
                worker.send({"id": 1, "command": "echo"})
                self.assert_crashed(worker, returncode)

    def test_seed_makes_fault_draws_repeatable(self):
        def requests_until_crash(seed: int) -> int:
            worker = self.spawn()
            worker.handshake(seed=seed, crash_probability=0.2)
            for served in range(1000):
                worker.send({"id": served + 1, "command": "echo"})
                try:
                    worker.receive()
                except EndOfStream:
                    return served
            self.fail("no crash in 1000 requests at probability 0.2")

        self.assertEqual(requests_until_crash(7), requests_until_crash(7))

    def test_hang_modes(self):
        for mode in ("sleep", "spin"):
            with self.subTest(mode=mode):
                worker = self.spawn()
                worker.handshake(hang_probability=1, hang_mode=mode)
                self.assert_ok(worker.request("ping"), "pong")
                cpu_before = proc_stat(worker.pid)["cpu_ticks"]
                worker.send({"id": 1, "command": "echo"})
                self.assert_silent(worker)
                if mode == "spin":
                    self.assertGreater(proc_stat(worker.pid)["cpu_ticks"], cpu_before)

    def test_slow_reply(self):
        worker = self.spawn()
        worker.handshake(slow_probability=1, slow_ms=150)
        reply = worker.request("echo", "late")
        self.assert_ok(reply, "late")
        self.assertGreaterEqual(reply["t_done_ns"] - reply["t_recv_ns"], 150e6)

    def test_garbage_reply_is_framed_but_not_json(self):
        worker = self.spawn()
        worker.handshake(garbage_probability=1)
        worker.send({"id": 1, "command": "echo", "args": "x"})
        payload = worker.read_payload()
        with self.assertRaises(ValueError):
            json.loads(payload.decode())
        self.assert_ok(worker.request("ping"), "pong")

    def test_truncated_reply(self):
        worker = self.spawn()
        worker.handshake(truncated_probability=1)
        worker.send({"id": 1, "command": "echo"})
        (length,) = struct.unpack(">I", worker.read_exactly(4))
        self.assertEqual(length, 100)
        with self.assertRaises(EndOfStream) as end:
            worker.read_exactly(length)
        self.assertEqual(len(end.exception.partial), 10)
        self.assertEqual(worker.wait_exit(), 0)

    def test_oversize_length_prefix(self):
        worker = self.spawn()
        worker.handshake(oversize_probability=1)
        worker.send({"id": 1, "command": "echo"})
        self.assertEqual(worker.read_exactly(4), struct.pack(">I", 0xFFFFFFF0))
        self.assert_silent(worker)

    def test_wrong_id(self):
        worker = self.spawn()
        worker.handshake(wrong_id_probability=1)
        worker.send({"id": 5, "command": "echo", "args": "x"})
        reply = worker.receive()
        self.assertEqual(reply["id"], 1_000_005)
        self.assert_ok(reply, "x")

    def test_exit_during_init(self):
        worker = self.spawn("--exit-during-init")
        worker.send({"id": 0, "command": "init", "args": {}})
        self.assert_crashed(worker, 3)
        worker = self.spawn()
        worker.send({"id": 0, "command": "init",
                     "args": {"exit_during_init": True, "crash_exit_code": 9}})
        self.assert_crashed(worker, 9)

    def test_never_ready(self):
        worker = self.spawn()
        worker.send({"id": 0, "command": "init", "args": {"never_ready": True}})
        self.assert_silent(worker)

    def test_stderr_flood_during_init(self):
        worker = self.spawn()
        worker.handshake(stderr_flood_mb=4)
        worker.close_stdin()
        self.assertEqual(worker.wait_exit(), 0)
        self.assertEqual(len(worker.wait_stderr_closed()), 4 * MIB)

    def test_memory_growth(self):
        worker = self.spawn()
        worker.handshake(memory_growth_kb=4096)
        rss_before = rss_kib(worker.pid)
        for i in range(5):
            self.assert_ok(worker.request("echo", i), i)
        self.assertGreaterEqual(rss_kib(worker.pid) - rss_before, 16 * 1024)

    def test_ignore_sigterm(self):
        for how in ("flag", "init args"):
            with self.subTest(how=how):
                worker = self.spawn(*(["--ignore-sigterm"] if how == "flag" else []))
                worker.handshake(**({"ignore_sigterm": True} if how == "init args" else {}))
                os.kill(worker.pid, signal.SIGTERM)
                # Pending signals are acted on before the worker can write again, so a
                # reply proves SIGTERM was ignored.
                self.assert_ok(worker.request("ping"), "pong")
        worker = self.spawn()
        worker.handshake()
        os.kill(worker.pid, signal.SIGTERM)
        self.assertEqual(worker.wait_exit(), -signal.SIGTERM)

    def test_grandchild_outlives_worker_until_group_is_killed(self):
        for how in ("flag", "init args"):
            with self.subTest(how=how):
                worker = self.spawn(*(["--grandchild"] if how == "flag" else []))
                worker.handshake(**({"grandchild": True} if how == "init args" else {}))
                (grandchild,) = live_processes(lambda stat: stat["ppid"] == worker.pid)
                self.assertEqual(proc_stat(grandchild)["pgrp"], worker.pid)
                pidfd = os.pidfd_open(grandchild)
                self.addCleanup(os.close, pidfd)
                worker.close_stdin()
                # stdout reaches EOF although the grandchild lives: it holds no pipe.
                with self.assertRaises(EndOfStream):
                    worker.read_exactly(1)
                self.assertEqual(worker.wait_exit(), 0)
                self.assertEqual(select.select([pidfd], [], [], 0)[0], [],
                                 "grandchild died with the worker")
                os.killpg(worker.pid, signal.SIGKILL)
                self.assertEqual(select.select([pidfd], [], [], REPLY_TIMEOUT)[0], [pidfd],
                                 "grandchild survived killing its process group")



def frame(message: Dict[str, Any]) -> bytes:
    payload = json.dumps(message).encode()
    return struct.pack(">I", len(payload)) + payload


def parse_frames(data: bytes) -> List[Dict[str, Any]]:
    """The JSON replies in ``data``, which must end at a frame boundary."""
    replies, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        if pos + 4 + length > len(data):
            raise AssertionError(f"stream ends inside a frame at byte {pos}")
        replies.append(json.loads(data[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return replies


def write_syscalls(pid: int) -> int:
    """How many write and writev calls ``pid`` has made (/proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/PID/io")


class PipeliningTest(WorkerTestCase):
    """Requests written several at a time, as the pool does at pipeline depth > 1: replies
    in order, none held back by a later request's sleep, fault or the end of input."""

    def send_batch(self, worker: WorkerProcess, messages: Sequence[Dict[str, Any]], *,
                   then: bytes = b"", close: bool = False) -> None:
        """Write the frames of ``messages`` (and ``then``) in one write, from a thread, so
        that a batch larger than the pipe cannot block the test while replies fill the other
        pipe; ``close`` closes the worker's stdin after it."""
        data = b"".join(frame(message) for message in messages) + then

        def write() -> None:
            try:
                worker.proc.stdin.write(data)
                worker.proc.stdin.flush()
                if close:
                    worker.proc.stdin.close()
            except BrokenPipeError:
                pass  # the worker exited mid batch, as some tests intend

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        self.addCleanup(writer.join, REPLY_TIMEOUT)

    def receive_replies(self, worker: WorkerProcess, count: int) -> List[Dict[str, Any]]:
        """``count`` replies, each stamped with the client's arrival time."""
        replies = []
        for _ in range(count):
            reply = worker.receive()
            reply["client_reply_ns"] = now_ns()
            replies.append(reply)
        return replies

    def assert_echoes(self, replies: List[Dict[str, Any]], ids: Sequence[int]) -> None:
        self.assertEqual([reply["id"] for reply in replies], list(ids))
        for reply in replies:
            self.assert_ok(reply, reply["id"] * 3)

    def echoes(self, ids: Sequence[int]) -> List[Dict[str, Any]]:
        return [{"id": i, "command": "echo", "args": i * 3} for i in ids]

    def test_a_thousand_requests_in_one_write_are_answered_in_order(self):
        for flush in ("batch", "each"):
            with self.subTest(flush=flush):
                env = {"PROCPOOL_WORKER_FLUSH": "each"} if flush == "each" else {}
                worker = self.spawn(env=env)
                worker.handshake()
                writes_before = write_syscalls(worker.pid)
                self.send_batch(worker, self.echoes(range(1, 1001)))
                replies = self.receive_replies(worker, 1000)
                self.assert_echoes(replies, range(1, 1001))
                stamps = [reply["t_recv_ns"] for reply in replies]
                self.assertEqual(stamps, sorted(stamps), "requests served out of order")
                writes = write_syscalls(worker.pid) - writes_before
                if flush == "each":
                    self.assertGreaterEqual(writes, 1000)
                else:
                    # One writev per read batch and per 64 KiB of replies: a handful.
                    self.assertLess(writes, 100)
                worker.close_stdin()
                self.assertEqual(worker.wait_exit(), 0)

    def test_end_of_input_flushes_the_batch(self):
        worker = self.spawn()
        worker.handshake()
        self.send_batch(worker, self.echoes(range(1, 21)), close=True)
        self.assert_echoes(parse_frames(worker.read_to_end()), range(1, 21))
        self.assertEqual(worker.wait_exit(), 0)

    def test_crash_mid_batch_delivers_the_earlier_replies(self):
        worker = self.spawn()
        worker.handshake(crash_after=10, crash_exit_code=7)
        self.send_batch(worker, self.echoes(range(1, 51)))
        self.assert_echoes(parse_frames(worker.read_to_end()), range(1, 11))
        self.assertEqual(worker.wait_exit(), 7)

    def test_bad_frames_mid_batch_deliver_the_earlier_replies(self):
        cases = ((b"\x00\x00\x00\x02{x", b"protocol error"),
                 (b"\x00\x00\x01\x00{", b"stream ended after 1 of 256 payload bytes"))
        for tail, message in cases:
            with self.subTest(tail=tail):
                worker = self.spawn()
                worker.handshake()
                self.send_batch(worker, self.echoes(range(1, 6)), then=tail, close=True)
                self.assert_echoes(parse_frames(worker.read_to_end()), range(1, 6))
                self.assertEqual(worker.wait_exit(), 65)
                self.assertIn(message, worker.wait_stderr_closed())

    def test_garbage_mid_batch_keeps_its_place(self):
        worker = self.spawn()
        worker.handshake(garbage_probability=1)
        self.send_batch(worker, [{"id": 1, "command": "ping"}, *self.echoes([2]),
                                 {"id": 3, "command": "ping"}])
        self.assertEqual(worker.receive()["id"], 1)
        with self.assertRaises(ValueError):
            json.loads(worker.read_payload().decode())
        self.assertEqual(worker.receive()["id"], 3)

    def test_a_slow_request_does_not_hold_the_replies_before_it(self):
        """Each case's request 6 takes 50 ms (a handler never run before, one whose mean is
        slow, service time, the slow knob): replies 1-5 must reach the client before it
        finishes, so they were written before it started."""
        sleep = {"id": 6, "command": "sleep", "args": {"ms": 50}}
        cases = (("untimed handler", {}, sleep),
                 ("slow mean", {}, sleep),
                 ("service time", {"service_ms": 50}, self.echoes([6])[0]),
                 ("slow knob", {"slow_probability": 1, "slow_ms": 50}, self.echoes([6])[0]))
        worker = None
        for name, knobs, slow_request in cases:
            with self.subTest(name):
                if name != "slow mean":  # it reuses the worker that has run sleep once
                    worker = self.spawn()
                    worker.handshake(**knobs)
                    # Echo timed and known fast, so only request 6 can cause a flush.
                    if not knobs:
                        self.send_batch(worker, self.echoes([0]))
                        self.receive_replies(worker, 1)
                self.send_batch(worker, self.echoes(range(1, 6)) + [slow_request])
                replies = self.receive_replies(worker, 6)
                self.assertEqual([reply["id"] for reply in replies], list(range(1, 7)))
                slow = replies[5]
                self.assertGreaterEqual(slow["t_done_ns"] - slow["t_recv_ns"], 50e6)
                self.assertLess(replies[4]["client_reply_ns"], slow["t_done_ns"],
                                "reply 5 waited for request 6")

    def test_a_frame_larger_than_the_read_buffer(self):
        worker = self.spawn()
        worker.handshake()
        big = "x" * (600 * 1024)  # more than twice the reader's 256 KiB buffer
        self.send_batch(worker, self.echoes([1]) + [{"id": 2, "command": "echo", "args": big}]
                        + self.echoes([3]))
        replies = self.receive_replies(worker, 3)
        self.assertEqual([reply["id"] for reply in replies], [1, 2, 3])
        self.assertEqual(replies[1]["result"], big)


if __name__ == "__main__":
    unittest.main()
