// SPDX-License-Identifier: MIT OR Apache-2.0
//! The performance monitors are each VM's own. Two VMs run this guest:
//! each writes its own settings (event types and counts of counters 0 and
//! 1, the cycle counter, the enable, interrupt-enable and overflow flags,
//! PMSELR, PMUSERENR), with counting off, then yields to the other five
//! times and checks after each turn that every register still holds its
//! value: the other VM wrote different ones meanwhile.
//!
//! Then what a guest's PMCCNTR counts: VM 1 enables its cycle counter and
//! reads it around a yield while VM 2 spins for a while, then around a
//! spin of its own of the same length. The counter counts only VM 1's own
//! time: the other VM's turn adds less than a tenth of VM 1's own spin.
#![no_std]
#![no_main]

use capvisor_test_guests::{println, vm_identity, yield_now, Checks};

capvisor_test_guests::guest!("pmu", main);

macro_rules! read {
    ($crm:literal, $op2:literal) => {{
        let value: u32;
        // SAFETY: reading a performance-monitor register at PL1 has no side
        // effects.
        unsafe {
            core::arch::asm!(concat!("mrc p15, 0, {}, c9, c", $crm, ", ", $op2), out(reg) value, options(nomem, nostack))
        };
        value
    }};
}

macro_rules! write {
    ($crm:literal, $op2:literal, $value:expr) => {
        // SAFETY: this VM's own performance monitors.
        unsafe {
            core::arch::asm!(concat!("mcr p15, 0, {}, c9, c", $crm, ", ", $op2), "isb", in(reg) $value, options(nomem, nostack))
        }
    };
}

/// Selects event counter `n` for PMXEVTYPER/PMXEVCNTR.
fn select(n: u32) {
    write!(12, 5, n);
}

/// This VM's settings, distinct for VM `id`.
struct Settings {
    types: [u32; 2],
    counts: [u32; 2],
    cycles: u32,
    enabled: u32,
    interrupts: u32,
    overflows: u32,
    selected: u32,
    user: u32,
}

fn settings(id: u32) -> Settings {
    Settings {
        types: [0x10 + id, 0x20 + id],
        counts: [0x1000 * id + 1, 0x2000 * id + 2],
        cycles: 0x0100_0000 * id + 3,
        enabled: 1 << (id - 1),
        interrupts: 1 << (id + 1),
        overflows: 1 << (id + 3),
        selected: id - 1,
        user: id & 1,
    }
}

fn apply(s: &Settings) {
    write!(12, 0, 0u32); // PMCR: counting off
    for n in 0..2 {
        select(n);
        write!(13, 1, s.types[n as usize]);
        write!(13, 2, s.counts[n as usize]);
    }
    write!(13, 0, s.cycles);
    write!(12, 2, u32::MAX); // PMCNTENCLR
    write!(12, 1, s.enabled);
    write!(14, 2, u32::MAX); // PMINTENCLR
    write!(14, 1, s.interrupts);
    write!(12, 3, u32::MAX); // PMOVSR: clear
    write!(14, 3, s.overflows); // PMOVSSET
    write!(14, 0, s.user);
    select(s.selected);
}

fn check(checks: &mut Checks, s: &Settings) {
    checks.equal("PMSELR", read!(12, 5), s.selected);
    checks.equal("PMCNTENSET", read!(12, 1), s.enabled);
    checks.equal("PMINTENSET", read!(14, 1), s.interrupts);
    checks.equal("PMOVSR", read!(12, 3), s.overflows);
    checks.equal("PMUSERENR", read!(14, 0), s.user);
    checks.equal("PMCCNTR", read!(13, 0), s.cycles);
    for n in 0..2 {
        select(n);
        checks.equal("PMXEVTYPER", read!(13, 1), s.types[n as usize]);
        checks.equal("PMXEVCNTR", read!(13, 2), s.counts[n as usize]);
    }
    select(s.selected);
}

/// About as many cycles as `rounds` times a short loop.
fn spin(rounds: u32) {
    for n in 0..rounds {
        core::hint::black_box(n);
    }
}

fn main() -> u32 {
    let (id, _, _) = vm_identity();
    let mine = settings(id);
    apply(&mine);
    let mut checks = Checks::new();
    for _ in 0..5 {
        yield_now();
        check(&mut checks, &mine);
    }
    // What PMCCNTR counts.
    const SPIN: u32 = 2_000_000;
    if id == 1 {
        write!(12, 2, u32::MAX); // PMCNTENCLR
        write!(12, 1, 1u32 << 31); // PMCNTENSET: the cycle counter
        write!(12, 0, 1u32); // PMCR.E
        let before = read!(13, 0);
        yield_now(); // VM 2 spins now
        let across = read!(13, 0).wrapping_sub(before);
        let start = read!(13, 0);
        spin(SPIN);
        let own = read!(13, 0).wrapping_sub(start);
        println!(
            "pmu: VM 1's cycle counter: {} across VM 2's turn, {} for its own spin",
            across, own
        );
        checks.that("its own spin counts", own > 100_000);
        checks.that("the other VM's turn does not count", across < own / 10);
    } else {
        spin(SPIN);
        yield_now();
    }
    checks.finish("pmu")
}
