"""Tests of bench/heavy_module.py, the generator of a preload with a known import cost.

bench/zygote.sh and the zygote tests rely on the figures it promises (CPU time of the import,
MiB of objects it builds), so they are checked here, in a fresh interpreter each time: an
import cached in this process would cost nothing.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "heavy_module.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("heavy_module", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_cost(directory, name):
    """Import ``name`` from ``directory`` in a new interpreter; its recorded cost."""
    code = (f"import {name} as m, json; print(json.dumps({{'cpu_ms': m.IMPORT_CPU_MS, "
            f"'rss_kib': m.IMPORT_RSS_KIB, 'entries': len(m.DATA), 'cfg': [m.CPU_MS, m.MIB]}}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(directory)))
    return json.loads(out.stdout)


class HeavyModuleTest(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.dir = Path(directory.name)
        self.generator = load_generator()

    def test_import_costs_what_was_asked(self):
        path = self.generator.write_module(self.dir, "heavy_probe", cpu_ms=120, mib=24)
        self.assertEqual(path, self.dir / "heavy_probe.py")
        cost = import_cost(self.dir, "heavy_probe")
        self.assertEqual(cost["cfg"], [120, 24])
        # At least the CPU asked for; the loop stops within one round of 1,000 hashes of it.
        self.assertGreaterEqual(cost["cpu_ms"], 120)
        self.assertLess(cost["cpu_ms"], 120 + 100)
        # The resident objects: within 25% of what was asked (the allocator and the list's
        # growth make it inexact; far off means the per-entry estimate is wrong).
        self.assertGreater(cost["rss_kib"], 24 * 1024 * 0.75)
        self.assertLess(cost["rss_kib"], 24 * 1024 * 1.25)

    def test_the_parameters_are_independent(self):
        """No CPU asked for: the cost is the build alone; more MiB: more entries."""
        self.generator.write_module(self.dir, "light", cpu_ms=0, mib=4)
        self.generator.write_module(self.dir, "heavier", cpu_ms=0, mib=16)
        light, heavier = import_cost(self.dir, "light"), import_cost(self.dir, "heavier")
        self.assertAlmostEqual(heavier["entries"], 4 * light["entries"], delta=1)  # rounding
        self.assertLess(light["cpu_ms"], 200)

    def test_command_line(self):
        out = subprocess.run([sys.executable, str(GENERATOR), str(self.dir), "--name", "cli_mod",
                              "--cpu-ms", "5", "--mib", "1"],
                             check=True, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.stdout.strip(), str(self.dir / "cli_mod.py"))
        self.assertEqual(import_cost(self.dir, "cli_mod")["cfg"], [5, 1])
        bad = subprocess.run([sys.executable, str(GENERATOR), str(self.dir), "--name", "not-a-name"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("not a module name", bad.stderr)
        self.assertFalse((self.dir / "not-a-name.py").exists())


if __name__ == "__main__":
    unittest.main()
