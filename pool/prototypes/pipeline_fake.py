"""Times the fake worker answering pipelined echoes: at most WINDOW requests outstanding,
each refill one write, replies read 64 KiB at a time. Standard library only.

    python3 pool/prototypes/pipeline_fake.py build/release/fake_worker/procpool-fake-worker 64 [--flush-each]
"""
import json, os, struct, subprocess, sys, time
W = int(sys.argv[2]); N = 200000; fw = sys.argv[1]; extra = sys.argv[3:]
def frame(o):
    b = json.dumps(o).encode(); return struct.pack(">I", len(b)) + b
p = subprocess.Popen([fw] + extra, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
os.write(p.stdin.fileno(), frame({"id": 0, "command": "__init__", "args": {}}))
buf = b""; out = p.stdout.fileno(); inp = p.stdin.fileno()
def read_replies(n):
    global buf
    got = 0
    while got < n:
        while len(buf) >= 4:
            (l,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + l: break
            buf = buf[4 + l:]; got += 1
        if got < n: buf += os.read(out, 1 << 16)
    return got
read_replies(1)
reqs = [frame({"id": i, "command": "echo", "args": {"n": i}}) for i in range(1, N + 1)]
cpu0 = os.times(); t0 = time.perf_counter(); sent = 0; done = 0
while done < N:
    k = min(W - (sent - done), N - sent)
    if k > 0: os.write(inp, b"".join(reqs[sent:sent + k])); sent += k
    done += read_replies(1) if W == 1 else read_replies(min(W // 2 or 1, sent - done))
t = time.perf_counter() - t0
p.stdin.close(); p.wait()
c = os.times()
print(f"window {W} {' '.join(extra) or 'batched'}: {N/t:,.0f} req/s, worker CPU {(c.children_user+c.children_system-cpu0.children_user-cpu0.children_system)/N*1e6:.2f} us/req")
