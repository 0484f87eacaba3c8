#!/usr/bin/env python3
"""The cxl_switched QEMU lab: boot guest hosts on the fabric, collect KTAP.

    lab.py run SCENARIO [--hosts a,b]   boot the scenario's hosts once
    lab.py check                        every scenario of lab/fabric.toml,
                                        one summary, non-zero on failure
    lab.py demo                         two hosts sharing the portal
    lab.py cmdline HOST                 print one host's QEMU command line

Every guest's console (ttyS0) and scenario output (ttyS1, KTAP) are kept in
build/logs/<run>/. A boot fails on a timeout, on a kernel splat in its
console, on a KUnit suite that was expected and did not run or failed, and
on a scenario test point that failed or is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HARNESS = Path(__file__).resolve().parent  # lab/harness
LAB = HARNESS.parent  # lab: the harness, guest/, fabric.toml
REPO = LAB.parent

sys.path.insert(0, str(HARNESS))
import ktap  # noqa: E402

BUILD = Path(os.environ.get("CXLSW_BUILD", REPO / "build"))
CACHE = Path(os.environ.get("CXLSW_CACHE", Path.home() / ".cache" / "cxl_switched"))
FABRIC = LAB / "fabric.toml"


def load_fabric() -> dict:
    with open(FABRIC, "rb") as f:
        return tomllib.load(f)


def kernel_image() -> Path:
    return CACHE / "linux-obj" / "arch" / "x86" / "boot" / "bzImage"


def initramfs() -> Path:
    return BUILD / "initramfs.cpio.gz"


@dataclass
class Boot:
    """One guest host's QEMU run."""

    host: str
    scenario: str
    logdir: Path
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    timed_out: bool = False
    elapsed: float = 0.0
    rebooted: bool = False
    # Killed on purpose (a scheduled kill, or fenced by the fence agent): its
    # exit by SIGKILL is the scenario's, not a failure.
    killed: bool = False
    shm: Path | None = None
    # The host slot the guest announced on its fence channel.
    slot: int | None = None
    # What the independent checker said of the portal file at a `spec_check` marker.
    spec_checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def console(self) -> Path:
        return self.logdir / f"{self.scenario}-{self.host}.console.log"

    @property
    def output(self) -> Path:
        return self.logdir / f"{self.scenario}-{self.host}.ktap.log"

    @property
    def fence_sock(self) -> Path:
        return self.shm / f"fence-{self.host}.sock"

    @property
    def qmp_sock(self) -> Path:
        return self.shm / f"qmp-{self.host}.sock"

    @property
    def qemu_err(self) -> Path:
        return self.logdir / f"{self.scenario}-{self.host}.qemu.err"

    def read(self, path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def emulator_fault(self) -> str | None:
        """QEMU's own abort (a failed assertion of its own, a signal the harness did
        not send), not anything the guest reported: its last stderr line, or None."""
        rc = self.proc.poll() if self.proc is not None else None
        if rc is None or rc >= 0 or self.timed_out or self.killed:
            return None
        err = self.read(self.qemu_err)
        if "Assertion" not in err and rc != -signal.SIGSEGV:
            return None
        last = err.strip().splitlines()[-1:]
        return f"qemu died of signal {-rc}: {' '.join(last)}"


def qemu_argv(fab: dict, host: str, shm: Path, append: str, console: Path, output: Path) -> list[str]:
    """The QEMU command line of one host, from the fabric description. A
    third serial port (the guest's ttyS2) is the host's fence channel to the
    harness; the QMP socket lets the harness stop and continue it."""
    g, p, d = fab["guest"], fab["portal"], fab["direct"]
    portal_file = shm / f"{p['name']}.mem"
    direct_file = shm / f"direct-{host}.mem"
    host_index = fab["hosts"]["names"].index(host)
    return [
        "qemu-system-x86_64",
        "-M", "q35,cxl=on",
        "-accel", "tcg",
        "-m", f"{g['memory']},maxmem={g['maxmem']},slots={g['slots']}",
        "-smp", str(g["smp"]),
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-chardev", f"file,id=con,path={console}",
        "-serial", "chardev:con",
        "-chardev", f"file,id=out,path={output}",
        "-serial", "chardev:out",
        # On an IRQ of its own: 8250 ports here do not share IRQs (ttyS0 has 4).
        "-chardev", f"socket,id=fence,path={shm / f'fence-{host}.sock'},server=on,wait=off",
        "-device", "isa-serial,chardev=fence,iobase=0x3e8,irq=5",
        "-qmp", f"unix:{shm / f'qmp-{host}.sock'},server=on,wait=off",
        "-kernel", str(kernel_image()),
        "-initrd", str(initramfs()),
        "-append", append,
        # The portal: one shared backing file, behind a switch.
        "-object", f"memory-backend-file,id=cxl-portal,share=on,mem-path={portal_file},size={p['size']}",
        "-device", f"pxb-cxl,bus_nr={p['bus_nr']},bus=pcie.0,id=cxl.1",
        "-device", "cxl-rp,port=0,bus=cxl.1,id=root_port0,chassis=0,slot=0",
        "-device", "cxl-upstream,bus=root_port0,id=us0",
        "-device", "cxl-downstream,port=0,bus=us0,id=swport0,chassis=0,slot=4",
        "-device", f"cxl-type3,bus=swport0,volatile-memdev=cxl-portal,id=cxl-portal0,sn={p['serial']}",
        # The control: direct-attached, a file of this host's own.
        "-object", f"memory-backend-file,id=cxl-direct,share=on,mem-path={direct_file},size={d['size']}",
        "-device", f"pxb-cxl,bus_nr={d['bus_nr']},bus=pcie.0,id=cxl.2",
        "-device", "cxl-rp,port=0,bus=cxl.2,id=root_port1,chassis=1,slot=1",
        "-device", f"cxl-type3,bus=root_port1,volatile-memdev=cxl-direct,id=cxl-direct0,sn={0x100 + host_index:#x}",
        "-M",
        f"cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={p['window']},cxl-fmw.0.interleave-granularity=4k,"
        f"cxl-fmw.1.targets.0=cxl.2,cxl-fmw.1.size={d['window']},cxl-fmw.1.interleave-granularity=4k",
    ]


def qmp(b: Boot, command: str) -> None:
    """Runs one QMP command (stop, cont) on a host's QEMU."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(b.qmp_sock))
        f = s.makefile("rw")
        f.readline()  # the greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}) + "\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply:
                    break
                if "error" in reply:
                    raise RuntimeError(f"QMP {cmd} on host {b.host}: {reply['error']}")


def kill(b: Boot, why: str) -> None:
    """SIGKILLs a host's QEMU, as a power switch would, and waits for it."""
    if b.proc.poll() is None:
        b.killed = True
        b.proc.kill()
        b.proc.wait()
        print(f"    ... {b.scenario}: host {b.host}'s QEMU killed ({why})", flush=True)


class FenceChannel:
    """The harness's end of one guest's fence channel (its ttyS2). The guest
    says "iam SLOT" once it joined, and asks "fence SLOT UUID" for a suspect;
    the fence agent (if the scenario has one) kills the QEMU of the host that
    announced SLOT, and only then answers "off SLOT UUID"."""

    def __init__(self, b: Boot):
        self.b, self.sock, self.buf = b, None, b""

    def poll(self, boots: list[Boot], agent: bool) -> None:
        if self.sock is None:
            if not self.b.fence_sock.exists():
                return
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.b.fence_sock))
                s.setblocking(False)
                self.sock = s
            except OSError:
                return
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.handle(line.decode(errors="replace").strip(), boots, agent)

    def handle(self, line: str, boots: list[Boot], agent: bool) -> None:
        w = line.split()
        if len(w) == 2 and w[0] == "iam" and w[1].isdigit():
            self.b.slot = int(w[1])
        elif len(w) == 3 and w[0] == "fence" and w[1].isdigit() and agent:
            target = [x for x in boots if x.slot == int(w[1]) and x is not self.b]
            if not target:
                self.send(f"unknown {w[1]} {w[2]}")
                return
            kill(target[-1], f"fenced at host {self.b.host}'s request")
            self.send(f"off {w[1]} {w[2]}")

    def send(self, line: str) -> None:
        try:
            self.sock.sendall((line + "\n").encode())
        except OSError:
            pass


def size_bytes(s: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def make_backing(fab: dict, shm: Path, hosts: list[str]) -> None:
    """Fresh, zero-filled backing files: no run sees another run's bytes."""
    shm.mkdir(parents=True, exist_ok=True)
    files = [(shm / f"{fab['portal']['name']}.mem", fab["portal"]["size"])]
    files += [(shm / f"direct-{h}.mem", fab["direct"]["size"]) for h in hosts]
    for path, size in files:
        with open(path, "wb") as f:
            f.truncate(size_bytes(size))


def boot_hosts(fab: dict, scenario: str, hosts: list[str], logdir: Path,
               token: int | None = None, reboot: list[str] | None = None,
               sc: dict | None = None) -> list[Boot]:
    """Boot `hosts` at the same moment on one fresh portal; wait for all.
    A host in `reboot` is booted once more when its first QEMU ends, on the
    same portal, with cxlsw.boot=2 (its logs under SCENARIO-boot2-HOST).

    The scenario `sc` may run a fence agent (`fence_agent = true`) and
    schedule faults, each when a host's KTAP output first holds its marker:
    `pause = {host, marker, seconds}` stops that QEMU over QMP for that long,
    then continues it; `kill = {host, marker}` SIGKILLs it; `spec_check =
    {host, marker, manifests}` runs checkers/portal_spec.py on the portal's
    backing file as it is at that moment, and it must pass and have checked
    at least `manifests` (default 1) handoff manifests (a test point of that
    host's verdict)."""
    reboot = reboot or []
    sc = sc or {}
    agent = bool(sc.get("fence_agent"))
    faults = [dict(f, kind=k) for k in ("pause", "kill", "spec_check")
              for f in ([sc[k]] if k in sc else [])]
    for f in (kernel_image(), initramfs()):
        if not f.exists():
            sys.exit(f"lab: {f} is missing; run `make kernel initramfs` first")
    logdir.mkdir(parents=True, exist_ok=True)
    shm_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else BUILD
    shm = shm_root / f"cxlsw-{os.getpid()}-{scenario}"
    make_backing(fab, shm, hosts)
    token = token if token is not None else secrets.randbits(62) | 1
    timeout = fab["guest"]["boot_timeout"]
    boots = []

    def start(h: str, label: str, boot: int) -> Boot:
        b = Boot(h, label, logdir)
        b.shm = shm
        append = (f"{fab['guest']['cmdline']} cxlsw.scenario={scenario} cxlsw.host={h} "
                  f"cxlsw.index={fab['hosts']['names'].index(h)} "
                  f"cxlsw.token={token:#x} cxlsw.boot={boot}")
        b.argv = qemu_argv(fab, h, shm, append, b.console, b.output)
        (logdir / f"{label}-{h}.qemu.cmd").write_text(" ".join(b.argv) + "\n")
        for f in (b.console, b.output):
            f.unlink(missing_ok=True)
        b.proc = subprocess.Popen(b.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(b.qemu_err, "w"))
        boots.append(b)
        channels.append(FenceChannel(b))
        return b

    channels: list[FenceChannel] = []
    resume: list[tuple[float, Boot]] = []

    def run_faults(now: float) -> None:
        for f in faults:
            if f.get("done"):
                continue
            b = next((x for x in boots if x.host == f["host"] and x.proc.poll() is None), None)
            if b is None or f["marker"] not in b.read(b.output):
                continue
            f["done"] = True
            if f["kind"] == "kill":
                kill(b, "scheduled kill")
            elif f["kind"] == "spec_check":
                b.spec_checks.append(spec_check(shm / f"{fab['portal']['name']}.mem",
                                                f.get("manifests", 1)))
                print(f"    ... {scenario}: portal checked at host {b.host}'s marker: "
                      f"{b.spec_checks[-1][1]}", flush=True)
            else:
                qmp(b, "stop")
                print(f"    ... {scenario}: host {b.host} paused (QMP stop) for {f['seconds']} s",
                      flush=True)
                resume.append((now + f["seconds"], b))
        for when, b in list(resume):
            if now >= when:
                resume.remove((when, b))
                if b.proc.poll() is None:
                    qmp(b, "cont")
                    print(f"    ... {scenario}: host {b.host} continued (QMP cont)", flush=True)

    try:
        for h in hosts:
            start(h, scenario, 1)
        t0 = time.monotonic()
        last_note = t0
        while any(b.proc.poll() is None for b in boots):
            if any(b.emulator_fault() for b in boots):
                # The run is void: the others would only wait for a host that is gone.
                for b in boots:
                    if b.proc.poll() is None:
                        b.proc.kill()
                break
            for c in channels:
                c.poll(boots, agent)
            run_faults(time.monotonic())
            for b in list(boots):
                if b.host in reboot and not b.rebooted and b.proc.poll() is not None:
                    b.rebooted = True
                    b.elapsed = time.monotonic() - t0
                    print(f"    ... {scenario}: host {b.host} ended; booting it again", flush=True)
                    start(b.host, f"{scenario}-boot2", 2).rebooted = True
            now = time.monotonic()
            if now - t0 > timeout:
                for b in boots:
                    if b.proc.poll() is None:
                        b.timed_out = True
                        b.proc.kill()
                break
            if now - last_note >= 30:
                running = [b.host for b in boots if b.proc.poll() is None]
                print(f"    ... {scenario}: {int(now - t0)} s, running: {', '.join(running)}", flush=True)
                last_note = now
            time.sleep(0.2)
        for b in boots:
            b.proc.wait()
            b.elapsed = b.elapsed or time.monotonic() - t0
    finally:
        for b in boots:
            if b.proc and b.proc.poll() is None:
                b.proc.kill()
        for c in channels:
            if c.sock is not None:
                c.sock.close()
        shutil.rmtree(shm, ignore_errors=True)
    return boots


@dataclass
class Verdict:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def spec_check(portal: Path, manifests: int = 1) -> tuple[bool, str]:
    """Runs the independent checker on the portal's backing file as it is
    now; passes if it finds every invariant and checked at least
    `manifests` manifests (of handoffs in flight)."""
    r = subprocess.run([sys.executable, str(REPO / "checkers" / "portal_spec.py"), "check",
                        str(portal)], capture_output=True, text=True, timeout=120)
    out = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
    m = re.search(r"(\d+) manifest", out[0])
    ok = r.returncode == 0 and m is not None and int(m.group(1)) >= manifests
    return ok, out[0]


def judge(boot: Boot, kunit_expected: list[str], expect_splat: bool) -> list[Verdict]:
    """Turn one boot's logs into verdicts: the scenario and its KUnit suites."""
    console = boot.read(boot.console)
    output = boot.read(boot.output)
    label = f"{boot.scenario}[{boot.host}]"
    v = Verdict(label)
    verdicts = [v]
    if boot.timed_out:
        v.problems.append(f"timed out after {boot.elapsed:.0f} s")
    elif boot.proc is not None and boot.proc.returncode != 0 and not boot.killed:
        last = boot.read(boot.qemu_err).strip().splitlines()[-1:]
        v.problems.append(f"qemu exited with status {boot.proc.returncode}: {' '.join(last)}")
    splats = ktap.scan_splats(console)
    if expect_splat:
        if splats:
            v.passed += 1
        else:
            v.problems.append("negative control: a WARN was provoked but the scanner saw no splat")
    elif splats:
        v.problems.extend(f"console: {s}" for s in splats[:5])

    for ok, what in boot.spec_checks:
        if ok:
            v.passed += 1
        else:
            v.problems.append(f"independent checker at the marker: {what}")

    scen = ktap.parse(output)
    if not scen.suites:
        v.problems.append("no scenario KTAP output")
    for s in scen.suites:
        v.passed += s.passed
        v.skipped += s.skipped
        for c in s.cases:
            if c.status == "fail":
                v.failed += 1
                v.problems.append(f"not ok: {c.name}")
        if s.missing:
            v.failed += s.missing
            v.problems.append(f"{s.missing} planned test point(s) never reported")

    kt = ktap.parse(console)
    for name in kunit_expected:
        kv = Verdict(f"kunit:{name}[{boot.host}]")
        suite = next((s for s in kt.suites if s.name == name), None)
        if suite is None:
            kv.problems.append("expected KUnit suite did not run")
        else:
            kv.passed, kv.skipped = suite.passed, suite.skipped
            kv.failed = suite.failed + suite.missing
            kv.problems += [f"not ok: {c.name}" for c in suite.cases if c.status == "fail"]
            if suite.missing:
                kv.problems.append(f"{suite.missing} planned case(s) never reported")
            if suite.status == "fail" and not kv.problems:
                kv.problems.append("suite reported not ok")
            if not suite.cases:
                kv.problems.append("suite ran no case")
        verdicts.append(kv)
    return verdicts


# How many times a scenario whose run QEMU itself aborted is run again.
EMULATOR_RERUNS = 2


def run_scenario(fab: dict, sc: dict, logdir: Path) -> list[Verdict]:
    print(f"==> scenario {sc['name']}: booting host(s) {', '.join(sc['hosts'])}", flush=True)
    boots = boot_hosts(fab, sc["name"], sc["hosts"], logdir, reboot=sc.get("reboot", []), sc=sc)
    for attempt in range(1, EMULATOR_RERUNS + 1):
        faults = [f for f in (b.emulator_fault() for b in boots) if f]
        if not faults:
            break
        # QEMU 10.0's TCG can abort on its own (lab/NOTES.md): that run tested nothing.
        # Again from a fresh portal; a fault in every run, or any guest failure, fails.
        print(f"    ... {sc['name']}: emulator fault, not a verdict ({faults[0]}); "
              f"running the scenario again ({attempt} of {EMULATOR_RERUNS})", flush=True)
        void = logdir / "void" / str(attempt)
        void.mkdir(parents=True, exist_ok=True)
        for b in boots:
            for f in (b.console, b.output, b.qemu_err):
                if f.exists():
                    f.rename(void / f.name)
        boots = boot_hosts(fab, sc["name"], sc["hosts"], logdir, reboot=sc.get("reboot", []), sc=sc)
    verdicts = []
    for b in boots:
        verdicts += judge(b, sc.get("kunit", []), sc.get("expect_splat", False))
    for pattern in sc.get("once", []):
        # A line that exactly one boot's console must hold (e.g. one format).
        v = Verdict(f"once:{pattern}")
        n = sum(1 for b in boots if pattern in b.read(b.console))
        if n == 1:
            v.passed = 1
        else:
            v.problems.append(f"{n} boots logged '{pattern}', not exactly one")
        verdicts.append(v)
    for v in verdicts:
        ok = not v.problems and v.failed == 0
        print(f"    {'PASS' if ok else 'FAIL'} {v.name}: {v.passed} passed, {v.failed} failed"
              + (f", {v.skipped} skipped" if v.skipped else ""), flush=True)
        for p in v.problems:
            print(f"         {p}")
    for b in boots:
        print(f"    logs: {b.console} ({b.elapsed:.0f} s)")
    return verdicts


def cmd_check(args) -> int:
    fab = load_fabric()
    logdir = BUILD / "logs" / "check"
    shutil.rmtree(logdir, ignore_errors=True)
    verdicts = []
    wanted = args.only.split(",") if args.only else None
    for sc in fab["scenario"]:
        if wanted and sc["name"] not in wanted:
            continue
        verdicts += run_scenario(fab, sc, logdir)
    return summarize(verdicts)


def summarize(verdicts: list[Verdict]) -> int:
    passed = sum(v.passed for v in verdicts)
    failed = sum(v.failed + (1 if v.problems and v.failed == 0 else 0) for v in verdicts)
    bad = [v for v in verdicts if v.problems or v.failed]
    print("==> guest summary:")
    for v in verdicts:
        print(f"    {'ok    ' if v not in bad else 'FAILED'} {v.name}")
    print(f"guest: {passed} passed, {failed} failed")
    return 1 if bad else 0


def cmd_run(args) -> int:
    fab = load_fabric()
    sc = next((s for s in fab["scenario"] if s["name"] == args.scenario), None)
    if sc is None:
        sc = {"name": args.scenario, "hosts": ["a"]}
    if args.hosts:
        sc = dict(sc, hosts=args.hosts.split(","))
    return summarize(run_scenario(fab, sc, BUILD / "logs" / "run"))


def cmd_demo(args) -> int:
    fab = load_fabric()
    hosts = fab["hosts"]["names"]
    logdir = BUILD / "logs" / "demo"
    print(f"==> demo: booting hosts {', '.join(hosts)} on one shared portal "
          f"({fab['portal']['size']} file, mapped by every host's QEMU)", flush=True)
    boots = boot_hosts(fab, "demo", hosts, logdir)
    rc = 0
    for b in boots:
        print(f"\n================ host {b.host} ================")
        print(b.read(b.output).rstrip() or "(no output)")
    print()
    for b in boots:
        splats = ktap.scan_splats(b.read(b.console))
        res = ktap.parse(b.read(b.output))
        fails = [c.name for s in res.suites for c in s.cases if c.status == "fail"]
        if b.timed_out or splats or fails or not res.suites:
            rc = 1
            print(f"==> host {b.host}: PROBLEM timed_out={b.timed_out} splats={splats[:3]} failed={fails}")
        print(f"==> host {b.host}: console log {b.console}")
    print("==> demo: " + ("done" if rc == 0 else "FAILED"))
    return rc


def cmd_cmdline(args) -> int:
    fab = load_fabric()
    shm = Path("/dev/shm/cxlsw-manual")
    print(" ".join(qemu_argv(fab, args.host, shm, fab["guest"]["cmdline"],
                             Path("console.log"), Path("ktap.log"))))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="run every scenario of lab/fabric.toml")
    p.add_argument("--only", help="comma-separated scenario names")
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("run", help="boot one scenario")
    p.add_argument("scenario")
    p.add_argument("--hosts", help="comma-separated host names (default: the scenario's)")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("demo", help="two hosts sharing the portal, each host's report")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("cmdline", help="print one host's QEMU command line")
    p.add_argument("host")
    p.set_defaults(fn=cmd_cmdline)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
