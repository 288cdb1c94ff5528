// SPDX-License-Identifier: MIT OR Apache-2.0
//! `capvisor-system check FILE...`: reads and checks system descriptions,
//! printing every problem as `FILE:LINE:COLUMN: KEY: message`; exits 1 if
//! any has one, 2 on bad usage.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, files)) = args.split_first() else {
        eprintln!("usage: capvisor-system check FILE...");
        return ExitCode::from(2);
    };
    if command != "check" || files.is_empty() {
        eprintln!("usage: capvisor-system check FILE...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for file in files {
        let path = Path::new(file);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("{file}: cannot read: {error}");
                failed = true;
                continue;
            }
        };
        match capvisor_system::check(path, &text) {
            Ok(system) => println!(
                "{file}: {} VMs for board '{}', every check passed",
                system.vms.len(),
                system.board.name
            ),
            Err(problems) => {
                failed = true;
                for problem in problems {
                    eprintln!("{problem}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
