import time; T_MAIN_NS = time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # noqa: E702

__doc__ = """A purpose-built worker for the tests: handlers that print, fail or report state.

Set PROBE_FAIL_INIT in the environment to make its init hook raise.
"""

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from procpool_worker import Worker  # noqa: E402

worker = Worker(t_main_ns=T_MAIN_NS, prog="probe_worker")
init_calls = []


@worker.on_init
def remember_init(args):
    if os.environ.get("PROBE_FAIL_INIT"):
        raise RuntimeError("init refused by PROBE_FAIL_INIT")
    init_calls.append(args)


@worker.handler("init_calls")
def report_init_calls(args):
    return init_calls


@worker.handler("noisy")
def noisy(args):
    """Write to stdout every way a handler might; the reply must still arrive intact."""
    print("probe: print")
    sys.stdout.write("probe: sys.stdout.write\n")
    sys.stdout.flush()
    os.write(1, b"probe: os.write(1)\n")
    subprocess.run([sys.executable, "-c", "print('probe: subprocess')"], check=True)
    return "quiet"


@worker.handler("loaded")
def loaded(names):
    return {name: name in sys.modules for name in names}


@worker.handler("env")
def env(names):
    return {name: os.environ.get(name) for name in names}


@worker.handler("fail")
def fail(args):
    raise ValueError(f"failed on purpose: {args}")


@worker.handler("unserialisable")
def unserialisable(args):
    return {"value": object()}


if __name__ == "__main__":
    worker.run()
