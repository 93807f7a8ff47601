#!/usr/bin/env bash
# What the zygote start mode buys: four figures, each a ratio of worker.start_mode "zygote"
# to "spawn" measured in the same run of this script, with PASS/MISS against its goal. It
# measures; it does not gate: the exit status is 0 whatever the numbers (1 only when the
# procpool binary is missing, 2 when the preload could not be written; a run that fails is
# reported with its output, and its figures show as n/a).
#
#   bench/zygote.sh              # about a minute on 2 cores
#   REPS=5 bench/zygote.sh       # steadier
#
# Three scenarios, written to a temporary directory and run with `procpool run`, each
# sweeping worker.start_mode over ["spawn", "zygote"] with REPS (default 3) repetitions:
#   python  8 Python workers preloading a generated module (bench/heavy_module.py:
#           HEAVY_CPU_MS (350) of CPU and HEAVY_MIB (80) MiB of objects at import), cold pool,
#           parallel prewarm, every start at once: (a) ready_ms and (c) the workers' mean
#           USS (memory.uss_kib.mean), medians over the repetitions;
#   crash   2 Python workers with the same preload that crash (exit) after CRASH_AFTER (4)
#           requests each, restart backoff 0: (b) for every worker that exited with
#           exit_kind "fault", the time from its exited event to the replacement's ready
#           event in the same slot (from starting to idle, "init done", or straight to busy
#           when a caller was waiting); the median over all crashes of all repetitions;
#   fake    1,024 fake workers, max_concurrent_starts 1024, cold pool, parallel prewarm,
#           the load held back until all are ready (load.start "warm"): (d) ready_ms,
#           medians over the repetitions.
# Environment: PROCPOOL (default build/release/harness/procpool), REPS, HEAVY_CPU_MS,
# HEAVY_MIB, CRASH_AFTER, KEEP=1 (keep the scenarios and results and print where).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
procpool="${PROCPOOL:-$root/build/release/harness/procpool}"
reps="${REPS:-3}"
heavy_cpu_ms="${HEAVY_CPU_MS:-350}"
heavy_mib="${HEAVY_MIB:-80}"
crash_after="${CRASH_AFTER:-4}"

require_built "$procpool"

work="$(mktemp -d)"
cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then echo "scenarios and results kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The preload, compiled now: otherwise the first importer writes its .pyc (the template once,
# but every spawned worker racing for it), and the figure would include the compile.
"$root/bench/heavy_module.py" "$work/preload" --cpu-ms "$heavy_cpu_ms" --mib "$heavy_mib" >/dev/null || exit 2
/usr/bin/python3 -m compileall -q "$work/preload" || exit 2
# The harness puts the SDK first on the workers' PYTHONPATH and keeps the caller's after it.
export PYTHONPATH="$work/preload${PYTHONPATH:+:$PYTHONPATH}"

common_sweep="repetitions = $reps
[sweep]
\"worker.start_mode\" = [\"spawn\", \"zygote\"]"

cat > "$work/python.toml" <<EOF
name = "zygote-bench-python"
seed = 12
$common_sweep
[worker]
kind = "python"
preload = ["procpool_heavy"]
service = { dist = "fixed", ms = 10.0 }
[pool]
size = 8
prewarm = "parallel"
max_concurrent_starts = 8
checkout_timeout_ms = 20000
# A cold load that outlasts the slowest start (a case whose load ended first has no
# ready_ms); its requests sleep, leaving the CPU to the starts.
[load]
concurrency = 8
requests = 2400
start = "cold"
EOF

cat > "$work/crash.toml" <<EOF
name = "zygote-bench-crash"
seed = 13
$common_sweep
[worker]
kind = "python"
preload = ["procpool_heavy"]
service = { dist = "fixed", ms = 1.0 }
# No restart backoff: the figure is the replacement's start, not the pool's waiting.
[pool]
size = 2
prewarm = "parallel"
restart_backoff_ms = 0
checkout_timeout_ms = 20000
[load]
concurrency = 2
requests = 60
start = "cold"
[faults]
crash_after = $crash_after
crash_mode = "exit"
EOF

cat > "$work/fake.toml" <<EOF
name = "zygote-bench-fake"
seed = 14
$common_sweep
[worker]
kind = "fake"
service = { dist = "fixed", ms = 1.0 }
[pool]
size = 1024
prewarm = "parallel"
max_concurrent_starts = 1024
checkout_timeout_ms = 30000
# warm: the load waits until every worker is ready, so it neither ends before the last start
# (no ready_ms) nor competes with the starts; ready_ms counts from the pool's creation either way.
[load]
concurrency = 4
requests = 100
start = "warm"
EOF

sidfile="$work/sid"
leftovers=""
# Runs procpool in a session of its own, so that anything it leaves behind (a template, a
# worker, a worker's child) can be found afterwards by session id.
run_scenario() {
  local name="$1"
  echo "running $name (${reps} repetitions of spawn and zygote)" >&2
  setsid -w bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$sidfile" \
    "$procpool" run "$work/$name.toml" --quiet --out "$work/$name" >"$work/$name.log" 2>&1
  local status=$?
  # 0: passed, 1: some assertion or case failed (still measured); anything else: no results.
  [[ $status -gt 1 ]] && { echo "procpool run $name exited with status $status:" >&2; cat "$work/$name.log" >&2; }
  local sid
  sid="$(cat "$sidfile" 2>/dev/null || true)"
  if [[ -n "$sid" ]]; then
    sleep 0.5  # let the last reaps land
    leftovers+="$(ps -eo sid=,pid=,ppid=,args= | awk -v s="$sid" '$1 == s')"
  fi
}

run_scenario python
run_scenario crash
run_scenario fake

/usr/bin/python3 - "$work" "$reps" "$heavy_cpu_ms" "$heavy_mib" "$leftovers" <<'EOF'
import json
import os
import statistics
import sys

work, reps, cpu_ms, mib, leftovers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]


def cases(name):
    path = os.path.join(work, name, "results.json")
    try:
        with open(path) as f:
            return json.load(f)["cases"]
    except (OSError, ValueError, KeyError) as e:
        print(f"no results in {path} ({e})")
        return []


def mode_of(case):
    return case.get("params", {}).get("worker.start_mode")


def by_mode(name):
    out = {"spawn": [], "zygote": []}
    for case in cases(name):
        if case.get("error"):
            print(f"{name} case {case.get('id')}: {case['error'].get('type')}: {case['error'].get('message')}")
            continue
        if mode_of(case) in out:
            out[mode_of(case)].append(case)
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def crash_to_ready_ms(case):
    """Per crash: its exited event (exit_kind fault) to the replacement's ready event, the
    first from "starting" of the next worker in the same slot. Ready is "idle" ("init
    done") or, when a caller was already waiting for a worker, "busy" ("handed to a waiting
    caller"): the crash load keeps callers waiting, so most replacements go straight to busy."""
    events = sorted((e for e in case.get("timelines", {}).get("workers", [])
                     if e.get("role", "worker") == "worker"), key=lambda e: e["t_ns"])
    out = []
    for i, e in enumerate(events):
        if e.get("to") != "exited" or e.get("exit_kind") != "fault":
            continue
        for later in events[i + 1:]:
            if (later["slot"] == e["slot"] and later["worker"] != e["worker"]
                    and later.get("from") == "starting" and later.get("to") in ("idle", "busy")):
                out.append((later["t_ns"] - e["t_ns"]) / 1e6)
                break
    return out


python, crash, fake = by_mode("python"), by_mode("crash"), by_mode("fake")
ready = {m: median(c.get("ready_ms") for c in python[m]) for m in python}
uss = {m: median(c.get("memory", {}).get("uss_kib", {}).get("mean") for c in python[m])
       for m in python}
crashes = {m: [ms for c in crash[m] for ms in crash_to_ready_ms(c)] for m in crash}
restart = {m: median(crashes[m]) for m in crashes}
fake_ready = {m: median(c.get("ready_ms") for c in fake[m]) for m in fake}


def ratio(pair):
    a, b = pair["zygote"], pair["spawn"]
    return None if a is None or b is None or b == 0 else a / b


def fmt(x, spec, unit=""):
    return "n/a" if x is None else format(x, spec) + unit


rows = []
for label, pair, spec, unit, goal in (
        (f"a. 8 Python workers ready (preload {cpu_ms} ms)", ready, ".0f", " ms", 0.3),
        ("b. crashed Python worker replaced, crash to ready", restart, ".1f", " ms", 0.1),
        ("c. USS per Python worker", {m: v and v / 1024 for m, v in uss.items()}, ".1f", " MiB", 0.5),
        ("d. 1,024 fake workers ready", fake_ready, ".0f", " ms", 0.5)):
    r = ratio(pair)
    rows.append((label, fmt(pair["spawn"], spec, unit), fmt(pair["zygote"], spec, unit),
                 fmt(r, ".3f"), f"<= {goal}", "n/a" if r is None else ("PASS" if r <= goal else "MISS")))

headers = ("figure", "spawn", "zygote", "ratio", "goal", "verdict")
widths = [max(len(str(x[i])) for x in rows + [headers]) for i in range(len(headers))]
line = "  ".join("-" * w for w in widths)
load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
print(f"zygote vs spawn on {os.cpu_count()} CPUs, load average {load} at the end; "
      f"medians of {reps} repetitions (a, c, d) and of every crash (b); "
      f"preload {mib} MiB, {cpu_ms} ms CPU")
print(line)
print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
print(line)
for x in rows:
    print("  ".join(str(v).ljust(w) for v, w in zip(x, widths)))
print(line)
detail = lambda xs: ", ".join("-" if x is None else f"{x:.0f}" for x in xs) or "none"
for m in ("spawn", "zygote"):
    print(f"{m}: ready_ms a [{detail(c.get('ready_ms') for c in python[m])}], "
          f"d [{detail(c.get('ready_ms') for c in fake[m])}]; "
          f"{len(crashes[m])} crashes replaced, ms [{detail(sorted(crashes[m]))}]")
print()
if leftovers.strip():
    print("LEFTOVER PROCESSES from the runs' sessions:")
    print(leftovers)
else:
    print("no process left behind (checked by session id)")
EOF
exit 0
