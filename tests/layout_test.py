#!/usr/bin/env python3
"""Checks that dependencies point one way: pool <- harness stages <- reports <- cli.

Every #include "..." in the project's C++ sources is resolved to the component it names, and
a file may include only headers of its own component or of earlier ones. The order is the
architecture (README.md, "What is here"); a new stage is added here and in harness/CMakeLists.txt.

    tests/layout_test.py --source-dir .
"""
import argparse
import pathlib
import re
import sys

# Earlier first. pool/include/procpool holds the pool's API and wire/ its building blocks.
ORDER = [
    "pool",
    "fake_worker",  # its knob table (fake_worker/include) drives the scenario's worker keys
    "harness/statistics",
    "harness/scenario",
    "harness/subjects",
    "harness/run",
    "harness/results",
    "harness/diagnosis",
    "harness/analysis",
    "reports",
    "harness/cli",
]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def component_of(path: pathlib.Path, root: pathlib.Path):
    rel = path.relative_to(root).as_posix()
    for name in reversed(ORDER):
        if rel.startswith(name + "/"):
            return name
    return None


def resolve(include: str, including: pathlib.Path, root: pathlib.Path):
    """The file an include names: beside the includer, else under an include root."""
    candidates = [including.parent / include, root / "harness" / include,
                  root / "pool" / "include" / include, root / "pool" / "src" / include,
                  root / "fake_worker" / "include" / include,
                  root / "reports" / "src" / include]
    for c in candidates:
        if c.is_file():
            return c
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
    root = args.source_dir.resolve()
    rank = {name: i for i, name in enumerate(ORDER)}
    problems, checked = [], 0
    for path in sorted(p for d in ("pool", "fake_worker", "harness", "reports") for p in (root / d).rglob("*.[ch]pp")):
        mine = component_of(path, root)
        if mine is None:
            problems.append(f"{path.relative_to(root)}: in no component of tests/layout_test.py")
            continue
        for include in INCLUDE.findall(path.read_text()):
            target = resolve(include, path, root)
            if target is None:
                problems.append(f"{path.relative_to(root)}: #include \"{include}\" names no file of the project")
                continue
            theirs = component_of(target, root)
            checked += 1
            if theirs is not None and rank[theirs] > rank[mine]:
                problems.append(f"{path.relative_to(root)} ({mine}) includes {include} of the later {theirs}")
    for p in problems:
        print(p)
    print(f"{checked} includes checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
