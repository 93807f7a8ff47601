#!/usr/bin/env python3
"""A planted memory-sensitive test: passes only when MB MiB are available (MemAvailable)
and 64 MiB can then be allocated and written within two seconds.

    needs_memory.py 20000      # exit 0 with 20000 MiB available, 1 otherwise
"""
import sys
import time


def available_mib():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def main():
    needed = int(sys.argv[1])
    have = available_mib()
    if have < needed:
        print(f"only {have} MiB available, {needed} MiB needed")
        return 1
    start = time.monotonic()
    block = b"\x01" * (64 << 20)  # written, not just mapped
    took = time.monotonic() - start
    del block
    if took > 2:
        print(f"64 MiB took {took:.1f} s to allocate")
        return 1
    print(f"{have} MiB available; 64 MiB in {took * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
