"""The example worker: ``echo``, ``sleep`` and ``burn`` handlers (``ping`` is built in).

Run it with ``python3 -m procpool_worker``.
"""

from __future__ import annotations

import json

from . import clock
from .worker import Worker

TYPE_CHECKING = False  # importing typing would add to every worker's init time
if TYPE_CHECKING:
    from typing import Any, NoReturn


def echo(args: Any) -> Any:
    """Return the args unchanged."""
    return args


def sleep(args: Any) -> dict[str, float]:
    """Sleep ``args["ms"]`` milliseconds of wall-clock time."""
    return {"slept_ms": clock.sleep_ms(_milliseconds(args))}


def burn(args: Any) -> dict[str, float]:
    """Burn ``args["ms"]`` milliseconds of this process's CPU time."""
    return {"burned_ms": clock.burn_cpu_ms(_milliseconds(args))}


def _milliseconds(args: Any) -> float:
    ms = args.get("ms") if isinstance(args, dict) else None
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms < float("inf"):
        raise ValueError(f'args must be {{"ms": <number >= 0>}}, got {json.dumps(args)}')
    return float(ms)


def build(t_main_ns: int | None = None) -> Worker:
    """The example worker with its handlers registered."""
    worker = Worker(
        t_main_ns=t_main_ns,
        prog="python3 -m procpool_worker",
        description="procpool example worker: echo, sleep, burn and ping commands, with the "
                    "fake worker's latency and fault knobs.",
    )
    worker.register("echo", echo)
    worker.register("sleep", sleep)
    worker.register("burn", burn)
    return worker


def main(t_main_ns: int | None = None) -> NoReturn:
    build(t_main_ns).run()
