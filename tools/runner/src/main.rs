// SPDX-License-Identifier: MIT OR Apache-2.0
//! `capvisor-run`: boot a Capvisor image on QEMU, interactively or checked.
//!
//! Interactive (the default, used by `make program`): the console is on your
//! terminal and Ctrl-A x quits QEMU. With `--debug`, QEMU starts halted and
//! waits for gdb. Batch (any of `--timeout`, `--expect`, `--expect-exit`):
//! the console is echoed and captured, each `--expect` text must appear in
//! order, and QEMU's exit status must match; on failure the whole transcript
//! is printed and the exit status is 1.

use capvisor_runner::{
    board, parse_number, prepare_disk, run_interactive, system_image_for_disk, ConsoleMode, Loader,
    QemuCommand, RunError, Session, BOARDS,
};
use std::time::Duration;

/// The board `--board` defaults to (the root Makefile's `BOARD`).
const DEFAULT_BOARD: &str = "integrator-cp";

/// The usage text; `{boards}` stands for the runner's known boards and
/// `{default}` for [`DEFAULT_BOARD`].
const USAGE: &str = "\
usage: capvisor-run [--board NAME] --kernel ELF [--system FILE [--search DIR]...] [--loader FILE@ADDR]... [--disk FILE] [--icount]
                    [--debug [--gdb-port N]] [--print-command]
                    [--timeout SECS] [--expect TEXT]... [--expect-exit N]

  --board NAME       board to emulate: {boards} (default {default})
  --kernel ELF       the Capvisor image
  --loader FILE@ADDR place FILE at physical ADDR before boot (repeatable)
  --system FILE      check the system description FILE, pack it with its images and place it at the board's staging area
  --search DIR       look for the description's files in DIR too (repeatable; after the description's own folder)
  --disk FILE        attach FILE as the board disk (an SD card on integrator-cp, virtio-blk on qemu-virt);
                     created (256 MiB, sparse) when it does not exist
  --icount           deterministic instruction counting (-icount shift=0)
  --debug            start halted, waiting for gdb-multiarch (interactive)
  --gdb-port N       gdb port for --debug (default 1234)
  --print-command    print the QEMU command line and exit
  --timeout SECS     batch mode: fail if QEMU runs longer (default 60)
  --expect TEXT      batch mode: TEXT must appear on the console (repeatable, in order)
  --expect-exit N    batch mode: required exit status (default 0)";

/// [`USAGE`] with the known boards and the default filled in.
fn usage() -> String {
    let boards: Vec<_> = BOARDS.iter().map(|board| board.name).collect();
    USAGE
        .replace("{boards}", &boards.join(", "))
        .replace("{default}", DEFAULT_BOARD)
}

#[derive(Debug, Default)]
struct Options {
    board: Option<String>,
    kernel: Option<String>,
    loaders: Vec<Loader>,
    system: Option<std::path::PathBuf>,
    search: Vec<std::path::PathBuf>,
    disk: Option<std::path::PathBuf>,
    icount: bool,
    debug: bool,
    gdb_port: Option<u16>,
    print_command: bool,
    timeout: Option<u64>,
    expects: Vec<String>,
    expect_exit: Option<i32>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, RunError> {
    let mut options = Options::default();
    while let Some(flag) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| RunError::Usage(format!("{name} needs a value\n{}", usage())))
        };
        let number = |text: String, name: &str| {
            parse_number(&text)
                .ok_or_else(|| RunError::Usage(format!("{name}: {text:?} is not a number")))
        };
        match flag.as_str() {
            "--board" => options.board = Some(value("--board")?),
            "--kernel" => options.kernel = Some(value("--kernel")?),
            "--loader" => options.loaders.push(Loader::parse(&value("--loader")?)?),
            "--system" => options.system = Some(value("--system")?.into()),
            "--search" => options.search.push(value("--search")?.into()),
            "--disk" => options.disk = Some(value("--disk")?.into()),
            "--icount" => options.icount = true,
            "--debug" => options.debug = true,
            "--gdb-port" => {
                let port = number(value("--gdb-port")?, "--gdb-port")?;
                options.gdb_port = Some(u16::try_from(port).map_err(|_| {
                    RunError::Usage(format!("--gdb-port: {port} is not a TCP port"))
                })?);
            }
            "--print-command" => options.print_command = true,
            "--timeout" => options.timeout = Some(number(value("--timeout")?, "--timeout")?),
            "--expect" => options.expects.push(value("--expect")?),
            "--expect-exit" => {
                let status = number(value("--expect-exit")?, "--expect-exit")?;
                options.expect_exit = Some(status as i32);
            }
            "-h" | "--help" => return Err(RunError::Usage(usage())),
            other => {
                return Err(RunError::Usage(format!(
                    "unknown option {other:?}\n{}",
                    usage()
                )))
            }
        }
    }
    Ok(options)
}

fn run(options: Options) -> Result<i32, RunError> {
    let board = board(options.board.as_deref().unwrap_or(DEFAULT_BOARD))?;
    let kernel = options
        .kernel
        .ok_or_else(|| RunError::Usage(format!("--kernel is required\n{}", usage())))?;
    let mut command = QemuCommand::new(board, &kernel);
    command.loaders = options.loaders;
    // The disk first: a description is checked against its size.
    let mut disk_bytes = None;
    if let Some(disk) = options.disk {
        let (bytes, created) = prepare_disk(&command.board, &disk)?;
        eprintln!(
            "capvisor-run: board disk {} ({} MiB{})",
            disk.display(),
            bytes >> 20,
            if created { ", created now" } else { "" }
        );
        disk_bytes = Some(bytes);
        command.disk = Some(disk);
    }
    if let Some(system) = &options.system {
        // The packed image goes next to the hypervisor image, one per
        // board and description.
        let stem = system.file_stem().unwrap_or_default().to_string_lossy();
        let output = std::path::Path::new(&kernel)
            .with_file_name(format!("system-{}-{stem}.img", command.board.name));
        let loader =
            system_image_for_disk(&command.board, system, &options.search, &output, disk_bytes)?;
        command.loaders.push(loader);
    }
    command.icount = options.icount;
    if options.debug {
        command.gdb_port = Some(options.gdb_port.unwrap_or(1234));
    }
    let batch =
        options.timeout.is_some() || !options.expects.is_empty() || options.expect_exit.is_some();
    let mode = if batch {
        ConsoleMode::Captured
    } else {
        ConsoleMode::Interactive
    };
    if options.print_command {
        println!("{}", command.display(mode));
        return Ok(0);
    }
    if !batch {
        eprintln!("capvisor-run: {}", command.display(mode));
        if let Some(port) = command.gdb_port {
            eprintln!("capvisor-run: QEMU is halted waiting for gdb; in another terminal run:");
            eprintln!("  gdb-multiarch -q {kernel} -ex 'target remote localhost:{port}'");
        }
        eprintln!("capvisor-run: console attached; Ctrl-A x quits QEMU");
        return run_interactive(&command);
    }
    let timeout = Duration::from_secs(options.timeout.unwrap_or(60));
    // Show the console live while it is captured.
    std::env::set_var("CAPVISOR_ECHO", "1");
    let mut session = Session::start(&command)?;
    for text in &options.expects {
        session.expect(text, timeout)?;
    }
    let status = session.wait_exit(timeout)?;
    let expected = options.expect_exit.unwrap_or(0);
    if status != expected {
        return Err(RunError::WrongStatus {
            expected,
            status,
            transcript: session.transcript(),
        });
    }
    eprintln!(
        "capvisor-run: ok: {} expected line(s) seen, exit status {status}",
        options.expects.len()
    );
    Ok(0)
}

fn main() {
    let result = parse(std::env::args().skip(1)).and_then(run);
    match result {
        Ok(status) => std::process::exit(status),
        Err(RunError::Usage(text)) if text == usage() => {
            println!("{text}");
        }
        Err(error) => {
            eprintln!("capvisor-run: {error}");
            std::process::exit(1);
        }
    }
}
