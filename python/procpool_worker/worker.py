"""The worker SDK: register command handlers, then ``run()`` serves the pool's protocol.

Example::

    import time; T_MAIN_NS = time.clock_gettime_ns(time.CLOCK_MONOTONIC)

    from procpool_worker import Worker

    worker = Worker(t_main_ns=T_MAIN_NS)

    @worker.handler("add")
    def add(args):
        return args["a"] + args["b"]

    if __name__ == "__main__":
        worker.run()

A handler takes the request's ``args`` (any JSON value, None when absent) and returns the
result (any JSON value). An exception becomes an ``ok: false`` reply whose error type is the
exception's class name and whose message is ``str(exception)``; the worker keeps serving.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import textwrap
import time

from . import clock, faults, framing
from . import knobs as knob_settings
from .knobs import KnobError, Knobs

TYPE_CHECKING = False  # importing typing would add to every worker's init time
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn, Sequence

    Handler = Callable[[Any], Any]
    InitHook = Callable[[dict[str, Any]], None]

BUILT_IN_COMMANDS = frozenset({"init", "ping"})
THREAD_LIMIT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EXIT_PROTOCOL_ERROR = 65  # EX_DATAERR
FLUSH_VARIABLE = "PROCPOOL_WORKER_FLUSH"
# Replies gathered before a handler whose mean time is at least this are written first, so a
# slow call does not hold them back (pool/ASYNC.md section 7, rule 4).
SLOW_HANDLER_NS = 50_000

_UINT64_MAX = 2**64 - 1

_EPILOG = """\
protocol:
  Frames on stdin and stdout are a 4-byte big-endian length, then UTF-8 JSON.
  The first request must be {"id": 0, "command": "init", "args": {KNOBS}}.
  Every worker also answers "ping" with "pong": no service time, no faults.
  A request for a registered command, after init: fault draws (crash, hang,
  garbage, truncated, oversize, wrong_id, slow), service time, then the handler.
  Handlers' prints go to stderr: stdout carries frames only.
  OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS default to 1.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter for an 80-column screen.

    By default it asks the terminal for its width, which imports shutil (and with it bz2 and
    lzma) whenever a parser is built: milliseconds of start-up on every worker for a help
    screen it will rarely print.
    """

    def __init__(self, prog: str):
        super().__init__(prog, width=78)


class ProtocolError(Exception):
    """A request the worker cannot make sense of; the worker exits with code 65."""


class Worker:
    """A worker process: command handlers, init hooks, and the protocol loop.

    ``t_main_ns`` is the CLOCK_MONOTONIC stamp taken by the program's very first statement.
    If omitted, construction time is used, and the imports before it are then counted as
    start-up latency instead of init overhead.
    """

    def __init__(self, *, t_main_ns: int | None = None, prog: str | None = None,
                 description: str | None = None):
        self._t_main_ns = clock.now_ns() if t_main_ns is None else t_main_ns
        self._prog = prog
        self._description = description
        self._handlers: dict[str, Handler] = {}
        self._init_hooks: list[InitHook] = []
        self._command_line_knobs = Knobs()
        self._knobs = self._command_line_knobs
        self._preload: list[str] = []
        self._injector: faults.Injector | None = None
        self._grandchild_pid: int | None = None
        self._reader: framing.FrameReader | None = None
        self._writer: framing.ReplyWriter | None = None
        # Each command's running mean handler time in ns (weight 1/8), for flush rule 4.
        self._handler_ns: dict[str, float] = {}

    @property
    def knobs(self) -> Knobs:
        """The knobs in force: the command line's, then init args applied once init succeeds."""
        return self._knobs

    def register(self, command: str, fn: Handler) -> None:
        """Serve ``command`` by calling ``fn(args)``."""
        if not isinstance(command, str) or not command:
            raise ValueError(f"command must be a non-empty string, got {command!r}")
        if command in BUILT_IN_COMMANDS:
            raise ValueError(f"'{command}' is built into every worker")
        if command in self._handlers:
            raise ValueError(f"'{command}' already has a handler")
        if not callable(fn):
            raise TypeError(f"handler for '{command}' is not callable")
        self._handlers[command] = fn

    def handler(self, command: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``."""
        def decorate(fn: Handler) -> Handler:
            self.register(command, fn)
            return fn
        return decorate

    def on_init(self, fn: InitHook) -> InitHook:
        """Decorator: call ``fn(args)`` during the handshake, with the init request's args.

        Hooks run after the init_ms delay, the --preload imports and the stderr flood, in
        registration order; their time counts as init overhead. An exception fails the
        handshake with an error named after its class.
        """
        self._init_hooks.append(fn)
        return fn

    def run(self, argv: Sequence[str] | None = None) -> NoReturn:
        """Parse the command line (``argv``, default sys.argv[1:]), then serve until EOF.

        Exits 0 at end of input, 65 on a malformed request, 2 on a bad command line. With
        ``--zygote`` the process becomes a template instead (``procpool_worker.zygote``):
        exit 0 at the control channel's end, 70 when the preload failed.
        """
        parser = self._argument_parser()
        namespace = parser.parse_args(argv)
        self._command_line_knobs = self._knobs = knob_settings.from_arguments(parser, namespace)
        self._preload = [name.strip() for value in namespace.preload
                         for name in value.split(",") if name.strip()]
        for variable in THREAD_LIMIT_VARIABLES:
            os.environ.setdefault(variable, "1")
        if namespace.zygote:
            # Imported only here: a spawned worker never pays for ctypes and socket.
            from . import zygote
            zygote.serve_template(self._preload, self._t_main_ns, self._run_forked)
        self._serve_stdio()

    def _run_forked(self, t_main_ns: int) -> NoReturn:
        """A zygote's child, right after the fork: serve like a spawned worker whose program
        started at ``t_main_ns``. The command line was parsed once, in the template."""
        self._t_main_ns = t_main_ns
        self._serve_stdio()

    def _serve_stdio(self) -> NoReturn:
        frames_in, frames_out = _take_over_stdio()
        self._reader = framing.FrameReader(frames_in)
        self._writer = framing.ReplyWriter(
            frames_out, each=os.environ.get(FLUSH_VARIABLE) == "each")
        if self._knobs.ignore_sigterm:
            faults.set_ignore_sigterm(True)
        if self._knobs.grandchild:
            self._grandchild_pid = faults.spawn_grandchild()
        sys.exit(self._serve())

    def _argument_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=self._prog,
            description=self._description and textwrap.fill(self._description, width=78),
            epilog=(_EPILOG + "\nknobs without a flag:\n"
                    + knob_settings.describe_not_on_command_line()),
            formatter_class=_HelpFormatter,
        )
        parser.add_argument(
            "--preload", action="append", default=[], metavar="MODULE[,MODULE...]",
            help="import these modules during the init handshake, so that their import time "
                 "counts as init overhead (may be repeated)")
        parser.add_argument(
            "--zygote", action="store_true",
            help="run as a zygote template (pool/ZYGOTE.md): import the --preload modules "
                 "once, then fork one worker per request of the control channel on fd 0 "
                 "(or PROCPOOL_ZYGOTE_FD); each child runs the init handshake itself")
        knob_settings.add_arguments(parser)
        return parser

    def _serve(self) -> int:
        """Serve every request in the read buffer, then write the replies gathered and read
        again: a batch of pipelined requests costs one read and one writev."""
        reader, writer = self._reader, self._writer
        try:
            while True:
                payload = reader.next_frame()
                if payload is None:
                    # Rule 1: about to block on the read, so the pool must have the replies.
                    writer.flush()
                    if reader.fill():
                        continue
                    if reader.buffered:
                        return _protocol_error(reader.end_of_stream_error())
                    return 0
                t_recv_ns = clock.now_ns()
                try:
                    request_id, command, args = _decode_request(payload)
                except ProtocolError as error:
                    # Rule 5: the replies before the bad request are delivered first.
                    writer.flush()
                    return _protocol_error(error)
                self._dispatch(request_id, command, args, t_recv_ns)
        except BrokenPipeError:
            # Nobody reads the replies any more; the writer has dropped what was pending.
            return 0
        finally:
            # Rule 5: whatever ends the loop (a handler's sys.exit included), the replies
            # already made are delivered.
            try:
                writer.flush()
            except OSError:
                pass

    def _dispatch(self, request_id: int, command: str, args: Any, t_recv_ns: int) -> None:
        if command == "init":
            self._handshake(request_id, args, t_recv_ns)
        elif self._injector is None:
            self._reply(t_recv_ns, _error(request_id, "not_initialised",
                                          f"'{command}' arrived before init"))
        elif command == "ping":
            self._reply(t_recv_ns, _ok(request_id, "pong"))
        elif command not in self._handlers:
            self._reply(t_recv_ns, _error(request_id, "unknown_command",
                                          f"unknown command '{command}'"))
        else:
            self._serve_request(request_id, command, self._handlers[command], args, t_recv_ns)

    def _handshake(self, request_id: int, args: Any, t_recv_ns: int) -> None:
        # Init may sleep, import, exit or never answer: whatever came before goes out first.
        self._writer.flush()
        stamps = {"pid": os.getpid(), "t_main_ns": self._t_main_ns}
        if self._injector is not None:
            self._reply(t_recv_ns, {**_error(request_id, "already_initialised",
                                             "init was already answered"), **stamps})
            return
        try:
            knobs = self._command_line_knobs.override(args)
        except KnobError as error:
            self._reply(t_recv_ns, {**_error(request_id, "bad_init", str(error)), **stamps})
            return
        if knobs.exit_during_init:
            faults.crash("exit", knobs.crash_exit_code)
        if knobs.never_ready:
            faults.sleep_forever()
        self._apply_process_knobs(knobs)
        self._knobs = knobs
        try:
            clock.sleep_ms(knobs.init_ms)
            for name in self._preload:
                importlib.import_module(name)
            faults.flood_stderr(knobs.stderr_flood_mb)
            for hook in self._init_hooks:
                hook(dict(args or {}))
        except Exception as error:
            self._knobs = self._command_line_knobs
            self._reply(t_recv_ns, {**_error(request_id, type(error).__name__, str(error)),
                                    **stamps})
            _log_exception(error)
            return
        self._injector = faults.Injector(knobs)
        t_init_done_ns = clock.now_ns()
        self._reply(t_recv_ns, {**_ok(request_id, {"pid": stamps["pid"]}), **stamps,
                                "t_init_done_ns": t_init_done_ns})

    def _apply_process_knobs(self, knobs: Knobs) -> None:
        # These act "from start-up on"; given only in init args, init is the earliest moment.
        if knobs.ignore_sigterm != self._command_line_knobs.ignore_sigterm:
            faults.set_ignore_sigterm(knobs.ignore_sigterm)
        if knobs.grandchild and self._grandchild_pid is None:
            self._grandchild_pid = faults.spawn_grandchild()

    def _serve_request(self, request_id: int, command: str, handler: Handler, args: Any,
                       t_recv_ns: int) -> None:
        knobs = self._knobs
        injector = self._injector
        writer = self._writer
        draw = injector.draw()
        # Rule 3: before a fault ends or stalls the worker, the replies before it go out.
        if draw.crash or draw.hang or draw.garbage or draw.truncated or draw.oversize:
            writer.flush()
        if draw.crash:
            faults.crash(knobs.crash_mode, knobs.crash_exit_code)
        if draw.hang:
            faults.hang(knobs.hang_mode)
        service_ms = injector.service_time_ms()
        if service_ms > 0:
            writer.flush()  # rule 3: not held back by this request's service time
            injector.spend(service_ms)
        injector.grow_memory()
        # Rule 4: a command that is slow on average, or not yet timed, may take long enough
        # that the replies gathered before it should not wait for it.
        handler_ns = self._handler_ns
        mean_ns = handler_ns.get(command)
        if mean_ns is None or mean_ns >= SLOW_HANDLER_NS:
            writer.flush()
        failure = None
        # perf_counter_ns: any clock will do for a duration, and it is one C call.
        t_start_ns = time.perf_counter_ns()
        try:
            message = _ok(request_id, handler(args))
        except Exception as error:
            failure = error
            message = _error(request_id, type(error).__name__, str(error))
        elapsed_ns = time.perf_counter_ns() - t_start_ns
        handler_ns[command] = (elapsed_ns if mean_ns is None
                               else mean_ns + (elapsed_ns - mean_ns) / 8)
        if draw.slow:
            writer.flush()  # rule 3
            clock.sleep_ms(knobs.slow_ms)
        if draw.garbage:
            writer.add_frame(faults.GARBAGE_PAYLOAD)
            writer.flush()
        elif draw.truncated:
            faults.write_truncated(writer)
        elif draw.oversize:
            faults.write_oversize(writer)
        else:
            if draw.wrong_id:
                message["id"] = request_id + faults.WRONG_ID_OFFSET
            self._reply(t_recv_ns, message)
        if failure is not None:
            _log_exception(failure)

    def _reply(self, t_recv_ns: int, message: dict[str, Any]) -> None:
        message["t_recv_ns"] = t_recv_ns
        message["t_done_ns"] = clock.now_ns()
        try:
            payload = _encode(message)
        except (TypeError, ValueError) as error:
            # Only a handler's result can fail to encode; report it instead of the result.
            failure = _error(message["id"], type(error).__name__,
                             f"result is not JSON-serialisable: {error}")
            failure.update(t_recv_ns=t_recv_ns, t_done_ns=clock.now_ns())
            payload = _encode(failure)
        self._writer.add_frame(payload)


def _take_over_stdio() -> tuple[int, int]:
    """Move the protocol's pipes off fds 0 and 1; return the descriptors they now have.

    Afterwards fd 0 reads /dev/null, fd 1 and sys.stdout write to stderr, so nothing that a
    handler, an extension module or a subprocess reads or prints can touch the frames.
    """
    sys.stdout.flush()
    # os.dup gives non-inheritable descriptors: subprocesses do not get the pipes.
    frames_in = os.dup(0)
    frames_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return frames_in, frames_out


def _log_exception(error: BaseException) -> None:
    """Print ``error``'s traceback to stderr; call it after replying, as formatting is slow."""
    # Imported on first use: most workers never need it, and every import delays init.
    import traceback
    traceback.print_exception(type(error), error, error.__traceback__)


def _protocol_error(error: Exception) -> int:
    print(f"procpool_worker: protocol error: {error}", file=sys.stderr)
    return EXIT_PROTOCOL_ERROR


def _decode_request(payload: bytes | memoryview) -> tuple[int, str, Any]:
    try:
        # str() of a view decodes in place: the one copy of the request.
        request = json.loads(str(payload, "utf-8"))
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"request is not UTF-8 JSON ({error}): "
                            f"{bytes(payload[:200])!r}") from None
    if not isinstance(request, dict):
        raise ProtocolError(f"request is not a JSON object: {bytes(payload[:200])!r}")
    request_id = request.get("id")
    if (isinstance(request_id, bool) or not isinstance(request_id, int)
            or not 0 <= request_id <= _UINT64_MAX):
        raise ProtocolError(f"request has no unsigned 64-bit id: {bytes(payload[:200])!r}")
    command = request.get("command")
    if not isinstance(command, str):
        raise ProtocolError(f"request has no string command: {bytes(payload[:200])!r}")
    return request_id, command, request.get("args")


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _ok(request_id: int, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def _error(request_id: int, error_type: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"type": error_type, "message": message}}
