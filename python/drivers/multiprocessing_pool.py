#!/usr/bin/python3
"""Driver: multiprocessing.Pool behind the harness's JSON-lines driver protocol
(harness/subjects/DRIVERS.md).

    /usr/bin/python3 python/drivers/multiprocessing_pool.py

processes = size; tasks go in with apply_async and come back through its callback and
error_callback, which run on the pool's result-handler thread. multiprocessing.Pool replaces
a worker that dies but never completes the task that worker was running: that call ends only
at the harness's deadline. That is the pool's real behaviour, kept visible on purpose.
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
    def __init__(self):
        self._pool = None

    def start(self, size, init):
        context = driver_common.mp_context()
        self._pool = context.Pool(processes=size, initializer=driver_common.init_worker,
                                  initargs=(init,))
        pids = driver_common.warm_pool(self._warm_round, size)
        return {"pids": pids}

    def _warm_round(self, n):
        results = [self._pool.apply_async(driver_common.warm, (driver_common.WARM_TASK_S,))
                   for _ in range(n)]
        return [r.get() for r in results]

    def submit(self, command, args, complete):
        self._pool.apply_async(driver_common.run_task, (command, args), callback=complete,
                               error_callback=complete)

    def stop(self):
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.terminate()  # SIGTERMs the workers, joins the pool's helper threads
        pool.join()


if __name__ == "__main__":
    raise SystemExit(driver_common.main(MultiprocessingPool))
