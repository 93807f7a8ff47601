"""The zygote template of pool/ZYGOTE.md: ``Worker.run`` with ``--zygote``.

``python3 -m procpool_worker --zygote --preload json,decimal`` (or any worker script whose
entry point is ``Worker.run``, with ``--zygote``) imports the preload once, says ``ready`` on
the control channel (a SOCK_SEQPACKET socket on fd 0, or on ``PROCPOOL_ZYGOTE_FD``), and
forks one worker per ``fork`` request. Each child takes the three pipes that came with the
request as its stdin, stdout and stderr, and then serves exactly like a spawned worker: the
pool's init handshake happens in the child, after the fork, and its ``t_main_ns`` is the
child's first stamp after ``os.fork()``.

The pitfalls, each handled where it arises:

* other threads alive: a fork would copy locks they hold and lose the threads themselves.
  The template counts /proc/self/task (native threads too, e.g. a BLAS pool) and refuses
  with ``threads_alive`` naming the Python threads it knows and counting the others.
* shared random state: the child reseeds ``random`` and, when imported, numpy's global
  generator. (Generators a preload created itself are the preload's business.)
* inherited descriptors: the child closes every descriptor above 2, the control channel
  included, and puts /dev/null on the numbers the template had open, so that a preload's
  stale file or socket object can neither write into nor close the worker's own pipes
  (which would otherwise reuse those numbers); such objects must be reopened by the
  worker. The template
  itself moves the control channel off fd 0 (to a close-on-exec descriptor) and reads
  /dev/null there, so neither the preload nor a process it starts can read or hold it.
* the collector dirtying shared pages: the template runs with the collector disabled, and
  ``gc.freeze()`` before each fork moves everything it allocated into the permanent
  generation, so the children's collections (enabled again in the child) never touch it.
* a child must never return into the template's loop: everything after ``os.fork()`` in
  the child ends in ``os._exit``.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading

from . import clock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, NoReturn, Sequence

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 65536
EXIT_PRELOAD_FAILED = 70  # EX_SOFTWARE
EXIT_CHILD_SETUP_FAILED = 127
PR_SET_PDEATHSIG = 1
CONTROL_FD = 0

_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded in the template, never in a child


class TemplateError(Exception):
    """A request the template refuses; ``type`` is the error type of pool/ZYGOTE.md."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.type = error_type


def other_threads() -> str | None:
    """None when only the calling thread exists; else a description naming the others."""
    try:
        native = len(os.listdir("/proc/self/task"))
    except OSError:
        native = threading.active_count()
    if native <= 1 and threading.active_count() <= 1:
        return None
    current = threading.current_thread()
    names = [t.name for t in threading.enumerate() if t is not current]
    unnamed = native - 1 - len(names)
    parts = [f"Python threads: {', '.join(names)}"] if names else []
    if unnamed > 0:
        parts.append(f"{unnamed} thread(s) not started by Python")
    return f"{native} threads alive ({'; '.join(parts)}); the template forks only with one"


class Template:
    """The template's state and its control loop."""

    def __init__(self, start_worker: Callable[[int], NoReturn], t_main_ns: int,
                 control_fd: int):
        self._start_worker = start_worker
        self._t_main_ns = t_main_ns
        self._sock = socket.socket(fileno=control_fd)
        self._pid = os.getpid()
        self._children: dict[int, int] = {}  # request id -> pid, unreaped

    # -- messages --------------------------------------------------------------------------
    def _send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        payload = json.dumps(message, separators=(",", ":")).encode()
        socket.send_fds(self._sock, [payload], list(fds)) if fds else self._sock.send(payload)

    def _receive(self) -> tuple[dict[str, Any], list[int]] | None:
        payload, fds, flags, _ = socket.recv_fds(self._sock, MAX_MESSAGE_BYTES, 8,
                                                 socket.MSG_CMSG_CLOEXEC)
        if not payload and not fds:
            return None  # EOF: the pool closed its end, or died
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            _close_all(fds)
            raise TemplateError("bad_request", "message or descriptors truncated")
        try:
            message = json.loads(payload)
        except ValueError as error:
            _close_all(fds)
            raise TemplateError("bad_request", f"not JSON: {error}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            _close_all(fds)
            raise TemplateError("bad_request", "not an object with a string type")
        return message, fds

    # -- lifecycle -------------------------------------------------------------------------
    def preload(self, modules: Sequence[str]) -> bool:
        """Import ``modules``; send ``ready`` or ``preload_failed``. False on failure."""
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as error:  # noqa: BLE001: any failure is reported, then exit
            import traceback
            traceback.print_exc()  # into the template's stderr tail, which the pool quotes
            print(f"procpool_worker: zygote preload failed: {error!r}", file=sys.stderr)
            sys.stderr.flush()
            self._send({"type": "preload_failed",
                        "error": {"type": type(error).__name__, "message": str(error)}})
            return False
        self._send({"type": "ready", "protocol": PROTOCOL_VERSION, "pid": self._pid,
                    "t_main_ns": self._t_main_ns, "t_preload_done_ns": clock.now_ns()})
        return True

    def serve(self) -> int:
        """Answer requests until EOF; then kill and reap the children left. Returns 0.

        Any other failure (the pool vanished mid-send, a bug) also kills and reaps the
        children before it propagates."""
        try:
            self._loop()
        finally:
            self._kill_children()
        return 0

    def _loop(self) -> None:
        while True:
            request_id = kind = None
            try:
                received = self._receive()
                if received is None:
                    break
                message, fds = received
                request_id = message.get("id")
                kind = message["type"]
                if kind == "fork":
                    self._fork(message, fds)
                    continue
                _close_all(fds)
                if kind == "reap":
                    self._reap(message)
                elif kind == "status":
                    self._status(message)
                else:
                    raise TemplateError("bad_request", f"unknown message type {kind!r}")
            except TemplateError as error:
                reply = {"fork": "fork_failed", "reap": "reap_failed"}.get(kind, "error")
                self._send({"type": reply, "id": request_id,
                            "error": {"type": error.type, "message": str(error)}})

    def _fork(self, message: dict[str, Any], fds: list[int]) -> None:
        request_id = message.get("id")
        env = message.get("env", {})
        try:
            if isinstance(request_id, bool) or not isinstance(request_id, int) or request_id < 0:
                raise TemplateError("bad_request", "fork needs an unsigned integer id")
            if len(fds) != 3:
                raise TemplateError("bad_request", f"fork needs 3 descriptors, got {len(fds)}")
            if not isinstance(env, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise TemplateError("bad_request", "env must map strings to strings")
            threads = other_threads()
            if threads is not None:
                raise TemplateError("threads_alive", threads)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # or the child would write the template's buffered output
            gc.freeze()
            t_fork_ns = clock.now_ns()
            try:
                pid = os.fork()
            except OSError as error:
                raise TemplateError("fork_errno", str(error)) from None
            if pid == 0:
                self._become_worker(fds, env)  # never returns
            try:
                os.setpgid(pid, pid)  # the child does it too; whichever runs first
            except OSError:
                pass  # EACCES after the child exec'd, ESRCH after it died: both fine
            try:
                pidfd = os.pidfd_open(pid)  # unreaped until the pool says "reap": no race
            except OSError as error:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TemplateError("fork_errno", f"pidfd_open: {error}") from None
        finally:
            _close_all(fds)
        self._children[request_id] = pid
        try:
            self._send({"type": "forked", "id": request_id, "pid": pid, "t_fork_ns": t_fork_ns},
                       [pidfd])
        finally:
            os.close(pidfd)

    def _become_worker(self, fds: list[int], env: dict[str, str]) -> NoReturn:
        """The child, from os.fork() to os._exit: set up, then run the worker's loop."""
        code = EXIT_CHILD_SETUP_FAILED
        try:
            t_main_ns = clock.now_ns()
            os.setpgid(0, 0)
            if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                os._exit(EXIT_CHILD_SETUP_FAILED)
            if os.getppid() != self._pid:
                os._exit(EXIT_CHILD_SETUP_FAILED)  # the template died before prctl
            self._sock.detach()  # closed by the sweep below; the object must not close the
            #                      number again later, when it may be someone else's
            held = _open_descriptors()  # the template's, before this child takes its own
            for target, fd in enumerate(fds):
                os.dup2(fd, target)  # received fds are >= 3, so no source is overwritten
            os.closerange(3, _max_fd())  # close_range(2) where the kernel has it
            _hold_with_devnull(fd for fd in held if fd > 2 and fd not in fds)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            for signum in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
            os.environ.update(env)
            _reseed()
            gc.enable()  # disabled in the template; the frozen objects stay out of reach
            code = EXIT_PROTOCOL_ERROR_FALLBACK
            self._start_worker(t_main_ns)  # Worker.run's serving half: ends in SystemExit
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:  # noqa: BLE001: report, and never return into the template
            try:
                import traceback
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001
                    pass
            os._exit(code)

    def _reap(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        pid = self._children.get(request_id)
        if pid is None:
            raise TemplateError("unknown_id", f"no unreaped child for id {request_id!r}")
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == 0:
            raise TemplateError("running", f"child {pid} has not exited")
        del self._children[request_id]
        self._send({"type": "reaped", "id": request_id, **_decode_status(status)})

    def _status(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        pid = self._children.get(request_id)
        if pid is None:
            raise TemplateError("unknown_id", f"no unreaped child for id {request_id!r}")
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            self._send({"type": "status", "id": request_id, "running": True, "code": -1,
                        "signal": 0})
            return
        exited = info.si_code == os.CLD_EXITED
        self._send({"type": "status", "id": request_id, "running": False,
                    "code": info.si_status if exited else -1,
                    "signal": 0 if exited else info.si_status})

    def _kill_children(self) -> None:
        for pid in self._children.values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in self._children.values():
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self._children.clear()


EXIT_PROTOCOL_ERROR_FALLBACK = 1  # the worker's run() raised instead of exiting


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _open_descriptors() -> list[int]:
    """This process's open descriptors (and the listing's own, closed by now)."""
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return []


def _hold_with_devnull(numbers: Iterable[int]) -> None:
    """Put /dev/null on each (closed) descriptor number in ``numbers``.

    Python objects the preload made (a file, a socket) survive the fork and still name their
    old descriptor numbers. Were those numbers free, the worker's own pipes would take them,
    and the stale object's write or close (or its finaliser) would hit the frame channel;
    held by /dev/null, the numbers stay out of reach and the stale object is harmless."""
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    keep = False
    for fd in numbers:
        if fd == devnull:
            keep = True
        else:
            os.dup2(devnull, fd, inheritable=False)
    if not keep:
        os.close(devnull)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


def _reseed() -> None:
    if "random" in sys.modules:
        sys.modules["random"].seed()  # from os.urandom
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed()
        except Exception:  # noqa: BLE001: a broken numpy must not stop the worker
            pass


def _decode_status(status: int) -> dict[str, int]:
    if os.WIFEXITED(status):
        return {"code": os.WEXITSTATUS(status), "signal": 0}
    if os.WIFSIGNALED(status):
        return {"code": -1, "signal": os.WTERMSIG(status)}
    return {"code": -1, "signal": 0}


def control_fd_from_environment() -> int:
    """The control channel's descriptor: ``PROCPOOL_ZYGOTE_FD``, 0 when unset."""
    value = os.environ.get("PROCPOOL_ZYGOTE_FD", "")
    try:
        return int(value) if value else CONTROL_FD
    except ValueError:
        raise SystemExit(f"procpool_worker: PROCPOOL_ZYGOTE_FD={value!r} is not a descriptor")


def _move_off_stdio(fd: int) -> int:
    """A close-on-exec duplicate of ``fd``; fd itself is closed, or reads /dev/null if 0-2."""
    private = os.dup(fd)  # non-inheritable: a process the preload starts does not get it
    if fd <= 2:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, fd)
        os.close(devnull)
    else:
        os.close(fd)
    return private


def serve_template(preload: Sequence[str], t_main_ns: int,
                   start_worker: Callable[[int], NoReturn],
                   control_fd: int | None = None) -> NoReturn:
    """Run a template: import ``preload``, send ``ready``, then fork on request.

    ``t_main_ns`` is the template's own first stamp (sent in ``ready``). In each child,
    ``start_worker(t_main_ns_of_the_child)`` serves the worker protocol on fds 0-2 and ends
    in SystemExit (``Worker._run_forked``). Exits 0 at the control channel's EOF, 70
    (EX_SOFTWARE) after ``preload_failed``."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # before the preload: no BLAS thread pools
    os.environ.pop("PROCPOOL_ZYGOTE_FD", None)  # the children are not templates
    if control_fd is None:
        control_fd = control_fd_from_environment()
    # The gc documentation's recipe for sharing pages with forked children: disable early in
    # the parent (no collections punching holes in the preloaded heap), freeze before each
    # fork, enable in the child.
    gc.disable()
    template = Template(start_worker, t_main_ns, _move_off_stdio(control_fd))
    if not template.preload(preload):
        sys.exit(EXIT_PRELOAD_FAILED)
    sys.exit(template.serve())
