"""What every Python driver shares: the JSON-lines protocol loop, the task functions that run
in the pool's workers (echo, sleep, burn, with worker-side stamps), and stdout discipline.

The protocol is specified in harness/subjects/DRIVERS.md. A driver supplies a ``PoolAdapter``
and calls ``main``::

    class MyPool(driver_common.PoolAdapter): ...
    raise SystemExit(driver_common.main(MyPool))

Start method: both drivers use ``forkserver``. The driver is multithreaded (the pool's own
helper threads run completion callbacks that write to stdout under a lock), and
``multiprocessing.Pool`` forks replacement workers from a helper thread at any time; a plain
``fork`` there could copy a lock held by another thread into the child, which then deadlocks
(CPython warns about exactly this from 3.12 and made forkserver the default in 3.14). The
forkserver forks every worker from a clean single-threaded process instead, for one extra
interpreter start when the pool is created, which happens before "started" and so is not
counted in any request.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
# Reuse procpool_worker's clock (its sleep and CPU burn), so that the commands mean exactly
# what they mean for procpool's own Python worker.
_PYTHON_DIR = os.path.dirname(_HERE)
for _path in (_HERE, _PYTHON_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from procpool_worker import clock  # noqa: E402  (needs the path above)

TYPE_CHECKING = False  # importing typing would add to every worker's start-up
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Dict, List, Optional

    Outcome = Any  # run_task's dict, or the exception the pool raised for the task

START_METHOD = "forkserver"
EXIT_BAD_START = 1
EXIT_PROTOCOL_ERROR = 65  # EX_DATAERR, as procpool_worker uses
UINT64_MAX = 2**64 - 1
# Each warm-up task holds its worker this long, so that the size tasks of one round land on
# size different processes without a barrier between them.
WARM_TASK_S = 0.05
WARM_ROUNDS = 20


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# --- in the worker processes --------------------------------------------------------------


class _TaskError(Exception):
    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


def _milliseconds(args: Any) -> float:
    ms = args.get("ms") if isinstance(args, dict) else None
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms < float("inf"):
        raise ValueError(f'args must be {{"ms": <number >= 0>}}, got {json.dumps(args)}')
    return float(ms)


def _echo(args: Any) -> Any:
    return args


def _sleep(args: Any) -> Dict[str, float]:
    return {"slept_ms": clock.sleep_ms(_milliseconds(args))}


def _burn(args: Any) -> Dict[str, float]:
    return {"burned_ms": clock.burn_cpu_ms(_milliseconds(args))}


COMMANDS = {"echo": _echo, "sleep": _sleep, "burn": _burn}


def run_task(command: str, args: Any) -> Dict[str, Any]:
    """The task every driver hands its pool. Stamps and errors are taken here, inside the
    worker, so that an exception still reports when the worker had the task."""
    t_recv = now_ns()
    outcome: Dict[str, Any]
    try:
        handler = COMMANDS.get(command)
        if handler is None:
            raise _TaskError("unknown_command", f"unknown command {command!r}")
        outcome = {"ok": True, "result": handler(args)}
    except _TaskError as e:
        outcome = {"ok": False, "error": {"type": e.type_name, "message": str(e)}}
    except Exception as e:  # the task's failure is data for the harness, not a driver crash
        outcome = {"ok": False, "error": {"type": type(e).__name__, "message": str(e)}}
    outcome["t_worker_recv_ns"] = t_recv
    outcome["t_worker_done_ns"] = now_ns()
    outcome["worker_pid"] = os.getpid()
    return outcome


def init_worker(init: Dict[str, Any]) -> None:
    """The pool's initializer, in each worker process before its first task."""
    init_ms = init.get("init_ms", 0)
    if init_ms:
        time.sleep(init_ms / 1e3)


def warm(hold_s: float) -> int:
    """A warm-up task: proves a worker process exists and is ready; returns its pid."""
    time.sleep(hold_s)
    return os.getpid()


def mp_context():
    import multiprocessing

    context = multiprocessing.get_context(START_METHOD)
    # The server imports the task module once; every worker forked from it then has it.
    # (This also replaces the default preload of __main__, the driver script itself.)
    context.set_forkserver_preload(["driver_common"])
    return context


def warm_pool(run_round: Callable[[int], List[int]], size: int) -> List[int]:
    """Runs rounds of ``size`` warm tasks (``run_round(n)`` returns the pids that ran them)
    until ``size`` distinct processes have each run one. A process that was ready first may
    take two tasks of a round while another is still starting, hence the rounds."""
    seen = set()
    for _ in range(WARM_ROUNDS):
        seen.update(run_round(size))
        if len(seen) >= size:
            break
    return sorted(seen)


# --- in the driver process ------------------------------------------------------------------


class PoolAdapter:
    """One pool behind the protocol. The loop calls start once, submit from the main thread,
    stop once; ``complete`` may be called from any thread."""

    def start(self, size: int, init: Dict[str, Any]) -> Dict[str, Any]:
        """Create the pool and warm every process; return extra fields for "started"."""
        raise NotImplementedError

    def submit(self, command: str, args: Any, complete: Callable[[Outcome], None]) -> None:
        """Hand ``run_task(command, args)`` to the pool without blocking; call
        ``complete(result_or_exception)`` when it finishes. May raise if the pool refuses."""
        raise NotImplementedError

    def stop(self) -> None:
        """Terminate every worker process; outstanding tasks are abandoned."""
        raise NotImplementedError


class ProtocolError(Exception):
    pass


def _failure(exc: BaseException) -> Dict[str, str]:
    from concurrent.futures import BrokenExecutor

    if isinstance(exc, BrokenExecutor):
        return {"type": "worker_crashed", "message": str(exc) or "a worker process died"}
    return {"type": type(exc).__name__, "message": str(exc)}


def _require_int(message: Dict[str, Any], key: str, low: int, high: int) -> int:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{key!r} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _parse_config(config: Any) -> tuple:
    if not isinstance(config, dict):
        raise ValueError(f"config must be an object, got {config!r}")
    unknown = set(config) - {"size", "init"}
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    size = config.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"config.size must be an integer >= 1, got {size!r}")
    init = config.get("init", {})
    if not isinstance(init, dict):
        raise ValueError(f"config.init must be an object, got {init!r}")
    unknown = set(init) - {"init_ms"}
    if unknown:
        raise ValueError(f"unknown config.init keys: {sorted(unknown)}")
    init_ms = init.get("init_ms", 0)
    if isinstance(init_ms, bool) or not isinstance(init_ms, (int, float)) or not 0 <= init_ms < 1e9:
        raise ValueError(f"config.init.init_ms must be a number >= 0, got {init_ms!r}")
    return size, init


class Output:
    """stdout's protocol lines. Callers hold the loop's lock, so lines never interleave."""

    def __init__(self, fd: int):
        self._fd = fd
        self.open = True

    def write(self, event: Dict[str, Any]) -> None:
        if not self.open:
            return
        data = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            # The harness is gone; end of file on stdin will follow and stop the loop.
            self.open = False


class ProtocolLoop:
    def __init__(self, adapter: PoolAdapter, output: Output):
        self._adapter = adapter
        self._out = output
        self._lock = threading.Lock()
        self._size = 0
        self._started = False
        self._stopping = False
        self._outstanding = 0
        self._completed = 0

    def run(self, lines: BinaryIO) -> int:
        """Serves until stop or end of input; returns the exit status."""
        for line in lines:
            if not line.strip():
                continue
            try:
                status = self._handle(line)
            except ProtocolError as e:
                self._emit({"event": "error", "message": str(e)})
                self._shutdown()
                return EXIT_PROTOCOL_ERROR
            if status is not None:
                return status
        return self._stop()

    def _emit(self, event: Dict[str, Any]) -> None:
        with self._lock:
            self._out.write(event)

    def _handle(self, line: bytes) -> Optional[int]:
        try:
            message = json.loads(line)
        except ValueError as e:
            raise ProtocolError(f"not JSON: {e}: {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise ProtocolError(f"not a JSON object: {line[:200]!r}")
        op = message.get("op")
        if op == "submit":
            self._submit(message)
            return None
        if op == "start":
            return self._start(message)
        if op == "stats":
            self._stats()
            return None
        if op == "stop":
            return self._stop()
        raise ProtocolError(f"unknown op {op!r}")

    def _start(self, message: Dict[str, Any]) -> Optional[int]:
        if self._started:
            raise ProtocolError("a second start")
        self._started = True
        try:
            size, init = _parse_config(message.get("config"))
            self._size = size
            extra = self._adapter.start(size, init)
        except Exception as e:
            self._emit({"event": "error", "message": f"start failed: {type(e).__name__}: {e}"})
            self._shutdown()
            return EXIT_BAD_START
        self._emit({"event": "started", "t_ns": now_ns(), **(extra or {})})
        return None

    def _submit(self, message: Dict[str, Any]) -> None:
        if not self._started:
            raise ProtocolError("submit before start")
        request_id = _require_int(message, "id", 1, UINT64_MAX)
        command = message.get("command")
        if not isinstance(command, str):
            raise ProtocolError(f"'command' must be a string, got {command!r}")
        t_intended = message.get("t_intended_ns")
        if t_intended is not None:
            t_intended = _require_int(message, "t_intended_ns", -2**63, 2**63 - 1)
        with self._lock:
            self._outstanding += 1
        t_start = now_ns()

        def complete(outcome: Outcome) -> None:
            self._complete(request_id, t_start, t_intended, outcome)

        try:
            self._adapter.submit(command, message.get("args"), complete)
        except Exception as e:  # the pool refused the task (broken, shut down)
            complete(e)

    def _complete(self, request_id: int, t_start: int, t_intended: Optional[int],
                  outcome: Outcome) -> None:
        event: Dict[str, Any] = {"event": "done", "id": request_id}
        if isinstance(outcome, BaseException):
            event.update(ok=False, error=_failure(outcome), t_worker_recv_ns=0,
                         t_worker_done_ns=0, worker_pid=0)
        else:
            event.update(outcome)
        event["t_start_ns"] = t_start
        if t_intended is not None:
            event["t_intended_ns"] = t_intended
        with self._lock:
            if self._stopping:
                return
            self._outstanding -= 1
            self._completed += 1
            event["t_done_ns"] = now_ns()
            try:
                self._out.write(event)
            except ValueError as e:  # a result JSON cannot carry (NaN)
                event.pop("result", None)
                event.update(ok=False, error={"type": "unserializable_result", "message": str(e)})
                self._out.write(event)

    def _stats(self) -> None:
        with self._lock:
            busy = min(self._outstanding, self._size)
            self._out.write({"event": "stats", "size": self._size, "busy": busy,
                             "queued": self._outstanding - busy, "completed": self._completed})

    def _stop(self) -> int:
        self._shutdown()
        self._emit({"event": "stopped"})
        return 0

    def _shutdown(self) -> None:
        with self._lock:
            self._stopping = True  # completions from here on are abandoned, not written
        if self._started:
            try:
                self._adapter.stop()
            except Exception as e:
                print(f"driver: stopping the pool failed: {type(e).__name__}: {e}",
                      file=sys.stderr)


def claim_stdio() -> tuple:
    """Keeps the real stdin and stdout for the protocol on private descriptors; points fd 1
    and sys.stdout at stderr, fd 0 and sys.stdin at /dev/null. Everything the driver, its
    pool and its workers (which inherit fds 0-2) print then lands on stderr and can never
    corrupt a protocol line, and nothing can read the harness's ops by accident."""
    sys.stdout.flush()
    protocol_in = os.dup(0)  # os.dup makes non-inheritable descriptors
    protocol_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr
    return protocol_in, protocol_out


def main(adapter_class: Callable[[], PoolAdapter]) -> int:
    protocol_in, protocol_out = claim_stdio()
    loop = ProtocolLoop(adapter_class(), Output(protocol_out))
    with open(protocol_in, "rb") as lines:
        return loop.run(lines)
