"""The worker's knobs: service-time and fault settings, named as in fake_worker/knobs.hpp.

Every knob is both a command-line flag (``--name-with-dashes``) and an init-args key
(``name_with_underscores``); init args override flags. Names, types and defaults are the
fake worker's, so one scenario can drive either worker: tests/test_knob_table.py holds this
list to the C++ knob table (fake_worker/include/fake_worker/knob_table.hpp).
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap

TYPE_CHECKING = False  # importing typing would add to every worker's init time
if TYPE_CHECKING:
    from typing import Any, Iterator

SERVICE_DISTS = ("fixed", "uniform", "exponential", "lognormal")
CRASH_MODES = ("exit", "segv", "kill")
HANG_MODES = ("sleep", "spin")

_UINT64_MAX = 2**64 - 1
_HELP_WIDTH = 78


class KnobError(ValueError):
    """An unknown knob, or a knob whose value has the wrong type or is out of range."""


def _show(value: Any) -> str:
    return json.dumps(value, default=repr)


def _show_default(value: Any) -> str:
    return value if isinstance(value, str) else _show(value)


class _Number:
    """A finite double within [minimum, maximum]."""

    def __init__(self, minimum: float = 0.0, maximum: float | None = None, metavar: str = "X"):
        self.minimum = minimum
        self.maximum = maximum
        self.metavar = metavar

    def describe(self) -> str:
        if self.maximum is None:
            return f"a number >= {self.minimum:g}"
        return f"a number in [{self.minimum:g}, {self.maximum:g}]"

    def check(self, name: str, value: Any) -> float:
        # bool is an int subclass, but JSON true is not a number.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KnobError(f"knob '{name}' must be {self.describe()}, got {_show(value)}")
        number = float(value)
        if not (math.isfinite(number) and number >= self.minimum
                and (self.maximum is None or number <= self.maximum)):
            raise KnobError(f"knob '{name}' must be {self.describe()}, got {_show(value)}")
        return number

    def parse(self, name: str, text: str) -> float:
        try:
            return self.check(name, float(text))
        except (ValueError, OverflowError) as error:
            raise argparse.ArgumentTypeError(str(error) if isinstance(error, KnobError)
                                             else f"{text!r} is not a number") from None


class _Integer:
    """An integer within [minimum, maximum]."""

    def __init__(self, minimum: int, maximum: int, metavar: str = "N"):
        self.minimum = minimum
        self.maximum = maximum
        self.metavar = metavar

    def describe(self) -> str:
        return f"an integer in [{self.minimum}, {self.maximum}]"

    def check(self, name: str, value: Any) -> int:
        if (isinstance(value, bool) or not isinstance(value, int)
                or not self.minimum <= value <= self.maximum):
            raise KnobError(f"knob '{name}' must be {self.describe()}, got {_show(value)}")
        return value

    def parse(self, name: str, text: str) -> int:
        try:
            return self.check(name, int(text))
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error) if isinstance(error, KnobError)
                                             else f"{text!r} is not an integer") from None


class _Choice:
    """One of a fixed set of strings."""

    def __init__(self, choices: tuple[str, ...]):
        self.choices = choices
        self.metavar = "{" + ",".join(choices) + "}"

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise KnobError(f"knob '{name}' must be one of {', '.join(self.choices)}, "
                            f"got {_show(value)}")
        return value

    def parse(self, name: str, text: str) -> str:
        try:
            return self.check(name, text)
        except KnobError as error:
            raise argparse.ArgumentTypeError(str(error)) from None


class _Flag:
    """A boolean; on the command line ``--flag`` alone means true."""

    metavar = "BOOL"
    _WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise KnobError(f"knob '{name}' must be true or false, got {_show(value)}")
        return value

    def parse(self, name: str, text: str) -> bool:
        try:
            return self._WORDS[text.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"knob '{name}' must be true or false, got {text!r}") from None


_MS = _Number(metavar="MS")
_PROBABILITY = _Number(0.0, 1.0, metavar="P")
_NON_NEGATIVE = _Number()
_UINT = _Integer(0, _UINT64_MAX)
_FLAG = _Flag()


class Knob:
    """Declares one attribute of Knobs: its default, the kind of value, and help text."""

    def __init__(self, default: Any, kind: Any, help: str, *, on_command_line: bool = True):
        self.default = default
        self.kind = kind
        self.help = help
        self.on_command_line = on_command_line
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, knobs: Knobs | None, owner: type | None = None) -> Any:
        if knobs is None:
            return self
        return knobs._values[self.name]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class Knobs:
    """One complete, validated set of knob values, read as attributes (``knobs.seed``).

    Construction validates every value, raising KnobError, so an instance always holds
    values the worker can act on. Instances are immutable; ``override`` makes new ones.
    """

    __slots__ = ("_values",)

    startup_ms = Knob(
        0.0, _MS, "not applicable: this worker's start-up is a real interpreter's, which is "
        "what is measured; accepted in init args so scenarios can share knobs with the fake "
        "worker, and ignored", on_command_line=False)
    init_ms = Knob(0.0, _MS, "delay inside the handshake before replying")
    service_dist = Knob(
        "fixed", _Choice(SERVICE_DISTS), "distribution of the per-request service time")
    service_ms = Knob(
        0.0, _MS, "service time: fixed: the time; exponential: the mean; lognormal: the median")
    service_min_ms = Knob(0.0, _MS, "uniform service time lower bound")
    service_max_ms = Knob(0.0, _MS, "uniform service time upper bound")
    service_sigma = Knob(0.5, _NON_NEGATIVE, "lognormal service time sigma")
    service_cpu = Knob(False, _FLAG, "burn CPU instead of sleeping for the service time")
    seed = Knob(1, _UINT, "seed for service times and fault draws (mixed with PROCPOOL_WORKER_ID)")
    crash_after = Knob(
        0, _UINT, "0 = off; after answering N requests, the next request crashes the worker")
    crash_probability = Knob(0.0, _PROBABILITY, "per request: crash")
    crash_mode = Knob(
        "exit", _Choice(CRASH_MODES),
        "exit: _exit(crash_exit_code); segv: raise SIGSEGV; kill: SIGKILL self")
    crash_exit_code = Knob(
        3, _Integer(0, 255, metavar="CODE"), "exit code of crash_mode exit and exit_during_init")
    hang_probability = Knob(0.0, _PROBABILITY, "per request: stop answering forever")
    hang_mode = Knob(
        "sleep", _Choice(HANG_MODES), "sleep: hang using no CPU; spin: hang in a busy loop")
    slow_probability = Knob(0.0, _PROBABILITY, "per request: add slow_ms before replying")
    slow_ms = Knob(1000.0, _MS, "extra delay of a slow reply")
    garbage_probability = Knob(
        0.0, _PROBABILITY, "per request: reply with a well-framed payload that is not JSON")
    truncated_probability = Knob(
        0.0, _PROBABILITY,
        "per request: write a length prefix of 100 bytes, then 10 bytes, then exit(0)")
    oversize_probability = Knob(
        0.0, _PROBABILITY, "per request: write a length prefix of 0xFFFFFFF0, then hang")
    wrong_id_probability = Knob(0.0, _PROBABILITY, "per request: reply with id + 1000000")
    exit_during_init = Knob(
        False, _FLAG, "exit with crash_exit_code when init arrives, without replying")
    never_ready = Knob(False, _FLAG, "on init, never reply")
    stderr_flood_mb = Knob(
        0.0, _NON_NEGATIVE, "during init, write this many MiB to stderr before replying")
    memory_growth_kb = Knob(
        0.0, _NON_NEGATIVE, "per request, allocate and touch this many KiB and keep them")
    ignore_sigterm = Knob(False, _FLAG, "ignore SIGTERM (from start-up on)")
    grandchild = Knob(
        False, _FLAG, "at start-up, fork a grandchild that sleeps forever in the worker's "
        "process group, with stdio on /dev/null")

    def __init__(self, **values: Any):
        for name in values:
            if not isinstance(vars(Knobs).get(name), Knob):
                raise KnobError(f"unknown knob '{name}'")
        # Checking also normalises, e.g. a JSON integer given for a double knob.
        self._values = {
            knob.name: knob.kind.check(knob.name, values.get(knob.name, knob.default))
            for knob in all_knobs()
        }
        if self.service_min_ms > self.service_max_ms:
            raise KnobError(f"service_min_ms ({self.service_min_ms:g}) is greater than "
                            f"service_max_ms ({self.service_max_ms:g})")

    def override(self, args: Any) -> Knobs:
        """Return these knobs overridden by init args (a JSON object, or None for none).

        Raises KnobError for an unknown name or a bad value.
        """
        if args is None:
            return self
        if not isinstance(args, dict):
            raise KnobError(f"init args must be an object of knobs, got {_show(args)}")
        return Knobs(**{**self._values, **args})

    def as_dict(self) -> dict[str, Any]:
        """The values by knob name, as init args would give them."""
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Knobs) and self._values == other._values

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"Knobs({values})"


def all_knobs() -> Iterator[Knob]:
    """Every knob, in the spec's order."""
    return (value for value in vars(Knobs).values() if isinstance(value, Knob))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a ``--name-with-dashes`` option for every knob that applies on the command line."""
    group = parser.add_argument_group("knobs", textwrap.fill(
        "Each can also be set by the init request's args (key name_with_underscores), which "
        "override these flags.", width=_HELP_WIDTH - 2))
    for knob in all_knobs():
        if not knob.on_command_line:
            continue
        options = {"nargs": "?", "const": True} if isinstance(knob.kind, _Flag) else {}
        group.add_argument(
            knob.flag,
            dest=knob.name,
            default=knob.default,
            type=lambda text, knob=knob: knob.kind.parse(knob.name, text),
            metavar=knob.kind.metavar,
            help=f"{knob.help} (default: {_show_default(knob.default)})",
            **options,
        )


def describe_not_on_command_line() -> str:
    """Help text for the knobs that ``add_arguments`` leaves out."""
    return "".join(
        textwrap.fill(f"{knob.name}: {knob.help}", width=_HELP_WIDTH,
                      initial_indent="  ", subsequent_indent="    ") + "\n"
        for knob in all_knobs() if not knob.on_command_line)


def from_arguments(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> Knobs:
    """Build Knobs from parsed arguments; a bad combination is a usage error (exit 2)."""
    values = {knob.name: getattr(namespace, knob.name)
              for knob in all_knobs() if knob.on_command_line}
    try:
        return Knobs(**values)
    except KnobError as error:
        parser.error(str(error))
