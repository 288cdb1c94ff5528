// SPDX-License-Identifier: MIT OR Apache-2.0
//! A restarted VM starts from reset state in every device it owns.
//!
//! First boot: checks that its devices are in their reset state, then
//! leaves as much behind as it can: its virtual GIC enabled with
//! interrupts 33 and 40 enabled, prioritised and pending; its UART
//! configured, with its receive interrupts unmasked and bytes (typed by
//! the test) left unread in the receive FIFO; its virtual timer armed; a
//! failure status (1) reported to the hypervisor. Then it faults in its own
//! vectors (as `faulty` does), and its fault policy restarts it.
//!
//! Second boot: the same reset-state checks, and the boot count is 2. It
//! powers off without reporting a status if all held, so a status that
//! survived the restart shows as a failure; it reports the number of
//! failed checks otherwise.
#![no_std]
#![no_main]

use capvisor_test_guests::{gic, hvc, println, psci, read32, service, timer, write32, Checks};

capvisor_test_guests::guest!("reset-check", main);

const UART: usize = 0x0900_0000;
const UART_FR: usize = UART + 0x18;
const UART_IBRD: usize = UART + 0x24;
const UART_LCR_H: usize = UART + 0x2c;
const UART_CR: usize = UART + 0x30;
const UART_IMSC: usize = UART + 0x38;
const UART_MIS: usize = UART + 0x40;
const FR_RXFE: u32 = 1 << 4;

/// The virtual timer's control register, CNTV_CTL.
fn timer_control() -> u32 {
    let value: u32;
    // SAFETY: reading the guest's own CNTV_CTL has no side effects.
    unsafe {
        core::arch::asm!("mrc p15, 0, {}, c14, c3, 1", out(reg) value, options(nomem, nostack))
    };
    value
}

/// Checks every device this guest dirties is in its reset state.
fn check_reset_state(checks: &mut Checks) {
    checks.equal("GICD_CTLR", gic::distributor_read(0x000), 0);
    checks.equal("GICD_ISENABLER1", gic::distributor_read(0x104), 0);
    checks.equal("GICD_ISPENDR1", gic::distributor_read(0x204), 0);
    checks.equal(
        "GICD_IPRIORITYR8 (ids 32-35)",
        gic::distributor_read(0x420),
        0,
    );
    checks.equal(
        "GICD_IPRIORITYR10 (ids 40-43)",
        gic::distributor_read(0x428),
        0,
    );
    // SAFETY: the virtual GIC's CPU interface and UART registers.
    unsafe {
        checks.equal("GICC_CTLR", read32(gic::GICC), 0);
        checks.equal("GICC_PMR", read32(gic::GICC + 0x4), 0);
        checks.equal(
            "UART receive FIFO empty (FR.RXFE)",
            read32(UART_FR) & FR_RXFE,
            FR_RXFE,
        );
        checks.equal("UART IMSC", read32(UART_IMSC), 0);
        checks.equal("UART MIS", read32(UART_MIS), 0);
        checks.equal("UART CR", read32(UART_CR), 0x0300);
        checks.equal("UART LCR_H", read32(UART_LCR_H), 0);
        checks.equal("UART IBRD", read32(UART_IBRD), 0);
    }
    checks.equal("CNTV_CTL", timer_control(), 0);
}

fn main() -> u32 {
    let boot = hvc(service::BOOT_COUNT, [0; 7])[0];
    println!("reset-check: boot {}", boot);
    let mut checks = Checks::new();
    check_reset_state(&mut checks);
    if boot != 1 {
        checks.equal("boot count", boot, 2);
        let failures = checks.finish("reset-check");
        if failures != 0 {
            return failures;
        }
        // Nothing reported: a status left from the first life would show.
        hvc(psci::SYSTEM_OFF, [0; 7]);
        return 0xdead;
    }
    let failures = checks.finish("reset-check");
    if failures != 0 {
        return failures;
    }
    // Dirty everything.
    gic::init(&[33, 40]);
    gic::distributor_write(0x204, (1 << 1) | (1 << 8)); // ISPENDR1: ids 33 and 40
                                                        // SAFETY: the virtual UART's registers.
    unsafe {
        write32(UART_IBRD, 13);
        write32(UART_LCR_H, 0x70);
        write32(UART_IMSC, (1 << 4) | (1 << 6));
        write32(UART_CR, 0x0301);
    }
    timer::arm_at(timer::now() + 1_000_000_000);
    println!("reset-check: dirty; type three characters");
    // SAFETY: the UART's FR: wait until bytes wait in the receive FIFO.
    while unsafe { read32(UART_FR) } & FR_RXFE != 0 {
        core::hint::spin_loop();
    }
    println!("reset-check: input waiting, unread; reporting failure and faulting");
    hvc(service::EXIT_STATUS, [1, 0, 0, 0, 0, 0, 0]);
    capvisor_test_guests::fault_in_own_vectors();
    println!("reset-check: the fault did not restart this VM");
    0xbad
}
