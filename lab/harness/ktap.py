"""KTAP parsing and kernel-splat scanning for the lab harness.

Handles both KTAP sources the lab produces:

* a kernel console (KUnit), where each line may carry a printk timestamp
  and other kernel messages are interleaved; suites are nested one level
  below a top-level plan, announced by "# Subtest: NAME" at the suite's
  indentation and closed by "ok N NAME" one level up;
* a scenario's output on the guest's second serial port, where a suite is
  "# Subtest: NAME" and "1..N" at indentation 0 followed by its test points.

A suite that announced a plan of N test points but reported fewer counts the
difference as "missing", which the harness treats as failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_RESULT = re.compile(r"^(ok|not ok) (\d+)(?: -)? ?([^#]*?)\s*(?:#\s*(.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)\s*$")
_SUBTEST = re.compile(r"^# Subtest: (\S+)")

# What fails a console. Each is a real splat header, not a mere word:
# "RCU lockdep checking is enabled" at every boot must not match.
SPLATS = [
    re.compile(p)
    for p in (
        r"WARNING: ",  # WARN(), lockdep ("WARNING: possible ... locking"), RCU
        r"BUG: ",  # BUG(), KASAN ("BUG: KASAN: ..."), sleeping in atomic
        r"kernel BUG at ",
        r"Oops[: ]",
        r"Kernel panic",
        r"general protection fault",
        r"UBSAN: ",
        r"INFO: task .* blocked for more than",
        r"INFO: possible (recursive|circular|irq)",
        r"inconsistent lock state",
        r"ODEBUG: ",
        r"Call Trace:",
    )
]


def strip(line: str) -> str:
    line = line.rstrip("\r\n")
    return _TS.sub("", line)


def scan_splats(console: str) -> list[str]:
    """Lines of a kernel console that report a splat, in order."""
    hits = []
    for raw in console.splitlines():
        line = strip(raw)
        if any(p.search(line) for p in SPLATS):
            hits.append(line.strip())
    return hits


@dataclass
class Case:
    name: str
    status: str  # "pass", "fail" or "skip"
    directive: str = ""


@dataclass
class Suite:
    name: str
    indent: int
    plan: int | None = None
    cases: list[Case] = field(default_factory=list)
    status: str | None = None  # the suite's own result line, if any

    @property
    def passed(self) -> int:
        return sum(c.status == "pass" for c in self.cases)

    @property
    def failed(self) -> int:
        return sum(c.status == "fail" for c in self.cases)

    @property
    def skipped(self) -> int:
        return sum(c.status == "skip" for c in self.cases)

    @property
    def missing(self) -> int:
        if self.plan is None:
            return 0
        return max(0, self.plan - len(self.cases))


@dataclass
class Result:
    suites: list[Suite] = field(default_factory=list)


def _status(word: str, directive: str) -> str:
    if directive.upper().startswith("SKIP"):
        return "skip"
    return "pass" if word == "ok" else "fail"


def parse(text: str) -> Result:
    """Collect every suite announced with "# Subtest:" and its test points."""
    res = Result()
    open_suites: dict[int, Suite] = {}
    for raw in text.splitlines():
        line = strip(raw)
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        m = _SUBTEST.match(body)
        if m:
            # A new suite at this indentation replaces any deeper ones.
            for k in [k for k in open_suites if k >= indent]:
                del open_suites[k]
            s = Suite(m.group(1), indent)
            open_suites[indent] = s
            res.suites.append(s)
            continue
        m = _PLAN.match(body)
        if m and indent in open_suites and open_suites[indent].plan is None and not open_suites[indent].cases:
            open_suites[indent].plan = int(m.group(1))
            continue
        m = _RESULT.match(body)
        if not m:
            continue
        word, _num, name, directive = m.group(1), m.group(2), m.group(3).strip(), m.group(4) or ""
        # A result one level up that names an open suite closes it.
        closed = False
        for k, s in list(open_suites.items()):
            if k > indent and s.name == name:
                s.status = _status(word, directive)
                for kk in [kk for kk in open_suites if kk >= k]:
                    del open_suites[kk]
                closed = True
                break
        if closed:
            continue
        s = open_suites.get(indent)
        if s is not None:
            s.cases.append(Case(name, _status(word, directive), directive))
    return res
