// SPDX-License-Identifier: MIT OR Apache-2.0
//! Runs Capvisor boards under QEMU: command line, console, timeout, status.
//!
//! [`QemuCommand`] builds the `qemu-system-arm` command line for a board (the
//! machine, CPU and RAM the board is written for, the hypervisor ELF,
//! semihosting so the hypervisor's exit code becomes QEMU's, and the packed
//! system image placed at the board's staging area with QEMU's generic
//! loader: [`system_image`] checks a system description and packs it). It runs either interactively, with the
//! console on the terminal (`make program`), or as a [`Session`] whose serial
//! output is captured, matched line by line with [`Session::expect`] and kept
//! as a transcript, with a timeout on every wait (the integration tests).
//! Every [`RunError`] prints the whole console transcript, so a failing test
//! shows what the hypervisor said.
//!
//! ```no_run
//! use capvisor_runner::{board, QemuCommand, Session};
//! use std::time::Duration;
//! let command = QemuCommand::new(board("integrator-cp")?, "capvisor.elf");
//! let mut session = Session::start(&command)?;
//! session.expect("coverage check passed", Duration::from_secs(60))?;
//! assert_eq!(session.wait_exit(Duration::from_secs(60))?, 0);
//! # Ok::<(), capvisor_runner::RunError>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The QEMU machine a board runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// The board's name in this tree (`boards/<name>`).
    pub name: &'static str,
    /// The board's cargo package, whose binary is the hypervisor image.
    pub package: &'static str,
    /// QEMU `-M` value.
    pub machine: &'static str,
    /// QEMU `-cpu` value.
    pub cpu: &'static str,
    /// QEMU `-m` value, in MiB.
    pub memory_mib: u32,
    /// QEMU `-smp` value: the CPUs the machine has.
    pub cpus: u32,
    /// Where the board's staging area starts: the system image goes here.
    pub staging: u64,
    /// How QEMU attaches the board disk to this machine.
    pub disk: DiskInterface,
}

/// How a board's disk image reaches QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskInterface {
    /// An SD card behind the machine's MMC controller (`-drive if=sd`):
    /// QEMU wants the image's size to be a power of two.
    SdCard,
    /// A `virtio-blk-device` on the machine's virtio-mmio bus, spoken to
    /// as virtio 1.x (`-global virtio-mmio.force-legacy=false`).
    VirtioMmio,
}

/// The size of a disk image the runner creates: 256 MiB, a power of two
/// as QEMU's SD card needs, sparse on the host.
pub const DEFAULT_DISK_BYTES: u64 = 256 << 20;

/// Makes sure the disk image `path` exists for `board`: creates it (sparse,
/// [`DEFAULT_DISK_BYTES`], its folder too) when it does not; refuses one
/// that is empty or, for an SD card, whose size is not a power of two.
/// Returns its size and whether it was created.
pub fn prepare_disk(board: &Board, path: &Path) -> Result<(u64, bool), RunError> {
    let cannot = |what: &str, error: std::io::Error| {
        RunError::Usage(format!(
            "cannot {what} disk image {}: {error}",
            path.display()
        ))
    };
    let created = !path.exists();
    if created {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| cannot("create the folder of", error))?;
        }
        let file = std::fs::File::create(path).map_err(|error| cannot("create", error))?;
        file.set_len(DEFAULT_DISK_BYTES)
            .map_err(|error| cannot("size", error))?;
    }
    let bytes = std::fs::metadata(path)
        .map_err(|error| cannot("read", error))?
        .len();
    if bytes == 0 || bytes % 512 != 0 {
        return Err(RunError::Usage(format!(
            "disk image {} has {bytes} bytes: not a non-zero multiple of 512",
            path.display()
        )));
    }
    if board.disk == DiskInterface::SdCard && !bytes.is_power_of_two() {
        return Err(RunError::Usage(format!(
            "disk image {} has {bytes} bytes: {}'s SD card needs a power of two (truncate -s {} {})",
            path.display(),
            board.name,
            bytes.next_power_of_two(),
            path.display()
        )));
    }
    Ok((bytes, created))
}

/// Every board the runner knows.
pub const BOARDS: [Board; 2] = [
    Board {
        name: "integrator-cp",
        package: "capvisor-integrator-cp",
        machine: "integratorcp",
        cpu: "cortex-a15",
        memory_mib: 1024,
        cpus: 1,
        staging: 0xb000_0000,
        disk: DiskInterface::SdCard,
    },
    // RAM at 0x4000_0000 (1 GiB); the staging area is its last 256 MiB.
    // A GICv2 with the virtualization interfaces (GICH, GICV) needs
    // `virtualization=on` (which also starts the CPU in Hyp mode) and
    // `gic-version=2`. Four CPUs, all of which Capvisor starts.
    Board {
        name: "qemu-virt",
        package: "capvisor-qemu-virt",
        machine: "virt,virtualization=on,gic-version=2",
        cpu: "cortex-a15",
        memory_mib: 1024,
        cpus: 4,
        staging: 0x7000_0000,
        disk: DiskInterface::VirtioMmio,
    },
];

/// Checks the system description `file` for `board` (files it names are
/// looked up next to it, then in `search`), packs it with its images
/// (`capvisor-system`), writes the system image to `output`, and returns
/// the loader that places it at the board's staging area. A description
/// with problems is refused, every problem listed with its file and line.
pub fn system_image(
    board: &Board,
    file: &Path,
    search: &[PathBuf],
    output: &Path,
) -> Result<Loader, RunError> {
    system_image_for_disk(board, file, search, output, None)
}

/// [`system_image`] for a run with a board disk of `disk_bytes` (the
/// disk file's size): a description whose slices of the board disk reach
/// past its end is refused, naming both sizes.
pub fn system_image_for_disk(
    board: &Board,
    file: &Path,
    search: &[PathBuf],
    output: &Path,
    disk_bytes: Option<u64>,
) -> Result<Loader, RunError> {
    let options = capvisor_system::Options {
        board: Some(board.name.to_string()),
        search: search.to_vec(),
        board_disk_bytes: disk_bytes,
    };
    let system = capvisor_system::load(file, &options).map_err(|problems| {
        RunError::Description(problems.iter().map(ToString::to_string).collect())
    })?;
    let image =
        capvisor_system::pack(&system).map_err(|refused| RunError::Description(vec![refused]))?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).map_err(|error| {
            RunError::Usage(format!("cannot create {}: {error}", dir.display()))
        })?;
    }
    // Write a fresh file and rename it: a QEMU still running may have the
    // old one open.
    let partial = output.with_extension("partial");
    std::fs::write(&partial, &image)
        .and_then(|()| std::fs::rename(&partial, output))
        .map_err(|error| RunError::Usage(format!("cannot write {}: {error}", output.display())))?;
    Ok(Loader {
        file: output.to_path_buf(),
        address: board.staging,
    })
}

/// The board called `name`.
pub fn board(name: &str) -> Result<Board, RunError> {
    BOARDS
        .iter()
        .find(|board| board.name == name)
        .cloned()
        .ok_or_else(|| RunError::UnknownBoard {
            name: name.to_string(),
        })
}

/// A file QEMU's generic loader places in memory before the CPU starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loader {
    /// The file, loaded raw (not as an ELF).
    pub file: PathBuf,
    /// Physical address of its first byte.
    pub address: u64,
}

impl Loader {
    /// Parses `FILE@ADDRESS` (address in hex with `0x`, or decimal).
    pub fn parse(text: &str) -> Result<Loader, RunError> {
        let bad = || RunError::Usage(format!("bad loader {text:?}: expected FILE@ADDRESS"));
        let (file, address) = text.rsplit_once('@').ok_or_else(bad)?;
        if file.is_empty() {
            return Err(bad());
        }
        Ok(Loader {
            file: PathBuf::from(file),
            address: parse_number(address).ok_or_else(|| {
                RunError::Usage(format!("bad address {address:?} in loader {text:?}"))
            })?,
        })
    }
}

/// Parses `0x`-prefixed hexadecimal or decimal.
pub fn parse_number(text: &str) -> Option<u64> {
    let text = text.trim().replace('_', "");
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Where the serial console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// On the terminal, multiplexed with QEMU's monitor (`-nographic`):
    /// Ctrl-A x quits, Ctrl-A c switches to the monitor.
    Interactive,
    /// On QEMU's stdin/stdout, for a [`Session`] to read and write; no
    /// monitor.
    Captured,
}

/// A QEMU command line for one board and one hypervisor image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    /// The board.
    pub board: Board,
    /// The hypervisor ELF (`-kernel`).
    pub kernel: PathBuf,
    /// Extra images (guest kernels, initrds, device trees).
    pub loaders: Vec<Loader>,
    /// `-icount shift=0`: one instruction per virtual nanosecond, so
    /// instruction counts are reproducible (benchmarks).
    pub icount: bool,
    /// `-S -gdb tcp::PORT`: start halted, waiting for gdb.
    pub gdb_port: Option<u16>,
    /// The board disk's image file (raw), attached as the board's
    /// [`DiskInterface`] says; `None`: no disk.
    pub disk: Option<PathBuf>,
    /// Anything else to pass to QEMU.
    pub extra_args: Vec<String>,
    /// The QEMU program; `None` uses [`QemuCommand::program`].
    pub program: Option<PathBuf>,
}

impl QemuCommand {
    /// A command that boots `kernel` on `board`.
    pub fn new(board: Board, kernel: impl Into<PathBuf>) -> QemuCommand {
        QemuCommand {
            board,
            kernel: kernel.into(),
            loaders: Vec::new(),
            icount: false,
            gdb_port: None,
            disk: None,
            extra_args: Vec::new(),
            program: None,
        }
    }

    /// The default QEMU program: `$CAPVISOR_QEMU`, else `qemu-system-arm`.
    pub fn program() -> String {
        std::env::var("CAPVISOR_QEMU").unwrap_or_else(|_| "qemu-system-arm".to_string())
    }

    fn program_for(&self) -> PathBuf {
        self.program
            .clone()
            .unwrap_or_else(|| PathBuf::from(QemuCommand::program()))
    }

    /// Every argument after the program name.
    pub fn args(&self, mode: ConsoleMode) -> Vec<String> {
        let mut args: Vec<String> = [
            "-M",
            self.board.machine,
            "-cpu",
            self.board.cpu,
            "-m",
            &self.board.memory_mib.to_string(),
            "-smp",
            &self.board.cpus.to_string(),
            "-kernel",
            &self.kernel.display().to_string(),
            "-semihosting-config",
            "enable=on,target=native",
            "-no-reboot",
            // The boards' PL031 (the wall clock the hypervisor reads at
            // boot) starts at the host's time in UTC, as the guests' RTC
            // counts, whatever the host's time zone (QEMU's default, said
            // explicitly: a test compares guests' clocks with the host's).
            "-rtc",
            "base=utc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match mode {
            ConsoleMode::Interactive => args.push("-nographic".into()),
            ConsoleMode::Captured => args.extend(
                ["-display", "none", "-serial", "stdio", "-monitor", "none"].map(String::from),
            ),
        }
        for loader in &self.loaders {
            args.push("-device".into());
            args.push(format!(
                "loader,file={},addr={:#x},force-raw=on",
                loader.file.display(),
                loader.address
            ));
        }
        if let Some(disk) = &self.disk {
            let file = disk.display();
            match self.board.disk {
                DiskInterface::SdCard => {
                    args.extend(["-drive".into(), format!("if=sd,file={file},format=raw")]);
                }
                DiskInterface::VirtioMmio => args.extend([
                    "-drive".into(),
                    format!("if=none,id=board-disk,file={file},format=raw"),
                    "-device".into(),
                    "virtio-blk-device,drive=board-disk".into(),
                    "-global".into(),
                    "virtio-mmio.force-legacy=false".into(),
                ]),
            }
        }
        if self.icount {
            args.extend(["-icount", "shift=0"].map(String::from));
        }
        if let Some(port) = self.gdb_port {
            args.extend(["-S".to_string(), "-gdb".to_string(), format!("tcp::{port}")]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The command as one shell-readable line (for logs).
    pub fn display(&self, mode: ConsoleMode) -> String {
        std::iter::once(self.program_for().display().to_string())
            .chain(self.args(mode))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks that the files exist and builds the process. QEMU's audio
    /// backend is turned off, whatever the board: a board with a sound
    /// device (the Integrator/CP has one) would otherwise complain on
    /// machines without sound, and on the others it changes nothing.
    pub fn to_command(&self, mode: ConsoleMode) -> Result<Command, RunError> {
        check_file(&self.kernel, "hypervisor image")?;
        for loader in &self.loaders {
            check_file(&loader.file, "loader image")?;
        }
        if let Some(disk) = &self.disk {
            check_file(disk, "disk image")?;
        }
        let mut command = Command::new(self.program_for());
        command.args(self.args(mode)).env("QEMU_AUDIO_DRV", "none");
        Ok(command)
    }
}

fn check_file(path: &Path, what: &str) -> Result<(), RunError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(RunError::MissingFile {
            what: what.to_string(),
            path: path.to_path_buf(),
        })
    }
}

fn spawn_error(command: &QemuCommand, error: std::io::Error) -> RunError {
    if error.kind() == std::io::ErrorKind::NotFound {
        RunError::QemuNotFound {
            program: command.program_for(),
        }
    } else {
        RunError::Spawn(error.to_string())
    }
}

/// Starts `process`, retrying briefly on ETXTBSY: a program file that was
/// just written (a fresh build, a test's fake QEMU) can still be open for
/// writing in a child another thread is forking.
fn spawn_retrying(process: &mut Command) -> std::io::Result<Child> {
    const ETXTBSY: i32 = 26;
    let mut attempts = 0;
    loop {
        match process.spawn() {
            Err(error) if error.raw_os_error() == Some(ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// Runs QEMU with the console on this terminal and returns its exit status.
pub fn run_interactive(command: &QemuCommand) -> Result<i32, RunError> {
    let mut process = command.to_command(ConsoleMode::Interactive)?;
    let status = process
        .status()
        .map_err(|error| spawn_error(command, error))?;
    status.code().ok_or(RunError::Killed {
        transcript: String::new(),
    })
}

/// Why a run failed. `Display` ends with the console transcript, if any.
#[derive(Debug)]
pub enum RunError {
    /// No board with that name.
    UnknownBoard { name: String },
    /// An input file does not exist.
    MissingFile { what: String, path: PathBuf },
    /// The QEMU program is not installed.
    QemuNotFound { program: PathBuf },
    /// Starting QEMU failed for another reason.
    Spawn(String),
    /// Bad command-line usage.
    Usage(String),
    /// The expected text did not appear in time.
    Timeout {
        waiting_for: String,
        after: Duration,
        transcript: String,
    },
    /// QEMU exited before the expected text appeared.
    ExitedEarly {
        waiting_for: String,
        status: Option<i32>,
        transcript: String,
    },
    /// QEMU was killed by a signal.
    Killed { transcript: String },
    /// QEMU exited with another status than expected.
    WrongStatus {
        expected: i32,
        status: i32,
        transcript: String,
    },
    /// Writing to QEMU's console failed.
    Console { error: String, transcript: String },
    /// A system description with problems (each `FILE:LINE:COLUMN: ...`).
    Description(Vec<String>),
}

impl RunError {
    /// The console transcript at the time of the error, if one was running.
    pub fn transcript(&self) -> Option<&str> {
        match self {
            RunError::Timeout { transcript, .. }
            | RunError::ExitedEarly { transcript, .. }
            | RunError::Killed { transcript }
            | RunError::WrongStatus { transcript, .. }
            | RunError::Console { transcript, .. } => Some(transcript),
            _ => None,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::UnknownBoard { name } => {
                let known: Vec<_> = BOARDS.iter().map(|b| b.name).collect();
                write!(
                    f,
                    "unknown board {name:?} (known boards: {})",
                    known.join(", ")
                )?
            }
            RunError::Description(problems) => {
                write!(f, "the system description has problems:")?;
                for problem in problems {
                    write!(f, "\n  {problem}")?;
                }
            }
            RunError::MissingFile { what, path } => {
                write!(f, "{what} {} does not exist", path.display())?
            }
            RunError::QemuNotFound { program } => write!(
                f,
                "{} not found: run `make setup` or install the qemu-system-arm package",
                program.display()
            )?,
            RunError::Spawn(error) => write!(f, "cannot start QEMU: {error}")?,
            RunError::Usage(message) => write!(f, "{message}")?,
            RunError::Timeout {
                waiting_for, after, ..
            } => write!(
                f,
                "timed out after {:.1} s waiting for {waiting_for}",
                after.as_secs_f64()
            )?,
            RunError::ExitedEarly {
                waiting_for,
                status,
                ..
            } => match status {
                Some(status) => write!(f, "QEMU exited with status {status} before {waiting_for}")?,
                None => write!(f, "QEMU was killed by a signal before {waiting_for}")?,
            },
            RunError::Killed { .. } => write!(f, "QEMU was killed by a signal")?,
            RunError::WrongStatus {
                expected, status, ..
            } => write!(f, "QEMU exited with status {status}, expected {expected}")?,
            RunError::Console { error, .. } => write!(f, "cannot write to the console: {error}")?,
        }
        if let Some(transcript) = self.transcript() {
            write!(
                f,
                "\n----- console transcript ({} lines) -----\n{}",
                transcript.lines().count(),
                transcript
            )?;
            if !transcript.ends_with('\n') {
                writeln!(f)?;
            }
            write!(f, "----- end of transcript -----")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}

/// Console output collected by the reader threads.
#[derive(Debug, Default)]
struct Console {
    /// Everything QEMU wrote, `\r` removed; stderr lines marked.
    transcript: String,
    /// How much of `transcript` [`Session::expect`] has consumed.
    consumed: usize,
    /// Output pipes still open.
    open_pipes: usize,
}

type Shared = Arc<(Mutex<Console>, Condvar)>;

/// A QEMU process whose console is captured.
#[derive(Debug)]
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Shared,
    readers: Vec<JoinHandle<()>>,
    status: Option<Option<i32>>,
}

impl Session {
    /// Starts QEMU in [`ConsoleMode::Captured`].
    pub fn start(command: &QemuCommand) -> Result<Session, RunError> {
        let mut process = command.to_command(ConsoleMode::Captured)?;
        process
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            spawn_retrying(&mut process).map_err(|error| spawn_error(command, error))?;
        let console: Shared = Arc::new((
            Mutex::new(Console {
                open_pipes: 2,
                ..Console::default()
            }),
            Condvar::new(),
        ));
        let echo = std::env::var("CAPVISOR_ECHO").is_ok_and(|v| v == "1");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            spawn_reader(stdout, console.clone(), None, echo),
            spawn_reader(stderr, console.clone(), Some("[qemu stderr] "), echo),
        ];
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            console,
            readers,
            status: None,
        })
    }

    /// Everything QEMU has written so far.
    pub fn transcript(&self) -> String {
        self.console
            .0
            .lock()
            .expect("console lock")
            .transcript
            .clone()
    }

    /// Waits until a console line containing `text` appears (a final line
    /// without a newline counts, for prompts), consumes the output up to the
    /// end of that line, and returns the line.
    pub fn expect(&mut self, text: &str, timeout: Duration) -> Result<String, RunError> {
        let deadline = Instant::now() + timeout;
        let (lock, ready) = &*self.console;
        let mut console = lock.lock().expect("console lock");
        loop {
            if let Some(offset) = console.transcript[console.consumed..].find(text) {
                let found = console.consumed + offset;
                let line_start = console.transcript[..found].rfind('\n').map_or(0, |i| i + 1);
                let line_end = console.transcript[found..]
                    .find('\n')
                    .map_or(console.transcript.len(), |i| found + i + 1);
                let line = console.transcript[line_start..line_end]
                    .trim_end()
                    .to_string();
                console.consumed = line_end;
                return Ok(line);
            }
            let now = Instant::now();
            if console.open_pipes == 0 {
                drop(console);
                let status = self.reap(Duration::from_secs(5));
                return Err(RunError::ExitedEarly {
                    waiting_for: format!("{text:?} appeared"),
                    status,
                    transcript: self.transcript(),
                });
            }
            if now >= deadline {
                let transcript = console.transcript.clone();
                return Err(RunError::Timeout {
                    waiting_for: format!("{text:?}"),
                    after: timeout,
                    transcript,
                });
            }
            console = ready
                .wait_timeout(console, deadline - now)
                .expect("console lock")
                .0;
        }
    }

    /// Types `text` on the console.
    pub fn send(&mut self, text: &str) -> Result<(), RunError> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(text.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("stdin closed")),
        };
        result.map_err(|error| RunError::Console {
            error: error.to_string(),
            transcript: self.transcript(),
        })
    }

    /// Waits for QEMU to exit and returns its status; kills it after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<i32, RunError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                self.join_readers();
                return status.ok_or_else(|| RunError::Killed {
                    transcript: self.transcript(),
                });
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(RunError::Timeout {
                    waiting_for: "QEMU to exit".to_string(),
                    after: timeout,
                    transcript: self.transcript(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn try_status(&mut self) -> Option<Option<i32>> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status.code());
            }
        }
        self.status
    }

    /// The exit status once QEMU has exited (waiting at most `patience`).
    fn reap(&mut self, patience: Duration) -> Option<i32> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(status) = self.try_status() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    /// Kills QEMU at once (SIGKILL on Unix: no chance to flush anything
    /// it buffers), as a power cut would, and waits for it.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status.code());
            }
        }
        self.join_readers();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
    }
}

/// Copies one of QEMU's output pipes into the shared transcript.
fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    console: Shared,
    marker: Option<&'static str>,
    echo: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        let mut at_line_start = true;
        loop {
            let count = match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => count,
            };
            let text = String::from_utf8_lossy(&buffer[..count]).replace('\r', "");
            if echo {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            let (lock, ready) = &*console;
            let mut console = lock.lock().expect("console lock");
            for piece in text.split_inclusive('\n') {
                if let (Some(marker), true) = (marker, at_line_start) {
                    console.transcript.push_str(marker);
                }
                console.transcript.push_str(piece);
                at_line_start = piece.ends_with('\n');
            }
            ready.notify_all();
        }
        let (lock, ready) = &*console;
        lock.lock().expect("console lock").open_pipes -= 1;
        ready.notify_all();
    })
}

/// What a finished run left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// QEMU's exit status (the hypervisor's semihosting exit code).
    pub status: i32,
    /// Everything QEMU printed.
    pub transcript: String,
}

/// Runs `command` until QEMU exits, at most `timeout`.
pub fn run_to_exit(command: &QemuCommand, timeout: Duration) -> Result<Outcome, RunError> {
    let mut session = Session::start(command)?;
    let status = session.wait_exit(timeout)?;
    Ok(Outcome {
        status,
        transcript: session.transcript(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn integrator() -> Board {
        board("integrator-cp").unwrap()
    }

    /// A fake QEMU: a shell script in a fresh temporary directory, and a
    /// kernel file for the existence check.
    fn fake_qemu(name: &str, script: &str) -> QemuCommand {
        let dir =
            std::env::temp_dir().join(format!("capvisor-runner-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("qemu");
        std::fs::write(&program, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kernel = dir.join("kernel.elf");
        std::fs::write(&kernel, b"elf").unwrap();
        let mut command = QemuCommand::new(integrator(), kernel);
        command.program = Some(program);
        command
    }

    #[test]
    fn captured_command_line() {
        let command = QemuCommand::new(integrator(), "/tmp/k.elf");
        assert_eq!(
            command.args(ConsoleMode::Captured),
            [
                "-M",
                "integratorcp",
                "-cpu",
                "cortex-a15",
                "-m",
                "1024",
                "-smp",
                "1",
                "-kernel",
                "/tmp/k.elf",
                "-semihosting-config",
                "enable=on,target=native",
                "-no-reboot",
                "-rtc",
                "base=utc",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-monitor",
                "none"
            ]
        );
    }

    #[test]
    fn interactive_command_line_with_loaders_icount_and_gdb() {
        let mut command = QemuCommand::new(integrator(), "k.elf");
        command
            .loaders
            .push(Loader::parse("guest.bin@0x80000000").unwrap());
        command.icount = true;
        command.gdb_port = Some(1234);
        let args = command.args(ConsoleMode::Interactive);
        assert_eq!(
            args[15..],
            [
                "-nographic",
                "-device",
                "loader,file=guest.bin,addr=0x80000000,force-raw=on",
                "-icount",
                "shift=0",
                "-S",
                "-gdb",
                "tcp::1234"
            ]
        );
    }

    #[test]
    fn qemu_virt_command_line() {
        let virt = board("qemu-virt").unwrap();
        assert_eq!(virt.package, "capvisor-qemu-virt");
        assert_eq!(virt.staging, 0x7000_0000);
        let mut command = QemuCommand::new(virt, "/tmp/k.elf");
        command
            .loaders
            .push(Loader::parse("hello@0x70000000").unwrap());
        assert_eq!(
            command.args(ConsoleMode::Captured),
            [
                "-M",
                "virt,virtualization=on,gic-version=2",
                "-cpu",
                "cortex-a15",
                "-m",
                "1024",
                "-smp",
                "4",
                "-kernel",
                "/tmp/k.elf",
                "-semihosting-config",
                "enable=on,target=native",
                "-no-reboot",
                "-rtc",
                "base=utc",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-monitor",
                "none",
                "-device",
                "loader,file=hello,addr=0x70000000,force-raw=on"
            ]
        );
    }

    #[test]
    fn the_board_disk_is_an_sd_card_or_a_virtio_blk_device() {
        let mut command = QemuCommand::new(integrator(), "k.elf");
        command.disk = Some(PathBuf::from("/tmp/d.img"));
        let args = command.args(ConsoleMode::Captured);
        let disk = args.iter().position(|arg| arg == "-drive").unwrap();
        assert_eq!(args[disk..], ["-drive", "if=sd,file=/tmp/d.img,format=raw"]);
        let mut command = QemuCommand::new(board("qemu-virt").unwrap(), "k.elf");
        command.disk = Some(PathBuf::from("/tmp/d.img"));
        let args = command.args(ConsoleMode::Captured);
        let disk = args.iter().position(|arg| arg == "-drive").unwrap();
        assert_eq!(
            args[disk..],
            [
                "-drive",
                "if=none,id=board-disk,file=/tmp/d.img,format=raw",
                "-device",
                "virtio-blk-device,drive=board-disk",
                "-global",
                "virtio-mmio.force-legacy=false"
            ]
        );
    }

    #[test]
    fn a_disk_image_is_created_once_and_sizes_are_checked() {
        let dir = std::env::temp_dir().join(format!("capvisor-runner-disk-{}", std::process::id()));
        let path = dir.join("sub").join("disk.img");
        let sd = integrator();
        assert_eq!(
            prepare_disk(&sd, &path).unwrap(),
            (DEFAULT_DISK_BYTES, true)
        );
        // Kept as it is the next time, with what was written to it.
        std::fs::write(&path, vec![7u8; 1024]).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        assert_eq!(prepare_disk(&sd, &path).unwrap(), (64 << 20, false));
        assert_eq!(std::fs::read(&path).unwrap()[..4], [7, 7, 7, 7]);
        // An SD card needs a power of two; virtio-blk whole sectors.
        file.set_len(3 << 20).unwrap();
        let error = prepare_disk(&sd, &path).unwrap_err().to_string();
        assert!(
            error.contains("needs a power of two (truncate -s 4194304"),
            "{error}"
        );
        let virt = board("qemu-virt").unwrap();
        assert_eq!(prepare_disk(&virt, &path).unwrap(), (3 << 20, false));
        file.set_len(1000).unwrap();
        assert!(prepare_disk(&virt, &path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_board_has_its_package_and_a_distinct_name() {
        for known in &BOARDS {
            assert_eq!(known.package, format!("capvisor-{}", known.name));
            assert_eq!(board(known.name).unwrap(), *known);
        }
        let mut names: Vec<_> = BOARDS.iter().map(|known| known.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BOARDS.len());
        assert_eq!(integrator().package, "capvisor-integrator-cp");
    }

    #[test]
    fn unknown_board_lists_known_ones() {
        let error = board("pdp11").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown board \"pdp11\" (known boards: integrator-cp, qemu-virt)"
        );
    }

    #[test]
    fn a_description_is_packed_and_placed_at_the_staging_area() {
        let dir =
            std::env::temp_dir().join(format!("capvisor-runner-system-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("guest.bin"), [0u8; 64]).unwrap();
        let description = dir.join("one.toml");
        std::fs::write(
            &description,
            "[[vm]]\nname = \"one\"\nram = \"2 MiB\"\nkernel = { file = \"guest.bin\", format = \"raw\", load-offset = 0 }\n",
        )
        .unwrap();
        let board = board("integrator-cp").unwrap();
        let output = dir.join("out").join("one.img");
        let loader = system_image(&board, &description, &[], &output).unwrap();
        assert_eq!(
            loader,
            Loader {
                file: output.clone(),
                address: 0xb000_0000
            }
        );
        let image = std::fs::read(&output).unwrap();
        assert_eq!(hyp::system_image::parse(&image).unwrap().vms[0].name, "one");
        // A description with a problem is refused with its line.
        std::fs::write(&description, "[[vm]]\nname = \"one\"\nram = \"3 MiB\"\nkernel = { file = \"guest.bin\", format = \"raw\", load-offset = 0 }\n").unwrap();
        let error = system_image(&board, &description, &[], &output).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("one.toml:3:7: vm[0].ram: 3 MiB is not a multiple of 2 MiB"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loader_and_number_parsing() {
        assert_eq!(parse_number("0x8000_0000"), Some(0x8000_0000));
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0xg"), None);
        let loader = Loader::parse("a@b@0x10").unwrap();
        assert_eq!((loader.file, loader.address), (PathBuf::from("a@b"), 0x10));
        assert!(Loader::parse("noaddress").is_err());
        assert!(Loader::parse("@0x10").is_err());
        assert!(Loader::parse("f@zz").is_err());
    }

    #[test]
    fn missing_kernel_is_named() {
        let command = QemuCommand::new(integrator(), "/nonexistent/capvisor.elf");
        let error = Session::start(&command).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hypervisor image /nonexistent/capvisor.elf does not exist"
        );
    }

    #[test]
    fn missing_qemu_is_explained() {
        let mut command = fake_qemu("noqemu", "exit 0");
        command.program = Some(PathBuf::from("/nonexistent/qemu-system-arm"));
        let error = Session::start(&command).unwrap_err();
        assert!(error.to_string().contains("run `make setup`"), "{error}");
    }

    #[test]
    fn expect_finds_lines_in_order_and_status_is_read() {
        let command = fake_qemu("order", "printf 'one\\r\\ntwo\\nthree'; exit 3");
        let mut session = Session::start(&command).unwrap();
        assert_eq!(
            session.expect("tw", Duration::from_secs(10)).unwrap(),
            "two"
        );
        // A final line without a newline (a prompt) matches too.
        assert_eq!(
            session.expect("thr", Duration::from_secs(10)).unwrap(),
            "three"
        );
        assert_eq!(session.wait_exit(Duration::from_secs(10)).unwrap(), 3);
        assert_eq!(session.transcript(), "one\ntwo\nthree");
    }

    #[test]
    fn consumed_output_is_not_matched_again() {
        let command = fake_qemu("consumed", "echo same; exit 0");
        let mut session = Session::start(&command).unwrap();
        session.expect("same", Duration::from_secs(10)).unwrap();
        let error = session.expect("same", Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(
                error,
                RunError::ExitedEarly {
                    status: Some(0),
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn timeout_reports_the_transcript() {
        let command = fake_qemu("timeout", "echo booting; exec sleep 30");
        let mut session = Session::start(&command).unwrap();
        let start = Instant::now();
        let error = session
            .expect("never", Duration::from_millis(300))
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        let text = error.to_string();
        assert!(
            text.starts_with("timed out after 0.3 s waiting for \"never\""),
            "{text}"
        );
        assert!(
            text.contains(
                "----- console transcript (1 lines) -----\nbooting\n----- end of transcript -----"
            ),
            "{text}"
        );
    }

    #[test]
    fn early_exit_names_the_status() {
        let command = fake_qemu("early", "echo bye; exit 2");
        let mut session = Session::start(&command).unwrap();
        let error = session
            .expect("banner", Duration::from_secs(10))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("QEMU exited with status 2 before \"banner\" appeared"),
            "{error}"
        );
        assert_eq!(error.transcript(), Some("bye\n"));
    }

    #[test]
    fn stderr_is_marked_in_the_transcript() {
        let command = fake_qemu("stderr", "echo oops >&2; exit 1");
        let outcome = run_to_exit(&command, Duration::from_secs(10)).unwrap();
        assert_eq!(
            outcome,
            Outcome {
                status: 1,
                transcript: "[qemu stderr] oops\n".into()
            }
        );
    }

    #[test]
    fn send_reaches_the_console() {
        let command = fake_qemu("send", "read line; echo \"got $line\"; exit 0");
        let mut session = Session::start(&command).unwrap();
        session.send("hello\n").unwrap();
        assert_eq!(
            session.expect("got", Duration::from_secs(10)).unwrap(),
            "got hello"
        );
        assert_eq!(session.wait_exit(Duration::from_secs(10)).unwrap(), 0);
    }

    #[test]
    fn wait_exit_times_out_and_kills() {
        let command = fake_qemu("hang", "exec sleep 60");
        let mut session = Session::start(&command).unwrap();
        let start = Instant::now();
        let error = session.wait_exit(Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, RunError::Timeout { .. }), "{error}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn drop_kills_a_running_qemu() {
        let command = fake_qemu("drop", "exec sleep 60");
        let start = Instant::now();
        {
            let _session = Session::start(&command).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
