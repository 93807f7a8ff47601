#!/usr/bin/env python3
"""A stand-in external-pool driver for the tests of `procpool driver-check`: threads in place
of worker processes, so it starts at once. By default it keeps the driver protocol
(harness/subjects/DRIVERS.md), honours "warm": false and writes worker and pool lines; with
--break it breaks one rule on purpose.

    threaded_driver.py [--break MODE]

MODE: noise (a banner on stdout before "started"), bad-worker-line (a worker line with pid 0
while starting), malformed-done (done lines without t_done_ns), duplicate-done (every done
line twice), in-order (one task at a time, in submission order), crash (an unknown command
makes it exit with status 3, a traceback on stderr), hang-on-stop (writes "stopped", then
never exits).
"""
import argparse
import json
import os
import queue
import sys
import threading
import time

MODES = ["none", "noise", "bad-worker-line", "malformed-done", "duplicate-done", "in-order",
         "crash", "hang-on-stop"]


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Driver:
    def __init__(self, mode):
        self.mode = mode
        self.lock = threading.Lock()
        self.size = 0
        self.started = False
        self.stopping = False
        self.outstanding = 0
        self.completed = 0
        self.serial = queue.Queue()  # in-order: one thread runs every task, first in first out

    def emit(self, event):
        with self.lock:
            self.write(event)

    def write(self, event):
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    def fail(self, message):
        self.emit({"event": "error", "message": message})
        return 65

    def run(self, lines):
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                return self.fail("not JSON")
            if not isinstance(message, dict):
                return self.fail("not an object")
            op = message.get("op")
            if op == "start":
                if self.started:
                    return self.fail("a second start")
                self.start(message)
            elif op == "submit":
                if not self.started:
                    return self.fail("submit before start")
                self.submit(message)
            elif op == "stats":
                with self.lock:
                    busy = min(self.outstanding, self.size)
                    self.write({"event": "stats", "size": self.size, "busy": busy,
                                "queued": self.outstanding - busy, "completed": self.completed})
            elif op == "stop":
                self.stop()
                if self.mode == "hang-on-stop":
                    time.sleep(3600)
                return 0
            else:
                return self.fail(f"unknown op {op!r}")
        self.stop()
        return 0

    def start(self, message):
        self.started = True
        self.size = message["config"]["size"]
        warm = message.get("warm", True) is not False
        if self.mode == "noise":
            print("threaded driver ready", flush=True)
        pid = 0 if self.mode == "bad-worker-line" else os.getpid()
        self.emit({"event": "worker", "pid": pid, "state": "ready", "t_ns": now_ns()})
        started = {"event": "started", "t_ns": now_ns(), "pids": [os.getpid()]}
        if not warm:
            started["warm"] = False
        self.emit(started)
        self.emit({"event": "pool", "t_ns": now_ns(), "queued": 0, "busy": 0, "alive": 1})
        if self.mode == "in-order":
            threading.Thread(target=self.serve_in_order, daemon=True).start()

    def submit(self, message):
        with self.lock:
            self.outstanding += 1
        task = (message["id"], message.get("command"), message.get("args"),
                message.get("t_intended_ns"), now_ns())
        if self.mode == "in-order":
            self.serial.put(task)
        else:
            threading.Thread(target=self.complete, args=task, daemon=True).start()

    def serve_in_order(self):
        while True:
            self.complete(*self.serial.get())

    def complete(self, request_id, command, args, t_intended, t_start):
        t_recv = now_ns()
        if command == "echo":
            outcome = {"ok": True, "result": args}
        elif command == "sleep":
            time.sleep(args["ms"] / 1e3)
            outcome = {"ok": True, "result": {"slept_ms": (now_ns() - t_recv) / 1e6}}
        elif command == "burn":
            cpu = time.thread_time_ns()
            while time.thread_time_ns() - cpu < args["ms"] * 1e6:
                pass
            outcome = {"ok": True, "result": {"burned_ms": (time.thread_time_ns() - cpu) / 1e6}}
        elif self.mode == "crash":
            print("Traceback (most recent call last):\n  a stand-in's crash\nKeyError: "
                  f"{command!r}", file=sys.stderr, flush=True)
            os._exit(3)
        else:
            outcome = {"ok": False, "error": {"type": "unknown_command",
                                              "message": f"unknown command {command!r}"}}
        done = {"event": "done", "id": request_id, **outcome, "t_start_ns": t_start,
                "t_worker_recv_ns": t_recv, "t_worker_done_ns": now_ns(),
                "worker_pid": os.getpid()}
        if t_intended is not None:
            done["t_intended_ns"] = t_intended
        with self.lock:
            if self.stopping:
                return
            self.outstanding -= 1
            self.completed += 1
            if self.mode != "malformed-done":
                done["t_done_ns"] = now_ns()
            for _ in range(2 if self.mode == "duplicate-done" else 1):
                self.write(done)

    def stop(self):
        with self.lock:
            self.stopping = True
            self.write({"event": "stopped"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--break", dest="mode", choices=MODES, default="none")
    args = parser.parse_args()
    return Driver(args.mode).run(sys.stdin)


if __name__ == "__main__":
    sys.exit(main())
