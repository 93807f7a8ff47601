#!/usr/bin/python3
"""Driver: concurrent.futures.ProcessPoolExecutor behind the harness's JSON-lines driver
protocol (harness/subjects/DRIVERS.md).

    /usr/bin/python3 python/drivers/process_pool_executor.py

max_workers = size; futures complete through add_done_callback, which runs on the
executor's manager thread. A worker that dies breaks the executor for good
(BrokenProcessPool): its task and every later one are reported as worker_crashed, which is
how ProcessPoolExecutor behaves and so what the harness should see.

Started cold ("warm": false), "started" follows the executor's creation, which starts no
process: the executor spawns one per submit that finds no idle worker, up to size (the first
one also starts the fork server). Worker lifecycle events come from a WorkerWatcher over the
executor's process table; no "pool" events (a future counts as running as soon as it is in
the call queue, before any worker has it).
"""

import os
import sys

# Run directly, the script's directory is sys.path[0] already, unless Python was started
# with -P or -I; then driver_common would not be found.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import driver_common  # noqa: E402


class ExecutorPool(driver_common.PoolAdapter):
    honours_cold_start = True

    def __init__(self):
        self._executor = None
        self._watcher = None

    def start(self, size, init, warm=True):
        from concurrent.futures import ProcessPoolExecutor

        self._watcher = driver_common.WorkerWatcher(self.events, self._workers)
        self._executor = ProcessPoolExecutor(
            max_workers=size, mp_context=driver_common.mp_context(),
            initializer=driver_common.init_worker, initargs=(init, self._watcher.reports))
        self._watcher.start()
        if not warm:
            return {}
        # Each submit finding no idle worker spawns one (forkserver spawns on demand), so
        # one round of size tasks creates every process; the rounds make each one ready.
        pids = driver_common.warm_pool(self._warm_round, size)
        return {"pids": pids}

    def _workers(self):
        # The executor's pid -> Process table; it joins a dead process before it drops it,
        # and sets the table to None at shutdown.
        processes = getattr(self._executor, "_processes", None)
        return list(processes.values()) if processes else []

    def _warm_round(self, n):
        futures = [self._executor.submit(driver_common.warm, driver_common.WARM_TASK_S)
                   for _ in range(n)]
        return [f.result() for f in futures]

    def submit(self, command, args, complete):
        future = self._executor.submit(driver_common.run_task, command, args)

        def done(f):
            if f.cancelled():  # only at stop, when nothing is reported any more
                return
            error = f.exception()
            complete(error if error is not None else f.result())

        future.add_done_callback(done)

    def stop(self):
        if self._watcher is None:  # start failed before there was an executor
            return
        with self._watcher.stopping():
            self._terminate()

    def _terminate(self):
        executor, self._executor = self._executor, None
        if executor is None:
            return
        terminate_workers = getattr(executor, "terminate_workers", None)  # Python >= 3.14
        if terminate_workers is not None:
            terminate_workers()
            return
        # Before 3.14 there is no public way to stop a running task: terminate the processes
        # (shutdown() forgets them), then let shutdown() join what is left, which the
        # broken pool makes immediate.
        processes = list((getattr(executor, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


if __name__ == "__main__":
    raise SystemExit(driver_common.main(ExecutorPool))
