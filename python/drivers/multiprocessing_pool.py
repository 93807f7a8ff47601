#!/usr/bin/python3
"""Driver: multiprocessing.Pool behind the harness's JSON-lines driver protocol
(harness/subjects/DRIVERS.md).

    /usr/bin/python3 python/drivers/multiprocessing_pool.py

processes = size; tasks go in with apply_async and come back through its callback and
error_callback, which run on the pool's result-handler thread. multiprocessing.Pool replaces
a worker that dies but never completes the task that worker was running: that call ends only
at the harness's deadline. That is the pool's real behaviour, kept visible on purpose.

Started cold ("warm": false), the pool starts its size processes when it is created and
"started" follows at once, without waiting for their initialisers. Worker lifecycle events
come from a WorkerWatcher over the pool's process list; no "pool" events (the pool does not
show which of its tasks are running).
"""

import os
import sys

# Run directly, the script's directory is sys.path[0] already, unless Python was started
# with -P or -I; then driver_common would not be found.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import driver_common  # noqa: E402


class MultiprocessingPool(driver_common.PoolAdapter):
    honours_cold_start = True

    def __init__(self):
        self._pool = None
        self._watcher = None

    def start(self, size, init, warm=True):
        context = driver_common.mp_context()
        self._watcher = driver_common.WorkerWatcher(self.events, self._workers)
        self._pool = context.Pool(processes=size, initializer=driver_common.init_worker,
                                  initargs=(init, self._watcher.reports))
        self._watcher.start()
        if not warm:
            return {}
        pids = driver_common.warm_pool(self._warm_round, size)
        return {"pids": pids}

    def _workers(self):
        pool = self._pool
        # Pool._pool: the live worker processes; the pool joins a dead one, then drops it.
        return list(pool._pool) if pool is not None else []

    def _warm_round(self, n):
        results = [self._pool.apply_async(driver_common.warm, (driver_common.WARM_TASK_S,))
                   for _ in range(n)]
        return [r.get() for r in results]

    def submit(self, command, args, complete):
        self._pool.apply_async(driver_common.run_task, (command, args), callback=complete,
                               error_callback=complete)

    def stop(self):
        if self._watcher is None:  # start failed before there was a pool
            return
        with self._watcher.stopping():
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.terminate()  # SIGTERMs the workers, joins them and the helper threads
                pool.join()


if __name__ == "__main__":
    raise SystemExit(driver_common.main(MultiprocessingPool))
