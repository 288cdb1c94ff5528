// SPDX-License-Identifier: MIT OR Apache-2.0
//! Slices of the board disk under QEMU, on every board: Linux keeps what
//! it writes to its slice across `reboot -f`, across QEMU runs and across
//! QEMU killed with SIGKILL right after `sync`; a read-only slice refuses
//! writes with the guest's own error; two VMs with disjoint slices of one
//! disk see only their own data, which the host finds at the slices'
//! offsets in the disk file.
//!
//! The disk file is made here, in a temporary folder (64 MiB: QEMU wants
//! an SD card's size to be a power of two); the description is packed
//! with the disk's size (`system_image_for_disk`), as the runner does.

use capvisor_runner::{system_image_for_disk, Loader, Session};
use capvisor_tests::{
    assert_console_has, assert_console_lacks, command_with, images_dir, linux_images, per_board,
    run, start_command, system, type_at_prompt, vm_status_line, Board, CURSOR_ANSWER, CURSOR_QUERY,
    SETTLE,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const EXIT_SUCCESS: i32 = 0;
/// The board disk file's size.
const DISK_BYTES: u64 = 64 << 20;
const MIB: u64 = 1 << 20;
/// Where `persist-linux.toml`'s slices lie: /dev/vda writable, 32 MiB
/// from 1 MiB; /dev/vdb read-only, 1 MiB from 33 MiB.
const VDA_AT: u64 = MIB;
const VDB_AT: u64 = 33 * MIB;
/// Where `persist-two-linux.toml`'s slices lie: VM 'one' 8 MiB from
/// 4 MiB, VM 'two' 8 MiB from 12 MiB.
const ONE_AT: u64 = 4 * MIB;
const TWO_AT: u64 = 12 * MIB;
const SLICE_BYTES: u64 = 8 * MIB;

const BOOT: Duration = Duration::from_secs(900);
const COMMAND: Duration = Duration::from_secs(300);
const MARKER: &str = "capvisor-linux: initramfs up";

per_board!(
    linux_keeps_its_slice_across_reboots_runs_and_a_kill,
    two_vms_see_only_their_own_slices,
    a_slice_past_the_board_disk_is_refused_at_boot,
);

/// A VM with two vCPUs, vCPU 0 on CPU 1 and vCPU 1 on CPU 0 of qemu-virt
/// (`persist-smp-linux.toml`): its slice is served on CPU 1 (the disk's
/// interrupt targets it), requests start from either vCPU; 16 MiB of random data written and read
/// back twice at once (two readers, the scheduler spreads them over both
/// vCPUs), all with the written MD5, also in the host's file.
#[test]
fn an_smp_vm_on_other_cpus_reads_and_writes_its_slice() {
    let board = capvisor_tests::board_under_test("qemu-virt");
    let dir = scratch("smp", &board);
    let disk = dir.join("disk.img");
    make_disk(&disk, 0, &[]);
    let loader = pack(&board, "persist-smp-linux", &dir);
    let mut session = boot(&board, &loader, &disk);
    slow_shell(
        &mut session,
        "echo $(nproc) $(cat /sys/block/vda/size) smp-$((6 * 7))\n",
        "2 65536 smp-42",
    );
    let line = slow_shell(
        &mut session,
        "mkdir -p /tmp; dd if=/dev/urandom of=/tmp/data bs=1M count=16 2>/dev/null; md5sum < /tmp/data | sed \"s/ .*/ smp-written-$((6 * 7))/\"\n",
        "smp-written-42",
    );
    let written = sum_before(&line, "smp-written");
    let line = slow_shell(
        &mut session,
        "dd if=/tmp/data of=/dev/vda bs=1M 2>/dev/null; written=$?; sync; echo dd-$written synced-$((6 * 7))\n",
        "synced-42",
    );
    assert!(
        line.contains("dd-0 synced-42"),
        "dd failed: {line}\n{}",
        session.transcript()
    );
    let line = slow_shell(
        &mut session,
        "echo 3 > /proc/sys/vm/drop_caches; for job in 1 2; do (dd if=/dev/vda bs=64k count=256 2>/dev/null | md5sum > /tmp/sum$job) & done; wait; echo $(cut -c1-32 /tmp/sum1) $(cut -c1-32 /tmp/sum2) both-$((6 * 7))\n",
        "both-42",
    );
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|field| *field == "both-42")
        .unwrap_or_else(|| panic!("no sums in {line:?}"));
    assert!(at >= 2, "two sums in {line:?}");
    assert_eq!(
        [fields[at - 2], fields[at - 1]],
        [written.as_str(); 2],
        "{line}\n{}",
        session.transcript()
    );
    slow_type(&mut session, "poweroff -f\n");
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "Hyp-mode exception");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
    assert_eq!(md5(&disk_bytes(&disk, VDA_AT, 16 * MIB)), written);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The status of a refused boot.
const EXIT_BOOT_REFUSED: i32 = 3;

/// A slice past the end of the board disk (packed without the disk's
/// size, so only the hypervisor can tell) refuses the whole system at
/// boot, naming the VM, the disk and both sizes; without a disk, any slice
/// does.
fn a_slice_past_the_board_disk_is_refused_at_boot(board: &Board) {
    let dir = scratch("past-end", board);
    let disk = dir.join("disk.img");
    make_disk(&disk, 0, &[]);
    let output = images_dir(board)
        .join("systems")
        .join(format!("persist-past-end-{}.img", std::process::id()));
    let loader = capvisor_runner::system_image(
        board,
        &system("persist-past-end"),
        &[linux_images()],
        &output,
    )
    .expect("packed: the packer was not told the disk's size");
    let mut command = command_with(board, &[], Some(loader.clone()));
    command.disk = Some(disk.clone());
    let outcome = run(&command);
    assert_console_has(
        &outcome.transcript,
        "capvisor: boot refused: bad VM table: VM 'linux': disk 0, a slice of the board disk of 8 MiB at 60 MiB (sectors 122880..139264), reaches past the end of the board disk, which is 64 MiB (131072 sectors)",
    );
    assert_console_lacks(&outcome.transcript, "Linux version");
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{}", outcome.transcript);
    let outcome = run(&command_with(board, &[], Some(loader)));
    assert_console_has(
        &outcome.transcript,
        "VM 'linux': disk 0, a slice of the board disk of 8 MiB at 60 MiB (sectors 122880..139264), but the board has no disk attached",
    );
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{}", outcome.transcript);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh folder for this test's disk file.
fn scratch(test: &str, board: &Board) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "capvisor-persist-{test}-{}-{}",
        board.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A zeroed disk file of [`DISK_BYTES`] whose bytes from `at` are
/// `contents`.
fn make_disk(path: &Path, at: u64, contents: &[u8]) {
    let mut bytes = vec![0u8; DISK_BYTES as usize];
    bytes[at as usize..at as usize + contents.len()].copy_from_slice(contents);
    std::fs::write(path, bytes).unwrap();
}

/// `len` bytes of the disk file from `at`.
fn disk_bytes(path: &Path, at: u64, len: u64) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        bytes.len() as u64,
        DISK_BYTES,
        "the disk file keeps its size"
    );
    bytes[at as usize..(at + len) as usize].to_vec()
}

/// The host's MD5 of `bytes` (`md5sum`, as the guest computes it).
fn md5(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

/// Answers the focused shell's pending cursor query (so that it waits
/// for a command, not an answer), then moves the console focus to the
/// next VM, `to`.
fn switch(session: &mut Session, to: &str) {
    if let Err(error) = session.expect(CURSOR_QUERY, COMMAND) {
        panic!("no prompt before the focus moves: {error}");
    }
    std::thread::sleep(SETTLE);
    session.send(CURSOR_ANSWER).expect("QEMU takes input");
    std::thread::sleep(SETTLE);
    session.send("\x1dn").expect("QEMU takes input");
    session
        .expect(&format!("console focus: {to}"), COMMAND)
        .unwrap_or_else(|error| panic!("the focus did not move to {to}: {error}"));
}

/// Packs `name` for `board` with a board disk of [`DISK_BYTES`].
fn pack(board: &Board, name: &str, dir: &Path) -> Loader {
    let output = images_dir(board)
        .join("systems")
        .join(format!("{name}-{}.img", std::process::id()));
    system_image_for_disk(
        board,
        &system(name),
        &[linux_images()],
        &output,
        Some(DISK_BYTES),
    )
    .unwrap_or_else(|error| panic!("cannot pack {name} in {}: {error}", dir.display()))
}

/// Starts QEMU with `loader` and the board disk `disk`, waiting for
/// Linux's initramfs.
fn boot(board: &Board, loader: &Loader, disk: &Path) -> Session {
    let mut command = command_with(board, &[], Some(loader.clone()));
    command.disk = Some(disk.to_path_buf());
    let mut session = start_command(&command);
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    session
}

/// Types `command` at the shell and returns the line holding `expect`
/// (computed by the shell, `$((6 * 7))`, so that the echo of the command
/// cannot match), failing with the transcript.
fn shell(session: &mut Session, command: &str, expect: &str) -> String {
    type_at_prompt(session, command, COMMAND);
    expect_line(session, command, expect)
}

/// How long the SMP guest's line editor is given to take the answer to
/// its cursor query: a busy two-vCPU guest on a loaded host can take
/// longer than [`SETTLE`], and keys typed before it has read the whole
/// answer are taken as part of it.
const SLOW_SETTLE: Duration = Duration::from_secs(3);

/// [`shell`] with [`SLOW_SETTLE`].
fn slow_shell(session: &mut Session, command: &str, expect: &str) -> String {
    slow_type(session, command);
    expect_line(session, command, expect)
}

/// Types `command` at the prompt with [`SLOW_SETTLE`].
fn slow_type(session: &mut Session, command: &str) {
    if let Err(error) = session.expect(CURSOR_QUERY, COMMAND) {
        panic!("no shell prompt before {command:?}: {error}");
    }
    std::thread::sleep(SLOW_SETTLE);
    session.send(CURSOR_ANSWER).expect("QEMU takes input");
    std::thread::sleep(SLOW_SETTLE);
    session.send(command).expect("QEMU takes input");
}

/// The line holding `expect`, after `command` was typed.
fn expect_line(session: &mut Session, command: &str, expect: &str) -> String {
    session
        .expect(expect, COMMAND)
        .unwrap_or_else(|error| panic!("after {command:?}, waiting for {expect:?}: {error}"))
}

/// The MD5 the shell prints before ` TAG-42` on its line.
fn sum_before(line: &str, tag: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let end = fields
        .iter()
        .position(|field| *field == format!("{tag}-42"))
        .filter(|&end| end >= 1)
        .unwrap_or_else(|| panic!("no sum before {tag} in {line:?}"));
    let sum = fields[end - 1].to_string();
    assert_eq!(sum.len(), 32, "an MD5 in {line:?}");
    sum
}

/// The MD5 of 16 MiB of /dev/vda from MiB `skip`, read from the disk
/// (the page cache dropped first).
fn vda_sum(session: &mut Session, skip: u64, tag: &str) -> String {
    let line = shell(
        session,
        &format!(
            "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=1M skip={skip} count=16 2>/dev/null | md5sum | sed \"s/ .*/ {tag}-$((6 * 7))/\"\n"
        ),
        &format!("{tag}-42"),
    );
    sum_before(&line, tag)
}

/// Writes 16 MiB of random data to /dev/vda from MiB `seek` (through a
/// copy in the initramfs, whose MD5 it returns), then `sync`.
fn write_random(session: &mut Session, seek: u64, tag: &str) -> String {
    let line = shell(
        session,
        &format!(
            "mkdir -p /tmp; dd if=/dev/urandom of=/tmp/data bs=1M count=16 2>/dev/null; md5sum < /tmp/data | sed \"s/ .*/ {tag}-$((6 * 7))/\"\n"
        ),
        &format!("{tag}-42"),
    );
    let sum = sum_before(&line, tag);
    let line = shell(
        session,
        &format!(
            "dd if=/tmp/data of=/dev/vda bs=1M seek={seek} 2>/dev/null; written=$?; sync; echo dd-$written synced-$((6 * 7))\n"
        ),
        "synced-42",
    );
    assert!(
        line.contains("dd-0 synced-42"),
        "dd failed: {line}\n{}",
        session.transcript()
    );
    sum
}

/// Debian's Linux with two slices of a 64 MiB board disk
/// (`persist-linux.toml`): 16 MiB of random data written to the writable
/// slice read back with its MD5 from the disk, after `reboot -f`, and in a
/// second QEMU run; 16 MiB more written and synced just before QEMU is
/// killed with SIGKILL are there in the next run too; the host finds both
/// at the slice's offset in the file. The read-only slice reads what the
/// host put there and refuses a write with the guest's own error (EPERM from Linux 6.1).
fn linux_keeps_its_slice_across_reboots_runs_and_a_kill(board: &Board) {
    let dir = scratch("one", board);
    let disk = dir.join("disk.img");
    let marker: Vec<u8> = b"read-only slice\n".repeat(64);
    make_disk(&disk, VDB_AT, &marker);
    let loader = pack(board, "persist-linux", &dir);

    // Run 1: write, read back, restart the VM, read back.
    let mut session = boot(board, &loader, &disk);
    let console = session.transcript();
    assert_console_has(
        &console,
        "board disk slice 0: VM 'linux' disk 0, 32 MiB at 1 MiB",
    );
    assert_console_has(&console, "disks: 0 image disks and 2 board-disk slices");
    shell(
        &mut session,
        "echo $(cat /sys/block/vda/size /sys/block/vda/ro /sys/block/vdb/size /sys/block/vdb/ro) sizes-$((6 * 7))\n",
        "65536 0 2048 1 sizes-42",
    );
    let first = write_random(&mut session, 0, "first");
    assert_eq!(
        vda_sum(&mut session, 0, "back"),
        first,
        "read back from the disk"
    );
    // The read-only slice: the host's bytes, and the guest's own refusal.
    shell(
        &mut session,
        "head -c 16 /dev/vdb; echo vdb-$((6 * 7))\n",
        "read-only slice",
    );
    let refused = shell(
        &mut session,
        "dd if=/dev/zero of=/dev/vdb bs=512 count=1 2>&1; echo refused-$?-$((6 * 7))\n",
        "Operation not permitted",
    );
    // Linux 6.1 refuses a write to a read-only disk with EPERM.
    assert!(
        refused.contains("dd: error writing '/dev/vdb'"),
        "{refused}"
    );
    session
        .expect("refused-1-42", COMMAND)
        .expect("dd failed with status 1");
    type_at_prompt(&mut session, "reboot -f\n", COMMAND);
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not come back after reboot -f: {error}");
    }
    assert_eq!(
        vda_sum(&mut session, 0, "rebooted"),
        first,
        "kept across the restart"
    );
    // 16 MiB more, synced, then QEMU killed at once.
    let second = write_random(&mut session, 16, "second");
    session.kill();
    let killed = session.transcript();
    assert_console_lacks(&killed, "Hyp-mode exception");
    assert_console_lacks(&killed, "I/O error");

    // The host's view of the file: both at the slice's offset, the
    // read-only slice untouched.
    assert_eq!(md5(&disk_bytes(&disk, VDA_AT, 16 * MIB)), first);
    assert_eq!(md5(&disk_bytes(&disk, VDA_AT + 16 * MIB, 16 * MIB)), second);
    assert_eq!(disk_bytes(&disk, VDB_AT, marker.len() as u64), marker);

    // Run 2, the same file: both still there.
    let mut session = boot(board, &loader, &disk);
    assert_eq!(vda_sum(&mut session, 0, "again"), first, "a second run");
    assert_eq!(
        vda_sum(&mut session, 16, "after-kill"),
        second,
        "synced before the kill"
    );
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "Hyp-mode exception");
    let line = vm_status_line(&transcript, "linux");
    assert!(line.contains("powered off"), "{line}\n{transcript}");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two Linux VMs, each with an 8 MiB slice of one board disk
/// (`persist-two-linux.toml`): each writes its own pattern over its whole
/// slice, reads back only its own (no byte of the other's in its disk),
/// and the host finds each pattern at its slice's offset.
fn two_vms_see_only_their_own_slices(board: &Board) {
    let dir = scratch("two", board);
    let disk = dir.join("disk.img");
    make_disk(&disk, 0, &[]);
    let loader = pack(board, "persist-two-linux", &dir);
    let mut session = boot(board, &loader, &disk);
    let fill = |name: &str| {
        format!(
            "yes {name}-data | head -c 8388608 > /dev/vda; sync; echo $(cat /sys/block/vda/size) filled-$((6 * 7))\n"
        )
    };
    let check = |name: &str, other: &str| {
        format!(
            "echo 3 > /proc/sys/vm/drop_caches; echo $(grep -c {name}-data /dev/vda) $(grep -c {other}-data /dev/vda) $(head -c 9 /dev/vda) seen-$((6 * 7))\n"
        )
    };
    // VM 'one' has the focus at boot.
    shell(&mut session, &fill("one"), "16384 filled-42");
    // To VM 'two' (its held output, its prompt among it, follows).
    switch(&mut session, "VM 2 'two'");
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("VM 'two' did not reach its initramfs: {error}");
    }
    shell(&mut session, &fill("two"), "16384 filled-42");
    // Each sees its own lines, none of the other's ("grep -c" counts
    // lines: 8 MiB of "two-data\n" is 932067 whole lines and a part).
    shell(
        &mut session,
        &check("two", "one"),
        "932067 0 two-data seen-42",
    );
    switch(&mut session, "VM 1 'one'");
    session.send("\n").expect("QEMU takes input");
    shell(
        &mut session,
        &check("one", "two"),
        "932067 0 one-data seen-42",
    );
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    session
        .expect("VM 1 has stopped", COMMAND)
        .expect("VM 'one' powers off");
    session.send("\x1dn").expect("QEMU takes input");
    session
        .expect("console focus: VM 2 'two'", COMMAND)
        .expect("the focus moves");
    session.send("\n").expect("QEMU takes input");
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "Hyp-mode exception");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
    // The host's view: each pattern at its slice, nothing between.
    let one = disk_bytes(&disk, ONE_AT, SLICE_BYTES);
    let two = disk_bytes(&disk, TWO_AT, SLICE_BYTES);
    let pattern = |name: &str| -> Vec<u8> {
        format!("{name}-data\n")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(SLICE_BYTES as usize)
            .collect()
    };
    assert!(one == pattern("one"), "VM 'one''s slice holds its pattern");
    assert!(two == pattern("two"), "VM 'two''s slice holds its pattern");
    assert!(
        disk_bytes(&disk, 0, ONE_AT).iter().all(|&b| b == 0),
        "nothing before the slices"
    );
    assert!(
        disk_bytes(
            &disk,
            TWO_AT + SLICE_BYTES,
            DISK_BYTES - TWO_AT - SLICE_BYTES
        )
        .iter()
        .all(|&b| b == 0),
        "nothing after them"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
