#!/usr/bin/env python3
"""Runs `procpool driver-check` on a driver and holds its verdicts to what they must be.

With --driver (a shipped driver under python/drivers): exit 0, and every check PASS or WARN.
With --broken: tests/harness/threaded_driver.py, conformant (every check PASS, its cold start
honoured) and broken each way it can be, each run exiting 1 with the FAIL line that names the
rule it broke; and the usage errors exit 2. Every run must leave no process behind: each is
marked by a variable in its environment, which every process it starts inherits.

    driver_check_test.py --procpool build/release/harness/procpool --driver python/drivers/multiprocessing_pool.py
    driver_check_test.py --procpool build/release/harness/procpool --broken
"""
import argparse
import concurrent.futures
import os
import pathlib
import re
import subprocess
import sys
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
STAND_IN = HERE / "threaded_driver.py"
CHECKS = 17
RESULT = re.compile(r"^(PASS|WARN|FAIL|SKIP) ")
SUMMARY = re.compile(r"^driver-check: \d+ passed, \d+ warned, \d+ failed, \d+ skipped ")
MARK = "PROCPOOL_DRIVER_CHECK_TEST_MARK"

# The stand-in's ways of breaking the protocol, each with the lines its run must print.
BROKEN = {
    "noise": [r"^FAIL start: the driver wrote a line that is not protocol \(not a JSON object\): "
              r"`threaded driver ready`$"],
    "bad-worker-line": [r"^FAIL start: the driver wrote a line that is not protocol "
                        r"\(driver's worker line: 'pid' must be an integer >= 1\): `\{\"event\": \"worker\""],
    "malformed-done": [r"^FAIL echo: the done line for id 1 is not protocol \(driver's done line: "
                       r".*\): `\{\"event\": \"done\", \"id\": 1, ",
                       r"^PASS stats "],  # the checks before it waited for every done line
    "duplicate-done": [r"^FAIL one done per id: a second done line for id \d+ \(\w+\): `\{\"event\": \"done\""],
    "in-order": [r"^FAIL out-of-order completion: the done line of a 400 ms sleep \(id \d+\) came "
                 r"before that of the echo submitted after it"],
    "crash": [r"^FAIL unknown command: the driver exited with code 3 before the done line for id \d+ "
              r"\(no_such_command\) came$",
              r"^    stderr: KeyError: 'no_such_command'$",
              r"^SKIP stats: not run: the driver failed \"unknown command\"$"],
    "hang-on-stop": [r"^FAIL stop: the driver did not exit within 2000 ms after its stopped line$"],
}


def leftovers(mark):
    """The pids of live processes whose environment holds `mark`."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours
    return found


def run(procpool, args, timeout=120):
    """Runs procpool with args; returns (exit status, stdout lines, stderr). Fails the test when
    a process it started outlives it."""
    mark = uuid.uuid4().hex
    env = dict(os.environ, **{MARK: mark})
    started = time.monotonic()
    proc = subprocess.run([procpool, *args], capture_output=True, text=True, env=env, timeout=timeout)
    took = time.monotonic() - started
    until = time.monotonic() + 2
    while leftovers(mark) and time.monotonic() < until:
        time.sleep(0.05)
    left = leftovers(mark)
    if left:
        raise AssertionError(f"procpool {' '.join(args)} left processes behind: {left}")
    return proc.returncode, proc.stdout.splitlines(), proc.stderr, took


def problems_of_shipped(procpool, driver):
    status, lines, err, took = run(procpool, ["driver-check", "--", sys.executable, driver])
    print("\n".join(lines))
    print(f"({took:.1f} s)")
    problems = []
    if status != 0:
        problems.append(f"exit {status}, not 0; stderr: {err}")
    results = [l for l in lines if RESULT.match(l)]
    if len(results) != CHECKS:
        problems.append(f"{len(results)} check lines, not {CHECKS}")
    problems += [f"not PASS or WARN: {l}" for l in results if not l.startswith(("PASS ", "WARN "))]
    if not lines or not SUMMARY.match(lines[-1]):
        problems.append("the last line is not the summary")
    return problems


def problems_of_stand_in(procpool, mode):
    args = ["driver-check"]
    if mode == "hang-on-stop":
        args += ["--timeout-ms", "2000"]  # short: the stop step waits it out; long enough for a slow box
    args += ["--", sys.executable, str(STAND_IN), "--break", mode]
    status, lines, err, took = run(procpool, args)
    out = "\n".join(lines)
    problems = []
    if mode == "none":
        if status != 0:
            problems.append(f"exit {status}, not 0")
        results = [l for l in lines if RESULT.match(l)]
        if len(results) != CHECKS or not all(l.startswith("PASS ") for l in results):
            problems.append(f"not {CHECKS} PASS lines")
        if not any(l.startswith('PASS cold start ("warm": false honoured') for l in lines):
            problems.append("the honoured cold start is not a PASS")
    else:
        if status != 1:
            problems.append(f"exit {status}, not 1")
        for pattern in BROKEN[mode]:
            if not any(re.search(pattern, l) for l in lines):
                problems.append(f"no line matches {pattern}")
    if not lines or not SUMMARY.match(lines[-1]):
        problems.append("the last line is not the summary")
    return [f"--break {mode} ({took:.1f} s): {p}\n{out}\n{err}" for p in problems]


def problems_of_usage(procpool):
    problems = []
    for args in (["driver-check"], ["driver-check", "--", "/nonexistent/driver"],
                 ["driver-check", "--timeout-ms", "0", "--", sys.executable, str(STAND_IN)]):
        status, _, err, _ = run(procpool, args)
        if status != 2:
            problems.append(f"procpool {' '.join(args)}: exit {status}, not 2 (usage error); {err}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procpool", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--driver", help="a shipped driver script, run under this interpreter")
    group.add_argument("--broken", action="store_true", help="the stand-in, conformant and broken")
    args = parser.parse_args()
    if args.driver:
        problems = problems_of_shipped(args.procpool, args.driver)
    else:
        problems = problems_of_usage(args.procpool)
        # Three runs at once (each runs its own four drivers at once): quick, and light enough
        # for a 2-core machine.
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            for found in pool.map(lambda m: problems_of_stand_in(args.procpool, m), ["none", *BROKEN]):
                problems += found
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
