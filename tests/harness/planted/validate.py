#!/usr/bin/env python3
"""Planted-case validation of the diagnosis.

Each scenario in this directory has a cause known by construction, named on its first line
(`# expect: VERDICT[, VERDICT...]` or `# expect: none`). This runs every scenario R times with
`procpool run`, compares the verdicts of each run with the planted ones, and prints, per
verdict, precision and recall over the runs (a run "shows" a verdict when it gave it to at
least one request, or, for sweep-level verdicts, to the sweep).

  tests/harness/planted/validate.py --repetitions 10          # the full table
  tests/harness/planted/validate.py --only healthy --repetitions 20
  tests/harness/planted/validate.py --repetitions 1 --check   # what CI runs

With --check, exits 1 unless every run's most frequent verdict is a planted one and no run
shows an architectural verdict that was not planted (the mistake that would send a team to
rewrite a pool that is fine).
"""
import argparse
import collections
import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
DEFAULT_PROCPOOL = REPO / "build" / "release" / "harness" / "procpool"


def planted(path):
    first = path.read_text().splitlines()[0]
    if not first.startswith("# expect:"):
        raise SystemExit(f"{path}:1: the first line must be '# expect: VERDICT, ...' or '# expect: none'")
    names = [v.strip() for v in first.split(":", 1)[1].split(",")]
    return set() if names == ["none"] else set(names)


def run_once(procpool, scenario, out_dir):
    # From the repository's root: the external cases name their drivers by relative path.
    result = subprocess.run([str(procpool), "run", str(scenario), "--out", str(out_dir), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    if result.returncode not in (0, 1):
        raise SystemExit(f"procpool run {scenario} exited {result.returncode}:\n{result.stderr}")
    with open(out_dir / "results.json") as f:
        doc = json.load(f)
    return {name: n for name, n in doc["verdicts"].items() if n > 0}, doc.get("conclusion", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procpool", type=pathlib.Path, default=DEFAULT_PROCPOOL)
    parser.add_argument("--repetitions", type=int, default=10, help="runs of each scenario (default 10)")
    parser.add_argument("--only", action="append", default=[], help="scenario name (file stem); repeatable")
    parser.add_argument("--check", action="store_true", help="exit 1 on a wrong dominant or unplanted architectural verdict")
    parser.add_argument("--verbose", action="store_true", help="print each run's verdicts and conclusion")
    args = parser.parse_args()
    args.procpool = args.procpool.resolve()  # the runs start from the repository's root
    if not args.procpool.exists():
        raise SystemExit(f"procpool not found at {args.procpool}: build it first (./setup.sh build)")

    scenarios = sorted(HERE.glob("*.toml"))
    if args.only:
        scenarios = [s for s in scenarios if s.stem in args.only]
        if not scenarios:
            raise SystemExit(f"no planted scenario named {', '.join(args.only)}")

    shown = collections.Counter()      # verdict -> runs showing it
    expected = collections.Counter()   # verdict -> runs where it was planted
    true_pos = collections.Counter()   # verdict -> runs where planted and shown
    failures = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="procpool-planted-") as tmp:
        for scenario in scenarios:
            want = planted(scenario)
            exact = 0
            seen = collections.Counter()
            for r in range(args.repetitions):
                verdicts, conclusion = run_once(args.procpool, scenario, pathlib.Path(tmp) / f"{scenario.stem}-{r}")
                got = set(verdicts)
                exact += got == want
                seen.update(got)
                for v in want:
                    expected[v] += 1
                    true_pos[v] += v in got
                for v in got:
                    shown[v] += 1
                if args.verbose:
                    print(f"  {scenario.stem} #{r}: {verdicts or 'no verdicts'}\n    {conclusion}")
                dominant = max(verdicts, key=verdicts.get) if verdicts else None
                if want and dominant not in want:
                    failures.append(f"{scenario.stem} run {r}: most frequent verdict {dominant}, planted {sorted(want)}: {verdicts}")
                if not want and verdicts and any(v.startswith("architectural.") for v in verdicts):
                    failures.append(f"{scenario.stem} run {r}: architectural verdict in a healthy run: {verdicts}")
                for v in got - want:
                    if v.startswith("architectural.") and want:
                        failures.append(f"{scenario.stem} run {r}: unplanted {v}: {verdicts}")
            rows.append((scenario.stem, ", ".join(sorted(want)) or "none", exact, args.repetitions,
                         ", ".join(f"{v} x{n}" for v, n in seen.most_common()) or "none"))

    print(f"{'planted case':<26} {'planted verdict':<38} {'exact runs':>10}  verdicts shown (runs)")
    for name, want, exact, total, seen in rows:
        print(f"{name:<26} {want:<38} {exact:>4}/{total:<5}  {seen}")
    print()
    print(f"{'verdict':<38} {'precision':>10} {'recall':>10}   (over runs: TP, FP, FN)")
    for v in sorted(set(expected) | set(shown)):
        tp, fp, fn = true_pos[v], shown[v] - true_pos[v], expected[v] - true_pos[v]
        precision = f"{tp / (tp + fp):.2f}" if tp + fp else "n/a"
        recall = f"{tp / (tp + fn):.2f}" if tp + fn else "n/a"
        print(f"{v:<38} {precision:>10} {recall:>10}   ({tp}, {fp}, {fn})")
    if failures:
        print("\nmisjudged runs:")
        for f in failures:
            print(f"  {f}")
    if args.check and failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
