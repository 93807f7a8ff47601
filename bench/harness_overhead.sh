#!/usr/bin/env bash
# The harness's own overhead: a closed loop of one caller against one fake worker whose
# service time is a fixed 1 ms. The recorded p50 should be within 5% (or 100 us) of 1 ms plus
# the raw echo round trip to the same worker, measured in the same run of this script.
# Prints the figures and the verdict; exits 0 either way (it measures, it does not gate).
set -euo pipefail
cd "$(dirname "$0")/.."
procpool=./build/release/harness/procpool
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

raw_p50_us=$("$procpool" roundtrip --worker fake --requests 5000 | awk '$1 == "fake" {print $5}')
cat > "$out/overhead.toml" <<'TOML'
name = "harness-overhead"
[worker]
service = { dist = "fixed", ms = 1.0 }
[pool]
size = 1
[load]
concurrency = 1
requests = 3000
start = "warm"
TOML
"$procpool" run "$out/overhead.toml" --quiet --out "$out/run" >/dev/null
/usr/bin/python3 - "$out/run/results.json" "$raw_p50_us" <<'PY'
import json, sys
case = json.load(open(sys.argv[1]))["cases"][0]
raw = float(sys.argv[2])
p50 = case["latency_us"]["p50"]
expected = 1000 + raw
allowed = max(0.05 * expected, 100)
print(f"raw echo round trip p50:        {raw:8.1f} us")
print(f"expected (1 ms + raw):          {expected:8.1f} us")
print(f"recorded p50, 1 ms service:     {p50:8.1f} us")
print(f"difference:                     {p50 - expected:+8.1f} us (allowed {allowed:.0f} us): "
      f"{'within' if abs(p50 - expected) <= allowed else 'OUTSIDE'}")
PY
