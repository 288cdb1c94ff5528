// SPDX-License-Identifier: MIT OR Apache-2.0
//! The demo's second VM: prints its uptime every ten seconds from its
//! virtual timer's interrupt, beside Linux, to show the console and the CPU
//! being shared; powers off after an hour.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, set_irq_handler, timer, wait_for_interrupt,
};
use core::sync::atomic::{AtomicU32, Ordering};

capvisor_test_guests::guest!("ticker", main);

/// Seconds between lines, and lines before powering off.
const PERIOD_S: u64 = 10;
const LINES: u32 = 360;

static TICKS: AtomicU32 = AtomicU32::new(0);

fn on_irq() {
    let iar = gic::acknowledge();
    if iar & 0x3ff == 27 {
        timer::disarm();
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
    if iar & 0x3ff != gic::SPURIOUS {
        gic::end(iar);
    }
}

fn main() -> u32 {
    let period = u64::from(timer::frequency()) * PERIOD_S;
    gic::init(&[27]);
    set_irq_handler(on_irq);
    let start = timer::now();
    println!("ticker: up; a line every {} s", PERIOD_S);
    for line in 1..=LINES {
        timer::arm_at(start + period * u64::from(line));
        // Wait with IRQs masked, take the interrupt after each wake-up.
        while TICKS.load(Ordering::Relaxed) < line {
            wait_for_interrupt();
            enable_irqs();
            disable_irqs();
        }
        println!("ticker: {} s", PERIOD_S * u64::from(line));
    }
    0
}
