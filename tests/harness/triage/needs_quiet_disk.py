#!/usr/bin/env python3
"""A planted I/O-sensitive test: writes and fsyncs 1 MiB in DIR, then fails when, over the
next 0.4 s, some task was stalled on I/O for 5% of the time or more (Linux pressure stall
information, /proc/pressure/io). Without PSI it cannot tell, and passes, saying so.

    needs_quiet_disk.py /tmp    # exit 0 on a quiet disk, 1 while something fsyncs without pause
"""
import os
import sys
import time

PSI = "/proc/pressure/io"


def stalled_us():
    with open(PSI) as pressure:
        for line in pressure:
            if line.startswith("some "):
                return int(line.split("total=")[1])
    return 0


def main():
    path = os.path.join(sys.argv[1], f".needs-quiet-disk-{os.getpid()}")
    try:
        with open(path, "wb") as scratch:
            scratch.write(b"\x02" * (1 << 20))
            scratch.flush()
            os.fsync(scratch.fileno())
    finally:
        os.unlink(path)
    if not os.path.exists(PSI):
        print("no /proc/pressure/io: cannot tell")
        return 0
    before, start = stalled_us(), time.monotonic()
    time.sleep(0.4)
    share = (stalled_us() - before) / 1e6 / (time.monotonic() - start)
    print(f"stalled on I/O {share:.0%} of the time")
    return 1 if share >= 0.05 else 0


if __name__ == "__main__":
    sys.exit(main())
