#!/usr/bin/env python3
"""A planted CPU-sensitive test: spins for 0.4 s and fails when it got less than SHARE of
one CPU (its CPU time over the wall time).

    needs_cpu_share.py 0.3     # exit 1 when held below 30% of a CPU, by a quota or hogs
"""
import sys
import time


def main():
    needed = float(sys.argv[1])
    wall0, cpu0 = time.monotonic(), time.process_time()
    while time.monotonic() - wall0 < 0.4:
        pass
    share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    print(f"got {share:.0%} of a CPU, {needed:.0%} needed")
    return 0 if share >= needed else 1


if __name__ == "__main__":
    sys.exit(main())
