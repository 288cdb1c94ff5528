// SPDX-License-Identifier: MIT OR Apache-2.0
//! Periodic virtual-timer interrupts through the virtual GIC: the guest
//! arms its virtual timer every millisecond (CNTV_CVAL, no drift), takes
//! each interrupt (id 27) at its own IRQ vector, acknowledges and ends it
//! at the GIC, and sleeps (WFI) in between. The 200 deadlines of a 200 ms
//! window of its virtual counter must each bring exactly one interrupt, and
//! none may come before its deadline (on a loaded host the guest may fall
//! behind its schedule and catch up; it still serves each deadline once).
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, set_irq_handler, timer, wait_for_interrupt, Checks,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

capvisor_test_guests::guest!("vtimer", main);

/// The timer's interrupt id (PPI 11).
const TIMER: u32 = 27;
/// Period and window, in milliseconds.
const PERIOD_MS: u64 = 1;
const WINDOW_MS: u64 = 200;

static TICKS: AtomicU32 = AtomicU32::new(0);
/// Timer interrupts taken before their deadline (there must be none).
static EARLY: AtomicU32 = AtomicU32::new(0);
static OTHER: AtomicU32 = AtomicU32::new(0);
static NEXT: AtomicU64 = AtomicU64::new(0);
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// The window's last instant: deadlines after it are not counted.
static END: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_irq() {
    let iar = gic::acknowledge();
    let id = iar & 0x3ff;
    if id == gic::SPURIOUS {
        return;
    }
    if id == TIMER {
        let due = NEXT.load(Ordering::Relaxed);
        if timer::now() < due {
            EARLY.fetch_add(1, Ordering::Relaxed);
        } else if due <= END.load(Ordering::Relaxed) {
            TICKS.fetch_add(1, Ordering::Relaxed);
        }
        let next = due + PERIOD.load(Ordering::Relaxed);
        NEXT.store(next, Ordering::Relaxed);
        timer::arm_at(next);
    } else {
        OTHER.fetch_add(1, Ordering::Relaxed);
    }
    gic::end(iar);
}

fn main() -> u32 {
    let mut checks = Checks::new();
    let frequency = u64::from(timer::frequency());
    checks.equal("CNTFRQ", frequency as u32, 62_500_000);
    let period = frequency * PERIOD_MS / 1000;
    PERIOD.store(period, Ordering::Relaxed);
    gic::init(&[TIMER]);
    set_irq_handler(on_irq);
    let start = timer::now();
    let end = start + frequency * WINDOW_MS / 1000;
    END.store(end, Ordering::Relaxed);
    NEXT.store(start + period, Ordering::Relaxed);
    timer::arm_at(start + period);
    // Wait with IRQs masked, take the interrupt after each wake-up, until
    // every deadline in the window has been served (on a loaded host the
    // guest may fall behind its schedule and catch up: each deadline is
    // still one interrupt).
    while NEXT.load(Ordering::Relaxed) <= end {
        wait_for_interrupt();
        enable_irqs();
        disable_irqs();
    }
    timer::disarm();
    let ticks = TICKS.load(Ordering::Relaxed);
    let expected = (WINDOW_MS / PERIOD_MS) as u32;
    println!(
        "vtimer: {} interrupts in {} ms (period {} ms)",
        ticks, WINDOW_MS, PERIOD_MS
    );
    let early = EARLY.load(Ordering::Relaxed);
    checks.equal(
        "one interrupt per period over the window, none before its deadline",
        ticks | early << 16,
        expected,
    );
    checks.equal("no other interrupt", OTHER.load(Ordering::Relaxed), 0);
    checks.finish("vtimer")
}
