// SPDX-License-Identifier: MIT OR Apache-2.0
//! A firmware as a guest: Debian's U-Boot for QEMU's `virt`
//! (`u-boot-qemu`'s `qemu_arm/u-boot.bin`), mapped read-only at IPA 0
//! instead of a kernel (`systems/u-boot.toml`), reaches its prompt under
//! Capvisor; the commands typed there see the VM's platform (its RAM from
//! the device tree at the start of RAM, the second flash bank as a CFI
//! flash); `saveenv` writes the environment to that bank, and after
//! `reset` restarts the VM from its firmware U-Boot finds it there again;
//! the ticker beside it runs on throughout.
//!
//! The image comes from `tools/firmware-images.sh` (Debian's package
//! through apt, cached under target/firmware).

use capvisor_runner::Session;
use capvisor_tests::{
    command_with, guest_images, pack, per_board, start_command, workspace_root, Board,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// U-Boot starts in well under a minute under TCG, even on a loaded
/// machine.
const BOOT: Duration = Duration::from_secs(180);
const COMMAND: Duration = Duration::from_secs(60);
const PROMPT: &str = "=> ";

/// Fetches the firmware images (`tools/firmware-images.sh`, which reuses
/// them once there) once per test process; returns their directory.
fn firmware_images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let dir = root.join("target").join("firmware");
        let output = Command::new(root.join("tools").join("firmware-images.sh"))
            .arg(&dir)
            .current_dir(&root)
            .output()
            .expect("cannot run tools/firmware-images.sh");
        assert!(
            output.status.success(),
            "tools/firmware-images.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .clone()
}

/// Waits for `text`, failing with the transcript.
fn expect(session: &mut Session, text: &str, timeout: Duration) -> String {
    session
        .expect(text, timeout)
        .unwrap_or_else(|error| panic!("waiting for {text:?}: {error}"))
}

/// Waits for U-Boot's banner and stops its autoboot with a key, then for
/// its prompt; returns what U-Boot printed on the way.
fn to_prompt(session: &mut Session) -> String {
    let before = session.transcript().len();
    expect(session, "U-Boot 20", BOOT);
    expect(session, "Hit any key to stop autoboot", COMMAND);
    session.send(" ").expect("QEMU takes input");
    expect(session, PROMPT, COMMAND);
    session.transcript()[before..].to_string()
}

/// Types `command` at the prompt and returns the output up to the next
/// prompt.
fn run(session: &mut Session, command: &str) -> String {
    let before = session.transcript().len();
    session
        .send(&format!("{command}\n"))
        .expect("QEMU takes input");
    expect(session, PROMPT, COMMAND);
    session.transcript()[before..].to_string()
}

per_board!(u_boot_reaches_its_prompt_and_runs_commands_beside_another_vm);

fn u_boot_reaches_its_prompt_and_runs_commands_beside_another_vm(board: &Board) {
    let description = workspace_root().join("systems").join("u-boot.toml");
    let loader = pack(board, &description, &[firmware_images(), guest_images()]);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    let placed = expect(
        &mut session,
        "at IPA 0x00000000 (read-only) entered at 0x00000000",
        BOOT,
    );
    assert!(placed.contains("VM 1 'u-boot'"), "{placed}");
    let boot = to_prompt(&mut session);
    // The memory of the device tree at the start of RAM, and one CFI flash
    // bank: bank 0, the firmware, answers no query; bank 1 does, and
    // U-Boot sizes it as it does QEMU's own (32 MiB: one 32-bit chip);
    // erased, so the default environment.
    assert!(boot.contains("DRAM:  256 MiB"), "{boot}");
    assert!(
        boot.contains("Flash: ## Unknown flash on Bank 1 - Size = 0x00000000 = 0 MB\n32 MiB"),
        "{boot}"
    );
    assert!(boot.contains("using default environment"), "{boot}");

    let version = run(&mut session, "version");
    assert!(
        version.contains("U-Boot 20") && version.contains("arm-linux-gnueabihf-gcc"),
        "{version}"
    );
    let bdinfo = run(&mut session, "bdinfo");
    for line in [
        "-> start    = 0x40000000",
        "-> size     = 0x10000000",
        "flashsize   = 0x02000000",
        "devicetree  = board",
    ] {
        assert!(bdinfo.contains(line), "no {line:?} in:\n{bdinfo}");
    }
    // The tree U-Boot found at the start of RAM is the hypervisor's.
    let tree = run(&mut session, "fdt addr 0x40000000; fdt print /");
    assert!(
        tree.contains("Capvisor virtual machine") && tree.contains("pl011@9000000"),
        "{tree}"
    );
    // Flash: the second bank, as QEMU's virt has it; the environment is
    // saved there (erase, then buffered writes).
    let flinfo = run(&mut session, "flinfo");
    for line in [
        "Bank # 1: missing or unknown FLASH type",
        "Bank # 2: CFI conformant flash (16 x 16)  Size: 32 MB in 256 Sectors",
        "Intel Extended command set, Manufacturer ID: 0x89, Device ID: 0x0018",
        "04000000",
    ] {
        assert!(flinfo.contains(line), "no {line:?} in:\n{flinfo}");
    }
    let saved = run(&mut session, "setenv capvisor firmware; saveenv");
    for line in ["Erased 2 sectors", "Writing to Flash... done", "OK"] {
        assert!(saved.contains(line), "no {line:?} in:\n{saved}");
    }
    let printed = run(&mut session, "printenv capvisor");
    assert!(printed.contains("capvisor=firmware"), "{printed}");

    // The ticker beside it has run on all along (its line may have come
    // before the last prompt: the whole transcript counts).
    let deadline = std::time::Instant::now() + COMMAND;
    while !session.transcript().contains("[ticker] ticker: 10 s") {
        assert!(
            std::time::Instant::now() < deadline,
            "the ticker stopped:\n{}",
            session.transcript()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // PSCI SYSTEM_RESET: the VM starts again from its firmware and reads
    // the environment it saved from the flash, which kept it.
    session.send("reset\n").expect("QEMU takes input");
    expect(&mut session, "resetting", COMMAND);
    let boot = to_prompt(&mut session);
    assert!(
        boot.contains("Loading Environment from Flash... OK"),
        "{boot}"
    );
    let printed = run(&mut session, "printenv capvisor");
    assert!(printed.contains("capvisor=firmware"), "{printed}");
    session.send("\x1ds").expect("QEMU takes input");
    // The status lines, the ticker's after U-Boot's.
    expect(&mut session, "VM 2 'ticker': ", COMMAND);
    let transcript = session.transcript();
    let status = transcript
        .lines()
        .rev()
        .find(|line| line.contains("* VM 1 'u-boot': "))
        .unwrap_or_else(|| panic!("no status line for U-Boot:\n{transcript}"));
    assert!(status.contains("restarts 1"), "{status}");
    assert!(
        status.contains("injected faults 0"),
        "U-Boot took no abort: {status}"
    );
}
