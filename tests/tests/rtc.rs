// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual PL031 real-time clock under QEMU, on every board: two VMs
//! run the `rtc` guest side by side, each reading its clock advance,
//! setting it for itself, and taking its own match interrupt through its
//! virtual GIC; the time they read first is the host's (the board's PL031,
//! read by the hypervisor at boot, carried by the counter). Linux's `date`
//! shows the host's time, and a time Linux sets (`date -s`, `hwclock -w`)
//! survives its `reboot -f`.

use capvisor_runner::Session;
use capvisor_tests::{
    assert_console_has, assert_console_lacks, boot, counter, per_board, start_linux,
    type_at_prompt, vm_status_line, Board,
};
use hyp::hil::time::UtcDateTime;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const EXIT_SUCCESS: i32 = 0;
/// How far a guest's clock may be from the host's.
const TOLERANCE_S: u64 = 60;
const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
const MARKER: &str = "capvisor-linux: initramfs up";

per_board!(
    each_vm_has_its_own_clock_and_takes_its_alarm,
    linux_knows_the_date_and_keeps_its_own_across_a_reboot,
);

/// The host's time, in seconds since 1970.
fn host_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the host's clock is after 1970")
        .as_secs()
}

/// The seconds of the boot log's wall-clock line, which must name the
/// date the board's PL031 gave.
fn boot_wall_clock(console: &str) -> u64 {
    let line = console
        .lines()
        .find(|line| line.contains("capvisor: wall clock: "))
        .unwrap_or_else(|| panic!("no wall-clock line:\n{console}"));
    assert!(line.contains(" UTC from the board's PL031 ("), "{line}");
    let seconds = counter(line, "PL031 (");
    assert!(
        line.contains(&UtcDateTime::from_unix_seconds(seconds).to_string()),
        "{line}"
    );
    seconds
}

/// Whether `seconds` is within [`TOLERANCE_S`] of the host's time between
/// `before` and `after`.
fn near_host_time(seconds: u64, before: u64, after: u64) -> bool {
    seconds + TOLERANCE_S >= before && seconds <= after + TOLERANCE_S
}

fn each_vm_has_its_own_clock_and_takes_its_alarm(board: &Board) {
    let before = host_now();
    let outcome = boot(board, "rtc");
    let after = host_now();
    let console = &outcome.transcript;
    assert_console_lacks(console, "FAIL");
    assert_console_lacks(console, "Hyp-mode exception");
    // The guest's checks: identification, RTCCR, the counter advancing,
    // RTCDR and RTCLR after a set, no early match, one interrupt, at the
    // match, RTCMIS around the clear, raised once, RTCRIS clear, nothing
    // else: 12, each VM.
    for vm in ["rtc", "rtc-2"] {
        let status = vm_status_line(console, vm);
        assert!(status.contains("PASSED"), "{status}\n{console}");
    }
    assert_eq!(
        console.matches("rtc: 12 checks, 0 failed").count(),
        2,
        "{console}"
    );
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");

    // The hypervisor read the host's time at boot, and each guest's clock
    // counts from it (its first read, before it sets its own).
    let booted = boot_wall_clock(console);
    assert!(
        near_host_time(booted, before, after),
        "the board's PL031 read {booted}, the host's time was {before}..{after}"
    );
    let first_reads: Vec<u64> = console
        .lines()
        .filter(|line| line.contains("rtc: ") && line.contains(" 1.5 s later"))
        .map(|line| counter(line, "rtc: "))
        .collect();
    assert_eq!(first_reads.len(), 2, "{console}");
    for read in first_reads {
        assert!(
            near_host_time(read, before, after),
            "a guest's RTC read {read}, the host's time was {before}..{after}"
        );
        eprintln!(
            "{}: the guest's RTC read {} ({}), {} s after QEMU started (the run took {} s)",
            board.name,
            read,
            UtcDateTime::from_unix_seconds(read),
            read as i64 - before as i64,
            after - before
        );
    }
}

/// Waits for the shell's prompt, types `command` and waits for `expect`,
/// failing with the transcript.
fn run(session: &mut Session, command: &str, expect: &str) -> String {
    type_at_prompt(session, command, COMMAND);
    match session.expect(expect, COMMAND) {
        Ok(line) => line,
        Err(error) => panic!("after {command:?}, waiting for {expect:?}: {error}"),
    }
}

/// Linux's time now, in seconds since 1970, and its date as `date -u`
/// prints it. The marker after them is computed by the shell, so the echo
/// of the command cannot match, and it ends the line, so the whole line
/// has arrived when it is seen.
fn linux_time(session: &mut Session) -> (u64, String) {
    let line = run(
        session,
        "date -u '+%s %Y-%m-%d %H:%M:%S UTC' | sed \"s/$/ clock-$((6 * 7))/\"\n",
        "clock-42",
    );
    let fields: Vec<&str> = line.split_whitespace().collect();
    let end = fields
        .iter()
        .position(|&field| field == "clock-42")
        .filter(|&end| end >= 4)
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    let seconds = fields[end - 4]
        .parse()
        .unwrap_or_else(|_| panic!("no seconds in {line:?}"));
    (seconds, fields[end - 3..end].join(" "))
}

fn linux_knows_the_date_and_keeps_its_own_across_a_reboot(board: &Board) {
    let mut session = start_linux(board, "linux");
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    let console = session.transcript();
    assert_console_has(&console, "rtc-pl031");
    let before = host_now();
    let (seconds, date) = linux_time(&mut session);
    let after = host_now();
    eprintln!(
        "{}: Linux's date: {date} ({} s from the host's)",
        board.name,
        seconds as i64 - before as i64
    );
    assert!(
        near_host_time(seconds, before, after),
        "Linux's date is {date} ({seconds}), the host's time was {before}..{after}"
    );
    assert_eq!(
        date,
        UtcDateTime::from_unix_seconds(seconds).to_string(),
        "the date Linux prints is the one its seconds give"
    );
    assert_eq!(
        &date[..10],
        &UtcDateTime::from_unix_seconds(after).to_string()[..10],
        "today's date"
    );

    // The guest sets its clock to 2001-09-09 01:46:40 UTC and writes it
    // to its RTC; the restarted VM reads it back.
    const SET_TO: u64 = 1_000_000_000;
    run(
        &mut session,
        "date -u -s '2001-09-09 01:46:40' >/dev/null && hwclock -w -u && echo set-$((2 * 21))\n",
        "set-42",
    );
    let set_at = host_now();
    type_at_prompt(&mut session, "reboot -f\n", COMMAND);
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not come back after reboot: {error}");
    }
    let (seconds, date) = linux_time(&mut session);
    let elapsed = host_now() - set_at;
    eprintln!(
        "{}: after reboot -f, Linux's date: {date} ({} s after the set, {elapsed} s later on the host)",
        board.name,
        seconds as i64 - SET_TO as i64
    );
    assert!(
        (SET_TO..=SET_TO + elapsed + TOLERANCE_S).contains(&seconds),
        "after reboot -f Linux's date is {date} ({seconds}); it set {SET_TO} {elapsed} s before"
    );
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    let line = vm_status_line(&transcript, "linux");
    assert_eq!(counter(line, "restarts"), 1, "{line}");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
}
