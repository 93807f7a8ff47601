"""What the knobs make the worker do: service time, per-request fault draws, and the faults.

Every per-request draw comes from one RNG seeded by the ``seed`` knob mixed with the
``PROCPOOL_WORKER_ID`` a pool gives each worker it starts, so a seed gives the same sequences
on every run while each worker of a pool, and each replacement, draws its own. The sequence
is this worker's own: it does not reproduce the fake worker's draws for the same seed.
"""

from __future__ import annotations

import collections
import math
import os
import random
import resource
import signal
import sys

from . import clock, framing

TYPE_CHECKING = False  # importing typing would add to every worker's init time
if TYPE_CHECKING:
    from typing import BinaryIO, NoReturn, Union

    from .knobs import Knobs

    # The worker passes its ReplyWriter, so that the broken frame follows the replies queued
    # before it; anything with write() and flush() will do.
    Writer = Union[BinaryIO, framing.ReplyWriter]

GARBAGE_PAYLOAD = b"\xff\xfeprocpool garbage: not JSON {"
WRONG_ID_OFFSET = 1_000_000
TRUNCATED_LENGTH = 100
TRUNCATED_BODY = b"truncated!"
OVERSIZE_LENGTH = 0xFFFFFFF0


# The faults drawn for one request, in the spec's draw order. (json has loaded collections
# already; typing.NamedTuple would cost the worker an extra import.)
Draw = collections.namedtuple(
    "Draw", ["crash", "hang", "garbage", "truncated", "oversize", "wrong_id", "slow"])


def worker_seed(seed: int) -> int:
    """The knob's seed mixed with the pool's worker id, the same way the fake worker mixes it."""
    try:
        worker_id = int(os.environ.get("PROCPOOL_WORKER_ID", "0"))
    except ValueError:
        worker_id = 0
    return (seed + worker_id * 0x9E3779B97F4A7C15) % 2**64


class Injector:
    """Service time and fault state for one initialised worker."""

    def __init__(self, knobs: Knobs):
        self.knobs = knobs
        self._rng = random.Random(worker_seed(knobs.seed))
        self._requests = 0
        self._retained: list[bytearray] = []

    def draw(self) -> Draw:
        """Count one request and draw its faults."""
        self._requests += 1
        knobs = self.knobs
        # Each draw is taken even when it cannot matter, so that a seed yields one sequence
        # whatever the probabilities are.
        draw = Draw(
            crash=self._chance(knobs.crash_probability),
            hang=self._chance(knobs.hang_probability),
            garbage=self._chance(knobs.garbage_probability),
            truncated=self._chance(knobs.truncated_probability),
            oversize=self._chance(knobs.oversize_probability),
            wrong_id=self._chance(knobs.wrong_id_probability),
            slow=self._chance(knobs.slow_probability),
        )
        if knobs.crash_after and self._requests > knobs.crash_after:
            draw = draw._replace(crash=True)
        return draw

    def service_time_ms(self) -> float:
        """Draw one request's service time from the configured distribution."""
        knobs = self.knobs
        if knobs.service_dist == "uniform":
            return self._rng.uniform(knobs.service_min_ms, knobs.service_max_ms)
        if knobs.service_dist == "exponential":
            return self._rng.expovariate(1.0 / knobs.service_ms) if knobs.service_ms else 0.0
        if knobs.service_dist == "lognormal":
            if not knobs.service_ms:
                return 0.0
            return self._rng.lognormvariate(math.log(knobs.service_ms), knobs.service_sigma)
        return knobs.service_ms

    def serve(self) -> None:
        """Draw one request's service time and spend it."""
        self.spend(self.service_time_ms())

    def spend(self, ms: float) -> None:
        """Spend ``ms`` of service time, sleeping or burning CPU as service_cpu says."""
        if ms > 0:
            if self.knobs.service_cpu:
                clock.burn_cpu_ms(ms)
            else:
                clock.sleep_ms(ms)

    def grow_memory(self) -> None:
        """Allocate memory_growth_kb KiB, write every byte so it is resident, and keep it."""
        size = round(self.knobs.memory_growth_kb * 1024)
        if size:
            self._retained.append(bytearray(b"\xa5") * size)

    def _chance(self, probability: float) -> bool:
        return self._rng.random() < probability


def crash(mode: str, exit_code: int) -> NoReturn:
    """End the process abruptly, as crash_mode says."""
    sys.stderr.flush()
    if mode == "segv":
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        # A deliberate crash has nothing worth a core file.
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        # faulthandler, if enabled, would print a traceback first; the default action is wanted.
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        signal.raise_signal(signal.SIGSEGV)
    elif mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    # Also the fallback should a signal above somehow be blocked.
    os._exit(exit_code)


def hang(mode: str) -> NoReturn:
    """Stop answering forever, sleeping (no CPU) or spinning (full CPU)."""
    if mode == "spin":
        while True:
            pass
    sleep_forever()


def sleep_forever() -> NoReturn:
    """Block forever without using CPU."""
    while True:
        signal.pause()


def write_truncated(stream: Writer) -> NoReturn:
    """Promise a 100-byte frame, deliver 10 bytes, and exit 0."""
    stream.write(framing.pack_length(TRUNCATED_LENGTH) + TRUNCATED_BODY)
    stream.flush()
    os._exit(0)


def write_oversize(stream: Writer) -> NoReturn:
    """Promise an impossibly large frame, then hang."""
    stream.write(framing.pack_length(OVERSIZE_LENGTH))
    stream.flush()
    sleep_forever()


def flood_stderr(mib: float) -> None:
    """Write ``mib`` MiB of text lines to stderr."""
    remaining = round(mib * 2**20)
    line = b"procpool_worker: stderr flood ".ljust(127, b".") + b"\n"
    block = line * 512
    sys.stderr.flush()
    out = sys.stderr.buffer
    while remaining > 0:
        chunk = block[:remaining]
        out.write(chunk)
        remaining -= len(chunk)
    out.flush()


def set_ignore_sigterm(ignore: bool) -> None:
    """Ignore SIGTERM, or restore its default action (terminate)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore else signal.SIG_DFL)


def spawn_grandchild() -> int:
    """Fork a process that sleeps forever in this process group; return its pid.

    Its stdio is /dev/null and it closes every other descriptor, so it holds none of the
    worker's pipes open: it outlives the worker unless the process group is killed.
    """
    pid = os.fork()
    if pid:
        return pid
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        sleep_forever()
    finally:
        os._exit(0)
