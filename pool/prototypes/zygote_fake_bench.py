#!/usr/bin/env python3
"""Fork latency of the fake worker's zygote template (pool/ZYGOTE.md) against its preload.

Plays the pool, one start at a time: sends `fork` with fresh pipes, waits for `forked`, does the
init handshake on the child's pipes, then stops it (stdin EOF, pidfd, killpg, `reap`).
Standard library only; not run by CTest:

    python3 pool/prototypes/zygote_fake_bench.py build/release/fake_worker/procpool-fake-worker
"""
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time


def start_one(channel: socket.socket, request_id: int) -> tuple[float, float]:
    """One fork -> init reply -> reap cycle; returns (us to `forked`, us to the init reply)."""
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    t0 = time.monotonic_ns()
    fork = {"type": "fork", "id": request_id, "env": {"PROCPOOL_WORKER_ID": str(request_id)}}
    socket.send_fds(channel, [json.dumps(fork).encode()], [r_in, w_out, w_err])
    for fd in (r_in, w_out, w_err):
        os.close(fd)
    payload, fds, _, _ = socket.recv_fds(channel, 65536, 4)
    t_forked = time.monotonic_ns()
    forked = json.loads(payload)
    assert forked["type"] == "forked" and len(fds) == 1, forked
    init = json.dumps({"id": 0, "command": "init", "args": {}}).encode()
    os.write(w_in, struct.pack(">I", len(init)) + init)
    (length,) = struct.unpack(">I", os.read(r_out, 4))
    os.read(r_out, length)
    t_init = time.monotonic_ns()
    os.close(w_in)  # the worker exits at EOF
    select.select([fds[0]], [], [], 5)
    os.killpg(forked["pid"], 9)  # the group id is safe: the template has not reaped
    channel.send(json.dumps({"type": "reap", "id": request_id}).encode())
    reaped = json.loads(channel.recv(65536))
    assert reaped["type"] == "reaped", reaped
    for fd in (fds[0], r_out, r_err):
        os.close(fd)
    return (t_forked - t0) / 1e3, (t_init - t0) / 1e3


def run(worker: str, preload_mib: int, starts: int) -> None:
    channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, PROCPOOL_ZYGOTE_FD="0")
    template = subprocess.Popen([worker, "--zygote", f"--preload-mib={preload_mib}"],
                                stdin=theirs, env=env, start_new_session=True)
    theirs.close()
    assert json.loads(channel.recv(65536))["type"] == "ready"
    to_forked, to_init = zip(*(start_one(channel, i) for i in range(1, starts + 1)))
    channel.close()
    template.wait(5)

    def p99(values):
        return sorted(values)[int(0.99 * len(values))]

    print(f"preload {preload_mib:3d} MiB: fork -> forked median {statistics.median(to_forked):6.0f} us"
          f" (p99 {p99(to_forked):6.0f}); fork -> init reply median"
          f" {statistics.median(to_init):6.0f} us (p99 {p99(to_init):6.0f}); template exit"
          f" {template.returncode}")


if __name__ == "__main__":
    for mib in (0, 50, 200):
        run(sys.argv[1], mib, 200)
