#!/usr/bin/python3
"""Test-only driver that plants faults in a real multiprocessing.Pool (python/drivers'
multiprocessing_pool.py, lifecycle events included):

    /usr/bin/python3 tests/harness/planted/drivers/faulty_pool.py [--hang-every N] [--crash-every N]

--hang-every N: every Nth submitted task (counted by the driver from 1; warm-up tasks do not
count) sleeps an hour instead of its command: it never completes within a test, and the
harness's deadline ends the call. --crash-every N: every Nth task's worker calls os._exit(1)
instead; multiprocessing.Pool replaces the worker and never completes the task, and the
driver reports the pid "exited" with cause "exit code 1". A task that is both is a crash.
0 (the default) turns a fault off.
"""

import argparse
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(_HERE, "../../../../python/drivers")))

import driver_common  # noqa: E402
from multiprocessing_pool import MultiprocessingPool  # noqa: E402

HANG_MS = 3_600_000


class FaultyPool(MultiprocessingPool):
    def __init__(self, hang_every=0, crash_every=0):
        super().__init__()
        self._hang_every = hang_every
        self._crash_every = crash_every
        self._submitted = 0

    def submit(self, command, args, complete):
        self._submitted += 1
        n = self._submitted
        if self._crash_every and n % self._crash_every == 0:
            self._pool.apply_async(driver_common.exit_worker, (1,))
        elif self._hang_every and n % self._hang_every == 0:
            super().submit("sleep", {"ms": HANG_MS}, complete)
        else:
            super().submit(command, args, complete)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Test-only driver: multiprocessing.Pool with planted hangs and crashes.")
    parser.add_argument("--hang-every", type=int, default=0, metavar="N",
                        help="every Nth task sleeps an hour instead (0: never)")
    parser.add_argument("--crash-every", type=int, default=0, metavar="N",
                        help="every Nth task's worker exits with status 1 (0: never)")
    args = parser.parse_args(argv)
    for name in ("hang_every", "crash_every"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


if __name__ == "__main__":
    options = parse_args(sys.argv[1:])
    raise SystemExit(driver_common.main(
        lambda: FaultyPool(options.hang_every, options.crash_every)))
