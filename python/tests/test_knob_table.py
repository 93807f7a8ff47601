"""The Python worker's knobs against the C++ knob table (fake_worker's knob_table.hpp).

Both workers take the same init args from one scenario, so their knobs must agree in name,
order, default, choices and range. The C++ table comes from the fake worker's hidden
``--knobs-json`` flag; CTest gives its path in PROCPOOL_FAKE_WORKER.
"""

import json
import os
import subprocess
import unittest

from procpool_worker import knobs

_UNBOUNDED = 2.0**63  # an integer range this wide is the C++ table's "no maximum"


def _cxx_table():
    worker = os.environ.get("PROCPOOL_FAKE_WORKER")
    if not worker:
        raise unittest.SkipTest("PROCPOOL_FAKE_WORKER is not set (CTest sets it)")
    out = subprocess.run([worker, "--knobs-json"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return json.loads(out)


class KnobTableTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cxx = _cxx_table()
        cls.python = list(knobs.all_knobs())

    def test_same_names_in_the_same_order(self):
        self.assertEqual([k.name for k in self.python], [k["name"] for k in self.cxx])

    def test_same_defaults(self):
        for py, cxx in zip(self.python, self.cxx):
            with self.subTest(knob=py.name):
                self.assertEqual(py.default, cxx["default"])
                self.assertIs(type(py.default), type(cxx["default"]))

    def test_same_choices(self):
        for py, cxx in zip(self.python, self.cxx):
            with self.subTest(knob=py.name):
                choices = getattr(py.kind, "choices", ())
                self.assertEqual(list(choices), cxx["choices"])

    def test_same_ranges(self):
        for py, cxx in zip(self.python, self.cxx):
            if cxx["type"] in ("boolean", "choice"):
                continue
            with self.subTest(knob=py.name):
                self.assertEqual(py.kind.minimum, cxx["min"])
                maximum = py.kind.maximum
                if maximum is not None and maximum >= _UNBOUNDED:
                    maximum = None
                self.assertEqual(maximum, cxx["max"])


if __name__ == "__main__":
    unittest.main()
