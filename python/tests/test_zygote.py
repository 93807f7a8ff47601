"""Tests of the zygote template sketch (procpool_worker.zygote, pool/ZYGOTE.md).

Run from python/: ``python3 -m unittest tests.test_zygote -v``. The test plays the pool: it
launches a template over a SOCK_SEQPACKET socketpair, asks it for forks, speaks the worker
protocol with the children, and reaps them through the template.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

from procpool_worker import framing

PYTHON_DIR = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0

PROBE_MODULE = textwrap.dedent("""
    import os, random
    from procpool_worker.worker import Worker

    def build(t_main_ns=None):
        worker = Worker(t_main_ns=t_main_ns)

        @worker.handler("probe")
        def probe(args):
            links = []
            for name in os.listdir("/proc/self/fd"):
                try:
                    links.append(os.readlink(f"/proc/self/fd/{name}"))
                except OSError:
                    pass
            return {"rand": random.random(), "links": links, "pgid": os.getpgid(0),
                    "worker_id": os.environ.get("PROCPOOL_WORKER_ID")}
        return worker
""")

# A preload that keeps a descriptor open: the children must not inherit it.
OPENS_PRELOAD = textwrap.dedent("""
    import os
    HELD = open(os.path.join(os.path.dirname(__file__), "held-by-the-template"), "w")
""")

THREADED_PRELOAD = textwrap.dedent("""
    import threading, time
    threading.Thread(target=time.sleep, args=(3600,), name="preload-thread", daemon=True).start()
""")


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Template:
    """A template process and the pool's end of its control channel."""

    def __init__(self, test, modules_dir, preload):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, PYTHONPATH=f"{modules_dir}{os.pathsep}{PYTHON_DIR}",
                   PROCPOOL_ZYGOTE_FD="0")
        argv = [sys.executable, "-m", "procpool_worker.zygote", "zyg_probe:build"]
        if preload:
            argv += ["--preload", preload]
        self.stderr_r, stderr_w = os.pipe()
        self.proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=stderr_w,
                                     stderr=stderr_w, env=env, start_new_session=True)
        theirs.close()
        os.close(stderr_w)
        test.addCleanup(self.cleanup)

    def receive(self):
        ready, _, _ = select.select([self.sock], [], [], TIMEOUT)
        if not ready:
            raise AssertionError("no message from the template")
        payload, fds, _, _ = socket.recv_fds(self.sock, 65536, 4)
        return (json.loads(payload) if payload else None), fds

    def send(self, message, fds=()):
        payload = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.sock, [payload], list(fds))
        else:
            self.sock.send(payload)

    def cleanup(self):
        self.sock.close()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait(TIMEOUT)
        os.close(self.stderr_r)


class Child:
    """The pool's ends of a forked worker's pipes, its pidfd and its pid."""

    def __init__(self, template, request_id):
        stdin_r, self.stdin = os.pipe()
        self.stdout, stdout_w = os.pipe()
        self.stderr, stderr_w = os.pipe()
        self.t_request_ns = now_ns()
        template.send({"type": "fork", "id": request_id,
                       "env": {"PROCPOOL_WORKER_ID": str(request_id)}},
                      [stdin_r, stdout_w, stderr_w])
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
        self.reply, fds = template.receive()
        self.pidfd = fds[0] if fds else None
        self.frames_in = os.fdopen(self.stdout, "rb")
        self.frames_out = os.fdopen(self.stdin, "wb")

    def call(self, request_id, command, args=None):
        framing.write_frame(self.frames_out, json.dumps(
            {"id": request_id, "command": command, "args": args}).encode())
        payload = framing.read_frame(self.frames_in)
        if payload is None:
            raise AssertionError("child closed stdout; stderr: "
                                 + os.read(self.stderr, 65536).decode(errors="replace"))
        return json.loads(payload)

    def close(self):
        for stream in (self.frames_in, self.frames_out):
            try:
                stream.close()
            except OSError:
                pass
        os.close(self.stderr)
        if self.pidfd is not None:
            os.close(self.pidfd)


class ZygoteTest(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.modules = Path(directory.name)
        (self.modules / "zyg_probe.py").write_text(PROBE_MODULE)
        (self.modules / "zyg_threaded.py").write_text(THREADED_PRELOAD)
        (self.modules / "zyg_opens.py").write_text(OPENS_PRELOAD)

    def test_forks_initialises_and_reaps_children(self):
        template = Template(self, self.modules, "json,random,zyg_opens")
        ready, _ = template.receive()
        self.assertEqual(ready["type"], "ready")
        self.assertEqual(ready["pid"], template.proc.pid)
        self.assertLessEqual(ready["t_main_ns"], ready["t_preload_done_ns"])

        children = [Child(template, request_id) for request_id in (1, 2)]
        probes = []
        for child in children:
            self.assertEqual(child.reply["type"], "forked", child.reply)
            self.assertIsNotNone(child.pidfd)
            init = child.call(0, "init", {})
            self.assertTrue(init["ok"], init)
            self.assertEqual(init["pid"], child.reply["pid"])
            # t_main_ns is the child's first stamp after the fork.
            self.assertGreaterEqual(init["t_main_ns"], child.reply["t_fork_ns"])
            self.assertLessEqual(init["t_main_ns"], init["t_init_done_ns"])
            probe = child.call(1, "probe")
            self.assertTrue(probe["ok"], probe)
            probes.append(probe["result"])
        for child, probe in zip(children, probes):
            self.assertEqual(probe["pgid"], child.reply["pid"])  # own process group
            self.assertEqual(probe["worker_id"], str(child.reply["id"]))
            self.assertFalse([link for link in probe["links"] if link.startswith("socket:")],
                             f"the control channel leaked into the child: {probe['links']}")
            self.assertFalse([link for link in probe["links"] if "held-by-the-template" in link],
                             f"a preload's descriptor leaked into the child: {probe['links']}")
        # CPython's random registers its own after-fork reseed (os.register_at_fork); the
        # template's explicit reseed matters for numpy's global generator, which does not.
        self.assertNotEqual(probes[0]["rand"], probes[1]["rand"], "random was not reseeded")

        for request_id, child in enumerate(children, start=1):
            child.frames_out.close()  # EOF: the worker exits 0
            self.assertTrue(select.select([child.pidfd], [], [], TIMEOUT)[0], "child did not exit")
            os.killpg(child.reply["pid"], signal.SIGKILL)  # leader unreaped: the group is ours
            template.send({"type": "reap", "id": request_id})
            reaped, _ = template.receive()
            self.assertEqual(reaped, {"type": "reaped", "id": request_id, "code": 0, "signal": 0})
            child.close()

        template.sock.shutdown(socket.SHUT_WR)  # EOF: the template exits 0
        self.assertEqual(template.proc.wait(TIMEOUT), 0)

    def test_refuses_to_fork_with_threads_alive(self):
        template = Template(self, self.modules, "zyg_threaded")
        ready, _ = template.receive()
        self.assertEqual(ready["type"], "ready")
        child = Child(template, 7)
        self.addCleanup(child.close)
        self.assertEqual(child.reply["type"], "fork_failed")
        self.assertEqual(child.reply["id"], 7)
        self.assertEqual(child.reply["error"]["type"], "threads_alive")
        self.assertIn("preload-thread", child.reply["error"]["message"])

    def test_reports_a_failed_preload(self):
        template = Template(self, self.modules, "zyg_no_such_module")
        failed, _ = template.receive()
        self.assertEqual(failed["type"], "preload_failed")
        self.assertEqual(failed["error"]["type"], "ModuleNotFoundError")
        self.assertEqual(template.proc.wait(TIMEOUT), 70)

    def test_reap_of_a_running_child_is_refused(self):
        template = Template(self, self.modules, "")
        template.receive()
        child = Child(template, 1)
        self.addCleanup(child.close)
        template.send({"type": "reap", "id": 1})
        refused, _ = template.receive()
        self.assertEqual(refused["type"], "reap_failed")
        self.assertEqual(refused["error"]["type"], "running")
        template.send({"type": "reap", "id": 99})
        unknown, _ = template.receive()
        self.assertEqual(unknown["error"]["type"], "unknown_id")


if __name__ == "__main__":
    unittest.main()
