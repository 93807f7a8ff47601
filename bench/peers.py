#!/usr/bin/python3
"""The pools a Python user would otherwise pick for many tiny tasks, timed on this machine.

    bench/peers.py [--seconds 2.0 | --tasks N] [--only NAME ...] [--json]

A benchmark that compares procpool's streaming against its peers needs the peers' figures
from the same run, the same machine and the same interpreter (/usr/bin/python3, the one
procpool's Python workers run on): absolute figures on the shared 2-core VM move by up to 2x
between hours, so only ratios taken minutes apart mean anything. Each peer gets 2 worker
processes and echoes the small dict of pool/ASYNC.md section 1:

    peers/imap_chunksize1            multiprocessing.Pool(2).imap(echo, items, chunksize=1)
    peers/apply_async_8              multiprocessing.Pool(2).apply_async, 8 outstanding
    peers/process_pool_executor_64   concurrent.futures.ProcessPoolExecutor(2).submit,
                                     64 outstanding

"Outstanding" is a closed loop: a replacement is submitted as each task completes. --json
prints Google Benchmark's JSON layout (items_per_second, real_time in ns per task) so that
one script can read procpool's figures and these alike; it measures and never gates.

Start method: the platform default, not forced; the output names it. On Linux with 3.11 that
is fork. Measured here with --start-method (3 interleaved runs each, 1 s), spawn gave the same
as fork within the runs' spread: the method decides only how a worker starts, and the warm-up
pays for that before the clock starts. forkserver made multiprocessing.Pool 3-10x slower
(imap 1.6-2.6k/s against fork's 5-27k/s), so a Python whose default is forkserver (3.14 on
Linux) will report far lower Pool figures: the output's start method says when that happened.

multiprocessing.Pool's figures include its worker-handler thread, which wakes whenever a
reply is waiting in the result pipe (CPython's Pool waits on that pipe's reader) and so loops
over 20,000 times a second while tasks stream, taking about half a core from the 2: that is
the pool as a user gets it, so it is measured, not worked around.
"""

import argparse
import json
import multiprocessing
import os
import platform
import queue
import sys
import time
from concurrent.futures import ProcessPoolExecutor

WARM_SECONDS = 0.3


def echo(x):
    # Module level, so that pickle can name it to a worker.
    return x


def task(i):
    return {"n": i, "text": "hello", "values": [1, 2, 3]}


class Tally:
    """Tasks completed and the sum of their "n", so a lost or mixed-up reply is caught
    without keeping every reply."""

    def __init__(self):
        self.count = 0
        self.n_sum = 0

    def check(self, submitted, n_sum, name):
        if self.count != submitted or self.n_sum != n_sum:
            raise RuntimeError(f"{name}: {submitted} tasks submitted, {self.count} came back "
                               f"(sum of n {self.n_sum}, expected {n_sum})")


def run_imap(pool, seconds, tasks):
    """One timed stream; returns (tasks, elapsed seconds, CPU seconds of this process)."""
    stop = False

    def items():
        # Runs on the pool's task-handler thread, which reads ahead of the results by up to a
        # pipe's worth: the stream is stopped at the source and drained, and every task that
        # went in counts, so the stop does not discard work already paid for.
        i = 0
        while not stop and i != tasks:
            yield task(i)
            i += 1

    expected = 0
    deadline = None
    cpu0 = time.process_time()
    start = time.perf_counter()
    if seconds is not None:
        deadline = start + seconds
    for reply in pool.imap(echo, items(), chunksize=1):
        if reply["n"] != expected:  # imap keeps order, so any mix-up shows at once
            raise RuntimeError(f"imap: reply {reply['n']} where {expected} was due")
        expected += 1
        if deadline is not None and not stop and time.perf_counter() >= deadline:
            stop = True
    return expected, time.perf_counter() - start, time.process_time() - cpu0


def run_closed_loop(submit, outstanding, seconds, tasks, name):
    """Keeps `outstanding` tasks in flight until the time or the count is up, then drains.

    `submit(i, done)` sends task i and arranges for done(reply, error) to be called on
    completion. Completion callbacks run on the pool's own helper thread; they only queue
    the reply and this thread submits the replacement, as a caller would (and as the
    harness's submit load does): submitting from ProcessPoolExecutor's manager thread can
    block it on its own full wake-up pipe."""
    completions = queue.SimpleQueue()

    def done(reply, error=None):
        completions.put((reply, error))

    tally = Tally()
    submitted = 0
    n_sum = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else None

    def more():
        if tasks is not None:
            return submitted < tasks
        return time.perf_counter() < deadline

    while submitted < outstanding and more():
        submit(submitted, done)
        n_sum += submitted
        submitted += 1
    while tally.count < submitted:
        reply, error = completions.get()
        if error is not None:
            raise RuntimeError(f"{name}: a task failed") from error
        tally.count += 1
        tally.n_sum += reply["n"]
        if more():
            submit(submitted, done)
            n_sum += submitted
            submitted += 1
    elapsed = time.perf_counter() - start
    tally.check(submitted, n_sum, name)
    return submitted, elapsed, time.process_time() - cpu0


def warm_then_time(run, seconds, tasks):
    # The first tasks pay for starting the workers (ProcessPoolExecutor starts them on
    # demand), importing and first-call costs: none of that is steady-state throughput.
    run(WARM_SECONDS, None)
    return run(seconds, tasks)


def peer_imap(context, seconds, tasks):
    with context.Pool(2) as pool:
        result = warm_then_time(lambda s, t: run_imap(pool, s, t), seconds, tasks)
        # Pool's __exit__ only terminates (that is left for a failure, when a stream may
        # still be running); close and join so that the workers and the pool's three helper
        # threads are gone before the next peer forks.
        pool.close()
        pool.join()
        return result


def peer_apply_async(context, seconds, tasks):
    with context.Pool(2) as pool:
        def submit(i, done):
            pool.apply_async(echo, (task(i),), callback=done,
                             error_callback=lambda e: done(None, e))

        result = warm_then_time(
            lambda s, t: run_closed_loop(submit, 8, s, t, "apply_async"), seconds, tasks)
        pool.close()
        pool.join()
        return result


def peer_executor(context, seconds, tasks):
    # The executor's __exit__ is shutdown(wait=True), which joins its workers.
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        def submit(i, done):
            def finished(future):
                error = future.exception()
                done(None if error else future.result(), error)
            executor.submit(echo, task(i)).add_done_callback(finished)

        return warm_then_time(
            lambda s, t: run_closed_loop(submit, 64, s, t, "ProcessPoolExecutor"),
            seconds, tasks)


PEERS = {
    "peers/imap_chunksize1": peer_imap,
    "peers/apply_async_8": peer_apply_async,
    "peers/process_pool_executor_64": peer_executor,
}


def leftover_children():
    """This process's child pids still alive, from /proc (Linux); [] where unreadable."""
    pids = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
    except OSError:
        return []
    return sorted(set(pids))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Times multiprocessing.Pool and ProcessPoolExecutor, 2 workers each, "
                    "on many tiny echo tasks (tasks/s), for comparison with procpool.")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--seconds", type=float, default=2.0,
                        help="timed run per peer, after its warm-up (default 2.0)")
    amount.add_argument("--tasks", type=int, metavar="N",
                        help="time N tasks per peer instead of a duration")
    parser.add_argument("--only", action="append", metavar="NAME", default=[],
                        help="run only this peer (repeatable): " + ", ".join(PEERS)
                             + "; the 'peers/' prefix may be left out")
    parser.add_argument("--json", action="store_true",
                        help="print Google Benchmark-style JSON instead of a table")
    parser.add_argument("--start-method", choices=multiprocessing.get_all_start_methods(),
                        help="multiprocessing start method (default: the platform's, "
                             f"here {multiprocessing.get_start_method(allow_none=False)})")
    options = parser.parse_args(argv)
    if options.tasks is not None and options.tasks < 1:
        parser.error("--tasks must be at least 1")
    if options.tasks is None and options.seconds <= 0:
        parser.error("--seconds must be positive")

    names = []
    for name in options.only or PEERS:
        full = name if name.startswith("peers/") else "peers/" + name
        if full not in PEERS:
            parser.error(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        if full not in names:
            names.append(full)

    context = multiprocessing.get_context(options.start_method)
    seconds = None if options.tasks is not None else options.seconds
    load_before = os.getloadavg()
    if not options.json:
        # The load average is part of the figure on a shared machine: say it before the
        # numbers it qualifies.
        print(f"Python {platform.python_version()} ({sys.executable}), start method "
              f"{context.get_start_method()}, 2 workers per peer, {os.cpu_count()} CPUs, "
              "load average " + ", ".join(f"{x:.2f}" for x in load_before), flush=True)
    results = []
    for name in names:
        count, elapsed, cpu = PEERS[name](context, seconds, options.tasks)
        results.append((name, count, elapsed, cpu))
        if not options.json:
            print(f"{name:32} {count / elapsed:10.0f} tasks/s  {elapsed / count * 1e9:8.0f} "
                  f"ns/task  {count:7d} tasks in {elapsed:5.2f} s", flush=True)

    leftovers = leftover_children()
    context_info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host_name": platform.node(),
        "executable": sys.executable,
        "python_version": platform.python_version(),
        "start_method": context.get_start_method(),
        "num_cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in load_before],
        "workers": 2,
    }
    if options.json:
        print(json.dumps({
            "context": context_info,
            "benchmarks": [{
                "name": name,
                "run_name": name,
                "run_type": "iteration",
                "iterations": count,
                "real_time": elapsed / count * 1e9,
                # This process only (all its threads), not the workers.
                "cpu_time": cpu / count * 1e9,
                "time_unit": "ns",
                "items_per_second": count / elapsed,
            } for name, count, elapsed, cpu in results],
        }, indent=2))
    if leftovers:
        # fork leaves none; forkserver and spawn leave their server and resource tracker,
        # which end with this process. Anything else is a pool that was not joined.
        print(f"child processes still running at the end: {leftovers}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
