#!/usr/bin/python3
"""Test-only driver: a multiprocessing.Pool whose driver tells the harness nothing about its
workers, as a minimal driver written from the protocol's required fields alone would:
no pids in "started", no "worker" events, and worker_pid 0 in every done line.

    /usr/bin/python3 tests/harness/planted/drivers/opaque_pool.py

The harness then cannot see what the pool did while a request waited, and must say so
rather than guess: its timeouts get no verdict, and the case's `unjudged` names what is
missing.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(_HERE, "../../../../python/drivers")))

import driver_common  # noqa: E402
from anonymous import EventFilter, without_worker_pid  # noqa: E402
from multiprocessing_pool import MultiprocessingPool  # noqa: E402


class OpaquePool(MultiprocessingPool):
    honours_cold_start = False

    def start(self, size, init):
        self.events = EventFilter(self.events)  # drops every event
        super().start(size, init)
        return {}  # no pids

    def submit(self, command, args, complete):
        super().submit(command, args, without_worker_pid(complete))


if __name__ == "__main__":
    raise SystemExit(driver_common.main(OpaquePool))
