// SPDX-License-Identifier: MIT OR Apache-2.0
//! `capvisor-system`: checks system descriptions and packs them.
//!
//! ```text
//! capvisor-system check [--board NAME] [--search DIR]... [--board-disk-bytes N] FILE...
//! capvisor-system pack  [--board NAME] [--search DIR]... [--board-disk-bytes N] FILE --output IMAGE
//! capvisor-system describe --kernel ZIMAGE [--initrd FILE] [--bootargs TEXT] --output FILE
//! ```
//!
//! Every problem is printed as `FILE:LINE:COLUMN: KEY: message`; the exit
//! status is 1 if a description has one, 2 on bad usage.

use capvisor_system::{format_size, load, one_vm_description, pack, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: capvisor-system check [--board NAME] [--search DIR]... [--board-disk-bytes N] FILE...
       capvisor-system pack  [--board NAME] [--search DIR]... [--board-disk-bytes N] FILE --output IMAGE
       capvisor-system describe --kernel ZIMAGE [--initrd FILE] [--bootargs TEXT] --output FILE
  --board NAME   the board it runs on (default: the description's 'board' key)
  --search DIR   a folder to look in for files not found next to the description (repeatable)
  --board-disk-bytes N  the board disk's size: refuse slices of it past its end
  --output FILE  where pack writes the system image, describe the description
  --kernel, --initrd, --bootargs  describe: one Linux VM (256 MiB) booting these";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let mut options = Options::default();
    let mut files = Vec::new();
    let mut output = None;
    let (mut kernel, mut initrd, mut bootargs) = (None, None, String::from("console=ttyAMA0"));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--board" | "--search" | "--output" | "--kernel" | "--initrd" | "--bootargs"
            | "--board-disk-bytes" => {
                let Some(value) = args.next() else {
                    eprintln!("{arg} needs a value\n{USAGE}");
                    return ExitCode::from(2);
                };
                match arg.as_str() {
                    "--board" => options.board = Some(value),
                    "--search" => options.search.push(value.into()),
                    "--board-disk-bytes" => match value.parse() {
                        Ok(bytes) => options.board_disk_bytes = Some(bytes),
                        Err(_) => {
                            eprintln!("--board-disk-bytes needs a number of bytes\n{USAGE}");
                            return ExitCode::from(2);
                        }
                    },
                    "--kernel" => kernel = Some(PathBuf::from(value)),
                    "--initrd" => initrd = Some(PathBuf::from(value)),
                    "--bootargs" => bootargs = value,
                    _ => output = Some(PathBuf::from(value)),
                }
            }
            _ => files.push(PathBuf::from(arg)),
        }
    }
    match (command.as_str(), files.len(), &output) {
        ("check", 1.., None) => check(&files, &options),
        ("pack", 1, Some(output)) => pack_one(&files[0], &options, output),
        ("describe", 0, Some(output)) if kernel.is_some() => {
            let text = one_vm_description(
                kernel.as_deref().unwrap_or(Path::new("")),
                initrd.as_deref(),
                &bootargs,
            );
            match std::fs::write(output, text) {
                Ok(()) => {
                    println!("{}: a one-VM system description", output.display());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("{}: cannot write: {error}", output.display());
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn check(files: &[PathBuf], options: &Options) -> ExitCode {
    let mut failed = false;
    for file in files {
        match load(file, options) {
            Ok(system) => println!(
                "{}: {} VMs for board '{}', every check passed",
                file.display(),
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

fn pack_one(file: &Path, options: &Options, output: &Path) -> ExitCode {
    let system = match load(file, options) {
        Ok(system) => system,
        Err(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let image = match pack(&system) {
        Ok(image) => image,
        Err(refused) => {
            eprintln!("{refused}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::write(output, &image) {
        eprintln!("{}: cannot write: {error}", output.display());
        return ExitCode::FAILURE;
    }
    println!(
        "{}: {} VMs for board '{}', packed into {} ({})",
        file.display(),
        system.vms.len(),
        system.board.name,
        output.display(),
        format_size(image.len() as u64)
    );
    ExitCode::SUCCESS
}
