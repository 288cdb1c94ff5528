// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared helpers for the QEMU integration tests in `tests/tests/`.
//!
//! The tests boot real Capvisor images under QEMU and assert on the serial
//! console and on QEMU's exit status (the hypervisor's semihosting exit
//! code). Every test runs once on each board under test: it is written as
//! a plain function taking the [`Board`], and [`per_board!`] makes one
//! `#[test]` per board of it, in a module named after the board
//! (`integrator_cp::every_test_guest_passes`), so that `cargo test` output
//! names the board and a filter can pick one board's tests
//! (`cargo test -p capvisor-tests --test guests integrator_cp::`).
//!
//! The VMs of a test are a system description in `tests/systems/`
//! ([`system`]), packed by the runner with the images it names (found in
//! the test guests' folder, [`guest_images`], and for Linux in
//! [`linux_images`]) and placed at the board's staging area. The
//! hypervisor is the same build for almost every test: [`board_image`]
//! builds a board for `armv7a-none-eabi`, with test-only cargo features
//! only for the deliberate failures (a Hyp fault, a panic, a broken
//! layout), each feature set copied to its own directory
//! (`target/images/<board>/<features>`) so that tests running in parallel
//! never overwrite each other's image. [`boot`] runs a board with a system
//! to completion with a generous timeout.
//!
//! ```no_run
//! use capvisor_tests::{boot, Board};
//!
//! fn every_test_guest_passes(board: &Board) {
//!     let outcome = boot(board, "guests"); // tests/systems/guests.toml
//!     assert_eq!(outcome.status, 0, "{}", outcome.transcript);
//! }
//!
//! capvisor_tests::per_board!(every_test_guest_passes);
//! # fn main() {}
//! ```

use capvisor_runner::{board, run_to_exit, system_image, Loader, QemuCommand, Session};
pub use capvisor_runner::{Board, Outcome};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Calls the macro `$macro` (one of this crate's) with the list of boards
/// under test in front of `$input`, as `[module = "board", ...]`: the one
/// place that says which boards the integration tests boot. [`per_board!`]
/// and [`BOARDS_UNDER_TEST`] both read it.
///
/// Each entry is the module a board's tests go in (the board's name with
/// `-` turned into `_`) and the board's name in the runner's `BOARDS`
/// table. A new board is added to the list line below (and, once its
/// expectations are known, to the tables of board-specific facts).
///
/// Tests with board-specific expectations keep them in a small table in
/// the test, matched on `board.name` (`tests/tests/boot.rs`); a board
/// missing from such a table fails those tests, naming the table.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_boards_under_test {
    ($macro:ident { $($input:tt)* }) => {
        $crate::$macro! {
            // The boards under test; to add one, see above.
            [integrator_cp = "integrator-cp", qemu_virt = "qemu-virt"]
            $($input)*
        }
    };
}

/// The boards under test, as (test module, board name), in the order of
/// the list in [`__with_boards_under_test!`].
pub const BOARDS_UNDER_TEST: &[(&str, &str)] = __with_boards_under_test!(__board_names {});

#[doc(hidden)]
#[macro_export]
macro_rules! __board_names {
    ([$($module:ident = $name:literal),+]) => {
        &[$((stringify!($module), $name)),+]
    };
}

/// Makes each `fn name(board: &Board)` listed a `#[test]` on every board
/// under test: `per_board!(a, b)` defines `integrator_cp::a` and
/// `integrator_cp::b` (and the same in one module per further board), each
/// calling the function with its board. A test function left out of the
/// list is dead code, which the lints refuse.
#[macro_export]
macro_rules! per_board {
    ($($test:ident),+ $(,)?) => {
        $crate::__with_boards_under_test! { __per_board_modules { ($($test),+) } }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __per_board_modules {
    ([] $tests:tt) => {};
    (
        [$module:ident = $name:literal $(, $more:ident = $more_name:literal)*]
        ($($test:ident),+)
    ) => {
        #[doc = concat!("The tests on ", $name, ".")]
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test(&$crate::board_under_test($name));
                }
            )+
        }
        $crate::__per_board_modules! { [$($more = $more_name),*] ($($test),+) }
    };
}

/// The runner's board called `name`; panics if the runner does not know it.
pub fn board_under_test(name: &str) -> Board {
    board(name).unwrap_or_else(|error| panic!("a board under test: {error}"))
}

/// The bare-metal target.
pub const TARGET: &str = "armv7a-none-eabi";
/// How long a boot may take before the test fails. A boot takes well under
/// a second; the margin absorbs a loaded CI machine.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// The directory of `board`'s test builds and scratch files,
/// `target/images/<board>`.
pub fn images_dir(board: &Board) -> PathBuf {
    workspace_root()
        .join("target")
        .join("images")
        .join(board.name)
}

/// Where `board`'s image with `features` is kept:
/// `target/images/<board>/<features joined by +>`, or `.../default`.
fn board_target_dir(board: &Board, features: &[&str]) -> PathBuf {
    let variant = if features.is_empty() {
        "default".to_string()
    } else {
        features.join("+")
    };
    images_dir(board).join(variant)
}

/// Builds `package` for the target (release profile) with `features`
/// into `target_dir` and returns that build's release directory. Panics
/// with cargo's output if the build fails.
fn build_for_target(package: &str, features: &[&str], target_dir: &Path) -> PathBuf {
    try_build_for_target(package, features, target_dir).unwrap_or_else(|errors| {
        panic!("building {package} with features {features:?} failed:\n{errors}")
    })
}

/// As [`build_for_target`], returning cargo's error output if the build
/// fails.
fn try_build_for_target(
    package: &str,
    features: &[&str],
    target_dir: &Path,
) -> Result<PathBuf, String> {
    build_for_target_with(package, features, target_dir, &[])
}

/// As [`try_build_for_target`], with `env` set for the build.
fn build_for_target_with(
    package: &str,
    features: &[&str],
    target_dir: &Path,
    env: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .envs(env.iter().copied())
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            package,
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run cargo to build {package}: {error}"));
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(target_dir.join(TARGET).join("release"))
}

/// Builds `board`'s image with `features` (release profile) and returns
/// the ELF's path. Panics with cargo's output if the build fails.
pub fn board_image(board: &Board, features: &[&str]) -> PathBuf {
    try_board_image(board, features).unwrap_or_else(|errors| {
        panic!(
            "building board {} with {features:?} failed:\n{errors}",
            board.name
        )
    })
}

/// As [`board_image`], returning cargo's error output if the build fails
/// (for the tests of tables refused when the board is built).
///
/// Every board and feature set builds in one shared target directory,
/// `target/images/build`, so the crates they have in common (the core,
/// chips, capsules) are compiled once; a build holds a lock until its ELF
/// is copied to the variant's own directory ([`board_target_dir`]), since
/// the next build overwrites the shared one. Tests running in parallel
/// then boot their own copies.
pub fn try_board_image(board: &Board, features: &[&str]) -> Result<PathBuf, String> {
    static BUILD: Mutex<()> = Mutex::new(());
    let _serialized = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let shared = workspace_root().join("target").join("images").join("build");
    let built = try_build_for_target(board.package, features, &shared)?.join(board.package);
    let variant = board_target_dir(board, features);
    std::fs::create_dir_all(&variant)
        .map_err(|error| format!("cannot create {}: {error}", variant.display()))?;
    let image = variant.join(board.package);
    // Copy to a fresh name, then rename: a QEMU of an earlier test may still
    // have the old file open.
    let partial = variant.join(format!("{}.partial", board.package));
    std::fs::copy(&built, &partial)
        .and_then(|_| std::fs::rename(&partial, &image))
        .map_err(|error| {
            format!(
                "cannot copy {} to {}: {error}",
                built.display(),
                image.display()
            )
        })?;
    Ok(image)
}

/// The test guests' package.
pub const GUESTS_PACKAGE: &str = "capvisor-test-guests";

/// Builds the test guests (flat images, release profile) once per test
/// process and returns the directory holding them, one file per guest.
/// The guests are the same on every board.
pub fn guest_images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target_dir = workspace_root()
            .join("target")
            .join("images")
            .join("guests");
        build_for_target(GUESTS_PACKAGE, &[], &target_dir)
    })
    .clone()
}

/// Builds the test guests as ELF files (`CAPVISOR_GUEST_ELF=1`, in a
/// target directory of their own) once per test process and returns the
/// directory holding them.
pub fn guest_elfs() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target_dir = workspace_root()
            .join("target")
            .join("images")
            .join("guests-elf");
        build_for_target_with(
            GUESTS_PACKAGE,
            &[],
            &target_dir,
            &[("CAPVISOR_GUEST_ELF", "1")],
        )
        .unwrap_or_else(|errors| panic!("building the ELF guests failed:\n{errors}"))
    })
    .clone()
}

/// The integration tests' system description `name`:
/// `tests/systems/<name>.toml`.
pub fn system(name: &str) -> PathBuf {
    workspace_root()
        .join("tests")
        .join("systems")
        .join(format!("{name}.toml"))
}

/// Packs `description` for `board` (its files looked up next to it, then
/// in `search`) into a system image of this test's own, and returns the
/// loader placing it. Panics with every problem of the description.
pub fn pack(board: &Board, description: &Path, search: &[PathBuf]) -> Loader {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let stem = description
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy();
    let output = images_dir(board).join("systems").join(format!(
        "{stem}-{}-{}.img",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    system_image(board, description, search, &output)
        .unwrap_or_else(|error| panic!("cannot pack {}: {error}", description.display()))
}

/// The QEMU command for `board`'s hypervisor with `features`, with the
/// packed system image `loader` (none: nothing in the staging area).
pub fn command_with(board: &Board, features: &[&str], loader: Option<Loader>) -> QemuCommand {
    let elf = board_image(board, features);
    let mut command = QemuCommand::new(board.clone(), elf);
    command.loaders.extend(loader);
    command
}

/// The QEMU command for `board`'s hypervisor running the test system
/// `name` (`tests/systems/<name>.toml`), whose files are test guests.
pub fn command(board: &Board, name: &str) -> QemuCommand {
    let loader = pack(board, &system(name), &[guest_images()]);
    command_with(board, &[], Some(loader))
}

/// Runs `command` until QEMU exits. Panics (printing the transcript) on a
/// timeout.
pub fn run(command: &QemuCommand) -> Outcome {
    match run_to_exit(command, BOOT_TIMEOUT) {
        Ok(outcome) => outcome,
        Err(error) => panic!("QEMU run on {} failed: {}", command.board.name, error),
    }
}

/// Boots `board` with the test system `name` and waits for QEMU to exit.
/// Panics (printing the transcript) on a timeout.
pub fn boot(board: &Board, name: &str) -> Outcome {
    run(&command(board, name))
}

/// Starts `board` with the test system `name`, with the console captured,
/// for a test that types on it.
pub fn start(board: &Board, name: &str) -> Session {
    start_command(&command(board, name))
}

/// Starts `command` with the console captured.
pub fn start_command(command: &QemuCommand) -> Session {
    Session::start(command).unwrap_or_else(|error| panic!("cannot start QEMU: {error}"))
}

/// Starts `board` with the test system `name`, whose files are Linux's
/// images ([`linux_images`]) and test guests.
pub fn start_linux(board: &Board, name: &str) -> Session {
    let loader = pack(board, &system(name), &[linux_images(), guest_images()]);
    start_command(&command_with(board, &[], Some(loader)))
}

/// Makes the Linux guest's images (`tools/linux-images.sh`, which fetches
/// Debian's packages the first time and reuses them after) once per test
/// process; returns their directory. The same images serve every board.
pub fn linux_images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let dir = root.join("target").join("linux");
        let output = Command::new(root.join("tools").join("linux-images.sh"))
            .arg(&dir)
            .current_dir(&root)
            .output()
            .expect("cannot run tools/linux-images.sh");
        assert!(
            output.status.success(),
            "tools/linux-images.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .clone()
}

/// The cursor-position query busybox's line editor sends after each
/// prompt, and a terminal's answer to it. The editor takes keys typed
/// while it waits for the answer, and keys that arrive together with the
/// answer, for part of the answer; so a test answers as a terminal would,
/// and types its command a moment later, on its own.
pub const CURSOR_QUERY: &str = "\x1b[6n";
/// See [`CURSOR_QUERY`].
pub const CURSOR_ANSWER: &str = "\x1b[1;5R";
/// How long the editor is given to read the answer.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Waits (up to `timeout`) for a Linux shell's prompt on `session`,
/// answers its cursor query and types `text`. Panics with the transcript
/// when no prompt comes.
pub fn type_at_prompt(session: &mut Session, text: &str, timeout: Duration) {
    if let Err(error) = session.expect(CURSOR_QUERY, timeout) {
        panic!("no shell prompt before {text:?}: {error}");
    }
    std::thread::sleep(SETTLE);
    session.send(CURSOR_ANSWER).expect("QEMU takes input");
    std::thread::sleep(SETTLE);
    session.send(text).expect("QEMU takes input");
}

/// The number after `key` in `line` (`"slices 12,"` -> 12).
pub fn counter(line: &str, key: &str) -> u64 {
    line.split(key)
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no '{key}' count in {line}"))
}

/// The status line the hypervisor printed for `vm` after all VMs stopped.
pub fn vm_status_line<'a>(transcript: &'a str, vm: &str) -> &'a str {
    let needle = format!("'{vm}': ");
    transcript
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .find(|line| line.starts_with("capvisor:   VM ") && line.contains(&needle))
        .unwrap_or_else(|| {
            panic!("no status line for VM '{vm}'\n----- console transcript -----\n{transcript}\n----- end of transcript -----")
        })
}

/// Asserts that `transcript` contains `needle`, printing the transcript
/// when it does not.
#[track_caller]
pub fn assert_console_has(transcript: &str, needle: &str) {
    assert!(
        transcript.contains(needle),
        "console output lacks {:?}\n----- console transcript -----\n{}\n----- end of transcript -----",
        needle,
        transcript
    );
}

/// Asserts that `transcript` does not contain `needle`.
#[track_caller]
pub fn assert_console_lacks(transcript: &str, needle: &str) {
    assert!(
        !transcript.contains(needle),
        "console output unexpectedly has {:?}\n----- console transcript -----\n{}\n----- end of transcript -----",
        needle,
        transcript
    );
}

/// The line of `transcript` containing `needle`, trimmed of `\r`.
pub fn line_with<'a>(transcript: &'a str, needle: &str) -> Option<&'a str> {
    transcript
        .lines()
        .find(|line| line.contains(needle))
        .map(|line| line.trim_end_matches('\r'))
}

/// One row of the boot memory map, parsed back from the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapRow {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub last: u64,
    /// `normal`, `device`, or `-` for an unmapped range.
    pub memory: String,
    /// `r-x`, `r--`, `rw-`, or `---`.
    pub access: String,
    /// Region name (`text`, `uart0`, ...).
    pub name: String,
    /// Whether the row says the range is deliberately unmapped.
    pub unmapped: bool,
}

/// Parses the rows of the `Hyp memory map` table printed at boot.
pub fn memory_map(transcript: &str) -> Vec<MapRow> {
    let mut rows = Vec::new();
    let mut in_map = false;
    for line in transcript.lines() {
        let line = line.trim_end_matches('\r');
        let Some(body) = line.strip_prefix("capvisor:   ") else {
            if in_map && !rows.is_empty() {
                break;
            }
            in_map |= line.contains("Hyp memory map");
            continue;
        };
        if !in_map {
            continue;
        }
        let fields: Vec<&str> = body.split_whitespace().collect();
        // range, size value, size unit, type, access, name, [(unmapped)]
        let Some((start, last)) = fields.first().and_then(|range| range.split_once('-')) else {
            continue;
        };
        let (Ok(start), Ok(last)) = (
            u64::from_str_radix(start.trim_start_matches("0x"), 16),
            u64::from_str_radix(last.trim_start_matches("0x"), 16),
        ) else {
            continue;
        };
        if fields.len() < 6 {
            continue;
        }
        rows.push(MapRow {
            start,
            last,
            memory: fields[3].to_string(),
            access: fields[4].to_string(),
            name: fields[5].to_string(),
            unmapped: fields.get(6) == Some(&"(unmapped)"),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_under_test_are_known_and_their_modules_named_after_them() {
        assert!(!BOARDS_UNDER_TEST.is_empty());
        assert_eq!(BOARDS_UNDER_TEST[0], ("integrator_cp", "integrator-cp"));
        for &(module, name) in BOARDS_UNDER_TEST {
            assert_eq!(module, name.replace('-', "_"), "{name}");
            let board = board_under_test(name);
            assert_eq!(board.name, name);
        }
    }

    #[test]
    fn every_board_and_feature_set_has_its_own_image_directory() {
        let integrator = board_under_test("integrator-cp");
        let virt = board("qemu-virt").unwrap();
        let images = workspace_root().join("target").join("images");
        assert_eq!(
            board_target_dir(&integrator, &[]),
            images.join("integrator-cp").join("default")
        );
        assert_eq!(
            board_target_dir(&integrator, &["test-guests", "bench"]),
            images.join("integrator-cp").join("test-guests+bench")
        );
        assert_eq!(
            board_target_dir(&virt, &["test-guests"]),
            images.join("qemu-virt").join("test-guests")
        );
        assert_eq!(images_dir(&virt), images.join("qemu-virt"));
    }

    // per_board! itself: `tests::integrator_cp::is_called_with_a_board_under_test`
    // and one such test per further board, each given its own board.
    fn is_called_with_a_board_under_test(board: &Board) {
        assert!(
            BOARDS_UNDER_TEST
                .iter()
                .any(|&(_, name)| name == board.name),
            "{board:?}"
        );
        assert_eq!(*board, board_under_test(board.name));
    }
    crate::per_board!(is_called_with_a_board_under_test);

    #[test]
    fn parses_the_boot_memory_map() {
        let transcript = "capvisor: Hyp memory map (identity, LPAE stage 1, fixed after boot):\r\n\
capvisor:   range                      size  type   acc  name\r\n\
capvisor:   0x00010000-0x00017fff    32 KiB  normal r-x  text\r\n\
capvisor:   0x0002f000-0x0002ffff     4 KiB  -      ---  stack-guard (unmapped)\r\n\
capvisor:   0x80000000-0xbfffffff     1 GiB  normal rw-  guest-ram\r\n\
capvisor: Hyp tables: 1 L1\r\n";
        let rows = memory_map(transcript);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            MapRow {
                start: 0x10000,
                last: 0x17fff,
                memory: "normal".into(),
                access: "r-x".into(),
                name: "text".into(),
                unmapped: false
            }
        );
        assert!(rows[1].unmapped && rows[1].name == "stack-guard");
        assert_eq!(rows[2].last, 0xbfff_ffff);
    }
}
