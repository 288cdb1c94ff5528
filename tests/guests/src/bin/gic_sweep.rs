// SPDX-License-Identifier: MIT OR Apache-2.0
//! A guest that abuses its virtual GIC: every register of both windows
//! read and written with all-ones at every size, out-of-range interrupt ids,
//! reserved SGIR target filters. The hypervisor must stay up and answer
//! with the architected behaviour: reserved and out-of-range registers read
//! as zero and ignore writes, read-only registers ignore writes, and the
//! GIC still works afterwards (an SGI sent to itself is taken, and eight
//! SPIs pending at once, more than a GICv2 has list registers, all arrive
//! in priority order).
#![no_std]
#![no_main]

use capvisor_test_guests::{expect_exception, gic, println, Checks};

capvisor_test_guests::guest!("gic-sweep", main);

/// Accesses one register at `address` with `size` bytes; returns whether
/// the access aborted.
fn poke(address: usize, size: usize, write: bool) -> bool {
    expect_exception(|| {
        // SAFETY: the virtual GIC's windows; an abort is expected and
        // skipped by the runtime.
        unsafe {
            match (size, write) {
                (1, false) => {
                    core::arch::asm!("ldrb {v}, [{a}]", a = in(reg) address, v = out(reg) _)
                }
                (2, false) => {
                    core::arch::asm!("ldrh {v}, [{a}]", a = in(reg) address, v = out(reg) _)
                }
                (4, false) => {
                    core::arch::asm!("ldr {v}, [{a}]", a = in(reg) address, v = out(reg) _)
                }
                (1, true) => {
                    core::arch::asm!("strb {v}, [{a}]", a = in(reg) address, v = in(reg) u32::MAX)
                }
                (2, true) => {
                    core::arch::asm!("strh {v}, [{a}]", a = in(reg) address, v = in(reg) u32::MAX)
                }
                _ => core::arch::asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) u32::MAX),
            }
        }
    })
    .is_some()
}

fn main() -> u32 {
    let mut checks = Checks::new();
    let typer = gic::distributor_read(0x4);
    let lines = 32 * ((typer & 0x1f) + 1);
    println!(
        "gic-sweep: GICD_TYPER {:#x}: {} interrupt ids",
        typer, lines
    );
    checks.that(
        "TYPER: at least the SPIs of the guest platform",
        lines >= 64,
    );
    // Out-of-range ids: enable and pending bits beyond the last line are
    // RAZ/WI.
    let last_word = (lines / 32) as usize;
    gic::distributor_write(0x100 + 4 * last_word, u32::MAX);
    checks.equal(
        "ISENABLER past the last id reads zero",
        gic::distributor_read(0x100 + 4 * last_word),
        0,
    );
    gic::distributor_write(0x400 + 4 * 250, u32::MAX);
    checks.equal(
        "IPRIORITYR for ids 1000-1003 reads zero",
        gic::distributor_read(0x400 + 4 * 250),
        0,
    );
    // Read-only registers ignore writes.
    gic::distributor_write(0x4, 0);
    checks.equal("TYPER ignores writes", gic::distributor_read(0x4), typer);
    let iidr = gic::distributor_read(0x8);
    gic::distributor_write(0x8, !iidr);
    checks.equal("IIDR ignores writes", gic::distributor_read(0x8), iidr);
    // Reserved SGIR target filter (3) and out-of-range SGI fields.
    gic::distributor_write(0xf00, 3 << 24 | 5);
    gic::distributor_write(0xf00, u32::MAX);
    // The sweep: every word of both windows, all sizes, reads then writes
    // (the distributor's CTLR and the CPU interface are swept too).
    let mut aborted = 0u32;
    let mut accesses = 0u32;
    for (base, size) in [(gic::GICD, 0x1000usize), (gic::GICC, 0x2000)] {
        for offset in (0..size).step_by(4) {
            for width in [1, 2, 4] {
                for write in [false, true] {
                    accesses += 1;
                    aborted += u32::from(poke(base + offset, width, write));
                }
            }
        }
    }
    println!("gic-sweep: {} accesses, {} aborted", accesses, aborted);
    // The sweep wrote all-ones to GICC_APR0 (active priorities) too, which
    // raises the running priority above everything: clear it as a guest
    // restoring a saved state would. Then acknowledge whatever the sweep
    // left pending, and prove the GIC still works: an SGI to this CPU
    // (filter 2) is taken.
    gic::cpu_write(0xd0, 0);
    for _ in 0..128 {
        let iar = gic::acknowledge();
        if iar & 0x3ff == gic::SPURIOUS {
            break;
        }
        gic::end(iar);
    }
    for offset in [
        0x180, // ICENABLER: all off
        0x280, // ICPENDR: nothing pending
        0x380, // ICACTIVER: nothing active
        0xf10, // CPENDSGIR: no SGI pending
        0xf14, 0xf18, 0xf1c,
    ] {
        gic::distributor_write(offset, u32::MAX);
    }
    gic::init(&[3]);
    gic::distributor_write(0xf00, (2 << 24) | 3); // SGI 3 to self
    let iar = gic::acknowledge();
    checks.equal("an SGI to self is acknowledged", iar & 0x3ff, 3);
    gic::end(iar);
    checks.equal(
        "then nothing is pending",
        gic::acknowledge() & 0x3ff,
        gic::SPURIOUS,
    );
    // More interrupts pending at once than a GICv2 has list registers
    // (4): eight SPIs, 40 the least urgent, 47 the most, all pending by
    // one GICD_ISPENDR1 write. They must all be acknowledged, most urgent
    // first (with GICV, the hypervisor refills the list registers when the
    // guest has emptied them, so an acknowledge may briefly find none).
    let spis: [u32; 8] = [40, 41, 42, 43, 44, 45, 46, 47];
    gic::init(&spis);
    for (k, &id) in spis.iter().enumerate() {
        let byte = 0x400 + id as usize;
        let shift = (byte & 3) * 8;
        let word = gic::distributor_read(byte & !3) & !(0xff << shift);
        gic::distributor_write(byte & !3, word | ((0x80 + 8 * (7 - k as u32)) << shift));
    }
    gic::distributor_write(0x204, 0xff << 8);
    let mut in_order = 0;
    let mut spurious = 0;
    let mut taken = 0;
    while taken < spis.len() && spurious < 100_000 {
        let iar = gic::acknowledge();
        if iar & 0x3ff == gic::SPURIOUS {
            spurious += 1;
            continue;
        }
        in_order += u32::from(iar & 0x3ff == 47 - taken as u32);
        taken += 1;
        gic::end(iar);
    }
    checks.equal(
        "eight SPIs pending at once, acknowledged most urgent first",
        in_order,
        8,
    );
    checks.finish("gic-sweep")
}
