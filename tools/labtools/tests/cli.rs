// SPDX-License-Identifier: GPL-2.0
//! cxlsw-workload as a test harness runs it: its output, the pause, and the
//! exit statuses, a second runner and a broken state page included; and the
//! command line of --import (its run needs a handoff: the lab's scenario).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use labtools::workload;

fn workload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cxlsw-workload"))
        .args(args)
        .output()
        .expect("cxlsw-workload runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The last two lines every run ends with.
fn result_lines(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "{out}");
    lines[lines.len() - 2..].join("\n")
}

/// A run of `args` paused: the child, its stdout, and the paused line's
/// address, length and pid.
struct Paused {
    child: Child,
    out: BufReader<ChildStdout>,
    addr: u64,
    len: usize,
}

fn paused(args: &[&str], k: u64) -> Paused {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cxlsw-workload"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cxlsw-workload runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[..3], ["paused", "at", &k.to_string()], "{line}");
    assert_eq!((f[3], f[5], f[7]), ("addr", "len", "pid"), "{line}");
    assert_eq!(f[8], child.id().to_string(), "{line}");
    let addr = u64::from_str_radix(f[4].strip_prefix("0x").unwrap(), 16).unwrap();
    Paused {
        child,
        out,
        addr,
        len: f[6].parse().unwrap(),
    }
}

impl Paused {
    /// Sends `line` (None: closes stdin), and returns the exit status's code,
    /// the rest of stdout and stderr.
    fn resume(mut self, line: Option<&str>) -> (Option<i32>, String, String) {
        let mut stdin = self.child.stdin.take().unwrap();
        if let Some(line) = line {
            stdin.write_all(line.as_bytes()).unwrap();
        }
        drop(stdin);
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let mut err = String::new();
        let mut stderr = self.child.stderr.take().unwrap();
        stderr.read_to_string(&mut err).unwrap();
        (self.child.wait().unwrap().code(), rest, err)
    }

    /// The child's memory, as a debugger or a migration tool sees it.
    fn mem(&self) -> std::fs::File {
        let path = format!("/proc/{}/mem", self.child.id());
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

#[test]
fn the_default_run_prints_what_expect_prints() {
    let run = stdout(&workload(&[
        "--mib", "2", "--steps", "700", "--seed", "0x99",
    ]));
    let expect = stdout(&workload(&[
        "--mib", "2", "--steps", "700", "--seed", "153", "--expect",
    ]));
    assert_eq!(run, expect);
    let lines: Vec<&str> = run.lines().collect();
    assert_eq!(lines.len(), 2, "{run}");
    let hex = lines[0].strip_prefix("result ").unwrap();
    assert!(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(lines[1], "steps 700");
    let want = workload::expect(512, 0x99, 700).unwrap();
    assert_eq!(lines[0], format!("result {want:016x}"));
}

#[test]
fn a_paused_run_goes_on_after_a_line_or_at_end_of_file() {
    let args = ["--mib", "1", "--steps", "300"];
    let expect = stdout(&workload(&args));
    for (k, line) in [(0, Some("go\n")), (120, Some("\n")), (300, None), (7, None)] {
        let ks = k.to_string();
        let p = paused(&[&args[..], &["--pause-after", &ks]].concat(), k);
        assert_eq!(p.len, 1 << 20);
        let (code, rest, err) = p.resume(line);
        assert_eq!(code, Some(0), "k {k}: {err}");
        assert_eq!(rest, expect, "k {k}");
    }
}

#[test]
fn progress_prints_each_tenth() {
    let out = stdout(&workload(&["--mib", "1", "--steps", "1000", "--progress"]));
    let progress: Vec<&str> = out.lines().filter(|l| l.starts_with("progress ")).collect();
    let want: Vec<String> = (1..=10)
        .map(|i| format!("progress {}/1000", i * 100))
        .collect();
    assert_eq!(progress, want);
    assert_eq!(
        result_lines(&out),
        stdout(&workload(&["--mib", "1", "--steps", "1000"])).trim_end()
    );
}

#[test]
fn another_runner_makes_it_exit_4() {
    let p = paused(&["--mib", "1", "--steps", "50", "--pause-after", "20"], 20);
    // A second runner claims the memory: it writes its token in the state page.
    let mut mem = vec![0; p.len];
    p.mem().read_exact_at(&mut mem[..64], p.addr).unwrap();
    let st = workload::claim(&mut mem, 0x5ec0_0d00).unwrap();
    assert_eq!(st.done, 20);
    p.mem().write_all_at(&mem[..64], p.addr).unwrap();
    let (code, rest, err) = p.resume(Some("\n"));
    assert_eq!(code, Some(4), "stdout: {rest} stderr: {err}");
    assert!(err.contains("another runner took this workload"), "{err}");
    assert!(!rest.contains("result"), "{rest}");
}

#[test]
fn a_broken_state_page_makes_it_exit_3() {
    for (at, bytes, check) in [
        (0, &b"XXXXXXXX"[..], "bad magic"),
        (16, &[0xff][..], "bad checksum"),
    ] {
        let p = paused(&["--mib", "1", "--steps", "50", "--pause-after", "20"], 20);
        p.mem().write_all_at(bytes, p.addr + at).unwrap();
        let (code, rest, err) = p.resume(Some("\n"));
        assert_eq!(code, Some(3), "stdout: {rest} stderr: {err}");
        assert!(
            err.contains("does not validate") && err.contains(check),
            "{err}"
        );
    }
}

#[test]
fn usage_errors_exit_2_naming_the_option() {
    for (args, named) in [
        (&["--steps", "5"][..], "--mib is missing"),
        (&["--mib", "1"], "--steps is missing"),
        (&["--mib", "0", "--steps", "5"], "--mib"),
        (&["--mib", "65537", "--steps", "5"], "--mib"),
        (&["--mib", "1", "--steps", "0"], "--steps"),
        (&["--mib", "1", "--steps", "five"], "--steps"),
        (
            &["--mib", "1", "--steps", "5", "--seed"],
            "--seed needs a value",
        ),
        (&["--mib", "1", "--steps", "5", "--seed", "0xg"], "--seed"),
        (
            &["--mib", "1", "--steps", "5", "--pause-after", "6"],
            "--pause-after",
        ),
        (
            &[
                "--mib",
                "1",
                "--steps",
                "5",
                "--pause-after",
                "1",
                "--expect",
            ],
            "--pause-after",
        ),
        (
            &["--mib", "1", "--mib", "2", "--steps", "5"],
            "--mib given twice",
        ),
        (&["--mib", "1", "--steps", "5", "--fast"], "--fast"),
        (&["--mib=1", "--steps", "5"], "--mib=1"),
        (&["--import", "2:3"], "--import"),
        (&["--import", "2:3:0x2a"], "--steps is missing"),
        (
            &["--import", "2:3:0x2a", "--steps", "5", "--mib", "1"],
            "--mib: not with --import",
        ),
        (
            &["--import", "2:3:0x2a", "--steps", "5", "--seed", "1"],
            "--seed: not with --import",
        ),
        (
            &["--import", "2:3:0x2a", "--steps", "5", "--expect"],
            "--expect: not with --import",
        ),
        (
            &["--import", "2:3:0x2a", "--steps", "5", "--pause-after", "0"],
            "--pause-after: not with --import",
        ),
    ] {
        let out = workload(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_explains_every_option_and_exit_status() {
    for flag in ["--help", "-h"] {
        let help = stdout(&workload(&[flag]));
        for word in [
            "--mib N",
            "--steps S",
            "--seed X",
            "--pause-after K",
            "--progress",
            "--expect",
            "--import NODE:INDEX:ID",
            "paused at K addr 0x<hex> len <bytes> pid <pid>",
            "imported <pages> pages at 0x<hex addr> len <bytes> pid <pid>",
            "done, waiting",
            "MAP_FIXED_NOREPLACE",
            "/dev/cxl_switched",
            "numa_maps",
            "result <16 hex digits>",
            "runner token",
            "  0  ",
            "  1  ",
            "  2  ",
            "  3  ",
            "  4  ",
        ] {
            assert!(help.contains(word), "{word} not in:\n{help}");
        }
    }
}

/// Without the device (or as a user, or with no such handoff): exit status 1,
/// naming the device, the request and the errno, and nothing on stdout.
#[test]
fn an_import_the_device_refuses_exits_1_naming_it() {
    let out = workload(&["--import", "2:3:0x2a", "--steps", "5", "--progress"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("cxlsw-workload: /dev/cxl_switched: "),
        "{err}"
    );
    assert!(err.contains("OPEN: ") || err.contains("ACCEPT: "), "{err}");
    assert!(err.contains("(os error "), "{err}");
    assert!(out.stdout.is_empty());
}
