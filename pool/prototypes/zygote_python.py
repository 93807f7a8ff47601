"""Prototype measurement for pool/ZYGOTE.md: Python workers, spawn vs the zygote (--zygote).

Standalone (standard library only), not part of any test suite. From the repository root:

    python3 pool/prototypes/zygote_python.py [--workers 8] [--import-ms 300] [--mib 40]

It generates a module whose import burns ``--import-ms`` of CPU and builds ``--mib`` MiB of
Python objects, then starts ``--workers`` workers that preload it, all at once, two ways:

* spawn: ``python3 -m procpool_worker --preload zyg_heavy`` per worker (the import runs in
  each worker's init handshake, as today);
* zygote: one ``python3 -m procpool_worker --zygote`` template that imports it once, then
  one fork per worker; each child still answers the init handshake.

and prints the time until every worker has answered init, the time to replace one worker
with the template already ready, and each worker's USS/PSS (/proc/PID/smaps_rollup).
"""

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
from procpool_worker import framing  # noqa: E402

HEAVY = """
import time
_end = time.process_time() + {import_ms} / 1000
while time.process_time() < _end:
    pass
DATA = {{f"key-{{i}}": [i, str(i) * 3, (i, i + 1)] for i in range({objects})}}
"""


def now():
    return time.monotonic()


def smaps(pid):
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return uss / 1024, fields.get("Pss", 0) / 1024


def init_call(stdin_w, stdout_r):
    out = os.fdopen(stdin_w, "wb", closefd=False)
    framing.write_frame(out, json.dumps({"id": 0, "command": "init", "args": {}}).encode())
    out.flush()
    reply = json.loads(framing.read_frame(os.fdopen(stdout_r, "rb", closefd=False)))
    assert reply["ok"], reply
    return reply


def spawn_round(args, env):
    start = now()
    procs = []
    for i in range(args.workers):
        p = subprocess.Popen([sys.executable, "-m", "procpool_worker", "--preload", "zyg_heavy"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                             start_new_session=True)
        procs.append(p)
    for p in procs:  # all requests out first: the imports run concurrently
        framing.write_frame(p.stdin, json.dumps({"id": 0, "command": "init", "args": {}}).encode())
        p.stdin.flush()
    for p in procs:
        reply = json.loads(framing.read_frame(p.stdout))
        assert reply["ok"], reply
    ready = now() - start
    memory = [smaps(p.pid) for p in procs]
    # Replace one: spawn a ninth and wait for its init reply.
    start = now()
    extra = subprocess.Popen([sys.executable, "-m", "procpool_worker", "--preload", "zyg_heavy"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                             start_new_session=True)
    framing.write_frame(extra.stdin, json.dumps({"id": 0, "command": "init", "args": {}}).encode())
    extra.stdin.flush()
    assert json.loads(framing.read_frame(extra.stdout))["ok"]
    replace = now() - start
    for p in procs + [extra]:
        p.stdin.close()
        p.wait()
    return ready, replace, memory


def zygote_round(args, env):
    start = now()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    template = subprocess.Popen(
        [sys.executable, "-m", "procpool_worker", "--zygote", "--preload", "zyg_heavy"], stdin=theirs.fileno(), env=env, start_new_session=True)
    theirs.close()

    def receive():
        assert select.select([ours], [], [], 60)[0], "template silent"
        payload, fds, _, _ = socket.recv_fds(ours, 65536, 4)
        return json.loads(payload), fds

    ready, _ = receive()
    assert ready["type"] == "ready", ready
    template_ready = now() - start

    def fork(request_id):
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        socket.send_fds(ours, [json.dumps({"type": "fork", "id": request_id, "env": {}}).encode()],
                        [in_r, out_w, 2])
        os.close(in_r)
        os.close(out_w)
        reply, fds = receive()
        assert reply["type"] == "forked", reply
        return {"pid": reply["pid"], "pidfd": fds[0], "in": in_w, "out": out_r}

    children = [fork(i + 1) for i in range(args.workers)]
    for child in children:
        init_call(child["in"], child["out"])
    ready_all = now() - start
    memory = [smaps(child["pid"]) for child in children]
    template_memory = smaps(template.pid)
    start = now()
    extra = fork(100)
    init_call(extra["in"], extra["out"])
    replace = now() - start
    for request_id, child in [(i + 1, c) for i, c in enumerate(children)] + [(100, extra)]:
        os.close(child["in"])
        select.select([child["pidfd"]], [], [], 10)
        os.killpg(child["pid"], signal.SIGKILL)
        ours.send(json.dumps({"type": "reap", "id": request_id}).encode())
        reaped, _ = receive()
        assert reaped["type"] == "reaped", reaped
        os.close(child["out"])
        os.close(child["pidfd"])
    ours.close()
    template.wait(10)
    return template_ready, ready_all, replace, memory, template_memory


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--import-ms", type=int, default=300)
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as modules:
        Path(modules, "zyg_heavy.py").write_text(
            HEAVY.format(import_ms=args.import_ms, objects=args.objects))
        env = dict(os.environ, PYTHONPATH=f"{modules}{os.pathsep}{ROOT / 'python'}")
        subprocess.run([sys.executable, "-c", "import zyg_heavy"], env=env, check=True)  # .pyc
        print(f"{args.workers} workers, preload: {args.import_ms} ms of CPU + "
              f"{args.objects} dict entries; {os.cpu_count()} cores; {sys.version.split()[0]}")
        for run in range(args.runs):
            s_ready, s_replace, s_mem = spawn_round(args, env)
            z_tready, z_ready, z_replace, z_mem, t_mem = zygote_round(args, env)
            uss = lambda m: sum(u for u, _ in m) / len(m)  # noqa: E731
            pss = lambda m: sum(p for _, p in m) / len(m)  # noqa: E731
            print(f"run {run + 1}: all ready: spawn {s_ready * 1e3:7.1f} ms, zygote "
                  f"{z_ready * 1e3:7.1f} ms (template ready at {z_tready * 1e3:6.1f}) "
                  f"= {z_ready / s_ready:.2f}x | replace one: spawn {s_replace * 1e3:6.1f} ms, "
                  f"zygote {z_replace * 1e3:5.1f} ms = {z_replace / s_replace:.3f}x | "
                  f"USS/PSS MiB per worker: spawn {uss(s_mem):5.1f}/{pss(s_mem):5.1f}, zygote "
                  f"{uss(z_mem):5.1f}/{pss(z_mem):5.1f} = {uss(z_mem) / uss(s_mem):.2f}x USS "
                  f"(template {t_mem[0]:.1f}/{t_mem[1]:.1f})")


if __name__ == "__main__":
    main()
