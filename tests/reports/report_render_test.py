#!/usr/bin/env python3
"""report.html as a browser sees it: runs two scenarios with `procpool run`, loads each
report.html in headless Chromium, and checks in the rendered DOM that every chart is there
once, as an inline SVG with drawn marks, or as a note saying why it does not apply; then takes
a screenshot and checks that it is not blank.

    report_render_test.py --procpool build/release/harness/procpool --source-dir .

Exit 0 when every check held, 1 when one failed, 77 (CTest's SKIP_RETURN_CODE) when Chromium
is not installed, unless the environment variable CI is set: CI must run this test, so there a
missing Chromium is a failure. Python standard library only.
"""

import argparse
import html.parser
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

SKIP = 77
CHARTS = ("throughput", "latency", "timeouts", "lifecycle", "verdicts")
BROWSER_TIMEOUT_S = 90
DRAWN = ("path", "rect", "circle", "line", "polyline", "polygon")


class Failure(Exception):
    pass


class ChartCollector(html.parser.HTMLParser):
    """Every <svg data-chart> with the drawn elements inside it, every chart note, and whether
    any <script> exists."""

    def __init__(self):
        super().__init__()
        self.charts = {}  # name -> list of {"marks": int, "drawn": int, "text": int}
        self.notes = {}  # name -> count
        self.scripts = 0
        self._open = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if "data-chart-note" in attrs:
            name = attrs["data-chart-note"]
            self.notes[name] = self.notes.get(name, 0) + 1
        if tag == "svg" and "data-chart" in attrs:
            self._open = {"marks": int(attrs.get("data-marks", "0")), "drawn": 0, "text": 0, "words": ""}
            self.charts.setdefault(attrs["data-chart"], []).append(self._open)
            self._depth = 1
            return
        if self._open is not None:
            if tag in DRAWN:
                self._open["drawn"] += 1
            elif tag == "text":
                self._open["text"] += 1
            if tag not in DRAWN and tag not in ("stop",):
                self._depth += 1

    def handle_startendtag(self, tag, attrs):
        # Self-closing elements never open a level.
        if self._open is not None and tag in DRAWN:
            self._open["drawn"] += 1
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        if self._open is not None:
            self._open["words"] += data + " "

    def handle_endtag(self, tag):
        if self._open is None:
            return
        if tag in DRAWN:
            return
        self._depth -= 1
        if tag == "svg" or self._depth <= 0:
            self._open = None


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def kill_leftovers(marker):
    """Kills any process whose command line names our profile directory: headless Chromium
    starts helpers (zygote, GPU, renderers) that can outlive the main process."""
    me = os.getpid()
    for _ in range(20):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise Failure(f"Chromium processes survive SIGKILL: {found}")


def run_browser(chromium, profile, args):
    """Runs Chromium in its own process group with a deadline; returns its stdout."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise Failure(f"Chromium did not finish within {BROWSER_TIMEOUT_S} s: {' '.join(command)}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_leftovers(profile)
    if proc.returncode != 0:
        raise Failure(f"Chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return out.decode("utf-8", errors="replace")


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) for an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failure(f"{path} is not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if depth != 8 or colour not in (2, 6):
                raise Failure(f"{path}: unexpected PNG format (depth {depth}, colour type {colour})")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        previous = line
    return width, height, channels, rows


def check_screenshot(path):
    width, height, channels, rows = png_pixels(path)
    inked, colours = 0, set()
    for line in rows[::4]:
        for x in range(0, width * channels, channels * 4):
            r, g, b = line[x], line[x + 1], line[x + 2]
            if min(r, g, b) < 235:
                inked += 1
            colours.add((r >> 4, g >> 4, b >> 4))
    sampled = (height // 4 + 1) * (width // 4 + 1)
    if inked < sampled * 0.01 or len(colours) < 8:
        raise Failure(f"the screenshot looks blank: {inked} of {sampled} sampled pixels inked, "
                      f"{len(colours)} colours")
    return inked, len(colours)


def check_report(name, report, chromium, work, must_draw, must_say=()):
    profile = os.path.join(work, f"profile-{name}")
    url = "file://" + os.path.abspath(report)
    dom = run_browser(chromium, profile, ["--dump-dom", url])
    collector = ChartCollector()
    collector.feed(dom)
    if collector.scripts:
        raise Failure(f"{name}: the page has {collector.scripts} <script> elements")
    for chart in CHARTS:
        drawn = collector.charts.get(chart, [])
        notes = collector.notes.get(chart, 0)
        if len(drawn) + notes != 1:
            raise Failure(f"{name}: chart {chart} appears {len(drawn)} times and has {notes} notes; "
                          "expected exactly one of either")
        if drawn:
            svg = drawn[0]
            if svg["marks"] < 1 or svg["drawn"] < 5 or svg["text"] < 2:
                raise Failure(f"{name}: chart {chart} is empty: {svg}")
            print(f"{name}: {chart}: {svg['drawn']} drawn elements ({svg['marks']} data marks), "
                  f"{svg['text']} labels")
            for chart_name, words in must_say:
                if chart_name == chart:
                    if words not in svg["words"]:
                        raise Failure(f"{name}: chart {chart} does not say {words!r}")
                    print(f"{name}: {chart}: says {words!r}")
        else:
            if chart in must_draw:
                raise Failure(f"{name}: chart {chart} should be drawn but is a note")
            print(f"{name}: {chart}: a note (does not apply)")
    shot = os.path.join(work, f"{name}.png")
    run_browser(chromium, profile, ["--hide-scrollbars", "--window-size=1200,2400",
                                    f"--screenshot={shot}", url])
    inked, colours = check_screenshot(shot)
    print(f"{name}: screenshot: {inked} inked sample pixels, {colours} colours")


def procpool_run(procpool, source_dir, scenario, out, sets):
    command = [procpool, "run", scenario, "--out", out, "--quiet"]
    for s in sets:
        command += ["--set", s]
    proc = subprocess.run(command, cwd=source_dir, capture_output=True, text=True, timeout=240)
    # 1 is an assertion that failed, which the sweep below is made to do.
    if proc.returncode not in (0, 1):
        raise Failure(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr}")
    report = os.path.join(out, "report.html")
    if not os.path.exists(report):
        raise Failure(f"{' '.join(command)} wrote no report.html")
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procpool", required=True, help="the procpool command")
    parser.add_argument("--source-dir", required=True, help="the project's root (for scenarios/)")
    args = parser.parse_args()

    chromium = find_chromium()
    if not chromium:
        if os.environ.get("CI"):
            print("FAIL: Chromium is not installed, and CI must run this test "
                  "(./setup.sh test installs the Debian package chromium)")
            return 1
        print("SKIP: Chromium is not installed (apt-get install chromium)")
        return SKIP

    work = tempfile.mkdtemp(prefix="procpool-render-test-")
    try:
        # Two string axes: the heatmap and the lifecycle apply, throughput and latency do not.
        smoke = procpool_run(args.procpool, args.source_dir, "scenarios/ci-smoke.toml",
                             os.path.join(work, "smoke"), [])
        check_report("ci-smoke", smoke, chromium, work, must_draw={"timeouts", "lifecycle"})
        # A small sweep over concurrency and start-up latency whose cold starts outlast the
        # checkout timeout, so that every chart has something to draw.
        sweep = procpool_run(args.procpool, args.source_dir, "scenarios/quickstart.toml",
                             os.path.join(work, "sweep"),
                             ["load.requests=60", "pool.checkout_timeout_ms=40", "pool.size=8",
                              "sweep.worker.startup_ms=[0,150]", "worker.init_ms=0"])
        # With concurrency up to the pool's size the diagnosis fits the USL, drawn as a curve.
        with open(os.path.join(work, "sweep", "results.json"), encoding="utf-8") as f:
            fitted = bool(json.load(f).get("analyses", {}).get("usl"))
        check_report("sweep", sweep, chromium, work, must_draw=set(CHARTS),
                     must_say=[("throughput", "fitted USL curve")] if fitted else [])
    except Failure as failure:
        print(f"FAIL: {failure}")
        return 1
    finally:
        kill_leftovers(work)
        shutil.rmtree(work, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
