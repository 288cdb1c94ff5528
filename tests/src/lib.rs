//! Shared helpers for the QEMU integration tests in `tests/tests/`.
//!
//! The tests boot real Capvisor images under QEMU and assert on the serial
//! console and on QEMU's exit status (the hypervisor's semihosting exit
//! code). [`board_image`] builds the board for `armv7a-none-eabi` with a set
//! of test-only cargo features, each feature set in its own target directory
//! so that tests running in parallel never overwrite each other's image;
//! [`guest_images`] builds the test guests (`tests/guests`) once; [`boot`]
//! runs an image, with every test guest placed in its staging slot by QEMU's
//! loader, to completion with a generous timeout.
//!
//! ```no_run
//! let outcome = capvisor_tests::boot(&[]);
//! assert_eq!(outcome.status, 0, "{}", outcome.transcript);
//! ```

pub use capvisor_runner::Outcome;
use capvisor_runner::{board, run_to_exit, QemuCommand, Session};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The board package the tests boot.
pub const BOARD_PACKAGE: &str = "capvisor-integrator-cp";
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

/// Builds `package` for the target (release profile) with `features`
/// into `target/images/<variant>` and returns that build's release
/// directory. Panics with cargo's output if the build fails.
fn build_for_target(package: &str, features: &[&str], variant: &str) -> PathBuf {
    try_build_for_target(package, features, variant).unwrap_or_else(|errors| {
        panic!("building {package} with features {features:?} failed:\n{errors}")
    })
}

/// As [`build_for_target`], returning cargo's error output if the build
/// fails.
fn try_build_for_target(
    package: &str,
    features: &[&str],
    variant: &str,
) -> Result<PathBuf, String> {
    let root = workspace_root();
    let target_dir = root.join("target").join("images").join(variant);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
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
        .arg(&target_dir);
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

/// Builds the board image with `features` (release profile) and returns the
/// ELF's path. Panics with cargo's output if the build fails.
pub fn board_image(features: &[&str]) -> PathBuf {
    try_board_image(features)
        .unwrap_or_else(|errors| panic!("building the board with {features:?} failed:\n{errors}"))
}

/// As [`board_image`], returning cargo's error output if the build fails
/// (for the tests of tables refused when the board is built).
pub fn try_board_image(features: &[&str]) -> Result<PathBuf, String> {
    let variant = if features.is_empty() {
        "default".to_string()
    } else {
        features.join("+")
    };
    try_build_for_target(BOARD_PACKAGE, features, &variant).map(|dir| dir.join(BOARD_PACKAGE))
}

/// The test guests' package.
pub const GUESTS_PACKAGE: &str = "capvisor-test-guests";

/// Builds the test guests (flat images, release profile) once per test
/// process and returns the directory holding them, one file per guest.
pub fn guest_images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_for_target(GUESTS_PACKAGE, &[], "guests"))
        .clone()
}

/// Builds the image with `features`, boots it on QEMU Integrator/CP with
/// every test guest in its staging slot, and waits for QEMU to exit.
/// Panics (printing the transcript) on a timeout.
pub fn boot(features: &[&str]) -> Outcome {
    boot_with_images(features, &guest_images())
}

/// The QEMU command for the image with `features` and the guest images in
/// `dir` (a file per image name of the board's `images.txt`; missing files
/// are simply not loaded).
pub fn command(features: &[&str], dir: &Path) -> QemuCommand {
    let elf = board_image(features);
    let board = board("integrator-cp").expect("the runner knows integrator-cp");
    let mut command = QemuCommand::new(board, elf);
    command.loaders = command
        .board
        .staged_images(dir)
        .unwrap_or_else(|error| panic!("cannot place the guest images: {error}"));
    command
}

/// Starts the image with `features` and every test guest, with the console
/// captured, for a test that types on it.
pub fn start(features: &[&str]) -> Session {
    start_with_images(features, &guest_images())
}

/// As [`start`], with the guest images taken from `dir`.
pub fn start_with_images(features: &[&str], dir: &Path) -> Session {
    let command = command(features, dir);
    Session::start(&command).unwrap_or_else(|error| panic!("cannot start QEMU: {error}"))
}

/// Makes the Linux guest's images (`tools/linux-images.sh`, which fetches
/// Debian's packages the first time and reuses them after) once per test
/// process; returns their directory.
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

/// As [`boot`], with the guest images taken from `dir`.
pub fn boot_with_images(features: &[&str], dir: &Path) -> Outcome {
    let command = command(features, dir);
    match run_to_exit(&command, BOOT_TIMEOUT) {
        Ok(outcome) => outcome,
        Err(error) => panic!("QEMU run failed: {}", error),
    }
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
