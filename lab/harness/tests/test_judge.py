"""Tests of the harness's verdicts on one boot's logs."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import lab  # noqa: E402

GOOD_KUNIT = """\
[    9.0] KTAP version 1
[    9.0] 1..1
[    9.0]     KTAP version 1
[    9.0]     # Subtest: cxl_switched_layout
[    9.0]     1..2
[    9.0]     ok 1 a
[    9.0]     ok 2 b
[    9.0] ok 1 cxl_switched_layout
"""
GOOD_SCENARIO = "KTAP version 1\n# Subtest: single\n1..2\nok 1 x\nok 2 y\ncxlsw: scenario done\n"


class JudgeTest(unittest.TestCase):
    def boot(self, console: str, output: str, rc: int = 0, timed_out: bool = False):
        d = Path(tempfile.mkdtemp())
        b = lab.Boot("a", "single", d)
        b.console.write_text(console)
        b.output.write_text(output)
        b.proc = subprocess.Popen(["sh", "-c", f"exit {rc}"])
        b.proc.wait()
        b.timed_out = timed_out
        return b

    def problems(self, verdicts):
        return [p for v in verdicts for p in v.problems] + [f"failed {v.failed}" for v in verdicts if v.failed]

    def test_clean_boot_passes(self):
        v = lab.judge(self.boot(GOOD_KUNIT, GOOD_SCENARIO), ["cxl_switched_layout"], False)
        self.assertEqual(self.problems(v), [])
        self.assertEqual(sum(x.passed for x in v), 4)

    def test_warning_fails(self):
        con = GOOD_KUNIT + "[   10.0] WARNING: CPU: 0 PID: 1 at drivers/cxl_switched/x.rs:1 foo\n"
        v = lab.judge(self.boot(con, GOOD_SCENARIO), ["cxl_switched_layout"], False)
        self.assertTrue(any("WARNING" in p for p in self.problems(v)))

    def test_expected_suite_missing_fails(self):
        v = lab.judge(self.boot("[ 1.0] nothing\n", GOOD_SCENARIO), ["cxl_switched_layout"], False)
        self.assertIn("expected KUnit suite did not run", self.problems(v))

    def test_missing_scenario_points_fail(self):
        v = lab.judge(self.boot(GOOD_KUNIT, "KTAP version 1\n# Subtest: single\n1..3\nok 1 x\n"), [], False)
        self.assertTrue(any("never reported" in p for p in self.problems(v)))

    def test_timeout_and_qemu_error_fail(self):
        v = lab.judge(self.boot(GOOD_KUNIT, GOOD_SCENARIO, timed_out=True), [], False)
        self.assertTrue(any("timed out" in p for p in self.problems(v)))
        v = lab.judge(self.boot(GOOD_KUNIT, GOOD_SCENARIO, rc=1), [], False)
        self.assertTrue(any("qemu exited with status 1" in p for p in self.problems(v)))

    def test_negative_control_needs_a_splat(self):
        v = lab.judge(self.boot(GOOD_KUNIT, GOOD_SCENARIO), [], True)
        self.assertTrue(any("negative control" in p for p in self.problems(v)))
        con = GOOD_KUNIT + "[ 3.0] WARNING: CPU: 1 PID: 9 at drivers/misc/lkdtm/bugs.c:1\n"
        v = lab.judge(self.boot(con, GOOD_SCENARIO), [], True)
        self.assertEqual(self.problems(v), [])


if __name__ == "__main__":
    unittest.main()
