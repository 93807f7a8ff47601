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
# Each ratio is taken within a round and the median over the rounds is the figure (the best
# rounds' ratio is shown beside it). Environment: POOL_BENCH (default
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

"$python" - "$dir" <<'PY'
import json, os, re, statistics, sys

folder = sys.argv[1]
rounds = {}  # round number -> {name: items per second}
load = None
for name in os.listdir(folder):
    match = re.fullmatch(r"(pool|peers)-(\d+)\.json", name)
    if not match:
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
        rounds.setdefault(int(match.group(2)), {})[key] = float(b["items_per_second"])

def values(name):
    return [r[name] for r in rounds.values() if name in r]

def spread(name):
    v = values(name)
    return f"{min(v) / 1e3:.1f}..{max(v) / 1e3:.1f}k" if v else "n/a"

# A ratio is taken within each round, where both sides ran seconds apart under the same
# background load, and the median of those is the figure; the ratio of the two sides' best
# rounds is shown beside it, as what the machine allows when nothing interferes.
def paired(num, den):
    ratios = [r[num] / r[den] for r in rounds.values() if r.get(num) and r.get(den)]
    return statistics.median(ratios) if ratios else None

def best(num, den):
    a, b = values(num), values(den)
    return max(a) / max(b) if a and b else None

py_map = "BM_PoolMapEcho_Python/workers:2"
rows = []
def row(metric, num, den, goal, ok):
    r, top = paired(num, den), best(num, den)
    verdict = "n/a" if r is None else ("PASS" if ok(r) else "MISS")
    rows.append((metric, "n/a" if r is None else f"{r:.2f}", "n/a" if top is None else f"{top:.2f}",
                 f"{num} {spread(num)}/s, {den} {spread(den)}/s", goal,
                 verdict if goal != "(info)" else "-"))

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

loadtxt = ", ".join(f"{x:.2f}" for x in load) if load else "?"
print(f"streams of tiny tasks on {os.cpu_count()} CPUs, load average {loadtxt}; {len(rounds)} "
      f"rounds: ratio = median of the per-round ratios, best = best round / best round")
headers = ("metric", "ratio", "best", "detail (items/s, range over the rounds)", "goal", "verdict")
widths = [max(len(str(x[i])) for x in rows + [headers]) for i in range(len(headers))]
line = "  ".join("-" * w for w in widths)
print(line)
print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
print(line)
for x in rows:
    print("  ".join(str(v).ljust(w) for v, w in zip(x, widths)))
print(line)
for name in sorted({n for r in rounds.values() for n in r}):
    v = values(name)
    print(f"{name}: median {statistics.median(v) / 1e3:.1f}k/s over {len(v)} rounds")
PY
