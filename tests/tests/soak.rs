// SPDX-License-Identifier: MIT OR Apache-2.0
//! `make soak` (not part of `make test`): Linux runs a shell workload
//! beside a hostile guest that attacks for the whole run
//! (`tests/systems/soak.toml`), with console input typed throughout, for
//! `CAPVISOR_SOAK_SECONDS` (default 600) on each board.
//!
//! Each round types a line of 48 random characters through `echo` and
//! expects exactly that line back (no input byte lost or changed), runs
//! `dd if=/dev/zero bs=1M count=8 | md5sum` (the right checksum) and
//! creates 50 processes in a shell loop. At the end: no Hyp-mode
//! exception, the hostile guest still running (its exits keep rising),
//! every checksum right, and the figures printed for `BENCHMARKS.md`.

use capvisor_runner::Session;
use capvisor_tests::{
    command_with, guest_images, linux_images, pack, start_command, system, type_at_prompt, Board,
};
use std::time::{Duration, Instant};

const MARKER: &str = "capvisor-linux: initramfs up";
const WAIT: Duration = Duration::from_secs(120);
/// MD5 of 8 MiB of zeros.
const ZEROS_8M_MD5: &str = "96995b58d4cbf6aaa9041b4f00c7f6ae";

fn type_line(session: &mut Session, line: &str) {
    type_at_prompt(session, line, WAIT);
}

/// Asks the hypervisor for the VMs' status (Ctrl-] s) and returns the
/// hostile guest's injected-fault count: it rises while it attacks.
fn hostile_faults(session: &mut Session) -> u64 {
    session.send("\x1ds").expect("QEMU takes input");
    let line = session
        .expect("'hostile-soak': ", WAIT)
        .unwrap_or_else(|error| panic!("no status line for the hostile guest: {error}"));
    let _ = line;
    std::thread::sleep(Duration::from_millis(500));
    let transcript = session.transcript();
    let status = transcript
        .lines()
        .rfind(|line| line.contains("'hostile-soak': "))
        .unwrap_or("");
    capvisor_tests::counter(status, "injected faults")
}

fn soak(board: &Board) {
    let seconds: u64 = std::env::var("CAPVISOR_SOAK_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(600);
    let loader = pack(board, &system("soak"), &[linux_images(), guest_images()]);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    if let Err(error) = session.expect(MARKER, Duration::from_secs(300)) {
        panic!("Linux did not boot beside the hostile guest: {error}");
    }
    let start = Instant::now();
    let mut faults = hostile_faults(&mut session);
    // Each status request ends the shell's line: a fresh prompt follows.
    type_line(&mut session, "\n");
    let mut seed = 0x9e37_79b9u32;
    let (mut rounds, mut typed, mut checksums) = (0u64, 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        let text: String = (0..48)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                char::from(
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        [(seed % 62) as usize],
                )
            })
            .collect();
        let line = format!("echo soak-{rounds}-{text}\n");
        type_line(&mut session, &line);
        typed += line.len() as u64;
        if let Err(error) = session.expect(&format!("\nsoak-{rounds}-{text}"), WAIT) {
            panic!("round {rounds}: the typed line did not come back whole: {error}");
        }
        type_line(
            &mut session,
            "dd if=/dev/zero bs=1M count=8 2>/dev/null | md5sum\n",
        );
        if let Err(error) = session.expect(ZEROS_8M_MD5, WAIT) {
            panic!("round {rounds}: wrong or no checksum: {error}");
        }
        checksums += 1;
        type_line(
            &mut session,
            "for i in $(seq 50); do /bin/true; done; echo spawned-$((25 * 2))\n",
        );
        if let Err(error) = session.expect("spawned-50", WAIT) {
            panic!("round {rounds}: the process loop did not finish: {error}");
        }
        rounds += 1;
        if rounds % 10 == 0 {
            let now = hostile_faults(&mut session);
            assert!(
                now > faults,
                "round {rounds}: the hostile guest stopped attacking ({faults} injected faults, then {now})"
            );
            faults = now;
            type_line(&mut session, "\n");
        }
    }
    // The VMs' counters, then the end.
    session.send("\x1ds").expect("QEMU takes input");
    if let Err(error) = session.expect("'hostile-soak': ", WAIT) {
        panic!("no status line for the hostile guest: {error}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let transcript = session.transcript();
    let status = transcript
        .lines()
        .rfind(|line| line.contains("'hostile-soak': "))
        .unwrap_or("")
        .to_string();
    assert!(
        status.contains("'hostile-soak': ready") || status.contains("'hostile-soak': waiting"),
        "the hostile guest must still be running: {status}"
    );
    assert!(!transcript.contains("Hyp-mode exception"), "{transcript}");
    assert!(!transcript.contains("boot refused"), "{transcript}");
    let linux = transcript
        .lines()
        .rfind(|line| line.contains("'linux': "))
        .unwrap_or("")
        .trim_end()
        .to_string();
    println!(
        "soak on {}: {} s, {rounds} rounds, {typed} bytes typed and echoed back whole, {checksums} checksums right, {} processes; {}; {}",
        board.name,
        start.elapsed().as_secs(),
        rounds * 50,
        linux.trim_start_matches("capvisor: "),
        status.trim_end().trim_start_matches("capvisor: ")
    );
}

#[test]
#[ignore = "10 minutes per board: make soak"]
fn soak_integrator_cp() {
    soak(&capvisor_tests::board_under_test("integrator-cp"));
}

#[test]
#[ignore = "10 minutes per board: make soak"]
fn soak_qemu_virt() {
    soak(&capvisor_tests::board_under_test("qemu-virt"));
}
