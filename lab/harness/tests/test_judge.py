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


ABORT = ("qemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: "
         "Assertion `section_index < d->map.sections_nb' failed.\n")


class EmulatorFaultTest(unittest.TestCase):
    def boot(self, logdir: Path, signo: int, err: str = "", good: bool = False, timed_out=False):
        b = lab.Boot("a", "single", logdir)
        b.console.write_text(GOOD_KUNIT if good else "")
        b.output.write_text(GOOD_SCENARIO if good else "")
        b.qemu_err.write_text(err)
        b.proc = subprocess.Popen(["sh", "-c", f"kill -{signo} $$" if signo else "exit 0"])
        b.proc.wait()
        b.timed_out = timed_out
        return b

    def test_only_qemus_own_abort_is_a_fault(self):
        d = Path(tempfile.mkdtemp())
        self.assertIn("iotlb_to_section", self.boot(d, 6, ABORT).emulator_fault())
        # The harness's kill at a timeout, a kill with no assertion, a clean exit: verdicts.
        self.assertIsNone(self.boot(d, 9, ABORT, timed_out=True).emulator_fault())
        self.assertIsNone(self.boot(d, 9).emulator_fault())
        self.assertIsNone(self.boot(d, 0, ABORT).emulator_fault())

    def run_with(self, runs):
        """run_scenario over canned boots, one list of boots per call of boot_hosts."""
        d = Path(tempfile.mkdtemp())
        calls = []

        def fake(fab, name, hosts, logdir, reboot=None, sc=None):
            calls.append(name)
            return runs[len(calls) - 1](d)
        real, lab.boot_hosts = lab.boot_hosts, fake
        try:
            v = lab.run_scenario({}, {"name": "single", "hosts": ["a"]}, d)
        finally:
            lab.boot_hosts = real
        return v, calls

    def test_a_fault_runs_the_scenario_once_more(self):
        v, calls = self.run_with([lambda d: [self.boot(d, 6, ABORT)],
                                  lambda d: [self.boot(d, 0, good=True)]])
        self.assertEqual(len(calls), 2)
        self.assertEqual([p for x in v for p in x.problems], [])

    def test_a_fault_in_every_run_fails(self):
        v, calls = self.run_with([lambda d: [self.boot(d, 6, ABORT)]] * (lab.EMULATOR_RERUNS + 1))
        self.assertEqual(len(calls), lab.EMULATOR_RERUNS + 1)
        self.assertTrue(any("status -6" in p for x in v for p in x.problems))

    def test_a_guest_failure_is_not_retried(self):
        v, calls = self.run_with([lambda d: [self.boot(d, 0)]] * 2)
        self.assertEqual(len(calls), 1)
        self.assertTrue(any("no scenario KTAP output" in p for x in v for p in x.problems))


class FenceAgentTest(unittest.TestCase):
    """The harness as the lab's power switch: it kills only the host that
    announced the slot asked for, and says "off" only once it is dead."""

    def boot(self, host: str):
        b = lab.Boot(host, "fence", Path(tempfile.mkdtemp()))
        b.proc = subprocess.Popen(["sleep", "60"])
        return b

    def channel(self, b):
        c = lab.FenceChannel(b)
        c.sent = []
        c.send = c.sent.append
        return c

    def test_fences_the_announced_host_then_says_off(self):
        a, b = self.boot("a"), self.boot("b")
        ca, cb = self.channel(a), self.channel(b)
        ca.handle("iam 12", [a, b], True)
        cb.handle("iam 3", [a, b], True)
        cb.handle("fence 12 dcc21bee", [a, b], True)
        self.assertEqual(cb.sent, ["off 12 dcc21bee"])
        self.assertEqual(a.proc.returncode, -9)
        self.assertTrue(a.killed)
        self.assertIsNone(b.proc.poll())
        # Killed on purpose: no verdict against it, no emulator fault.
        self.assertIsNone(a.emulator_fault())
        self.assertFalse(any("qemu exited" in p for v in lab.judge(a, [], False) for p in v.problems))
        b.proc.kill()

    def test_no_agent_or_unknown_slot_kills_nothing(self):
        a, b = self.boot("a"), self.boot("b")
        ca, cb = self.channel(a), self.channel(b)
        ca.handle("iam 12", [a, b], True)
        cb.handle("fence 12 dcc21bee", [a, b], False)
        cb.handle("fence 7 0000", [a, b], True)
        self.assertEqual(cb.sent, ["unknown 7 0000"])
        self.assertIsNone(a.proc.poll())
        for x in (a, b):
            x.proc.kill()


if __name__ == "__main__":
    unittest.main()
