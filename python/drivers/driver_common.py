"""What every Python driver shares: the JSON-lines protocol loop, the task functions that run
in the pool's workers (echo, sleep, burn, with worker-side stamps), and stdout discipline.

The protocol is specified in harness/subjects/DRIVERS.md. A driver supplies a ``PoolAdapter``
and calls ``main``::

    class MyPool(driver_common.PoolAdapter): ...
    raise SystemExit(driver_common.main(MyPool))

Besides answering ops, a driver may report its workers' lifecycle ("worker" events) and its
pool's state ("pool" events) on its own initiative; ``WorkerWatcher`` does both for a pool
whose worker processes are ``multiprocessing.Process`` objects.

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

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import signal
import struct
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
    from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

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


# What init_worker sends the driver: pid, t_main_ns, t_init_done_ns. 24 bytes (28 framed) is
# far below PIPE_BUF, so each report is one atomic write: the workers share the pipe without
# a lock, which a worker killed mid-report could otherwise leave held.
_READY = struct.Struct("=qqq")


def init_worker(init: Dict[str, Any], reports: Any = None) -> None:
    """The pool's initializer, in each worker process before its first task. ``reports`` is
    ``WorkerWatcher.reports``: the worker tells the driver when it started and became ready."""
    t_main = now_ns()
    init_ms = init.get("init_ms", 0)
    if init_ms:
        time.sleep(init_ms / 1e3)
    if reports is not None:
        try:
            reports.send_bytes(_READY.pack(os.getpid(), t_main, now_ns()))
        except OSError:  # the driver is gone or stopping; the worker will be told
            pass


def serve(tasks: Any, init: Dict[str, Any], reports: Any = None) -> None:
    """Main of a worker process for a driver that manages its processes itself (no pool
    library): initialises, then runs ``run_task`` for each ``(command, args)`` received on the
    connection ``tasks`` and sends the outcome back, until the connection closes."""
    init_worker(init, reports)
    while True:
        try:
            command, args = tasks.recv()
        except EOFError:
            return
        tasks.send(run_task(command, args))


def exit_worker(status: int) -> None:
    """A task that ends its worker process at once, as a crash would: no clean-up, no result.
    For planted faults only."""
    os._exit(status)


def warm(hold_s: float) -> int:
    """A warm-up task: proves a worker process exists and is ready; returns its pid."""
    time.sleep(hold_s)
    return os.getpid()


class StampedProcess(multiprocessing.context.ForkServerProcess):
    """A forkserver process that remembers when it was asked for: ``t_spawn_ns``, stamped
    just before the request to the fork server, is what "worker" events report as the
    process's creation."""

    t_spawn_ns = 0

    def start(self) -> None:
        self.t_spawn_ns = now_ns()
        super().start()


class _StampingContext(multiprocessing.context.ForkServerContext):
    Process = StampedProcess


def mp_context():
    """The forkserver context every driver here uses; its processes are ``StampedProcess``."""
    # The server imports the task module once; every worker forked from it then has it.
    # (This also replaces the default preload of __main__, the driver script itself.)
    multiprocessing.get_context(START_METHOD).set_forkserver_preload(["driver_common"])
    return _StampingContext()


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


class Events:
    """The events a driver sends on its own initiative ("worker", "pool"). They go through the
    loop's lock, so lines never interleave, and are dropped once the loop has written its
    last line ("stopped" or "error")."""

    def __init__(self, lock: Any = None, output: Optional[Output] = None):
        self._lock = lock if lock is not None else threading.Lock()
        self._out = output
        self.closed = output is None

    def emit(self, event: Dict[str, Any]) -> None:
        with self._lock:
            if not self.closed:
                self._out.write(event)


class PoolAdapter:
    """One pool behind the protocol. The loop calls start once, submit from the main thread,
    stop once; ``complete`` may be called from any thread.

    ``self.events`` (set by the loop before start) sends "worker" and "pool" events; a
    ``WorkerWatcher`` built on it does that for most pools. An adapter that can start cold
    sets ``honours_cold_start = True`` and takes ``start(size, init, warm=True)``; the loop
    then passes ``warm=False`` when the harness asks for it. Without it, the loop ignores the
    request and starts warm, as an old driver would."""

    honours_cold_start = False
    events = Events()  # replaced by the loop's; this one drops everything

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


class WorkerCrashed(Exception):
    """The process running a task died; reported as ``worker_crashed``."""


def exit_cause(exitcode: int) -> str:
    """A process's exit status as "exited" events describe it."""
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerWatcher:
    """Reports a pool's worker processes as "worker" events: "spawned" when a process appears
    among the pool's workers, "ready" when its initializer (``init_worker``, given
    ``reports``) has finished, "exited" with its exit status. Given ``sample``, it also sends
    "pool" events. Its thread wakes at once on a ready report, every ``PERIOD_S`` otherwise;
    a task costs it nothing.

    ``processes()`` returns the pool's current worker processes (``multiprocessing.Process``);
    it is called from the watcher's thread and must not block. The watcher never polls a
    process the pool itself waits for (two threads reading one fork-server status would
    race): it reads the exit status the pool collected, unless ``reaps`` says that the pool
    never collects it, and then the watcher does. ``retires``: the pool ends workers on
    purpose (maxtasksperchild), so exit status 0 is planned. ``sample()`` returns
    ``(queued, busy)``, or None when unknown; the watcher adds ``alive`` and sends at most one
    "pool" event per ``PERIOD_S``, and only when a count changed.

    The adapter passes ``reports`` to ``init_worker``, calls ``start()`` once its pool exists
    and wraps the pool's termination in ``with watcher.stopping():``, which ends the thread
    and then reports the exits, planned, before the loop writes "stopped"."""

    PERIOD_S = 0.05
    # A ready report for a process not (yet) among the pool's workers waits this long for its
    # "spawned", then goes out alone.
    READY_GRACE_NS = 500_000_000

    def __init__(self, events: Events, processes: Callable[[], Iterable[Any]], *,
                 reaps: bool = False, retires: bool = False,
                 sample: Optional[Callable[[], Optional[Tuple[int, int]]]] = None):
        self._events = events
        self._processes = processes
        self._reaps = reaps
        self._retires = retires
        self._sample = sample
        self._reader, self.reports = multiprocessing.Pipe(duplex=False)
        self._seen: Dict[int, Any] = {}  # pid -> its Process, until the pool drops it
        self._state: Dict[int, str] = {}  # pid -> the last state reported
        self._ready: Dict[int, Tuple[int, int, int]] = {}  # pid -> (t_main, t_done, t_learned)
        self._last_sample: Optional[Tuple[int, int, int]] = None
        self._planned = False
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._failed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worker-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._halt.is_set():
            timeout = max(next_tick - time.monotonic(), 0)
            try:
                multiprocessing.connection.wait([self._reader], timeout)
            except OSError:
                return
            ticking = time.monotonic() >= next_tick  # not woken by a report early
            with self._lock:
                self._sweep(sample=ticking)
            if ticking:
                next_tick = time.monotonic() + self.PERIOD_S

    def _sweep(self, sample: bool = False) -> None:
        try:
            self._read_reports()
            self._scan()
            if sample and self._sample is not None:
                self._send_sample()
        except Exception as e:  # a watcher's trouble must not end the driver
            if not self._failed:
                self._failed = True
                print(f"driver: worker watcher: {type(e).__name__}: {e}", file=sys.stderr)

    def _read_reports(self) -> None:
        while self._reader.poll():
            pid, t_main, t_done = _READY.unpack(self._reader.recv_bytes())
            self._ready[pid] = (t_main, t_done, now_ns())

    def _scan(self) -> None:
        now = now_ns()
        listed = list(self._processes())
        for process in listed:
            pid = process.pid
            known = self._seen.get(pid)
            if pid is None or known is process:
                continue
            if known is not None:  # a new worker with a pid used before: a story of its own
                self._state.pop(pid, None)
            self._seen[pid] = process
            if pid not in self._state:
                t_spawn = getattr(process, "t_spawn_ns", 0)
                self._emit(pid, "spawned", t_ns=t_spawn or now, t_spawn_ns=t_spawn)
        for pid in list(self._ready):
            if pid in self._seen or now - self._ready[pid][2] > self.READY_GRACE_NS:
                self._send_ready(pid)
        for pid, process in list(self._seen.items()):
            if self._state.get(pid) == "exited":
                continue
            exitcode = self._exitcode(process)
            if exitcode is not None:
                if pid in self._ready:
                    self._send_ready(pid)
                self._emit(pid, "exited", t_ns=now_ns(), cause=exit_cause(exitcode),
                           planned=self._planned or (self._retires and exitcode == 0))
        # Forget the exited processes the pool has dropped: each holds two descriptors, and a
        # pool that replaces crashed workers would otherwise run out of them.
        still_listed = {id(process) for process in listed}
        for pid, process in list(self._seen.items()):
            if self._state.get(pid) == "exited" and id(process) not in still_listed:
                del self._seen[pid]
                del self._state[pid]

    def _send_ready(self, pid: int) -> None:
        t_main, t_done, _ = self._ready.pop(pid)
        process = self._seen.get(pid)
        self._emit(pid, "ready", t_ns=t_done, t_spawn_ns=getattr(process, "t_spawn_ns", 0),
                   t_main_ns=t_main, t_init_done_ns=t_done)

    def _exitcode(self, process: Any) -> Optional[int]:
        if self._reaps:
            return process.exitcode
        return getattr(getattr(process, "_popen", None), "returncode", None)

    def _emit(self, pid: int, state: str, **fields: Any) -> None:
        self._state[pid] = state
        self._events.emit({"event": "worker", "pid": pid, "state": state, **fields})

    def _send_sample(self) -> None:
        counts = self._sample()
        if counts is None:
            return
        alive = sum(1 for pid in self._seen if self._state.get(pid) != "exited")
        queued, busy = counts
        if (queued, busy, alive) != self._last_sample:
            self._last_sample = (queued, busy, alive)
            self._events.emit({"event": "pool", "t_ns": now_ns(), "queued": queued,
                               "busy": busy, "alive": alive})

    @contextlib.contextmanager
    def stopping(self) -> Iterator[None]:
        """Around the pool's termination: what happened before is reported as it was; the
        exits the body causes are reported as planned when it ends."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(1.0)
        with self._lock:
            self._sweep()
            self._planned = True
        try:
            yield
        finally:
            with self._lock:
                self._read_reports()
                for pid in list(self._ready):
                    self._send_ready(pid)
                self._report_ended()
                self._reader.close()
                self.reports.close()

    def _report_ended(self) -> None:
        """After the pool's termination: every process it ended has exited, planned; one whose
        status nobody collected is reported once its sentinel says it is gone."""
        for pid, process in list(self._seen.items()):
            if self._state.get(pid) == "exited":
                continue
            exitcode = getattr(getattr(process, "_popen", None), "returncode", None)
            if exitcode is None and self._reaps:
                exitcode = process.exitcode
            if exitcode is not None:
                self._emit(pid, "exited", t_ns=now_ns(), cause=exit_cause(exitcode),
                           planned=True)
            elif _gone(process):
                self._emit(pid, "exited", t_ns=now_ns(), planned=True)


def _gone(process: Any) -> bool:
    try:
        return bool(multiprocessing.connection.wait([process.sentinel], 0))
    except (OSError, ValueError):
        return True


class ProtocolError(Exception):
    pass


def _failure(exc: BaseException) -> Dict[str, str]:
    from concurrent.futures import BrokenExecutor

    if isinstance(exc, (BrokenExecutor, WorkerCrashed)):
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
        self._events = Events(self._lock, output)
        adapter.events = self._events
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
                self._emit_last({"event": "error", "message": str(e)})
                self._shutdown()
                return EXIT_PROTOCOL_ERROR
            if status is not None:
                return status
        return self._stop()

    def _emit(self, event: Dict[str, Any]) -> None:
        with self._lock:
            self._out.write(event)

    def _emit_last(self, event: Dict[str, Any]) -> None:
        """The run's last line: no event a pool reports later follows it."""
        with self._lock:
            self._out.write(event)
            self._events.closed = True

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
        warm = message.get("warm", True)
        if not isinstance(warm, bool):
            raise ProtocolError(f"'warm' must be a boolean, got {warm!r}")
        self._started = True
        cold = not warm and self._adapter.honours_cold_start
        try:
            size, init = _parse_config(message.get("config"))
            self._size = size
            if cold:
                extra = self._adapter.start(size, init, warm=False)
            else:
                extra = self._adapter.start(size, init)
        except Exception as e:
            self._emit_last({"event": "error",
                             "message": f"start failed: {type(e).__name__}: {e}"})
            self._shutdown()
            return EXIT_BAD_START
        started = {"event": "started", "t_ns": now_ns(), **(extra or {})}
        if cold:
            started["warm"] = False
        self._emit(started)
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
        self._emit_last({"event": "stopped"})
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
