// SPDX-License-Identifier: MIT OR Apache-2.0
//! CPU-bound guests for the scheduler. A VM named `sleeper` waits for its
//! virtual timer once, at the end of the window, and reports how long it
//! slept; a VM named `victim` reports its iterations in each 100 ms for
//! 1.5 s (progress while another VM misbehaves); a VM named `rival`
//! sleeps the victim's first 500 ms (its solo baseline), then spins until
//! the victim's windows end (on another CPU: both at once); any other VM
//! counts loop iterations for the window and reports the count, so the
//! test can compare the VMs' shares of the CPU.
#![no_std]
#![no_main]

use capvisor_test_guests::{println, read32, sleep_until, timer, vm_identity, Checks};
use core::sync::atomic::{AtomicU32, Ordering};

capvisor_test_guests::guest!("spinner", main);

/// The window, in milliseconds of the VM's virtual counter.
const WINDOW_MS: u64 = 1000;
/// The victim's 100 ms windows: longer than the hostile guest's attack.
const VICTIM_WINDOWS: usize = 15;

fn main() -> u32 {
    let mut checks = Checks::new();
    let (_, name, length) = vm_identity();
    let name = core::str::from_utf8(&name[..length]).unwrap_or("?");
    let frequency = u64::from(timer::frequency());
    let start = timer::now();
    let end = start + frequency * WINDOW_MS / 1000;
    if name == "sleeper" {
        let wakeups = sleep_until(end);
        let slept_ms = (timer::now() - start) * 1000 / frequency;
        println!("sleeper: slept {} ms, {} wakeups", slept_ms, wakeups);
        checks.that("slept the whole window", slept_ms >= WINDOW_MS);
        checks.equal("woken once, by the timer", wakeups, 1);
        return checks.finish("sleeper");
    }
    if name == "victim" {
        // Its memory must come out of the attack as it went in: a pattern
        // in its data and the first 4 KiB of its image (vectors and entry).
        fill_pattern();
        let image_before = image_checksum();
        // Progress in each 100 ms while another VM misbehaves (and sleeps
        // at first, which gives the solo baseline): every window's count,
        // with where the first began on the counter both VMs share (each
        // VM's virtual counter starts at its creation, within microseconds
        // of the other's).
        let tenth = frequency / 10;
        let mut counts = [0u64; VICTIM_WINDOWS];
        for (window, count) in counts.iter_mut().enumerate() {
            let window_end = start + tenth * (window as u64 + 1);
            *count = spin_until(window_end);
        }
        let start_us = start * 1_000_000 / frequency;
        for (window, count) in counts.iter().enumerate() {
            println!(
                "victim: window {} from {} us: {} iterations",
                window,
                start_us + window as u64 * 100_000,
                count
            );
        }
        // Starved by another VM, it would miss many windows; a host that
        // others share may stall QEMU's thread for a window now and then
        // (these are wall-clock windows), so one window in ten may be
        // empty. The judgement of who had the CPU is the hypervisor's
        // counters, in the host tests.
        let empty = counts.iter().filter(|&&count| count == 0).count();
        checks.that(
            "progress in 9 of every 10 windows of 100 ms",
            empty * 10 <= counts.len(),
        );
        checks.that("its data unchanged", pattern_intact());
        checks.equal("its image unchanged", image_checksum(), image_before);
        return checks.finish(name);
    }
    if name == "rival" {
        let wakeups = sleep_until(start + frequency / 2);
        checks.equal("woken once, by the timer", wakeups, 1);
        let busy_end = start + frequency * (VICTIM_WINDOWS as u64) / 10;
        let iterations = spin_until(busy_end);
        println!(
            "rival: busy from {} us to {} us, {} iterations",
            (start + frequency / 2) * 1_000_000 / frequency,
            busy_end * 1_000_000 / frequency,
            iterations
        );
        checks.that("made progress", iterations > 0);
        return checks.finish("rival");
    }
    let iterations = spin_until(end);
    println!("{}: {} iterations in {} ms", name, iterations, WINDOW_MS);
    checks.that("made progress", iterations > 0);
    checks.finish(name)
}

/// Loop iterations between two reads of the counter. Each read of CNTVCT
/// takes QEMU's global lock (a timer register is I/O to TCG), as does
/// every GIC register access of the hypervisor on another CPU, so a
/// vCPU that read it at every iteration would measure that lock, not its
/// CPU (16% of its solo rate beside another spinning vCPU); a read per
/// chunk (about 0.1 ms) makes the lock's share negligible.
const CHUNK: u32 = 32768;

/// Spins until the virtual counter reaches `end`; returns the iterations
/// (chunks of [`CHUNK`] steps of arithmetic, which nothing can skip).
fn spin_until(end: u64) -> u64 {
    let mut iterations: u64 = 0;
    let mut value: u32 = 1;
    while timer::now() < end {
        for _ in 0..CHUNK {
            value = core::hint::black_box(value.wrapping_mul(0x0019_660d).wrapping_add(1));
        }
        iterations += 1;
    }
    core::hint::black_box(value);
    iterations
}

/// A 16 KiB pattern in the victim's data.
static PATTERN: [AtomicU32; 4096] = [const { AtomicU32::new(0) }; 4096];

fn pattern_word(index: usize) -> u32 {
    (index as u32).wrapping_mul(0x9e37_79b9) ^ 0x5a5a_5a5a
}

fn fill_pattern() {
    for (index, word) in PATTERN.iter().enumerate() {
        word.store(pattern_word(index), Ordering::Relaxed);
    }
}

fn pattern_intact() -> bool {
    PATTERN
        .iter()
        .enumerate()
        .all(|(index, word)| word.load(Ordering::Relaxed) == pattern_word(index))
}

/// A checksum of the first 4 KiB of RAM, where the image starts.
fn image_checksum() -> u32 {
    (0..1024usize).fold(0u32, |sum, index| {
        // SAFETY: the VM's own RAM at IPA 0x4000_0000, its image's first
        // page; reading it has no effect.
        let word = unsafe { read32(0x4000_0000 + 4 * index) };
        sum.rotate_left(5) ^ word
    })
}
