"""Tests of the zygote mode (``--zygote``, procpool_worker.zygote, pool/ZYGOTE.md).

Run from python/: ``python3 -m unittest tests.test_zygote -v``. Each test plays the pool: it
launches a template (a worker script, or ``python3 -m procpool_worker``, with ``--zygote``)
over a SOCK_SEQPACKET socketpair, asks it for forks, speaks the worker protocol with the
children over their pipes (the SDK's framing), and reaps them through the template. Every
wait is a select() on a descriptor with a timeout, never a sleep. Cleanup, also on failure:
the control channel's EOF makes the template SIGKILL and reap its children and exit; if it
does not within the timeout, the test SIGKILLs the template's group and every child's group.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import importlib.util
import textwrap
import time
import unittest
from pathlib import Path

from procpool_worker import framing

PYTHON_DIR = Path(__file__).resolve().parent.parent
HEAVY_MODULE_GENERATOR = PYTHON_DIR.parent / "bench" / "heavy_module.py"
TIMEOUT = 10.0
EXIT_PRELOAD_FAILED = 70

# A user's worker script, in the README's shape: its entry point is Worker.run.
PROBE_WORKER = textwrap.dedent("""\
    import time; T_MAIN_NS = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    import gc, os, random, sys
    from procpool_worker import Worker

    worker = Worker(t_main_ns=T_MAIN_NS, prog="zyg_probe")

    def memory_kib(pid):
        # Resident KiB (shared or not) and unique KiB (USS: pages no other process maps).
        fields = {}
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                name, _, rest = line.partition(":")
                fields[name] = rest.split()[0] if rest.split() else ""
        return {"rss": int(fields["Rss"]),
                "uss": int(fields["Private_Clean"]) + int(fields["Private_Dirty"])}

    @worker.handler("probe")
    def probe(args):
        links = {}
        for name in os.listdir("/proc/self/fd"):
            try:
                links[name] = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                pass  # the listing's own descriptor, closed by now
        numpy = sys.modules.get("numpy")
        opens = sys.modules.get("zyg_opens")
        return {"preload_stdin": getattr(opens, "STDIN_AT_PRELOAD", None),
                "rand": random.random(), "links": links, "pid": os.getpid(),
                "pgid": os.getpgid(0), "worker_id": os.environ.get("PROCPOOL_WORKER_ID"),
                "zygote_fd": os.environ.get("PROCPOOL_ZYGOTE_FD"),
                "freeze_count": gc.get_freeze_count(), "gc_enabled": gc.isenabled(),
                "random_seeds": getattr(random, "SEED_CALLS", None),
                "numpy_seeds": numpy.random.SEED_CALLS if numpy is not None else None}

    @worker.handler("draws")
    def draws(args):
        # The next value of each global generator: what a caller's code would get.
        numpy = sys.modules.get("numpy")
        return {"random": random.random(),
                "numpy": float(numpy.random.random()) if numpy is not None else None}

    @worker.handler("collect_and_measure")
    def collect_and_measure(args):
        # A full collection first: were the preload's objects not frozen, it would write to
        # every one of them and copy their pages into this process.
        gc.collect()
        return memory_kib(os.getpid())

    @worker.handler("use_stale_file")
    def use_stale_file(args):
        # The preload's file object survived the fork; its descriptor did not.
        held = sys.modules["zyg_opens"].HELD
        try:
            held.write("scribbled by a stale object\\n" * 100)
            held.flush()
        except OSError:
            pass
        held.close()
        return "used"

    if __name__ == "__main__":
        worker.run()
""")

PRELOADS = {
    # Keeps a file open: the children must not inherit it. Notes what its fd 0 is: the
    # template moved the control channel off it before the preload.
    "zyg_opens.py": """
        import os
        HELD = open(os.path.join(os.path.dirname(__file__), "held-by-the-template"), "w")
        STDIN_AT_PRELOAD = os.readlink("/proc/self/fd/0")
    """,
    # Records every call of random.seed() made through the module (the template's reseed;
    # CPython's own after-fork reseed calls the bound method it registered, not this).
    "zyg_seeds.py": """
        import os, random
        random.SEED_CALLS = []
        _seed = random.seed
        def seed(*args, **kwargs):
            random.SEED_CALLS.append(os.getpid())
            return _seed(*args, **kwargs)
        random.seed = seed
    """,
    # A fake numpy whose global generator records its reseeds, which the real one cannot
    # (test_real_numpy_children_draw_their_own_numbers checks the real one by its draws).
    "numpy/__init__.py": """
        from . import random
    """,
    "numpy/random.py": """
        import os
        SEED_CALLS = []
        def seed(seed=None):
            SEED_CALLS.append(os.getpid())
    """,
    # Seeds both global generators with a fixed seed at import, and says what each one's next
    # draw in this process is: the template draws nothing after its preload, so a child that
    # inherited the state unchanged would draw exactly these.
    "zyg_fixed_seeds.py": """
        import random
        import numpy
        random.seed(1234)
        numpy.random.seed(1234)
        TEMPLATE_NEXT = {"random": random.Random(1234).random(),
                         "numpy": float(numpy.random.RandomState(1234).random_sample())}
    """,
    "zyg_threaded.py": """
        import threading, time
        threading.Thread(target=time.sleep, args=(3600,), name="preload-thread",
                         daemon=True).start()
    """,
    # A thread the interpreter does not know: pthread_create(sleep, 3600) through ctypes.
    "zyg_native_thread.py": """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        thread = ctypes.c_ulong()
        start = ctypes.cast(libc.sleep, ctypes.c_void_p)
        if libc.pthread_create(ctypes.byref(thread), None, start, ctypes.c_void_p(3600)):
            raise OSError(ctypes.get_errno(), "pthread_create failed")
    """,
    "zyg_raises.py": """
        raise RuntimeError("boom from the preload")
    """,
}


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def wait_readable(fd, what):
    if not select.select([fd], [], [], TIMEOUT)[0]:
        raise AssertionError(f"timed out waiting for {what}")


class Template:
    """A template process and the pool's end of its control channel."""

    def __init__(self, test, modules_dir, preload, module=False):
        self.children = []
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, PYTHONPATH=f"{modules_dir}{os.pathsep}{PYTHON_DIR}",
                   PROCPOOL_ZYGOTE_FD="0")
        entry = ["-m", "procpool_worker"] if module else [str(modules_dir / "zyg_probe.py")]
        argv = [sys.executable, *entry, "--zygote"]
        if preload:
            argv += ["--preload", preload]
        self.stderr_r, stderr_w = os.pipe()
        test.addCleanup(self.cleanup)
        self.proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=stderr_w,
                                     stderr=stderr_w, env=env, start_new_session=True)
        theirs.close()
        os.close(stderr_w)

    def receive(self):
        wait_readable(self.sock, "a message from the template")
        payload, fds, _, _ = socket.recv_fds(self.sock, 65536, 4)
        return (json.loads(payload) if payload else None), fds

    def send(self, message, fds=()):
        payload = json.dumps(message).encode()
        if fds:
            socket.send_fds(self.sock, [payload], list(fds))
        else:
            self.sock.send(payload)

    def fork(self, request_id):
        child = Child(self, request_id)
        self.children.append(child)
        return child

    def stderr_text(self):
        """The template's stderr up to EOF: call after it exited (no child holds the pipe)."""
        chunks = []
        while select.select([self.stderr_r], [], [], TIMEOUT)[0]:
            chunk = os.read(self.stderr_r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def cleanup(self):
        for child in self.children:
            child.close()
        self.sock.close()  # EOF: the template SIGKILLs and reaps its children, exits 0
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            for child in self.children:
                if child.pid is not None:
                    try:
                        os.killpg(child.pid, signal.SIGKILL)  # unreaped: the group is theirs
                    except OSError:
                        pass
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(TIMEOUT)
        os.close(self.stderr_r)


class Child:
    """The pool's ends of a forked worker's pipes, its pidfd and its pid."""

    def __init__(self, template, request_id):
        self.closed = False
        stdin_r, self.stdin = os.pipe()
        self.stdout, stdout_w = os.pipe()
        self.stderr, stderr_w = os.pipe()
        self.t_request_ns = now_ns()
        template.send({"type": "fork", "id": request_id,
                       "env": {"PROCPOOL_WORKER_ID": str(request_id)}},
                      [stdin_r, stdout_w, stderr_w])
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)  # the pool's copies of the child's ends, once sendmsg returned
        self.reply, fds = template.receive()
        self.pidfd = fds[0] if fds else None
        self.pid = self.reply.get("pid") if self.reply["type"] == "forked" else None
        self.frames_in = os.fdopen(self.stdout, "rb")
        self.frames_out = os.fdopen(self.stdin, "wb")

    def call(self, request_id, command, args=None):
        framing.write_frame(self.frames_out, json.dumps(
            {"id": request_id, "command": command, "args": args}).encode())
        wait_readable(self.frames_in, f"the reply to {command}")
        payload = framing.read_frame(self.frames_in)
        if payload is None:
            raise AssertionError("child closed stdout; stderr: "
                                 + os.read(self.stderr, 65536).decode(errors="replace"))
        return json.loads(payload)

    def close(self):
        if self.closed:
            return
        self.closed = True
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
        (self.modules / "numpy").mkdir()
        (self.modules / "zyg_probe.py").write_text(PROBE_WORKER)
        for name, text in PRELOADS.items():
            (self.modules / name).write_text(textwrap.dedent(text))

    def ready(self, template):
        ready, fds = template.receive()
        self.assertEqual(fds, [])
        self.assertEqual(ready["type"], "ready", ready)
        self.assertEqual(ready["protocol"], 1)
        self.assertEqual(ready["pid"], template.proc.pid)
        self.assertLessEqual(ready["t_main_ns"], ready["t_preload_done_ns"])
        return ready

    def test_forks_initialises_and_reaps_children(self):
        """A user's worker script with --zygote: the children are ordinary, separate workers;
        each pitfall of pool/ZYGOTE.md is checked in them."""
        template = Template(self, self.modules, "json,zyg_seeds,numpy,zyg_opens")
        ready = self.ready(template)

        children = [template.fork(request_id) for request_id in (1, 2)]
        probes = []
        for child in children:
            self.assertEqual(child.reply["type"], "forked", child.reply)
            self.assertIsNotNone(child.pidfd)
            self.assertNotEqual(child.pid, template.proc.pid)
            init = child.call(0, "init", {})
            t_init_reply_ns = now_ns()
            self.assertTrue(init["ok"], init)
            self.assertEqual(init["pid"], child.pid)
            # The handshake runs in the child, after the fork; t_main_ns is the fork's.
            self.assertNotEqual(init["t_main_ns"], ready["t_main_ns"])
            self.assertLessEqual(child.t_request_ns, child.reply["t_fork_ns"])
            self.assertLessEqual(child.reply["t_fork_ns"], init["t_main_ns"])
            self.assertLessEqual(init["t_main_ns"], init["t_recv_ns"])
            self.assertLessEqual(init["t_main_ns"], init["t_init_done_ns"])
            self.assertLess(init["t_main_ns"], t_init_reply_ns)
            probe = child.call(1, "probe")
            self.assertTrue(probe["ok"], probe)
            probes.append(probe["result"])

        for child, probe in zip(children, probes):
            self.assertEqual(probe["pid"], child.pid)
            self.assertEqual(probe["pgid"], child.pid)  # own process group
            self.assertEqual(probe["worker_id"], str(child.reply["id"]))
            self.assertIsNone(probe["zygote_fd"], "a child must not think it is a template")
            # Descriptors: its stderr pipe on 1-2, its two frame pipes, and /dev/null on 0 and
            # on the numbers the template held; no control socket, pidfd, preload's file, or
            # other child's pipe.
            links = probe["links"]
            self.assertEqual(links["0"], "/dev/null")
            self.assertEqual(links["1"], links["2"])
            pipes = sorted(fd for fd, link in links.items() if link.startswith("pipe:"))
            self.assertEqual(len(pipes), 4, f"inherited descriptors: {links}")
            self.assertEqual({link for fd, link in links.items() if fd not in pipes},
                             {"/dev/null"}, f"inherited descriptors: {links}")
            self.assertEqual(probe["preload_stdin"], "/dev/null",
                             "the preload could read the control channel on fd 0")
            # gc.freeze() ran in the template before the fork; the child collects again.
            self.assertGreater(probe["freeze_count"], 0)
            self.assertTrue(probe["gc_enabled"])
            # Reseeded once, in the child (not in the template, whose calls it would inherit).
            self.assertEqual(probe["random_seeds"], [child.pid])
            self.assertEqual(probe["numpy_seeds"], [child.pid])
        pipes = [{link for link in probe["links"].values() if link.startswith("pipe:")}
                 for probe in probes]
        self.assertFalse(pipes[0] & pipes[1], "the children share a pipe")
        self.assertNotEqual(probes[0]["rand"], probes[1]["rand"], "random was not reseeded")

        for child in children:
            request_id = child.reply["id"]
            child.frames_out.close()  # EOF: the worker exits 0
            wait_readable(child.pidfd, "the child's exit")
            os.killpg(child.pid, signal.SIGKILL)  # leader unreaped: the group is still ours
            template.send({"type": "reap", "id": request_id})
            reaped, _ = template.receive()
            self.assertEqual(reaped, {"type": "reaped", "id": request_id, "code": 0, "signal": 0})
            self.assertFalse(Path(f"/proc/{child.pid}").exists(), "reaped child still listed")

        template.sock.shutdown(socket.SHUT_WR)  # EOF: the template exits 0
        self.assertEqual(template.proc.wait(TIMEOUT), 0)

    @unittest.skipUnless(importlib.util.find_spec("numpy"), "numpy is not installed")
    def test_real_numpy_children_draw_their_own_numbers(self):
        """numpy preloaded for real (its C extension and BLAS, which must not leave a thread
        behind): two children draw different numbers from numpy's global generator and from
        random's, and neither draws what the template's state would have given."""
        real = Path(self.modules / "real")  # without the fake numpy package on the path
        real.mkdir()
        (real / "zyg_probe.py").write_text(PROBE_WORKER)
        (real / "zyg_fixed_seeds.py").write_text(textwrap.dedent(PRELOADS["zyg_fixed_seeds.py"]))
        template = Template(self, real, "numpy,zyg_fixed_seeds")
        self.ready(template)
        draws = []
        for request_id in (1, 2):
            child = template.fork(request_id)
            self.assertEqual(child.reply["type"], "forked", child.reply)
            self.assertTrue(child.call(0, "init", {})["ok"])
            draws.append(child.call(1, "draws")["result"])
        # What the template's generators would give next, computed as the preload computed it.
        expected = json.loads(subprocess.run(
            [sys.executable, "-c", "import json, zyg_fixed_seeds as z; "
                                   "print(json.dumps(z.TEMPLATE_NEXT))"],
            check=True, capture_output=True, text=True, timeout=TIMEOUT,
            env=dict(os.environ, PYTHONPATH=str(real))).stdout)
        for generator in ("numpy", "random"):
            first, second = (d[generator] for d in draws)
            self.assertIsInstance(first, float)
            self.assertNotEqual(first, second, f"{generator}: both children drew the same")
            for child_draw in (first, second):
                self.assertNotEqual(child_draw, expected[generator],
                                    f"{generator}: a child drew the template's next number")

    @unittest.skipUnless(Path("/proc/self/smaps_rollup").exists(), "no smaps_rollup (Linux < 4.14)")
    def test_children_share_the_preloads_pages(self):
        """A preload of 32 MiB of objects (bench/heavy_module.py) stays in the template's
        pages: a child maps them, but its USS stays a fraction of them even after a full
        collection (the template's gc.freeze() keeps the collector off them)."""
        spec = importlib.util.spec_from_file_location("heavy_module", HEAVY_MODULE_GENERATOR)
        generator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(generator)
        generator.write_module(self.modules, "zyg_heavy", cpu_ms=0, mib=32)
        template = Template(self, self.modules, "zyg_heavy")
        self.ready(template)
        child = template.fork(1)
        self.assertEqual(child.reply["type"], "forked", child.reply)
        self.assertTrue(child.call(0, "init", {})["ok"])
        memory = child.call(1, "collect_and_measure")["result"]
        self.assertGreater(memory["rss"], 32 * 1024, f"the preload is not mapped: {memory}")
        self.assertLess(memory["uss"], 8 * 1024, f"the child copied the preload: {memory}")

    def test_a_stale_object_of_the_preload_cannot_touch_the_frames(self):
        """The preload's file object still names its old descriptor number in the child:
        writing through it and closing it must leave the worker's frame pipes alone."""
        template = Template(self, self.modules, "zyg_opens")
        self.ready(template)
        child = template.fork(3)
        self.assertTrue(child.call(0, "init", {})["ok"])
        self.assertEqual(child.call(1, "use_stale_file")["result"], "used")
        self.assertEqual(child.call(2, "ping")["result"], "pong")

    def test_module_entry_point_and_eof_kills_the_children_left(self):
        """python3 -m procpool_worker --zygote --preload ...: the example worker's handlers
        in a child; at the channel's EOF the template kills and reaps the children it holds."""
        template = Template(self, self.modules, "json,decimal", module=True)
        self.ready(template)
        child = template.fork(5)
        self.assertEqual(child.reply["type"], "forked", child.reply)
        self.assertTrue(child.call(0, "init", {"seed": 7})["ok"])
        echo = child.call(1, "echo", {"x": [1, 2]})
        self.assertEqual(echo["result"], {"x": [1, 2]})
        template.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(template.proc.wait(TIMEOUT), 0)
        wait_readable(child.pidfd, "the child's exit")
        self.assertFalse(Path(f"/proc/{child.pid}").exists(), "child left behind")

    def test_a_child_serves_a_pipelined_batch_like_a_spawned_worker(self):
        """A forked child reads and answers requests written several at a time: in order, and
        a crash drawn mid batch (crash_after) still delivers the replies before it."""
        template = Template(self, self.modules, "json", module=True)
        self.ready(template)
        child = template.fork(6)
        self.assertEqual(child.reply["type"], "forked", child.reply)
        self.assertTrue(child.call(0, "init", {"crash_after": 30, "crash_exit_code": 9})["ok"])
        batch = b"".join(
            framing.pack_length(len(payload)) + payload
            for payload in (json.dumps({"id": i, "command": "echo", "args": i}).encode()
                            for i in range(1, 101)))
        # Small enough for the pipe's 64 KiB to take at once: no writer thread needed.
        self.assertLess(len(batch), 65536)
        child.frames_out.write(batch)
        child.frames_out.flush()
        replies = []
        while True:
            wait_readable(child.frames_in, "a reply or the child's EOF")
            payload = framing.read_frame(child.frames_in)
            if payload is None:
                break
            replies.append(json.loads(payload))
        self.assertEqual([reply["id"] for reply in replies], list(range(1, 31)))
        self.assertEqual([reply["result"] for reply in replies], list(range(1, 31)))
        wait_readable(child.pidfd, "the child's exit")
        template.send({"type": "reap", "id": 6})
        reaped, _ = template.receive()
        self.assertEqual((reaped["type"], reaped["code"]), ("reaped", 9), reaped)

    def test_refuses_to_fork_with_a_python_thread_alive(self):
        template = Template(self, self.modules, "zyg_threaded")
        self.ready(template)
        child = template.fork(7)
        self.assertEqual(child.reply["type"], "fork_failed", child.reply)
        self.assertEqual(child.reply["id"], 7)
        self.assertEqual(child.reply["error"]["type"], "threads_alive")
        self.assertIn("preload-thread", child.reply["error"]["message"])
        self.assertIsNone(child.pidfd)

    def test_refuses_to_fork_with_a_native_thread_alive(self):
        """A thread the interpreter does not know is seen in /proc/self/task: it cannot be
        named, only counted."""
        template = Template(self, self.modules, "zyg_native_thread")
        self.ready(template)
        child = template.fork(8)
        self.assertEqual(child.reply["type"], "fork_failed", child.reply)
        self.assertEqual(child.reply["error"]["type"], "threads_alive")
        self.assertIn("1 thread(s) not started by Python", child.reply["error"]["message"])

    def test_reports_a_missing_preload_module(self):
        template = Template(self, self.modules, "json,zyg_no_such_module")
        failed, _ = template.receive()
        self.assertEqual(failed["type"], "preload_failed")
        self.assertEqual(failed["error"], {"type": "ModuleNotFoundError",
                                           "message": "No module named 'zyg_no_such_module'"})
        self.assertEqual(template.proc.wait(TIMEOUT), EXIT_PRELOAD_FAILED)

    def test_reports_a_preload_that_raises(self):
        template = Template(self, self.modules, "zyg_raises", module=True)
        failed, _ = template.receive()
        self.assertEqual(failed["type"], "preload_failed")
        self.assertEqual(failed["error"], {"type": "RuntimeError",
                                           "message": "boom from the preload"})
        self.assertEqual(template.proc.wait(TIMEOUT), EXIT_PRELOAD_FAILED)
        stderr = template.stderr_text()
        self.assertIn("Traceback", stderr)
        self.assertIn("RuntimeError: boom from the preload", stderr)

    def test_reap_of_a_running_child_is_refused(self):
        template = Template(self, self.modules, "")
        self.ready(template)
        template.fork(1)
        template.send({"type": "reap", "id": 1})
        refused, _ = template.receive()
        self.assertEqual(refused["type"], "reap_failed")
        self.assertEqual(refused["error"]["type"], "running")
        template.send({"type": "reap", "id": 99})
        unknown, _ = template.receive()
        self.assertEqual(unknown["error"]["type"], "unknown_id")


if __name__ == "__main__":
    unittest.main()
