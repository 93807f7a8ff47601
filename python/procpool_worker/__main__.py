import time; T_MAIN_NS = time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # noqa: E702

# t_main_ns must be the process's first statement, so the docstring comes after it.
__doc__ = """Entry point of ``python3 -m procpool_worker``: runs the example worker."""

from procpool_worker.example import main  # noqa: E402

main(T_MAIN_NS)
