"""Tests of the harness's KTAP parser and splat scanner."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ktap  # noqa: E402

KUNIT_CONSOLE = """\
[    5.101] cxl_switched: loading
[    5.102] KTAP version 1
[    5.102] 1..1
[    5.103]     KTAP version 1
[    5.103]     # Subtest: demo_suite
[    5.103]     # speed: normal
[    5.103]     1..3
[    5.104]     ok 1 first_case
[    5.105] some unrelated kernel message
[    5.106]     not ok 2 second_case
[    5.107]     ok 3 third_case # SKIP not here
[    5.108] # demo_suite: pass:1 fail:1 skip:1 total:3
[    5.108] ok 1 demo_suite
"""

SCENARIO = """\
KTAP version 1
# Subtest: single
1..4
ok 1 the portal is there
# a diagnostic
not ok 2 - the region is committed
ok 3 skipped one # SKIP no device
cxlsw: scenario done
"""


class ParseTest(unittest.TestCase):
    def test_kunit_console(self):
        r = ktap.parse(KUNIT_CONSOLE)
        self.assertEqual([s.name for s in r.suites], ["demo_suite"])
        s = r.suites[0]
        self.assertEqual((s.plan, s.passed, s.failed, s.skipped, s.missing), (3, 1, 1, 1, 0))
        self.assertEqual(s.status, "pass")
        self.assertEqual([c.name for c in s.cases], ["first_case", "second_case", "third_case"])

    def test_scenario_missing_points(self):
        s = ktap.parse(SCENARIO).suites[0]
        self.assertEqual(s.name, "single")
        self.assertEqual((s.passed, s.failed, s.skipped, s.missing), (1, 1, 1, 1))
        self.assertEqual(s.cases[1].name, "the region is committed")

    def test_no_suite(self):
        self.assertEqual(ktap.parse("ok 1 stray\nrandom\n").suites, [])

    def test_two_suites_in_one_console(self):
        text = KUNIT_CONSOLE + KUNIT_CONSOLE.replace("demo_suite", "other_suite").replace("not ok 2", "ok 2")
        r = ktap.parse(text)
        self.assertEqual([s.name for s in r.suites], ["demo_suite", "other_suite"])
        self.assertEqual(r.suites[1].failed, 0)


class SplatTest(unittest.TestCase):
    def test_real_splats(self):
        for line in (
            "[   12.3] WARNING: CPU: 1 PID: 77 at drivers/misc/lkdtm/bugs.c:120 lkdtm_WARNING+0x9/0x10",
            "[    3.0] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
            "[    3.0] WARNING: possible circular locking dependency detected",
            "[    3.0] Oops: general protection fault, probably for non-canonical address",
            "[    3.0] BUG: sleeping function called from invalid context at mm/slub.c:1",
        ):
            self.assertEqual(len(ktap.scan_splats(line)), 1, line)

    def test_benign_lines(self):
        benign = "\n".join([
            "[    0.0] RCU lockdep checking is enabled.",
            "[    0.0] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc.",
            "[    0.0] ... MAX_LOCKDEP_SUBCLASSES:  8",
            "[    1.0] kasan: KernelAddressSanitizer initialized (generic)",
            "[    2.0] cxl_switched: loaded",
        ])
        self.assertEqual(ktap.scan_splats(benign), [])


if __name__ == "__main__":
    unittest.main()
