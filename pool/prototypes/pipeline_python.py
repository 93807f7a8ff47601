#!/usr/bin/env python3
"""Prototype measurement for pool/ASYNC.md: one Python worker fed pipelined requests.

Standard library only, not part of any test suite. From the repository root:

    python3 pool/prototypes/pipeline_python.py [--window 64] [--requests 20000] [--reps 3]
    python3 pool/prototypes/pipeline_python.py --old-sdk DIR --modes old,each,sdk
    python3 pool/prototypes/pipeline_python.py --peers      # multiprocessing baselines
    python3 pool/prototypes/pipeline_python.py --in-process # the SDK's CPU per echo, by part

Plays the pool on one `python3 -m procpool_worker` (PYTHONPATH is set to its SDK): the init
handshake, then `--requests` echoes of a small dict with at most `--window` outstanding,
written in one write() per refill and read back with 64 KiB reads; reports tasks/s, the
worker's CPU time per request (/proc/PID/stat) and its write calls per request
(/proc/PID/io). The modes, interleaved `--reps` times:

* sdk: the SDK of this tree as it is (since pool/ASYNC.md step 4: FrameReader, ReplyWriter and
  the flush rules);
* each: the same with PROCPOOL_WORKER_FLUSH=each, one write per reply (the baseline);
* old: the SDK in `--old-sdk DIR` (a python/ directory from before step 4: a BufferedReader,
  one write and flush per reply);

and the prototypes that measured the design before step 4, which patch the old SDK's
Worker._serve and framing.write_frame in the worker process (the handlers, fault draws and
reply encoding are the SDK's own), so they too need `--old-sdk`:

* readbuf: the worker reads into its own bytearray, still one writev per reply;
* batched: readbuf, and replies gathered into a list written with one os.writev when no
  complete request is left in the buffer (the loop pool/ASYNC.md specifies);
* batchjoin: batched, but the replies joined into one bytes object before the write.

--peers times multiprocessing.Pool(2).imap(chunksize=1) and ProcessPoolExecutor(2) on the
same echo;
--in-process times the SDK's request path in this process (replies gathered by its
ReplyWriter, written to /dev/null every 64 KiB).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENGTH = struct.Struct(">I")
ARGS = {"a": 1, "b": "xyz", "c": [1, 2, 3]}

PATCHED_WORKER = r'''
import os
from procpool_worker import clock, example, framing, worker as W
EACH = os.environ.get("PIPELINE_FLUSH") == "each"
JOIN = os.environ.get("PIPELINE_WRITE") == "join"
pending = []
def flush(fd):
    while pending:
        chunk = pending[:1024]
        del pending[:1024]
        if JOIN:
            chunk = [b"".join(chunk)]
        written, total = os.writev(fd, chunk), sum(map(len, chunk))
        if written < total:
            rest = b"".join(chunk)[written:]
            while rest:
                rest = rest[os.write(fd, rest):]
def write_frame(stream, payload):
    pending.append(framing.pack_length(len(payload)))
    pending.append(payload)
    if EACH:
        flush(stream.fileno())
def serve(self):
    fin, fout = self._frames_in.fileno(), self._frames_out.fileno()
    buf, pos = bytearray(), 0
    while True:
        if len(buf) - pos >= 4:
            (n,) = framing._LENGTH.unpack_from(buf, pos)
            if len(buf) - pos - 4 >= n:
                t_recv_ns = clock.now_ns()
                payload = bytes(memoryview(buf)[pos + 4:pos + 4 + n])
                pos += 4 + n
                self._dispatch(*W._decode_request(payload), t_recv_ns)
                continue
        flush(fout)
        if pos:
            del buf[:pos]
            pos = 0
        data = os.read(fin, 65536)
        if not data:
            return 0
        buf += data
framing.write_frame = write_frame
W.Worker._serve = serve
example.main()
'''


def frame(message):
    payload = json.dumps(message, separators=(",", ":")).encode()
    return LENGTH.pack(len(payload)) + payload


def run_worker(mode, window, requests, old_sdk):
    sdk = os.path.join(ROOT, "python") if mode in ("sdk", "each") else old_sdk
    if sdk is None:
        sys.exit(f"mode {mode} runs the SDK from before step 4: give --old-sdk")
    env = dict(os.environ, PYTHONPATH=sdk)
    env.pop("PROCPOOL_WORKER_FLUSH", None)
    if mode in ("sdk", "each", "old"):
        argv = [sys.executable, "-m", "procpool_worker"]
        if mode == "each":
            env["PROCPOOL_WORKER_FLUSH"] = "each"
    else:
        argv = [sys.executable, "-c", PATCHED_WORKER]
        env["PIPELINE_FLUSH"] = "each" if mode == "readbuf" else "batch"
        env["PIPELINE_WRITE"] = "join" if mode == "batchjoin" else "writev"
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    to_worker, from_worker = proc.stdin.fileno(), proc.stdout.fileno()
    buf = bytearray()

    def replies_in_buffer():
        pos = count = 0
        while len(buf) - pos >= 4:
            (n,) = LENGTH.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            pos += 4 + n
            count += 1
        del buf[:pos]
        return count

    os.write(to_worker, frame({"id": 0, "command": "init", "args": {}}))
    while not replies_in_buffer():
        buf.extend(os.read(from_worker, 65536))
    frames = [frame({"id": i, "command": "echo", "args": ARGS}) for i in range(1, requests + 1)]
    sent = answered = 0
    cpu_before = cpu_seconds(proc.pid)
    writes_before = write_calls(proc.pid)
    start = time.perf_counter()
    while answered < requests:
        room = min(window - (sent - answered), requests - sent)
        if room > 0:
            os.write(to_worker, b"".join(frames[sent:sent + room]))
            sent += room
        data = os.read(from_worker, 65536)
        if not data:
            sys.exit(f"{mode}: the worker closed its stdout")
        buf.extend(data)
        answered += replies_in_buffer()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(proc.pid) - cpu_before
    writes = write_calls(proc.pid) - writes_before
    proc.stdin.close()
    proc.wait()
    return requests / elapsed, cpu / requests * 1e6, writes / requests


def write_calls(pid):
    """The worker's write and writev calls so far (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """The worker's user + system CPU time so far (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo(x):
    return x


def peers(requests):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pool.map(echo, range(100))
        start = time.perf_counter()
        for _ in pool.imap(echo, (ARGS for _ in range(requests)), chunksize=1):
            pass
        print(f"multiprocessing.Pool(2).imap(chunksize=1): "
              f"{requests / (time.perf_counter() - start):8.0f} tasks/s")
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        list(executor.map(echo, range(100)))
        n = requests // 4
        start = time.perf_counter()
        for future in [executor.submit(echo, ARGS) for _ in range(n)]:
            future.result()
        print(f"ProcessPoolExecutor(2), {n} submitted at once: "
              f"{n / (time.perf_counter() - start):8.0f} tasks/s")


def in_process(requests):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from procpool_worker import clock, example, framing
    from procpool_worker import worker as sdk
    worker = example.build()
    worker._writer = framing.ReplyWriter(os.open(os.devnull, os.O_WRONLY))
    worker._dispatch(0, "init", {}, clock.now_ns())
    payload = json.dumps({"id": 1, "command": "echo", "args": ARGS},
                         separators=(",", ":")).encode()

    def serve():
        worker._dispatch(*sdk._decode_request(payload), clock.now_ns())

    for label, step in (("decode the request", lambda: sdk._decode_request(payload)),
                        ("draw the fault chances", worker._injector.draw),
                        ("decode, serve, encode, write", serve)):
        start = time.process_time()
        for _ in range(requests):
            step()
        print(f"{label:30s} {(time.process_time() - start) / requests * 1e6:6.2f} us CPU")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default=None,
                        help="default: each,sdk; with --old-sdk: old,each,sdk")
    parser.add_argument("--old-sdk", metavar="DIR",
                        help="a python/ directory holding the SDK from before step 4")
    parser.add_argument("--peers", action="store_true")
    parser.add_argument("--in-process", action="store_true")
    options = parser.parse_args()
    if options.peers:
        return peers(options.requests)
    if options.in_process:
        return in_process(options.requests * 5)
    modes = (options.modes or ("old,each,sdk" if options.old_sdk else "each,sdk")).split(",")
    rates = {mode: [] for mode in modes}
    cpu = {mode: [] for mode in modes}
    writes = {mode: [] for mode in modes}
    for _ in range(options.reps):
        for mode in modes:
            rate, cpu_us, writes_per_request = run_worker(
                mode, options.window, options.requests, options.old_sdk)
            rates[mode].append(rate)
            cpu[mode].append(cpu_us)
            writes[mode].append(writes_per_request)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"window {options.window}, {options.requests} echoes, load average {load}")
    for mode in modes:
        runs = ", ".join(f"{r:.0f}" for r in rates[mode])
        median = sorted(rates[mode])[len(rates[mode]) // 2]
        cpu_median = sorted(cpu[mode])[len(cpu[mode]) // 2]
        writes_median = sorted(writes[mode])[len(writes[mode]) // 2]
        print(f"  {mode:9s} median {median:7.0f} tasks/s, worker CPU {cpu_median:5.1f} us/request,"
              f" {writes_median:4.2f} writes/request  [{runs}]")


if __name__ == "__main__":
    main()
