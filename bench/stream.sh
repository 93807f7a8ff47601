#!/usr/bin/env bash
# Streams of tiny tasks: procpool's pipelined map and submit against their peers, measured
# in the same run, and the ratios the goals are stated in, with PASS/MISS. It measures; it
# does not gate: the exit status is 0 whatever the numbers (1 only when a binary is missing).
#
#   bench/stream.sh            # ~2 minutes on 2 cores
#   REPS=9 bench/stream.sh     # longer, steadier
#
# REPS rounds (default 5), each running, one after the other so that they see the same
# background load:
#   1. pool_bench's streaming benchmarks: the raw pipelined loop on one fake worker, map and
#      submit on a pool of one fake worker 16 deep, and map on 2 Python workers;
#   2. bench/peers.py: multiprocessing.Pool.imap(chunksize=1), apply_async with 8
#      outstanding and ProcessPoolExecutor with 64 outstanding, on 2 processes, the same dict.
# Medians over the rounds are compared. Environment: POOL_BENCH (default
# build/release/bench/pool_bench), MIN_TIME (--benchmark_min_time in seconds, default 1),
# PEERS_SECONDS (default 2), REPS, PYTHON (default /usr/bin/python3).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bin="${POOL_BENCH:-$root/build/release/bench/pool_bench}"
python="${PYTHON:-/usr/bin/python3}"
reps="${REPS:-5}"

require_built "$bin" --target pool_bench

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

for ((i = 1; i <= reps; i++)); do
  echo "round $i of $reps" >&2
  "$bin" --benchmark_filter='Pipelined|Map|Submit' --benchmark_min_time="${MIN_TIME:-1}" \
    --benchmark_out="$dir/pool-$i.json" --benchmark_out_format=json >/dev/null 2>"$dir/pool-$i.err" ||
    { echo "pool_bench failed:"; cat "$dir/pool-$i.err"; }
  "$python" "$root/bench/peers.py" --json --seconds "${PEERS_SECONDS:-2}" >"$dir/peers-$i.json" ||
    echo "peers.py failed in round $i"
done

"$python" - "$dir" "$reps" <<'PY'
import json, os, statistics, sys

folder, reps = sys.argv[1], int(sys.argv[2])
samples = {}  # name -> items per second, one per round
load = None
for name in sorted(os.listdir(folder)):
    if not name.endswith(".json"):
        continue
    try:
        with open(os.path.join(folder, name)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        continue
    load = load or doc.get("context", {}).get("load_avg")
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred") or "items_per_second" not in b:
            continue
        key = b.get("run_name", b["name"]).replace("/real_time", "")
        samples.setdefault(key, []).append(float(b["items_per_second"]))

def median(name):
    v = samples.get(name)
    return statistics.median(v) if v else None

def spread(name):
    v = samples.get(name)
    return f"{min(v) / 1e3:.1f}..{max(v) / 1e3:.1f}k" if v else "n/a"

py_map = "BM_PoolMapEcho_Python/workers:2"
rows = []
def row(metric, num, den, goal, ok):
    a, b = median(num), median(den)
    r = a / b if a and b else None
    verdict = "n/a" if r is None else ("PASS" if ok(r) else "MISS")
    rows.append((metric, "n/a" if r is None else f"{r:.2f}",
                 f"{num} {spread(num)}/s, {den} {spread(den)}/s", goal, verdict))

row("Python streaming / imap(chunksize=1)", py_map, "peers/imap_chunksize1", ">= 1.5",
    lambda r: r >= 1.5)
row("Python streaming / ProcessPoolExecutor", py_map, "peers/process_pool_executor_64",
    ">= 5", lambda r: r >= 5)
row("Python streaming / apply_async, 8 outstanding", py_map, "peers/apply_async_8", "(info)",
    lambda r: True)
row("fake worker: pool map / raw pipelined loop", "BM_PoolMapEcho/depth:16",
    "BM_RawPipelinedEcho/window:16", ">= 0.90", lambda r: r >= 0.90)
row("fake worker: pool submit ring / raw pipelined loop", "BM_PoolSubmitEcho/window:16",
    "BM_RawPipelinedEcho/window:16", "(info)", lambda r: True)
rows = [r[:4] + (r[4] if r[3] != "(info)" else "-",) for r in rows]

loadtxt = ", ".join(f"{x:.2f}" for x in load) if load else "?"
print(f"streams of tiny tasks on {os.cpu_count()} CPUs, load average {loadtxt}; medians of "
      f"{reps} rounds (range shown per side)")
headers = ("metric", "ratio", "detail (items/s)", "goal", "verdict")
widths = [max(len(str(x[i])) for x in rows + [headers]) for i in range(5)]
line = "  ".join("-" * w for w in widths)
print(line)
print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
print(line)
for x in rows:
    print("  ".join(str(v).ljust(w) for v, w in zip(x, widths)))
print(line)
for name in sorted(samples):
    print(f"{name}: median {median(name) / 1e3:.1f}k/s over {len(samples[name])} rounds")
PY
