"""Clock stamps and timed work: CLOCK_MONOTONIC stamps, wall-clock sleeps, CPU-time burns.

CLOCK_MONOTONIC is shared by every process on Linux, so the worker's stamps can be compared
with the pool's.
"""

import time


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def sleep_ms(ms: float) -> float:
    """Sleep ``ms`` milliseconds of wall-clock time; return the milliseconds that passed."""
    start = now_ns()
    if ms > 0:
        time.sleep(ms / 1e3)
    return (now_ns() - start) / 1e6


def burn_cpu_ms(ms: float) -> float:
    """Busy-loop until this thread has used ``ms`` milliseconds of CPU; return the CPU ms used.

    Counting CPU time rather than wall time means that under CPU contention the burn takes
    longer, as real computation would.
    """
    start = time.thread_time_ns()
    target = start + int(ms * 1e6)
    while time.thread_time_ns() < target:
        pass
    return (time.thread_time_ns() - start) / 1e6
