#!/usr/bin/python3
"""Test-only driver that plants serial dispatch: a pool of ``size`` worker processes behind
ONE dispatcher thread, which hands the next queued task to a worker (round robin) and waits
for its result before it hands out the next. Only one worker is ever busy; the others sit
idle while tasks queue. The harness's diagnosis should name the dispatch, not the workers.

    /usr/bin/python3 tests/harness/planted/drivers/serial_dispatch_pool.py [--counts-only]

It speaks the driver protocol (harness/subjects/DRIVERS.md) through python/drivers'
driver_common: the workers run ``driver_common.serve`` (so ``done`` carries the real
worker_pid and worker-side stamps), start cold on ``"warm": false``, and the driver sends
"worker" lifecycle events and, since the dispatcher knows exactly how many tasks are running,
"pool" samples. A worker that dies mid-task fails that task as worker_crashed and is
replaced. Completions keep coming after the harness has given up on a request.

--counts-only: the same pool, but the driver tells the harness only its counts: no pids in
"started", no "worker" events, worker_pid 0 in every done line; "pool" samples still go out.
The harness then has nothing but the counts to see the idle workers by.
"""

import os
import queue
import sys
import threading

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(_HERE, "../../../../python/drivers")))

import driver_common  # noqa: E402
from anonymous import EventFilter, without_worker_pid  # noqa: E402


class _Worker:
    def __init__(self, context, init, reports):
        self.tasks, child_end = context.Pipe()
        self.process = context.Process(target=driver_common.serve,
                                       args=(child_end, init, reports), daemon=True)
        self.process.start()
        child_end.close()


class SerialDispatchPool(driver_common.PoolAdapter):
    honours_cold_start = True

    def __init__(self):
        self._context = None
        self._init = {}
        self._workers = []
        self._lock = threading.Lock()  # guards _workers and _stopping
        self._stopping = False
        self._queue = queue.SimpleQueue()
        self._busy = 0
        self._watcher = None
        self._dispatcher = None

    def start(self, size, init, warm=True):
        self._context = driver_common.mp_context()
        self._init = init
        # The watcher is the only thread that polls the workers' exit status (reaps=True).
        self._watcher = driver_common.WorkerWatcher(self.events, self._processes, reaps=True,
                                                    sample=self._sample)
        self._workers = [self._spawn() for _ in range(size)]
        self._watcher.start()
        extra = {}
        if warm:  # one task on each worker, before any dispatching
            for worker in self._workers:
                worker.tasks.send(("echo", None))
            extra["pids"] = sorted(w.tasks.recv()["worker_pid"] for w in self._workers)
        self._dispatcher = threading.Thread(target=self._dispatch, name="dispatcher",
                                            daemon=True)
        self._dispatcher.start()
        return extra

    def _spawn(self):
        return _Worker(self._context, self._init, self._watcher.reports)

    def _processes(self):
        with self._lock:
            return [w.process for w in self._workers]

    def _sample(self):
        return self._queue.qsize(), self._busy

    def submit(self, command, args, complete):
        self._queue.put((command, args, complete))

    def _dispatch(self):
        turn = 0
        while True:
            item = self._queue.get()
            with self._lock:
                if item is None or self._stopping:
                    return
                worker = self._workers[turn % len(self._workers)]
            turn += 1
            command, args, complete = item
            self._busy = 1
            try:
                worker.tasks.send((command, args))
                outcome = worker.tasks.recv()  # the planted flaw: nothing else moves meanwhile
            except (EOFError, OSError):
                outcome = driver_common.WorkerCrashed(
                    f"worker {worker.process.pid} died running the task")
                self._replace(worker)
            self._busy = 0
            complete(outcome)

    def _replace(self, dead):
        with self._lock:
            if self._stopping:
                return
            self._workers[self._workers.index(dead)] = self._spawn()
        dead.tasks.close()

    def stop(self):
        if self._watcher is None:  # start failed before there were workers
            return
        with self._lock:
            self._stopping = True
            workers = list(self._workers)
        self._queue.put(None)
        with self._watcher.stopping():
            for worker in workers:
                worker.process.terminate()  # a dispatcher waiting on it sees end of file
            for worker in workers:
                worker.process.join()
        if self._dispatcher is not None:
            self._dispatcher.join(1.0)


class CountsOnlyPool(SerialDispatchPool):
    def start(self, size, init, warm=True):
        self.events = EventFilter(self.events, keep=("pool",))
        super().start(size, init, warm)
        return {}  # no pids

    def submit(self, command, args, complete):
        super().submit(command, args, without_worker_pid(complete))


if __name__ == "__main__":
    counts_only = sys.argv[1:] == ["--counts-only"]
    if sys.argv[1:] and not counts_only:
        raise SystemExit(f"usage: {sys.argv[0]} [--counts-only]")
    raise SystemExit(driver_common.main(CountsOnlyPool if counts_only else SerialDispatchPool))
