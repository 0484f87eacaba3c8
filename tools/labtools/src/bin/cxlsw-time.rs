// SPDX-License-Identifier: GPL-2.0
//! cxlsw-time FILE TEXT: write TEXT to FILE (a sysfs attribute, typically
//! a driver's bind or new_id) in one write(2) and print how long the write
//! took, in microseconds of CLOCK_MONOTONIC. Exits 1, saying why, if the
//! write fails. The lab's benchmarks time binding drivers with it, as the
//! guest's busybox clock has only seconds.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, text] = args.as_slice() else {
        eprintln!("usage: cxlsw-time FILE TEXT");
        return ExitCode::from(2);
    };
    let mut f = match OpenOptions::new().write(true).open(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cxlsw-time: {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let written = f.write(text.as_bytes());
    let us = start.elapsed().as_micros();
    match written {
        Ok(n) if n == text.len() => {
            println!("{us}");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            eprintln!("cxlsw-time: {file}: wrote {n} of {} bytes", text.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cxlsw-time: {file}: {e}");
            ExitCode::FAILURE
        }
    }
}
